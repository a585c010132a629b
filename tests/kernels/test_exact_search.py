"""kernels/wide.py and kernels/exact_search.py against Python ints.

Wide rows: every function on seeded random operands (edges mixed in) on the CPU build (GPUBT_U256_CASES cases each,
default 20,000; CI's full run 200,000) and under numba's CUDA simulator (2,000 each). The V2 cycle search: the
kernel's (amount_in, profit, proven, evaluations) equal gpubt.exact.v2.optimal_input_search on mainnet-shaped
cycles (coarse and fine intermediate tokens, 2 and 3 hops, profitable and not), on the CPU build and in the
simulator; what it hands back to the oracle still comes out equal (gpubt.strategies.exact_engine). Its CUDA drivers'
sm_90 PTX: tests/kernels/test_ptx.py (assembled by ptxas there)."""
from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from numba import prange

from gpubt.backend import Backend
from gpubt.exact import v2, v3
from gpubt.strategies import exact_engine as engine
from gpubt.kernels import exact_search, wide
from gpubt.kernels.compile import build

from .test_u256 import TARGET_CASES, random_uint

LIMBS = 12  # 384-bit rows for the wide tests: products of two operands up to 192 bits, sums that overflow


# ------------------------------------------------------------------------------------------------ wide rows
def wide_ops_cpu(a, a_neg, b, b_neg, m, out, out_neg, out_status, scratch):
    """Each case: rows a, b; out[i] = [a·b, a + b, a − b (a ≥ b) or 0, a·m, ±a ± b, cmp(a, b) in limb 0]."""
    for i in prange(a.shape[0]):
        wide_case(i, a, a_neg, b, b_neg, m, out, out_neg, out_status, scratch)


def wide_ops_cuda(a, a_neg, b, b_neg, m, out, out_neg, out_status, scratch):
    i = cuda.grid(1)  # noqa: F821
    if i < a.shape[0]:
        wide_case(i, a, a_neg, b, b_neg, m, out, out_neg, out_status, scratch)


def wide_case(i, a, a_neg, b, b_neg, m, out, out_neg, out_status, scratch):
    w = scratch[i]
    for k in range(w.shape[1]):
        w[0, k] = a[i, k]
        w[1, k] = b[i, k]
    out_status[i, 0] = wide_mul(w, 2, 0, 1)  # noqa: F821
    out_status[i, 1] = wide_add(w, 3, 0, 1, w.shape[1])  # noqa: F821
    if wide_cmp(w, 0, 1, w.shape[1]) >= 0:  # noqa: F821
        wide_sub(w, 4, 0, 1, w.shape[1])  # noqa: F821
    else:
        wide_zero(w, 4)  # noqa: F821
    out_status[i, 2] = wide_mul_small(w, 5, 0, m[i])  # noqa: F821
    neg, status = wide_signed_add(w, 6, 0, a_neg[i], 1, b_neg[i], w.shape[1])  # noqa: F821
    out_neg[i] = neg
    out_status[i, 3] = status
    wide_zero(w, 7)  # noqa: F821
    w[7, 0] = np.uint64(wide_cmp(w, 0, 1, w.shape[1]) + 1)  # noqa: F821
    for r in range(6):
        for k in range(w.shape[1]):
            out[i, r, k] = w[2 + r, k]


