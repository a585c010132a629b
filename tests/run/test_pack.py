"""Versioned state, cycle enumeration, evaluation pairs and batch invariance on the hand-built market."""
import numpy as np
import pytest

from gpubt.backend import Backend, ContextPool
from gpubt.data.store import Dataset
from gpubt.run.loop import Backtest
from gpubt.market.batch import point_key
from gpubt.strategies.arbitrage.paths import enumerate_cycles, evaluation_pairs

from ..market import GAS, arbitrage, pack


def _tokens_of(paths, p, pools_table):
    t0 = pools_table.column("token0").to_numpy()
    t1 = pools_table.column("token1").to_numpy()
    token = int(paths.start_token[p])
    for h in range(paths.hops[p]):
        pool, zfo = paths.pools[p, h], paths.zero_for_one[p, h]
        assert token == (t0[pool] if zfo else t1[pool])
        token = int(t1[pool] if zfo else t0[pool])
    return token


def test_enumerate_cycles(hand_dataset):
    ds = Dataset(hand_dataset)
    paths = enumerate_cycles(ds.pools, [0], max_hops=3)
    # 2-hop: WETH/USDC on two venues, both directions (2); 3-hop: WETH→USDC→LINK→WETH via either
    # WETH/USDC pool, in both directions (4)
    assert len(paths) == 6 and sorted(paths.hops.tolist()) == [2, 2, 3, 3, 3, 3]
    for p in range(len(paths)):
        assert _tokens_of(paths, p, ds.pools) == paths.start_token[p] == 0  # every cycle closes
        assert len(set(paths.pools[p, :paths.hops[p]].tolist())) == paths.hops[p]
    assert len(enumerate_cycles(ds.pools, [0], max_hops=2)) == 2
    # the CSR index lists exactly the paths through each pool
    for pool in range(4):
        expect = sorted(p for p in range(len(paths)) if pool in paths.pools[p].tolist())
        assert sorted(paths.through(np.array([pool])).tolist()) == expect
    with pytest.raises(ValueError):
        enumerate_cycles(ds.pools, [0], max_hops=1)


def _naive_state(ds, pool, block, tx):
    """Reserves of `pool` after every event with (block_number, tx_index) <= (block, tx), by plain replay."""
    snap = ds.read("snapshots").to_pylist()
    r = next((int(s["reserve0"]), int(s["reserve1"])) for s in snap if s["pool_id"] == pool)
    for e in ds.read("events").to_pylist():
        if e["pool_id"] == pool and (e["block_number"], e["tx_index"]) <= (block, tx):
            r = (int(e["reserve0"]), int(e["reserve1"]))
    return r


def test_state_lookup_equals_replay(hand_dataset):
    ds = Dataset(hand_dataset)
    batch = pack(ds, 100, 105)
    points = [(block, tx, pool) for block in range(100, 106) for tx in (-1, 0, 1, 2, 3, 4, 7) for pool in range(4)]
    pools = np.array([p for _, _, p in points])
    keys = np.array([int(point_key(b - 100, t)) for b, t, _ in points])
    r0, r1 = batch.exact_reserves(pools, keys)
    for (block, tx, pool), a, b in zip(points, r0, r1):
        want = _naive_state(ds, pool, block if tx >= 0 else block - 1, tx if tx >= 0 else 10**6)
        assert (a, b) == want
        # the kernel's find_state picks the same log entry
    idx = batch.log_index(pools, keys)
    from gpubt.kernels.compile import build_kernel
    find_state = build_kernel("cycles", "python").find_state
    assert idx.tolist() == [find_state(batch.log_offsets, batch.log_key, int(p), int(k)) for p, k in zip(pools, keys)]
    # the scalar lookups a trade leg uses agree with the vectorized ones
    assert [batch.log_entry(int(p), int(k)) for p, k in zip(pools, keys)] == idx.tolist()
    assert [batch.exact_reserve(int(p), int(k)) for p, k in zip(pools, keys)] == list(zip(r0, r1))
    # before a pool's first log entry there is no state: −1, never the previous pool's last entry
    first_key = batch.log_key[batch.log_offsets[1]]
    assert batch.log_entry(1, int(first_key) - 1) == -1 == batch.log_index(np.array([1]), np.array([first_key - 1]))[0]
    with pytest.raises(KeyError, match="no state"):
        batch.exact_reserve(1, int(first_key) - 1)


def test_pairs(hand_dataset):
    ds = Dataset(hand_dataset)
    strategy = arbitrage(ds)
    paths = strategy.paths
    pair_key, pair_path, _ = strategy.pairs(pack(ds, 100, 105))
    codes = list(zip(pair_key.tolist(), pair_path.tolist()))
    assert len(codes) == len(set(codes))  # no (point, path) twice
    top = [p for k, p in codes if k == -1]
    assert sorted(top) == list(range(len(paths)))  # the run's first block: every path at the top
    # after each swap: exactly the paths through the swapped pool
    for e in ds.read("events").to_pylist():
        key = int(point_key(e["block_number"] - 100, e["tx_index"]))
        at_point = sorted(p for k, p in codes if k == key)
        assert at_point == sorted(paths.through(np.array([e["pool_id"]])).tolist())
    assert set(((pair_key + 1) >> 20).tolist()) <= set(range(6))


