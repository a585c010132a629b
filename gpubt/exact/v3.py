"""Exact Uniswap V3 math in Python ints, rounding exactly as v3-core 1.0 does (FullMath, TickMath, SqrtPriceMath,
SwapMath, LiquidityMath, TickBitmap stepping) plus a pool state with the contract's swap loop and mint/burn.

Checked to the wei against the real UniswapV3Pool bytecode in tests/evm/. Failures raise `V3Revert` carrying the
contract's own revert string ('SPL', 'LS', 'T', ...), so a caller can tell "the pool would revert" apart from a bug.
Fee growth is accounted by `swap_with_fees` (a swap that also returns the growth inside one range: what a JIT
position earns); V3Pool itself does not model it, nor the oracle or protocol fees (they never change
swap/mint/burn amounts).
"""
from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_UINT128 = 2**128 - 1
MAX_UINT160 = 2**160 - 1
MAX_UINT256 = 2**256 - 1
MAX_INT128 = 2**127 - 1
MAX_INT256 = 2**255 - 1
Q96 = 2**96
Q128 = 2**128

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739  # getSqrtRatioAtTick(MIN_TICK)
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342  # getSqrtRatioAtTick(MAX_TICK)

FEE_PIPS_DENOMINATOR = 1_000_000
TICK_SPACINGS = {100: 1, 500: 10, 3000: 60, 10000: 200}  # fee (pips) → tick spacing, as UniswapV3Factory enables


class V3Revert(ValueError):
    """The contract would revert; `reason` is its revert string ('' where the contract has none)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason or 'revert'}{': ' + detail if detail else ''}")


def _require(ok: bool, reason: str = "", detail: str = "") -> None:
    if not ok:
        raise V3Revert(reason, detail)


# ---------------------------------------------------------------------------------------------- FullMath, UnsafeMath
def mul_div(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDiv: floor(a·b / denominator) with a 512-bit product; reverts if denominator = 0 or result ≥ 2²⁵⁶."""
    _require(denominator > 0, "", "mulDiv by zero")
    result = a * b // denominator
    _require(result <= MAX_UINT256, "", "mulDiv overflow")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDivRoundingUp: ceil(a·b / denominator), same reverts as mul_div."""
    result = mul_div(a, b, denominator)
    if a * b % denominator:
        _require(result < MAX_UINT256, "", "mulDivRoundingUp overflow")
        result += 1
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: ceil(x / y); the EVM's div/mod by zero give 0, and so does this."""
    if y == 0:
        return 0
    return x // y + (1 if x % y else 0)


# ------------------------------------------------------------------------------------------------------ TickMath
_TICK_FACTORS = (  # bit i of |tick| multiplies the Q128 ratio by sqrt(1.0001)^-(2^i), as in TickMath.sol
    (0x2, 0xFFF97272373D413259A46990580E213A), (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0), (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0), (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053), (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54), (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9), (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5), (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6), (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604), (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


@functools.lru_cache(maxsize=1 << 16)  # pure, and a backtest asks for the same few ticks millions of times
def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) as a Q64.96, rounded up; reverts 'T' outside ±MAX_TICK."""
    abs_tick = -tick if tick < 0 else tick
    _require(abs_tick <= MAX_TICK, "T", f"tick {tick} outside [{MIN_TICK}, {MAX_TICK}]")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 0x100000000000000000000000000000000
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = MAX_UINT256 // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


_LOG_SQRT_10001 = math.log(1.0001) / 2
_LOG_Q96 = 96 * math.log(2)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is ≤ the price; reverts 'R' out of range.

    That tick is the one t with ratio(t) <= price < ratio(t + 1) (ratios strictly increase), so a float estimate
    checked against two (cached) exact ratios gives the contract's answer; the contract's own log2 algorithm
    (`tick_at_sqrt_ratio_log2`) is the fallback when the estimate is more than one tick off."""
    _require(MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO, "R", f"sqrtPriceX96 {sqrt_price_x96} out of range")
    t = min(max(math.floor((math.log(sqrt_price_x96) - _LOG_Q96) / _LOG_SQRT_10001), MIN_TICK), MAX_TICK - 1)
    for _ in range(3):
        if get_sqrt_ratio_at_tick(t) > sqrt_price_x96:
            t -= 1
        elif get_sqrt_ratio_at_tick(t + 1) <= sqrt_price_x96:
            t += 1
        else:
            return t
        if not MIN_TICK <= t < MAX_TICK:
            break
    return tick_at_sqrt_ratio_log2(sqrt_price_x96)


def tick_at_sqrt_ratio_log2(sqrt_price_x96: int) -> int:
    """getTickAtSqrtRatio as TickMath.sol computes it (fixed-point log2); the price must be in range."""
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):  # 14 bits of fractional log2, as the contract's unrolled assembly
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141  # 128.128 number
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_high = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if get_sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


