"""Uniswap V3 concentrated liquidity, float64 screening versions (exact versions: gpubt/exact/v3.py).

The state of one pool at one point: sqrt price s = sqrtPriceX96 / 2**96 (s² is token1 raw units per token0 raw
unit), in-range liquidity L, the current tick, and the pool's initialized ticks as a sorted slice [lo, hi) of
flat arrays: `tick_index` (int32), `tick_sqrt_price` (float64: TickMath's sqrt ratio of the tick / 2**96,
precomputed on the host, so no transcendental runs per crossing) and `tick_liquidity_net` (float64).

Inside one tick range a V3 pool is a constant-product pool with virtual reserves (L/s, L·s): an exact-input swap
walks range by range, each step closed-form, crossing at most `max_steps` initialized ticks. The fee is taken
from the input once (x·γ): V3 charges it per step on the step's input, which sums to the same fraction. Word
boundaries of the TickBitmap (steps of the contract's loop that cross nothing) change no amount and are skipped.

Precision: inside a range, amounts are computed in cancellation-free forms (L·r·s²/(L + r·s), r/(s·s')); a
crossing step's L·(s − s_next) cancels at most ~log10(1/(1.0001^(spacing/2) − 1)) ≈ 4.3 digits, so a swap is
accurate to ~1e-11 relative before the exact integer rounding (measured against gpubt.exact.v3 in
tests/kernels/test_amm_v3.py).
"""
import math

MIN_SQRT_PRICE = 4295128739 / 2**96                                        # TickMath.MIN_SQRT_RATIO / 2**96
MAX_SQRT_PRICE = 1461446703485210103287273052203988822378723970342 / 2**96  # TickMath.MAX_SQRT_RATIO / 2**96
MIN_TICK = -887272
MAX_TICK = 887272
LOG_SQRT_TICK = 0.5 * math.log(1.0001)  # ln of the sqrt price ratio of one tick

# status of a swap
V3_OK = 0         # the whole input was swapped
V3_MAX_STEPS = 1  # stopped before crossing tick number max_steps + 1: the rest of the input is not swapped
V3_LIMIT = 2      # reached the end of the price range (MIN/MAX sqrt ratio) with input left


def v3_next_tick_position(tick, zero_for_one, tick_index, lo, hi):
    """Position in [lo, hi) of the next initialized tick a swap from `tick` meets: the largest index <= tick
    when selling token0 (lo − 1 if none), else the smallest index > tick (hi if none)."""
    a = lo
    b = hi
    while a < b:  # first position whose tick is > tick
        mid = (a + b) // 2
        if tick_index[mid] <= tick:
            a = mid + 1
        else:
            b = mid
    if zero_for_one:
        return a - 1
    return a


def v3_tick_at_sqrt_price(sqrt_price, tick_floor, tick_ceil):
    """floor(log_1.0001(s²)) clamped to [tick_floor, tick_ceil] (the range the swap is known to end in)."""
    t = int(math.floor(math.log(sqrt_price) / LOG_SQRT_TICK))
    if t < tick_floor:
        return tick_floor
    if t > tick_ceil:
        return tick_ceil
    return t


def v3_range_end(zero_for_one, pos, lo, hi, tick_index, tick_sqrt_price):
    """(sqrt price, tick) where the current range ends in the swap's direction: the next initialized tick at `pos`,
    or the end of the price range when there is none."""
    if zero_for_one:
        if pos >= lo:
            return tick_sqrt_price[pos], tick_index[pos]
        return MIN_SQRT_PRICE, MIN_TICK
    if pos < hi:
        return tick_sqrt_price[pos], tick_index[pos]
    return MAX_SQRT_PRICE, MAX_TICK


def v3_cross(zero_for_one, pos, lo, hi, crossed, max_steps, liquidity, tick, tick_next, tick_liquidity_net):
    """Cross the range end reached by a swap: (status, liquidity, tick, pos) after it. Status V3_LIMIT at the end
    of the price range (tick: MIN_TICK / MAX_TICK), V3_MAX_STEPS after max_steps crossings (nothing crossed), else
    V3_OK with the next range's liquidity, tick and tick position."""
    if zero_for_one:
        if pos < lo:
            return V3_LIMIT, liquidity, MIN_TICK, pos
        if crossed >= max_steps:
            return V3_MAX_STEPS, liquidity, tick, pos
        return V3_OK, liquidity - tick_liquidity_net[pos], tick_next - 1, pos - 1
    if pos >= hi:
        return V3_LIMIT, liquidity, MAX_TICK, pos
    if crossed >= max_steps:
        return V3_MAX_STEPS, liquidity, tick, pos
    return V3_OK, liquidity + tick_liquidity_net[pos], tick_next, pos + 1


