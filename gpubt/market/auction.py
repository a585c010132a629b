"""The builder's bundle auction as our bundles meet it while the run goes: the `competition` config's searcher
population (gpubt/market/searchers.py) and our bidding, and whether a bundle the ordered pass sends lands (its
realized outcome: kernels/auction.py `realized_opportunity`, the model and formulas there). The post-run's full
auction, with win probabilities and calibration, is gpubt/analysis/competition.py, built on this.
"""
from __future__ import annotations

import json

import numpy as np

from gpubt.backend import cpu_backend
from gpubt.market.searchers import bidding_arrays, default_config, draw_population, option, positive
from gpubt.schema import WEI_PER_ETH

POLICIES = ("fixed", "shade")


def enabled(cfg) -> bool:
    return cfg is not None and bool(option(cfg, "enabled", False))


def auction_params(cfg) -> np.ndarray:
    """The kernel's float64 params array (kernels/auction.py P_* indices) from the `competition` config."""
    from gpubt.kernels import auction as ka

    bidding, ours = option(cfg, "bidding", {}), option(cfg, "ours", {})
    fallback = default_config()["bidding"]   # a bidding key the config leaves out: configs/competition/default.yaml's
    policy = str(option(ours, "policy", "fixed"))
    if policy not in POLICIES:
        raise ValueError(f"competition.ours.policy = {policy!r} (fixed or shade)")
    lo = float(option(bidding, "min_bid_share", fallback["min_bid_share"]))
    hi = float(option(bidding, "max_bid_share", fallback["max_bid_share"]))
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"competition.bidding: min_bid_share = {lo}, max_bid_share = {hi}: need 0 <= min <= max <= 1")
    fraction = float(option(ours, "bid_fraction", 0.9))
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"competition.ours.bid_fraction = {fraction}: must be in [0, 1] (a share of the value)")
    noise = float(option(bidding, "value_noise", fallback["value_noise"]))
    failed = float(option(ours, "failed_cost_eth", 0.0))
    margin = float(option(ours, "shade_margin", 0.01))
    if noise < 0 or failed < 0 or margin < 0:
        raise ValueError("competition: bidding.value_noise, ours.failed_cost_eth and ours.shade_margin must be >= 0")
    params = np.zeros(ka.N_PARAMS)
    params[ka.P_LATENCY_WINDOW_MS] = positive("bidding.latency_window_ms",
                                              option(bidding, "latency_window_ms", fallback["latency_window_ms"]))
    params[ka.P_VALUE_NOISE] = noise
    params[ka.P_MIN_BID_SHARE] = lo
    params[ka.P_MAX_BID_SHARE] = hi
    params[ka.P_POLICY] = ka.POLICY_SHADE if policy == "shade" else ka.POLICY_FIXED
    params[ka.P_OUR_BID_FRACTION] = fraction
    params[ka.P_SHADE_MARGIN] = margin
    params[ka.P_FAILED_COST_WEI] = failed * WEI_PER_ETH
    return params


# splitmix64 of the packed (block, tx + 1, path): the three mixing constants, then (shift, multiplier) twice and
# the last shift; `opportunity_ids` (arrays) and `opportunity_id` (one, in Python ints) share them
_ID_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_ID_ROUNDS = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB))
_ID_LAST_SHIFT = 31


def opportunity_ids(block_number, tx_index, path_id) -> np.ndarray:
    """A stable int64 id per (block, tx, path): splitmix64 of the packed triple, so a trade draws the same
    scenarios whatever batch or row it is in."""
    b, t, p = (np.uint64(c) for c in _ID_MIX)
    with np.errstate(over="ignore"):
        x = (np.asarray(block_number, np.int64).astype(np.uint64) * b
             ^ (np.asarray(tx_index, np.int64).astype(np.uint64) + np.uint64(1)) * t
             ^ np.asarray(path_id, np.int64).astype(np.uint64) * p)
        for shift, mul in _ID_ROUNDS:
            x = (x ^ (x >> np.uint64(shift))) * np.uint64(mul)
        x = x ^ (x >> np.uint64(_ID_LAST_SHIFT))
    return x.view(np.int64)


def kernel_searchers(population, params: np.ndarray) -> tuple:
    """The auction kernel's searcher arguments (see, share, capital, sigma) of `population` bidding as `params`
    (auction_params) says."""
    from gpubt.kernels import auction as ka

    see, share, sigma = bidding_arrays(population, params[ka.P_LATENCY_WINDOW_MS], params[ka.P_MIN_BID_SHARE],
                                       params[ka.P_MAX_BID_SHARE], params[ka.P_VALUE_NOISE])
    return see, share, np.ascontiguousarray(population.capital_wei, np.float64), sigma


