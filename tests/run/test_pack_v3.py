"""Versioned V3 state in the batch (pack.py) against a plain replay of the dataset's events, and the whole
Backtest with V3 pools: batch-size invariance, start anywhere (state loaded from SNAPSHOTS + TICKS), cudasim ==
cpu, and exact re-pricing of mixed V2/V3 cycles."""
import numpy as np
import pyarrow as pa
import pytest

from gpubt.data.store import Dataset
from gpubt.run.loop import Backtest, _rows_in
from gpubt.exact import v3 as exact_v3
from gpubt.kernels.compile import build_kernel
from gpubt.market.batch import pack_batch, point_key, tick_sqrt_price
from gpubt.market.state import MarketState
from gpubt.strategies.arbitrage.paths import enumerate_cycles

from ..market import GAS, arbitrage


@pytest.fixture(scope="module")
def v3_dataset(tiny_cache):
    """The shared tiny market: 8 V3 pools among 30, two partitions of 100 blocks (18,000,000..18,000,199)."""
    from ..conftest import TINY

    ds = Dataset(tiny_cache / TINY)
    assert ds.partitions == [(18_000_000, 18_000_099), (18_000_100, 18_000_199)]
    return ds


def _naive_v3(events_rows, pool, block, tx):
    """(sqrt, liquidity, tick, {tick: (gross, net)}) of `pool` after every event <= (block, tx), by replay."""
    state, ticks = None, {}
    for e in events_rows:
        if e["pool_id"] != pool or (e["block_number"], e["tx_index"]) > (block, tx):
            continue
        if e["kind"] in ("mint", "burn"):
            d = int(e["liquidity_delta"])
            for t, sign in ((e["tick_lower"], 1), (e["tick_upper"], -1)):
                g, n = ticks.get(t, (0, 0))
                ticks[t] = (g + d, n + sign * d)
                if ticks[t][0] == 0:
                    del ticks[t]
        state = (int(e["sqrt_price_x96"]), int(e["liquidity"]), e["tick"])
    return None if state is None else (*state, ticks)


def test_v3_state_lookup_equals_replay(v3_dataset):
    ds = v3_dataset
    paths = enumerate_cycles(ds.pools, [0])
    v3_pools = np.flatnonzero(paths.pool_is_v3)
    first, last = 18_000_160, 18_000_185          # starts mid-partition: the state loads from its snapshot
    state = MarketState(len(paths.pool_is_v3), ds.tokens.num_rows)
    part = ds.partitions[1]
    state.load_snapshot(ds.read_partition("snapshots", part))
    events = ds.read_partition("events", part)
    state.apply_events(_rows_in(events, part[0], first - 1))
    sel = lambda name: _rows_in(ds.read_partition(name, part), first, last)  # noqa: E731
    batch = pack_batch(first, last, sel("blocks"), sel("events"), sel("prices"), state, paths.pool_is_v3, 10**9, True,
                       dataset=ds)
    rows = ds.read("events").to_pylist()
    find_state = build_kernel("cycles", "python").find_state
    checked = 0
    for block in range(first, last + 1, 3):
        for tx in (-1, 0, 2, 5, 9, 40):
            key = int(point_key(block - first, tx))
            for pool in v3_pools.tolist():
                want = _naive_v3(rows, pool, block - 1 if tx < 0 else block, 10**6 if tx < 0 else tx)
                sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
                assert (sqrt_price, liquidity, tick) == want[:3]
                assert dict(zip(table[0], zip(table[2], table[1]))) == want[3]
                i = find_state(batch.log_offsets, batch.log_key, pool, key)
                v = batch.log_tick_version[i]
                lo, hi = batch.tick_offsets[v], batch.tick_offsets[v + 1]
                assert batch.tick_index[lo:hi].tolist() == list(table[0])
                assert batch.tick_sqrt_price[lo:hi].tolist() == [tick_sqrt_price(t) for t in table[0]]
                assert batch.log_sqrt_price[i] == sqrt_price / 2**96 and batch.log_tick[i] == tick
                checked += 1
    assert checked > 100
    mint_burn = [r for r in rows if first <= r["block_number"] <= last and r["kind"] in ("mint", "burn")
                 and paths.pool_is_v3[r["pool_id"]]]
    assert len(batch.tick_versions) == len(v3_pools) + len(mint_burn)  # one version per mint/burn


