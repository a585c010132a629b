"""The searcher population: who competes for MEV. One population tells both stories: the synthetic market's
history (gpubt/data/synthetic.py: which searcher lands each labeled opportunity) and the bundle auction our trades
meet (gpubt/analysis/competition.py, kernels/auction.py). Drawn from the `competition` config
(configs/competition/default.yaml), seeded by competition.seed:
  skill_j                                         the Beta(a, b) quantiles (j + ½)/N, shuffled: bid accuracy and
                                                  aggressiveness, in (0, 1)
  latency_ms_j = median · exp(sigma · Z)          lognormal
  capital_eth_j = median · exp(sigma · Z)         lognormal, caps the bid
  primary kind_j ~ Categorical(specialization)    focus[j, k] = 1 on it, `off_kind_interest` on other kinds
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpubt.schema import WEI_PER_ETH

KINDS = ("arbitrage", "sandwich", "liquidation", "jit", "cexdex")


def default_config() -> dict:
    """configs/competition/default.yaml as a plain dict: the population and bidding the synthetic market plants
    its labels with, and `competition=default` auctions our trades against."""
    from omegaconf import OmegaConf

    import gpubt.configs

    path = Path(gpubt.configs.__file__).parent / "competition" / "default.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


@dataclass(frozen=True)
class SearcherPopulation:
    """The competing searchers: flat arrays of length N (focus is N × len(kinds)), as the kernel takes them."""
    kinds: tuple
    skill: np.ndarray           # float64 in (0, 1)
    latency_ms: np.ndarray      # float64 > 0
    capital_wei: np.ndarray     # float64 > 0
    primary_kind: np.ndarray    # int32 index into kinds
    focus: np.ndarray           # float64 (N, K): probability weight of pursuing each kind

    @property
    def size(self) -> int:
        return len(self.skill)

    def kind_id(self, name: str) -> int:
        if name not in self.kinds:
            raise ValueError(f"competition: strategy kind {name!r} is not in competition.searchers.kinds "
                             f"{list(self.kinds)}; add it there")
        return self.kinds.index(name)

    def describe(self) -> dict:
        """JSON-safe population statistics for the summary."""
        per_kind = np.bincount(self.primary_kind, minlength=len(self.kinds)) if self.size else np.zeros(0, int)
        stats = {"count": self.size, "specialists": {k: int(per_kind[i]) for i, k in enumerate(self.kinds)}
                 if self.size else {}}
        if self.size:
            stats.update({"skill_mean": float(self.skill.mean()),
                          "latency_ms_median": float(np.median(self.latency_ms)),
                          "capital_eth_median": float(np.median(self.capital_wei)) / WEI_PER_ETH})
        return stats


def option(cfg, key, default=None):
    """cfg.key (an OmegaConf node, a dict, an object or None); `default` when absent or None."""
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def bidding_arrays(pop: SearcherPopulation, latency_window_ms: float, min_bid_share: float, max_bid_share: float,
                   value_noise: float) -> tuple:
    """(see (searchers × kinds), share, sigma) float64 arrays of kernels/auction.py's model: the probability that
    searcher j sees an opportunity of a kind, its bid share and its value noise."""
    see = np.ascontiguousarray(pop.focus * np.exp(-pop.latency_ms / latency_window_ms)[:, None], np.float64)
    share = np.ascontiguousarray(min_bid_share + (max_bid_share - min_bid_share) * pop.skill, np.float64)
    return see, share, np.ascontiguousarray(value_noise * (1.0 - pop.skill), np.float64)


def positive(name: str, value) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"competition.{name} = {value}: must be a finite number > 0")
    return value


def draw_population(cfg) -> SearcherPopulation:
    """The searcher population of the `competition` config (seeded by competition.seed)."""
    s = option(cfg, "searchers", {})
    kinds = tuple(option(s, "kinds", KINDS))
    count = int(option(s, "count", 0))
    if count < 0:
        raise ValueError(f"competition.searchers.count = {count}: must be >= 0")
    skill_cfg, lat_cfg, cap_cfg = option(s, "skill", {}), option(s, "latency_ms", {}), option(s, "capital_eth", {})
    a = positive("searchers.skill.a", option(skill_cfg, "a", 2.0))
    b = positive("searchers.skill.b", option(skill_cfg, "b", 5.0))
    lat_median = positive("searchers.latency_ms.median", option(lat_cfg, "median", 50.0))
    lat_sigma = float(option(lat_cfg, "sigma", 0.75))
    cap_median = positive("searchers.capital_eth.median", option(cap_cfg, "median", 10.0))
    cap_sigma = float(option(cap_cfg, "sigma", 1.5))
    spec = dict(option(s, "specialization", {}) or {})
    unknown = set(spec) - set(kinds)
    if unknown:
        raise ValueError(f"competition.searchers.specialization: kinds {sorted(unknown)} are not in "
                         f"competition.searchers.kinds {list(kinds)}")
    weights = np.array([float(spec.get(k, 0.0)) for k in kinds]) if spec else np.ones(len(kinds))
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"competition.searchers.specialization = {spec}: weights must be >= 0 with a positive sum")
    off_kind = float(option(s, "off_kind_interest", 0.1))
    if not 0.0 <= off_kind <= 1.0:
        raise ValueError(f"competition.searchers.off_kind_interest = {off_kind}: must be in [0, 1]")

    rng = np.random.default_rng(int(option(cfg, "seed", 0)))
    # skills at the Beta's quantiles (j + ½)/N in a random order: the top tier, which sets how concentrated the
    # winners are, does not hinge on a few extreme draws
    skill = np.quantile(rng.beta(a, b, 100_000), (np.arange(count) + 0.5) / max(count, 1))
    rng.shuffle(skill)
    latency_ms = lat_median * np.exp(lat_sigma * rng.standard_normal(count))
    capital_wei = cap_median * np.exp(cap_sigma * rng.standard_normal(count)) * WEI_PER_ETH
    primary = rng.choice(len(kinds), size=count, p=weights / weights.sum()).astype(np.int32)
    focus = np.full((count, len(kinds)), off_kind)
    focus[np.arange(count), primary] = 1.0
    return SearcherPopulation(kinds, np.ascontiguousarray(skill), np.ascontiguousarray(latency_ms),
                              np.ascontiguousarray(capital_wei), primary, np.ascontiguousarray(focus))
