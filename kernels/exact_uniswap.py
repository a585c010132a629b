"""Exact Uniswap math as device functions, over u256 limb tuples (kernels/u256.py): one source for numba-CPU and
numba-CUDA, equal to the Python-int oracle gpubt/exact/v2.py and v3.py (tests/kernels/test_exact_uniswap.py).

V2: UniswapV2Library getAmountOut / getAmountIn with the fee in millionths (fee_ppm), and the amount chain of a
path. V3 (v3-core 1.0.0): TickMath getSqrtRatioAtTick / getTickAtSqrtRatio, SqrtPriceMath getNextSqrtPriceFromInput /
Output and getAmount0Delta / getAmount1Delta, SwapMath.computeSwapStep, LiquidityMath.addDelta, and the whole
UniswapV3Pool.swap on a pool's table of initialized ticks (v3_swap: amounts and the state after; v3_quote: the
amounts with the hops' price limit).

Every function returns its values and a status last; EXACT_OK is 0, anything else is the outcome "reverts" with
the value(s) zero. Domains are the contracts' types: sqrt prices < 2¹⁶⁰, liquidity < 2¹²⁸, amounts uint256 (a V3
amount_remaining is an int256, passed as its two's complement), fees in [0, 10⁶). V2's oracle works in unbounded
Python ints; here amount·(10⁶ − fee_ppm) and reserve_in·10⁶ + that must fit 256 bits (Solidity's uint256 math
overflows there too; never near real uint112 reserves), else EXACT_OVERFLOW.
"""
import math

import numpy as np
from numba import prange  # noqa: F401  (the CPU driver's loop)

from . import u256 as _u256
from .u256 import (  # noqa: F401  (rebound per target by kernels/compile.py)
    M32, MAX64, ONE, S32, U256_OK, Z, mac64, div_rounding_up, mul_div, mul_div_rounding_up, u256_add,
    u256_divmod, u256_eq, u256_is_zero, u256_lt, u256_mul, u256_mul_small, u256_neg, u256_shl, u256_shr, u256_sub,
    u256_to_float, u512_divmod,
)

EXACT_OK = 0
EXACT_DIV_ZERO = 1                  # a division by zero (FullMath's require(denominator > 0); V2 with a 100 % fee)
EXACT_OVERFLOW = 2                  # a result or intermediate ≥ 2²⁵⁶ (mulDiv, SafeMath add, toUint160)
EXACT_REVERT = 3                    # SqrtPriceMath's require()s: zero price or liquidity, output beyond reserves
EXACT_TICK = 4                      # TickMath 'T': |tick| > MAX_TICK
V2_INSUFFICIENT_INPUT_AMOUNT = 5    # UniswapV2Library's revert strings
V2_INSUFFICIENT_OUTPUT_AMOUNT = 6
V2_INSUFFICIENT_LIQUIDITY = 7
EXACT_BAD_FEE = 8                   # fee outside [0, 10⁶] (V2) or [0, 10⁶) (V3)
STATUS_NAMES = ("OK", "DIV_ZERO", "OVERFLOW", "REVERT", "T", "INSUFFICIENT_INPUT_AMOUNT",
                "INSUFFICIENT_OUTPUT_AMOUNT", "INSUFFICIENT_LIQUIDITY", "BAD_FEE")

FEE_DENOMINATOR = 1_000_000           # V2 fee_ppm and V3 fee pips are both millionths
FEE_DENOMINATOR_U64 = np.uint64(1_000_000)
S96 = np.uint64(96)
S160 = np.uint64(160)
MAX_TICK = 887272
MIN_SQRT_RATIO_PLUS_1 = np.uint64(4295128740)   # the hops' price limits: TickMath.MIN_SQRT_RATIO + 1 ...
# ... and MAX_SQRT_RATIO − 1 = 1461446703485210103287273052203988822378723970341 as limbs
MAX_SQRT_RATIO_MINUS_1 = (np.uint64(0x5D951D5263988D25), np.uint64(0xEFD1FC6A50648849), np.uint64(0xFFFD8963),
                          np.uint64(0))
MIN_SQRT_RATIO = (np.uint64(4295128739), np.uint64(0), np.uint64(0), np.uint64(0))
MAX_SQRT_RATIO = (np.uint64(0x5D951D5263988D26), np.uint64(0xEFD1FC6A50648849), np.uint64(0xFFFD8963), np.uint64(0))
LOG_Q96 = 96.0 * math.log(2.0)             # getTickAtSqrtRatio's float estimate: ln(price / 2⁹⁶) / ln(√1.0001)
LOG_SQRT_10001 = 0.5 * math.log(1.0001)

