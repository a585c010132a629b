"""The pair-screening kernel: CPU build (prange) vs CUDA build under the simulator vs the pure-Python source,
and every device function and kernel compiled to sm_90 PTX (proof that the GPU build compiles, no GPU needed)."""
import numpy as np
import pytest

from gpubt.backend import Backend

from . import v3_market


def random_batch(seed=0, n_pools=12, n_paths=40, n_pairs=300, max_hops=3, n_blocks=5, v3_share=0.0):
    """(kernel args, outputs) of a random batch; v3_share > 0 makes that share of the pools V3 (mixed cycles)."""
    args, outs, _ = v3_market.random_batch(seed, n_pools, n_paths, n_pairs, max_hops, n_blocks, v3_share)
    return args, outs


def run_reference(ref_kernels, args, outs):
    for i in range(args[0].shape[0]):
        ref_kernels.screen_pair(i, *args, *outs)


@pytest.mark.parametrize("seed, v3_share", [(0, 0.0), (1, 0.0), (2, 0.0), (0, 0.5), (4, 0.7)])
def test_cpu_equals_python_reference(cpu_kernels, ref_kernels, seed, v3_share):
    args, outs_cpu = random_batch(seed, v3_share=v3_share)
    _, outs_ref = random_batch(seed, v3_share=v3_share)
    cpu_kernels.screen_pairs_cpu(*args, *outs_cpu)
    run_reference(ref_kernels, args, outs_ref)
    for a, b in zip(outs_cpu, outs_ref):
        np.testing.assert_array_equal(a, b)
    assert (outs_cpu[1] > 0).any() and (outs_cpu[1] == 0).any()  # the batch exercises both outcomes


@pytest.mark.parametrize("seed, v3_share", [(0, 0.0), (3, 0.0), (5, 0.6)])
def test_cudasim_equals_cpu(seed, v3_share):
    """The CUDA kernel (cuda.grid, one thread per pair) under the simulator equals the CPU build.

    CPU and simulator both evaluate in IEEE float64 without FMA, so equality is exact here; on a real GPU
    a·b+c may fuse into one FMA: tests/kernels/test_gpu.py compares with rtol 1e-12 there.
    """
    args, outs_cpu = random_batch(seed, n_pairs=200, v3_share=v3_share)
    _, outs_sim = random_batch(seed, n_pairs=200, v3_share=v3_share)
    Backend("cpu").screen_pairs(*args, *outs_cpu)
    Backend("cudasim").screen_pairs(*args, *outs_sim)  # 200 pairs → 2 blocks of 128 threads, tail masked
    for a, b in zip(outs_cpu, outs_sim):
        np.testing.assert_array_equal(a, b)


def test_find_state_matches_searchsorted(cpu_kernels):
    args, _ = random_batch(5)
    log_offsets, log_key = args[9], args[10]
    rng = np.random.default_rng(5)
    for _ in range(500):
        pool = int(rng.integers(0, len(log_offsets) - 1))
        key = int(rng.integers(-2, 6 << 20))
        lo, hi = log_offsets[pool], log_offsets[pool + 1]
        expect = lo + np.searchsorted(log_key[lo:hi], key, side="right") - 1
        expect = -1 if expect < lo else expect
        assert cpu_kernels.find_state(log_offsets, log_key, pool, key) == expect


def test_every_device_function_and_kernel_compiles_to_ptx(ptx_without_gpu):
    from numba import float64, int32, int64, boolean
    from numba.types import Array

    from gpubt.kernels import compile as kc

    a1 = lambda t: Array(t, 1, "C")  # noqa: E731
    a2 = lambda t: Array(t, 2, "C")  # noqa: E731
    f8, i4, i8 = float64, int32, int64
    signatures = {
        "v2_amount_out": (f8, f8, f8, f8),
        "compose_hop": (f8, f8, f8, f8, f8, f8),
        "cycle_out": (f8, f8, f8, f8),
        "optimal_input": (f8, f8, f8),
        "optimal_profit": (f8, f8, f8),
        "v3_next_tick_position": (i8, boolean, a1(i4), i8, i8),
        "v3_tick_at_sqrt_price": (f8, i8, i8),
        "v3_swap_exact_in": (f8, boolean, f8, f8, f8, i4, a1(i4), a1(f8), a1(f8), i8, i8, i8),
        "v3_marginal_rate": (boolean, f8, f8),
        "v3_virtual_reserves": (boolean, f8, f8),
        "find_state": (a1(i8), a1(i8), i4, i8),
    }
    state = (a1(i8), a1(i8), a1(f8), a1(f8), a1(f8), a1(f8), a1(i4), a1(i4), a1(i8), a1(i4), a1(f8), a1(f8))
    signatures["cycle_eval"] = (f8, i4, i8, a2(i4), a2(boolean), a2(f8), a2(boolean), *state, i8)
    signatures["screen_cycle"] = (i4, i8, a2(i4), a2(boolean), a2(f8), a2(boolean), *state, i8)
    screen_args = (a1(i8), a1(i4), a1(i4), a2(i4), a2(boolean), a2(f8), a2(boolean), a1(f8), a1(i4), *state, i8,
                   a2(f8), a1(f8), a1(f8), a1(f8), a1(f8))
    signatures["screen_pair"] = (int64, *screen_args)
    ptx_without_gpu(kc.DEVICE_FUNCTIONS, signatures, kc.build_cuda(), kc.cycles.screen_pairs_cuda, screen_args)
