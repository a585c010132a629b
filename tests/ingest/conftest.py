"""Fixtures of the ingestion tests: one ganache node per session with the real Uniswap contracts and a scripted
history, and the reference `gpubt ingest` of it (everything on 127.0.0.1, started and stopped here)."""
from __future__ import annotations

import os
import time

import pytest

from tests.ingest import chain

TRADE_BLOCKS = int(os.environ.get("GPUBT_INGEST_BLOCKS", "240"))
PARTITION_BLOCKS = 50


@pytest.fixture(scope="session")
def market():
    reason = chain.missing_reason()
    if reason:
        pytest.skip(reason)
    node = chain.start_node()
    try:
        t0 = time.perf_counter()
        m = chain.Market.deploy_all(node)
        m.create_pools()
        m.first_trade_block = node.w3.eth.block_number + 1
        m.trade(TRADE_BLOCKS, seed=7)
        m.last_block = node.w3.eth.block_number
        m.history_seconds = time.perf_counter() - t0
        yield m
    finally:
        node.stop()


def ingest_config(market, out, **kw):
    from gpubt.data.rpc import IngestConfig

    params = dict(rpc_url=market.node.url, out=str(out), first_block=1, last_block=market.last_block,
                  factories=market.factories(), chain_id=chain.CHAIN_ID, weth=market.c["weth"].address,
                  partition_blocks=PARTITION_BLOCKS, chunk_size=20, confirmations=0, eth_usd=2000.0,
                  progress=False, backoff_s=0.01)
    params.update(kw)
    return IngestConfig(**params)


@pytest.fixture(scope="session")
def reference(market, tmp_path_factory):
    """The fault-free ingest of the whole history: (dataset path, IngestResult)."""
    from gpubt.data.rpc import ingest

    out = tmp_path_factory.mktemp("ingest") / "reference"
    result = ingest(ingest_config(market, out))
    return out, result
