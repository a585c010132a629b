"""End to end: pack_batch on a small dataset, then SandwichStrategy / JitStrategy.evaluate on cpu and cudasim,
identical trades, every reported sandwich keeping each executed victim within its limit (exact)."""
import json

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.backend import Backend
from gpubt.data.store import Dataset
from gpubt.exact.gas import GasModel
from gpubt.exact.v2 import get_amount_out
from gpubt.market.batch import pack_batch
from gpubt.market.state import MarketState
from tests.market import rows
from gpubt.strategies.arbitrage.paths import enumerate_cycles
from gpubt.strategies.base import BatchTables
from gpubt.strategies.jit import JitStrategy
from gpubt.strategies.sandwich import SandwichStrategy

from ..conftest import hand_market, write_market

GAS = GasModel(32_952, 51_557, 10**9)


def victim_market():
    """The hand-built V2 market with each user swap also a pending router swap with 3 % slippage, plus a second
    victim right behind the first in block 100 on the same pool (a multi-victim group)."""
    tables = hand_market()
    events = tables["events"].to_pylist()
    # a second swap on pool 0 in block 100, tx 2 (after the 60-ETH swap at tx 1)
    first = next(e for e in events if e["block_number"] == 100 and e["pool_id"] == 0)
    r0, r1 = int(first["reserve0"]), int(first["reserve1"])
    amount = 25 * 10**18
    out = get_amount_out(amount, r0, r1)
    second = dict(first, tx_index=2, log_index=first["log_index"] + 1, amount0_in=amount, amount1_out=out,
                  reserve0=r0 + amount, reserve1=r1 - out, tx_hash="0x" + "cd" * 32)
    events.insert(events.index(first) + 1, second)
    for i, e in enumerate(events):
        e["log_index"] = i
    victims = []
    for e in events:
        zfo = int(e["amount0_in"]) > 0
        amount_in = int(e["amount0_in"] if zfo else e["amount1_in"])
        out = int(e["amount1_out"] if zfo else e["amount0_out"])
        victims.append({"block_number": e["block_number"], "tx_index": e["tx_index"], "tx_hash": e["tx_hash"],
                        "pool_id": e["pool_id"], "zero_for_one": zfo, "amount_in": amount_in,
                        "amount_out_min": out * 97 // 100})
    tables["events"] = pa.Table.from_pylist(events, schema=schema.EVENTS)
    tables["victims"] = pa.Table.from_pylist(victims, schema=schema.VICTIMS)
    return tables


def batch_of(ds, first, last, paths):
    state = MarketState(len(ds.pools), len(ds.tokens))
    state.load_snapshot(ds.read_partition("snapshots", ds.partitions[0]))
    sel = lambda t: t.filter((t["block_number"].to_numpy() >= first) & (t["block_number"].to_numpy() <= last))  # noqa
    blocks, events, prices, victims = (sel(ds.read(n)) for n in ("blocks", "events", "prices", "victims"))
    start = np.full(len(ds.tokens), np.nan)
    p0 = prices.filter(prices["block_number"].to_numpy() == first)
    start[p0.column("token_id").to_numpy()] = p0.column("price_usd").to_numpy()
    state.price_usd = start.copy()
    batch = pack_batch(first, last, blocks, events, prices, state, paths.pool_is_v3, 10**9, evaluate_top=True,
                       dataset=ds)
    return batch, BatchTables(blocks, events, victims, prices)


def run(strategy_cls, cfg, ds, batch, tables, backend):
    strategy = strategy_cls(cfg, ds, Backend(backend), GAS, 0)
    result = strategy.evaluate(batch, tables)
    return result, strategy.stats


def test_sandwich_on_a_hand_market_cpu_equals_cudasim(tmp_path):
    ds = Dataset(write_market(tmp_path / "victims", victim_market()))
    paths = enumerate_cycles(ds.pools, [0])
    batch, tables = batch_of(ds, 100, 105, paths)
    cfg = {"capital_eth": 100, "multi_victim": True, "max_victims_per_group": 8}
    cpu, stats = run(SandwichStrategy, cfg, ds, batch, tables, "cpu")
    sim, _ = run(SandwichStrategy, cfg, ds, batch, tables, "cudasim")
    assert rows(cpu.trades) == rows(sim.trades) and cpu.opportunities.equals(sim.opportunities)
    assert len(cpu.trades) >= 3, stats
    pa.Table.from_pylist(rows(cpu.trades), schema=schema.TRADES)  # the rows fit the TRADES schema
    assert {t["strategy"] for t in cpu.trades} == {"sandwich"}
    multi = 0
    for t in cpu.trades:
        detail = json.loads(t["detail"])
        for v in detail["victims"]:
            assert not v["reverted"] and int(v["amount_out"]) >= int(v["amount_out_min"])
        multi += len(detail["victims"]) > 1
        assert t["gross_profit_raw"] == t["amount_out"] - t["amount_in"] and t["net_profit_wei"] > 0
        assert t["gas_units"] == 2 * 87_984
    assert multi == 1  # block 100, pool 0: the two victims in one bundle beat either alone


@pytest.fixture(scope="module")
def tiny_v3(tiny_cache):
    from ..conftest import TINY

    return Dataset(tiny_cache / TINY)


def test_strategies_on_synthetic_tiny_with_v3_cpu_equals_cudasim(tiny_v3):
    ds = tiny_v3
    paths = enumerate_cycles(ds.pools, [0])
    # ten blocks where sandwiches pay, one around an exact-input and one around an exact-output victim (the
    # simulator takes ~0.5 s a victim); on tiny's small swaps a JIT position's fees do not pay its ~420k gas, so JIT
    # runs with its mint and burn gas at 1 to have trades to compare
    first = ds.first_block + 130
    batch, tables = batch_of(ds, first, first + 9, paths)
    assert tables.victims.num_rows > 0
    jit_cfg = {"capital_eth": 100, "mint_gas": 1, "burn_gas": 1}
    kinds = set()
    for cls, cfg in ((SandwichStrategy, {"capital_eth": 100}), (JitStrategy, jit_cfg)):
        cpu, _ = run(cls, cfg, ds, batch, tables, "cpu")
        sim, _ = run(cls, cfg, ds, batch, tables, "cudasim")
        assert cpu.trades, cls.name  # not a comparison of two empty lists
        assert rows(cpu.trades) == rows(sim.trades) and cpu.opportunities.equals(sim.opportunities), cls.name
        for t in cpu.trades:
            if t["strategy"] == "sandwich":
                for i, v in enumerate(json.loads(t["detail"])["victims"]):
                    assert i or not v["reverted"]  # the first victim executes; later ones may revert
                    if v["reverted"]:
                        assert v["amount_in"] == v["amount_out"] == "0"
                    elif v["kind"] == "exact_output":  # buys exactly its amountOut, pays at most amountInMax
                        assert v["amount_out"] == v["amount_out_exact"]
                        assert int(v["amount_in"]) <= int(v["amount_in_max"])
                    else:
                        assert int(v["amount_out"]) >= int(v["amount_out_min"])
                    kinds.add(v["kind"])
    assert kinds == {"exact_input", "exact_output"}