# TickMath.getSqrtRatioAtTick's Q128 factors as (lo, hi) limbs: bit b of |tick| multiplies by sqrt(1.0001)^-(2^b)
RATIO_ODD = (np.uint64(0xAA2D162D1A594001), np.uint64(0xFFFCB933BD6FAD37))
TICK_0x00002 = (np.uint64(0x59A46990580E213A), np.uint64(0xFFF97272373D4132))
TICK_0x00004 = (np.uint64(0xEF12357CF3C7FDCC), np.uint64(0xFFF2E50F5F656932))
TICK_0x00008 = (np.uint64(0x1C3624EAA0941CD0), np.uint64(0xFFE5CACA7E10E4E6))
TICK_0x00010 = (np.uint64(0xC9DB58835C926644), np.uint64(0xFFCB9843D60F6159))
TICK_0x00020 = (np.uint64(0x472E6896DFB254C0), np.uint64(0xFF973B41FA98C081))
TICK_0x00040 = (np.uint64(0x43EC78B326B52861), np.uint64(0xFF2EA16466C96A38))
TICK_0x00080 = (np.uint64(0x11C461F1969C3053), np.uint64(0xFE5DEE046A99A2A8))
TICK_0x00100 = (np.uint64(0xDCFFC83B479AA3A4), np.uint64(0xFCBE86C7900A88AE))
TICK_0x00200 = (np.uint64(0x6F2B074CF7815E54), np.uint64(0xF987A7253AC41317))
TICK_0x00400 = (np.uint64(0x940C7A398E4B70F3), np.uint64(0xF3392B0822B70005))
TICK_0x00800 = (np.uint64(0x43B29C7FA6E889D9), np.uint64(0xE7159475A2C29B74))
TICK_0x01000 = (np.uint64(0x845AD8F792AA5825), np.uint64(0xD097F3BDFD2022B8))
TICK_0x02000 = (np.uint64(0x8A65DC1F90E061E5), np.uint64(0xA9F746462D870FDF))
TICK_0x04000 = (np.uint64(0x90BB3DF62BAF32F7), np.uint64(0x70D869A156D2A1B8))
TICK_0x08000 = (np.uint64(0x81231505542FCFA6), np.uint64(0x31BE135F97D08FD9))
TICK_0x10000 = (np.uint64(0xC677DE54F3E99BC9), np.uint64(0x09AA508B5B7A84E1))
TICK_0x20000 = (np.uint64(0x6699C329225EE604), np.uint64(0x005D6AF8DEDB8119))
TICK_0x40000 = (np.uint64(0x1EA926041BEDFE98), np.uint64(0x00002216E584F5FA))
TICK_0x80000 = (np.uint64(0x91F7DC42444E8FA2), np.uint64(0x00000000048A1703))


# ------------------------------------------------------------------------------------------------------------ V2
def v2_get_amount_out(amount_in, reserve_in, reserve_out, fee_ppm):
    """UniswapV2Library.getAmountOut with the fee in millionths (gpubt.exact.v2.get_amount_out): (amount_out,
    status); the numerator is a 512-bit product, so only amount_in·(10⁶ − fee_ppm) and the denominator must fit."""
    if u256_is_zero(amount_in):
        return (Z, Z, Z, Z), V2_INSUFFICIENT_INPUT_AMOUNT
    if u256_is_zero(reserve_in) or u256_is_zero(reserve_out):
        return (Z, Z, Z, Z), V2_INSUFFICIENT_LIQUIDITY
    if fee_ppm < 0 or fee_ppm > FEE_DENOMINATOR:
        return (Z, Z, Z, Z), EXACT_BAD_FEE
    with_fee, over = u256_mul_small(amount_in, np.uint64(FEE_DENOMINATOR - fee_ppm))
    if over != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    scaled_in, over = u256_mul_small(reserve_in, FEE_DENOMINATOR_U64)
    denominator, carry = u256_add(scaled_in, with_fee)
    if over != Z or carry != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    lo, hi = u256_mul(with_fee, reserve_out)
    amount_out, _, status = u512_divmod(lo, hi, denominator)  # < reserve_out: never overflows
    return amount_out, status


def v2_get_amount_in(amount_out, reserve_in, reserve_out, fee_ppm):
    """UniswapV2Library.getAmountIn with the fee in millionths (gpubt.exact.v2.get_amount_in): the least input that
    yields amount_out, and a status (EXACT_DIV_ZERO for a 100 % fee, EXACT_OVERFLOW when it is ≥ 2²⁵⁶)."""
    if u256_is_zero(amount_out):
        return (Z, Z, Z, Z), V2_INSUFFICIENT_OUTPUT_AMOUNT
    if u256_is_zero(reserve_in) or not u256_lt(amount_out, reserve_out):
        return (Z, Z, Z, Z), V2_INSUFFICIENT_LIQUIDITY
    if fee_ppm < 0 or fee_ppm > FEE_DENOMINATOR:
        return (Z, Z, Z, Z), EXACT_BAD_FEE
    scaled_in, over = u256_mul_small(reserve_in, FEE_DENOMINATOR_U64)
    if over != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    room, _ = u256_sub(reserve_out, amount_out)
    denominator, over = u256_mul_small(room, np.uint64(FEE_DENOMINATOR - fee_ppm))
    if over != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    lo, hi = u256_mul(scaled_in, amount_out)
    amount_in, _, status = u512_divmod(lo, hi, denominator)
    if status != U256_OK:
        return (Z, Z, Z, Z), status
    amount_in, carry = u256_add(amount_in, (ONE, Z, Z, Z))
    if carry != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    return amount_in, EXACT_OK


