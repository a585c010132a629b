"""Bundle competition: do our trades survive a first-price sealed-bid auction against a searcher population?

The `competition` config group (configs/competition/{none,default}.yaml) describes a population of N competing
searchers, drawn once per run (numpy `default_rng(seed)`, so a config reproduces it):
  skill_j ~ Beta(a, b)                            in (0, 1): bid accuracy and aggressiveness
  latency_ms_j = median · exp(sigma · Z)          lognormal
  capital_eth_j = median · exp(sigma · Z)         lognormal, caps the bid
  primary kind_j ~ Categorical(specialization)    focus[j, k] = 1 on it, `off_kind_interest` on other kinds
Each trade (value v = its exact net profit after gas) is then auctioned in S Monte Carlo scenarios on the
backend (kernels/auction.py has the model and its formulas), giving per trade:
  win_probability       wins ÷ S
  expected_payoff_wei   mean over S of (v − our bid if won, else −failed_cost_wei)
  mean_winning_bid_wei  mean bid of the competitor that beat us, over the scenarios we lost (0 if none)
  competitors_bidding   mean number of competitors that saw it and bid
  won, bid_wei, net_after_bid_wei   the realized outcome: one more scenario of the same counter RNG (its own
                        phase), bid_wei = floor(our bid) (<= v), net_after_bid_wei = v − bid_wei if won, else
                        −failed_cost_wei (exact integers)
Summary: attempted (= trades), won (the survival-rate numerator), mean bid share (bid_wei ÷ v over the won
trades), totals. `landed(trades)` is the table the trade metrics use: the won trades, net profit after the bid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.backend import Backend, resolve_backend
from gpubt.schema import AMOUNT, WEI_PER_ETH, amounts_float

KINDS = ("arbitrage", "sandwich", "liquidation", "jit", "cexdex")
POLICIES = ("fixed", "shade")
COLUMNS = ("win_probability", "expected_payoff_wei", "mean_winning_bid_wei", "competitors_bidding", "won",
           "bid_wei", "net_after_bid_wei")


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


def _get(cfg, key, default=None):
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def _positive(name: str, value) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"competition.{name} = {value}: must be a finite number > 0")
    return value


def draw_population(cfg) -> SearcherPopulation:
    """The searcher population of the `competition` config (seeded by competition.seed)."""
    s = _get(cfg, "searchers", {})
    kinds = tuple(_get(s, "kinds", KINDS))
    count = int(_get(s, "count", 0))
    if count < 0:
        raise ValueError(f"competition.searchers.count = {count}: must be >= 0")
    skill_cfg, lat_cfg, cap_cfg = _get(s, "skill", {}), _get(s, "latency_ms", {}), _get(s, "capital_eth", {})
    a = _positive("searchers.skill.a", _get(skill_cfg, "a", 2.0))
    b = _positive("searchers.skill.b", _get(skill_cfg, "b", 5.0))
    lat_median = _positive("searchers.latency_ms.median", _get(lat_cfg, "median", 50.0))
    lat_sigma = float(_get(lat_cfg, "sigma", 0.75))
    cap_median = _positive("searchers.capital_eth.median", _get(cap_cfg, "median", 10.0))
    cap_sigma = float(_get(cap_cfg, "sigma", 1.5))
    spec = dict(_get(s, "specialization", {}) or {})
    unknown = set(spec) - set(kinds)
    if unknown:
        raise ValueError(f"competition.searchers.specialization: kinds {sorted(unknown)} are not in "
                         f"competition.searchers.kinds {list(kinds)}")
    weights = np.array([float(spec.get(k, 0.0)) for k in kinds]) if spec else np.ones(len(kinds))
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"competition.searchers.specialization = {spec}: weights must be >= 0 with a positive sum")
    off_kind = float(_get(s, "off_kind_interest", 0.1))
    if not 0.0 <= off_kind <= 1.0:
        raise ValueError(f"competition.searchers.off_kind_interest = {off_kind}: must be in [0, 1]")

    rng = np.random.default_rng(int(_get(cfg, "seed", 0)))
    skill = rng.beta(a, b, count)
    latency_ms = lat_median * np.exp(lat_sigma * rng.standard_normal(count))
    capital_wei = cap_median * np.exp(cap_sigma * rng.standard_normal(count)) * WEI_PER_ETH
    primary = rng.choice(len(kinds), size=count, p=weights / weights.sum()).astype(np.int32)
    focus = np.full((count, len(kinds)), off_kind)
    focus[np.arange(count), primary] = 1.0
    return SearcherPopulation(kinds, np.ascontiguousarray(skill), np.ascontiguousarray(latency_ms),
                              np.ascontiguousarray(capital_wei), primary, np.ascontiguousarray(focus))


def auction_params(cfg) -> np.ndarray:
    """The kernel's float64 params array (kernels/auction.py P_* indices) from the `competition` config."""
    from gpubt.kernels import auction as ka

    bidding, ours = _get(cfg, "bidding", {}), _get(cfg, "ours", {})
    policy = str(_get(ours, "policy", "fixed"))
    if policy not in POLICIES:
        raise ValueError(f"competition.ours.policy = {policy!r} (fixed or shade)")
    lo, hi = float(_get(bidding, "min_bid_share", 0.5)), float(_get(bidding, "max_bid_share", 0.99))
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"competition.bidding: min_bid_share = {lo}, max_bid_share = {hi}: need 0 <= min <= max <= 1")
    fraction = float(_get(ours, "bid_fraction", 0.9))
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"competition.ours.bid_fraction = {fraction}: must be in [0, 1] (a share of the value)")
    noise = float(_get(bidding, "value_noise", 0.5))
    failed = float(_get(ours, "failed_cost_eth", 0.0))
    margin = float(_get(ours, "shade_margin", 0.01))
    if noise < 0 or failed < 0 or margin < 0:
        raise ValueError("competition: bidding.value_noise, ours.failed_cost_eth and ours.shade_margin must be >= 0")
    params = np.zeros(ka.N_PARAMS)
    params[ka.P_LATENCY_WINDOW_MS] = _positive("bidding.latency_window_ms", _get(bidding, "latency_window_ms", 100.0))
    params[ka.P_VALUE_NOISE] = noise
    params[ka.P_MIN_BID_SHARE] = lo
    params[ka.P_MAX_BID_SHARE] = hi
    params[ka.P_POLICY] = ka.POLICY_SHADE if policy == "shade" else ka.POLICY_FIXED
    params[ka.P_OUR_BID_FRACTION] = fraction
    params[ka.P_SHADE_MARGIN] = margin
    params[ka.P_FAILED_COST_WEI] = failed * WEI_PER_ETH
    return params


