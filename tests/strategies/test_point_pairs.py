"""The ordered pass's pair lists at a point (strategies/arbitrage/paths.point_pairs, one numba call) against the NumPy
steps it replaced in Arbitrage.rescreen, on random cycles, forks, candidates and state-less pools."""
import numpy as np
import pyarrow as pa
import pytest

from gpubt.strategies.arbitrage.paths import enumerate_cycles, point_pairs


def market(rng, n_tokens=7, n_pools=24):
    token0 = rng.integers(0, n_tokens, n_pools)
    token1 = (token0 + rng.integers(1, n_tokens, n_pools)) % n_tokens
    return pa.table({"pool_id": np.arange(n_pools, dtype=np.int32), "token0": token0.astype(np.int32),
                     "token1": token1.astype(np.int32), "fee_ppm": np.full(n_pools, 3000, np.int32),
                     "protocol": ["v3" if p % 5 == 0 else "v2" for p in range(n_pools)]})


def reference(paths, key, relevant, keys, pair_path, ck, cp, points, first_key):
    """Arbitrage.rescreen's NumPy steps before point_pairs."""
    lo, hi = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
    stale_pairs = int(relevant[paths.pools[pair_path[lo:hi]]].any(axis=1).sum()) if lo < hi else 0
    c_lo, c_hi = np.searchsorted(ck, key, "left"), np.searchsorted(ck, key, "right")
    touching = relevant[paths.pools[cp[c_lo:c_hi]]].any(axis=1)
    path = np.unique(paths.through(np.asarray(points, np.int32))) if len(points) else np.zeros(0, np.int32)
    path = path[relevant[paths.pools[path]].any(axis=1)]
    path = path[(first_key[paths.pools[path]] <= key).all(axis=1)]
    return lo, hi, stale_pairs, c_lo, c_hi, touching, path


@pytest.mark.parametrize("seed", range(5))
def test_point_pairs_equals_the_numpy_steps(seed):
    rng = np.random.default_rng(seed)
    paths = enumerate_cycles(market(rng), [0, 1], max_hops=3, min_hops=2)
    n_pools = len(paths.pool_offsets) - 1
    assert len(paths) > 10
    keys = np.sort(rng.integers(-1, 40, 300)).astype(np.int64)
    pair_path = rng.integers(0, len(paths), 300).astype(np.int32)
    ck = np.sort(rng.integers(-1, 40, 60)).astype(np.int64)
    cp = rng.integers(0, len(paths), 60).astype(np.int32)
    first_key = np.append(rng.integers(-1, 30, n_pools), np.iinfo(np.int64).min).astype(np.int64)
    seen = np.zeros(len(paths), np.bool_)
    for _ in range(200):
        key = int(rng.integers(-1, 40))
        relevant = np.append(rng.random(n_pools) < rng.choice([0.0, 0.1, 0.5]), False)
        points = np.sort(rng.choice(n_pools, int(rng.integers(0, 4)), replace=False)).astype(np.int32)
        got = point_pairs(key, relevant, keys, pair_path, ck, cp, points, paths.pools, paths.pool_offsets,
                          paths.pool_paths, first_key, seen)
        want = reference(paths, key, relevant, keys, pair_path, ck, cp, points, first_key)
        assert got[:5] == want[:5] and got[5].tolist() == want[5].tolist()
        assert got[6].dtype == want[6].dtype and got[6].tolist() == want[6].tolist()
        assert not seen.any()


def select_reference(pair_key, pair_path, net_wei, paths):
    """pricing.select's Python walk before it moved into numba."""
    order = np.lexsort((-net_wei, pair_key))
    chosen, current_key, used = [], None, set()
    for i in order.tolist():
        if pair_key[i] != current_key:
            current_key, used = pair_key[i], set()
        pools = paths.pools[pair_path[i], :paths.hops[pair_path[i]]].tolist()
        if used.isdisjoint(pools):
            used.update(pools)
            chosen.append(i)
    return np.asarray(chosen, np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_select_equals_the_python_walk(seed):
    """Best first at each point, no two chosen sharing a pool; ties in net (rounded nets) keep the input order."""
    from gpubt.strategies.arbitrage.pricing import select

    rng = np.random.default_rng(seed)
    paths = enumerate_cycles(market(rng), [0, 1], max_hops=3, min_hops=2)
    for n, points in ((400, 30), (12, 1), (1, 1), (0, 1)):
        key = np.sort(rng.integers(-1, points - 1, n) if points > 1 else np.full(n, 7)).astype(np.int64)
        path = rng.integers(0, len(paths), n).astype(np.int32)
        net = np.round(rng.normal(0, 1e16, n), -15)
        got, want = select(key, path, net, paths), select_reference(key, path, net, paths)
        np.testing.assert_array_equal(got, want)
        if n > 100:
            assert 0 < len(got) < n
