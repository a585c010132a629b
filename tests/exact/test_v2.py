"""Exact V2 math: properties (hypothesis), known values, and the real USDC/WETH pair's reserve history."""
import csv
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpubt.exact.v2 import (get_amount_in, get_amount_out, optimal_input_search, path_amount_out, path_profit,
                             refine_optimal_input)

from ..conftest import SHARED_DATA

UINT112 = 2**112 - 1
reserve = st.integers(min_value=1_000, max_value=UINT112)
amount = st.integers(min_value=1, max_value=2**100)
fee = st.sampled_from([3000, 2500, 1000, 500, 0])


@settings(max_examples=400, deadline=None)
@given(a=amount, b=amount, r_in=reserve, r_out=reserve, fee_ppm=fee)
def test_monotonic_in_amount_in(a, b, r_in, r_out, fee_ppm):
    lo, hi = min(a, b), max(a, b)
    assert get_amount_out(lo, r_in, r_out, fee_ppm) <= get_amount_out(hi, r_in, r_out, fee_ppm)


@settings(max_examples=400, deadline=None)
@given(x=amount, r_in=reserve, r_out=reserve, fee_ppm=fee)
def test_never_exceeds_reserve_out(x, r_in, r_out, fee_ppm):
    assert 0 <= get_amount_out(x, r_in, r_out, fee_ppm) < r_out


@settings(max_examples=400, deadline=None)
@given(x=amount, r_in=reserve, r_out=reserve, fee_ppm=fee)
def test_k_never_decreases(x, r_in, r_out, fee_ppm):
    out = get_amount_out(x, r_in, r_out, fee_ppm)
    assert (r_in + x) * (r_out - out) >= r_in * r_out
    # and the pair's own check, UniswapV2Pair.swap: balance·1000 − 3·amountIn (scaled to ppm here)
    adjusted_in = (r_in + x) * 1_000_000 - x * fee_ppm
    assert adjusted_in * (r_out - out) * 1_000_000 >= r_in * r_out * 1_000_000**2