# ------------------------------------------------------------------------------------------------- SqrtPriceMath
def get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp (token0 added or removed), including its overflow paths."""
    if amount == 0:
        return sqrt_px96
    numerator1 = liquidity << 96
    product = amount * sqrt_px96
    if add:
        if product <= MAX_UINT256:
            denominator = numerator1 + product
            if denominator <= MAX_UINT256:
                return mul_div_rounding_up(numerator1, sqrt_px96, denominator) & MAX_UINT160
        quotient_plus = numerator1 // sqrt_px96 + amount
        _require(quotient_plus <= MAX_UINT256, "", "add overflow")
        return div_rounding_up(numerator1, quotient_plus) & MAX_UINT160
    _require(product <= MAX_UINT256 and numerator1 > product, "", "amount0 out exceeds reserves")
    result = mul_div_rounding_up(numerator1, sqrt_px96, numerator1 - product)
    _require(result <= MAX_UINT160, "", "toUint160")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown (token1 added or removed)."""
    if add:
        quotient = (amount << 96) // liquidity if amount <= MAX_UINT160 else mul_div(amount, Q96, liquidity)
        result = sqrt_px96 + quotient
        _require(result <= MAX_UINT160, "", "toUint160")
        return result
    if amount <= MAX_UINT160:
        quotient = div_rounding_up(amount << 96, liquidity)
    else:
        quotient = mul_div_rounding_up(amount, Q96, liquidity)
    _require(sqrt_px96 > quotient, "", "amount1 out exceeds reserves")
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput: the price after adding `amount_in` (rounded so the pool never loses)."""
    _require(sqrt_px96 > 0 and liquidity > 0)
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_px96: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput: the price after removing `amount_out`."""
    _require(sqrt_px96 > 0 and liquidity > 0)
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, False)
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta (unsigned): liquidity·(√B − √A)/(√A·√B), token0 between two prices."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    numerator1 = liquidity << 96
    numerator2 = sqrt_ratio_b_x96 - sqrt_ratio_a_x96
    _require(sqrt_ratio_a_x96 > 0)
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_ratio_b_x96), sqrt_ratio_a_x96)
    return mul_div(numerator1, numerator2, sqrt_ratio_b_x96) // sqrt_ratio_a_x96


def get_amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta (unsigned): liquidity·(√B − √A), token1 between two prices."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)
    return mul_div(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)


def _to_int256(x: int) -> int:
    _require(x <= MAX_INT256, "", "toInt256")
    return x


def get_amount0_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    """Signed getAmount0Delta(int128): rounded up when liquidity is added (owed to the pool), down when removed."""
    if liquidity_delta < 0:
        return -_to_int256(get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False))
    return _to_int256(get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True))


def get_amount1_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    """Signed getAmount1Delta(int128), rounding as get_amount0_delta_signed."""
    if liquidity_delta < 0:
        return -_to_int256(get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False))
    return _to_int256(get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True))


# ----------------------------------------------------------------------------------------- SwapMath, LiquidityMath
class SwapStep(NamedTuple):
    sqrt_ratio_next_x96: int
    amount_in: int
    amount_out: int
    fee_amount: int