def v2_path_amount_out(amount_in, path_reserve_in, path_reserve_out, path_fee_ppm, i):
    """gpubt.exact.v2.path_amount_out of path i: getAmountOut hop by hop, 0 once an amount is 0; path_reserve_*
    are (n_paths, max_hops, 4) uint64 limbs, path_fee_ppm (n_paths, max_hops) int64 with −1 past the path's end."""
    amount = amount_in
    for h in range(path_fee_ppm.shape[1]):
        fee = path_fee_ppm[i, h]
        if fee < 0:
            break
        if u256_is_zero(amount):
            return (Z, Z, Z, Z), EXACT_OK
        r_in = (path_reserve_in[i, h, 0], path_reserve_in[i, h, 1], path_reserve_in[i, h, 2],
                path_reserve_in[i, h, 3])
        r_out = (path_reserve_out[i, h, 0], path_reserve_out[i, h, 1], path_reserve_out[i, h, 2],
                 path_reserve_out[i, h, 3])
        amount, status = v2_get_amount_out(amount, r_in, r_out, fee)
        if status != EXACT_OK:
            return (Z, Z, Z, Z), status
    return amount, EXACT_OK


# ------------------------------------------------------------------------------------------------------ TickMath
def mul_shr128(ratio, factor):
    """(ratio · factor) >> 128 for ratio ≤ 2¹²⁸ and a Q128 factor (lo, hi) < 2¹²⁸: one TickMath multiply
    (3 × 2 limbs; the product is < 2²⁵⁶)."""
    r0, r1, r2, _ = ratio
    f0, f1 = factor
    _, c = mac64(Z, r0, f0, Z)
    p1, p2 = mac64(Z, r0, f1, c)
    p1, c = mac64(p1, r1, f0, Z)
    p2, p3 = mac64(p2, r1, f1, c)
    p2, c = mac64(p2, r2, f0, Z)
    p3, _ = mac64(p3, r2, f1, c)
    return (p2, p3, Z, Z)


def get_sqrt_ratio_at_tick(tick):
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) as a Q64.96 (< 2¹⁶⁰), rounded up; EXACT_TICK ('T') when
    |tick| > MAX_TICK."""
    if tick < -MAX_TICK or tick > MAX_TICK:
        return (Z, Z, Z, Z), EXACT_TICK
    abs_tick = -tick if tick < 0 else tick
    if abs_tick & 0x1:
        ratio = (RATIO_ODD[0], RATIO_ODD[1], Z, Z)
    else:
        ratio = (Z, Z, ONE, Z)
    if abs_tick & 0x2:
        ratio = mul_shr128(ratio, TICK_0x00002)
    if abs_tick & 0x4:
        ratio = mul_shr128(ratio, TICK_0x00004)
    if abs_tick & 0x8:
        ratio = mul_shr128(ratio, TICK_0x00008)
    if abs_tick & 0x10:
        ratio = mul_shr128(ratio, TICK_0x00010)
    if abs_tick & 0x20:
        ratio = mul_shr128(ratio, TICK_0x00020)
    if abs_tick & 0x40:
        ratio = mul_shr128(ratio, TICK_0x00040)
    if abs_tick & 0x80:
        ratio = mul_shr128(ratio, TICK_0x00080)
    if abs_tick & 0x100:
        ratio = mul_shr128(ratio, TICK_0x00100)
    if abs_tick & 0x200:
        ratio = mul_shr128(ratio, TICK_0x00200)
    if abs_tick & 0x400:
        ratio = mul_shr128(ratio, TICK_0x00400)
    if abs_tick & 0x800:
        ratio = mul_shr128(ratio, TICK_0x00800)
    if abs_tick & 0x1000:
        ratio = mul_shr128(ratio, TICK_0x01000)
    if abs_tick & 0x2000:
        ratio = mul_shr128(ratio, TICK_0x02000)
    if abs_tick & 0x4000:
        ratio = mul_shr128(ratio, TICK_0x04000)
    if abs_tick & 0x8000:
        ratio = mul_shr128(ratio, TICK_0x08000)
    if abs_tick & 0x10000:
        ratio = mul_shr128(ratio, TICK_0x10000)
    if abs_tick & 0x20000:
        ratio = mul_shr128(ratio, TICK_0x20000)
    if abs_tick & 0x40000:
        ratio = mul_shr128(ratio, TICK_0x40000)
    if abs_tick & 0x80000:
        ratio = mul_shr128(ratio, TICK_0x80000)
    if tick > 0:
        ratio, _, _ = u256_divmod((MAX64, MAX64, MAX64, MAX64), ratio)  # ratio > 0: every factor is > 2¹²⁷
    result = u256_shr(ratio, S32)
    if (ratio[0] & M32) != Z:
        result, _ = u256_add(result, (ONE, Z, Z, Z))
    return result, EXACT_OK


def get_tick_at_sqrt_ratio(sqrt_price):
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is ≤ sqrt_price, and a status (EXACT_REVERT,
    the contract's 'R', outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)). That tick is the t with ratio(t) ≤ price <
    ratio(t + 1), so a float estimate stepped by exact getSqrtRatioAtTick until both hold is the contract's answer
    whatever the estimate's error (it is within a tick: two or three ratios in all), as gpubt.exact.v3 does."""
    if u256_lt(sqrt_price, MIN_SQRT_RATIO) or not u256_lt(sqrt_price, MAX_SQRT_RATIO):
        return 0, EXACT_REVERT
    t = int(math.floor((math.log(u256_to_float(sqrt_price)) - LOG_Q96) / LOG_SQRT_10001))   # CUDA's floor: float
    t = min(max(t, -MAX_TICK), MAX_TICK - 1)
    while t > -MAX_TICK:           # ratio(-MAX_TICK) = MIN_SQRT_RATIO ≤ price: stops there at the latest
        ratio, _ = get_sqrt_ratio_at_tick(t)
        if not u256_lt(sqrt_price, ratio):
            break
        t -= 1
    while t < MAX_TICK - 1:        # price < MAX_SQRT_RATIO = ratio(MAX_TICK): stops at MAX_TICK − 1 at the latest
        ratio, _ = get_sqrt_ratio_at_tick(t + 1)
        if u256_lt(sqrt_price, ratio):
            break
        t += 1
    return t, EXACT_OK


