"""Bundle competition: do our trades survive a first-price sealed-bid auction against a searcher population?

The `competition` config group (configs/competition/{none,default}.yaml) describes a population of N competing
searchers (gpubt/market/searchers.py: skill, latency, capital, specialization), drawn once per run from
competition.seed; the synthetic market planted its labels with the default one, so history and the auction tell
one story.
Each trade is auctioned on the value b known when bidding (`bid_basis`: its exact net profit after gas v, but for
CEX-DEX the hedge at the decision's reference price) in S Monte Carlo scenarios on the backend (kernels/auction.py
has the model and its formulas), giving per trade:
  win_probability       wins ÷ S
  expected_payoff_wei   mean over S of (v − our bid if won, else −failed_cost_wei)
  mean_winning_bid_wei  mean bid of the competitor that beat us, over the scenarios we lost (0 if none)
  competitors_bidding   mean number of competitors that saw it and bid
  won, bid_wei, net_after_bid_wei   the realized outcome: one more scenario of the same counter RNG (its own
                        phase), bid_wei = floor(our bid) (<= b), net_after_bid_wei = v − bid_wei if won, else
                        −failed_cost_wei (exact integers)
Summary: attempted (= trades), won (the survival-rate numerator), mean bid share (bid_wei ÷ b over the won
trades), totals, and `calibration`: how well win_probability predicts won, per strategy (analysis/calibration.py).
`landed(trades)` is the table the trade metrics use: the won trades, net profit after the bid.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.analysis.calibration import CalibrationTally
from gpubt.backend import Backend, cpu_backend, resolve_backend
from gpubt.market.searchers import KINDS, SearcherPopulation, draw_population, option, positive  # noqa: F401
from gpubt.schema import AMOUNT, WEI_PER_ETH, amounts_float

POLICIES = ("fixed", "shade")
COLUMNS = ("win_probability", "expected_payoff_wei", "mean_winning_bid_wei", "competitors_bidding", "won",
           "bid_wei", "net_after_bid_wei")


def auction_params(cfg) -> np.ndarray:
    """The kernel's float64 params array (kernels/auction.py P_* indices) from the `competition` config."""
    from gpubt.kernels import auction as ka

    bidding, ours = option(cfg, "bidding", {}), option(cfg, "ours", {})
    policy = str(option(ours, "policy", "fixed"))
    if policy not in POLICIES:
        raise ValueError(f"competition.ours.policy = {policy!r} (fixed or shade)")
    lo, hi = float(option(bidding, "min_bid_share", 0.5)), float(option(bidding, "max_bid_share", 0.99))
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"competition.bidding: min_bid_share = {lo}, max_bid_share = {hi}: need 0 <= min <= max <= 1")
    fraction = float(option(ours, "bid_fraction", 0.9))
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"competition.ours.bid_fraction = {fraction}: must be in [0, 1] (a share of the value)")
    noise = float(option(bidding, "value_noise", 0.5))
    failed = float(option(ours, "failed_cost_eth", 0.0))
    margin = float(option(ours, "shade_margin", 0.01))
    if noise < 0 or failed < 0 or margin < 0:
        raise ValueError("competition: bidding.value_noise, ours.failed_cost_eth and ours.shade_margin must be >= 0")
    params = np.zeros(ka.N_PARAMS)
    params[ka.P_LATENCY_WINDOW_MS] = positive("bidding.latency_window_ms", option(bidding, "latency_window_ms", 100.0))
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


BASIS = "bid_basis_wei"   # the post-run's core has no `detail`: the basis is taken while it is at hand


def with_bid_basis(trades: pa.Table) -> pa.Table:
    """`trades` (with `detail`) plus BASIS, each trade's `bid_basis`."""
    net = [int(v) for v in trades.column("net_profit_wei").to_pylist()]
    return trades.append_column(BASIS, pa.array(bid_basis(trades, net), AMOUNT))


def bid_basis(trades: pa.Table, net: list) -> list:
    """The value each trade is bid on: what is known at its point (`basis_of`)."""
    if "detail" not in trades.column_names:
        return net
    return [basis_of(v, d) for v, d in zip(net, trades.column("detail").to_pylist())]


def basis_of(net: int, detail: str | None) -> int:
    """A trade's exact net profit, except where its detail records a `decision_net_wei` (CEX-DEX: the hedge at the
    reference price when deciding, not at the markout), so a trade whose realized net falls below its bid loses."""
    return int(json.loads(detail)["decision_net_wei"]) if detail and "decision_net_wei" in detail else net


