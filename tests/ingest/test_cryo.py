"""The real cryo (PyPI `cryo`, its Rust extraction engine) against the same node → `data=cryo` gives the same
dataset and the same backtest as `gpubt ingest`; the reader also takes cryo's --hex encoding."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpubt.data import cryo as cryo_reader
from gpubt.data.store import Dataset

from ..cli import run_inprocess
from .conftest import PARTITION_BLOCKS
from .helpers import assert_same_dataset

# the tests that read a ganache node (tests/ingest/conftest.py) and run the real cryo against it
node = pytest.mark.slow


@pytest.fixture(scope="module")
def cryo_dir(market, tmp_path_factory):
    cryo = pytest.importorskip("cryo", reason="PyPI cryo (the extraction engine) is not installed")
    out = tmp_path_factory.mktemp("cryo")
    blocks = [f"1:{market.last_block + 1}"]
    common = dict(rpc=market.node.url, blocks=blocks, output_dir=str(out), verbose=False)
    cryo.freeze("logs", **common)
    cryo.freeze("blocks", include_columns=["parent_hash"], **common)
    cryo.freeze("transactions", **common)
    tokens = [t.address for t in market.tokens.values()]
    cryo.freeze("erc20_metadata", rpc=market.node.url, blocks=[f"{market.last_block}:{market.last_block + 1}"],
                output_dir=str(out), contract=tokens, verbose=False)
    return out


def _convert(market, src, out):
    return cryo_reader.convert(src, out, factories=market.factories(), weth=market.c["weth"].address,
                               partition_blocks=PARTITION_BLOCKS, eth_usd=2000.0)


@node
def test_cryo_dataset_equals_the_ingest(market, reference, cryo_dir, tmp_path):
    _convert(market, cryo_dir, tmp_path / "from-cryo")
    assert_same_dataset(tmp_path / "from-cryo", reference[0])


@node
def test_cryo_hex_encoding(market, reference, cryo_dir, tmp_path):
    """cryo --hex writes 0x-strings instead of binary: same result."""
    hexdir = tmp_path / "hex"
    hexdir.mkdir()
    for f in cryo_dir.glob("*.parquet"):
        t = pq.read_table(f)
        cols = [pa.array([None if v is None else "0x" + v.hex() for v in c.to_pylist()], pa.string())
                if pa.types.is_binary(c.type) or pa.types.is_large_binary(c.type) else c for c in t.columns]
        pq.write_table(pa.Table.from_arrays(cols, names=t.column_names), hexdir / f.name)
    _convert(market, hexdir, tmp_path / "from-hex")
    assert_same_dataset(tmp_path / "from-hex", reference[0])


def test_cryo_missing_dataset_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(cryo_reader.CryoError, match="no cryo `blocks` parquet"):
        cryo_reader.convert(tmp_path / "empty", tmp_path / "out")


@node
def test_run_data_cryo_equals_run_on_ingest(market, reference, cryo_dir, tmp_path):
    def run(*data_args, out):
        out = run_inprocess(*data_args, "backend=cpu", f"out_dir={out}", "progress=false").out_dir
        return json.loads((out / "summary.json").read_text()), pq.read_table(out / "trades.parquet")

    a, trades_a = run("data=parquet", f"data.path={reference[0]}", out=tmp_path / "run-ingest")
    b, trades_b = run("data=cryo", f"data.path={cryo_dir}", f"data.factories=[{','.join(market.factories())}]",
                      f"data.weth={market.c['weth'].address}", f"data.partition_blocks={PARTITION_BLOCKS}",
                      "data.eth_usd=2000", f"data.cache_dir={tmp_path / 'cache'}", out=tmp_path / "run-cryo")
    assert trades_a.num_rows > 0 and trades_a.equals(trades_b)
    assert a["metrics"] == b["metrics"]
    assert {k: a["run"][k] for k in ("first_block", "last_block", "setup")} == {
        k: b["run"][k] for k in ("first_block", "last_block", "setup")}
    assert len(list((tmp_path / "cache").iterdir())) == 1  # converted once into the cache
    assert Dataset(next((tmp_path / "cache").iterdir())).complete