# ------------------------------------------------------------------------------------------------- SqrtPriceMath
def fits_uint160(x):
    """x < 2¹⁶⁰."""
    return x[3] == Z and (x[2] >> S32) == Z


def next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount, add):
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp, with its overflow paths; sqrt_price > 0 and
    liquidity > 0 (checked by the callers)."""
    if u256_is_zero(amount):
        return sqrt_price, EXACT_OK
    numerator1 = u256_shl(liquidity, S96)
    product, product_hi = u256_mul(amount, sqrt_price)
    if add:
        if u256_is_zero(product_hi):
            denominator, carry = u256_add(numerator1, product)
            if carry == Z:
                result, status = mul_div_rounding_up(numerator1, sqrt_price, denominator)
                return (result[0], result[1], result[2] & M32, Z), status  # uint160(...) truncates
        quotient, _, _ = u256_divmod(numerator1, sqrt_price)
        quotient_plus, carry = u256_add(quotient, amount)
        if carry != Z:
            return (Z, Z, Z, Z), EXACT_OVERFLOW
        result = div_rounding_up(numerator1, quotient_plus)
        return (result[0], result[1], result[2] & M32, Z), EXACT_OK
    if not u256_is_zero(product_hi) or not u256_lt(product, numerator1):
        return (Z, Z, Z, Z), EXACT_REVERT
    denominator, _ = u256_sub(numerator1, product)
    result, status = mul_div_rounding_up(numerator1, sqrt_price, denominator)
    if status != EXACT_OK:
        return (Z, Z, Z, Z), status
    if not fits_uint160(result):
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    return result, EXACT_OK


def next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount, add):
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown; liquidity > 0 (checked by the callers).

    The contract's two branches (a shift when amount < 2¹⁶⁰, else mulDiv by Q96) are one quotient of the 512-bit
    amount·2⁹⁶ by liquidity, rounded down to add and up to remove, reverting when it is ≥ 2²⁵⁶."""
    quotient, remainder, status = u512_divmod(u256_shl(amount, S96), u256_shr(amount, S160), liquidity)
    if status != U256_OK:
        return (Z, Z, Z, Z), status
    if add:
        result, carry = u256_add(sqrt_price, quotient)
        if carry != Z or not fits_uint160(result):
            return (Z, Z, Z, Z), EXACT_OVERFLOW
        return result, EXACT_OK
    if not u256_is_zero(remainder):
        quotient, carry = u256_add(quotient, (ONE, Z, Z, Z))
        if carry != Z:
            return (Z, Z, Z, Z), EXACT_OVERFLOW
    if not u256_lt(quotient, sqrt_price):
        return (Z, Z, Z, Z), EXACT_REVERT
    result, _ = u256_sub(sqrt_price, quotient)
    return result, EXACT_OK


