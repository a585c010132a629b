"""The sandwich's exact pricing as a device function: gpubt.strategies.sandwich.price_sandwich (the oracle) over u256
limbs, one source for numba-CPU and numba-CUDA. A scenario is a pool's exact state (V2 reserves, or a V3 price,
liquidity and tick with its initialized-tick table), the direction, its victims in order (exact input: amountIn and
amountOutMin; exact output: amountInMax and amountOut) and the float screen's hints; the result is the oracle's:
the largest front-run after which the first victim still executes (and the one after which all do), the bundle
[front-run, victims, back-run] at the best of the candidates, each victim's amounts or its revert.

The bracket search (exact_max_frontrun: regula falsi on the victims' exact slack, Illinois-style, bisection where
the slack says nothing) interpolates in float64: the device's float of a slack may differ from Python's in the last
bits, so the two may visit different front-runs, never reach different answers: the constraint is monotone in the
front-run, and both close the bracket to the same integer boundary.

What the device does not decide it hands back (SANDWICH_FALLBACK; the host runs the oracle): a hint that is not a
finite non-negative float, an amount or a state that leaves u256 (a V2 reserve or amount overflowing).
"""
import numpy as np
from numba import prange  # noqa: F401  (the CPU driver's loop)

from . import exact_uniswap as _exact
from .exact_search import float_to_u256, s256_lt  # noqa: F401  (rebound per target by kernels/compile.py)
from .exact_uniswap import (  # noqa: F401
    EXACT_OK, EXACT_OVERFLOW, MAX_SQRT_RATIO_MINUS_1, MIN_SQRT_RATIO_PLUS_1, v2_get_amount_in, v2_get_amount_out,
    v3_swap,
)
from .u256 import (  # noqa: F401
    ONE, TWO64F, Z, u256_add, u256_eq, u256_is_zero, u256_lt, u256_neg, u256_shr, u256_sub, u256_to_float,
)

SANDWICH_OK = 0
SANDWICH_NONE = 1          # no exact front-run works (the oracle's None)
SANDWICH_FALLBACK = 2      # the device does not decide: the host runs the oracle

SWAP_OK = 0
SWAP_REVERT = 1            # the swap cannot go through
SWAP_FALLBACK = 2
SIGN = np.uint64(1 << 63)
TWO256F = TWO64F * TWO64F * TWO64F * TWO64F


def is_negative(s):
    """An int256 (two's complement) < 0."""
    return (s[3] & SIGN) != Z


def signed_to_float(s):
    """float(s) of an int256 (within a few ulp of Python's correctly rounded float)."""
    if is_negative(s):
        return -u256_to_float(u256_neg(s))
    return u256_to_float(s)


def pool_swap(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, amount, exact_in):
    """One swap on a pool's exact state (V2: a, b the reserves; V3: the price and liquidity), no price limit:
    (paid, received, a, b and tick after, ticks crossed, SWAP_*)."""
    zero = (Z, Z, Z, Z)
    if is_v3:
        paid, received, price, tick_after, liquidity, crossed, status = v3_swap(
            a, b, tick, spacing, fee, amount, exact_in, zfo,
            (MIN_SQRT_RATIO_PLUS_1, Z, Z, Z) if zfo else MAX_SQRT_RATIO_MINUS_1, ticks, nets, lo, hi, True)
        if status != EXACT_OK:
            return zero, zero, a, b, tick, 0, SWAP_REVERT
        return paid, received, price, liquidity, tick_after, crossed, SWAP_OK
    r_in, r_out = (a, b) if zfo else (b, a)
    if exact_in:
        paid = amount
        received, status = v2_get_amount_out(amount, r_in, r_out, fee)
    else:
        received = amount
        paid, status = v2_get_amount_in(amount, r_in, r_out, fee)
    if status != EXACT_OK:
        return zero, zero, a, b, tick, 0, SWAP_FALLBACK if status == EXACT_OVERFLOW else SWAP_REVERT
    new_in, carry = u256_add(r_in, paid)
    if carry != Z:
        return zero, zero, a, b, tick, 0, SWAP_FALLBACK
    new_out, _ = u256_sub(r_out, received)   # received < r_out: getAmountOut / getAmountIn ensure it
    if zfo:
        return paid, received, new_in, new_out, tick, 0, SWAP_OK
    return paid, received, new_out, new_in, tick, 0, SWAP_OK


