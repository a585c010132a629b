"""Exact Uniswap V2 math in Python ints, rounding exactly as UniswapV2Library does (float versions: kernels/amm_v2.py)."""
from __future__ import annotations

FEE_DENOMINATOR = 1_000_000  # fees are in millionths (fee_ppm): 3000 is V2's 0.30 %, i.e. the 997/1000 factor


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_ppm: int = 3000) -> int:
    """UniswapV2Library.getAmountOut; for fee_ppm=3000 this is exactly the 997/1000 formula."""
    if amount_in <= 0:
        raise ValueError("INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("INSUFFICIENT_LIQUIDITY")
    amount_in_with_fee = amount_in * (FEE_DENOMINATOR - fee_ppm)
    return amount_in_with_fee * reserve_out // (reserve_in * FEE_DENOMINATOR + amount_in_with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_ppm: int = 3000) -> int:
    """UniswapV2Library.getAmountIn: the least input that yields `amount_out`."""
    if amount_out <= 0:
        raise ValueError("INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= amount_out:
        raise ValueError("INSUFFICIENT_LIQUIDITY")
    numerator = reserve_in * amount_out * FEE_DENOMINATOR
    denominator = (reserve_out - amount_out) * (FEE_DENOMINATOR - fee_ppm)
    return numerator // denominator + 1


def path_amount_out(amount_in: int, reserves_in, reserves_out, fees_ppm) -> int:
    """Chain getAmountOut over the hops of a path; each hop's input is the previous hop's exact output."""
    amount = amount_in
    for r_in, r_out, fee in zip(reserves_in, reserves_out, fees_ppm):
        if amount <= 0:
            return 0
        amount = get_amount_out(amount, r_in, r_out, fee)
    return amount


def path_profit(amount_in: int, reserves_in, reserves_out, fees_ppm) -> int:
    """Exact gross profit of a cycle, in raw units of the start token (negative for a loss)."""
    if amount_in <= 0:
        return 0
    return path_amount_out(amount_in, reserves_in, reserves_out, fees_ppm) - amount_in


def refine_optimal_input(x_float: float, reserves_in, reserves_out, fees_ppm, window: int = 16) -> tuple[int, int]:
    """Integer input maximizing the exact cycle profit near the float optimum `x_float`, by hill climbing.

    The exact profit is the concave real profit minus each hop's floor rounding (< 1 raw unit per hop), so
    near its peak it is a plateau whose values differ from the maximum by at most that rounding; x_float lies on
    it (tests/kernels/test_amm_v2.py checks this against brute force), so unit steps from int(x_float) while the
    profit improves (at most `window` of them) reach the plateau's local top.
    Returns (amount_in, profit); when no input near x_float is profitable, (max(1, int(x_float)), its loss).
    """
    def profit(x: int) -> int:
        return path_profit(x, reserves_in, reserves_out, fees_ppm)

    best_x = max(1, int(x_float))
    best_p = profit(best_x)
    for step in (1, -1):
        x = best_x + step
        moved = 0
        while x >= 1 and moved < window:
            p = profit(x)
            if p <= best_p:
                break
            best_x, best_p = x, p
            x += step
            moved += 1
    return best_x, best_p
