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

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.analysis.calibration import CalibrationTally
from gpubt.backend import Backend, resolve_backend
from gpubt.market.auction import (POLICIES, BuilderAuction, auction_params, basis_of, enabled,  # noqa: F401
                                  kernel_searchers, opportunity_ids)
from gpubt.market.searchers import KINDS, SearcherPopulation, draw_population, option, positive  # noqa: F401
from gpubt.schema import AMOUNT, WEI_PER_ETH, amounts_float

COLUMNS = ("win_probability", "expected_payoff_wei", "mean_winning_bid_wei", "competitors_bidding", "won",
           "bid_wei", "net_after_bid_wei")


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
    params = np.ascontiguousarray(params, np.float64)
    args = [opp_id, value_wei, kind, *kernel_searchers(population, params), params]
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


class Auctions(BuilderAuction):
    """The `competition` config on `backend_name`, applied chunk by chunk (`add`: one chunk's trades, in any
    order: every opportunity's randomness is keyed by its id); `summary()` covers every chunk added.

    `kind`: as BuilderAuction's (a `kind` column of `trades` wins). With competition disabled every trade wins at
    bid 0 and the summary says so.
    """

    def __init__(self, cfg, backend_name: str = "cpu", kind: str | None = None):
        super().__init__(cfg, kind)
        self.backend_name = backend_name
        self.attempted = self.won = self.bids_paid = self.net_after = self.n_shares = self.closed = 0
        self.win_probability = self.share = self.expected_payoff = self.bidders = 0.0  # sums
        if self.enabled:
            self.backend = resolve_backend(backend_name)
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

    def _run(self, trades: pa.Table, basis: list, closed_blocks=None) -> tuple[dict, np.ndarray]:
        """(the auction kernel's outputs for `trades` bid on `basis`, bool per trade: in a closed block), with
        the closed blocks' trades lost."""
        n = trades.num_rows
        names = trades.column_names
        kinds = self.kind_ids(kinds=trades.column("kind").to_pylist() if "kind" in names else None,
                              strategies=trades.column("strategy").to_pylist() if "strategy" in names else None, n=n)
        ids = opportunity_ids(trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(),
                              trades.column("path_id").to_numpy()) if n else np.zeros(0, np.int64)
        out = run_auction(np.asarray(basis, np.float64), kinds, ids, self.population, self.params, self.seed,
                          self.n_scenarios, self.backend, int(option(self.cfg, "record_scenarios", 0)))
        if self.backend.name != "cpu":  # the realized outcome is the CPU's, which the ordered pass acted on
            out["our_bid_wei"], out["realized_won"] = self.realized(basis, kinds, ids)
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