@pytest.mark.parametrize("seed", range(4))
def test_evaluation_pairs_equal_sorting_every_pair(seed):
    """The key-ordered merge equals the plain way: every (key, path) pair sorted, duplicates dropped. Triggers
    come in log order (by pool, then key) and many keys have several pools (a tx touching several)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_pools, n_tokens = 30, 6
    t0 = rng.integers(0, n_tokens, n_pools)
    t1 = (t0 + rng.integers(1, n_tokens, n_pools)) % n_tokens
    pools = pa.table({"pool_id": np.arange(n_pools, dtype=np.int32), "token0": t0.astype(np.int32),
                      "token1": t1.astype(np.int32), "fee_ppm": np.full(n_pools, 3000, np.int32),
                      "protocol": ["v2"] * n_pools})
    paths = enumerate_cycles(pools, [0])
    assert len(paths) > 10
    trig_pool = np.sort(rng.integers(0, n_pools, 400))
    trig_key = rng.integers(0, 60, 400).astype(np.int64)
    trig_key = trig_key[np.lexsort((trig_key, trig_pool))]
    for top in (False, True):
        key, path = evaluation_pairs(trig_pool, trig_key, paths, top)
        counts = paths.pool_offsets[trig_pool + 1] - paths.pool_offsets[trig_pool]
        ref_key = np.repeat(trig_key, counts)
        ref_path = paths.through(trig_pool)
        if top:
            ref_key = np.concatenate([np.full(len(paths), -1), ref_key])
            ref_path = np.concatenate([np.arange(len(paths)), ref_path])
        ref = sorted(set(zip(ref_key.tolist(), ref_path.tolist())))
        assert list(zip(key.tolist(), path.tolist())) == ref
        assert key.dtype == np.int64 and path.dtype == np.int32
    # no cycles (strategy=[liquidation,cexdex]): no pairs, also where a tx touches several pools
    none = enumerate_cycles(pools, [])
    key, path = evaluation_pairs(trig_pool, trig_key, none, True)
    assert len(none) == 0 and len(key) == len(path) == 0


def _backtest(ds, batch_blocks, backend="cpu", threshold=0, **options):
    strategy = arbitrage(ds, backend, min_profit_wei=threshold)
    return Backtest(ds, strategy.backend, [strategy], GAS, batch_blocks, progress=False, **options).run()


def test_results_do_not_depend_on_batch_size(hand_dataset):
    ds = Dataset(hand_dataset)
    one = _backtest(ds, 6)
    many = _backtest(ds, 1)
    assert one.trades().num_rows > 0
    assert one.trades().equals(many.trades())
    assert one.opportunities().equals(many.opportunities())
    assert many.stats["batches"] == 6


def test_context_buffers_are_reused(hand_dataset):
    ds = Dataset(hand_dataset)
    bt = _backtest(ds, 1)
    # on the CPU only the 3 output buffers are pooled (inputs are read in place); each grows only when a batch
    # is bigger than every earlier one (×1.5 steps)
    assert bt.context.allocations <= 3 * 4
    bt2 = _backtest(ds, 6)
    assert bt2.context.allocations == 3


def test_context_uploads_reuse_device_buffers():
    """The GPU path (copy=True): uploads land in pooled buffers, reallocated only when a batch outgrows them."""
    pool = ContextPool(Backend("cpu"), copy=True)
    sizes = [10, 8, 10, 14, 3, 15, 15, 40]
    for n in sizes:
        a = np.arange(n, dtype=np.int64)
        view = pool.upload("pair_key", a)
        assert view is not a and np.array_equal(view, a)
    assert pool.allocations == 3  # 10, then 15 (= 10 × 1.5 covers 14 and 15), then 40
    in_place = ContextPool(Backend("cpu"))
    a = np.arange(5)
    assert in_place.upload("pair_key", a) is a and in_place.allocations == 0


def test_cudasim_backtest_equals_cpu(hand_dataset):
    ds = Dataset(hand_dataset)
    assert _backtest(ds, 3, "cudasim").trades().equals(_backtest(ds, 3, "cpu").trades())


def test_threshold_filters(hand_dataset):
    ds = Dataset(hand_dataset)
    loose = _backtest(ds, 6, threshold=0).opportunities()
    strict = _backtest(ds, 6, threshold=10**18).opportunities()
    net = loose.column("screen_net_profit_wei").to_numpy()
    assert strict.num_rows == int((net > 10**18).sum()) < loose.num_rows


def test_batches_shrink_under_the_memory_budget(hand_dataset, caplog):
    ds = Dataset(hand_dataset)
    roomy = _backtest(ds, 6)
    with caplog.at_level("WARNING", logger="gpubt"):
        tight = _backtest(ds, 6, memory_budget_mb=1500 / 2**20)
    assert tight.batch_blocks < 6 and tight.stats["batches"] > 1
    assert "memory budget" in caplog.text and "batch_blocks shrinks" in caplog.text
    assert tight.trades().equals(roomy.trades())