def get_next_sqrt_price_from_input(sqrt_price, liquidity, amount_in, zero_for_one):
    """SqrtPriceMath.getNextSqrtPriceFromInput: the price after adding amount_in (rounded so the pool never
    loses), and a status."""
    if u256_is_zero(sqrt_price) or u256_is_zero(liquidity):
        return (Z, Z, Z, Z), EXACT_REVERT
    if zero_for_one:
        return next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount_in, True)
    return next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_price, liquidity, amount_out, zero_for_one):
    """SqrtPriceMath.getNextSqrtPriceFromOutput: the price after removing amount_out, and a status."""
    if u256_is_zero(sqrt_price) or u256_is_zero(liquidity):
        return (Z, Z, Z, Z), EXACT_REVERT
    if zero_for_one:
        return next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount_out, False)
    return next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_a, sqrt_ratio_b, liquidity, round_up):
    """SqrtPriceMath.getAmount0Delta (unsigned): liquidity·(√B − √A)/(√A·√B) of token0, and a status."""
    if u256_lt(sqrt_ratio_b, sqrt_ratio_a):
        sqrt_ratio_a, sqrt_ratio_b = sqrt_ratio_b, sqrt_ratio_a
    if u256_is_zero(sqrt_ratio_a):
        return (Z, Z, Z, Z), EXACT_REVERT
    numerator1 = u256_shl(liquidity, S96)
    numerator2, _ = u256_sub(sqrt_ratio_b, sqrt_ratio_a)
    if round_up:
        scaled, status = mul_div_rounding_up(numerator1, numerator2, sqrt_ratio_b)
        if status != U256_OK:
            return (Z, Z, Z, Z), status
        return div_rounding_up(scaled, sqrt_ratio_a), EXACT_OK
    scaled, status = mul_div(numerator1, numerator2, sqrt_ratio_b)
    if status != U256_OK:
        return (Z, Z, Z, Z), status
    amount, _, _ = u256_divmod(scaled, sqrt_ratio_a)
    return amount, EXACT_OK


def get_amount1_delta(sqrt_ratio_a, sqrt_ratio_b, liquidity, round_up):
    """SqrtPriceMath.getAmount1Delta (unsigned): liquidity·(√B − √A) of token1, and a status. mulDiv by Q96 is a
    shift of the 512-bit product (the same value and the same overflow: the result is ≥ 2²⁵⁶)."""
    if u256_lt(sqrt_ratio_b, sqrt_ratio_a):
        sqrt_ratio_a, sqrt_ratio_b = sqrt_ratio_b, sqrt_ratio_a
    diff, _ = u256_sub(sqrt_ratio_b, sqrt_ratio_a)
    lo, hi = u256_mul(liquidity, diff)
    if (hi[1] >> S32) != Z or hi[2] != Z or hi[3] != Z:
        return (Z, Z, Z, Z), EXACT_OVERFLOW
    shifted_hi = u256_shl(hi, S160)
    amount = u256_shr(lo, S96)
    amount = (amount[0], amount[1] | shifted_hi[1], amount[2] | shifted_hi[2], amount[3] | shifted_hi[3])
    if round_up and (lo[0] != Z or (lo[1] & M32) != Z):
        amount, carry = u256_add(amount, (ONE, Z, Z, Z))
        if carry != Z:
            return (Z, Z, Z, Z), EXACT_OVERFLOW
    return amount, EXACT_OK


# ------------------------------------------------------------------------------------------------------ SwapMath
def get_amount_delta(token0, sqrt_ratio_a, sqrt_ratio_b, liquidity, round_up):
    """getAmount0Delta when token0, else getAmount1Delta. The swap step calls the deltas only through here, with
    runtime flags: each literal True/False argument would compile (and, on the GPU, inline) another copy."""
    if token0:
        return get_amount0_delta(sqrt_ratio_a, sqrt_ratio_b, liquidity, round_up)
    return get_amount1_delta(sqrt_ratio_a, sqrt_ratio_b, liquidity, round_up)


def next_sqrt_price(sqrt_price, liquidity, amount, token0, add):
    """getNextSqrtPriceFromAmount0RoundingUp when token0, else ...FromAmount1RoundingDown, after
    getNextSqrtPriceFromInput/Output's require (price and liquidity > 0): from input is add, from output remove,
    and token0 is zero_for_one for an input, not zero_for_one for an output."""
    if u256_is_zero(sqrt_price) or u256_is_zero(liquidity):
        return (Z, Z, Z, Z), EXACT_REVERT
    if token0:
        return next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount, add)
    return next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount, add)


