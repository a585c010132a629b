"""The counter-based RNG (kernels/rng.py): Random123's known answers, CPU == CUDA simulator == pure Python bit for
bit, uniformity of 1e5 draws, independence of streams (every function's sm_90 PTX, with the test kernel
draws_cuda below: tests/kernels/test_ptx.py)."""
import math

import numpy as np
import pytest
from gpubt.kernels import compile as kc
from gpubt.kernels import rng
from gpubt.kernels.rng import (  # noqa: F401
    exponential,
    lognormal,
    normal,
    philox4x32,
    stream_key,
    uniform2,
)
from numba import prange  # noqa: F401  (the CPU driver below; kernels/compile.py rebinds it for "python")
from scipy import stats

# Random123 kat_vectors, philox4x32 10: counter[4], key[2] → output[4]
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def draw_one(i, seed, stream, out_words, out_uniform, out_normal, out_exponential, out_lognormal):
    """Draw i of every kind from one (seed, stream); the counter's words vary with i."""
    k0, k1 = stream_key(seed, stream)
    w0, w1, w2, w3 = philox4x32(i, 7, 11, 13, k0, k1)
    out_words[i, 0] = w0
    out_words[i, 1] = w1
    out_words[i, 2] = w2
    out_words[i, 3] = w3
    u0, u1 = uniform2(k0, k1, i, 0, 0, 0)
    out_uniform[i, 0] = u0
    out_uniform[i, 1] = u1
    out_normal[i] = normal(k0, k1, i, 0, 1, 0)
    out_exponential[i] = exponential(k0, k1, i, 0, 2, 0)
    out_lognormal[i] = lognormal(k0, k1, i, 0, 3, 0, 0.1, 0.5)


def draws_cpu(seed, stream, out_words, out_uniform, out_normal, out_exponential, out_lognormal):
    for i in prange(out_words.shape[0]):
        draw_one(i, seed, stream, out_words, out_uniform, out_normal, out_exponential, out_lognormal)


def draws_cuda(seed, stream, out_words, out_uniform, out_normal, out_exponential, out_lognormal):
    i = cuda.grid(1)  # noqa: F821
    if i < out_words.shape[0]:
        draw_one(i, seed, stream, out_words, out_uniform, out_normal, out_exponential, out_lognormal)


FUNCTIONS = rng.RNG_FUNCTIONS + (draw_one,)


@pytest.fixture(scope="module")
def builds():
    # the CPU build disk-cached (kernels.compile.cached_njit, stamped by kernels/*.py and this file)
    return {target: kc.build(target, FUNCTIONS, (draws_cpu,), (draws_cuda,), cache=target == "cpu")
            for target in ("python", "cpu", "cudasim")}


def run(kernels, target, seed, stream, n):
    outs = (np.zeros((n, 4), np.int64), np.zeros((n, 2)), np.zeros(n), np.zeros(n), np.zeros(n))
    if target == "cudasim":
        kernels.draws_cuda[(n + 63) // 64, 64](seed, stream, *outs)
    else:
        kernels.draws_cpu(seed, stream, *outs)
    return outs


@pytest.mark.parametrize("target", ["python", "cpu"])
def test_philox_known_answers(builds, target):
    for counter, key, expected in KNOWN_ANSWERS:
        assert tuple(builds[target].philox4x32(*counter, *key)) == expected


@pytest.mark.parametrize("seed, stream", [(0, 0), (12345, -7), (2**63 - 1, -(2**63)), (-1, 2**40 + 3)])
def test_cpu_equals_simulator_equals_python(builds, seed, stream):
    """Integer words and floats equal bit for bit (200 draws: 4 simulator blocks of 64 threads, tail masked)."""
    outs = {t: run(builds[t], t, seed, stream, 200) for t in ("python", "cpu", "cudasim")}
    for a, b, c in zip(outs["python"], outs["cpu"], outs["cudasim"]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    words = outs["cpu"][0]
    assert words.min() >= 0 and words.max() <= 0xFFFFFFFF


def test_stream_key_of_int64_extremes_matches_python(builds):
    for seed, stream in [(0, -1), (-1, 0), (2**63 - 1, 2**63 - 1), (-(2**63), 1)]:
        assert tuple(builds["cpu"].stream_key(seed, stream)) == rng.stream_key(seed, stream)


def test_uniform_and_derived_distributions(builds):
    """1e5 draws of a fixed seed: KS and chi-square (100 bins) accept U(0,1); KS accepts N(0,1), Exp(1) and
    the lognormal; all at the 0.1 % level (a fixed seed: a deterministic check, not a flaky one)."""
    n = 100_000
    words, uniform, z, expo, logn = run(builds["cpu"], "cpu", 2024, 1, n)
    u = uniform.ravel()
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.bincount(np.minimum((u * 100).astype(int), 99), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(expo, "expon").pvalue > 1e-3
    assert stats.kstest(logn, "lognorm", args=(0.5, 0, math.exp(0.1))).pvalue > 1e-3
    bits = words.ravel()
    ones = np.array([(bits >> b) & 1 for b in range(32)]).mean(axis=1)  # every output bit is fair
    assert np.all(np.abs(ones - 0.5) < 4 * 0.5 / math.sqrt(len(bits)))


def test_streams_are_independent(builds):
    """Neighbouring seeds, streams (opportunities) and counters give uncorrelated draws: |r| < 4/√n, and the
    joint (u_a, u_b) fills a 10 × 10 grid uniformly (chi-square); no lag-1 autocorrelation within a stream."""
    n = 20_000
    base = run(builds["cpu"], "cpu", 1, 100, n)[1][:, 0]
    others = [run(builds["cpu"], "cpu", 2, 100, n)[1][:, 0],      # next seed
              run(builds["cpu"], "cpu", 1, 101, n)[1][:, 0],      # next stream
              run(builds["cpu"], "cpu", 1, 100, n)[1][:, 1]]      # second uniform of the same block
    bound = 4.0 / math.sqrt(n)
    for other in others:
        assert abs(np.corrcoef(base, other)[0, 1]) < bound
        grid = np.histogram2d(base, other, bins=10, range=[[0, 1], [0, 1]])[0].ravel()
        assert stats.chisquare(grid).pvalue > 1e-3
    assert abs(np.corrcoef(base[:-1], base[1:])[0, 1]) < bound
    assert not np.array_equal(base, others[0]) and not np.array_equal(base, others[1])
