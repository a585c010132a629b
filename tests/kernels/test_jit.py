"""The JIT-liquidity kernel and its exact fee accounting: exact swap loop == V3Pool.swap_outcome, fees vs a direct
pro-rata computation on hand-built V3 pools, float screen vs exact, CPU vs simulator vs Python
(sm_90 PTX: tests/kernels/test_ptx.py)."""
import numpy as np
import pytest

from gpubt.exact import v3 as exact_v3
from gpubt.backend import Backend
from gpubt.kernels.compile import build_kernel
from gpubt.exact.v3 import swap_with_fees
from gpubt.strategies.jit import exact_jit

from . import v3_market


def hand_pool(seed, fee=3000):
    return v3_market.random_v3_pool(np.random.default_rng(seed), fee=fee, liquidity_scale=1e21)


def position_around(pool, width):
    base = (pool.tick // pool.tick_spacing) * pool.tick_spacing
    return base - (width - 1) * pool.tick_spacing, base + width * pool.tick_spacing


@pytest.mark.parametrize("seed, zfo, frac", [(0, True, 1e-4), (1, False, 1e-3), (2, True, 0.05), (3, False, 0.2)])
def test_fee_accounting_vs_direct_pro_rata(seed, zfo, frac):
    pool = hand_pool(seed)
    lower, upper = position_around(pool, 2)
    dl = pool.liquidity // 3 + 1
    amount = int(pool.liquidity * frac)
    # the fee-tracking loop takes exactly the contract's steps: same amounts as V3Pool.swap_outcome
    a, b = v3_market.copy_pool(pool), v3_market.copy_pool(pool)
    a.mint(lower, upper, dl, owner="jit")
    b.mint(lower, upper, dl, owner="jit")
    limit = exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1
    ref = b.swap_outcome(zfo, amount, limit)
    got = swap_with_fees(a, zfo, amount, lower, upper)
    assert (got[0], got[1], got[2]) == (ref.amount0, ref.amount1, ref.ticks_crossed)
    assert (a.sqrt_price_x96, a.tick, a.liquidity) == (b.sqrt_price_x96, b.tick, b.liquidity)
    # direct: walk the steps again and give the position fee·ΔL/L of every step taken inside its range
    c = v3_market.copy_pool(pool)
    c.mint(lower, upper, dl, owner="jit")
    direct, steps, remaining = 0, 0, amount
    while remaining:
        tick_next, init = c.next_initialized_tick_within_one_word(c.tick, zfo)
        tick_next = min(max(tick_next, exact_v3.MIN_TICK), exact_v3.MAX_TICK)
        target = exact_v3.get_sqrt_ratio_at_tick(tick_next)
        s_next, step_in, _, fee = exact_v3.compute_swap_step(c.sqrt_price_x96, target, c.liquidity, remaining, c.fee)
        if lower <= c.tick < upper:
            direct += fee * dl / c.liquidity
        steps += 1
        remaining -= step_in + fee
        c.swap_outcome(zfo, step_in + fee, limit)  # the same step, committed
    res = exact_jit(v3_market.copy_pool(pool), zfo, amount, lower, upper, dl)
    assert res is not None and res["fees"] > 0
    assert abs(res["fees"] - direct) <= steps + 1  # floors: at most one unit per step (+1 for the final mulDiv)
    assert res["victim_out"] == -(ref.amount1 if zfo else ref.amount0)


def test_victim_gets_a_better_price_with_jit_liquidity():
    pool = hand_pool(7)
    lower, upper = position_around(pool, 1)
    amount = pool.liquidity // 1000
    plain = v3_market.copy_pool(pool).swap_outcome(True, amount, exact_v3.MIN_SQRT_RATIO + 1)
    res = exact_jit(v3_market.copy_pool(pool), True, amount, lower, upper, pool.liquidity)
    assert res["victim_out"] > -plain.amount1


def kernel_inputs(seed, n=30):
    """JIT screen args for random victims on the V3 pools of v3_market.random_batch, and the exact states."""
    args, _, info = v3_market.random_batch(seed, n_pools=8, n_blocks=3, v3_share=1.0)
    st = args[9:21]
    rng = np.random.default_rng(seed)
    pools = [p for p in range(8) if st[0][p + 1] > st[0][p]]
    pool, key, zfo, amount, exact = [], [], [], [], []
    for _ in range(n):
        p = int(rng.choice(pools))
        j = int(rng.integers(st[0][p], st[0][p + 1]))
        z = bool(rng.random() < 0.5)
        s, L = st[4][j], st[5][j]
        pool.append(p), key.append(int(st[1][j])), zfo.append(z)
        amount.append(float(int((L / s if z else L * s) * 10 ** rng.uniform(-4, -1.5))))
        exact.append(info["exact"][j][1])
    spacing = np.array([exact_v3.TICK_SPACINGS[int(f)] for f in info["fee"]], np.int32)
    wei = np.ones(n)
    kargs = (np.array(pool, np.int32), np.array(key, np.int64), np.array(zfo), np.array(amount), np.zeros(n),
             np.full(n, 1e22), wei, wei, wei, np.full(n, 1e7), 1 - info["fee"] / 1e6, spacing,
             np.array([1, 2, 3], np.int32), np.array([0.1, 0.5, 1.0]), st[0], st[1], *st[4:], 64, 390_000.0)
    return kargs, exact


def jit_outputs(n):
    return [np.zeros(n, np.int32), np.zeros(n, np.int32)] + [np.zeros(n) for _ in range(4)]


@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_equals_python_and_cudasim(seed):
    kargs, _ = kernel_inputs(seed)
    n = kargs[0].shape[0]
    o_cpu, o_py, o_sim = jit_outputs(n), jit_outputs(n), jit_outputs(n)
    Backend("cpu").launch("jit", "screen_jit", n, kargs + tuple(o_cpu))  # the disk-cached build the backtester runs
    py = build_kernel("jit", "python")
    for i in range(n):
        py.screen_jit(i, *kargs, *o_py)
    Backend("cudasim").launch("jit", "screen_jit", n, kargs + tuple(o_sim))
    for a, b, c in zip(o_cpu, o_py, o_sim):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert (o_cpu[5] > 0).any()


def test_float_screen_matches_exact_fees_and_profit():
    kargs, exact = kernel_inputs(2, n=20)
    n = kargs[0].shape[0]
    o = jit_outputs(n)
    build_kernel("jit", "python").screen_jit_cpu(*kargs, *o)
    checked = 0
    for i in range(n):
        if o[2][i] <= 0:
            continue
        res = exact_jit(v3_market.copy_pool(exact[i]), bool(kargs[2][i]), int(kargs[3][i]), int(o[0][i]),
                        int(o[1][i]), int(o[2][i]))
        assert res is not None
        assert res["fees"] == pytest.approx(o[3][i], rel=1e-6, abs=10)
        scale = max(abs(res["fees"]), 1)
        assert abs(res["gross"] - o[4][i]) <= 1e-4 * scale + 1e-9 * max(res["minted"])
        checked += 1
    assert checked >= 5