@settings(max_examples=300, deadline=None)
@given(r_in=reserve, r_out=st.integers(min_value=10**6, max_value=UINT112), data=st.data())
def test_get_amount_in_is_the_least_input(r_in, r_out, data):
    want = data.draw(st.integers(min_value=1, max_value=r_out // 2))
    x = get_amount_in(want, r_in, r_out)
    assert get_amount_out(x, r_in, r_out) >= want
    if x > 1:
        assert get_amount_out(x - 1, r_in, r_out) < want


def test_known_values():
    # 1 ETH into a 1,000 ETH / 2,000,000 USDC pool: 997·2e12·1e18 // (1e21·1000 + 997e18)
    assert get_amount_out(10**18, 1_000 * 10**18, 2_000_000 * 10**6) == 1_992_013_962
    assert get_amount_out(1000, 1000, 1000) == 499  # 997000·1000 // (1000000 + 997000) = 499.2
    assert get_amount_out(1, 10**6, 10**6) == 0      # rounding: dust buys nothing
    assert path_amount_out(10**18, [10**21, 2 * 10**12], [2 * 10**12, 10**21], [3000, 3000]) < 10**18
    with pytest.raises(ValueError, match="INSUFFICIENT_INPUT_AMOUNT"):
        get_amount_out(0, 10, 10)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_out(1, 0, 10)


def test_refine_returns_exact_profit_of_its_input(cpu_kernels):
    # sell ETH at 2,100 USDC, buy it back at 2,000
    r_in, r_out = [10**21, 2_000_000 * 10**6], [2_100_000 * 10**6, 1_000 * 10**18]
    k, m, n = 1.0, 1.0, 0.0
    for a, b in zip(r_in, r_out):
        k, m, n = cpu_kernels.compose_hop(k, m, n, float(a), float(b), 0.997)
    x_float = cpu_kernels.optimal_input(k, m, n)
    x, profit = refine_optimal_input(x_float, r_in, r_out, [3000, 3000])
    assert profit == path_amount_out(x, r_in, r_out, [3000, 3000]) - x > 10**17
    assert abs(x - x_float) / x_float < 1e-4  # the exact peak is a plateau ~1e-4 wide (USDC has 6 decimals)
    for probe in (x - 10**16, x + 10**16, int(x * 0.99), int(x * 1.01)):  # a peak, not a slope
        assert path_amount_out(probe, r_in, r_out, [3000, 3000]) - probe < profit


def _reserve_rows():
    path = SHARED_DATA / "usdc-weth-v2" / "reserves.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with path.open() as f:
        return [(int(b), int(r0), int(r1)) for b, r0, r1 in list(csv.reader(f))[1:]]


def test_real_usdc_weth_pair_obeys_v2_math():
    """38,164 blocks of the real USDC/WETH pair: outside Mint/Burn blocks k never decreases, and every
    one-directional reserve change pays out at most getAmountOut(net input); most equal it to the wei (the block
    held one router swap, which asks for exactly getAmountOut)."""
    rows = _reserve_rows()
    lp_blocks = set()
    for name in ("mint_events.csv", "burn_events.csv"):
        with (SHARED_DATA / "usdc-weth-v2" / name).open() as f:
            lp_blocks |= {int(r[0]) for r in list(csv.reader(f))[1:]}
    swaps = exact = 0
    for (b0, a0, a1), (b1, c0, c1) in zip(rows, rows[1:]):
        if b1 != b0 + 1 or b1 in lp_blocks:
            continue
        assert c0 * c1 >= a0 * a1, f"k decreased at block {b1}"
        d0, d1 = c0 - a0, c1 - a1
        if d0 > 0 > d1:
            x, out, r_in, r_out = d0, -d1, a0, a1
        elif d1 > 0 > d0:
            x, out, r_in, r_out = d1, -d0, a1, a0
        else:
            continue
        swaps += 1
        quote = get_amount_out(x, r_in, r_out)
        assert out <= quote, f"block {b1}: paid {out} > getAmountOut {quote}"
        exact += out == quote
    assert swaps > 10_000
    assert exact / swaps > 0.75, (exact, swaps)


def _brute_force_max(r_in, r_out):
    """max over every integer input of the exact profit (numpy int64; None if a product could overflow).

    Every profitable input lies below (K − M)/N, where the real (unfloored) path x·K/(M + N·x) crosses x."""
    k, m, n = 1, 1, 0
    for a, b in zip(r_in, r_out):
        k, m, n = 997 * b * k, 1000 * a * m, 1000 * a * n + 997 * k
    if k <= m:
        return 0
    xs = np.arange(1, (k - m) // n + 2, dtype=np.int64)
    amount, bound = xs, float(xs[-1])
    for a, b in zip(r_in, r_out):
        if bound * 997 * b > 2**62 or a * 1000 + bound * 997 > 2**62:
            return None
        with_fee = amount * 997
        amount = with_fee * b // (a * 1000 + with_fee)
        bound = float(amount.max())
    return max(0, int((amount - xs).max()))


@pytest.mark.parametrize("n_hops", [2, 3])
def test_refine_equals_brute_force_through_a_coarse_token(cpu_kernels, n_hops):
    """A start token with 1e7–1e8-unit reserves and one intermediate token with 1e4–1e6 (each raw unit worth
    ~10–1e4 start units: the shape of a 6-decimal stable in a WETH cycle, scaled down so that every integer
    input can be tried): the refined profit is the exact integer maximum, to the unit."""
    rng = np.random.default_rng(100 + n_hops)
    checked = coarse_cycles = 0
    while checked < 40:
        coarse_at = int(rng.integers(1, n_hops))  # token index on the route 0 → 1 → ... → 0
        depth = [10 ** rng.uniform(4, 6) if t == coarse_at else 10 ** rng.uniform(7, 8) for t in range(n_hops)]
        depth.append(depth[0])
        edge = 1 + rng.choice([-1, 1]) * 10 ** rng.uniform(-3, math.log10(0.03))
        distortion = (edge / 0.997**n_hops) ** rng.dirichlet(np.ones(n_hops))
        scale = 10 ** rng.uniform(-0.3, 0.3, n_hops)
        r_in = [int(depth[h] * scale[h]) for h in range(n_hops)]
        r_out = [int(depth[h + 1] * scale[h] * distortion[h]) for h in range(n_hops)]
        best = _brute_force_max(r_in, r_out)
        if best is None:
            continue
        k, m, n = 1.0, 1.0, 0.0
        for a, b in zip(r_in, r_out):
            k, m, n = cpu_kernels.compose_hop(k, m, n, float(a), float(b), 0.997)
        x_float = cpu_kernels.optimal_input(k, m, n)
        if best <= 0:
            continue
        checked += 1
        x, profit, proven, _ = optimal_input_search(x_float, r_in, r_out, [3000] * n_hops)
        assert profit == path_profit(x, r_in, r_out, [3000] * n_hops)
        assert (x, profit) == refine_optimal_input(x_float, r_in, r_out, [3000] * n_hops)
        assert profit == best, (r_in, r_out, x_float, x, profit, best)
        assert proven
        coarse_cycles += path_amount_out(x, r_in[:coarse_at], r_out[:coarse_at], [3000] * coarse_at) * 10 < x
    assert coarse_cycles > 30  # the intermediate really was coarse (>= 10 start units per raw unit) on most


def test_refine_finds_the_step_start_on_a_usdc_route():
    """WETH → USDC → WETH at mainnet scale: one raw USDC is ~3.3e8 wei, so the profit is flat over steps ~3e8 wei
    wide. The refined profit equals the best of every step start within ±2,000 USDC units of it (the least input
    buying each USDC amount: getAmountIn, lowered by one where that one still buys it)."""
    rng = np.random.default_rng(7)
    fees = [3000, 3000]
    for _ in range(30):
        weth = [int(10 ** rng.uniform(20, 23)) for _ in range(2)]
        usdc = [int(w / 10**18 * 3000 * 10**6 * (1 + rng.uniform(-0.02, 0.02))) for w in weth]
        r_in, r_out = [weth[0], usdc[1]], [usdc[0], weth[1]]
        x_float = float(max(1, refine_optimal_input(1e15, r_in, r_out, fees)[0]))
        x, profit = refine_optimal_input(x_float, r_in, r_out, fees)
        if profit <= 0:
            continue
        u0 = get_amount_out(x, r_in[0], r_out[0])
        best = profit
        for u in range(max(1, u0 - 2000), u0 + 2001):
            x_u = get_amount_in(u, r_in[0], r_out[0])
            if x_u > 1 and get_amount_out(x_u - 1, r_in[0], r_out[0]) >= u:
                x_u -= 1
            best = max(best, path_amount_out(x_u, r_in, r_out, fees) - x_u)
        assert profit == best
