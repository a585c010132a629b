"""Scalar V2 device functions: numba-CPU build vs CUDA build (simulator) vs the plain-Python source."""
import math

import numpy as np
import pytest
from numba import cuda  # noqa: F401  (the simulator swaps this global while _compose_kernel runs)

from gpubt.exact.v2 import path_profit, refine_optimal_input
from gpubt.kernels.compile import rebind


def _random_hops(rng, n_hops):
    reserves_in = 10 ** rng.uniform(3, 24, n_hops)
    reserves_out = reserves_in * 10 ** rng.uniform(-3, 3, n_hops)
    return reserves_in, reserves_out


def _compose(fns, reserves_in, reserves_out, gamma=0.997):
    k, m, n = 1.0, 1.0, 0.0
    for r_in, r_out in zip(reserves_in, reserves_out):
        k, m, n = fns.compose_hop(k, m, n, r_in, r_out, gamma)
    return k, m, n


def test_cpu_build_equals_python_source(cpu_kernels, ref_kernels):
    rng = np.random.default_rng(1)
    for _ in range(500):
        r_in, r_out = _random_hops(rng, int(rng.integers(2, 5)))
        x = 10 ** rng.uniform(0, 24)
        assert cpu_kernels.v2_amount_out(x, r_in[0], r_out[0], 0.997) == ref_kernels.v2_amount_out(x, r_in[0], r_out[0], 0.997)
        kmn_cpu = _compose(cpu_kernels, r_in, r_out)
        kmn_ref = _compose(ref_kernels, r_in, r_out)
        assert kmn_cpu == kmn_ref
        assert cpu_kernels.optimal_input(*kmn_cpu) == ref_kernels.optimal_input(*kmn_ref)
        assert cpu_kernels.optimal_profit(*kmn_cpu) == ref_kernels.optimal_profit(*kmn_ref)


def _compose_kernel(r_in, r_out, out):
    """Test kernel: compose 3 hops and take the optimum, through the device functions bound by rebind()."""
    i = cuda.grid(1)
    if i < r_in.shape[0]:
        k, m, n = 1.0, 1.0, 0.0
        for h in range(3):
            k, m, n = compose_hop(k, m, n, r_in[i, h], r_out[i, h], 0.997)
        x = optimal_input(k, m, n)
        out[i, 0], out[i, 1], out[i, 2] = k, m, n
        out[i, 3] = cycle_out(x, k, m, n) - x if x > 0 else 0.0
        out[i, 4], out[i, 5] = optimal_profit(k, m, n)


def test_simulator_build_equals_cpu_build(cpu_kernels, sim_kernels):
    import numba.cuda.simulator as sim

    rng = np.random.default_rng(2)
    n = 64
    r_in = 10 ** rng.uniform(3, 24, (n, 3))
    r_out = r_in * 10 ** rng.uniform(-2, 2, (n, 3))
    out_sim = np.zeros((n, 6))
    kernel = rebind(_compose_kernel, {"compose_hop": sim_kernels.compose_hop, "optimal_input": sim_kernels.optimal_input,
                                      "cycle_out": sim_kernels.cycle_out, "optimal_profit": sim_kernels.optimal_profit})
    sim.jit(kernel)[1, n](r_in, r_out, out_sim)
    for i in range(n):
        k, m, n_ = _compose(cpu_kernels, r_in[i], r_out[i])
        x = cpu_kernels.optimal_input(k, m, n_)
        profit = cpu_kernels.cycle_out(x, k, m, n_) - x if x > 0 else 0.0
        assert tuple(out_sim[i, :3]) == (k, m, n_)
        assert out_sim[i, 3] == profit
        assert tuple(out_sim[i, 4:]) == cpu_kernels.optimal_profit(k, m, n_)