def compute_swap_step(sqrt_ratio_current, sqrt_ratio_target, liquidity, amount_remaining, fee_pips):
    """SwapMath.computeSwapStep: one step towards the target price; amount_remaining is an int256 (two's
    complement), ≥ 0 exact input, < 0 exact output; fee_pips in [0, 10⁶). Returns (sqrt_ratio_next, amount_in,
    amount_out, fee_amount, status).

    The contract's branches folded by which token and rounding each delta uses (the same operations, so the same
    values and the same reverts): the step's first delta is token0's when zero_for_one == exact_in, rounded up for
    an input; then the input (token0 when zero_for_one, rounded up) and output (the other token, rounded down)."""
    zero = (Z, Z, Z, Z)
    if fee_pips < 0 or fee_pips >= FEE_DENOMINATOR:
        return zero, zero, zero, zero, EXACT_BAD_FEE
    zero_for_one = not u256_lt(sqrt_ratio_current, sqrt_ratio_target)
    exact_in = (amount_remaining[3] >> np.uint64(63)) == Z
    fee = (np.uint64(fee_pips), Z, Z, Z)
    kept = (np.uint64(FEE_DENOMINATOR - fee_pips), Z, Z, Z)
    remaining_out = u256_neg(amount_remaining)  # −amount_remaining (2²⁵⁵ for the most negative int256)
    if exact_in:
        available, status = mul_div(amount_remaining, kept, (FEE_DENOMINATOR_U64, Z, Z, Z))
        if status != EXACT_OK:
            return zero, zero, zero, zero, status
    else:
        available = remaining_out
    first_token0 = zero_for_one == exact_in
    to_target, status = get_amount_delta(first_token0, sqrt_ratio_target, sqrt_ratio_current, liquidity, exact_in)
    if status != EXACT_OK:
        return zero, zero, zero, zero, status
    if not u256_lt(available, to_target):
        sqrt_ratio_next = sqrt_ratio_target
    else:
        sqrt_ratio_next, status = next_sqrt_price(sqrt_ratio_current, liquidity, available, first_token0, exact_in)
        if status != EXACT_OK:
            return zero, zero, zero, zero, status
    reached_target = u256_eq(sqrt_ratio_target, sqrt_ratio_next)

    amount_in = to_target if exact_in else zero
    amount_out = zero if exact_in else to_target
    if not (reached_target and exact_in):
        amount_in, status = get_amount_delta(zero_for_one, sqrt_ratio_next, sqrt_ratio_current, liquidity, True)
        if status != EXACT_OK:
            return zero, zero, zero, zero, status
    if not (reached_target and not exact_in):
        amount_out, status = get_amount_delta(not zero_for_one, sqrt_ratio_next, sqrt_ratio_current, liquidity,
                                              False)
        if status != EXACT_OK:
            return zero, zero, zero, zero, status

    if not exact_in and u256_lt(remaining_out, amount_out):
        amount_out = remaining_out
    if exact_in and not reached_target:
        fee_amount, _ = u256_sub(amount_remaining, amount_in)  # the rest of the input is all fee
    else:
        fee_amount, status = mul_div_rounding_up(amount_in, fee, kept)
        if status != EXACT_OK:
            return zero, zero, zero, zero, status
    return sqrt_ratio_next, amount_in, amount_out, fee_amount, EXACT_OK


# ---------------------------------------------------------------------------------------------------- the swap
def add_liquidity_delta(liquidity, net, negate):
    """LiquidityMath.addDelta(liquidity, ±net): liquidity a uint128, net an int128 as a sign-extended int256 (two's
    complement), negated when `negate` (crossing a tick leftwards); EXACT_REVERT ('LS' / 'LA') when the result
    leaves uint128."""
    delta = u256_neg(net) if negate else net
    if (delta[3] >> np.uint64(63)) != Z:   # y < 0: liquidity − |y|, which must not underflow
        magnitude = u256_neg(delta)
        if u256_lt(liquidity, magnitude):
            return (Z, Z, Z, Z), EXACT_REVERT
        out, _ = u256_sub(liquidity, magnitude)
        return out, EXACT_OK
    out, carry = u256_add(liquidity, delta)
    if carry != Z or out[2] != Z or out[3] != Z:
        return (Z, Z, Z, Z), EXACT_REVERT
    return out, EXACT_OK


def next_initialized_tick(ticks, lo, hi, tick, spacing, lte):
    """TickBitmap.nextInitializedTickWithinOneWord on a pool's sorted initialized ticks ticks[lo:hi] (multiples of
    `spacing`): (the next initialized tick within the current 256-spacing word, its index) or (the word's edge,
    −1). A swap steps at every word edge, as the contract does, so its rounding is the contract's."""
    compressed = tick // spacing   # floor, as the contract's truncate-then-decrement
    if lte:
        edge = ((compressed >> 8) << 8) * spacing
        at = compressed * spacing
        a, b = lo, hi
        while a < b:               # the first index whose tick is > at
            m = (a + b) // 2
            if ticks[m] <= at:
                a = m + 1
            else:
                b = m
        if a > lo and ticks[a - 1] >= edge:
            return ticks[a - 1], a - 1
        return edge, -1
    nxt = compressed + 1
    edge = (((nxt >> 8) << 8) + 255) * spacing
    at = nxt * spacing
    a, b = lo, hi
    while a < b:                   # the first index whose tick is >= at
        m = (a + b) // 2
        if ticks[m] < at:
            a = m + 1
        else:
            b = m
    if a < hi and ticks[a] <= edge:
        return ticks[a], a
    return edge, -1


