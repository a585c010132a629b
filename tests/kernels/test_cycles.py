"""The pair-screening kernel: CPU build (prange) vs the pure-Python source, find_state vs searchsorted (the CUDA
build under the simulator: tests/kernels/test_cudasim.py; sm_90 PTX of every device function and kernel, proof that
the GPU build compiles: tests/kernels/test_ptx.py)."""
import numpy as np
import pytest

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
