"""Bad datasets and inconsistent options (issue 22: "nothing lost, nothing silently wrong").

Every user error ends in one SchemaError line naming the input (file, column, row, or option key) with no
results folder; gpubt never deletes a folder it did not generate into its own cache; what a valid dataset
allows (a pool whose first state comes inside the range, a token with 0 decimals) runs to the right figures."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpubt.schema import SchemaError
from tests.cli import gpubt, run_inprocess
from tests.conftest import hand_market, write_market

RUN = ("backend=cpu", "progress=false", "report.enabled=false")
FIRST = 18_000_000  # the tiny market's first block; partitions 18000000-18000099 and 18000100-18000199
PART0 = "0018000000-0018000099.parquet"


# ------------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def ds(tiny_cache, tmp_path) -> Path:
    """A private copy of the tiny market (mutate it freely)."""
    return Path(shutil.copytree(tiny_cache / "synthetic-tiny-seed0", tmp_path / "ds"))


def set_values(path: Path, column: str, change) -> None:
    """Rewrite one column of a parquet file: change(list of values) -> list of values (same type)."""
    table = pq.read_table(path)
    values = change(table.column(column).to_pylist())
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, column, pa.array(values, table.schema.field(column).type)), path)


def set_row(row: int, value):
    def change(values):
        values[row] = value
        return values
    return change


def manifest(root: Path, change) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def run_parquet(root: Path, out: Path, *overrides) -> Path:
    return run_inprocess(*RUN, "data=parquet", f"data.path={root}", f"out_dir={out}", *overrides).out_dir


def refused(root: Path, tmp_path: Path, *overrides, names=()) -> str:
    """Run on `root`; it must raise SchemaError (one line naming each of `names`) and publish nothing."""
    out = tmp_path / "run"
    with pytest.raises(SchemaError) as exc:
        run_parquet(root, out, *overrides)
    message = str(exc.value)
    assert "\n" not in message, message
    for name in names:
        assert name in message, (name, message)
    assert not out.exists() and not (tmp_path / ".run.partial").exists()
    return message


def fingerprint(root: Path) -> dict:
    """relative path -> sha256 of every file under root (byte-for-byte survival)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------------------------- data loss: data=synthetic