def pool_in(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, amount):
    """ExactPool.swap: an exact-input swap of all of `amount` (nothing when 0): (out, a, b, tick after, crossed,
    SWAP_*); a V3 swap the price limit stops short reverts."""
    if u256_is_zero(amount):
        return (Z, Z, Z, Z), a, b, tick, 0, SWAP_OK
    paid, out, a2, b2, t2, crossed, status = pool_swap(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo,
                                                       amount, True)
    if status != SWAP_OK:
        return (Z, Z, Z, Z), a, b, tick, 0, status
    if not u256_eq(paid, amount):
        return (Z, Z, Z, Z), a, b, tick, 0, SWAP_REVERT
    return out, a2, b2, t2, crossed, SWAP_OK


def victim_swap(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, amount, limit, exact_output):
    """ExactPool.victim: (slack (int256), slack known, paid, received, a, b, tick after, SWAP_OK or
    SWAP_FALLBACK). slack = received − amountOutMin, or amountInMax − paid for an exact-output victim; unknown when
    the swap cannot go through; the swap happens only when slack ≥ 0 (else it reverts, the state stays)."""
    zero = (Z, Z, Z, Z)
    if exact_output:
        if u256_is_zero(limit):   # nothing to buy: no swap
            return amount, True, zero, zero, a, b, tick, SWAP_OK
        paid, received, a2, b2, t2, _, status = pool_swap(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets,
                                                          zfo, limit, False)
        if status == SWAP_FALLBACK:
            return zero, False, zero, zero, a, b, tick, SWAP_FALLBACK
        if status != SWAP_OK or u256_lt(received, limit):
            return zero, False, zero, zero, a, b, tick, SWAP_OK
        slack, _ = u256_sub(amount, paid)
    else:
        if u256_is_zero(amount):  # no input, no swap
            return u256_neg(limit), True, zero, zero, a, b, tick, SWAP_OK
        paid, received, a2, b2, t2, _, status = pool_swap(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets,
                                                          zfo, amount, True)
        if status == SWAP_FALLBACK:
            return zero, False, zero, zero, a, b, tick, SWAP_FALLBACK
        if status != SWAP_OK or not u256_eq(paid, amount):
            return zero, False, zero, zero, a, b, tick, SWAP_OK
        slack, _ = u256_sub(received, limit)
    if is_negative(slack):
        return slack, True, zero, zero, a, b, tick, SWAP_OK
    return slack, True, paid, received, a2, b2, t2, SWAP_OK


def sandwich_bundle(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, front_in, v_amount, v_limit,
                    v_exact_output, v0, n_victims, back_run, record, out_paid, out_received, out_reverted):
    """exact_bundle: [front-run, victims v0 .. v0 + n_victims − 1, back-run if `back_run`] on the state: (went
    through, slack known, slack (min over victims), feasible (the first victim executes), front-run out, back-run
    out, ticks crossed, status SWAP_OK or SWAP_FALLBACK); with `record`, each victim's paid, received and reverted
    into the out_* rows v0 + k."""
    zero = (Z, Z, Z, Z)
    bought, a, b, tick, crossed, status = pool_in(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo,
                                                  front_in)
    if status != SWAP_OK:
        return False, False, zero, False, zero, zero, 0, SWAP_FALLBACK if status == SWAP_FALLBACK else SWAP_OK
    known, least, feasible = True, zero, False
    for k in range(n_victims):
        v = v0 + k
        slack, has, paid, received, a, b, tick, status = victim_swap(
            is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo,
            (v_amount[v, 0], v_amount[v, 1], v_amount[v, 2], v_amount[v, 3]),
            (v_limit[v, 0], v_limit[v, 1], v_limit[v, 2], v_limit[v, 3]), v_exact_output[v])
        if status != SWAP_OK:
            return False, False, zero, False, zero, zero, 0, SWAP_FALLBACK
        executed = has and not is_negative(slack)
        if k == 0:
            feasible = executed
        if record:
            for j in range(4):
                out_paid[v, j] = paid[j]
                out_received[v, j] = received[j]
            out_reverted[v] = not executed
        if known:
            if not has:
                known = False
            elif k == 0 or s256_lt(slack, least):
                least = slack
    back = zero
    if back_run and not u256_is_zero(bought):
        back, a, b, tick, c, status = pool_in(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, not zfo, bought)
        if status != SWAP_OK:
            return False, False, zero, False, zero, zero, 0, SWAP_FALLBACK if status == SWAP_FALLBACK else SWAP_OK
        crossed += c
    return True, known, least, feasible, bought, back, crossed, SWAP_OK


def frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, front_in, v_amount, v_limit,
                   v_exact_output, v0, n_victims):
    """exact_max_frontrun's slack(front_in): (every victim executes, slack known, slack, status)."""
    went, known, least, _, _, _, _, status = sandwich_bundle(
        is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, front_in, v_amount, v_limit, v_exact_output, v0,
        n_victims, False, False, v_amount, v_amount, v_exact_output)
    known = went and known
    return known and not is_negative(least), known, least, status


def floor_amount(x, cap):
    """(min(cap, int(x)) of a float x ≥ 0 (int truncates: floor), whether x is a finite non-negative float)."""
    if not (x >= 0.0) or x == np.inf:
        return cap, False
    if x >= TWO256F:
        return cap, True
    v = float_to_u256(x)
    if u256_lt(cap, v):
        return cap, True
    return v, True


def max_frontrun(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, v_amount, v_limit, v_exact_output, v0,
                 n_victims, hint, cap):
    """exact_max_frontrun: (the largest front-run ≤ cap after which every victim executes, found (False: even 0
    fails, the oracle's −1), status SWAP_OK or SWAP_FALLBACK)."""
    zero = (Z, Z, Z, Z)
    one = (ONE, Z, Z, Z)
    ok0, _, _, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, zero, v_amount,
                                       v_limit, v_exact_output, v0, n_victims)
    if status != SWAP_OK or not ok0:
        return zero, False, status
    left, finite = floor_amount(hint * (1 - 1e-6), cap)
    right, _ = floor_amount(hint * (1 + 1e-6), cap)
    if not finite:
        return zero, False, SWAP_FALLBACK
    ok_lo, _, s_lo, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, left,
                                            v_amount, v_limit, v_exact_output, v0, n_victims)
    if status != SWAP_OK:
        return zero, False, status
    if not ok_lo:
        left = zero
        _, _, s_lo, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, left,
                                            v_amount, v_limit, v_exact_output, v0, n_victims)
    right, carry = u256_add(right, (np.uint64(2), Z, Z, Z))   # int(hint · (1 + 1e-6)) + 2, at most cap
    if carry != Z or u256_lt(cap, right):
        right = cap
    ok_hi, known_hi, s_hi, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, right,
                                                   v_amount, v_limit, v_exact_output, v0, n_victims)
    if status != SWAP_OK:
        return zero, False, status
    while u256_lt(right, cap) and ok_hi:   # the float hint was low: widen
        left, s_lo = right, s_hi
        doubled, carry = u256_add(right, right)
        doubled, carry2 = u256_add(doubled, one)
        right = cap if carry != Z or carry2 != Z or u256_lt(cap, doubled) else doubled
        ok_hi, known_hi, s_hi, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo,
                                                       right, v_amount, v_limit, v_exact_output, v0, n_victims)
        if status != SWAP_OK:
            return zero, False, status
    if ok_hi:
        return right, True, SWAP_OK
    # invariant: ok at left, not at right; w_* the (Illinois-scaled) slacks there (w_hi only when known)
    w_lo = signed_to_float(s_lo)
    w_hi = signed_to_float(s_hi) if known_hi else 0.0
    side = 0
    width, _ = u256_sub(right, left)
    back1, back2, back3 = zero, zero, zero   # the widths 1, 2 and 3 steps before this one (the oracle's widths[-4])
    n_widths = 1
    while u256_lt(one, width):
        doubled, carry = u256_add(width, width)
        if known_hi and w_lo > 0.0 and (n_widths < 4 or (carry == Z and not u256_lt(back3, doubled))):
            step, _ = floor_amount(u256_to_float(width) * (w_lo / (w_lo - w_hi)), width)
            mid, _ = u256_add(left, step)
            bound, _ = u256_add(left, one)
            if u256_lt(mid, bound):
                mid = bound
            bound, _ = u256_sub(right, one)
            if u256_lt(bound, mid):
                mid = bound
        else:   # no slack to interpolate, or 3 steps did not halve the bracket: bisect
            mid, _ = u256_add(left, u256_shr(width, ONE))
        ok_mid, known_mid, s_mid, status = frontrun_slack(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo,
                                                          mid, v_amount, v_limit, v_exact_output, v0, n_victims)
        if status != SWAP_OK:
            return zero, False, status
        if ok_mid:
            left, w_lo = mid, signed_to_float(s_mid)
            if side == 1 and known_hi:
                w_hi /= 2   # Illinois: the same end moved twice in a row, pull the other end's weight in
            side = 1
        else:
            right, known_hi = mid, known_mid
            w_hi = signed_to_float(s_mid) if known_mid else 0.0
            if side == -1:
                w_lo /= 2
            side = -1
        back3, back2, back1 = back2, back1, width
        width, _ = u256_sub(right, left)
        n_widths += 1
    return left, True, SWAP_OK