def compute_swap_step(sqrt_ratio_current_x96: int, sqrt_ratio_target_x96: int, liquidity: int,
                      amount_remaining: int, fee_pips: int) -> SwapStep:
    """SwapMath.computeSwapStep: one step towards the target price; amount_remaining > 0 exact-in, < 0 exact-out."""
    zero_for_one = sqrt_ratio_current_x96 >= sqrt_ratio_target_x96
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        amount_remaining_less_fee = mul_div(amount_remaining, FEE_PIPS_DENOMINATOR - fee_pips, FEE_PIPS_DENOMINATOR)
        if zero_for_one:
            amount_in = get_amount0_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, True)
        else:
            amount_in = get_amount1_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, True)
        if amount_remaining_less_fee >= amount_in:
            sqrt_ratio_next_x96 = sqrt_ratio_target_x96
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_input(
                sqrt_ratio_current_x96, liquidity, amount_remaining_less_fee, zero_for_one)
    else:
        if zero_for_one:
            amount_out = get_amount1_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, False)
        else:
            amount_out = get_amount0_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, False)
        if -amount_remaining >= amount_out:
            sqrt_ratio_next_x96 = sqrt_ratio_target_x96
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_output(
                sqrt_ratio_current_x96, liquidity, -amount_remaining, zero_for_one)

    reached_target = sqrt_ratio_target_x96 == sqrt_ratio_next_x96
    if zero_for_one:
        if not (reached_target and exact_in):
            amount_in = get_amount0_delta(sqrt_ratio_next_x96, sqrt_ratio_current_x96, liquidity, True)
        if not (reached_target and not exact_in):
            amount_out = get_amount1_delta(sqrt_ratio_next_x96, sqrt_ratio_current_x96, liquidity, False)
    else:
        if not (reached_target and exact_in):
            amount_in = get_amount1_delta(sqrt_ratio_current_x96, sqrt_ratio_next_x96, liquidity, True)
        if not (reached_target and not exact_in):
            amount_out = get_amount0_delta(sqrt_ratio_current_x96, sqrt_ratio_next_x96, liquidity, False)

    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_ratio_next_x96 != sqrt_ratio_target_x96:
        fee_amount = amount_remaining - amount_in  # the rest of the input is all fee
    else:
        fee_amount = mul_div_rounding_up(amount_in, fee_pips, FEE_PIPS_DENOMINATOR - fee_pips)
    return SwapStep(sqrt_ratio_next_x96, amount_in, amount_out, fee_amount)


def add_delta(x: int, y: int) -> int:
    """LiquidityMath.addDelta: uint128 + int128, reverting 'LS' on underflow and 'LA' on overflow."""
    z = x + y
    if y < 0:
        _require(z >= 0, "LS", f"liquidity {x} - {-y} < 0")
    else:
        _require(z <= MAX_UINT128, "LA", f"liquidity {x} + {y} overflows uint128")
    return z


