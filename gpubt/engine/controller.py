"""The host controller: the batch loop from a parquet dataset to a results folder.

    dataset partition ─► pack (Batch of flat arrays) ─► upload into reused ContextPool buffers
      ─► screen every (point × path) pair on the backend ─► threshold ─► select per point
      ─► exact re-pricing (Python ints) ─► trades / opportunities, spilled in parts (engine/results.py)
      ─► post-run, partition by partition: thresholds, auction, validation, metrics ─► summary.json + parquet

The controller owns IO and progress; the backend owns device arrays (ARCHITECTURE principle 8).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from gpubt import schema
from gpubt.backend import Backend, resolve_backend
from gpubt.data.store import Dataset, write_table_atomic
from gpubt.dist import SHARDS_FILE
from gpubt.engine.checkpoint import Checkpointer
from gpubt.engine.context import ContextPool
from gpubt.engine.metrics import format_summary, json_safe
from gpubt.engine.monitor import release_memory
from gpubt.engine.results import ROW, ResultParts, concat, in_point_order
from gpubt.engine.verify import GasModel, reprice, screen_floor, select
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.pack import MarketState, pack_batch
from gpubt.strategies.base import BatchTables
from gpubt.paths import Paths, enumerate_cycles

log = logging.getLogger("gpubt")
GWEI = 10**9
SPILL_ROWS = 400_000  # ~40 MB of results held before a part is written (with `parts`): ~1,000 mainnet blocks
WEI_PER_ETH = 10**18


def open_dataset(data_cfg, progress: bool = True) -> Dataset:
    """The dataset the config names; the synthetic source generates (once, then reuses) a seeded dataset. An
    incomplete dataset (an interrupted writer's) is refused unless data.allow_incomplete=true; tokens whose
    decimals disagree with the prices are refused (Dataset.check_prices)."""
    if data_cfg.source == "synthetic":
        dataset = _synthetic_dataset(data_cfg, progress)
    elif data_cfg.source == "parquet":
        if not data_cfg.path:
            raise schema.SchemaError("data=parquet needs data.path=<a gpubt dataset folder>")
        dataset = Dataset(data_cfg.path)
    elif data_cfg.source == "cryo":  # cryo parquet → a gpubt dataset (converted once, cached), see gpubt/data/cryo.py
        from gpubt.data import cryo

        dataset = cryo.open_cached(data_cfg)
    else:
        raise schema.SchemaError(f"data.source={data_cfg.source!r} is unknown (synthetic, parquet or cryo)")
    if not dataset.complete:
        where = (f"{dataset.root / 'manifest.json'}: complete = false (an interrupted writer's dataset, blocks "
                 f"{dataset.first_block}..{dataset.last_block} so far)")
        if not data_cfg.get("allow_incomplete", False):
            raise schema.SchemaError(f"{where}: finish writing it, or add data.allow_incomplete=true to backtest "
                                     "what it holds")
        print(f"gpubt: warning: {where}: backtesting the incomplete dataset (data.allow_incomplete=true)",
              file=sys.stderr, flush=True)
    dataset.check_prices()
    return dataset


def _synthetic_dataset(data_cfg, progress: bool) -> Dataset:
    """data=synthetic: the seeded market at data.path (default: cache_dir/synthetic-<preset>-seed<seed>), generated
    when the folder is new or empty. gpubt replaces only what it generated into its own cache (the default
    folder, marked by synthetic.generate(cache=True)); any other dataset or file there is refused, never deleted."""
    from gpubt.data import synthetic

    cached = not data_cfg.path
    path = Path(data_cfg.path or Path(data_cfg.cache_dir) / f"synthetic-{data_cfg.preset}-seed{data_cfg.seed}")
    key = f"data.cache_dir={data_cfg.cache_dir}: {path}" if cached else f"data.path={path}"
    params = {"preset": data_cfg.preset, "seed": int(data_cfg.seed)}
    if path.exists() and not path.is_dir():
        raise schema.SchemaError(f"{key} is a file, not a dataset folder")
    ours = cached and synthetic.is_own_cache(path)
    if (path / "manifest.json").is_file():
        try:
            existing = Dataset(path)
        except schema.SchemaError:
            if not ours:
                raise
            existing = None
        if existing is not None:
            manifest, has = existing.manifest, existing.manifest.get("params") or {}
            if (existing.complete and manifest.get("source") == "synthetic"
                    and all(has.get(k) == v for k, v in params.items())):
                return existing
            if not ours:
                what = (f"synthetic {has.get('preset')} seed {has.get('seed')}" if manifest.get("source") == "synthetic"
                        else f"source {manifest.get('source')!r}")
                raise schema.SchemaError(
                    f"{key} holds a dataset ({what}{'' if existing.complete else ', incomplete'}) that gpubt did "
                    f"not generate there, so it is "
                    f"never replaced: to backtest it run with data=parquet data.path={path}; for the synthetic "
                    f"{params['preset']} market seed {params['seed']} choose another (new or empty) folder")
    elif path.is_dir() and any(path.iterdir()) and not ours:
        raise schema.SchemaError(f"{key} is not a gpubt dataset (no manifest.json) and not empty: gpubt writes the "
                                 "synthetic market only into a new or empty folder; to backtest a dataset run with "
                                 "data=parquet data.path=<its folder>")
    synthetic.generate(path, preset=data_cfg.preset, seed=int(data_cfg.seed), progress=progress, overwrite=ours,
                       cache=cached)
    return Dataset(path)


def load_strategy(name: str):
    """The Strategy subclass of gpubt/strategies/<name>.py (its `name` attribute equals `name`)."""
    import importlib

    from gpubt.strategies.base import Strategy

    try:
        module = importlib.import_module(f"gpubt.strategies.{name}")
    except ModuleNotFoundError:
        raise ValueError(f"strategy {name!r} is unknown (configs/strategy/ lists the strategies)") from None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy and value.name == name:
            return value
    raise ValueError(f"gpubt/strategies/{name}.py defines no Strategy named {name!r}")


def resolve_tokens(dataset: Dataset, names) -> np.ndarray:
    """Token ids for a list of symbols or ids; an unknown or ambiguous name raises naming the tokens file."""
    symbols = dataset.tokens.column("symbol").to_pylist()
    ids = dataset.tokens.column("token_id").to_pylist()
    hubs = [s for s, hub in zip(symbols, dataset.tokens.column("is_hub").to_pylist()) if hub and s]
    where = dataset.root / "tokens.parquet"
    out = []
    for name in names:
        if isinstance(name, int) or str(name).isdigit():
            if int(name) not in ids:
                raise schema.SchemaError(f"strategy.arbitrage.start_tokens: token id {name} is not in {where}")
            out.append(int(name))
            continue
        matches = [i for s, i in zip(symbols, ids) if s == name]
        if not matches:
            raise schema.SchemaError(f"strategy.arbitrage.start_tokens: no token {name!r} in {where} (its hubs: "
                                     f"{', '.join(hubs[:8]) or 'none'}; a token id works too)")
        if len(matches) > 1:
            raise schema.SchemaError(f"strategy.arbitrage.start_tokens: {len(matches)} tokens of {where} are "
                                     f"{name!r} (ids {', '.join(map(str, matches[:5]))}): name it by its token id")
        out.append(matches[0])
    return np.asarray(out, np.int32)


@dataclass
class DevicePaths:
    """The path arrays, uploaded to the backend once per run."""

    pools: object
    zero_for_one: object
    gamma: object
    is_v3: object
    gas_units: object
    start_slot: object
    start_slot_host: np.ndarray = field(repr=False, default=None)
    v3_max_steps: int = 0  # initialized ticks one V3 hop may cross in the screen (upload: V3_MAX_STEPS)

    @classmethod
    def upload(cls, backend: Backend, paths: Paths, start_tokens: np.ndarray, gas: GasModel) -> "DevicePaths":
        from gpubt.kernels.cycles import V3_MAX_STEPS

        slot_of = {int(t): i for i, t in enumerate(start_tokens.tolist())}
        start_slot = np.asarray([slot_of[int(t)] for t in paths.start_token.tolist()], np.int32)
        gas_units = gas.units(paths.hops, paths.is_v3.sum(axis=1)).astype(np.float64)  # ticks: exact re-pricing
        up = backend.to_device
        return cls(up(paths.pools), up(paths.zero_for_one), up(paths.gamma), up(paths.is_v3), up(gas_units),
                   up(start_slot), start_slot, V3_MAX_STEPS)


class Backtest:
    """One backtest run over a dataset: call `run()`, then read `trades`, `opportunities`, `stats`."""

    def __init__(self, dataset: Dataset, backend: Backend, paths: Paths, start_tokens: np.ndarray,
                 gas: GasModel, min_profit_wei: int, batch_blocks: int, first_block=None, last_block=None,
                 progress: bool = True, checkpointer: Checkpointer | None = None,
                 memory_budget_mb: float = 2048, monitor=None, strategies=(), parts: ResultParts | None = None,
                 top_block=None):
        self.dataset, self.backend, self.paths, self.gas = dataset, backend, paths, gas
        self.start_tokens = start_tokens
        self.min_profit_wei = int(min_profit_wei)
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
        self._counts: dict[str, list[int]] = {}  # strategy -> [opportunities, trades] found in this process
        self.stats = {"pairs_evaluated": 0, "screen_seconds": 0.0, "verify_seconds": 0.0, "batches": 0}
        self.checkpointer = checkpointer
        self.resumed_from = None
        self._restored = (0, 0)           # trades / opportunities restored from a checkpoint (in its parts)
        self.strategies = list(strategies)  # gpubt.strategies.base.Strategy instances besides the cycles
        self._net_profit_wei = 0

    def run(self) -> "Backtest":
        n_tokens = int(self.dataset.tokens.column("token_id").to_numpy().max()) + 1
        n_pools = int(self.dataset.pools.column("pool_id").to_numpy().max()) + 1
        decimals = np.zeros(n_tokens, np.int64)
        decimals[self.dataset.tokens.column("token_id").to_numpy()] = self.dataset.tokens.column("decimals").to_numpy()
        self.token_decimals = decimals
        state = MarketState(n_pools, n_tokens)
        self.device_paths = DevicePaths.upload(self.backend, self.paths, self.start_tokens, self.gas)
        start = self.first_block
        restored = self.checkpointer.load(state) if self.checkpointer else None
        if restored:
            start, counters, self.parts.count, carried = restored
            for strategy in self.strategies:
                if strategy.name in carried:
                    strategy.restore(carried[strategy.name])
            self.resumed_from = start
            self._restored = (sum(self.parts.rows("trades")), sum(self.parts.rows("opportunities")))
            self._net_profit_wei = int(counters.pop("net_profit_wei"))
            self.stats.update(counters)
        parts = [p for p in self.dataset.partitions if p[1] >= start and p[0] <= self.last_block]
        t0 = time.perf_counter()
        with tqdm(total=self.last_block - self.first_block + 1, initial=start - self.first_block, unit="blk",
                  desc=f"backtest [{self.backend.name}]", disable=not self.progress, dynamic_ncols=True) as bar:
            for n, part in enumerate(parts):
                blocks = self.dataset.read_partition("blocks", part)
                events = self.dataset.read_partition("events", part)
                prices = self.dataset.read_partition("prices", part)
                victims = self.dataset.read_partition("victims", part) if self.strategies else None
                if n == 0 and not restored:  # start from the partition's snapshot, then catch up to first_block
                    state.load_snapshot(self.dataset.read_partition("snapshots", part))
                    state.apply_events(_rows_in(events, part[0], start - 1))
                    state.apply_prices(_rows_in(prices, part[0], start - 1))
                lo, hi = max(part[0], start), min(part[1], self.last_block)
                first = lo
                while first <= hi:
                    last = min(first + self.batch_blocks - 1, hi)
                    batch_events = _rows_in(events, first, last)
                    batch = pack_batch(first, last, _rows_in(blocks, first, last), batch_events,
                                       _rows_in(prices, first, last), state, self.paths, self.start_tokens,
                                       decimals, self.gas.priority_fee_wei,
                                       evaluate_top=first == self.top_block, dataset=self.dataset)
                    if batch.device_bytes > self.memory_budget_bytes and last > first:
                        self.batch_blocks = max(1, (last - first + 1) // 2)
                        log.warning("batch %d..%d needs %.0f MB (> memory budget %.0f MB): batch_blocks shrinks "
                                    "to %d", first, last, batch.device_bytes / 2**20,
                                    self.memory_budget_bytes / 2**20, self.batch_blocks)
                        continue
                    counts_before = ({k: tuple(v) for k, v in self._counts.items()}, self._net_profit_wei)
                    t_batch = time.perf_counter()
                    self._evaluate(batch)
                    if self.strategies:
                        tables = BatchTables(_rows_in(blocks, first, last), batch_events,
                                             _rows_in(victims, first, last), _rows_in(prices, first, last),
                                             state.price_usd.copy())
                        for strategy in self.strategies:
                            self._evaluate_strategy(strategy, batch, tables)
                    state.advance(batch_events, batch)
                    if self.monitor is not None:
                        before = counts_before[0]
                        self.monitor.observe_batch(
                            last - first + 1, time.perf_counter() - t_batch,
                            {k: v[0] - before.get(k, (0, 0))[0] for k, v in self._counts.items()},
                            {k: v[1] - before.get(k, (0, 0))[1] for k, v in self._counts.items()
                             if v[1] > before.get(k, (0, 0))[1]},
                            (self._net_profit_wei - counts_before[1]) / WEI_PER_ETH, first_block=first, last_block=last)
                    bar.update(last - first + 1)
                    bar.set_postfix(opps=self.n_opportunities, trades=self.n_trades,
                                    profit_eth=f"{self._net_profit_wei / 1e18:.3f}")
                    if self.checkpointer and last < self.last_block and self.checkpointer.due(last, self.first_block):
                        self._checkpoint(last + 1, state)
                    elif self._held_rows >= SPILL_ROWS:
                        self._spill()
                    first = last + 1
                self._spill()
                # drop this partition's tables before the next one is read (else both are held at once)
                blocks = events = prices = victims = batch = batch_events = tables = None
        self.stats["wall_seconds"] = time.perf_counter() - t0
        return self

    @property
    def n_trades(self) -> int:
        return self._restored[0] + sum(c[1] for c in self._counts.values())

    @property
    def n_opportunities(self) -> int:
        return self._restored[1] + sum(c[0] for c in self._counts.values())

    def _add(self, name: str, opportunities: pa.Table | None, trades: list[dict]) -> None:
        """Keep one batch's results of strategy `name` (as Arrow tables) and count them."""
        counts = self._counts.setdefault(name, [0, 0])
        if opportunities is not None and opportunities.num_rows:
            self._opportunity_tables.append(opportunities)
            counts[0] += opportunities.num_rows
            self._held_rows += opportunities.num_rows
        if trades:
            for trade in trades:
                trade["strategy"] = name
                self._net_profit_wei += trade["net_profit_wei"]
            self._trade_tables.append(self._trades_table(trades))
            counts[1] += len(trades)
            self._held_rows += 4 * len(trades)  # a trade row (with its detail JSON) weighs ~4 opportunity rows

    def _evaluate_strategy(self, strategy, batch, tables) -> None:
        t0 = time.perf_counter()
        result = strategy.evaluate(batch, tables)
        opportunities = result.opportunities
        if opportunities.num_rows:
            opportunities = schema.conform(opportunities, "opportunities", strategy.name)
        self._add(strategy.name, opportunities, result.trades)
        key = f"{strategy.name}_seconds"
        self.stats[key] = self.stats.get(key, 0.0) + time.perf_counter() - t0

    def _spill(self) -> None:
        """Write the results held in memory as one part (with `parts`; else keep holding them)."""
        if self.parts is not None and (self._trade_tables or self._opportunity_tables):
            self.parts.append(self._trade_tables, self._opportunity_tables)
            self._trade_tables, self._opportunity_tables = [], []
            self._held_rows = 0

    def _checkpoint(self, next_block: int, state) -> None:
        self._spill()
        counters = {k: self.stats[k] for k in ("pairs_evaluated", "batches")}
        counters["net_profit_wei"] = str(self._net_profit_wei)
        carried = {s.name: c for s in self.strategies if (c := s.carried()) is not None}
        self.checkpointer.write(next_block, state, counters, self.parts.count, carried)

    def _evaluate(self, batch) -> None:
        ctx, be, dp = self.context, self.backend, self.device_paths
        n = batch.n_pairs
        self.stats["pairs_evaluated"] += n
        self.stats["pairs_screened_here"] = self.stats.get("pairs_screened_here", 0) + n
        self.stats["batches"] += 1
        if n == 0:
            return
        t0 = time.perf_counter()
        out_x = ctx.get("out_amount_in", n, np.float64)
        out_gross = ctx.get("out_gross_raw", n, np.float64)
        out_net = ctx.get("out_net_wei", n, np.float64)
        pairs = (ctx.upload("pair_key", batch.pair_key), ctx.upload("pair_path", batch.pair_path),
                 ctx.upload("pair_block", batch.pair_block))
        state = tuple(ctx.upload(name, array) for name, array in zip(
            ("log_offsets", "log_key", "log_reserve0", "log_reserve1", "log_sqrt_price", "log_liquidity", "log_tick",
             "log_tick_version", "tick_offsets", "tick_index", "tick_sqrt_price", "tick_liquidity_net"),
            batch.kernel_state()))
        rest = (dp.pools, dp.zero_for_one, dp.gamma, dp.is_v3, dp.gas_units, dp.start_slot, *state, dp.v3_max_steps,
                be.to_device(batch.wei_per_raw), be.to_device(batch.gas_price_wei))
        if "compile_seconds" not in self.stats:  # JIT-compile on one pair, so throughput excludes compilation
            be.screen_pairs(*(a[:1] for a in pairs), *rest, out_x[:1], out_gross[:1], out_net[:1])
            self.stats["compile_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        be.screen_pairs(*pairs, *rest, out_x, out_gross, out_net)
        net = be.to_host(out_net)
        gross_all = be.to_host(out_gross)
        gross_wei = gross_all * batch.wei_per_raw[batch.pair_block, self.device_paths.start_slot_host[batch.pair_path]]
        candidates = np.flatnonzero(net > screen_floor(self.min_profit_wei, gross_wei))
        x = be.to_host(out_x)[candidates]
        gross = gross_all[candidates]
        net = net[candidates]
        self.stats["screen_seconds"] += time.perf_counter() - t0
        if len(candidates) == 0:
            self._counts.setdefault("arbitrage", [0, 0])
            return
        t1 = time.perf_counter()
        key, path = batch.pair_key[candidates], batch.pair_path[candidates]
        block_offset = (key + 1) >> KEY_TX_BITS
        opportunities = pa.Table.from_arrays([
            pa.array(["arbitrage"] * len(candidates), pa.string()), batch.first_block + block_offset,
            (key - (block_offset << KEY_TX_BITS)).astype(np.int32), path.astype(np.int32),
            self.paths.start_token[path].astype(np.int32), self.paths.hops[path].astype(np.int32), x, gross, net,
        ], schema=schema.OPPORTUNITIES)
        chosen = select(key, path, net, self.paths)
        trades = reprice(batch, self.paths, path[chosen], key[chosen], x[chosen], self.gas,
                         self.device_paths.start_slot_host)
        taken = []
        for trade, screened in zip(trades, net[chosen].tolist()):
            trade["screen_net_profit_wei"] = screened
            if trade["net_profit_wei"] > self.min_profit_wei:  # the exact figure decides
                taken.append(trade)
        self.stats["exact_rejected"] = self.stats.get("exact_rejected", 0) + len(trades) - len(taken)
        self._add("arbitrage", opportunities, taken)
        self.stats["verify_seconds"] += time.perf_counter() - t1

    @staticmethod
    def _trades_table(rows) -> pa.Table:
        """TRADES rows (dicts, `strategy` set; a missing key is null: cycle trades carry no `detail`)."""
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


class StrategyTally:
    """Per strategy, chunk by chunk: trades attempted, and of the landed ones the count, exact net profit and gas,
    and wins; `table(opportunity_counts)` is summary.json's by_strategy."""

    def __init__(self):
        self.tried: dict[str, int] = {}
        self.landed: dict[str, list] = {}  # name -> [trades, net wei, gas wei, wins]

    def add(self, attempted: pa.Table, landed: pa.Table) -> None:
        for c in pc.value_counts(attempted.column("strategy")).to_pylist():
            self.tried[c["values"]] = self.tried.get(c["values"], 0) + c["counts"]
        amounts = landed.select(["net_profit_wei", "gas_cost_wei"])
        for name in pc.unique(landed.column("strategy")).to_pylist():
            mine = amounts.filter(pc.equal(landed.column("strategy"), name))
            net = mine.column("net_profit_wei")
            row = self.landed.setdefault(name, [0, 0, 0, 0])
            row[0] += mine.num_rows
            row[1] += schema.amount_sum(net)
            row[2] += schema.amount_sum(mine.column("gas_cost_wei"))
            row[3] += pc.sum(pc.greater(net, 0)).as_py() or 0

    def table(self, opportunity_counts: dict, requested=(), notes: dict | None = None) -> dict:
        """Per strategy: opportunities, trades attempted and won (survival rate), exact net profit and gas, win
        rate. Every `requested` strategy has a row, zeros included; `notes`: name -> why it had nothing to do."""
        out = {}
        for name in sorted(set(opportunity_counts) | set(self.tried) | set(requested)):
            n, total, gas, wins = self.landed.get(name, (0, 0, 0, 0))
            n_tried = self.tried.get(name, 0)
            out[name] = {"opportunities": opportunity_counts.get(name, 0), "attempted": n_tried, "trades": n,
                         "survival_rate": n / n_tried if n_tried else None,
                         "net_profit_wei": str(total), "net_profit_eth": total / WEI_PER_ETH,
                         "gas_cost_eth": gas / WEI_PER_ETH, "win_rate": wins / n if n else None}
            if (notes or {}).get(name):
                out[name]["note"] = notes[name]
        return out


def format_by_strategy(by: dict) -> str:
    """The console's per-strategy table; each column as wide as its widest cell (a month has 8-digit counts)."""
    header = ("strategy", "opportunities", "attempted", "won", "survival", "net profit ETH", "gas ETH")
    rows = [(name, f"{r['opportunities']:,}", f"{r['attempted']:,}", f"{r['trades']:,}",
             "n/a" if r["survival_rate"] is None else f"{r['survival_rate']:.1%}", f"{r['net_profit_eth']:.6f}",
             f"{r['gas_cost_eth']:.6f}") for name, r in by.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" ".join(cell.ljust(w) if i == 0 else cell.rjust(w + 2) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    return "\n".join([*lines, *(f"{name}: {r['note']}" for name, r in by.items() if r.get("note"))])


def idle_notes(cfg, setup: "RunSetup", opportunity_counts: dict, first_block: int, last_block: int) -> dict:
    """name -> one line on why a requested strategy found no opportunity, where the data is the reason."""
    notes = {}
    arbitrage = cfg.strategy.get("arbitrage")
    if arbitrage is not None and not opportunity_counts.get("arbitrage") and len(setup.paths) == 0:
        notes["arbitrage"] = (f"no {arbitrage.min_hops}..{arbitrage.max_hops}-hop cycles through the start tokens "
                              "in this dataset")
    for strategy in setup.strategies:
        if not opportunity_counts.get(strategy.name) and (why := strategy.idle_reason(first_block, last_block)):
            notes[strategy.name] = why
    return notes


def _rows_in(table: pa.Table, first: int, last: int) -> pa.Table:
    """Rows of a block-sorted table with first <= block_number <= last."""
    blocks = table.column("block_number").to_numpy()
    lo = int(np.searchsorted(blocks, first, side="left"))
    hi = int(np.searchsorted(blocks, last, side="right"))
    return table.slice(lo, hi - lo)


# settings that do not change results (a resume may change them); executor=dask's results equal executor=local's
RUN_ONLY_KEYS = ("progress", "resume", "checkpoint_every_blocks", "out_dir", "monitor", "report", "sweep", "executor")


@dataclass
class RunSetup:
    """What a config builds before the batch loop: the cycles, gas model, threshold and strategy objects."""

    start_tokens: np.ndarray
    paths: Paths
    gas: GasModel
    min_profit_wei: int
    strategies: list

    @classmethod
    def build(cls, cfg, dataset: Dataset, backend: Backend, names=None, cycles: bool = True) -> "RunSetup":
        """`names`: the strategies (besides the cycles) to construct, default all of cfg.strategy; `cycles`:
        False for none (an empty path set)."""
        arbitrage = cfg.strategy.get("arbitrage") if cycles else None
        start_tokens = resolve_tokens(dataset, list(arbitrage.start_tokens) if arbitrage else ["WETH"])
        paths = enumerate_cycles(dataset.pools, start_tokens if arbitrage else [],
                                 int(arbitrage.max_hops) if arbitrage else 2,
                                 int(arbitrage.min_hops) if arbitrage else 2)
        gas = GasModel(int(cfg.gas.base_units), int(cfg.gas.per_hop_units),
                       int(round(cfg.gas.priority_fee_gwei * GWEI)), int(cfg.gas.v3_hop_units),
                       int(cfg.gas.v3_tick_units))
        min_profit_wei = int(round(float(cfg.thresholds.min_profit_eth) * WEI_PER_ETH))
        names = [n for n in cfg.strategy if n != "arbitrage"] if names is None else names
        strategies = [load_strategy(name)(cfg.strategy[name], dataset, backend, gas, min_profit_wei) for name in names]
        return cls(start_tokens, paths, gas, min_profit_wei, strategies)

    def backtest(self, cfg, dataset: Dataset, backend: Backend, **options) -> Backtest:
        """The batch loop over cfg's block range (`options`: Backtest's keyword arguments)."""
        return Backtest(dataset, backend, self.paths, self.start_tokens, self.gas, self.min_profit_wei,
                        int(cfg.batch_blocks), cfg.data.get("first_block"), cfg.data.get("last_block"),
                        memory_budget_mb=float(cfg.get("memory_budget_mb", 2048)), strategies=self.strategies,
                        **options)


# option values run() checks before anything else: key -> kind (KINDS: what the value must be)
OPTION_KINDS = {
    "batch_blocks": "int>=1", "memory_budget_mb": "num>0", "checkpoint_every_blocks": "int>=0",
    "progress": "bool", "resume": "bool", "thresholds.min_profit_eth": "num>=0",
    "gas.base_units": "int>=0", "gas.per_hop_units": "int>=0", "gas.v3_hop_units": "int>=0",
    "gas.v3_tick_units": "int>=0", "gas.priority_fee_gwei": "num>=0",
    "metrics.initial_capital_eth": "num>0", "metrics.bootstrap_samples": "int>=0", "metrics.seed": "int",
    "validation.enabled": "bool", "validation.min_gap": "int", "validation.max_gap": "int",
    "monitor.port": "port", "monitor.anomaly_k": "num>0", "monitor.anomaly_alpha": "fraction",
    "monitor.anomaly_warmup": "int>=0", "monitor.anomaly_min_std": "num>=0", "report.enabled": "bool",
    "data.seed": "int", "data.first_block": "block", "data.last_block": "block",
    "executor.workers": "int>=0", "executor.threads_per_worker": "int>=0", "executor.task_blocks": "int>=0",
}
KINDS = {  # kind -> (accepts the value, what it must be)
    "int": (lambda v: True, "an integer"),
    "int>=0": (lambda v: v >= 0, "an integer >= 0"),
    "int>=1": (lambda v: v >= 1, "an integer >= 1"),
    "block": (lambda v: v >= 0, "a block number (or null)"),
    "port": (lambda v: 0 <= v <= 65535, "a port number 0..65535 (0: off)"),
    "num>=0": (lambda v: v >= 0, "a finite number >= 0"),
    "num>0": (lambda v: v > 0, "a finite number > 0"),
    "fraction": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "bool": (lambda v: True, "true or false"),
}


def check_options(cfg) -> None:
    """Raise ValueError naming the first option of OPTION_KINDS whose value is the wrong type or out of range."""
    from omegaconf import OmegaConf

    absent = object()
    for key, kind in OPTION_KINDS.items():
        value = OmegaConf.select(cfg, key, default=absent)
        if value is absent or (value is None and kind == "block"):
            continue
        accepts, must = KINDS[kind]
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind.startswith(("num", "fraction")):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or not accepts(value):
            raise ValueError(f"{key}={value}: must be {must}")


def check_ranges(cfg) -> None:
    """Raise SchemaError naming the options whose values disagree with each other (each alone: check_options)."""
    arbitrage = cfg.strategy.get("arbitrage")
    if arbitrage:
        lo, hi = int(arbitrage.min_hops), int(arbitrage.max_hops)
        for key, hops in (("min_hops", lo), ("max_hops", hi)):
            if hops < 2:
                raise schema.SchemaError(f"strategy.arbitrage.{key}={hops}: a cycle has at least 2 hops")
        if lo > hi:
            raise schema.SchemaError(f"strategy.arbitrage.min_hops={lo} is more than strategy.arbitrage.max_hops="
                                     f"{hi}: no cycle has min_hops..max_hops hops")
    first, last = cfg.data.get("first_block"), cfg.data.get("last_block")
    if first is not None and last is not None and int(first) > int(last):
        raise schema.SchemaError(f"data.first_block={first} is after data.last_block={last}: the range is "
                                 "first_block..last_block")


@dataclass(frozen=True)
class RunResult:
    """What a finished run returns: its published results folder, the summary written to summary.json, the console
    text the command line prints (ending with the `results  <out_dir>` line), and the paths of the main outputs."""
    out_dir: Path
    summary: dict
    console: str
    summary_path: Path
    trades_path: Path
    opportunities_path: Path
    report_path: Path | None  # None with report.enabled=false


def run(cfg) -> RunResult:
    """Run the backtest `cfg` describes and write its results folder; returns a RunResult (prints no summary).

    The run works in a hidden `.<out_dir>.partial` folder, locked by this process, renamed into place as its very
    last step, so a failed run leaves no results folder and two runs never share one. With
    `checkpoint_every_blocks` > 0 it checkpoints there, and `resume=true` (same config and out_dir) continues an
    interrupted run to identical results.
    """
    from omegaconf import OmegaConf

    from gpubt.engine.checkpoint import CHECKPOINT_FILE, OutDirError, claim_work_folder
    from gpubt.engine.monitor import Monitor
    from gpubt.engine.validate import format_scores

    check_options(cfg)
    check_ranges(cfg)  # before the dataset: a synthetic run would build its cache first
    progress = bool(cfg.progress)
    resume = bool(cfg.get("resume", False))
    out_dir = Path(cfg.out_dir)
    sharded = cfg.get("executor", {}).get("name", "local") == "dask"
    work, lock = claim_work_folder(out_dir, resume, "dask" if sharded else "local",
                                   {"local": CHECKPOINT_FILE, "dask": SHARDS_FILE})
    marker = work / (SHARDS_FILE if sharded else CHECKPOINT_FILE)
    try:
        backend = resolve_backend(cfg.backend.name)
        print(f"gpubt: backend {backend.name} ({backend.reason})", flush=True)
        dataset = open_dataset(cfg.data, progress)
        setup = RunSetup.build(cfg, dataset, backend)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        fingerprint = {k: v for k, v in resolved.items() if k not in RUN_ONLY_KEYS}
        every = int(cfg.get("checkpoint_every_blocks", 0))
        checkpointer = Checkpointer(work, every, fingerprint) if (every > 0 or resume) and not sharded else None
        m = cfg.monitor
        monitor = Monitor(int(m.port), anomaly_k=float(m.anomaly_k), anomaly_alpha=float(m.anomaly_alpha),
                          anomaly_warmup=int(m.anomaly_warmup), anomaly_min_std=float(m.anomaly_min_std)).start()
        if monitor.url:
            print(f"gpubt: Prometheus metrics at {monitor.url}", flush=True)
        parts = ResultParts(work)
        try:
            if sharded:  # every finished task is a resume point
                from gpubt.dist import run_sharded

                first = dataset.first_block if cfg.data.get("first_block") is None else int(cfg.data.first_block)
                last = dataset.last_block if cfg.data.get("last_block") is None else int(cfg.data.last_block)
                if not dataset.first_block <= first <= last <= dataset.last_block:
                    raise schema.SchemaError(f"block range {first}..{last} is outside the dataset's "
                                             f"{dataset.first_block}..{dataset.last_block}")
                backtest = run_sharded(cfg, dataset, work, fingerprint, setup.strategies, first, last, resume,
                                       progress, monitor)
            else:
                backtest = setup.backtest(cfg, dataset, backend, progress=progress, checkpointer=checkpointer,
                                          monitor=monitor, parts=parts).run()
        except BaseException:
            if marker.is_file():
                print(f"gpubt: the run stopped; its last checkpoint is in {work} (resume=true continues it)",
                      file=sys.stderr, flush=True)
            raise
        finally:
            monitor.stop()
        scores, summary = _post_run(cfg, work, out_dir, backend, dataset, backtest, setup)
        # the console text is formatted before publishing: nothing that can fail runs after it
        console = [format_summary(summary)]
        by = summary["by_strategy"]
        if len(by) > 1 or any(r.get("note") for r in by.values()):
            console.append(format_by_strategy(by))
        if scores is not None and (lines := format_scores(scores, ran=list(cfg.strategy))):
            console.append(lines)
        if checkpointer:
            checkpointer.remove()
        (work / SHARDS_FILE).unlink(missing_ok=True)
        parts.remove()
        try:
            os.replace(work, out_dir)  # publish: the last step (the lock is held until after it)
        except OSError as exc:
            raise OutDirError(f"out_dir {out_dir}: cannot publish the results there ({exc.strerror or exc}); "
                              "the run's results were discarded") from None
    finally:
        if work.exists() and not marker.is_file():
            shutil.rmtree(work, ignore_errors=True)
        lock.release()
    console.append(f"results  {out_dir}")
    return RunResult(out_dir=out_dir, summary=summary, console="\n".join(console),
                     summary_path=out_dir / "summary.json", trades_path=out_dir / "trades.parquet",
                     opportunities_path=out_dir / "opportunities.parquet",
                     report_path=out_dir / "report.html" if cfg.report.enabled else None)


def _post_run(cfg, work, out_dir, backend, dataset, backtest, setup: RunSetup):
    """Thresholds, the builder auction, validation, metrics and the files, from the run's result parts.

    One dataset partition at a time: its trades' core (no `detail`: gpubt/engine/results.py), its labels and
    events. The chunk's trades are streamed into trades.parquet and the validation files; the metrics keep
    exact sums and three numbers per landed trade (engine/metrics.py TradeTotals). So memory stays near one
    partition's results, whatever the run's length. Returns (validation scores or None, summary)."""
    from omegaconf import OmegaConf

    from gpubt.data.store import ParquetStream
    from gpubt.engine import competition
    from gpubt.engine.metrics import TradeTotals
    from gpubt.engine.validate import EVENT_COLUMNS, ValidationWriter, Validator

    parts = backtest.parts
    first, last = backtest.first_block, backtest.last_block
    blocks = dataset.read_range("blocks", first, last)
    bounds = [(max(lo, first), min(hi, last)) for lo, hi in dataset.partitions if hi >= first and lo <= last]
    kept_rows, threshold, threshold_info = _thresholds(cfg.thresholds, parts, dataset, blocks, first, last,
                                                       setup.min_profit_wei, setup.gas.priority_fee_wei)
    auctions = competition.Auctions(cfg.get("competition"), backend.name)
    totals, by_strategy = TradeTotals(), StrategyTally()
    validator = None
    if cfg.validation.enabled and dataset.read_range("labels", first, last, ["block_number"]).num_rows:
        validator = Validator(min_gap=int(cfg.validation.min_gap), max_gap=int(cfg.validation.max_gap))
    trades_schema = pa.schema([*schema.TRADES, *competition.fields()])
    chunks = list(zip(bounds, parts.chunks(bounds)))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(ParquetStream(work / "trades.parquet", trades_schema))
        checks = stack.enter_context(ValidationWriter(work)) if validator else None
        for n, ((lo, hi), group) in enumerate(tqdm(chunks, desc="post-run", unit="partition",
                                                   disable=not cfg.progress or len(chunks) < 2)):
            core = parts.core(group)
            if kept_rows is not None:
                core = core.filter(pc.is_in(core.column(ROW), value_set=kept_rows))
            trades = auctions.add(core)
            landed = competition.landed(trades)
            totals.add(landed)
            by_strategy.add(trades, landed)
            for piece in parts.trade_pieces(trades, competition.COLUMNS):
                out.write(piece)
            if validator:  # CEX-DEX: pools untouched since our point, from the events
                events = dataset.read_range("events", lo, hi, EVENT_COLUMNS)
                checks.add(*validator.add(trades.drop_columns([ROW]), dataset.read_range("labels", lo, hi), events,
                                          final=n == len(chunks) - 1))
            core = trades = landed = events = None
            release_memory()  # Arrow's pool and malloc keep freed pages: give them back
        scores = validator.scores() if validator else None
        if validator:
            checks.finish(scores)
    daily = totals.daily(blocks, float(cfg.metrics.initial_capital_eth), first, last)
    write_table_atomic(daily, work / "daily_pnl.parquet")
    opportunity_counts = parts.write_opportunities(work / "opportunities.parquet")
    threshold.save(work / "thresholds.json")
    notes = idle_notes(cfg, setup, opportunity_counts, first, last)
    summary = _summary(cfg, backend, dataset, backtest, setup, notes, totals,
                       by_strategy, opportunity_counts, blocks, daily, threshold_info, scores, auctions.summary())
    del totals, by_strategy  # the per-trade floats, before the report reads its own
    release_memory()
    (work / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (work / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    if cfg.report.enabled:
        from gpubt.report.html import write_report

        write_report(work, display_dir=out_dir)  # re-reads what it plots from the files just written
    return scores, summary


def _thresholds(cfg, parts, dataset, blocks, first, last, min_profit_wei, priority_fee_wei):
    """(kept core rows or None for all, threshold model, info): the `thresholds` group on the run's trades. A
    dynamic model reads what it fits on and filters by for the whole run: the trades' block, tx, pools and
    exact net profit, and the labels."""
    from gpubt.engine.thresholds import apply_config
    from gpubt.engine.validate import load_labels

    if cfg.kind == "static":
        _, threshold, info = apply_config(cfg, None, None, blocks, None, min_profit_wei, priority_fee_wei)
        return None, threshold, info
    lean = parts.read("trades", ["block_number", "tx_index", "pools", "net_profit_wei"])
    lean = lean.append_column(ROW, pa.array(np.arange(lean.num_rows), pa.int64()))
    kept, threshold, info = apply_config(cfg, lean, load_labels(dataset, first, last), blocks,
                                         lambda: dataset.read_range("prices", first, last), min_profit_wei,
                                         priority_fee_wei)
    return kept.column(ROW).combine_chunks(), threshold, info


def _summary(cfg, backend, dataset, backtest, setup: RunSetup, notes: dict, totals, by_strategy,
             opportunity_counts, blocks, daily, threshold_info, scores, competition_summary) -> dict:
    """summary.json: metrics of the trades that landed (after the builder bid: `totals`), run facts, timing.
    `by_strategy`: a StrategyTally; `opportunity_counts`: per strategy; `daily`: totals.daily() of the run, as
    written; `scores`: validation's (or None); `notes`: why a requested strategy had nothing to do."""
    stats, gas = backtest.stats, setup.gas
    n_blocks = backtest.last_block - backtest.first_block + 1
    blocks_here = backtest.last_block - (backtest.resumed_from or backtest.first_block) + 1
    summary = {
        "metrics": totals.summary(sum(opportunity_counts.values()), stats["pairs_evaluated"], n_blocks,
                                  attempted=competition_summary["attempted"], blocks=blocks,
                                  first_block=backtest.first_block, last_block=backtest.last_block, daily=daily,
                                  initial_capital_eth=float(cfg.metrics.initial_capital_eth),
                                  bootstrap_samples=int(cfg.metrics.bootstrap_samples), seed=int(cfg.metrics.seed)),
        "run": {
            "backend": backend.name, "backend_reason": backend.reason,
            "dataset": str(dataset.root), "dataset_params": dataset.manifest.get("params", {}),
            "first_block": backtest.first_block, "last_block": backtest.last_block,
            "resumed_from_block": backtest.resumed_from,
            "strategies": list(cfg.strategy),
            "paths": len(setup.paths), "start_tokens": setup.start_tokens.tolist(),
            "min_profit_wei": str(setup.min_profit_wei),
            "threshold": threshold_info,
            "gas_model": {"base_units": gas.base_units, "per_hop_units": gas.per_hop_units,
                          "v3_hop_units": gas.v3_hop_units, "v3_tick_units": gas.v3_tick_units,
                          "priority_fee_wei": gas.priority_fee_wei},
        },
        "timing": {  # this process's work (a resumed run times only what it did itself)
            "wall_seconds": stats["wall_seconds"],
            "blocks_per_second": blocks_here / stats["wall_seconds"] if stats["wall_seconds"] else None,
            "compile_seconds": stats.get("compile_seconds", 0.0),
            "screen_seconds": stats["screen_seconds"],
            "pairs_per_second": stats.get("pairs_screened_here", 0) / stats["screen_seconds"]
            if stats["screen_seconds"] else None,
            "verify_seconds": stats["verify_seconds"],
            "exact_rejected": stats.get("exact_rejected", 0),
            "batches": stats["batches"],
            "final_batch_blocks": backtest.batch_blocks,
            "buffer_allocations": backtest.context.allocations,
            "context_seconds": backtest.context.seconds,
            "context_us_per_block": 1e6 * backtest.context.seconds / blocks_here,
        },
    }
    for key in ("tasks", "workers_used", "worker_utilization"):  # executor=dask (gpubt/dist.py)
        if key in stats:
            summary["timing"][key] = stats[key]
    summary["competition"] = competition_summary
    summary["by_strategy"] = by_strategy.table(opportunity_counts, list(cfg.strategy), notes)
    if scores is not None:
        summary["validation"] = scores
    return json_safe(summary)