def sandwich_price(i, s_v3, s_fee, s_a, s_b, s_tick, s_spacing, s_lo, s_hi, ticks, nets, s_zfo, s_v0, s_nv, s_x,
                   s_a_max, s_capital, v_amount, v_limit, v_exact_output, out_front, out_front_max, out_front_out,
                   out_back_out, out_crossed, out_paid, out_received, out_reverted, out_status):
    """price_sandwich of scenario i into row i of the outputs (its victims' into rows s_v0[i] ..): the front-run
    bound by the first victim (hint: the screen's bound, at most the capital), the one all victims allow, the
    bundle at the best of the candidates (the screen's front-run, those two)."""
    zero = (Z, Z, Z, Z)
    is_v3, fee, tick, spacing, lo, hi, zfo = s_v3[i], s_fee[i], s_tick[i], s_spacing[i], s_lo[i], s_hi[i], s_zfo[i]
    a = (s_a[i, 0], s_a[i, 1], s_a[i, 2], s_a[i, 3])
    b = (s_b[i, 0], s_b[i, 1], s_b[i, 2], s_b[i, 3])
    v0, nv, x, a_max_f, capital = s_v0[i], s_nv[i], s_x[i], s_a_max[i], s_capital[i]
    out_status[i] = SANDWICH_FALLBACK
    all_ones = (~Z, ~Z, ~Z, ~Z)
    cap, finite = floor_amount(capital, all_ones)
    if not finite or not (x >= 0.0) or nv < 1:
        return
    hint = capital if capital < a_max_f else a_max_f   # Python's min(a_max_f, capital)
    a_max, found, status = max_frontrun(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, v_amount,
                                        v_limit, v_exact_output, v0, 1, hint, cap)
    if status != SWAP_OK:
        return
    if not found or u256_is_zero(a_max):
        out_status[i] = SANDWICH_NONE
        return
    c1, finite = floor_amount(x, a_max)                # min(max(1, int(x)), a_max)
    if not finite:
        return
    if u256_is_zero(c1):
        c1 = (ONE, Z, Z, Z)
    c3, has3 = zero, False
    if nv > 1:
        hint = x if x < a_max_f else a_max_f           # min(x, a_max_f, capital)
        hint = capital if capital < hint else hint
        c3, has3, status = max_frontrun(is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, v_amount,
                                        v_limit, v_exact_output, v0, nv, hint, a_max)
        if status != SWAP_OK:
            return
        has3 = has3 and not u256_is_zero(c3)
    x0, x1, x2 = c1, a_max, c3 if has3 else a_max     # the candidates in increasing order, each once
    if u256_lt(x1, x0):
        x0, x1 = x1, x0
    if u256_lt(x2, x1):
        x1, x2 = x2, x1
    if u256_lt(x1, x0):
        x0, x1 = x1, x0
    best, best_gross, found = zero, zero, False
    for k in range(3):
        c = x0 if k == 0 else (x1 if k == 1 else x2)
        if (k == 1 and u256_eq(x1, x0)) or (k == 2 and u256_eq(x2, x1)):
            continue
        went, _, _, feasible, _, back, _, status = sandwich_bundle(
            is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, c, v_amount, v_limit, v_exact_output, v0, nv,
            True, False, v_amount, v_amount, v_exact_output)
        if status != SWAP_OK:
            return
        if not went or not feasible:
            continue
        gross, _ = u256_sub(back, c)
        if not found or s256_lt(best_gross, gross):
            best, best_gross, found = c, gross, True
    if not found:
        out_status[i] = SANDWICH_NONE
        return
    _, _, _, _, bought, back, crossed, _ = sandwich_bundle(
        is_v3, fee, a, b, tick, spacing, lo, hi, ticks, nets, zfo, best, v_amount, v_limit, v_exact_output, v0, nv,
        True, True, out_paid, out_received, out_reverted)
    for j in range(4):
        out_front[i, j] = best[j]
        out_front_max[i, j] = a_max[j]
        out_front_out[i, j] = bought[j]
        out_back_out[i, j] = back[j]
    out_crossed[i] = crossed
    out_status[i] = SANDWICH_OK


