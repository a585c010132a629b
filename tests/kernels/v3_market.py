"""Random V3 pools (exact, gpubt.exact.v3) and random mixed V2/V3 screening batches for the kernel tests."""
import numpy as np

from gpubt.exact import v3 as exact_v3
from gpubt.market.batch import tick_sqrt_price

FEES = (100, 500, 3000, 10000)


def random_v3_pool(rng, fee=None, center_tick=0, liquidity_scale=1e20, n_positions=None):
    """An initialized exact V3Pool: one full-range position plus concentrated ones around `center_tick`."""
    fee = int(fee or rng.choice(FEES))
    pool = exact_v3.V3Pool(fee=fee)
    spacing = pool.tick_spacing
    tick = int(center_tick) + int(rng.integers(-200, 200))
    lo_ratio = exact_v3.get_sqrt_ratio_at_tick(tick)
    hi_ratio = exact_v3.get_sqrt_ratio_at_tick(tick + 1)
    pool.initialize(lo_ratio + (hi_ratio - lo_ratio) * int(rng.integers(0, 2**30)) // 2**30)
    full = (-(-exact_v3.MIN_TICK // spacing) * spacing, (exact_v3.MAX_TICK // spacing) * spacing)
    pool.mint(*full, int(liquidity_scale * rng.uniform(0.05, 0.3)), owner="full")
    base = pool.tick // spacing
    for i in range(int(n_positions or rng.integers(3, 15))):
        width = int(rng.integers(1, 40))
        lower = (base - int(rng.integers(0, width + 1)) + int(rng.integers(-10, 11))) * spacing
        pool.mint(lower, lower + width * spacing, int(liquidity_scale * rng.uniform(0.01, 1.0)), owner=i)
    return pool


def float_state(pool):
    """(sqrt price, liquidity, tick) and the tick table (index, sqrt price, liquidity_net) as the kernel takes them."""
    ticks = sorted(pool.ticks)
    return ((pool.sqrt_price_x96 / 2**96, float(pool.liquidity), pool.tick),
            (np.array(ticks, np.int32), np.array([tick_sqrt_price(t) for t in ticks]),
             np.array([float(pool.ticks[t].liquidity_net) for t in ticks])))


def copy_pool(pool):
    clone = exact_v3.V3Pool(fee=pool.fee, tick_spacing=pool.tick_spacing)
    clone.sqrt_price_x96, clone.tick, clone.liquidity = pool.sqrt_price_x96, pool.tick, pool.liquidity
    clone.ticks = {t: exact_v3.TickInfo(i.liquidity_gross, i.liquidity_net) for t, i in pool.ticks.items()}
    clone.initialized = list(pool.initialized)
    clone.positions = dict(pool.positions)
    return clone


def random_batch(seed=0, n_pools=12, n_paths=40, n_pairs=300, max_hops=3, n_blocks=5, v3_share=0.0,
                 max_steps=64):
    """(kernel args, outputs, exact) of a random batch; `exact` maps each log entry to its exact state:
    ("v2", r0, r1) or ("v3", V3Pool copy)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_pools)
    counts[0] = 0  # a pool with no state: its paths screen to zero
    is_v3_pool = rng.random(n_pools) < v3_share
    log_offsets = np.zeros(n_pools + 1, np.int64)
    np.cumsum(counts, out=log_offsets[1:])
    n_log = int(log_offsets[-1])
    log_key = np.concatenate([np.sort(rng.integers(-1, n_blocks << 20, c)) for c in counts]).astype(np.int64)
    base = 10 ** rng.uniform(18, 23, n_pools)
    pool_of = np.repeat(np.arange(n_pools), counts)
    log_reserve0 = base[pool_of] * rng.uniform(0.95, 1.05, n_log)
    log_reserve1 = base[pool_of] * rng.uniform(0.95, 1.05, n_log)
    exact = [("v2", int(a), int(b)) for a, b in zip(log_reserve0, log_reserve1)]
    fee_of = np.full(n_pools, 3000, np.int64)
    log_sqrt = np.zeros(n_log)
    log_liq = np.zeros(n_log)
    log_tick = np.zeros(n_log, np.int32)
    log_version = np.full(n_log, -1, np.int32)
    tables = []
    for p in np.flatnonzero(is_v3_pool & (counts > 0)).tolist():
        pool = random_v3_pool(rng, liquidity_scale=base[p] * rng.uniform(0.3, 1.0))
        fee_of[p] = pool.fee
        for j in range(log_offsets[p], log_offsets[p + 1]):
            if rng.random() < 0.3:  # a mint: a new tick-table version
                lower = (pool.tick // pool.tick_spacing - int(rng.integers(1, 6))) * pool.tick_spacing
                pool.mint(lower, lower + int(rng.integers(2, 12)) * pool.tick_spacing, int(base[p] * 0.2), owner="m")
            zfo = bool(rng.random() < 0.5)
            limit = exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1
            pool.swap(zfo, int(base[p] * rng.uniform(0.001, 0.05)), limit)
            (s, L, t), table = float_state(pool)
            log_sqrt[j], log_liq[j], log_tick[j] = s, L, t
            log_reserve0[j] = log_reserve1[j] = 0.0
            log_version[j] = len(tables)
            tables.append(table)
            exact[j] = ("v3", copy_pool(pool))
    tick_offsets = np.zeros(len(tables) + 1, np.int64)
    np.cumsum([len(t[0]) for t in tables], out=tick_offsets[1:])
    cat = lambda i, dtype: (np.concatenate([t[i] for t in tables]) if tables else np.empty(0)).astype(dtype)  # noqa
    hops = rng.integers(2, max_hops + 1, n_paths)
    path_pools = np.full((n_paths, max_hops), -1, np.int32)
    for p, h in enumerate(hops):
        path_pools[p, :h] = rng.choice(n_pools, h, replace=False)
    path_zfo = rng.random((n_paths, max_hops)) < 0.5
    path_is_v3 = (path_pools >= 0) & is_v3_pool[np.maximum(path_pools, 0)]
    path_gamma = np.where(path_pools >= 0, 1.0 - fee_of[np.maximum(path_pools, 0)] / 1e6, 0.0)
    path_gas_units = (50_000 + 60_000 * hops).astype(np.float64)
    path_start_slot = rng.integers(0, 2, n_paths).astype(np.int32)
    pair_block = rng.integers(0, n_blocks, n_pairs).astype(np.int32)
    pair_key = ((pair_block.astype(np.int64) << 20) + rng.integers(-1, 40, n_pairs)).astype(np.int64)
    pair_path = rng.integers(0, n_paths, n_pairs).astype(np.int32)
    wei_per_raw = np.stack([np.ones(n_blocks), rng.uniform(1e6, 1e7, n_blocks)], axis=1)
    gas_price_wei = rng.uniform(1e9, 1e11, n_blocks)
    args = (pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, path_is_v3, path_gas_units,
            path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt, log_liq, log_tick,
            log_version, tick_offsets, cat(0, np.int32), cat(1, np.float64), cat(2, np.float64), max_steps,
            wei_per_raw, gas_price_wei)
    outs = tuple(np.full(n_pairs, np.nan) for _ in range(3))
    return args, outs, dict(exact=exact, fee=fee_of, is_v3_pool=is_v3_pool)
