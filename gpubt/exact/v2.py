"""Exact Uniswap V2 math in Python ints, rounding exactly as UniswapV2Library does (float versions: kernels/amm_v2.py)."""
from __future__ import annotations

import math

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


def _mobius(reserves_in, reserves_out, fees_ppm):
    """(K, M, N) of the real (unfloored) composition of the hops, x -> K·x / (M + N·x), in exact integers."""
    k, m, n = 1, 1, 0
    for r_in, r_out, fee in zip(reserves_in, reserves_out, fees_ppm):
        kept = FEE_DENOMINATOR - fee
        k, m, n = kept * r_out * k, r_in * FEE_DENOMINATOR * m, r_in * FEE_DENOMINATOR * n + kept * k
    return k, m, n


def optimal_input_search(x_float: float, reserves_in, reserves_out, fees_ppm, window: int = 128):
    """The exact integer profit maximum near the float optimum: (amount_in, profit, proven, evaluations).

    Levels. Let c be the coarsest intermediate hop (the one whose output's raw unit is worth most start-token units
    near x_float; with none worth more than one start unit, c is "the input itself"). For a level a of c's output,
    the least input reaching it, X(a), is exact by chaining the least-input inverse of getAmountOut backwards
    (each hop is monotone), and every input x with c-output a has profit <= P(X(a)): the later hops see the same a,
    and X(a) <= x. So max P = max over levels a of P(X(a)); one level costs c+1 backward and n forward hop
    evaluations. Levels are scanned outward from c's output at x_float, both ways.

    Bound. The real hops (no floors) compose to Möbius maps, so with A the real map of hops 1..c and F that of
    the rest, U(a) = F(a) − A⁻¹(a) is concave and P(X(a)) <= U(a) exactly (floors only lower outputs and raise
    least inputs). A direction stops, *proven*, at the first level a where floor(U(a)) <= best and U no longer
    rises: no level beyond can beat the best found. Otherwise it stops after `window` levels in a row without
    improvement (unproven; `proven` is False).

    Guarantee. When `proven` is True the profit is the exact integer maximum over all inputs that buy at least
    one raw unit at hop c (every profitable input does). The noise that can hide a better level is the other
    hops' rounding: with every other hop finer than the start token it is < ~2 start units, and the proof
    typically comes within a few levels (measured: tests/exact/test_v2.py and the peer benchmark in bench/). It stays
    unproven, a best effort within `window` non-improving levels, when a second hop is also coarse (stable → stable:
    its rounding, up to one of its units, can favour a level far away) or, for the input-itself scan of an
    all-fine route, when the maximum sits a start unit above the one found on a plateau ~1e10 inputs wide.
    """
    n_hops = len(reserves_in)
    x0 = max(1, int(x_float))
    # forward pass at x0: each hop's output, hence each intermediate token's start-unit value per raw unit
    c, coarse_value, amount, a0 = -1, 1.0, x0, x0
    for h in range(n_hops - 1):
        r_in, r_out, kept = reserves_in[h], reserves_out[h], FEE_DENOMINATOR - fees_ppm[h]
        amount = amount * kept * r_out // (r_in * FEE_DENOMINATOR + amount * kept) if amount > 0 else 0
        value = x0 / amount if amount > 0 else math.inf
        if value > coarse_value:
            c, coarse_value, a0 = h, value, max(1, amount)
    pre = list(zip(reserves_in[:c + 1], reserves_out[:c + 1], fees_ppm[:c + 1]))[::-1]
    hops = list(zip(reserves_in, reserves_out, fees_ppm))
    kp, mp, np_ = _mobius(reserves_in[:c + 1], reserves_out[:c + 1], fees_ppm[:c + 1])
    kq, mq, nq = _mobius(reserves_in[c + 1:], reserves_out[c + 1:], fees_ppm[c + 1:])
    evaluations = 0

    def level(a):
        """(X(a), P(X(a))), or None when level a is out of reach."""
        nonlocal evaluations
        evaluations += 1
        x = a
        for r_in, r_out, fee in pre:  # least input whose output is >= x, hop by hop backwards
            if x >= r_out:
                return None
            x = -(-x * r_in * FEE_DENOMINATOR // ((FEE_DENOMINATOR - fee) * (r_out - x)))
        out = x
        for r_in, r_out, fee in hops:
            kept = FEE_DENOMINATOR - fee
            out = out * kept * r_out // (r_in * FEE_DENOMINATOR + out * kept)
            if out == 0:
                break
        return x, out - x

    def bound(a):
        """U(a) as (numerator, denominator > 0), or None beyond the reach of hops 1..c."""
        room = kp - np_ * a
        if a < 1 or room <= 0:
            return None
        post_den = mq + nq * a
        return kq * a * room - mp * a * post_den, post_den * room

    def below(u, v):  # U value u < v (both (num, den > 0)); None is -inf
        return v is not None and (u is None or u[0] * v[1] < v[0] * u[1])

    # the integer level where U peaks: the real root of U' = 0 (√(Kq·Mq)·(Kp − Np·a) = √(Mp·Kp)·(Mq + Nq·a)),
    # in integer square roots, then walked to an integer local maximum, which is U's maximum as U is concave
    sq, sp = math.isqrt(kq * mq), math.isqrt(mp * kp)
    den = sq * np_ + sp * nq
    a_star = max(1, (sq * kp - sp * mq) // den) if den > 0 else a0
    u_star = bound(a_star)
    for step in (1, -1):
        while True:
            u = bound(a_star + step)
            if not below(u_star, u):
                break
            a_star, u_star = a_star + step, u
    if u_star is None:  # degenerate (nothing reachable): the input at x_float
        return x0, path_profit(x0, reserves_in, reserves_out, fees_ppm), False, evaluations

    def bounded_by(u, best):  # floor(U) <= best: no level with this bound can beat `best`
        return u is None or u[0] < (best + 1) * u[1]

    found = level(a_star)
    if found is None:
        return x0, path_profit(x0, reserves_in, reserves_out, fees_ppm), False, evaluations
    best_x, best_p = found
    proven = True
    for step in (1, -1):
        a, streak = a_star, 0
        while not bounded_by(u_star, best_p):  # else: every level is bounded by U's maximum, proven
            a += step
            u = bound(a)
            if bounded_by(u, best_p):
                break  # U only falls from here on: proven for this direction
            found = level(a)
            if found is None:
                break
            x, p = found
            if p > best_p:
                best_x, best_p, streak = x, p, 0
            else:
                if p == best_p and x < best_x:
                    best_x = x
                streak += 1
                if streak >= window:
                    proven = False
                    break
    return best_x, best_p, proven, evaluations


def refine_optimal_input(x_float: float, reserves_in, reserves_out, fees_ppm, window: int = 128) -> tuple[int, int]:
    """Integer input maximizing the exact cycle profit near the float optimum `x_float`: (amount_in, profit).

    The exact profit is constant on the steps of the coarsest hop's output, so near the float optimum it is a
    plateau as wide as one unit of the coarsest token (~3e8 wei for a 6-decimal stable in a WETH cycle) and the
    maximum sits at the left end of a step. This scans those steps (levels), not the input, and stops when an exact
    concave upper bound shows nothing further can beat the best found: see `optimal_input_search` for the method
    and the guarantee (exact when proven; a best effort within `window` non-improving levels otherwise).
    The profit is exact for the returned input; when nothing near x_float is profitable it is the least loss found.
    """
    amount_in, profit, _, _ = optimal_input_search(x_float, reserves_in, reserves_out, fees_ppm, window)
    return amount_in, profit
