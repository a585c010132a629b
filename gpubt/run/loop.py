"""The batch loop, from a dataset partition to result parts: the local executor.

    dataset partition ─► pack a Batch (gpubt.market: versioned state log, triggers, prices) ─► the events
      re-executed on the pools our earlier trades forked, and the Batch packed again from them (run/execution.py:
      Execution.project) ─► upload its state log once (ContextPool) ─► strategy.evaluate(batch, tables) for every
      strategy, in config order: opportunities and proposals ─► the ordered exact pass sends them, forking the
      pools they touch (Execution.execute) ─► opportunities and trades, spilled in parts (run/results.py)
      ─► the market state and its forks to the next batch ─► checkpoints (run/checkpoint.py)

The loop owns IO and progress; the backend owns device arrays (ARCHITECTURE principle 9). It knows no strategy by
name: what a strategy finds, and its stats, come back through the Strategy interface (strategies/base.py).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from gpubt import schema
from gpubt.schema import WEI_PER_ETH
from gpubt.backend import Backend, ContextPool
from gpubt.data.store import Dataset
from gpubt.exact.gas import GasModel
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.batch import pack_batch
from gpubt.market.pools import PoolTable
from gpubt.market.state import MarketState
from gpubt.run.checkpoint import Checkpointer
from gpubt.run.execution import Execution
from gpubt.run.results import LoopResult, ResultParts, concat, in_point_order
from gpubt.strategies.base import BatchTables, StrategyResult

log = logging.getLogger("gpubt")
SPILL_ROWS = 400_000  # ~40 MB of results held before a part is written (with `parts`): ~1,000 mainnet blocks


class Backtest:
    """One backtest run over a dataset: call `run()`, then read `trades`, `opportunities`, `stats` and
    `strategy_stats()`.

    Per batch: pack the market (gpubt.market.batch), upload its state log once, then `strategy.evaluate(batch,
    tables)` for every strategy in config order; the results are kept as Arrow tables and spilled in parts."""

    def __init__(self, dataset: Dataset, backend: Backend, strategies, gas: GasModel, batch_blocks: int,
                 first_block=None, last_block=None, progress: bool = True, checkpointer: Checkpointer | None = None,
                 memory_budget_mb: float = 2048, monitor=None, parts: ResultParts | None = None, top_block=None,
                 execution: Execution | None = None, label: str = "backtest"):
        self.dataset, self.backend, self.gas = dataset, backend, gas
        self.strategies = list(strategies)  # gpubt.strategies.base.Strategy instances, in config order
        # the ordered exact pass (run/execution.py): counterfactual (our bundles fork the market) or replay
        self.execution = execution if execution is not None else Execution("replay", dataset, self.strategies)
        self._carried_execution = None  # a shard's start: the previous shard's forks (run/sharded.py)
        self.label = label              # the progress bar's name
        self.batch_blocks = int(batch_blocks)
        if self.batch_blocks < 1:
            raise ValueError(f"batch_blocks = {batch_blocks}: must be >= 1")
        self.first_block = dataset.first_block if first_block is None else int(first_block)
        self.last_block = dataset.last_block if last_block is None else int(last_block)
        if not dataset.first_block <= self.first_block <= self.last_block <= dataset.last_block:
            raise schema.SchemaError(
                f"block range {self.first_block}..{self.last_block} is outside the dataset's "
                f"{dataset.first_block}..{dataset.last_block}")
        # the run's first block, where every path is evaluated at the top (a shard of a longer run starts later)
        self.top_block = self.first_block if top_block is None else int(top_block)
        self.progress = progress
        self.memory_budget_bytes = float(memory_budget_mb) * 2**20
        self.monitor = monitor
        self.context = ContextPool(backend)
        # results as Arrow tables, one per batch and strategy (compact: a trade as Python dicts took ~10x the
        # memory, and a mainnet-month partition holds ~500,000 trades and ~1.4M opportunities); with `parts`
        # they are spilled to disk every SPILL_ROWS, partition and checkpoint, so the loop's memory stays flat
        if checkpointer is not None and parts is None:
            raise ValueError("Backtest: a checkpointer needs result parts (checkpoints record how many are valid)")
        self.parts = parts
        self._trade_tables: list[pa.Table] = []
        self._opportunity_tables: list[pa.Table] = []
        self._held_rows = 0  # opportunity-row equivalents held; SPILL_ROWS of them make a part
        # found in this process, per strategy: [opportunities, trades]; and the exact net profit of the run's trades
        self.counts: dict[str, list[int]] = {s.name: [0, 0] for s in self.strategies}
        self.stats = {"batches": 0}
        self.checkpointer = checkpointer
        self.resumed_from = None
        self._restored = (0, 0)           # trades / opportunities restored from a checkpoint (in its parts)
        self._restored_counts: dict = {}  # per strategy: its count stats restored from a checkpoint
        self.net_profit_wei = 0

    def strategy_stats(self) -> dict:
        """name -> the strategy's stats (STAT_KEYS and its own): counts of the whole run (a resumed run adds the
        checkpoint's), seconds of this process's work."""
        out = {}
        for strategy in self.strategies:
            restored = self._restored_counts.get(strategy.name, {})
            out[strategy.name] = {k: v + restored.get(k, 0) if not k.endswith("_seconds") else v
                                  for k, v in strategy.stats.items()}
        return out

    def result(self) -> LoopResult:
        return LoopResult(self.parts, self.first_block, self.last_block, dict(self.stats), self.strategy_stats(),
                          {name: c.get("screened", 0) for name, c in self._restored_counts.items()},
                          self.resumed_from, self.batch_blocks, self.context.allocations, self.context.seconds,
                          self.execution.summary(self.last_block))

    def run(self) -> "Backtest":
        state = MarketState(int(self.dataset.pools.column("pool_id").to_numpy().max()) + 1,
                            int(self.dataset.tokens.column("token_id").to_numpy().max()) + 1)
        pool_is_v3 = PoolTable(self.dataset.pools).is_v3
        start = self.first_block
        restored = self.checkpointer.load(state) if self.checkpointer else None
        if restored:
            start, counters, self.parts.count, carried = restored
            if "_execution" in carried:
                self.execution.restore(carried.pop("_execution"), state)
            for strategy in self.strategies:
                if strategy.name in carried:
                    strategy.restore(carried[strategy.name])
            self.resumed_from = start
            self._restored = (sum(self.parts.rows("trades")), sum(self.parts.rows("opportunities")))
            self.net_profit_wei = int(counters.pop("net_profit_wei"))
            self._restored_counts = counters.pop("strategies", {})
            self.stats.update(counters)
        counterfactual = self.execution.counterfactual
        needs_victims = counterfactual or any(s.needs_victims for s in self.strategies)
        parts = [p for p in self.dataset.partitions if p[1] >= start and p[0] <= self.last_block]
        t0 = time.perf_counter()
        with tqdm(total=self.last_block - self.first_block + 1, initial=start - self.first_block, unit="blk",
                  desc=f"{self.label} [{self.backend.name}]", disable=not self.progress, dynamic_ncols=True) as bar:
            for n, part in enumerate(parts):
                blocks = self.dataset.read_partition("blocks", part)
                events = self.dataset.read_partition("events", part)
                prices = self.dataset.read_partition("prices", part)
                victims = self.dataset.read_partition("victims", part) if needs_victims else None
                labels = self.dataset.read_partition("labels", part) if counterfactual else None
                if n == 0 and not restored:  # start from the partition's snapshot, then catch up to first_block
                    state.load_snapshot(self.dataset.read_partition("snapshots", part))
                    state.apply_events(_rows_in(events, part[0], start - 1))
                    state.apply_prices(_rows_in(prices, part[0], start - 1))
                    if self._carried_execution is not None:  # a shard continues the forks of the one before
                        self.execution.restore(self._carried_execution, state)
                lo, hi = max(part[0], start), min(part[1], self.last_block)
                first = lo
                while first <= hi:
                    last = min(first + self.batch_blocks - 1, hi)
                    tables = BatchTables(_rows_in(blocks, first, last), _rows_in(events, first, last),
                                         _rows_in(victims, first, last) if needs_victims else None,
                                         _rows_in(prices, first, last))
                    batch = pack_batch(first, last, tables.blocks, tables.events, tables.prices, state, pool_is_v3,
                                       self.gas.priority_fee_wei, evaluate_top=first == self.top_block,
                                       dataset=self.dataset)
                    need = batch.device_bytes + sum(s.device_bytes(batch) for s in self.strategies)
                    if need > self.memory_budget_bytes and last > first:
                        self.batch_blocks = max(1, (last - first + 1) // 2)
                        log.warning("batch %d..%d needs %.0f MB (> memory budget %.0f MB): batch_blocks shrinks "
                                    "to %d", first, last, need / 2**20, self.memory_budget_bytes / 2**20,
                                    self.batch_blocks)
                        continue
                    counts_before = ({k: tuple(v) for k, v in self.counts.items()}, self.net_profit_wei)
                    funnel_before = self._funnel()
                    t_batch = time.perf_counter()
                    self.stats["batches"] += 1
                    history = tables.events
                    projected = self.execution.project(batch, history, tables.victims,
                                                       _rows_in(labels, first, last) if counterfactual else None)
                    if projected is not history:  # our earlier trades forked pools: screen the market they left
                        tables = BatchTables(tables.blocks, projected, tables.victims, tables.prices)
                        batch = pack_batch(first, last, tables.blocks, projected, tables.prices, state, pool_is_v3,
                                           self.gas.priority_fee_wei, evaluate_top=first == self.top_block,
                                           dataset=self.dataset)
                    batch.upload(self.context)  # the state log, once for every strategy
                    results = {s.name: self._screen(s, batch, tables) for s in self.strategies}
                    executed = self.execution.execute(batch, {name: r.trades for name, r in results.items()})
                    for strategy in self.strategies:
                        opportunities = _current_opportunities(strategy, batch, results[strategy.name].opportunities,
                                                               self.execution.opportunities.get(strategy.name, []))
                        self._add(strategy.name, opportunities, executed[strategy.name])
                    state.advance(history, batch)
                    self.execution.advance(state)
                    if self.monitor is not None:
                        before = counts_before[0]
                        self.monitor.observe_batch(
                            last - first + 1, time.perf_counter() - t_batch,
                            {k: v[0] - before.get(k, (0, 0))[0] for k, v in self.counts.items()},
                            {k: v[1] - before.get(k, (0, 0))[1] for k, v in self.counts.items()
                             if v[1] > before.get(k, (0, 0))[1]},
                            (self.net_profit_wei - counts_before[1]) / WEI_PER_ETH, first_block=first, last_block=last,
                            funnel_by_strategy={name: {k: n - funnel_before[name][k] for k, n in stages.items()}
                                                for name, stages in self._funnel().items()})
                    bar.update(last - first + 1)
                    bar.set_postfix(opps=self.n_opportunities, trades=self.n_trades,
                                    profit_eth=f"{self.net_profit_wei / 1e18:.3f}")
                    if self.checkpointer and last < self.last_block and self.checkpointer.due(last, self.first_block):
                        self._checkpoint(last + 1, state)
                    elif self._held_rows >= SPILL_ROWS:
                        self._spill()
                    first = last + 1
                self._spill()
                # drop this partition's tables before the next one is read (else both are held at once)
                blocks = events = prices = victims = batch = tables = None
        self.stats["wall_seconds"] = time.perf_counter() - t0
        self.state = state  # at the run's end (a shard hands its forks on: run/sharded.py)
        return self

    def _funnel(self) -> dict:
        """The strategies' funnel counts so far (this process's): the monitor's `gpubt_funnel` stages besides
        over_threshold (the opportunities it is given)."""
        return {s.name: {"screened": s.stats["screened"], "chosen": s.stats["exact_priced"],
                         "exact_confirmed": s.stats["trades"], "executed": s.stats["executed"]}
                for s in self.strategies}

    @property
    def n_trades(self) -> int:
        return self._restored[0] + sum(c[1] for c in self.counts.values())

    @property
    def n_opportunities(self) -> int:
        return self._restored[1] + sum(c[0] for c in self.counts.values())

    def _add(self, name: str, opportunities: pa.Table | None, trades: list[dict]) -> None:
        """Keep one batch's results of strategy `name` (as Arrow tables) and count them."""
        counts = self.counts.setdefault(name, [0, 0])
        if opportunities is not None and opportunities.num_rows:
            self._opportunity_tables.append(opportunities)
            counts[0] += opportunities.num_rows
            self._held_rows += opportunities.num_rows
        if trades:
            for trade in trades:
                trade["strategy"] = name
                self.net_profit_wei += trade["net_profit_wei"]
            self._trade_tables.append(self._trades_table(trades))
            counts[1] += len(trades)
            self._held_rows += 4 * len(trades)  # a trade row (with its detail JSON) weighs ~4 opportunity rows

    @staticmethod
    def _screen(strategy, batch, tables) -> StrategyResult:
        """The strategy's opportunities and proposals (the trades it would take) for one batch."""
        result = strategy.evaluate(batch, tables)
        if result.opportunities.num_rows:
            result.opportunities = schema.conform(result.opportunities, "opportunities", strategy.name)
        return result

    def _spill(self) -> None:
        """Write the results held in memory as one part (with `parts`; else keep holding them)."""
        if self.parts is not None and (self._trade_tables or self._opportunity_tables):
            self.parts.append(self._trade_tables, self._opportunity_tables)
            self._trade_tables, self._opportunity_tables = [], []
            self._held_rows = 0

    def _checkpoint(self, next_block: int, state) -> None:
        self._spill()
        counters = {"batches": self.stats["batches"], "net_profit_wei": str(self.net_profit_wei),
                    "strategies": {name: {k: v for k, v in stats.items() if not k.endswith("_seconds")}
                                   for name, stats in self.strategy_stats().items()}}
        carried = {s.name: c for s in self.strategies if (c := s.carried()) is not None}
        if self.execution.counterfactual:
            carried["_execution"] = self.execution.carried(state)
        self.checkpointer.write(next_block, state, counters, self.parts.count, carried)

    @staticmethod
    def _trades_table(rows) -> pa.Table:
        """TRADES rows (dicts, `strategy` set; a missing key is null)."""
        return pa.Table.from_pylist(rows, schema=schema.TRADES)

    def trades(self) -> pa.Table:
        """Every trade of the run (restored from a checkpoint, then this process's), in (block, tx) order."""
        if self.parts is not None:  # the run spilled everything it found (at its last partition's end)
            return self.parts.read("trades")
        return in_point_order(concat(self._trade_tables, schema.TRADES))

    def opportunities(self) -> pa.Table:
        if self.parts is not None:
            return self.parts.read("opportunities")
        return in_point_order(concat(self._opportunity_tables, schema.OPPORTUNITIES))