def _wide_kernels(target):
    return build(target, wide.WIDE_FUNCTIONS + (wide_case,), cpu_drivers=(wide_ops_cpu,),
                 cuda_drivers=(wide_ops_cuda,), inline=False)


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
def test_wide_rows_equal_python_ints(target):
    n = TARGET_CASES[target]
    rng = random.Random(f"wide:{target}")
    top = 32 * LIMBS
    a = [random_uint(rng, 256) << rng.choice([0, 0, 64, 128]) if rng.random() < 0.9 else rng.getrandbits(top)
         for _ in range(n)]
    b = [random_uint(rng, 256) if rng.random() < 0.8 else rng.getrandbits(top) for _ in range(n)]
    b = [x if rng.random() > 0.05 else y for x, y in zip(b, a)]  # equal operands: zero differences, cmp 0
    m = [rng.choice([0, 1, 997_000, 1_000_000, 2**32 - 1, rng.getrandbits(32)]) for _ in range(n)]
    a_neg = [rng.random() < 0.5 for _ in range(n)]
    b_neg = [rng.random() < 0.5 for _ in range(n)]
    cols = (np.stack([wide.to_row(x, LIMBS) for x in a]), np.array(a_neg), np.stack([wide.to_row(x, LIMBS) for x in b]),
            np.array(b_neg), np.array(m, np.uint64), np.zeros((n, 6, LIMBS), np.uint64), np.zeros(n, np.bool_),
            np.zeros((n, 4), np.int64), np.zeros((n, 8, LIMBS), np.uint64))
    fns = _wide_kernels(target)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        if target == "cpu":
            fns.wide_ops_cpu(*cols)
        else:
            fns.wide_ops_cuda[(n + 127) // 128, 128](*cols)
    out, out_neg, status = cols[5], cols[6], cols[7]
    cap = 1 << top
    bad = []
    for i in range(n):
        x, y = a[i], b[i]
        got = [wide.from_row(out[i, r]) for r in range(6)]
        len_x, len_y = (x.bit_length() + 31) // 32, (y.bit_length() + 31) // 32
        if len_x and len_y and len_x + len_y > LIMBS:
            mul_ok = status[i, 0] == wide.WIDE_OVERFLOW
        else:
            mul_ok = status[i, 0] == wide.WIDE_OK and got[0] == x * y
        add_ok = (status[i, 1] == wide.WIDE_OVERFLOW) if x + y >= cap else (status[i, 1] == 0 and got[1] == x + y)
        sub_ok = got[2] == (x - y if x >= y else 0)
        small = x * m[i]
        small_ok = (status[i, 2] == wide.WIDE_OVERFLOW) if small >= cap else (status[i, 2] == 0 and got[3] == small)
        signed = (-x if a_neg[i] else x) + (-y if b_neg[i] else y)
        if a_neg[i] == b_neg[i] and x + y >= cap:
            signed_ok = status[i, 3] == wide.WIDE_OVERFLOW
        else:
            signed_ok = status[i, 3] == 0 and got[4] == abs(signed) and bool(out_neg[i]) == (signed < 0)
        cmp_ok = got[5] == (x > y) - (x < y) + 1
        if not (mul_ok and add_ok and sub_ok and small_ok and signed_ok and cmp_ok):
            bad.append((i, x, y, m[i], [mul_ok, add_ok, sub_ok, small_ok, signed_ok, cmp_ok]))
    assert not bad, f"{len(bad)} of {n} cases differ, e.g. {bad[:3]}"


# ------------------------------------------------------------------------------------------ the V2 cycle search
DECIMAL_SHIFTS = (0, 0, -12, -10, 0)  # 18-decimal, USDC-like (6) and WBTC-like (8) intermediates


def cycle_cases(rng: random.Random, n: int) -> list[tuple]:
    """(x_float, reserves_in, reserves_out, fees_ppm) of mainnet-shaped V2 cycles: pools valued 10⁴..10⁸ USD-ish in
    tokens of 18, 8 or 6 decimals, mispriced by up to ±3 % (some cycles unprofitable), x_float the cycle's real
    (Möbius) optimum in float64 as the screen finds it, or a random amount when there is none."""
    cases = []
    for _ in range(n):
        hops = rng.choice([2, 3, 3])
        scale = [1] + [10 ** rng.choice(DECIMAL_SHIFTS) for _ in range(hops - 1)] + [1]
        reserves_in, reserves_out, fees = [], [], []
        for h in range(hops):
            depth = 10 ** rng.uniform(19, 24)                  # the pool's depth in wei of value
            price = 10 ** rng.uniform(-2, 2) * (1 + rng.uniform(-0.03, 0.03))
            reserves_in.append(max(1, int(depth * scale[h])))
            reserves_out.append(max(1, int(depth * price * scale[h + 1])))
        # close the cycle: the last hop's price makes the round trip return ~1 ± the mispricing
        round_trip = 1.0
        for r_in, r_out in zip(reserves_in, reserves_out):
            round_trip *= r_out / r_in
        reserves_out[-1] = max(1, int(reserves_out[-1] / round_trip * (1 + rng.uniform(-0.01, 0.03))))
        fees = [rng.choice([3000, 3000, 3000, 2500, 1000, 500]) for _ in range(hops)]
        k, m, nn = v2._mobius(reserves_in, reserves_out, fees)
        x = (math.sqrt(k / 1.0) * math.sqrt(m) - m) / nn if k > m else 10 ** rng.uniform(15, 20)
        cases.append((x * (1 + rng.uniform(-1e-9, 1e-9)), reserves_in, reserves_out, fees))
    return cases


def _search(cases, target: str, limbs: int | None = None):
    backend = Backend(target)
    saved = engine.scratch_limbs
    if limbs is not None:
        engine.scratch_limbs = lambda hops, bits=112: limbs
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
            return engine.v2_optimal_inputs(backend, [c[0] for c in cases], [c[1] for c in cases],
                                            [c[2] for c in cases], [c[3] for c in cases])
    finally:
        engine.scratch_limbs = saved


@pytest.mark.parametrize("target, n", [("cpu", TARGET_CASES["cpu"]), pytest.param("cudasim", 12,
                                                                                    marks=pytest.mark.slow)])
def test_v2_search_equals_the_oracle(target, n):
    cases = cycle_cases(random.Random(f"search:{target}"), max(n, 400))
    if n < len(cases):  # the simulator's few: half of them searches that walk (several levels, or unproven)
        found = [v2.optimal_input_search(*c) for c in cases]
        walks = ([c for c, f in zip(cases, found) if not f[2]]                    # unproven first
                 + [c for c, f in zip(cases, found) if f[2] and f[3] > 1])
        cases = walks[:n // 2] + [c for c in cases if c not in walks][:n - n // 2]
    engine.stats.clear()
    got = _search(cases, target)
    expect = [v2.optimal_input_search(*c) for c in cases]
    bad = [(c, g, e) for c, g, e in zip(cases, got, expect) if g != e]
    assert not bad, f"{len(bad)} of {len(cases)} differ, e.g. {bad[:2]}"
    # the kernel decided (nearly) all of them itself, and the cases exercise what matters
    assert engine.stats["fallback"] <= n // 1000, dict(engine.stats)
    assert sum(e[2] for e in expect) >= n // 3 and sum(not e[2] for e in expect) > 0   # proven and unproven
    assert sum(e[1] > 0 for e in expect) > n // 10 and sum(e[3] > 1 for e in expect) > n // 20


def v3_like(rng: random.Random, reserve_in: int, reserve_out: int, zero_for_one: bool) -> tuple:
    """A hop spec ("v3", ...) of an exact V3 pool (0.30 %, spacing 60) priced and about as deep as a V2 pool of
    these reserves in this direction: a full-range position (four pools in five) and a few concentrated ones
    around the price."""
    price = reserve_out / reserve_in if zero_for_one else reserve_in / reserve_out   # token1 per token0
    sqrt_price = min(max(int(math.sqrt(price) * 2**96), v3.MIN_SQRT_RATIO + 1), v3.MAX_SQRT_RATIO - 2)
    depth = max(1, int(math.sqrt(reserve_in) * math.sqrt(reserve_out)))
    pool = v3.V3Pool(fee=3000, tick_spacing=60)
    pool.initialize(sqrt_price)
    cap = pool.max_liquidity_per_tick // 8
    if rng.random() < 0.8:   # else only concentrated liquidity: a large input exhausts it (the price limit stops it)
        pool.mint(-887220, 887220, min(max(1, depth // 2), cap))
    for _ in range(rng.randint(1, 6)):
        lower = (pool.tick // 60 - rng.randint(0, 40)) * 60
        upper = lower + rng.randint(1, 80) * 60
        if -887220 <= lower < upper <= 887220:
            pool.mint(lower, upper, min(max(1, int(depth * rng.uniform(0.05, 2.0))), cap))
    ticks = [c * 60 for c in pool.initialized]
    table = (ticks, [pool.ticks[t].liquidity_net for t in ticks], [pool.ticks[t].liquidity_gross for t in ticks])
    return ("v3", pool.sqrt_price_x96, pool.liquidity, pool.tick, 60, 3000, zero_for_one, table)


def mixed_cycle_cases(rng: random.Random, n: int) -> list[tuple]:
    """(x_float, hop specs) of cycle_cases' cycles with one or more hops made V3 (exact_engine.pack_mixed_cycles);
    one in twenty starts from a float input 10⁹ too large."""
    out = []
    for x, r_in, r_out, fees in cycle_cases(rng, n):
        spec = [("v2", a, b, f) for a, b, f in zip(r_in, r_out, fees)]
        for h in rng.sample(range(len(spec)), rng.randint(1, len(spec))):
            spec[h] = v3_like(rng, r_in[h], r_out[h], rng.random() < 0.5)
        out.append((x * 1e9 if rng.random() < 0.05 else x, spec))   # some inputs no V3 hop takes whole: halved
    return out


def _mixed(cases, target):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        return engine.mixed_inputs(Backend(target), np.array([c[0] for c in cases]), [c[1] for c in cases])


@pytest.mark.parametrize("target, n", [("cpu", TARGET_CASES["cpu"] // 10),
                                       pytest.param("cudasim", 12, marks=pytest.mark.slow)])
def test_mixed_input_equals_the_oracle(target, n):
    """refine_mixed_input on cycles with V3 hops (kernels/exact_search.py mixed_input): the same input, profit and
    ticks crossed as the oracle (gpubt.exact.hops), the kernel deciding nearly all of them."""
    cases = mixed_cycle_cases(random.Random(f"mixed:{target}"), n)
    engine.stats.clear()
    got = _mixed(cases, target)
    cache: dict = {}
    expect = [engine._mixed_oracle(x, spec, cache) for x, spec in cases]
    bad = [(c, g, e) for c, g, e in zip(cases, got, expect) if g != e]
    assert not bad, f"{len(bad)} of {len(cases)} differ, e.g. {bad[:2]}"
    assert engine.stats["mixed_fallback"] <= max(1, n // 100), dict(engine.stats)
    if target == "cpu":   # the cases exercise what matters: profits, crossings, inputs trimmed off the float's
        assert sum(e[1] > 0 for e in expect) > n // 10 and sum(e[2] > 0 for e in expect) > n // 20
        assert sum(e[0] != max(1, int(c[0])) for c, e in zip(cases, expect)) > n // 20
        assert sum(e[0] <= int(c[0]) // 2 for c, e in zip(cases, expect)) > 0   # halved


def test_what_the_kernel_hands_back_the_oracle_prices():
    """Rows too narrow for the bound's coefficients: every search is handed back, the results are the oracle's."""
    cases = cycle_cases(random.Random("fallback"), 200)
    engine.stats.clear()
    got = _search(cases, "cpu", limbs=4)
    assert engine.stats["fallback"] == len(cases) and engine.stats["device"] == 0
    assert got == [v2.optimal_input_search(*c) for c in cases]


@pytest.mark.parametrize("n", [1, 3, 40])
def test_engine_call_sizes(n):
    """A few searches run one by one on the CPU, more in one launch (fewer than SEARCH_MIN would run the oracle):
    the same results every way, and the kernel ran for every search it was given."""
    cases = cycle_cases(random.Random(f"sizes:{n}"), n)
    engine.stats.clear()
    assert _search(cases, "cpu") == [v2.optimal_input_search(*c) for c in cases]
    assert engine.stats["device"] == (n if n >= engine.SEARCH_MIN else 0) and engine.stats["fallback"] == 0


def test_engine_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="exact.engine='gpu'"):
        engine.v2_optimal_inputs(Backend("cpu"), [1.0], [[1, 1]], [[1, 1]], [[3000, 3000]], engine="gpu")