def test_synthetic_run_never_replaces_a_user_dataset_cli(tmp_path):
    """`gpubt run data.path=D` without data=parquet used to delete D and generate a market there (exit 0)."""
    user = write_market(tmp_path / "mine", hand_market())
    (user / "NOTES.txt").write_text("my notes")
    before = fingerprint(user)
    proc = gpubt("run", *RUN, f"data.path={user}", "data.preset=tiny", f"out_dir={tmp_path / 'run'}", timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith("gpubt: error: ") and f"data=parquet data.path={user}" in lines[0], lines[0]
    assert fingerprint(user) == before
    assert not (tmp_path / "run").exists()


def test_synthetic_run_never_replaces_a_synthetic_dataset_with_other_params(ds, tmp_path):
    before = fingerprint(ds)
    with pytest.raises(SchemaError, match=f"data=parquet data.path={ds}"):
        run_inprocess(*RUN, "data.preset=tiny", "data.seed=1", f"data.path={ds}", f"out_dir={tmp_path / 'run'}")
    assert fingerprint(ds) == before and not (tmp_path / "run").exists()


def test_synthetic_run_never_writes_into_a_folder_of_other_files(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.csv").write_text("b")
    before = fingerprint(folder)
    with pytest.raises(SchemaError, match="not a gpubt dataset"):
        run_inprocess(*RUN, "data.preset=tiny", f"data.path={folder}", f"out_dir={tmp_path / 'run'}")
    assert fingerprint(folder) == before and sorted(p.name for p in folder.iterdir()) == ["a.txt", "sub"]


def test_synthetic_cache_refuses_a_dataset_it_did_not_generate(tiny_cache, tmp_path):
    """A dataset copied into the cache under another seed's name is not gpubt's to replace."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache / "synthetic-tiny-seed0", cache / "synthetic-tiny-seed1")
    before = fingerprint(cache)
    with pytest.raises(SchemaError, match="did not generate"):
        run_inprocess(*RUN, "data.preset=tiny", "data.seed=1", f"data.cache_dir={cache}",
                      f"out_dir={tmp_path / 'run'}")
    assert fingerprint(cache) == before


def test_synthetic_cache_regenerates_what_it_generated(tmp_path):
    """The cache's own dataset (marked when gpubt generated it there), left incomplete, is generated again;
    files beside it survive."""
    from gpubt.run.setup import open_dataset
    from omegaconf import OmegaConf

    cache = tmp_path / "cache"
    cfg = OmegaConf.create({"source": "synthetic", "preset": "tiny", "seed": 0, "path": None,
                            "cache_dir": str(cache)})
    first = open_dataset(cfg, progress=False)
    assert first.complete and first.root == cache / "synthetic-tiny-seed0"
    reference = fingerprint(first.root)
    manifest(first.root, lambda m: m.update(complete=False))
    (first.root / "NOTES.txt").write_text("kept")
    again = open_dataset(cfg, progress=False)
    assert again.complete
    after = fingerprint(again.root)
    assert after.pop("NOTES.txt") and after == reference


# ----------------------------------------------------------------------------------------------- tokens
def test_decimals_that_disagree_with_the_prices_are_refused(ds, tmp_path):
    """USDC's decimals 6 -> 0 made its raw units a million times dearer: 1.75e13 ETH of CEX-DEX profit."""
    set_values(ds / "tokens.parquet", "decimals", set_row(1, 0))
    refused(ds, tmp_path, "strategy=all", names=("tokens.parquet", "USDC", "decimals"))


@pytest.mark.parametrize("decimals", [255, 37, -3])
def test_decimals_out_of_range_name_the_token(ds, tmp_path, decimals):
    set_values(ds / "tokens.parquet", "decimals", set_row(3, decimals))
    refused(ds, tmp_path, "strategy=all", names=("tokens.parquet row 3", "DAI", f"decimals = {decimals}"))


def _scaled_market(link_decimals: int) -> dict:
    """The hand market with LINK (token 2) at `link_decimals`: its raw amounts scaled to match."""
    tables = hand_market()
    div = 10 ** (18 - link_decimals)
    tokens = tables["tokens"].to_pylist()
    tokens[2]["decimals"] = link_decimals
    tables["tokens"] = pa.Table.from_pylist(tokens, schema=tables["tokens"].schema)
    link_side = {p["pool_id"]: ("0" if p["token0"] == 2 else "1" if p["token1"] == 2 else None)
                 for p in tables["pools"].to_pylist()}
    for name, columns in (("events", ("reserve{}", "amount{}_in", "amount{}_out")), ("snapshots", ("reserve{}",))):
        rows = tables[name].to_pylist()
        for row in rows:
            side = link_side[row["pool_id"]]
            if side is not None:
                for col in columns:
                    row[col.format(side)] = int(row[col.format(side)]) // div
        tables[name] = pa.Table.from_pylist(rows, schema=tables[name].schema)
    return tables


def test_zero_decimals_are_priced_right(tmp_path):
    """A token with 0 decimals (legal ERC-20) and amounts to match: the same figures as with 18 decimals, up to
    the rounding of whole LINK units."""
    results = {}
    for decimals in (18, 0):
        root = write_market(tmp_path / f"d{decimals}", _scaled_market(decimals))
        out = run_parquet(root, tmp_path / f"run{decimals}", "thresholds.min_profit_eth=0",
                          "strategy.arbitrage.start_tokens=[WETH,LINK]")
        results[decimals] = summary(out)["metrics"]
    assert results[0]["trades"] == results[18]["trades"] > 0
    assert results[0]["net_profit_eth"] == pytest.approx(results[18]["net_profit_eth"], rel=0.02)


# ----------------------------------------------------------------------------------------------- prices
@pytest.mark.parametrize("row, value", [(13, float("nan")), (12, 0.0), (12, -2300.0), (12, float("inf")),
                                        (5, float("nan"))])
def test_prices_must_be_finite_and_positive(ds, tmp_path, row, value):
    """One NaN changed the ETH profit; WETH at 0 or -2300 rewrote the USD figures; inf failed after publishing."""
    set_values(ds / "prices" / PART0, "price_usd", set_row(row, value))
    refused(ds, tmp_path, "strategy=all", names=(f"prices/{PART0} row {row}", "price_usd", "token"))


def test_prices_of_unknown_tokens(ds, tmp_path):
    set_values(ds / "prices" / PART0, "token_id", set_row(14, 99))
    refused(ds, tmp_path, "strategy=all", names=(f"prices/{PART0} row 14", "token_id = 99"))


@pytest.mark.parametrize("column, value", [("token_id", 99), ("price_usd", float("inf"))])
def test_reference_prices_file_is_validated(ds, tmp_path, column, value):
    """strategy.cexdex.prices_path: an unknown token was an IndexError, inf was taken."""
    reference = tmp_path / "reference.parquet"
    shutil.copy(ds / "prices" / PART0, reference)
    set_values(reference, column, set_row(3, value))
    refused(ds, tmp_path, "strategy=cexdex", f"strategy.cexdex.prices_path={reference}",
            names=(f"{reference} row 3", column))


# --------------------------------------------------------------------------------------- unknown pool ids
@pytest.mark.parametrize("table, column, row, value", [
    ("victims", "pool_id", 0, 99),
    ("snapshots", "pool_id", 0, 99),
    ("snapshots", "pool_id", 0, -1),
    ("labels", "pools", 0, [99]),
])
def test_unknown_pool_ids(ds, tmp_path, table, column, row, value):
    set_values(ds / table / PART0, column, set_row(row, value))
    refused(ds, tmp_path, "strategy=all", names=(f"{table}/{PART0} row {row}", column))


def test_unknown_pool_in_ticks(ds, tmp_path):
    """The second partition's ticks are read when a run starts there."""
    path = ds / "ticks" / "0018000100-0018000199.parquet"
    assert pq.read_table(path).num_rows
    set_values(path, "pool_id", set_row(0, 99))
    refused(ds, tmp_path, f"data.first_block={FIRST + 100}",
            names=("ticks/0018000100-0018000199.parquet row 0", "pool_id = 99"))


# ------------------------------------------------------------------------------------------------ manifest
def test_partition_range_must_match_its_files(ds, tmp_path):
    """Declared 18000000..18000049, the file holds ..99 (the next partition declared 18000050..18000199): blocks
    50-99 were never screened, summary.json said 200 blocks."""
    renames = {PART0: "0018000000-0018000049.parquet",
               "0018000100-0018000199.parquet": "0018000050-0018000199.parquet"}
    for folder in ds.iterdir():
        for old, new in renames.items():
            if (folder / old).is_file():
                (folder / old).rename(folder / new)
    manifest(ds, lambda m: m.update(partitions=[[FIRST, FIRST + 49], [FIRST + 50, FIRST + 199]]))
    refused(ds, tmp_path, names=("0018000000-0018000049.parquet", "block_number 18000050", "partition"))


def test_partitions_must_be_contiguous(ds, tmp_path):
    """A gap between partitions would leave its blocks unscreened but counted."""
    part1 = "0018000100-0018000199.parquet"
    for folder in ds.iterdir():
        if (folder / part1).is_file():
            (folder / part1).rename(folder / "0018000150-0018000199.parquet")
    manifest(ds, lambda m: m["partitions"].__setitem__(1, [FIRST + 150, FIRST + 199]))
    refused(ds, tmp_path, names=("manifest.json", "partitions"))


def test_incomplete_dataset_needs_consent(ds, tmp_path, capsys):
    manifest(ds, lambda m: m.update(complete=False))
    refused(ds, tmp_path, names=("manifest.json", "data.allow_incomplete=true"))
    out = run_parquet(ds, tmp_path / "ok", "data.allow_incomplete=true")
    assert summary(out)["metrics"]["trades"] > 0
    assert "incomplete" in capsys.readouterr().err


@pytest.mark.parametrize("change, names", [
    (lambda m: m.pop("partitions"), ("manifest.json", "partitions")),
    (lambda m: m.update(partitions=[[FIRST, "x"]]), ("manifest.json", "partitions")),
    (lambda m: m.update(partitions=[[FIRST + 99, FIRST]]), ("manifest.json", "partitions")),
    (lambda m: m.update(first_block=FIRST + 1), ("manifest.json", "first_block")),
])
def test_manifest_fields(ds, tmp_path, change, names):
    manifest(ds, change)
    refused(ds, tmp_path, names=names)


def test_manifest_invalid_json(ds, tmp_path):
    path = ds / "manifest.json"
    path.write_text(path.read_text().replace(",", "", 1))
    refused(ds, tmp_path, names=("manifest.json", "JSON"))


def test_manifest_not_an_object(ds, tmp_path):
    (ds / "manifest.json").write_text("[1, 2]")
    refused(ds, tmp_path, names=("manifest.json",))


# ------------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("overrides, names", [
    (("strategy.arbitrage.min_hops=5", "strategy.arbitrage.max_hops=3"),
     ("strategy.arbitrage.min_hops=5", "strategy.arbitrage.max_hops=3")),
    (("strategy.arbitrage.min_hops=1",), ("strategy.arbitrage.min_hops=1",)),
    (("strategy.arbitrage.max_hops=1",), ("strategy.arbitrage.max_hops=1",)),
    ((f"data.first_block={FIRST + 50}", f"data.last_block={FIRST + 10}"),
     (f"data.first_block={FIRST + 50}", f"data.last_block={FIRST + 10}")),
])
def test_inconsistent_options_name_the_keys(ds, tmp_path, overrides, names):
    """min_hops=5 max_hops=3 used to give 0 paths, 0 trades and no word."""
    message = refused(ds, tmp_path, *overrides, names=names)
    assert message.startswith(names[0]), message


