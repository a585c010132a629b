"""The on-disk columnar store: a parquet dataset partitioned by block range.

Layout of a dataset folder:

    manifest.json                 source, parameters, block range, partitions [[first, last], ...]
    tokens.parquet  pools.parquet static tables
    <table>/<first>-<last>.parquet one file per partition for blocks, events, snapshots, victims, labels, prices

Every file is written to a temporary name and renamed, and the manifest is rewritten (atomically) after each
partition, so an interrupted writer leaves a readable dataset that ends at its last complete partition. Parquet
pages carry a CRC32, checked on read: a corrupted byte is an error, never a silently different number.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpubt import schema

PARTITIONED = ("blocks", "events", "snapshots", "ticks", "victims", "labels", "prices")
OPTIONAL_TABLES = ("ticks",)  # V2-only producers may omit them: written (and read) as empty
FORMAT = "gpubt-dataset"
VERSION = 1


def partition_name(first: int, last: int) -> str:
    return f"{first:010d}-{last:010d}.parquet"


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write parquet to `path` via a temp file + rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
    os.replace(tmp, path)


class ParquetStream:
    """One parquet file written table by table (`write`), under a temp name renamed into place by `close`; a
    stream left by an error (the `with` block raises) removes its temp file. The schema is `table_schema`, else
    the first table's."""

    def __init__(self, path: Path, table_schema: pa.Schema | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.schema, self._writer = table_schema, None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.schema = self.schema or table.schema
            self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", write_page_checksum=True)
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        if self._writer is None:
            self.write(self.schema.empty_table())
        self._writer.close()
        os.replace(self.tmp, self.path)

    def __enter__(self):
        return self

    def abort(self) -> None:
        """Leave no file: close the writer and remove the temp file."""
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __exit__(self, exc_type, *exc):
        self.close() if exc_type is None else self.abort()


def write_stream_atomic(path: Path, table_schema: pa.Schema, pieces) -> None:
    """Write `pieces` (tables of `table_schema`, one in memory at a time) as one parquet file, temp + rename."""
    with ParquetStream(path, table_schema) as out:
        for piece in pieces:
            out.write(piece)


def write_json_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


@dataclass
class DatasetWriter:
    """Writes a dataset partition by partition; `manifest` keeps what is complete."""

    root: Path
    source: str
    params: dict = field(default_factory=dict)
    partitions: list = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def write_static(self, tokens: pa.Table, pools: pa.Table) -> None:
        write_table_atomic(schema.conform(tokens, "tokens", "tokens"), self.root / "tokens.parquet")
        write_table_atomic(schema.conform(pools, "pools", "pools"), self.root / "pools.parquet")

    def write_partition(self, first: int, last: int, tables: dict) -> None:
        """`tables` maps each name of PARTITIONED to its Arrow table for blocks first..last (inclusive)."""
        for name in PARTITIONED:
            given = tables.get(name)
            if given is None and name in OPTIONAL_TABLES:
                given = schema.SCHEMAS[name].empty_table()
            elif given is None:
                raise KeyError(f"write_partition {first}-{last}: table {name!r} missing")
            table = schema.conform(given, name, f"{name} partition {first}-{last}")
            write_table_atomic(table, self.root / name / partition_name(first, last))
        self.partitions.append([int(first), int(last)])
        self._write_manifest()

    def finish(self) -> None:
        """Mark the dataset complete (a reader can tell a finished dataset from an interrupted one)."""
        self.complete = True
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_json_atomic({
            "format": FORMAT, "version": VERSION, "source": self.source, "params": self.params,
            "complete": bool(getattr(self, "complete", False)),
            "first_block": self.partitions[0][0] if self.partitions else None,
            "last_block": self.partitions[-1][1] if self.partitions else None,
            "partitions": self.partitions,
        }, self.root / "manifest.json")


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A parquet file, or SchemaError naming it: its page CRCs (every file gpubt writes has them) are checked, so
    a flipped byte is an error rather than a different number, and so are its names and strings (UTF-8)."""
    try:
        table = pq.read_table(path, columns=columns, page_checksum_verification=True)
        table.column_names  # decoded lazily: a corrupt (non-UTF-8) name raises here, not in a caller
        table.validate(full=True)  # string values: UTF-8 (~15 ms a million rows)
        return table
    except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt name: UnicodeDecodeError
        raise schema.SchemaError(f"{path}: unreadable parquet ({type(exc).__name__}: {exc})") from None


def read_manifest(root: Path) -> dict:
    """manifest.json of the dataset at `root`, checked: format, and partitions [[first, last], ...] of ints,
    first <= last, each starting where the previous one ended (+1), matching first_block / last_block."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise schema.SchemaError(f"{path}: not found (is {root} a gpubt dataset? create one with `gpubt generate` "
                                 "or point data.path at one)")
    try:
        manifest = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise schema.SchemaError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise schema.SchemaError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(manifest, dict):
        raise schema.SchemaError(f"{path}: a JSON object is expected, not {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise schema.SchemaError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    parts = manifest.get("partitions")
    if not isinstance(parts, list):
        raise schema.SchemaError(f"{path}: partitions is {'missing' if parts is None else type(parts).__name__} "
                                 "(a list of [first_block, last_block] pairs)")
    if not parts:
        raise schema.SchemaError(f"{path}: the dataset has no complete partition")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)
    for i, part in enumerate(parts):
        if not (isinstance(part, list) and len(part) == 2 and all(is_int(v) and v >= 0 for v in part)):
            raise schema.SchemaError(f"{path}: partitions[{i}] = {part!r} (a [first_block, last_block] pair of "
                                     "block numbers)")
        if part[0] > part[1]:
            raise schema.SchemaError(f"{path}: partitions[{i}] = {part} (first_block > last_block)")
        if i and part[0] != parts[i - 1][1] + 1:
            raise schema.SchemaError(f"{path}: partitions[{i}] starts at block {part[0]}, the previous one ends at "
                                     f"{parts[i - 1][1]} (partitions are contiguous and in order)")
    for key, value in (("first_block", parts[0][0]), ("last_block", parts[-1][1])):
        if manifest.get(key) is not None and manifest[key] != value:
            raise schema.SchemaError(f"{path}: {key} = {manifest[key]!r} but the partitions say {value}")
    if not isinstance(manifest.get("complete", False), bool):
        raise schema.SchemaError(f"{path}: complete = {manifest['complete']!r} (true or false)")
    if not isinstance(manifest.get("params", {}), dict):
        raise schema.SchemaError(f"{path}: params = {manifest['params']!r} (an object)")
    return manifest


class Dataset:
    """Read side of the store; every table is validated against gpubt.schema as it is loaded."""

    def __init__(self, root):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.partitions = [tuple(p) for p in self.manifest["partitions"]]
        self.tokens = schema.validate_tokens(self._read_file(self.root / "tokens.parquet"),
                                             str(self.root / "tokens.parquet"))
        self.pools = schema.validate_pools(self._read_file(self.root / "pools.parquet"), self.tokens,
                                           str(self.root / "pools.parquet"))

    def check_prices(self) -> None:
        """Refuse tokens whose decimals (or prices) put a pool's two sides far apart in value, at the first
        partition's snapshot (schema.check_pool_prices): the figures of every strategy that values tokens
        through the prices would be off by powers of ten."""
        part = self.partitions[0]
        schema.check_pool_prices(self.tokens, self.pools, self.read_partition("snapshots", part),
                                 self.read_partition("prices", part), str(self.root / "tokens.parquet"),
                                 str(self.path("prices", part)))

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def first_block(self) -> int:
        return self.partitions[0][0]

    @property
    def last_block(self) -> int:
        return self.partitions[-1][1]

    def path(self, name: str, part) -> Path:
        return self.root / name / partition_name(*part)

    @staticmethod
    def _read_file(path: Path, columns: list[str] | None = None) -> pa.Table:
        if not path.is_file():
            raise schema.SchemaError(f"{path}: file not found (the dataset is incomplete)")
        return read_parquet(path, columns)

    @staticmethod
    def _cast(table: pa.Table, target: pa.Schema, path: Path) -> pa.Table:
        try:
            return table.select(target.names).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
            raise schema.SchemaError(f"{path}: columns {', '.join(target.names)} do not cast to {target} "
                                     f"({exc})") from None

    def read_partition(self, name: str, part) -> pa.Table:
        """One partition of a partitioned table, validated (its rows inside the partition's block range)."""
        path = self.path(name, part)
        if name in OPTIONAL_TABLES and not path.is_file():
            return schema.SCHEMAS[name].empty_table()
        table, source = self._read_file(path), str(path)
        if name == "events":
            table = schema.validate_events(table, self.pools, source)
        elif name == "blocks":
            table = schema.validate_blocks(table, source)
        elif name == "snapshots":
            table = schema.validate_snapshots(table, self.pools, source)
        elif name == "ticks":
            table = schema.validate_ticks(table, self.pools, source)
        elif name == "victims":
            table = schema.validate_victims(table, self.pools, source)
        elif name == "labels":
            table = schema.validate_labels(table, self.pools, self.tokens, source)
        elif name == "prices":
            table = schema.validate_prices(table, self.tokens, source)
        else:
            table = schema.conform(table, name, source)
        schema.check_partition_rows(table, part[0], part[1], source, consecutive=name == "blocks")
        return table

    def read(self, name: str) -> pa.Table:
        """A whole partitioned table (small datasets and tests; the controller reads partition by partition)."""
        return pa.concat_tables([self.read_partition(name, p) for p in self.partitions])

    def read_range(self, name: str, first_block: int | None = None, last_block: int | None = None,
                   columns: list[str] | None = None) -> pa.Table:
        """Rows of a partitioned table with first_block <= block_number <= last_block (None: open), reading only
        the partitions that overlap the range. With `columns` (block_number among them) only those are read, not
        validated (the controller validates each partition when it backtests it)."""
        lo = self.first_block if first_block is None else first_block
        hi = self.last_block if last_block is None else last_block
        parts = [p for p in self.partitions if p[1] >= lo and p[0] <= hi]
        if columns is None:
            tables = [self.read_partition(name, p) for p in parts]
            empty = schema.SCHEMAS[name].empty_table()
        else:  # the schema's types (a producer may have written wider ints): partitions concatenate
            target = pa.schema([schema.SCHEMAS[name].field(c) for c in columns])
            tables = [self._cast(self._read_file(self.path(name, p), columns), target, self.path(name, p))
                      for p in parts]
            empty = target.empty_table()
        table = pa.concat_tables(tables) if tables else empty
        return table.filter(pa.array(schema.block_range_mask(table.column("block_number").to_numpy(), lo, hi)))
