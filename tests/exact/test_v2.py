"""Exact V2 math: properties (hypothesis), known values, and the real USDC/WETH pair's reserve history."""
import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpubt.exact.v2 import get_amount_in, get_amount_out, path_amount_out, refine_optimal_input

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