def tick_spacing_to_max_liquidity_per_tick(tick_spacing: int) -> int:
    """Tick.tickSpacingToMaxLiquidityPerTick: uint128 max ÷ the number of usable ticks (Solidity's truncating /)."""
    min_tick = -(-MIN_TICK // tick_spacing) * tick_spacing
    max_tick = (MAX_TICK // tick_spacing) * tick_spacing
    return MAX_UINT128 // ((max_tick - min_tick) // tick_spacing + 1)


# ------------------------------------------------------------------------------------------------------- the pool
@dataclass
class TickInfo:
    liquidity_gross: int = 0
    liquidity_net: int = 0


class SwapOutcome(NamedTuple):
    amount0: int  # signed as the pool returns it: > 0 paid into the pool, < 0 paid out
    amount1: int
    steps: int  # iterations of the contract's swap loop (one per word or initialized tick reached)
    ticks_crossed: int  # initialized ticks crossed (each costs the contract a Tick.cross)
    growth_inside: int = 0  # with a fee range: the fee growth (X128) accrued inside it (swap_with_fees)
    fee_total: int = 0      # with a fee range: the swap's total fee


@dataclass
class V3Pool:
    """The swap-relevant state of one UniswapV3Pool: slot0 price/tick, in-range liquidity, initialized ticks.

    `initialized` holds the initialized ticks divided by tick_spacing, sorted: the same set the contract's
    TickBitmap holds, searched word by word (256 spacings) exactly like nextInitializedTickWithinOneWord.
    """

    fee: int
    tick_spacing: int = 0
    sqrt_price_x96: int = 0
    tick: int = 0
    liquidity: int = 0
    ticks: dict = field(default_factory=dict)  # tick → TickInfo
    initialized: list = field(default_factory=list)  # sorted compressed ticks (tick // tick_spacing)
    positions: dict = field(default_factory=dict)  # (owner, tick_lower, tick_upper) → liquidity

    def __post_init__(self):
        if not self.tick_spacing:
            if self.fee not in TICK_SPACINGS:
                raise ValueError(f"fee {self.fee}: no default tick spacing (known: {sorted(TICK_SPACINGS)})")
            self.tick_spacing = TICK_SPACINGS[self.fee]
        self.max_liquidity_per_tick = tick_spacing_to_max_liquidity_per_tick(self.tick_spacing)
        if self.sqrt_price_x96:
            self.tick = get_tick_at_sqrt_ratio(self.sqrt_price_x96)

    def initialize(self, sqrt_price_x96: int) -> None:
        """UniswapV3Pool.initialize: sets the price (and tick); reverts 'AI' if already initialized."""
        _require(self.sqrt_price_x96 == 0, "AI", "pool already initialized")
        self.tick = get_tick_at_sqrt_ratio(sqrt_price_x96)
        self.sqrt_price_x96 = sqrt_price_x96

    # -- TickBitmap -------------------------------------------------------------------------------------------
    def next_initialized_tick_within_one_word(self, tick: int, lte: bool) -> tuple[int, bool]:
        """TickBitmap.nextInitializedTickWithinOneWord: the next initialized tick in the current 256-spacing word,
        or the word's edge (not initialized) when there is none: swaps step at every word boundary."""
        compressed = tick // self.tick_spacing  # floor, as the contract's truncate-then-decrement
        s = self.initialized
        if lte:
            word_start = (compressed >> 8) << 8
            i = bisect_right(s, compressed) - 1
            if i >= 0 and s[i] >= word_start:
                return s[i] * self.tick_spacing, True
            return word_start * self.tick_spacing, False
        nxt = compressed + 1
        word_end = ((nxt >> 8) << 8) + 255
        i = bisect_left(s, nxt)
        if i < len(s) and s[i] <= word_end:
            return s[i] * self.tick_spacing, True
        return word_end * self.tick_spacing, False

    # -- swap -------------------------------------------------------------------------------------------------
    def swap(self, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int) -> tuple[int, int]:
        """UniswapV3Pool.swap: (amount0, amount1) signed as the pool returns them; updates price, tick, liquidity.

        amount_specified > 0 is exact input, < 0 exact output; the swap stops early at sqrt_price_limit_x96.
        On a revert (V3Revert) the state is unchanged.
        """
        outcome = self.swap_outcome(zero_for_one, amount_specified, sqrt_price_limit_x96)
        return outcome.amount0, outcome.amount1

    def swap_outcome(self, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int,
                     commit: bool = True, fee_range: tuple | None = None) -> SwapOutcome:
        """swap() with its step and crossed-tick counts; commit=False quotes without changing the state. With
        `fee_range` (tick_lower, tick_upper) it also accrues fees as UniswapV3Pool does: per step feeGrowthGlobal +=
        mulDiv(feeAmount, 2**128, liquidity), counted inside the range while the step's starting tick is in it."""
        _require(amount_specified != 0, "AS", "amount_specified = 0")
        sqrt_price, tick, liquidity = self.sqrt_price_x96, self.tick, self.liquidity
        _require(sqrt_price != 0, "LOK", "pool not initialized")
        if zero_for_one:
            _require(MIN_SQRT_RATIO < sqrt_price_limit_x96 < sqrt_price, "SPL",
                     f"limit {sqrt_price_limit_x96} must be in (MIN_SQRT_RATIO, price {sqrt_price})")
        else:
            _require(sqrt_price < sqrt_price_limit_x96 < MAX_SQRT_RATIO, "SPL",
                     f"limit {sqrt_price_limit_x96} must be in (price {sqrt_price}, MAX_SQRT_RATIO)")
        exact_input = amount_specified > 0
        remaining, calculated = amount_specified, 0
        steps = crossed = growth_inside = fee_total = 0
        fee = self.fee
        while remaining != 0 and sqrt_price != sqrt_price_limit_x96:
            steps += 1
            price_start = sqrt_price
            tick_next, initialized = self.next_initialized_tick_within_one_word(tick, zero_for_one)
            tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
            price_next = get_sqrt_ratio_at_tick(tick_next)
            if zero_for_one:
                target = sqrt_price_limit_x96 if price_next < sqrt_price_limit_x96 else price_next
            else:
                target = sqrt_price_limit_x96 if price_next > sqrt_price_limit_x96 else price_next
            sqrt_price, amount_in, amount_out, fee_amount = compute_swap_step(
                sqrt_price, target, liquidity, remaining, fee)
            if exact_input:
                remaining -= _to_int256(amount_in + fee_amount)
                calculated -= _to_int256(amount_out)
            else:
                remaining += _to_int256(amount_out)
                calculated += _to_int256(amount_in + fee_amount)
            if fee_range is not None:
                fee_total += fee_amount
                if liquidity > 0 and fee_range[0] <= tick < fee_range[1]:
                    growth_inside += mul_div(fee_amount, Q128, liquidity)
            if sqrt_price == price_next:
                if initialized:
                    crossed += 1
                    liquidity_net = self.ticks[tick_next].liquidity_net
                    liquidity = add_delta(liquidity, -liquidity_net if zero_for_one else liquidity_net)
                tick = tick_next - 1 if zero_for_one else tick_next
            elif sqrt_price != price_start:
                tick = get_tick_at_sqrt_ratio(sqrt_price)
        if zero_for_one == exact_input:
            amount0, amount1 = amount_specified - remaining, calculated
        else:
            amount0, amount1 = calculated, amount_specified - remaining
        if commit:
            self.sqrt_price_x96, self.tick, self.liquidity = sqrt_price, tick, liquidity
        return SwapOutcome(amount0, amount1, steps, crossed, growth_inside, fee_total)

    # -- mint / burn ------------------------------------------------------------------------------------------
    def mint(self, tick_lower: int, tick_upper: int, amount: int, owner: object = None) -> tuple[int, int]:
        """UniswapV3Pool.mint: adds `amount` liquidity; returns (amount0, amount1) the pool takes (rounded up)."""
        _require(amount > 0, "", "mint amount = 0")
        _require(amount <= MAX_INT128, "", "toInt128")
        amount0, amount1 = self._modify_position(owner, tick_lower, tick_upper, amount)
        return amount0, amount1

    def burn(self, tick_lower: int, tick_upper: int, amount: int, owner: object = None) -> tuple[int, int]:
        """UniswapV3Pool.burn: removes `amount` liquidity; returns (amount0, amount1) owed back (rounded down).
        amount = 0 is the contract's 'poke' (reverts 'NP' on an empty position)."""
        _require(0 <= amount <= MAX_INT128, "", "toInt128")
        amount0, amount1 = self._modify_position(owner, tick_lower, tick_upper, -amount)
        return -amount0, -amount1

    def _modify_position(self, owner, tick_lower: int, tick_upper: int, liquidity_delta: int) -> tuple[int, int]:
        _require(tick_lower < tick_upper, "TLU", f"tick_lower {tick_lower} >= tick_upper {tick_upper}")
        _require(tick_lower >= MIN_TICK, "TLM", f"tick_lower {tick_lower} < MIN_TICK")
        _require(tick_upper <= MAX_TICK, "TUM", f"tick_upper {tick_upper} > MAX_TICK")
        _require(self.sqrt_price_x96 != 0, "LOK", "pool not initialized")
        key = (owner, tick_lower, tick_upper)
        position = self.positions.get(key, 0)
        if liquidity_delta == 0:
            _require(position > 0, "NP", "poke of an empty position")
        position_next = add_delta(position, liquidity_delta)
        # validate both tick updates before touching state, so a revert leaves the pool unchanged
        updates = []
        if liquidity_delta != 0:
            for t, upper in ((tick_lower, False), (tick_upper, True)):
                info = self.ticks.get(t, TickInfo())
                gross_after = add_delta(info.liquidity_gross, liquidity_delta)
                _require(gross_after <= self.max_liquidity_per_tick, "LO", f"tick {t} liquidity above the cap")
                net_after = info.liquidity_net - liquidity_delta if upper else info.liquidity_net + liquidity_delta
                _require(-2**127 <= net_after <= MAX_INT128, "", "liquidityNet int128 overflow")
                flipped = (gross_after == 0) != (info.liquidity_gross == 0)
                if flipped:
                    _require(t % self.tick_spacing == 0, "", f"tick {t} not a multiple of {self.tick_spacing}")
                updates.append((t, gross_after, net_after, flipped))
        amount0 = amount1 = 0
        liquidity = self.liquidity
        if liquidity_delta != 0:
            sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(tick_lower), get_sqrt_ratio_at_tick(tick_upper)
            if self.tick < tick_lower:
                amount0 = get_amount0_delta_signed(sqrt_lower, sqrt_upper, liquidity_delta)
            elif self.tick < tick_upper:
                amount0 = get_amount0_delta_signed(self.sqrt_price_x96, sqrt_upper, liquidity_delta)
                amount1 = get_amount1_delta_signed(sqrt_lower, self.sqrt_price_x96, liquidity_delta)
                liquidity = add_delta(liquidity, liquidity_delta)
            else:
                amount1 = get_amount1_delta_signed(sqrt_lower, sqrt_upper, liquidity_delta)
        for t, gross_after, net_after, flipped in updates:
            compressed = t // self.tick_spacing
            if gross_after == 0:
                self.ticks.pop(t, None)
            else:
                self.ticks[t] = TickInfo(gross_after, net_after)
            if flipped:
                i = bisect_left(self.initialized, compressed)
                if gross_after == 0:
                    del self.initialized[i]
                else:
                    self.initialized.insert(i, compressed)
        self.liquidity = liquidity
        if position_next:
            self.positions[key] = position_next
        else:
            self.positions.pop(key, None)
        return amount0, amount1


def swap_with_fees(pool: V3Pool, zero_for_one: bool, amount_in: int, tick_lower: int, tick_upper: int,
                   exact_output: bool = False):
    """Exact-input swap of amount_in on `pool` (committed), V3Pool.swap_outcome with fee accounting inside
    [tick_lower, tick_upper) (the fees a position there earns: mulDiv(growth inside, its liquidity, 2**128), as
    Position.update). The amounts and the state after are those of V3Pool.swap (tests/kernels/test_jit.py). With
    `exact_output` the swap buys amount_in of the output token instead (the contract's negative amountSpecified).

    Returns (amount0, amount1, ticks crossed, fee growth inside [tick_lower, tick_upper) as X128, total fee).
    """
    if amount_in <= 0:
        raise V3Revert("AS", "amount_specified = 0")
    limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    o = pool.swap_outcome(zero_for_one, -amount_in if exact_output else amount_in, limit,
                          fee_range=(tick_lower, tick_upper))
    return o.amount0, o.amount1, o.ticks_crossed, o.growth_inside, o.fee_total


def jit_gross(zero_for_one: bool, minted: tuple, burned: tuple, fees: int, sqrt_price_x96: int) -> tuple:
    """A JIT position's result around one swap (zero_for_one: the victim's direction), raw units of the victim's
    input token (the fee token): (Δin, Δout, gross) with Δin = burned + fees − minted of the input token, Δout =
    burned − minted of the output token, gross = Δin + Δout valued at the price after the swap
    (floor(Δout · 2**192 / sqrtP²) or floor(Δout · sqrtP² / 2**192)): the only rounding."""
    if zero_for_one:
        d_in, d_out = burned[0] + fees - minted[0], burned[1] - minted[1]
        return d_in, d_out, d_in + d_out * 2**192 // (sqrt_price_x96 ** 2)
    d_in, d_out = burned[1] + fees - minted[1], burned[0] - minted[0]
    return d_in, d_out, d_in + d_out * sqrt_price_x96 ** 2 // 2**192