def _backtest(ds, batch_blocks, backend="cpu", first=None, last=None):
    strategy = arbitrage(ds, backend, min_profit_wei=10**14)
    return Backtest(ds, strategy.backend, [strategy], GAS, batch_blocks, first_block=first, last_block=last,
                    progress=False).run()


@pytest.fixture(scope="module")
def full_run(v3_dataset):
    return _backtest(v3_dataset, 200)


def test_v3_trades_reprice_exactly(v3_dataset, full_run):
    """Trades through V3 pools exist (mixed cycles included) and re-price exactly: each hop replayed here with
    gpubt.exact (V2 getAmountOut on the event reserves, V3 V3Pool on the replayed state)."""
    ds = v3_dataset
    pools = {p["pool_id"]: p for p in ds.pools.to_pylist()}
    rows = ds.read("events").to_pylist()
    trades = full_run.trades().to_pylist()
    with_v3 = [t for t in trades if any(pools[p]["protocol"] == "v3" for p in t["pools"])]
    mixed = [t for t in with_v3 if any(pools[p]["protocol"] == "v2" for p in t["pools"])]
    assert len(with_v3) >= 3 and mixed
    from gpubt.exact.v2 import get_amount_out

    for t in with_v3:
        block, tx = (t["block_number"] - 1, 10**6) if t["tx_index"] < 0 else (t["block_number"], t["tx_index"])
        amount = int(t["amount_in"])
        for pool, zfo in zip(t["pools"], t["zero_for_one"]):
            info = pools[pool]
            if info["protocol"] == "v3":
                sqrt_price, liquidity, tick, ticks = _naive_v3(rows, pool, block, tx)
                q = exact_v3.V3Pool(fee=info["fee_ppm"], tick_spacing=info["tick_spacing"])
                q.sqrt_price_x96, q.liquidity, q.tick = sqrt_price, liquidity, tick
                q.ticks = {k: exact_v3.TickInfo(g, n) for k, (g, n) in ticks.items()}
                q.initialized = sorted(k // info["tick_spacing"] for k in ticks)
                a0, a1 = q.swap(zfo, amount, exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1)
                assert (a0 if zfo else a1) == amount
                amount = -(a1 if zfo else a0)
            else:
                last = [e for e in rows
                        if e["pool_id"] == pool and (e["block_number"], e["tx_index"]) <= (block, tx)][-1]
                r0, r1 = int(last["reserve0"]), int(last["reserve1"])
                amount = get_amount_out(amount, r0 if zfo else r1, r1 if zfo else r0, info["fee_ppm"])
        assert amount == int(t["amount_out"]) and amount - int(t["amount_in"]) == int(t["gross_profit_wei"])


def test_v3_results_do_not_depend_on_batch_size(v3_dataset, full_run):
    many = _backtest(v3_dataset, 7)
    assert full_run.trades().num_rows > 0
    assert full_run.trades().equals(many.trades())
    assert full_run.opportunities().equals(many.opportunities())


def test_v3_run_can_start_anywhere(v3_dataset, full_run):
    """A run starting mid-partition loads the V3 state from the partition's SNAPSHOTS + TICKS + events: its
    trades after the first block's top equal the full run's."""
    start = 18_000_173  # in the second partition: its SNAPSHOTS + TICKS, then its events up to the start
    late = _backtest(v3_dataset, 11, first=start).trades()
    keep = lambda t: t.filter(pa.compute.and_(pa.compute.greater_equal(t["block_number"], start),  # noqa: E731
                                              pa.compute.greater_equal(t["tx_index"], 0)))
    assert keep(late).num_rows > 0 and keep(late).equals(keep(full_run.trades()))


def test_v3_cudasim_backtest_equals_cpu(v3_dataset, full_run):
    trades = full_run.trades().to_pylist()
    pools = {p["pool_id"]: p["protocol"] for p in v3_dataset.pools.to_pylist()}
    block = next(t["block_number"] for t in trades if any(pools[p] == "v3" for p in t["pools"]))
    first, last = block, block + 2
    sim = _backtest(v3_dataset, 2, "cudasim", first, last)
    cpu = _backtest(v3_dataset, 2, "cpu", first, last)
    assert sim.trades().num_rows > 0
    assert sim.trades().equals(cpu.trades()) and sim.opportunities().equals(cpu.opportunities())