def v3_swap_exact_in(amount_in, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                     tick_liquidity_net, lo, hi, max_steps):
    """Exact-input swap of `amount_in` raw units; gamma is the kept fraction (1 − fee_ppm/1e6).

    Returns (amount_out, sqrt price after, liquidity after, tick after, initialized ticks crossed, status): status
    V3_OK, or V3_MAX_STEPS / V3_LIMIT when the swap stopped with input left (then amount_out is what the swapped
    part bought: a screen that stops early undervalues, never overvalues).
    """
    s = sqrt_price
    L = liquidity
    t = tick
    out = 0.0
    crossed = 0
    if amount_in <= 0.0 or s <= 0.0:
        return 0.0, s, L, t, 0, V3_OK
    remaining = amount_in * gamma
    pos = v3_next_tick_position(t, zero_for_one, tick_index, lo, hi)
    while True:
        s_next, t_next = v3_range_end(zero_for_one, pos, lo, hi, tick_index, tick_sqrt_price)
        if zero_for_one:
            need = L * (s - s_next) / (s * s_next)  # token0 that moves the price to s_next
            if remaining < need:
                d = L + remaining * s
                out += L * remaining * s * s / d
                s_new = L * s / d
                return out, s_new, L, v3_tick_at_sqrt_price(s_new, t_next, t), crossed, V3_OK
            remaining -= need
            out += L * (s - s_next)
        else:
            need = L * (s_next - s)  # token1 that moves the price to s_next
            if remaining < need:
                s_new = s + remaining / L
                out += remaining / (s * s_new)
                return out, s_new, L, v3_tick_at_sqrt_price(s_new, t, t_next - 1), crossed, V3_OK
            remaining -= need
            out += L * (s_next - s) / (s * s_next)
        s = s_next
        status, L, t, pos = v3_cross(zero_for_one, pos, lo, hi, crossed, max_steps, L, t, t_next, tick_liquidity_net)
        if status != V3_OK:
            return out, s, L, t, crossed, status
        crossed += 1
        if L < 0.0:  # float residue of an exactly-zero liquidity: a range without liquidity
            L = 0.0
        if remaining <= 0.0:
            return out, s, L, t, crossed, V3_OK


def v3_marginal_rate(zero_for_one, gamma, sqrt_price):
    """d(amount out)/d(amount in) of a swap at sqrt price s: γ·s² selling token0, γ/s² selling token1."""
    if zero_for_one:
        return gamma * sqrt_price * sqrt_price
    return gamma / (sqrt_price * sqrt_price)


def v3_virtual_reserves(zero_for_one, sqrt_price, liquidity):
    """(reserve_in, reserve_out) of the constant-product pool equal to the current tick range: (L/s, L·s)."""
    if zero_for_one:
        return liquidity / sqrt_price, liquidity * sqrt_price
    return liquidity * sqrt_price, liquidity / sqrt_price


def v3_swap_exact_out(amount_out, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                      tick_liquidity_net, lo, hi, max_steps):
    """Exact-output swap: the input (fee included) that buys `amount_out` raw units, walking the ranges as
    v3_swap_exact_in does (the router's exactOutput quote; in real arithmetic it is the inverse of the exact-input
    swap: the input x with v3_swap_exact_in(x) = amount_out, and the same state after).

    Inside a range the input for an output w is w/(s·s') selling token0 (s' = s − w/L) and w·s·s' selling token1
    (s' = s·L/(L − w·s)): no cancellation. Returns (amount_in, sqrt price after, liquidity after, tick after,
    initialized ticks crossed, status); status V3_MAX_STEPS / V3_LIMIT when the pool cannot deliver the output
    within max_steps crossings or before the price range's end (amount_in is then what the delivered part cost).
    """
    s = sqrt_price
    L = liquidity
    t = tick
    paid = 0.0
    crossed = 0
    if amount_out <= 0.0 or s <= 0.0:
        return 0.0, s, L, t, 0, V3_OK
    remaining = amount_out
    pos = v3_next_tick_position(t, zero_for_one, tick_index, lo, hi)
    while True:
        s_next, t_next = v3_range_end(zero_for_one, pos, lo, hi, tick_index, tick_sqrt_price)
        if zero_for_one:
            avail = L * (s - s_next)  # token1 out when the price moves to s_next
            if remaining < avail:
                s_new = s - remaining / L
                paid += remaining / (s * s_new)
                return paid / gamma, s_new, L, v3_tick_at_sqrt_price(s_new, t_next, t), crossed, V3_OK
            remaining -= avail
            paid += L * (s - s_next) / (s * s_next)
        else:
            avail = L * (s_next - s) / (s * s_next)  # token0 out when the price moves to s_next
            if remaining < avail:
                s_new = s * L / (L - remaining * s)
                paid += remaining * s * s_new
                return paid / gamma, s_new, L, v3_tick_at_sqrt_price(s_new, t, t_next - 1), crossed, V3_OK
            remaining -= avail
            paid += L * (s_next - s)
        s = s_next
        status, L, t, pos = v3_cross(zero_for_one, pos, lo, hi, crossed, max_steps, L, t, t_next, tick_liquidity_net)
        if status != V3_OK:
            return paid / gamma, s, L, t, crossed, status
        crossed += 1
        if L < 0.0:
            L = 0.0
        if remaining <= 0.0:
            return paid / gamma, s, L, t, crossed, V3_OK
