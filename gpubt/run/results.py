"""A run's results on disk while it runs: trades and opportunities spilled in parts, so memory stays flat.

The batch loop writes each partition's results (and the results so far at every checkpoint) as one part,
sorted by (block, tx); parts cover increasing, disjoint block ranges, so reading them in order gives the whole
run in point order. The post-run steps work on `core()` (every trade without its `detail` JSON, the heavy
column) and the final files are streamed part by part (`trade_pieces`, `write_opportunities`).

    trades-00000.parquet  opportunities-00000.parquet  ...   (in the run's work folder)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.data.store import write_stream_atomic, write_table_atomic

ROW = "_row"  # core row number: which trades survive the post-run filters (thresholds), in part order


def in_point_order(table: pa.Table, strategies=None) -> pa.Table:
    """Stable sort by (block, tx): the same order whether or not the run was checkpointed and resumed. With
    `strategies` (names), the rows of one point in that order of their strategy (as the batch loop adds them)."""
    keys = [("block_number", "ascending"), ("tx_index", "ascending")]
    if strategies is not None:
        rank = pc.index_in(table.column("strategy"), value_set=pa.array(list(strategies), pa.string()))
        keyed = table.select(["block_number", "tx_index"]).append_column("rank", rank)
        order = pc.sort_indices(keyed, sort_keys=[*keys, ("rank", "ascending")])
    else:
        order = pc.sort_indices(table, sort_keys=keys)
    return table.take(order).combine_chunks()


def concat(tables: list, table_schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else table_schema.empty_table()


class ResultParts:
    """Numbered trade/opportunity parts in `folder`; `count` of them are valid (a checkpoint may reset it)."""

    NAMES = {"trades": schema.TRADES, "opportunities": schema.OPPORTUNITIES}

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.count = 0
        self._offsets = (None, None)  # (count, first row of each part and the end) once parts stop changing

    def path(self, name: str, i: int) -> Path:
        return self.folder / f"{name}-{i:05d}.parquet"

    def append(self, trades: list, opportunities: list, strategies=None) -> None:
        """Write one part from lists of per-batch tables (sorted into point order here; `strategies`: see
        in_point_order)."""
        write_table_atomic(in_point_order(concat(trades, schema.TRADES), strategies), self.path("trades", self.count))
        write_table_atomic(in_point_order(concat(opportunities, schema.OPPORTUNITIES), strategies),
                           self.path("opportunities", self.count))
        self.count += 1
        self._offsets = (None, None)

    def rows(self, name: str) -> list[int]:
        """Rows per valid part (parquet metadata only)."""
        return [pq.ParquetFile(self.path(name, i)).metadata.num_rows for i in range(self.count)]

    def offsets(self) -> np.ndarray:
        """Row number of each valid part's first trade in the whole run, then the total (cached per count)."""
        if self._offsets[0] != self.count:
            self._offsets = (self.count, np.concatenate([[0], np.cumsum(self.rows("trades"))]).astype(np.int64))
        return self._offsets[1]

    def tables(self, name: str, columns=None):
        """Each valid part of `name` in order (one in memory at a time)."""
        for i in range(self.count):
            yield pq.read_table(self.path(name, i), columns=columns)

    def read(self, name: str, columns=None) -> pa.Table:
        """All valid parts of `name`, concatenated (in point order)."""
        tables = list(self.tables(name, columns))
        return pa.concat_tables(tables).combine_chunks() if tables else self.NAMES[name].empty_table()

    def chunks(self, bounds) -> list[list[int]]:
        """The valid parts grouped by the block ranges `bounds` ((first, last), ascending): a part lies in one
        range, as the controller spills at every partition's end. Parts without trades are left out."""
        firsts = [pq.read_table(self.path("trades", i), columns=["block_number"]).column("block_number")
                  for i in range(self.count)]
        groups = [[] for _ in bounds]
        starts = np.asarray([lo for lo, _ in bounds], np.int64)
        for i, blocks in enumerate(firsts):
            if len(blocks):
                groups[int(np.searchsorted(starts, blocks[0].as_py(), side="right")) - 1].append(i)
        return groups

    def core(self, parts=None, with_estimates=lambda table: table) -> pa.Table:
        """The trades of `parts` (default: all valid ones) without `detail`, plus `with_estimates`'s columns
        (the post-run's: validation's label-comparable estimate, computed from `detail` while it is at hand) and
        `_row` (its row number in the whole run): what thresholds, competition, validation and metrics need, at a
        fraction of the memory."""
        offsets = self.offsets()
        tables = []
        for i in range(self.count) if parts is None else parts:
            part = with_estimates(pq.read_table(self.path("trades", i))).drop_columns(["detail"])
            tables.append(part.append_column(ROW, pa.array(np.arange(offsets[i], offsets[i + 1]), pa.int64())))
        if not tables:
            empty = with_estimates(schema.TRADES.empty_table()).drop_columns(["detail"])
            tables = [empty.append_column(ROW, pa.array([], pa.int64()))]
        return pa.concat_tables(tables)  # one chunk per part: combining them would hold the core twice

    def trade_pieces(self, kept: pa.Table, extra: tuple = ()):
        """trades.parquet's rows of `kept` (a core, `_row` ascending): the parts' rows with `kept`'s `extra`
        columns appended, one part at a time."""
        rows, offsets = kept.column(ROW).to_numpy(), self.offsets()
        done = 0
        for i in np.unique(np.searchsorted(offsets, rows, side="right") - 1).tolist():
            part = pq.read_table(self.path("trades", i))
            hi = done + int(np.searchsorted(rows[done:], offsets[i + 1]))
            # rows are unique and ascending: as many as the part has means all of it (no copy)
            piece = part if hi - done == part.num_rows else part.take(pa.array(rows[done:hi] - offsets[i]))
            for c in extra:
                piece = piece.append_column(kept.schema.field(c), kept.column(c).slice(done, hi - done))
            done = hi
            yield piece

    def write_opportunities(self, path: Path, screened_wei: dict | None = None) -> dict:
        """Stream opportunities.parquet from the parts; returns the count per strategy (and adds each strategy's
        Σ screened net profit, wei, into `screened_wei` when given)."""
        counts: dict = {}

        def pieces():
            for part in self.tables("opportunities"):
                for c in pc.value_counts(part.column("strategy")).to_pylist():
                    counts[c["values"]] = counts.get(c["values"], 0) + c["counts"]
                if screened_wei is not None:
                    # one thread: a float sum in a fixed order, so the funnel's value is the same run after run
                    grouped = part.group_by("strategy", use_threads=False).aggregate(
                        [("screen_net_profit_wei", "sum")])
                    for name, total in zip(grouped.column("strategy").to_pylist(),
                                           grouped.column("screen_net_profit_wei_sum").to_pylist()):
                        screened_wei[name] = screened_wei.get(name, 0.0) + float(total or 0.0)
                yield part

        write_stream_atomic(path, schema.OPPORTUNITIES, pieces())
        return counts

    def remove(self) -> None:
        for f in self.folder.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet"):
            f.unlink()


@dataclass(frozen=True)
class LoopResult:
    """What the batch loop hands the post-run, whichever executor ran it (local: Backtest.result(); dask:
    dist.run_sharded)."""

    parts: ResultParts
    first_block: int
    last_block: int
    stats: dict                # batches, wall_seconds (and the executor's own: tasks, workers_used, ...)
    strategy_stats: dict       # name -> its stats (Strategy.stats: counts of the whole run, this process's seconds)
    restored_screened: dict    # name -> scenarios screened before a resume (not this process's work)
    resumed_from: int | None
    batch_blocks: int          # the final batch size (the memory budget may have shrunk it)
    buffer_allocations: int
    context_seconds: float
    execution: dict = None     # the ordered exact pass: its mode and the market's reaction (Execution.summary)
