"""A run's results on disk while it runs: trades and opportunities spilled in parts, so memory stays flat.

The controller writes each partition's results (and the results so far at every checkpoint) as one part,
sorted by (block, tx); parts cover increasing, disjoint block ranges, so reading them in order gives the whole
run in point order. The post-run steps work on `core()` (every trade without its `detail` JSON, the heavy
column) and the final files are streamed part by part (`write_trades`, `write_opportunities`).

    trades-00000.parquet  opportunities-00000.parquet  ...   (in the run's work folder)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.data.store import write_stream_atomic, write_table_atomic

ROW = "_row"  # core row number: which trades survive the post-run filters (thresholds), in part order


def in_point_order(table: pa.Table) -> pa.Table:
    """Stable sort by (block, tx): the same order whether or not the run was checkpointed and resumed."""
    order = pc.sort_indices(table, sort_keys=[("block_number", "ascending"), ("tx_index", "ascending")])
    return table.take(order).combine_chunks()


def concat(tables: list, table_schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else table_schema.empty_table()


class ResultParts:
    """Numbered trade/opportunity parts in `folder`; `count` of them are valid (a checkpoint may reset it)."""

    NAMES = {"trades": schema.TRADES, "opportunities": schema.OPPORTUNITIES}

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.count = 0

    def path(self, name: str, i: int) -> Path:
        return self.folder / f"{name}-{i:05d}.parquet"

    def append(self, trades: list, opportunities: list) -> None:
        """Write one part from lists of per-batch tables (sorted into point order here)."""
        write_table_atomic(in_point_order(concat(trades, schema.TRADES)), self.path("trades", self.count))
        write_table_atomic(in_point_order(concat(opportunities, schema.OPPORTUNITIES)),
                           self.path("opportunities", self.count))
        self.count += 1

    def rows(self, name: str) -> list[int]:
        """Rows per valid part (parquet metadata only)."""
        return [pq.ParquetFile(self.path(name, i)).metadata.num_rows for i in range(self.count)]

    def tables(self, name: str, columns=None):
        """Each valid part of `name` in order (one in memory at a time)."""
        for i in range(self.count):
            yield pq.read_table(self.path(name, i), columns=columns)

    def read(self, name: str, columns=None) -> pa.Table:
        """All valid parts of `name`, concatenated (in point order)."""
        tables = list(self.tables(name, columns))
        return pa.concat_tables(tables).combine_chunks() if tables else self.NAMES[name].empty_table()

    def core(self) -> pa.Table:
        """Every trade without `detail`, plus validation's label-comparable estimate (computed from `detail`
        while it is at hand) and `_row` (its row number): what thresholds, competition, validation and metrics
        need, at a fraction of the memory."""
        from gpubt.engine.validate import with_estimates

        tables, offset = [], 0
        for part in self.tables("trades") if self.count else [schema.TRADES.empty_table()]:
            part = with_estimates(part).drop_columns(["detail"])
            tables.append(part.append_column(ROW, pa.array(np.arange(offset, offset + part.num_rows), pa.int64())))
            offset += part.num_rows
        return pa.concat_tables(tables)  # one chunk per part: combining them would hold the core twice

    def write_trades(self, path: Path, kept: pa.Table, extra: tuple = ()) -> int:
        """Stream trades.parquet: the parts' rows whose `_row` is in `kept` (ascending), with `kept`'s `extra`
        columns appended. Returns the rows written."""
        rows = kept.column(ROW).to_numpy()
        extra_schema = [kept.schema.field(c) for c in extra]
        out_schema = pa.schema([*schema.TRADES, *extra_schema])
        written, offset = 0, 0

        def pieces():
            nonlocal offset, written
            for part in self.tables("trades"):
                lo, hi = np.searchsorted(rows, [offset, offset + part.num_rows])
                # rows are unique and ascending: as many as the part has means all of it (no copy)
                piece = part if hi - lo == part.num_rows else part.take(pa.array(rows[lo:hi] - offset))
                for c in extra:
                    piece = piece.append_column(kept.schema.field(c), kept.column(c).slice(lo, hi - lo))
                offset += part.num_rows
                written += piece.num_rows
                yield piece

        write_stream_atomic(path, out_schema, pieces())
        return written

    def write_opportunities(self, path: Path) -> dict:
        """Stream opportunities.parquet from the parts; returns the count per strategy."""
        counts: dict = {}

        def pieces():
            for part in self.tables("opportunities"):
                for c in pc.value_counts(part.column("strategy")).to_pylist():
                    counts[c["values"]] = counts.get(c["values"], 0) + c["counts"]
                yield part

        write_stream_atomic(path, schema.OPPORTUNITIES, pieces())
        return counts

    def remove(self) -> None:
        for f in self.folder.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet"):
            f.unlink()
