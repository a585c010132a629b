"""Property (issue 22): a valid dataset mutated at random (a column's values in one parquet file, a file's bytes,
the manifest's fields) is either refused cleanly, one SchemaError line naming a file of the dataset, nothing
published and nothing deleted, or backtested exactly like an equivalent valid dataset: never a traceback, never
a lost input. Mutations known to be invalid must be refused; neutral ones (types, column order, row groups) must
give the unmutated dataset's results.

GPUBT_MUTATION_EXAMPLES=300 explores more (the suite runs 40, ~20 s, the same examples every time);
GPUBT_MUTATION_RANDOM=1 draws new ones (with pytest's --hypothesis-seed=N to replay)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubt import schema
from gpubt.data.store import PARTITIONED
from tests.cli import run_inprocess

EXAMPLES = int(os.environ.get("GPUBT_MUTATION_EXAMPLES", "40"))
PARTS = ("0018000000-0018000099.parquet", "0018000100-0018000199.parquet")
# a slice across the partition boundary: both partitions' files are read, the first one's snapshot is loaded
RUN = ("backend=cpu", "progress=false", "report.enabled=false", "strategy=all", "data.first_block=18000090",
       "data.last_block=18000109")
# files the run reads (the second partition's snapshot and ticks are only read by a run that starts there)
UNREAD = {f"snapshots/{PARTS[1]}", f"ticks/{PARTS[1]}"}
FILES = ["tokens.parquet", "pools.parquet", "positions.parquet",
         *(f"{name}/{part}" for name in PARTITIONED for part in PARTS)]


def fingerprint(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def results(out: Path) -> tuple:
    """What a run reports, without what legitimately differs between two runs (timing, the dataset's path)."""
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timing", None)
    summary["run"].pop("dataset", None)
    return (summary, pq.read_table(out / "trades.parquet").to_pylist(),
            pq.read_table(out / "opportunities.parquet").to_pylist())


def backtest(root: Path, work: Path, *extra):
    """(results, None) or (None, exception) of a run on `root`; a failed run must publish nothing."""
    out = work / f"run-{uuid.uuid4().hex[:8]}"
    try:
        run_inprocess(*RUN, "data=parquet", f"data.path={root}", f"out_dir={out}", *extra)
    except Exception as exc:  # noqa: BLE001 - the property says which exceptions are acceptable
        assert not out.exists() and not (out.parent / f".{out.name}.partial").exists(), "a failed run published"
        return None, exc
    return results(out), None


def canonical_copy(root: Path, dest: Path) -> Path:
    """The same dataset written the one way gpubt writes it: every readable table conformed to its schema (types,
    column order, one row group, zstd), the manifest rebuilt from its partitions; unreadable or unread files copied
    as they are."""
    shutil.copytree(root, dest)
    for path in dest.rglob("*.parquet"):
        rel = str(path.relative_to(dest))
        name = rel.split("/")[0].removesuffix(".parquet")
        try:
            table = pq.read_table(path)
            if name in schema.SCHEMAS:
                table = schema.conform(table, name, rel)
        except (pa.ArrowException, OSError, schema.SchemaError):
            continue
        pq.write_table(table, path, compression="zstd")
    manifest = json.loads((dest / "manifest.json").read_text())
    parts = manifest["partitions"]
    manifest.update(first_block=parts[0][0], last_block=parts[-1][1])
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return dest


# ------------------------------------------------------------------------------------------------ mutations
def _int_values(value, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return [v for v in (-1, 0, 1, 2, 99, 10**6, lo, hi, (value or 0) + 1, (value or 0) - 1) if lo <= v <= hi]


def candidates(field: pa.Field, value, others: list) -> list:
    """Replacement values for one cell of type field.type (None: a null)."""
    t = field.type
    if pa.types.is_integer(t):
        out = _int_values(value, t.bit_width)
    elif pa.types.is_floating(t):
        v = value if value is not None else 1.0
        out = [math.nan, math.inf, -math.inf, 0.0, -v, v * 1e6, v * 1e-6, v * 1.01]
    elif pa.types.is_decimal(t):
        v = int(value) if value is not None else 1
        big = 10**37 if t.precision == 38 else 2**200
        out = [0, -1, 1, big, v * 2, v // 2, v + 1, -v]
    elif pa.types.is_string(t):
        out = ["", "x", "sync", "swap", "mint", "v3", "v2", "arbitrage"]
    elif pa.types.is_boolean(t):
        out = [not value] if value is not None else [True]
    elif pa.types.is_list(t):
        out = [[], [99], [-1], [0, 0], [1]]
    else:
        out = []
    return [*out, *others[:3], None]


ID_COLUMNS = ("pool_id", "token_id", "token0", "token1", "collateral_token", "debt_token", "profit_token")
NOT_NULL = ("block_number", "tx_index", "pool_id", "token_id", "token0", "token1", "fee_ppm", "decimals",
            "price_usd", "collateral_token", "debt_token")


def must_refuse_cell(rel: str, column: str, value, old) -> bool:
    """Values that no valid dataset holds there (in a file the run reads)."""
    if rel in UNREAD or value == old:
        return False
    table = rel.split("/")[0].removesuffix(".parquet")
    if value is None:
        return column in NOT_NULL
    if table == "prices" and column == "price_usd":
        return not (math.isfinite(value) and value > 0)
    if column in ID_COLUMNS and not (table in ("tokens", "pools") and column in ("token_id", "pool_id")):
        return value < 0 or value >= 99  # tiny has 12 tokens, 38 pools
    if table == "tokens" and column == "decimals":
        return not 0 <= value <= 36
    if table == "labels" and column == "pools":
        return any(v < 0 or v >= 99 for v in value)
    if column == "block_number" and "/" in rel:
        first, last = (int(b) for b in rel.split("/")[1].removesuffix(".parquet").split("-"))
        return table == "blocks" or not first <= value <= last
    return False


@st.composite
def mutations(draw):
    """(description, apply(root) -> None, expectation): "refuse" (a SchemaError), "same" (the unmutated
    dataset's results), "intact" (either: a corrupted byte is detected or changes nothing) or "any" (either, and
    a success gives its canonical copy's results)."""
    kind = draw(st.sampled_from(["cell", "cell", "cell", "cell", "bytes", "manifest", "neutral"]))
    if kind == "manifest":
        key = draw(st.sampled_from(["partitions", "complete", "format", "first_block", "last_block", "params",
                                    "source", "version"]))
        how = draw(st.sampled_from(["delete", "null", "string", "int", "list", "shift", "swap", "gap"]))
        values = {"null": None, "string": "x", "int": 7, "list": [1, 2]}

        def apply(root):
            path = root / "manifest.json"
            m = json.loads(path.read_text())
            if how == "delete":
                m.pop(key, None)
            elif how == "shift" and key == "partitions":
                m[key][0][1] -= 10
                m[key][1][0] -= 10
            elif how == "swap" and key == "partitions":
                m[key].reverse()
            elif how == "gap" and key == "partitions":
                m[key][1][0] += 1
            elif how in values:
                m[key] = values[how]
            path.write_text(json.dumps(m))
        if key in ("partitions", "format", "complete"):  # complete: missing is false (needs allow_incomplete)
            refuse = how not in ("shift", "swap", "gap") or key == "partitions"
        elif key in ("first_block", "last_block"):
            refuse = how in ("string", "int", "list")
        elif key == "params":
            refuse = how in ("null", "string", "int", "list")
        else:
            refuse = False
        return f"manifest {key} {how}", apply, "refuse" if refuse else "any"

    rel = draw(st.sampled_from(FILES))
    if kind == "bytes":
        how = draw(st.sampled_from(["truncate", "flip", "empty", "delete", "garbage"]))
        cut = draw(st.floats(0.05, 0.95))
        flip_at = draw(st.floats(0.0, 1.0))

        def apply(root):
            path = root / rel
            data = path.read_bytes()
            if how == "truncate":
                path.write_bytes(data[:int(len(data) * cut)])
            elif how == "flip":
                i = min(int(len(data) * flip_at), len(data) - 1)
                path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
            elif how == "empty":
                path.write_bytes(b"")
            elif how == "delete":
                path.unlink()
            else:
                path.write_bytes(b"not parquet at all\n" * 3)
        refuse = rel not in UNREAD and how in ("truncate", "empty", "garbage", "delete")
        if how == "delete" and (rel.startswith("ticks/") or rel == "positions.parquet"):
            refuse = False  # optional: no ticks file is an empty one; a synthetic dataset's positions are generated
        if how == "flip":  # pages carry a CRC: a flipped byte is detected or changes nothing
            return f"{rel} bytes flip at {flip_at:.4f}", apply, "intact"
        return f"{rel} bytes {how}", apply, "refuse" if refuse else "any"

    # cell and neutral mutations need the file's rows
    if kind == "neutral":
        how = draw(st.sampled_from(["reorder_columns", "widen_ints", "row_groups", "extra_column", "snappy"]))

        def apply(root):
            path = root / rel
            table = pq.read_table(path)
            if how == "reorder_columns":
                table = table.select(list(reversed(table.column_names)))
            elif how == "widen_ints":
                fields = [pa.field(f.name, pa.int64()) if pa.types.is_int32(f.type) else f for f in table.schema]
                table = table.cast(pa.schema(fields))
            elif how == "extra_column":
                table = table.append_column("comment", pa.array(["note"] * table.num_rows))
            if how == "row_groups":
                pq.write_table(table, path, row_group_size=max(1, table.num_rows // 3))
            else:
                pq.write_table(table, path, compression="snappy" if how == "snappy" else "zstd")
        return f"{rel} {how}", apply, "same"

    return draw(cell_mutation(rel))


ORIGINAL: dict = {}  # rel -> the tiny market's table (read once)


@st.composite
def cell_mutation(draw, rel):
    table = ORIGINAL[rel]
    if not table.num_rows:
        return f"{rel} (no rows)", lambda root: None, "any"
    column = draw(st.sampled_from(table.column_names))
    row = draw(st.integers(0, table.num_rows - 1))
    field = table.schema.field(column)
    values = table.column(column).to_pylist()
    old = values[row]
    value = draw(st.sampled_from(candidates(field, old, [v for v in values if v != old])))

    def apply(root):
        changed = list(values)
        changed[row] = value
        i = table.column_names.index(column)
        pq.write_table(table.set_column(i, field, pa.array(changed, field.type)), root / rel)
    expect = "refuse" if must_refuse_cell(rel, column, value, old) else "any"
    return f"{rel} row {row} {column}: {old!r} -> {value!r}", apply, expect


# ------------------------------------------------------------------------------------------------ the property
@pytest.fixture(scope="module")
def tiny_baseline(tiny_cache, tmp_path_factory):
    """A copy of the tiny market (its generated positions book included) and its results."""
    work = tmp_path_factory.mktemp("baseline")
    source = Path(shutil.copytree(tiny_cache / "synthetic-tiny-seed0", work / "ds"))
    baseline, error = backtest(source, work)
    assert error is None, error
    for rel in FILES:
        ORIGINAL[rel] = pq.read_table(source / rel)
    return Baseline(source, baseline)


class Baseline(tuple):
    """(dataset, its results); a short repr for hypothesis's failure report."""

    def __new__(cls, source, results):
        return super().__new__(cls, (source, results))

    def __repr__(self):
        return f"Baseline({self[0]})"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("GPUBT_MUTATION_RANDOM"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(mutation=mutations())
def test_mutated_dataset_is_refused_cleanly_or_backtested_right(tiny_baseline, tmp_path_factory, mutation):
    source, baseline = tiny_baseline
    what, apply, expect = mutation
    work = tmp_path_factory.mktemp("mutation")
    root = Path(shutil.copytree(source, work / "ds"))
    apply(root)
    before = fingerprint(root)
    got, error = backtest(root, work)
    after = fingerprint(root)
    assert after == before, f"{what}: the run changed, added or deleted files of its input"
    if error is not None:
        assert isinstance(error, schema.SchemaError), f"{what}: {type(error).__name__}: {error}"
        message = str(error)
        assert "\n" not in message and str(root) in message, f"{what}: {message}"
        assert expect != "same", f"{what}: a neutral change was refused: {message}"
        return
    assert expect != "refuse", f"{what}: accepted"
    if expect in ("same", "intact"):
        assert got == baseline, f"{what}: other results than the unmutated dataset's"
        return
    again, error = backtest(canonical_copy(root, work / "canonical"), work)
    assert error is None, f"{what}: accepted, but its canonical copy is refused: {error}"
    assert got == again, f"{what}: other results than its canonical copy's"


def test_synthetic_source_never_touches_a_mutated_dataset(tiny_cache, tmp_path):
    """data=synthetic pointed at a (damaged) dataset: refused or reused, never replaced."""
    root = Path(shutil.copytree(tiny_cache / "synthetic-tiny-seed0", tmp_path / "ds"))
    (root / "manifest.json").write_text((root / "manifest.json").read_text().replace('"seed": 0', '"seed": 3'))
    before = fingerprint(root)
    with pytest.raises(schema.SchemaError, match=f"data=parquet data.path={root}"):
        run_inprocess("backend=cpu", "progress=false", "report.enabled=false", "data.preset=tiny",
                      f"data.path={root}", f"out_dir={tmp_path / 'run'}")
    assert fingerprint(root) == before and not (tmp_path / "run").exists()
