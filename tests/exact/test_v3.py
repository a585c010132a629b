"""gpubt.exact.v3 on its own: known values from v3-core's tests, and properties (hypothesis). The differential
checks against the real bytecode are in tests/evm/."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpubt.exact import v3

ticks = st.integers(v3.MIN_TICK, v3.MAX_TICK)
prices = st.integers(v3.MIN_SQRT_RATIO, v3.MAX_SQRT_RATIO - 1)


def test_tick_math_known_values():
    assert v3.get_sqrt_ratio_at_tick(0) == 2**96
    assert v3.get_sqrt_ratio_at_tick(v3.MIN_TICK) == v3.MIN_SQRT_RATIO == 4295128739
    assert v3.get_sqrt_ratio_at_tick(v3.MAX_TICK) == v3.MAX_SQRT_RATIO
    assert v3.get_sqrt_ratio_at_tick(v3.MIN_TICK + 1) == 4295343490
    assert v3.get_sqrt_ratio_at_tick(v3.MAX_TICK - 1) == 1461373636630004318706518188784493106690254656249
    assert v3.get_tick_at_sqrt_ratio(v3.MIN_SQRT_RATIO) == v3.MIN_TICK
    assert v3.get_tick_at_sqrt_ratio(v3.MAX_SQRT_RATIO - 1) == v3.MAX_TICK - 1
    assert v3.get_tick_at_sqrt_ratio(2**96) == 0
    for bad in (v3.MIN_TICK - 1, v3.MAX_TICK + 1):
        with pytest.raises(v3.V3Revert, match="^T"):
            v3.get_sqrt_ratio_at_tick(bad)
    for bad in (v3.MIN_SQRT_RATIO - 1, v3.MAX_SQRT_RATIO):
        with pytest.raises(v3.V3Revert, match="^R"):
            v3.get_tick_at_sqrt_ratio(bad)


def test_full_math():
    assert v3.mul_div(v3.Q128, 50 * v3.Q128 // 100, 150 * v3.Q128 // 100) == v3.Q128 // 3
    assert v3.mul_div_rounding_up(v3.Q128, 50 * v3.Q128 // 100, 150 * v3.Q128 // 100) == v3.Q128 // 3 + 1
    assert v3.mul_div(v3.MAX_UINT256, v3.MAX_UINT256, v3.MAX_UINT256) == v3.MAX_UINT256
    with pytest.raises(v3.V3Revert):
        v3.mul_div(v3.Q128, 5, 0)
    with pytest.raises(v3.V3Revert):
        v3.mul_div(v3.MAX_UINT256, v3.MAX_UINT256, v3.MAX_UINT256 - 1)
    with pytest.raises(v3.V3Revert):  # rounds up past 2^256 - 1
        v3.mul_div_rounding_up(535006138814359, 432862656469423142931042426214547535783388063929571229938474969, 2)


def test_sqrt_price_math_known_values():
    # from v3-core's SqrtPriceMath.spec.ts
    assert v3.get_next_sqrt_price_from_input(2**96, 10**18, 10**17, False) == 87150978765690771352898345369
    assert v3.get_next_sqrt_price_from_input(2**96, 10**18, 10**17, True) == 72025602285694852357767227579
    assert v3.get_amount0_delta(2**96, 2**96, 0, True) == 0
    assert v3.get_amount0_delta(2**96, 87150978765690771352898345369, 10**18, True) == 90909090909090910
    assert v3.get_amount0_delta(2**96, 87150978765690771352898345369, 10**18, False) == 90909090909090909
    assert v3.get_amount1_delta(2**96, 87150978765690771352898345369, 10**18, True) == 100000000000000000
    assert v3.get_amount1_delta(2**96, 87150978765690771352898345369, 10**18, False) == 99999999999999999
    with pytest.raises(v3.V3Revert):
        v3.get_next_sqrt_price_from_input(2**96, 0, 10**17, True)


def test_compute_swap_step_exact_in_capped_at_target():
    price, target = 2**96, 87150978765690771352898345369  # price 1 → 1.21 (sqrt 1.1), zero_for_one = False
    step = v3.compute_swap_step(price, target, 2 * 10**18, 10**18, 600)
    assert step.sqrt_ratio_next_x96 == target
    assert (step.amount_in, step.amount_out, step.fee_amount) == (
        v3.get_amount1_delta(price, target, 2 * 10**18, True),
        v3.get_amount0_delta(price, target, 2 * 10**18, False),
        v3.mul_div_rounding_up(step.amount_in, 600, 10**6 - 600))
    assert step.amount_in + step.fee_amount < 10**18


@settings(max_examples=300, deadline=None)
@given(ticks)
def test_tick_round_trip(tick):
    price = v3.get_sqrt_ratio_at_tick(tick)
    if tick < v3.MAX_TICK:
        assert v3.get_tick_at_sqrt_ratio(price) == tick
        assert v3.get_tick_at_sqrt_ratio(v3.get_sqrt_ratio_at_tick(tick + 1) - 1) == tick


@settings(max_examples=300, deadline=None)
@given(prices)
def test_price_tick_bracket(price):
    tick = v3.get_tick_at_sqrt_ratio(price)
    assert v3.get_sqrt_ratio_at_tick(tick) <= price
    assert tick == v3.MAX_TICK or price < v3.get_sqrt_ratio_at_tick(tick + 1)


@settings(max_examples=500, deadline=None)
@given(st.integers(v3.MIN_TICK, v3.MAX_TICK - 1), st.integers(-2, 2), prices)
def test_float_estimated_tick_equals_the_contracts_log2(tick, offset, price):
    """get_tick_at_sqrt_ratio (float estimate checked by exact ratios) against TickMath.sol's own algorithm, at tick
    boundaries (ratio ± a little) and at arbitrary prices."""
    at = v3.get_sqrt_ratio_at_tick(tick) + offset
    for p in (at, price):
        if v3.MIN_SQRT_RATIO <= p < v3.MAX_SQRT_RATIO:
            assert v3.get_tick_at_sqrt_ratio(p) == v3.tick_at_sqrt_ratio_log2(p)


@settings(max_examples=300, deadline=None)
@given(st.integers(v3.MIN_TICK, v3.MAX_TICK - 1))
def test_sqrt_ratio_strictly_increasing(tick):
    assert v3.get_sqrt_ratio_at_tick(tick) < v3.get_sqrt_ratio_at_tick(tick + 1)


@settings(max_examples=300, deadline=None)
@given(prices, prices, st.integers(1, 2**128 - 1))
def test_amount_deltas_round_up_by_at_most_one(a, b, liquidity):
    for delta in (v3.get_amount0_delta, v3.get_amount1_delta):
        down, up = delta(a, b, liquidity, False), delta(a, b, liquidity, True)
        assert up - down in (0, 1) or (delta is v3.get_amount0_delta and 0 <= up - down <= 2)
    assert v3.get_amount0_delta_signed(a, b, -min(liquidity, 2**127)) <= 0


@settings(max_examples=200, deadline=None)
@given(prices, st.integers(1, 2**100), st.integers(1, 2**100), st.booleans())
def test_input_moves_price_the_right_way_and_never_undercharges(price, liquidity, amount_in, zero_for_one):
    try:
        nxt = v3.get_next_sqrt_price_from_input(price, liquidity, amount_in, zero_for_one)
    except v3.V3Revert:
        return
    assert (nxt <= price) if zero_for_one else (nxt >= price)
    # the amount the new price implies, rounded up, is within what was paid: the pool never loses
    if v3.MIN_SQRT_RATIO <= nxt:
        need = (v3.get_amount0_delta if zero_for_one else v3.get_amount1_delta)(nxt, price, liquidity, True)
        assert need <= amount_in


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(v3.TICK_SPACINGS)), st.integers(-200, 200), st.integers(1, 30),
       st.integers(1, 2**80), st.integers(1, 2**70), st.booleans())
def test_pool_swap_round_trip_and_word_steps(fee, start, width, liquidity, amount, zero_for_one):
    pool = v3.V3Pool(fee)
    s = pool.tick_spacing
    pool.initialize(v3.get_sqrt_ratio_at_tick(start * s))
    a0, a1 = pool.mint((start - width) * s, (start + width) * s, liquidity)
    assert a0 >= 0 and a1 >= 0
    limit = v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1
    out = pool.swap_outcome(zero_for_one, amount, limit)
    paid, got = (out.amount0, out.amount1) if zero_for_one else (out.amount1, out.amount0)
    assert 0 <= paid <= amount and got <= 0
    assert out.ticks_crossed <= 1
    b0, b1 = pool.burn((start - width) * s, (start + width) * s, liquidity)
    # what the LP gets back never exceeds what went in plus what traders paid
    assert b0 <= a0 + max(out.amount0, 0) and b1 <= a1 + max(out.amount1, 0)
    assert pool.liquidity == 0 and pool.initialized == [] and pool.ticks == {}


def test_next_initialized_tick_stops_at_word_boundaries():
    pool = v3.V3Pool(3000)
    pool.initialize(2**96)
    assert pool.next_initialized_tick_within_one_word(0, False) == (255 * 60, False)
    assert pool.next_initialized_tick_within_one_word(0, True) == (0, False)
    assert pool.next_initialized_tick_within_one_word(-1, True) == (-256 * 60, False)
    pool.mint(-120, 600, 10**18)
    assert pool.next_initialized_tick_within_one_word(0, False) == (600, True)
    assert pool.next_initialized_tick_within_one_word(600, False) == (255 * 60, False)
    assert pool.next_initialized_tick_within_one_word(600, True) == (600, True)
    assert pool.next_initialized_tick_within_one_word(-61, True) == (-120, True)
    assert pool.next_initialized_tick_within_one_word(-121, True) == (-256 * 60, False)


def test_reverts_carry_the_contract_reason():
    pool = v3.V3Pool(500)
    with pytest.raises(v3.V3Revert, match="^LOK"):
        pool.swap(True, 1, v3.MIN_SQRT_RATIO + 1)
    pool.initialize(2**96)
    with pytest.raises(v3.V3Revert, match="^SPL"):
        pool.swap(True, 1, 2**96 + 1)
    with pytest.raises(v3.V3Revert, match="^AS"):
        pool.swap(True, 0, v3.MIN_SQRT_RATIO + 1)
    with pytest.raises(v3.V3Revert, match="^TLU"):
        pool.mint(10, 10, 1)
    pool.mint(-10, 10, 100)
    with pytest.raises(v3.V3Revert, match="^LS"):
        pool.burn(-10, 10, 101)
    assert pool.burn(-10, 10, 100) == (0, 0)  # 100 liquidity over ±10 ticks is below one wei each side