def _current_opportunities(strategy, batch, screened: pa.Table, again: list) -> pa.Table:
    """A strategy's opportunities of a batch as the ordered pass left them: those screened on the projected state
    less the ones a fork made stale (`strategy.stale`: (key, path)), plus those screened again on the forks."""
    stale = strategy.stale
    if stale:
        drop = {(batch.first_block + ((k + 1) >> KEY_TX_BITS), k - (((k + 1) >> KEY_TX_BITS) << KEY_TX_BITS), p)
                for k, p in stale}
        rows = zip(screened.column("block_number").to_pylist(), screened.column("tx_index").to_pylist(),
                   screened.column("path_id").to_pylist())
        screened = screened.filter(pa.array([row not in drop for row in rows], pa.bool_()))
        stale.clear()
    if not again:
        return screened
    both = pa.concat_tables([screened, *again])  # in (point, path) order, as evaluate writes them
    return both.take(pc.sort_indices(both, sort_keys=[("block_number", "ascending"), ("tx_index", "ascending"),
                                                       ("path_id", "ascending")]))


def _rows_in(table: pa.Table, first: int, last: int) -> pa.Table:
    """Rows of a block-sorted table with first <= block_number <= last."""
    blocks = table.column("block_number").to_numpy()
    lo = int(np.searchsorted(blocks, first, side="left"))
    hi = int(np.searchsorted(blocks, last, side="right"))
    return table.slice(lo, hi - lo)