@pytest.mark.parametrize("override", ["gas.priority_fee_gwei=-1000", "gas.base_units=-1"])
def test_negative_gas_options_are_refused(ds, tmp_path, override):
    """A negative priority fee made paths through pools without state candidates (and is no fee at all)."""
    with pytest.raises(ValueError, match=override):
        run_parquet(ds, tmp_path / "run", override)
    assert not any(p.name.startswith((".run", "run")) for p in tmp_path.iterdir())


# ------------------------------------------------------------------------------- pools without state yet
ZERO_GAS = ("gas.base_units=0", "gas.per_hop_units=0", "gas.v3_hop_units=0", "gas.v3_tick_units=0",
            "gas.priority_fee_gwei=0", "thresholds.min_profit_eth=0")
BORN = FIRST + 20


def _pool_born_mid_range(ds: Path) -> int:
    """A V2 pool whose first state comes inside the range (what an ingest of a pool created mid-range looks
    like): its snapshot row and its events before block BORN are dropped. Returns the pool."""
    snap_path, ev_path = ds / "snapshots" / PART0, ds / "events" / PART0
    snaps, events = pq.read_table(snap_path), pq.read_table(ev_path)
    ev_pool, ev_block = events.column("pool_id").to_pylist(), events.column("block_number").to_pylist()
    pool = next(p for p in snaps.column("pool_id").to_pylist()
                if any(q == p and b < BORN for q, b in zip(ev_pool, ev_block))
                and any(q == p and b >= BORN for q, b in zip(ev_pool, ev_block)))
    pq.write_table(snaps.filter(pa.array([p != pool for p in snaps.column("pool_id").to_pylist()])), snap_path)
    pq.write_table(events.filter(pa.array([not (q == pool and b < BORN) for q, b in zip(ev_pool, ev_block)])),
                   ev_path)
    return pool


