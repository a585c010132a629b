"""Bad input → a clear error naming the problem; nothing already ingested is lost or silently overwritten."""
from __future__ import annotations

import shutil

import pytest

from gpubt.data.rpc import ChainMismatch, IngestError, ReorgError, ingest

from . import chain
from .conftest import ingest_config
from .helpers import snapshot_files

pytestmark = pytest.mark.slow  # a ganache node with the Uniswap contracts and a scripted history (conftest.py)


def test_wrong_chain_id(market, tmp_path):
    with pytest.raises(ChainMismatch, match="chain id is 1337, expected chain_id=1"):
        ingest(ingest_config(market, tmp_path / "x", chain_id=1))
    assert not (tmp_path / "x").exists()


def test_not_a_pool(market, tmp_path):
    weth = market.c["weth"].address.lower()
    with pytest.raises(IngestError, match=f"pool {weth}: not a Uniswap V2 pair or V3 pool"):
        ingest(ingest_config(market, tmp_path / "x", factories=[], pools=[weth]))


def test_unconfirmed_blocks_are_refused(market, tmp_path):
    with pytest.raises(IngestError, match="not 12 confirmations deep"):
        ingest(ingest_config(market, tmp_path / "x", confirmations=12))


def test_other_settings_on_the_same_dataset_are_refused(market, reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    before = snapshot_files(out)
    with pytest.raises(IngestError, match="partition_blocks differ"):
        ingest(ingest_config(market, out, partition_blocks=20))
    assert snapshot_files(out) == before


def test_corrupted_partition_file(market, reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    victim = sorted((out / "events").glob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    before = snapshot_files(out)
    with pytest.raises(IngestError, match=f"{victim.name}: corrupted or missing"):
        ingest(ingest_config(market, out))
    assert snapshot_files(out) == before


def test_reorg_between_two_runs(tmp_path):
    """Ingest, revert the node to a snapshot and mine a different history, ingest again: refused, dataset intact."""
    reason = chain.missing_reason()
    if reason:
        pytest.skip(reason)
    node = chain.start_node()
    try:
        m = chain.Market.deploy_all(node, with_v3=False)
        m.create_pools(with_v3=False)
        snap = node.rpc("evm_snapshot")
        m.trade(12, seed=1, with_v3=False)
        m.last_block = node.w3.eth.block_number
        out = tmp_path / "ds"
        ingest(ingest_config(m, out, partition_blocks=5, eth_usd=2000.0))
        before = snapshot_files(out)
        node.rpc("evm_revert", [snap])
        m.nonces.clear()
        m.trade(16, seed=2, txs_per_block=(1, 3), with_v3=False)
        m.last_block = node.w3.eth.block_number
        with pytest.raises(ReorgError, match="differs from the dataset's .* refusing to mix forks"):
            ingest(ingest_config(m, out, partition_blocks=5, eth_usd=2000.0))
        assert snapshot_files(out) == before
    finally:
        node.stop()