def v3_swap(sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, ticks, nets, lo, hi,
            track_tick):
    """UniswapV3Pool.swap on a pool's state, without changing it: `amount` is the exact input (`exact_in`) or the
    exact output wanted, `limit` the sqrtPriceLimitX96; the pool's initialized ticks are ticks[lo:hi] (sorted) with
    their liquidityNet nets[lo:hi] (int128 sign-extended, 4 limbs). Returns (input paid, output received, the price,
    tick and liquidity after, initialized ticks crossed, status): less than `amount` is taken or received when the
    limit stops the swap; a revert ('AS', 'LOK', 'SPL', a step's, 'LS'/'LA') is a non-OK status with zeros.
    track_tick=False leaves out the tick after a swap that ends inside a tick range (its getTickAtSqrtRatio) for
    callers that read only the amounts; the tick returned is then the last one stepped to."""
    zero = (Z, Z, Z, Z)
    if u256_is_zero(amount) or (amount[3] >> np.uint64(63)) != Z:   # 'AS'; amountSpecified is an int256
        return zero, zero, zero, 0, zero, 0, EXACT_REVERT
    if zero_for_one:
        ok = u256_lt(limit, sqrt_price) and u256_lt(MIN_SQRT_RATIO, limit)
    else:
        ok = u256_lt(sqrt_price, limit) and u256_lt(limit, MAX_SQRT_RATIO)
    if u256_is_zero(sqrt_price) or not ok:   # 'LOK' (not initialized), 'SPL'
        return zero, zero, zero, 0, zero, 0, EXACT_REVERT
    left, paid, received, crossed = amount, zero, zero, 0
    while not u256_is_zero(left) and not u256_eq(sqrt_price, limit):
        start = sqrt_price
        tick_next, index = next_initialized_tick(ticks, lo, hi, tick, spacing, zero_for_one)
        if tick_next < -MAX_TICK:
            tick_next = -MAX_TICK
        if tick_next > MAX_TICK:
            tick_next = MAX_TICK
        price_next, status = get_sqrt_ratio_at_tick(tick_next)
        target = price_next
        if u256_lt(price_next, limit) if zero_for_one else u256_lt(limit, price_next):
            target = limit
        sqrt_price, step_in, step_out, fee_amount, status = compute_swap_step(
            sqrt_price, target, liquidity, left if exact_in else u256_neg(left), fee_pips)
        if status != EXACT_OK:
            return zero, zero, zero, 0, zero, 0, status
        spent, _ = u256_add(step_in, fee_amount)
        paid, _ = u256_add(paid, spent)
        received, _ = u256_add(received, step_out)
        left, _ = u256_sub(left, spent if exact_in else step_out)   # a step never exceeds what is left
        if u256_eq(sqrt_price, price_next):
            if index >= 0:
                crossed += 1
                liquidity, status = add_liquidity_delta(liquidity, (nets[index, 0], nets[index, 1], nets[index, 2],
                                                                    nets[index, 3]), zero_for_one)
                if status != EXACT_OK:
                    return zero, zero, zero, 0, zero, 0, status
            tick = tick_next - 1 if zero_for_one else tick_next
        elif not u256_eq(sqrt_price, start):
            # a step stops short of its target only when it used up what was left or reached the limit: the loop
            # ends here, and the tick is the price's (in range: the price lies between two ticks' ratios)
            if track_tick:
                tick, _ = get_tick_at_sqrt_ratio(sqrt_price)
            break
    return paid, received, sqrt_price, tick, liquidity, crossed, EXACT_OK


def v3_quote(sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, ticks, nets, lo, hi):
    """v3_swap's amounts with the hops' price limit (MIN_SQRT_RATIO + 1 or MAX_SQRT_RATIO − 1): (input paid,
    output received, initialized ticks crossed, status)."""
    limit = (MIN_SQRT_RATIO_PLUS_1, Z, Z, Z) if zero_for_one else MAX_SQRT_RATIO_MINUS_1
    paid, received, _, _, _, crossed, status = v3_swap(sqrt_price, liquidity, tick, spacing, fee_pips, amount,
                                                       exact_in, zero_for_one, limit, ticks, nets, lo, hi, False)
    return paid, received, crossed, status


# Dependency order for kernels/compile.build, after the u256 functions they call.
EXACT_FUNCTIONS = (
    v2_get_amount_out, v2_get_amount_in, v2_path_amount_out,
    mul_shr128, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio,
    fits_uint160, next_sqrt_price_from_amount0_rounding_up, next_sqrt_price_from_amount1_rounding_down,
    get_next_sqrt_price_from_input, get_next_sqrt_price_from_output, get_amount0_delta, get_amount1_delta,
    get_amount_delta, next_sqrt_price, compute_swap_step,
    add_liquidity_delta, next_initialized_tick, v3_swap, v3_quote,
)