def test_paths_through_a_pool_without_state_are_never_candidates(ds, tmp_path):
    """Zero gas on a dataset with a pool born mid-range: `KeyError: pool N has no state at key -1` at exact
    re-pricing; now a path through a pool is no candidate before the pool's first state."""
    pool = _pool_born_mid_range(ds)
    out = run_parquet(ds, tmp_path / "run", "data.last_block=18000099", *ZERO_GAS)
    trades = pq.read_table(out / "trades.parquet").select(["block_number", "pools"]).to_pylist()
    assert trades and all(row["block_number"] >= BORN for row in trades if pool in row["pools"])
    assert any(pool in row["pools"] for row in trades)  # and after its first state it trades


def test_pools_initialized_inside_the_first_block(ds, tmp_path):
    """The tiny market's V3 pools are initialized in block 18000000's first tx: none has state at its top."""
    out = run_parquet(ds, tmp_path / "run", "strategy=all", "data.last_block=18000049", *ZERO_GAS)
    assert summary(out)["metrics"]["trades"] > 0


# ---------------------------------------------------------------------------------------- the CLI contract
def test_bad_dataset_is_one_line_exit_2_cli(ds, tmp_path):
    set_values(ds / "prices" / PART0, "price_usd", set_row(12, float("inf")))
    proc = gpubt("run", *RUN, "data=parquet", f"data.path={ds}", f"out_dir={tmp_path / 'run'}", timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith(f"gpubt: error: {ds / 'prices' / PART0} row 12: price_usd = inf"), lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_an_outdated_cryo_conversion_is_redone_without_touching_other_files(tmp_path, monkeypatch):
    """data=cryo redoes a stale conversion of its own; files it did not write in data.out are never deleted."""
    from gpubt.data import cryo
    from tests.cli import compose

    src, out = tmp_path / "cryo", tmp_path / "out"
    src.mkdir()
    (out / "events").mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"source": "cryo", "complete": True,
                                                    "params": {"fingerprint": "outdated"}}))
    (out / "notes.txt").write_text("mine")
    cfg = compose("data=cryo", f"data.path={src}", f"data.out={out}").data
    converted = []
    monkeypatch.setattr(cryo, "convert", lambda *args, **kwargs: converted.append(args))
    with pytest.raises(cryo.CryoError, match="notes.txt"):
        cryo.open_cached(cfg)
    assert (out / "notes.txt").read_text() == "mine" and (out / "events").is_dir() and not converted
    (out / "notes.txt").unlink()
    monkeypatch.setattr(cryo, "Dataset", lambda path: path)
    assert cryo.open_cached(cfg) == out and converted and not any(out.iterdir())


def test_inconsistent_options_are_refused_before_any_dataset_is_built(tmp_path):
    """A default (synthetic) run with min_hops > max_hops is refused before it generates its market."""
    with pytest.raises(SchemaError, match="min_hops=5"):
        run_inprocess("backend=cpu", "data.preset=tiny", f"data.cache_dir={tmp_path / 'cache'}", "progress=false",
                      "strategy.arbitrage.min_hops=5", "strategy.arbitrage.max_hops=3", f"out_dir={tmp_path / 'o'}")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()