def bidders(competition) -> tuple:
    """(population, see, share, sigma) of a `competition` config: its searchers and their bidding as the auction
    kernel takes them and the synthetic market's auction draws them (a key the config leaves out: auction_params)."""
    pop = draw_population(competition)
    see, share, _, sigma = kernel_searchers(pop, auction_params(competition))
    return pop, see, share, sigma


def opportunity_id(block_number: int, tx_index: int, path_id: int) -> int:
    """`opportunity_ids` of one (block, tx, path) in Python ints: the ordered pass asks one at a time, where NumPy's
    set-up costs more than the hash (the same bits: tests/analysis/test_competition.py)."""
    m = (1 << 64) - 1
    b, t, p = _ID_MIX
    x = (((block_number & m) * b) ^ (((tx_index + 1) & m) * t) ^ ((path_id & m) * p)) & m
    for shift, mul in _ID_ROUNDS:
        x = ((x ^ (x >> shift)) * mul) & m
    x ^= x >> _ID_LAST_SHIFT
    return x - (1 << 64) if x >> 63 else x


def basis_of(net: int, detail: str | None) -> int:
    """A trade's exact net profit, except where its detail records a `decision_net_wei` (CEX-DEX: the hedge at the
    reference price when deciding, not at the markout), so a trade whose realized net falls below its bid loses."""
    return int(json.loads(detail)["decision_net_wei"]) if detail and "decision_net_wei" in detail else net


class BuilderAuction:
    """The `competition` config drawn once (population, the kernel's params, seed, scenarios). `kind`: the
    strategy kind every trade is auctioned as (default: a trade's `kind`, else its strategy where that is one of the
    population's kinds, else competition.ours.kind, else "arbitrage"). Disabled (competition=none): every bundle
    lands."""

    def __init__(self, cfg, kind: str | None = None):
        self.cfg, self.kind = cfg, kind
        self.enabled = enabled(cfg)
        if self.enabled:
            self.population, self.params = draw_population(cfg), auction_params(cfg)
            # a config that leaves `scenarios` out gets configs/competition/default.yaml's
            self.seed = int(option(cfg, "seed", 0))
            self.n_scenarios = int(option(cfg, "scenarios", default_config()["scenarios"]))
            self.ours = option(cfg, "ours", {})
            self._kind_of: dict = {}   # strategy -> kind id, for `lands` (a bundle at a time: ~10^4 a run)
            self.searchers = kernel_searchers(self.population, self.params)

    def kind_ids(self, kinds=None, strategies=None, n: int = 0) -> np.ndarray:
        """The population's kind id of each trade, from explicit `kinds`, else the trades' `strategies`."""
        population = self.population
        default = self.kind or str(option(self.ours, "kind", "arbitrage"))
        if kinds is not None:
            return np.array([population.kind_id(k) for k in kinds], np.int32)
        if strategies is not None:  # a trade meets the searchers who chase its strategy's kind
            return np.array([population.kind_id(k if k in population.kinds else default) for k in strategies],
                            np.int32)
        return np.full(n, population.kind_id(default), np.int32)

    def realized(self, value_wei, kinds, ids) -> tuple[np.ndarray, np.ndarray]:
        """(our bid, realized won) of opportunities alone, on the CPU (kernels/auction.py realized_opportunity):
        the outcome the ordered pass acts on when it sends a bundle, and so the one every backend's summary
        reports."""
        n = len(ids)
        bid, won = np.zeros(n), np.zeros(n, np.bool_)
        if n:
            cpu_backend().launch("auction", "realized", n, (
                self.seed, self.n_scenarios, np.ascontiguousarray(ids, np.int64),
                np.ascontiguousarray(value_wei, np.float64), np.ascontiguousarray(kinds, np.int32),
                *self.searchers, np.ascontiguousarray(self.params, np.float64), bid, won))
        return bid, won

    def lands(self, trade: dict, closed_blocks=frozenset()) -> bool:
        """Whether `trade` (a TRADES row as a dict, with its detail), sent at its point, wins the builder's auction:
        no bundle lands in one of `closed_blocks` (BLOCKS takes_bundles False); elsewhere its realized outcome."""
        if not self.enabled:
            return True
        block = int(trade["block_number"])
        if block in closed_blocks:
            return False
        strategy = trade.get("strategy", "arbitrage")
        kind = self._kind_of.get(strategy)
        if kind is None:
            kind = self._kind_of[strategy] = int(self.kind_ids(strategies=[strategy])[0])
        value = float(basis_of(int(trade["net_profit_wei"]), trade.get("detail")))
        ids = np.array([opportunity_id(block, int(trade["tx_index"]), int(trade["path_id"]))], np.int64)
        return bool(self.realized(np.array([value]), np.array([kind], np.int32), ids)[1][0])