def sandwich_prices_cpu(s_v3, s_fee, s_a, s_b, s_tick, s_spacing, s_lo, s_hi, ticks, nets, s_zfo, s_v0, s_nv, s_x,
                        s_a_max, s_capital, v_amount, v_limit, v_exact_output, out_front, out_front_max,
                        out_front_out, out_back_out, out_crossed, out_paid, out_received, out_reverted, out_status):
    """sandwich_price of every scenario."""
    for i in prange(s_v3.shape[0]):
        sandwich_price(i, s_v3, s_fee, s_a, s_b, s_tick, s_spacing, s_lo, s_hi, ticks, nets, s_zfo, s_v0, s_nv, s_x,
                       s_a_max, s_capital, v_amount, v_limit, v_exact_output, out_front, out_front_max, out_front_out,
                       out_back_out, out_crossed, out_paid, out_received, out_reverted, out_status)


def sandwich_prices_cuda(s_v3, s_fee, s_a, s_b, s_tick, s_spacing, s_lo, s_hi, ticks, nets, s_zfo, s_v0, s_nv, s_x,
                         s_a_max, s_capital, v_amount, v_limit, v_exact_output, out_front, out_front_max,
                         out_front_out, out_back_out, out_crossed, out_paid, out_received, out_reverted, out_status):
    """sandwich_prices_cpu, one thread per scenario."""
    i = cuda.grid(1)  # noqa: F821
    if i < s_v3.shape[0]:
        sandwich_price(i, s_v3, s_fee, s_a, s_b, s_tick, s_spacing, s_lo, s_hi, ticks, nets, s_zfo, s_v0, s_nv, s_x,
                       s_a_max, s_capital, v_amount, v_limit, v_exact_output, out_front, out_front_max, out_front_out,
                       out_back_out, out_crossed, out_paid, out_received, out_reverted, out_status)


# Dependency order for kernels/compile.build, after the search's and exact functions they call.
SANDWICH_FUNCTIONS = (is_negative, signed_to_float, pool_swap, pool_in, victim_swap, sandwich_bundle,
                      frontrun_slack, floor_amount, max_frontrun)

# The kernel's declaration (gpubt.kernels.REGISTRY).
DEVICE_FUNCTIONS = _exact.DEVICE_FUNCTIONS + (s256_lt, float_to_u256) + SANDWICH_FUNCTIONS + (sandwich_price,)
DRIVERS = ((sandwich_prices_cpu, sandwich_prices_cuda),)
INLINE = False