@pytest.mark.parametrize("n_hops", [2, 3, 4])
def test_closed_form_optimum_matches_brute_force(cpu_kernels, n_hops):
    """x* = (sqrt(KM) − M)/N vs an exhaustive integer search of the exact profit on small random cycles."""
    rng = np.random.default_rng(n_hops)
    checked = 0
    while checked < 25:
        r_in = rng.integers(10_000, 200_000, n_hops)
        r_out = (r_in * rng.uniform(0.9, 1.3, n_hops)).astype(np.int64)
        k, m, n = _compose(cpu_kernels, r_in.astype(float), r_out.astype(float))
        x_star = cpu_kernels.optimal_input(k, m, n)
        # brute force: exact integer profit at every input up to the largest reserve, vectorized
        xs = np.arange(1, int(r_in.max()), dtype=np.int64)
        amount = xs.copy()
        for a, b in zip(r_in, r_out):
            with_fee = amount * 997
            amount = with_fee * b // (a * 1000 + with_fee)
        profit = amount - xs
        best = int(profit.max())
        if best <= 0:
            assert x_star == 0.0 or path_profit(max(1, int(x_star)), r_in.tolist(), r_out.tolist(), [3000] * n_hops) <= 0
            continue
        checked += 1
        # each hop floors its output (< 1 raw unit), so the exact profit is the real profit minus up to ~1 unit
        # per hop: the optimum is a plateau of inputs within n_hops units of the best, and x* must lie on it
        plateau = xs[profit >= best - n_hops]
        assert plateau.min() - 1 <= x_star <= plateau.max() + 1, (x_star, plateau.min(), plateau.max())
        # integer refinement from x* finds the exact integer maximum, and its profit is exact for its input
        x_ref, p_ref = refine_optimal_input(x_star, r_in.tolist(), r_out.tolist(), [3000] * n_hops)
        assert p_ref == best
        assert p_ref == path_profit(x_ref, r_in.tolist(), r_out.tolist(), [3000] * n_hops)


def test_optimal_input_is_zero_when_unprofitable(cpu_kernels):
    k, m, n = _compose(cpu_kernels, [1e21, 2e9], [2e9, 0.99e21])
    assert k <= m and cpu_kernels.optimal_input(k, m, n) == 0.0


def test_optimal_input_survives_many_hops(cpu_kernels):
    """sqrt(k)·sqrt(m) keeps 8 hops of 1e24-wei reserves finite (k·m alone would overflow)."""
    k, m, n = _compose(cpu_kernels, [1e24] * 8, [1.01e24] * 8)
    x = cpu_kernels.optimal_input(k, m, n)
    assert math.isfinite(x) and x > 0


def test_optimal_profit_is_the_optimum_and_its_profit(cpu_kernels):
    """optimal_profit's (√k − √m)²/n is out(x*) − x* at x* = optimal_input, computed without cancellation:
    on cycles that pay it agrees with the two-division form to 1e-9, and is (0, 0) on those that do not."""
    rng = np.random.default_rng(5)
    paying = 0
    for _ in range(2000):
        r_in = 10 ** rng.uniform(18, 24, 3)
        r_out = r_in * rng.uniform(0.97, 1.03, 3)
        k, m, n = _compose(cpu_kernels, r_in, r_out)
        x, gross = cpu_kernels.optimal_profit(k, m, n)
        x_star = cpu_kernels.optimal_input(k, m, n)
        if x_star == 0.0:
            assert (x, gross) == (0.0, 0.0)
            continue
        paying += 1
        assert x == pytest.approx(x_star, rel=1e-9)
        assert gross == pytest.approx(cpu_kernels.cycle_out(x_star, k, m, n) - x_star, rel=1e-9)
        assert gross > 0
    assert 200 < paying < 1800
    # a cycle through an empty pool composes to n = 0 (and k = 0): no optimum, and no error either
    assert cpu_kernels.optimal_profit(*_compose(cpu_kernels, [1e21, 1e21], [0.0, 1e21])) == (0.0, 0.0)