def opportunity_ids(block_number, tx_index, path_id) -> np.ndarray:
    """A stable int64 id per (block, tx, path): splitmix64 of the packed triple, so a trade draws the same
    scenarios whatever batch or row it is in."""
    with np.errstate(over="ignore"):
        x = (np.asarray(block_number, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             ^ (np.asarray(tx_index, np.int64).astype(np.uint64) + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
             ^ np.asarray(path_id, np.int64).astype(np.uint64) * np.uint64(0x165667B19E3779F9))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x.view(np.int64)


def run_auction(value_wei, kind, opp_id, population: SearcherPopulation, params: np.ndarray, seed: int,
                n_scenarios: int, backend: Backend | str = "cpu", record_scenarios: int = 0) -> dict:
    """Launch the auction kernel over opportunities (float64 values, int32 kind ids, int64 ids) on `backend` (a
    Backend, or its name: "cpu" | "cudasim" | "cuda" | "auto"); a dict of host numpy arrays, named as the kernel's
    outputs without `out_` (scenario_won / scenario_max_bid_wei are n × record_scenarios)."""
    n_scenarios = int(n_scenarios)
    if n_scenarios < 1:
        raise ValueError(f"competition.scenarios = {n_scenarios}: must be >= 1")
    record = min(int(record_scenarios), n_scenarios)
    value_wei = np.ascontiguousarray(value_wei, np.float64)
    kind = np.ascontiguousarray(kind, np.int32)
    opp_id = np.ascontiguousarray(opp_id, np.int64)
    n = len(value_wei)
    if len(kind) and (kind.min() < 0 or kind.max() >= len(population.kinds)):
        raise ValueError(f"run_auction: kind ids must be in 0..{len(population.kinds) - 1}")
    names = ("our_bid_wei", "win_probability", "expected_payoff_wei", "mean_winning_bid_wei", "mean_max_bid_wei",
             "mean_bidders", "realized_won", "realized_max_bid_wei", "scenario_won", "scenario_max_bid_wei")
    outs = [np.zeros(n) for _ in range(6)] + [np.zeros(n, np.bool_), np.zeros(n), np.zeros((n, record), np.bool_),
                                               np.zeros((n, record))]
    args = [opp_id, value_wei, kind, population.skill, population.latency_ms, population.capital_wei,
            population.focus, np.ascontiguousarray(params, np.float64)]
    if n:
        be = backend if isinstance(backend, Backend) else resolve_backend(backend)
        dev_outs = [be.to_device(o) for o in outs]
        be.launch("auction", "auction", n, (int(seed), n_scenarios, *(be.to_device(a) for a in args), *dev_outs))
        for host, dev in zip(outs, dev_outs):
            if dev is not host:
                host[...] = be.to_host(dev)
    return dict(zip(names, outs))


def enabled(cfg) -> bool:
    return cfg is not None and bool(_get(cfg, "enabled", False))


class Auctions:
    """The `competition` config on `backend_name`, applied chunk by chunk (`add`: one chunk's trades, in any
    order: every opportunity's randomness is keyed by its id); `summary()` covers every chunk added.

    `kind`: the strategy kind of every trade (default: a `kind` column of `trades`, else its `strategy` where that
    is one of the population's kinds, else competition.ours.kind, else "arbitrage"). With competition disabled every trade wins at bid 0 and the summary says so.
    """

    def __init__(self, cfg, backend_name: str = "cpu", kind: str | None = None):
        self.cfg, self.backend_name, self.kind = cfg, backend_name, kind
        self.enabled = enabled(cfg)
        self.attempted = self.won = self.bids_paid = self.net_after = self.n_shares = 0
        self.win_probability = self.share = self.expected_payoff = self.bidders = 0.0  # sums
        if self.enabled:
            self.population, self.params = draw_population(cfg), auction_params(cfg)
            self.seed, self.n_scenarios = int(_get(cfg, "seed", 0)), int(_get(cfg, "scenarios", 1000))
            self.backend = resolve_backend(backend_name)
            self.ours = _get(cfg, "ours", {})
            self.failed_wei = int(round(float(_get(self.ours, "failed_cost_eth", 0.0)) * WEI_PER_ETH))

    def add(self, trades: pa.Table) -> pa.Table:
        """`trades` with the COLUMNS above appended."""
        n = trades.num_rows
        self.attempted += n
        if not self.enabled:
            net = trades.column("net_profit_wei")
            self.won += n
            columns = {"win_probability": np.ones(n), "expected_payoff_wei": amounts_float(net),
                       "mean_winning_bid_wei": np.zeros(n), "competitors_bidding": np.zeros(n),
                       "won": np.ones(n, np.bool_), "bid_wei": pa.array(np.zeros(n, np.int64)).cast(AMOUNT),
                       "net_after_bid_wei": net}
            return _append(trades, columns)
        net = [int(v) for v in trades.column("net_profit_wei").to_pylist()]
        population = self.population
        default = self.kind or str(_get(self.ours, "kind", "arbitrage"))
        if "kind" in trades.column_names:
            kinds = np.array([population.kind_id(k) for k in trades.column("kind").to_pylist()], np.int32)
        elif "strategy" in trades.column_names:  # a trade meets the searchers who chase its strategy's kind
            kinds = np.array([population.kind_id(k if k in population.kinds else default)
                              for k in trades.column("strategy").to_pylist()], np.int32)
        else:
            kinds = np.full(n, population.kind_id(default), np.int32)
        ids = opportunity_ids(trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(),
                              trades.column("path_id").to_numpy()) if n else np.zeros(0, np.int64)
        value = np.asarray(net, np.float64)
        out = run_auction(value, kinds, ids, population, self.params, self.seed, self.n_scenarios,
                          self.backend, int(_get(self.cfg, "record_scenarios", 0)))
        won = out["realized_won"]
        bid_wei = [min(max(math.floor(b), 0), max(v, 0)) for b, v in zip(out["our_bid_wei"].tolist(), net)]
        after = [v - b if w else -self.failed_wei for v, b, w in zip(net, bid_wei, won.tolist())]
        shares = [b / v for b, v, w in zip(bid_wei, net, won.tolist()) if w and v > 0]
        self.won += int(won.sum())
        self.bids_paid += sum(b for b, w in zip(bid_wei, won.tolist()) if w)
        self.net_after += sum(after)
        self.n_shares += len(shares)
        self.share += float(np.sum(shares))
        self.win_probability += float(out["win_probability"].sum())
        self.expected_payoff += float(out["expected_payoff_wei"].sum())
        self.bidders += float(out["mean_bidders"].sum())
        columns = {"win_probability": out["win_probability"], "expected_payoff_wei": out["expected_payoff_wei"],
                   "mean_winning_bid_wei": out["mean_winning_bid_wei"], "competitors_bidding": out["mean_bidders"],
                   "won": won, "bid_wei": bid_wei, "net_after_bid_wei": after}
        return _append(trades, columns)

    def summary(self) -> dict:
        n, n_won = self.attempted, self.won
        if not self.enabled:
            return {"enabled": False, "attempted": n, "won": n, "survival_rate": 1.0 if n else None}
        return {
            "enabled": True,
            "model": "first-price sealed-bid bundle auction (kernels/auction.py)",
            "backend": self.backend_name,
            "seed": self.seed,
            "scenarios": self.n_scenarios,
            "policy": str(_get(self.ours, "policy", "fixed")),
            "population": self.population.describe(),
            "attempted": n,
            "won": n_won,
            "survival_rate": n_won / n if n else None,
            "mean_win_probability": self.win_probability / n if n else None,
            "mean_bid_share": self.share / self.n_shares if self.n_shares else None,
            "bids_paid_wei": str(self.bids_paid),
            "failed_cost_wei": str(self.failed_wei * (n - n_won)),
            "net_after_bid_wei": str(self.net_after),
            "expected_payoff_eth": self.expected_payoff / WEI_PER_ETH,
            "mean_competitors_bidding": self.bidders / n if n else None,
        }


def apply(trades: pa.Table, cfg, backend_name: str = "cpu", kind: str | None = None) -> tuple[pa.Table, dict]:
    """(trades with the COLUMNS above appended, summary dict): Auctions over one table."""
    auctions = Auctions(cfg, backend_name, kind)
    return auctions.add(trades), auctions.summary()


def landed(trades: pa.Table) -> pa.Table:
    """The won trades of an `apply` result with net_profit_wei := net_after_bid_wei (the bid is paid to the
    builder) and net_profit_usd scaled by the same ratio; the table `summarize_trades(..., attempted=n)` takes."""
    won = trades if pc.all(trades.column("won")).as_py() is not False else trades.filter(trades.column("won"))
    net, after = won.column("net_profit_wei"), won.column("net_after_bid_wei")
    usd = won.column("net_profit_usd").to_numpy() if won.num_rows else np.zeros(0)
    ratio = np.ones(won.num_rows)  # after / net, exact per trade (Python ints) where a bid changed it
    changed = np.flatnonzero(pc.not_equal(net, after).to_numpy(zero_copy_only=False)) if won.num_rows else []
    if len(changed):
        rows = pa.array(changed)
        ratio[changed] = [int(a) / int(v) if v else 1.0
                          for a, v in zip(after.take(rows).to_pylist(), net.take(rows).to_pylist())]
    won = won.set_column(won.column_names.index("net_profit_wei"), "net_profit_wei", after.cast(AMOUNT))
    return won.set_column(won.column_names.index("net_profit_usd"), "net_profit_usd", pa.array(usd * ratio))


def fields() -> list[pa.Field]:
    """The COLUMNS as Arrow fields (what `Auctions.add` appends)."""
    types = {"won": pa.bool_(), "bid_wei": AMOUNT, "net_after_bid_wei": AMOUNT}
    return [pa.field(name, types.get(name, pa.float64())) for name in COLUMNS]


def _append(trades: pa.Table, columns: dict) -> pa.Table:
    for field in fields():
        name = field.name
        if name in trades.column_names:
            trades = trades.drop_columns([name])
        value, kind = columns[name], field.type
        value = value.cast(kind) if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.array(value, kind)
        trades = trades.append_column(name, value)
    return trades