def enabled(cfg) -> bool:
    return cfg is not None and bool(option(cfg, "enabled", False))


class Auctions:
    """The `competition` config on `backend_name`, applied chunk by chunk (`add`: one chunk's trades, in any
    order: every opportunity's randomness is keyed by its id); `summary()` covers every chunk added.

    `kind`: the strategy kind of every trade (default: a `kind` column of `trades`, else its `strategy` where that
    is one of the population's kinds, else competition.ours.kind, else "arbitrage"). With competition disabled every trade wins at bid 0 and the summary says so.
    """

    def __init__(self, cfg, backend_name: str = "cpu", kind: str | None = None):
        self.cfg, self.backend_name, self.kind = cfg, backend_name, kind
        self.enabled = enabled(cfg)
        self.attempted = self.won = self.bids_paid = self.net_after = self.n_shares = self.closed = 0
        self.win_probability = self.share = self.expected_payoff = self.bidders = 0.0  # sums
        if self.enabled:
            self.population, self.params = draw_population(cfg), auction_params(cfg)
            self.seed, self.n_scenarios = int(option(cfg, "seed", 0)), int(option(cfg, "scenarios", 1000))
            self.backend = resolve_backend(backend_name)
            self.ours = option(cfg, "ours", {})
            self.failed_wei = int(round(float(option(self.ours, "failed_cost_eth", 0.0)) * WEI_PER_ETH))
            self.calibration = CalibrationTally()

    def add(self, trades: pa.Table, closed_blocks=None) -> pa.Table:
        """`trades` with the COLUMNS above appended. A trade in one of `closed_blocks` (BLOCKS takes_bundles False:
        the builder took no bundles) cannot land: won False, win probability 0."""
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
        basis = ([int(v) for v in trades.column(BASIS).to_pylist()] if BASIS in trades.column_names
                 else bid_basis(trades, net))
        out, shut = self._run(trades, basis, closed_blocks)
        self.closed += int(shut.sum())
        won = out["realized_won"]
        bid_wei = [min(max(math.floor(b), 0), max(v, 0)) for b, v in zip(out["our_bid_wei"].tolist(), basis)]
        after = [v - b if w else -self.failed_wei for v, b, w in zip(net, bid_wei, won.tolist())]
        # the share of the value it bid on (CEX-DEX's realized markout can fall far below it, or below 0)
        shares = [b / v for b, v, w in zip(bid_wei, basis, won.tolist()) if w and v > 0]
        self.won += int(won.sum())
        self.bids_paid += sum(b for b, w in zip(bid_wei, won.tolist()) if w)
        self.net_after += sum(after)
        self.n_shares += len(shares)
        self.share += float(np.sum(shares))
        self.win_probability += float(out["win_probability"].sum())
        self.expected_payoff += float(out["expected_payoff_wei"].sum())
        self.bidders += float(out["mean_bidders"].sum())
        self.calibration.add(out["win_probability"], won,
                             trades.column("strategy") if "strategy" in trades.column_names else None)
        columns = {"win_probability": out["win_probability"], "expected_payoff_wei": out["expected_payoff_wei"],
                   "mean_winning_bid_wei": out["mean_winning_bid_wei"], "competitors_bidding": out["mean_bidders"],
                   "won": won, "bid_wei": bid_wei, "net_after_bid_wei": after}
        return _append(trades, columns)

    def _kinds(self, trades: pa.Table) -> np.ndarray:
        """The population's kind id of each trade (see the class docstring)."""
        population = self.population
        default = self.kind or str(option(self.ours, "kind", "arbitrage"))
        if "kind" in trades.column_names:
            return np.array([population.kind_id(k) for k in trades.column("kind").to_pylist()], np.int32)
        if "strategy" in trades.column_names:  # a trade meets the searchers who chase its strategy's kind
            return np.array([population.kind_id(k if k in population.kinds else default)
                             for k in trades.column("strategy").to_pylist()], np.int32)
        return np.full(trades.num_rows, population.kind_id(default), np.int32)

    def _realized(self, value_wei, kinds, ids) -> tuple[np.ndarray, np.ndarray]:
        """(our bid, realized won) alone, on the CPU (kernels/auction.py realized_opportunity): the outcome the
        ordered pass acts on when it sends a bundle, and so the one every backend's summary reports."""
        n = len(ids)
        bid, won = np.zeros(n), np.zeros(n, np.bool_)
        if n:
            cpu_backend().launch("auction", "realized", n, (
                self.seed, self.n_scenarios, np.ascontiguousarray(ids, np.int64),
                np.ascontiguousarray(value_wei, np.float64), np.ascontiguousarray(kinds, np.int32),
                self.population.skill, self.population.latency_ms, self.population.capital_wei,
                self.population.focus, np.ascontiguousarray(self.params, np.float64), bid, won))
        return bid, won

    def lands(self, trade: dict, closed_blocks=frozenset()) -> bool:
        """Whether `trade` (a TRADES row as a dict, with its detail), sent at its point, wins the builder's auction:
        the realized outcome `add` reports for it, computed alone as the ordered pass sends it (counted in no
        summary). With competition disabled every trade lands."""
        if not self.enabled:
            return True
        if int(trade["block_number"]) in closed_blocks:
            return False
        row = pa.table({"strategy": [trade.get("strategy", "arbitrage")]})
        ids = opportunity_ids([trade["block_number"]], [trade["tx_index"]], [trade["path_id"]])
        value = [float(basis_of(int(trade["net_profit_wei"]), trade.get("detail")))]
        return bool(self._realized(value, self._kinds(row), ids)[1][0])

    def _run(self, trades: pa.Table, basis: list, closed_blocks=None) -> tuple[dict, np.ndarray]:
        """(the auction kernel's outputs for `trades` bid on `basis`, bool per trade: in a closed block), with
        the closed blocks' trades lost."""
        n = trades.num_rows
        kinds = self._kinds(trades)
        ids = opportunity_ids(trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(),
                              trades.column("path_id").to_numpy()) if n else np.zeros(0, np.int64)
        out = run_auction(np.asarray(basis, np.float64), kinds, ids, self.population, self.params, self.seed,
                          self.n_scenarios, self.backend, int(option(self.cfg, "record_scenarios", 0)))
        if self.backend.name != "cpu":  # the realized outcome is the CPU's, which the ordered pass acted on
            out["our_bid_wei"], out["realized_won"] = self._realized(basis, kinds, ids)
        shut = np.zeros(n, bool)
        if closed_blocks is not None and len(closed_blocks) and n:
            shut = np.isin(trades.column("block_number").to_numpy(), np.asarray(closed_blocks))
            out = dict(out, realized_won=out["realized_won"] & ~shut,
                       win_probability=np.where(shut, 0.0, out["win_probability"]),
                       expected_payoff_wei=np.where(shut, -float(self.failed_wei), out["expected_payoff_wei"]),
                       mean_bidders=np.where(shut, 0.0, out["mean_bidders"]))
        return out, shut

    def outcomes_at(self, trades: pa.Table, values: list, closed_blocks=None) -> tuple[np.ndarray, list]:
        """(won, net after bid wei) per row of `trades` had each been worth `values` (exact net wei, its bid
        basis; None: not sent, so not won and 0): the same auction, scenario for scenario, as `add`, counted in no
        summary. The policy's capital split prices a trade at other capitals with it."""
        sent = [i for i, v in enumerate(values) if v is not None]
        won, after = np.zeros(len(values), bool), [0] * len(values)
        if not sent:
            return won, after
        value = [int(values[i]) for i in sent]
        if self.enabled:
            out, _ = self._run(trades.take(pa.array(sent, pa.int64())), value, closed_blocks)
            won_sent = out["realized_won"]
            bids = [min(max(math.floor(b), 0), max(v, 0)) for b, v in zip(out["our_bid_wei"].tolist(), value)]
            after_sent = [v - b if w else -self.failed_wei for v, b, w in zip(value, bids, won_sent.tolist())]
        else:
            won_sent, after_sent = np.ones(len(sent), bool), value
        for i, w, a in zip(sent, won_sent.tolist(), after_sent):
            won[i], after[i] = w, a
        return won, after

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
            "policy": str(option(self.ours, "policy", "fixed")),
            "population": self.population.describe(),
            "attempted": n,
            "won": n_won,
            "in_closed_blocks": self.closed,   # attempts in blocks whose builder took no bundles (none landed)
            "survival_rate": n_won / n if n else None,
            "mean_win_probability": self.win_probability / n if n else None,
            "mean_bid_share": self.share / self.n_shares if self.n_shares else None,
            "bids_paid_wei": str(self.bids_paid),
            "failed_cost_wei": str(self.failed_wei * (n - n_won)),
            "net_after_bid_wei": str(self.net_after),
            "expected_payoff_eth": self.expected_payoff / WEI_PER_ETH,
            "mean_competitors_bidding": self.bidders / n if n else None,
            "calibration": self.calibration.summary(),
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