# ------------------------------------------------------------------------------------------------ batch drivers
def v2_paths_amount_out_cpu(amount_in, path_reserve_in, path_reserve_out, path_fee_ppm, out_amount, out_status):
    """v2_path_amount_out of every path (amount_in and out_amount (n, 4) limbs, out_status (n,) int64)."""
    for i in prange(amount_in.shape[0]):
        amount, status = v2_path_amount_out((amount_in[i, 0], amount_in[i, 1], amount_in[i, 2], amount_in[i, 3]),
                                            path_reserve_in, path_reserve_out, path_fee_ppm, i)
        for k in range(4):
            out_amount[i, k] = amount[k]
        out_status[i] = status


def v2_paths_amount_out_cuda(amount_in, path_reserve_in, path_reserve_out, path_fee_ppm, out_amount, out_status):
    """v2_paths_amount_out_cpu, one thread per path."""
    i = cuda.grid(1)  # noqa: F821
    if i < amount_in.shape[0]:
        amount, status = v2_path_amount_out((amount_in[i, 0], amount_in[i, 1], amount_in[i, 2], amount_in[i, 3]),
                                            path_reserve_in, path_reserve_out, path_fee_ppm, i)
        for k in range(4):
            out_amount[i, k] = amount[k]
        out_status[i] = status


def v3_swap_row(i, sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, lo, hi,
                ticks, nets, out_paid, out_received, out_price, out_tick, out_liquidity, out_crossed, out_status):
    """v3_swap of row i (u256 columns (n, 4) limbs; row i's pool holds ticks[lo[i]:hi[i]]), the tick after tracked,
    into row i of the outputs."""
    paid, received, price, tick_after, liquidity_after, crossed, status = v3_swap(
        (sqrt_price[i, 0], sqrt_price[i, 1], sqrt_price[i, 2], sqrt_price[i, 3]),
        (liquidity[i, 0], liquidity[i, 1], liquidity[i, 2], liquidity[i, 3]), tick[i], spacing[i], fee_pips[i],
        (amount[i, 0], amount[i, 1], amount[i, 2], amount[i, 3]), exact_in[i], zero_for_one[i],
        (limit[i, 0], limit[i, 1], limit[i, 2], limit[i, 3]), ticks, nets, lo[i], hi[i], True)
    for k in range(4):
        out_paid[i, k] = paid[k]
        out_received[i, k] = received[k]
        out_price[i, k] = price[k]
        out_liquidity[i, k] = liquidity_after[k]
    out_tick[i] = tick_after
    out_crossed[i] = crossed
    out_status[i] = status


def v3_swaps_cpu(sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, lo, hi, ticks,
                 nets, out_paid, out_received, out_price, out_tick, out_liquidity, out_crossed, out_status):
    """v3_swap of every row."""
    for i in prange(amount.shape[0]):
        v3_swap_row(i, sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, lo, hi,
                    ticks, nets, out_paid, out_received, out_price, out_tick, out_liquidity, out_crossed, out_status)


def v3_swaps_cuda(sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, lo, hi,
                  ticks, nets, out_paid, out_received, out_price, out_tick, out_liquidity, out_crossed, out_status):
    """v3_swaps_cpu, one thread per row."""
    i = cuda.grid(1)  # noqa: F821
    if i < amount.shape[0]:
        v3_swap_row(i, sqrt_price, liquidity, tick, spacing, fee_pips, amount, exact_in, zero_for_one, limit, lo, hi,
                    ticks, nets, out_paid, out_received, out_price, out_tick, out_liquidity, out_crossed, out_status)


# Column kinds (kernels/u256.elementwise) of the row-by-row driver `<name>_cpu` / `<name>_cuda` of each function.
BATCH_KINDS = {
    "mul_div": ("uuu", "ui"),
    "mul_div_rounding_up": ("uuu", "ui"),
    "v2_get_amount_out": ("uuui", "ui"),
    "v2_get_amount_in": ("uuui", "ui"),
    "get_sqrt_ratio_at_tick": ("i", "ui"),
    "get_tick_at_sqrt_ratio": ("u", "ii"),
    "get_next_sqrt_price_from_input": ("uuub", "ui"),
    "get_next_sqrt_price_from_output": ("uuub", "ui"),
    "get_amount0_delta": ("uuub", "ui"),
    "get_amount1_delta": ("uuub", "ui"),
    "compute_swap_step": ("uuuui", "uuuui"),
    "add_liquidity_delta": ("uub", "ui"),
}


# The kernel's declaration (gpubt.kernels.REGISTRY): the u256 and exact device functions in dependency order, the
# row-by-row driver of each BATCH_KINDS function and the path driver, every CPU function compiled on its own
# (kernels/u256.build says why).
DEVICE_FUNCTIONS = _u256.U256_FUNCTIONS + EXACT_FUNCTIONS + (v3_swap_row,)
DRIVERS = tuple(_u256.elementwise(next(fn for fn in DEVICE_FUNCTIONS if fn.__name__ == name), *kinds)
                for name, kinds in BATCH_KINDS.items()) + ((v2_paths_amount_out_cpu, v2_paths_amount_out_cuda),
                                                           (v3_swaps_cpu, v3_swaps_cuda))
INLINE = False
