"""The exact V2 cycle search as a device function: gpubt.exact.v2.optimal_input_search (the oracle) over u256 limbs
(kernels/u256.py) and wide rows (kernels/wide.py), one source for numba-CPU and numba-CUDA. Same levels, same
bound, same scan, same stopping rule, same tie-breaking, so the same (amount_in, profit, proven, evaluations).

Two things differ in how they are computed, never in what they decide:
- The bound's comparisons are polynomials in the level a with exact wide coefficients. With room(a) = Kp − Np·a
  and post(a) = Mq + Nq·a (the Möbius maps of the oracle's docstring), U(a+1) > U(a) ⇔
  Kq·Mq·room(a)·room(a+1) − Mp·Kp·post(a)·post(a+1) > 0, a quadratic e2·a² + e1·a + e0; and floor(U(a)) ≤ best ⇔
  a·(Kq·room − Mp·post) < (best+1)·post·room, again a quadratic c2·a² + c1·a + c0 (its coefficients recomputed
  when best changes). Both follow from F(x) − F(y) = K·M·(x − y)/((M + N·x)(M + N·y)) for a Möbius F.
- The peak of U (the oracle: integer square roots, then a walk to the integer local maximum) is the least a ≥ 1
  with U(a+1) ≤ U(a), found by galloping then bisecting from the float optimum's level: U is concave, so that
  condition is monotone in a, and it is the oracle's walk's end whatever its start, unless U(a+1) = U(a) there
  (a tie the walk resolves by where it starts) or the peak sits at the edge of reach.

What the device does not decide it hands back (SEARCH_FALLBACK; the host re-runs the oracle): those two cases,
a coarsest-hop choice whose float values (the oracle divides exact ints) are within 1e-12 of each other, an
amount or coefficient that does not fit (u256 amounts, rows of the scratch array), fees outside [0, 10⁶),
zero reserves.
"""
import numpy as np
from numba import prange  # noqa: F401  (the CPU driver's loop)

from . import exact_uniswap as _exact
from .exact_uniswap import (  # noqa: F401
    EXACT_OK, FEE_DENOMINATOR, FEE_DENOMINATOR_U64, v2_get_amount_in, v2_get_amount_out, v3_quote,
)
from .u256 import (  # noqa: F401  (rebound per target by kernels/compile.py)
    ONE, TWO64F, U256_OK, Z, mul_div_rounding_up, u256_add, u256_eq, u256_is_zero, u256_lt, u256_mul_small,
    u256_neg, u256_shr, u256_sub, u256_to_float,
)
from .wide import (  # noqa: F401
    WIDE_FUNCTIONS, WIDE_OK, wide_add, wide_cmp, wide_is_zero, wide_len, wide_mul, wide_mul_small, wide_set_u256,
    wide_signed_add, wide_sub, wide_zero,
)

SEARCH_OK = 0
SEARCH_FALLBACK = 1
SIGN64 = np.uint64(1 << 63)
COARSE_TIE = 1e-12                 # coarsest-hop values closer than this (relative) go back to the host

# rows of the per-item scratch array (wide.py): the Möbius coefficients, the two quadratics, temporaries
R_KP, R_MP, R_NP, R_KQ, R_MQ, R_NQ = 0, 1, 2, 3, 4, 5
R_E2, R_E1, R_E0 = 6, 7, 8
R_A1, R_A2, R_B0, R_B1, R_B2 = 9, 10, 11, 12, 13
R_C2, R_C1, R_C0 = 14, 15, 16
R_T0, R_T1, R_T2, R_T3, R_T4, R_LEVEL = 17, 18, 19, 20, 21, 22
R_Q, R_DQ, R_ROOM, R_C2X2 = 23, 24, 25, 26   # the scan's running bound quadratic, its next step, room(a), 2·c2
SEARCH_ROWS = 27


def s256_lt(a, b):
    """a < b for int256s in two's complement."""
    return u256_lt((a[0], a[1], a[2], a[3] ^ SIGN64), (b[0], b[1], b[2], b[3] ^ SIGN64))


def float_to_u256(x):
    """floor(x) for a float64 0 ≤ x < 2²⁵⁶, exactly (each limb is a power-of-two slice of x's mantissa)."""
    p128 = TWO64F * TWO64F
    p192 = p128 * TWO64F
    x3 = np.uint64(x / p192)           # a float → uint64 conversion truncates: floor for x ≥ 0
    x = x - float(x3) * p192           # exact: the bits of x below 2¹⁹²
    x2 = np.uint64(x / p128)
    x = x - float(x2) * p128
    x1 = np.uint64(x / TWO64F)
    x = x - float(x1) * TWO64F
    return (np.uint64(x), x1, x2, x3)


def hop(reserve, i, h):
    """Hop h of path i of a (n_paths, max_hops, 4) limb array, as a u256."""
    return (reserve[i, h, 0], reserve[i, h, 1], reserve[i, h, 2], reserve[i, h, 3])


def forward(amount, r_in, r_out, fee):
    """amount·kept·r_out // (r_in·10⁶ + amount·kept) (0 for amount 0) and a status: the oracle's forward hop."""
    if u256_is_zero(amount):
        return amount, U256_OK
    return v2_get_amount_out(amount, r_in, r_out, fee)


def wide_mul3(w, d, a, b, c, tmp):
    """Row d = row a × row b × row c (tmp a fourth row): a status."""
    status = wide_mul(w, tmp, a, b)
    return status | wide_mul(w, d, tmp, c)


def mobius_rows(w, rk, rm, rn, reserve_in, reserve_out, fee_ppm, i, h_from, h_to):
    """Rows rk, rm, rn = (K, M, N) of hops h_from..h_to−1 of path i (gpubt.exact.v2._mobius): a status."""
    L = w.shape[1]
    status = WIDE_OK
    wide_zero(w, rk)
    wide_zero(w, rm)
    wide_zero(w, rn)
    w[rk, 0] = ONE
    w[rm, 0] = ONE
    for h in range(h_from, h_to):
        kept = np.uint64(FEE_DENOMINATOR - fee_ppm[i, h])
        wide_set_u256(w, R_T1, hop(reserve_in, i, h))
        status |= wide_mul(w, R_T0, rn, R_T1)                  # N' = r_in·10⁶·N + kept·K
        status |= wide_mul_small(w, R_T0, R_T0, FEE_DENOMINATOR_U64)
        status |= wide_mul_small(w, R_T2, rk, kept)
        status |= wide_add(w, rn, R_T0, R_T2, L)
        status |= wide_mul(w, R_T0, rm, R_T1)                  # M' = r_in·10⁶·M
        status |= wide_mul_small(w, rm, R_T0, FEE_DENOMINATOR_U64)
        wide_set_u256(w, R_T1, hop(reserve_out, i, h))
        status |= wide_mul(w, R_T0, rk, R_T1)                  # K' = kept·r_out·K
        status |= wide_mul_small(w, rk, R_T0, kept)
    return status


def quadratic_at(w, d, c2, c2_neg, c1, c1_neg, c0, c0_neg, a):
    """Row d = (c2·a + c1)·a + c0 for the level a (a u256; signs as bools): (d's sign, status). Uses R_LEVEL and
    R_T4."""
    L = w.shape[1]
    wide_set_u256(w, R_LEVEL, a)
    status = wide_mul(w, R_T4, c2, R_LEVEL)
    neg, s = wide_signed_add(w, d, R_T4, c2_neg and not wide_is_zero(w, R_T4, L), c1, c1_neg, L)
    status |= s | wide_mul(w, R_T4, d, R_LEVEL)
    neg, s = wide_signed_add(w, d, R_T4, neg and not wide_is_zero(w, R_T4, L), c0, c0_neg, L)
    return neg, status | s


def wide_ratio(w, num, den):
    """row num / row den as a float64 (each from its top three limbs), 0.0 when den is zero."""
    L = w.shape[1]
    ln = wide_len(w, num, L)
    ld = wide_len(w, den, L)
    if ld == 0:
        return 0.0
    x = 0.0
    for i in range(ln - 1, max(ln - 3, 0) - 1, -1):   # most significant limb first
        x = x * 4294967296.0 + float(w[num, i])
    y = 0.0
    for i in range(ld - 1, max(ld - 3, 0) - 1, -1):
        y = y * 4294967296.0 + float(w[den, i])
    shift = max(ln - 3, 0) - max(ld - 3, 0)  # limbs dropped from num minus those dropped from den
    r = x / y
    while shift > 0:
        r *= 4294967296.0
        shift -= 1
    while shift < 0:
        r /= 4294967296.0
        shift += 1
    return r


def newton_step(w, a, e2_neg, e1_neg, e0_neg):
    """a − D(a)/D'(a) for the climb quadratic D = e2·a² + e1·a + e0 (exact rows, a float ratio), clamped to ≥ 1;
    a unchanged when the step is not finite or not below 2⁶³. Uses rows T0, T1, T3, T4 and LEVEL."""
    L = w.shape[1]
    d_neg, status = quadratic_at(w, R_T3, R_E2, e2_neg, R_E1, e1_neg, R_E0, e0_neg, a)
    wide_set_u256(w, R_LEVEL, a)
    status |= wide_mul(w, R_T0, R_E2, R_LEVEL) | wide_add(w, R_T0, R_T0, R_T0, L)     # 2·e2·a
    dp_neg, s = wide_signed_add(w, R_T1, R_T0, e2_neg and not wide_is_zero(w, R_T0, L), R_E1, e1_neg, L)
    if (status | s) != WIDE_OK or wide_is_zero(w, R_T1, L):
        return a
    step = wide_ratio(w, R_T3, R_T1)
    if not (step < 9.2e18):   # NaN, inf or too far: leave it to the gallop
        return a
    delta = np.uint64(step + 0.5)
    if delta == Z:
        return a
    if d_neg == dp_neg:       # D/D' > 0: move down
        if not u256_lt((delta, Z, Z, Z), a):
            return (ONE, Z, Z, Z)
        out, _ = u256_sub(a, (delta, Z, Z, Z))
        return out
    out, carry = u256_add(a, (delta, Z, Z, Z))
    return a if carry != Z else out


def reach(w, a):
    """Level a is within reach of hops 1..c: a ≥ 1 and Kp − Np·a > 0 (the oracle's bound(a) is not None)."""
    L = w.shape[1]
    if u256_is_zero(a):
        return False, WIDE_OK
    wide_set_u256(w, R_LEVEL, a)
    status = wide_mul(w, R_T3, R_NP, R_LEVEL)
    return wide_cmp(w, R_T3, R_KP, L) < 0, status


def climbs(w, a, e2_neg, e1_neg, e0_neg):
    """(U(a+1) > U(a), U(a+1) = U(a), status) for a reachable level a; False, False when a+1 is out of reach."""
    L = w.shape[1]
    a1, _ = u256_add(a, (ONE, Z, Z, Z))
    ok, status = reach(w, a1)
    if not ok:
        return False, False, status
    neg, s = quadratic_at(w, R_T3, R_E2, e2_neg, R_E1, e1_neg, R_E0, e0_neg, a)
    zero = wide_is_zero(w, R_T3, L)
    return not neg and not zero, zero, status | s


def bound_coefficients(w, best, a1_neg, b1_neg):
    """Rows C2, C1, C0 (and 2·c2) of floor(U(a)) ≤ best ⇔ c2·a² + c1·a + c0 < 0 for best an int256: c0 = −b·B0,
    c1 = A1 − b·B1, c2 = b·B2 − A2 with b = best + 1 (|b| in row T2): (c2_neg, c1_neg, c0_neg, status)."""
    L = w.shape[1]
    b, _ = u256_add(best, (ONE, Z, Z, Z))
    b_neg = (b[3] & SIGN64) != Z
    wide_set_u256(w, R_T2, u256_neg(b) if b_neg else b)
    status = wide_mul(w, R_C0, R_T2, R_B0)
    c0_neg = not b_neg and not wide_is_zero(w, R_C0, L)
    status |= wide_mul(w, R_T0, R_T2, R_B1)
    t_neg = b_neg != b1_neg
    c1_neg, s = wide_signed_add(w, R_C1, R_A1, a1_neg, R_T0, not t_neg and not wide_is_zero(w, R_T0, L), L)
    status |= s | wide_mul(w, R_T0, R_T2, R_B2)
    c2_neg, s = wide_signed_add(w, R_C2, R_T0, b_neg and not wide_is_zero(w, R_T0, L), R_A2,
                                not wide_is_zero(w, R_A2, L), L)
    status |= s | wide_add(w, R_C2X2, R_C2, R_C2, L)
    return c2_neg, c1_neg, c0_neg, status


def bounded(w, a, c2_neg, c1_neg, c0_neg):
    """floor(U(a)) ≤ best (or a out of reach): no level beyond a can beat best. (bool, status)"""
    ok, status = reach(w, a)
    if not ok:
        return True, status
    neg, s = quadratic_at(w, R_T3, R_C2, c2_neg, R_C1, c1_neg, R_C0, c0_neg, a)
    return neg, status | s


def scan_state(w, a, forward_step, c2_neg, c1_neg, c0_neg):
    """Rows Q = Q(a), DQ = Q(a ± 1) − Q(a) (± as forward_step) and ROOM = Kp − Np·a for the scan's walk from a:
    (q_neg, dq_neg, room_neg, n, status), n the limbs the walk's additions need look at (the longest row it adds,
    plus one: a carry beyond is WIDE_OVERFLOW). Each step then costs two or three additions (`scan_step`)."""
    L = w.shape[1]
    q_neg, status = quadratic_at(w, R_Q, R_C2, c2_neg, R_C1, c1_neg, R_C0, c0_neg, a)
    if forward_step:
        nxt, _ = u256_add(a, (ONE, Z, Z, Z))
    else:
        nxt, _ = u256_sub(a, (ONE, Z, Z, Z))
    next_neg, s = quadratic_at(w, R_T3, R_C2, c2_neg, R_C1, c1_neg, R_C0, c0_neg, nxt)
    dq_neg, s2 = wide_signed_add(w, R_DQ, R_T3, next_neg, R_Q, not q_neg and not wide_is_zero(w, R_Q, L), L)
    wide_set_u256(w, R_LEVEL, a)
    status |= s | s2 | wide_mul(w, R_T3, R_NP, R_LEVEL)
    room_neg, s = wide_signed_add(w, R_ROOM, R_KP, False, R_T3, not wide_is_zero(w, R_T3, L), L)
    n = max(wide_len(w, R_Q, L), wide_len(w, R_DQ, L), wide_len(w, R_C2X2, L), wide_len(w, R_ROOM, L),
            wide_len(w, R_NP, L)) + 1
    return q_neg, dq_neg, room_neg, min(n, L), status | s


def scan_step(w, forward_step, q_neg, dq_neg, room_neg, c2_neg, n):
    """Advance the scan's rows by one level: Q += DQ, DQ += 2·c2 (the second difference of a quadratic, whichever
    the direction), and forward ROOM −= Np (backward, room only grows: it stays > 0): (q_neg, dq_neg, room_neg,
    status)."""
    q_neg, status = wide_signed_add(w, R_Q, R_Q, q_neg, R_DQ, dq_neg, n)
    dq_neg, s = wide_signed_add(w, R_DQ, R_DQ, dq_neg, R_C2X2, c2_neg, n)
    status |= s
    if forward_step:
        room_neg, s = wide_signed_add(w, R_ROOM, R_ROOM, room_neg, R_NP, True, n)
        status |= s
    return q_neg, dq_neg, room_neg, status


def level(a, reserve_in, reserve_out, fee_ppm, i, c, n_hops):
    """The oracle's level(a): (X(a), P(X(a)) as an int256, reachable, status): the least input whose hop-c output
    is ≥ a (hop by hop backwards), then the cycle forward from it."""
    x = a
    for h in range(c, -1, -1):
        r_in = hop(reserve_in, i, h)
        r_out = hop(reserve_out, i, h)
        if not u256_lt(x, r_out):
            return x, x, False, U256_OK
        room, _ = u256_sub(r_out, x)
        den, over = u256_mul_small(room, np.uint64(FEE_DENOMINATOR - fee_ppm[i, h]))
        num, over2 = u256_mul_small(x, FEE_DENOMINATOR_U64)
        if over != Z or over2 != Z:
            return x, x, False, SEARCH_FALLBACK
        x, status = mul_div_rounding_up(num, r_in, den)
        if status != U256_OK:
            return x, x, False, SEARCH_FALLBACK
    out = x
    for h in range(n_hops):
        out, status = forward(out, hop(reserve_in, i, h), hop(reserve_out, i, h), fee_ppm[i, h])
        if status != U256_OK:
            return x, x, False, SEARCH_FALLBACK
        if u256_is_zero(out):
            break
    p, _ = u256_sub(out, x)
    return x, p, True, U256_OK


def profit_at(x0, reserve_in, reserve_out, fee_ppm, i, n_hops):
    """The oracle's path_profit(x0) (an int256) and a status."""
    out = x0
    for h in range(n_hops):
        if u256_is_zero(out):
            break
        out, status = forward(out, hop(reserve_in, i, h), hop(reserve_out, i, h), fee_ppm[i, h])
        if status != U256_OK:
            return out, SEARCH_FALLBACK
    p, _ = u256_sub(out, x0)
    return p, SEARCH_OK


def v2_optimal_input(x_float, reserve_in, reserve_out, fee_ppm, i, window, w):
    """gpubt.exact.v2.optimal_input_search for path i (fee_ppm −1 past its end) from its float optimum x_float, with
    the scratch rows w (SEARCH_ROWS × limbs): (amount_in, profit (int256), proven, evaluations, status)."""
    L = w.shape[1]
    zero = (Z, Z, Z, Z)
    n_hops = 0
    for h in range(fee_ppm.shape[1]):
        if fee_ppm[i, h] < 0:
            break
        if fee_ppm[i, h] >= FEE_DENOMINATOR:
            return zero, zero, False, 0, SEARCH_FALLBACK
        n_hops += 1
    if not (x_float == x_float) or x_float >= 1e60 or n_hops < 1:
        return zero, zero, False, 0, SEARCH_FALLBACK
    x0 = float_to_u256(x_float) if x_float >= 1.0 else (ONE, Z, Z, Z)
    # the coarsest intermediate hop c at x0 (−1: the input itself) and its output a0 there
    c = -1
    coarse = 1.0
    coarse_inf = False
    amount = x0
    a0 = x0
    fx0 = u256_to_float(x0)
    for h in range(n_hops - 1):
        amount, status = forward(amount, hop(reserve_in, i, h), hop(reserve_out, i, h), fee_ppm[i, h])
        if status != U256_OK:
            return zero, zero, False, 0, SEARCH_FALLBACK
        if u256_is_zero(amount):
            if not coarse_inf:
                c, coarse_inf, a0 = h, True, (ONE, Z, Z, Z)
            continue
        value = fx0 / u256_to_float(amount)
        if not coarse_inf and abs(value - coarse) <= COARSE_TIE * max(value, coarse):
            return zero, zero, False, 0, SEARCH_FALLBACK
        if not coarse_inf and value > coarse:
            c, coarse, a0 = h, value, amount
    status = mobius_rows(w, R_KP, R_MP, R_NP, reserve_in, reserve_out, fee_ppm, i, 0, c + 1)
    status |= mobius_rows(w, R_KQ, R_MQ, R_NQ, reserve_in, reserve_out, fee_ppm, i, c + 1, n_hops)
    if status != WIDE_OK:
        return zero, zero, False, 0, SEARCH_FALLBACK
    if wide_cmp(w, R_KP, R_NP, L) <= 0:  # Kp ≤ Np: not even level 1 is in reach (the oracle's u_star is None)
        p, status = profit_at(x0, reserve_in, reserve_out, fee_ppm, i, n_hops)
        return x0, p, False, 0, status
    # e2 = KqMq·Np² − MpKp·Nq², e1 = −KqMq·Np·(2Kp − Np) − MpKp·Nq·(2Mq + Nq),
    # e0 = KqMq·Kp·(Kp − Np) − MpKp·Mq·(Mq + Nq)
    status |= wide_mul(w, R_T3, R_KQ, R_MQ)                                   # T3 = KqMq
    status |= wide_mul(w, R_T4, R_MP, R_KP)                                   # T4 = MpKp
    status |= wide_mul3(w, R_E2, R_T3, R_NP, R_NP, R_T0)
    status |= wide_mul3(w, R_T1, R_T4, R_NQ, R_NQ, R_T0)
    e2_neg, s = wide_signed_add(w, R_E2, R_E2, False, R_T1, True, L)
    status |= s | wide_add(w, R_T2, R_KP, R_KP, L)
    wide_sub(w, R_T2, R_T2, R_NP, L)
    status |= wide_mul3(w, R_E1, R_T3, R_NP, R_T2, R_T0)
    status |= wide_add(w, R_T2, R_MQ, R_MQ, L) | wide_add(w, R_T2, R_T2, R_NQ, L)
    status |= wide_mul3(w, R_T1, R_T4, R_NQ, R_T2, R_T0)
    status |= wide_add(w, R_E1, R_E1, R_T1, L)
    e1_neg = not wide_is_zero(w, R_E1, L)
    wide_sub(w, R_T2, R_KP, R_NP, L)
    status |= wide_mul3(w, R_E0, R_T3, R_KP, R_T2, R_T0)
    status |= wide_add(w, R_T2, R_MQ, R_NQ, L)
    status |= wide_mul3(w, R_T1, R_T4, R_MQ, R_T2, R_T0)
    e0_neg, s = wide_signed_add(w, R_E0, R_E0, False, R_T1, True, L)
    status |= s
    # the bound: A1 = KqKp − MpMq, A2 = KqNp + MpNq, B0 = MqKp, B1 = NqKp − MqNp, B2 = NqNp
    status |= wide_mul(w, R_A1, R_KQ, R_KP) | wide_mul(w, R_T0, R_MP, R_MQ)
    a1_neg, s = wide_signed_add(w, R_A1, R_A1, False, R_T0, True, L)
    status |= s | wide_mul(w, R_A2, R_KQ, R_NP) | wide_mul(w, R_T0, R_MP, R_NQ) | wide_add(w, R_A2, R_A2, R_T0, L)
    status |= wide_mul(w, R_B0, R_MQ, R_KP)
    status |= wide_mul(w, R_B1, R_NQ, R_KP) | wide_mul(w, R_T0, R_MQ, R_NP)
    b1_neg, s = wide_signed_add(w, R_B1, R_B1, False, R_T0, True, L)
    status |= s | wide_mul(w, R_B2, R_NQ, R_NP)
    if status != WIDE_OK:
        return zero, zero, False, 0, SEARCH_FALLBACK

    # the peak: the least a ≥ 1 with U(a+1) ≤ U(a), galloping then bisecting from a0 after two Newton steps on
    # the climb quadratic (speed only: the gallop and bisection decide exactly from wherever they start)
    a = a0
    for _ in range(2):
        a = newton_step(w, a, e2_neg, e1_neg, e0_neg)
    ok, status = reach(w, a)
    if not ok:
        a = (ONE, Z, Z, Z)
    up, tie, s = climbs(w, a, e2_neg, e1_neg, e0_neg)
    status |= s
    step = (ONE, Z, Z, Z)
    if up:   # climb(lo) holds; find hi with not climb(hi)
        lo = a
        while True:
            probe, carry = u256_add(lo, step)
            if carry != Z:
                return zero, zero, False, 0, SEARCH_FALLBACK
            up, tie, s = climbs(w, probe, e2_neg, e1_neg, e0_neg)
            status |= s
            if not up:
                break
            lo = probe
            step, _ = u256_add(step, step)
        hi = probe
    else:    # not climb(hi); find lo < 1 (as 0) or with climb(lo)
        hi = a
        while True:
            if not u256_lt(step, hi):
                lo = zero
                break
            probe, _ = u256_sub(hi, step)
            up, tie, s = climbs(w, probe, e2_neg, e1_neg, e0_neg)
            status |= s
            if up:
                lo = probe
                break
            hi = probe
            step, _ = u256_add(step, step)
    while True:
        gap, _ = u256_sub(hi, lo)
        if u256_lt(gap, (np.uint64(2), Z, Z, Z)):
            break
        half = (gap[0] >> ONE | gap[1] << np.uint64(63), gap[1] >> ONE | gap[2] << np.uint64(63),
                gap[2] >> ONE | gap[3] << np.uint64(63), gap[3] >> ONE)
        mid, _ = u256_add(lo, half)
        up, tie, s = climbs(w, mid, e2_neg, e1_neg, e0_neg)
        status |= s
        if up:
            lo = mid
        else:
            hi = mid
    a_star = hi
    up, tie, s = climbs(w, a_star, e2_neg, e1_neg, e0_neg)
    two, _ = u256_add(a_star, (np.uint64(2), Z, Z, Z))
    far, s2 = reach(w, two)
    if tie or not far or (status | s | s2) != WIDE_OK:
        return zero, zero, False, 0, SEARCH_FALLBACK

    # the scan: outward from the peak, both ways, each way until the bound proves it or `window` levels fail
    evaluations = 1
    best_x, best_p, ok, status = level(a_star, reserve_in, reserve_out, fee_ppm, i, c, n_hops)
    if status != U256_OK:
        return zero, zero, False, 0, SEARCH_FALLBACK
    if not ok:
        p, status = profit_at(x0, reserve_in, reserve_out, fee_ppm, i, n_hops)
        return x0, p, False, evaluations, status
    proven = True
    c2_neg, c1_neg, c0_neg, status = bound_coefficients(w, best_p, a1_neg, b1_neg)
    star_done, s = bounded(w, a_star, c2_neg, c1_neg, c0_neg)
    status |= s
    for direction in range(2):
        forward_step = direction == 0
        a = a_star
        streak = 0
        if star_done:  # the peak's own bound proves it: nothing to walk either way
            break
        q_neg, dq_neg, room_neg, n, s = scan_state(w, a, forward_step, c2_neg, c1_neg, c0_neg)
        status |= s
        while not star_done:
            if forward_step:
                a, _ = u256_add(a, (ONE, Z, Z, Z))
            else:
                a, _ = u256_sub(a, (ONE, Z, Z, Z))
            q_neg, dq_neg, room_neg, s = scan_step(w, forward_step, q_neg, dq_neg, room_neg, c2_neg, n)
            status |= s
            # bounded(a): out of reach (a < 1 or room ≤ 0) or Q(a) < 0
            if u256_is_zero(a) or room_neg or wide_is_zero(w, R_ROOM, n) or q_neg:
                break
            evaluations += 1
            x, p, ok, s = level(a, reserve_in, reserve_out, fee_ppm, i, c, n_hops)
            if s != U256_OK:
                return zero, zero, False, 0, SEARCH_FALLBACK
            if not ok:
                break
            if s256_lt(best_p, p):
                best_x, best_p, streak = x, p, 0
                c2_neg, c1_neg, c0_neg, s = bound_coefficients(w, best_p, a1_neg, b1_neg)
                status |= s
                star_done, s = bounded(w, a_star, c2_neg, c1_neg, c0_neg)
                status |= s
                q_neg, dq_neg, room_neg, n, s = scan_state(w, a, forward_step, c2_neg, c1_neg, c0_neg)
                status |= s
            else:
                if u256_eq(p, best_p) and u256_lt(x, best_x):
                    best_x = x
                streak += 1
                if streak >= window:
                    proven = False
                    break
    if status != WIDE_OK:
        return zero, zero, False, 0, SEARCH_FALLBACK
    return best_x, best_p, proven, evaluations, SEARCH_OK


# -------------------------------------------------------------------------------------- cycles with V3 hops
# gpubt.strategies.arbitrage.pricing.refine_mixed_input (the oracle) on hops given as arrays, (cycle i, hop h):
# hop_v3, hop_zfo, hop_fee (−1 past the cycle's end), hop_a / hop_b (V2: reserve in / out; V3: sqrt price /
# liquidity, 4 limbs), hop_tick, hop_spacing, hop_lo / hop_hi (the V3 pool's initialized ticks, ticks[lo:hi], and
# their liquidityNet, nets[lo:hi]).
def mixed_hop(i, h, amount, exact_in, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi,
              ticks, nets):
    """(value, ticks crossed, ok, status): `exact_in`: hop h's output for the input `amount` (the oracle's V2Hop /
    V3Hop call), else its least input for the output `amount` (least_input); ok False where the oracle's hop gives
    None (a V3 revert, a V3 swap the price limit stops, a V2 output not below the reserve). SEARCH_FALLBACK where
    the oracle's V2 math would raise."""
    zero = (Z, Z, Z, Z)
    a = (hop_a[i, h, 0], hop_a[i, h, 1], hop_a[i, h, 2], hop_a[i, h, 3])
    b = (hop_b[i, h, 0], hop_b[i, h, 1], hop_b[i, h, 2], hop_b[i, h, 3])
    fee = hop_fee[i, h]
    if hop_v3[i, h]:
        paid, received, crossed, status = v3_quote(a, b, hop_tick[i, h], hop_spacing[i, h], fee, amount, exact_in,
                                                   hop_zfo[i, h], ticks, nets, hop_lo[i, h], hop_hi[i, h])
        if status != EXACT_OK:
            return zero, 0, False, SEARCH_OK
        if exact_in:
            return received, crossed, u256_eq(paid, amount), SEARCH_OK
        return paid, crossed, not u256_lt(received, amount), SEARCH_OK
    if exact_in:
        out, status = v2_get_amount_out(amount, a, b, fee)
        if status != EXACT_OK:
            return zero, 0, False, SEARCH_FALLBACK
        return out, 0, True, SEARCH_OK
    if u256_is_zero(amount) or not u256_lt(amount, b):
        return zero, 0, False, SEARCH_OK
    x, status = v2_get_amount_in(amount, a, b, fee)
    if status != EXACT_OK:
        return zero, 0, False, SEARCH_FALLBACK
    return x, 0, True, SEARCH_OK


def mixed_chain(i, x, upto, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi, ticks,
                nets):
    """(amount after hops[:upto] from the input x, V3 ticks crossed on the way, ok, status): ok False where the
    oracle's chain gives None (an amount ≤ 0 reaching a hop, or a hop's None)."""
    amount, crossed = x, 0
    for h in range(upto):
        if u256_is_zero(amount):
            return amount, crossed, False, SEARCH_OK
        amount, c, ok, status = mixed_hop(i, h, amount, True, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                          hop_spacing, hop_lo, hop_hi, ticks, nets)
        crossed += c
        if status != SEARCH_OK or not ok:
            return amount, crossed, False, status
    return amount, crossed, True, SEARCH_OK


def mixed_reaches(i, y, c, target, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi,
                  ticks, nets):
    """(input y takes hops[:c + 1] to at least `target`, status): the oracle's `reaches`."""
    amount, _, ok, status = mixed_chain(i, y, c + 1, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing,
                                        hop_lo, hop_hi, ticks, nets)
    return ok and not u256_lt(amount, target), status


def mixed_plateau_start(i, x, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo,
                        hop_hi, ticks, nets):
    """(the oracle's _plateau_start(x), status): the least input whose coarsest intermediate amount equals x's,
    by the hops' inverses, then galloping and bisection. SEARCH_FALLBACK where the coarsest hop's float value (the
    oracle divides exact ints) ties another's or 1.0 within COARSE_TIE."""
    zero = (Z, Z, Z, Z)
    fx = u256_to_float(x)
    amount = x
    c, best, second, target = -1, -1.0, -1.0, zero
    for h in range(n_hops - 1):
        if u256_is_zero(amount):
            return x, SEARCH_OK
        amount, _, ok, status = mixed_hop(i, h, amount, True, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                          hop_spacing, hop_lo, hop_hi, ticks, nets)
        if status != SEARCH_OK:
            return x, status
        if not ok:
            return x, SEARCH_OK
        ratio = fx / u256_to_float(amount) if not u256_is_zero(amount) else 1e300
        if ratio > best:
            c, second, best, target = h, best, ratio, amount
        elif ratio > second:
            second = ratio
    if c < 0:
        return x, SEARCH_OK
    if second >= 0.0 and best - second <= COARSE_TIE * best:
        return x, SEARCH_FALLBACK
    if abs(best - 1.0) <= COARSE_TIE:
        return x, SEARCH_FALLBACK
    if best <= 1.0:
        return x, SEARCH_OK   # every intermediate is finer than the start token
    guess, known = target, True
    for k in range(c + 1):
        h = c - k
        if known:
            guess, _, known, status = mixed_hop(i, h, guess, False, hop_v3, hop_zfo, hop_fee, hop_a, hop_b,
                                                hop_tick, hop_spacing, hop_lo, hop_hi, ticks, nets)
            if status != SEARCH_OK:
                return x, status
    if not known or u256_is_zero(guess) or u256_lt(x, guess):
        guess = x
    step = (ONE, Z, Z, Z)
    one = (ONE, Z, Z, Z)
    reached, status = mixed_reaches(i, guess, c, target, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                    hop_spacing, hop_lo, hop_hi, ticks, nets)
    if status != SEARCH_OK:
        return x, status
    if reached:   # gallop down to an input that does not reach the level
        hi = guess
        lo, _ = u256_sub(guess, one)
        while not u256_is_zero(lo):
            reached, status = mixed_reaches(i, lo, c, target, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                            hop_spacing, hop_lo, hop_hi, ticks, nets)
            if status != SEARCH_OK:
                return x, status
            if not reached:
                break
            hi = lo
            step, _ = u256_add(step, step)
            lo = zero if u256_lt(guess, step) else u256_sub(guess, step)[0]
    else:         # gallop up to one that does (x does)
        lo = guess
        hi, _ = u256_add(guess, one)
        if u256_lt(x, hi):
            hi = x
        while u256_lt(hi, x):
            reached, status = mixed_reaches(i, hi, c, target, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                            hop_spacing, hop_lo, hop_hi, ticks, nets)
            if status != SEARCH_OK:
                return x, status
            if reached:
                break
            lo = hi
            step, _ = u256_add(step, step)
            hi, carry = u256_add(guess, step)
            if carry != Z or u256_lt(x, hi):
                hi = x
    while True:   # reaches(hi), not reaches(lo)
        gap, _ = u256_sub(hi, lo)
        if not u256_lt(one, gap):
            break
        mid, _ = u256_add(lo, u256_shr(gap, np.uint64(1)))   # (lo + hi) // 2 without overflow
        reached, status = mixed_reaches(i, mid, c, target, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                        hop_spacing, hop_lo, hop_hi, ticks, nets)
        if status != SEARCH_OK:
            return x, status
        if reached:
            hi = mid
        else:
            lo = mid
    return hi, SEARCH_OK


def mixed_profit_at(i, x, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi,
                    ticks, nets):
    """(the cycle's exact gross profit from input x as an int256, V3 ticks crossed, ok, status): mixed_profit."""
    out, crossed, ok, status = mixed_chain(i, x, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                           hop_spacing, hop_lo, hop_hi, ticks, nets)
    profit, _ = u256_sub(out, x)
    return profit, crossed, ok, status


def mixed_input(i, x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi, ticks,
                nets):
    """refine_mixed_input of cycle i from its float optimum: (amount_in, exact profit (int256), V3 ticks crossed
    at that input, status)."""
    zero = (Z, Z, Z, Z)
    n_hops = 0
    while n_hops < hop_fee.shape[1] and hop_fee[i, n_hops] >= 0:
        n_hops += 1
    if not (x_float == x_float) or x_float >= 1e60 or n_hops < 1:
        return zero, zero, 0, SEARCH_FALLBACK
    x0 = float_to_u256(x_float) if x_float >= 1.0 else (ONE, Z, Z, Z)
    p0, c0, ok, status = mixed_profit_at(i, x0, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                         hop_spacing, hop_lo, hop_hi, ticks, nets)
    while status == SEARCH_OK and not ok and u256_lt((ONE, Z, Z, Z), x0):
        x0 = u256_shr(x0, np.uint64(1))
        p0, c0, ok, status = mixed_profit_at(i, x0, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                             hop_spacing, hop_lo, hop_hi, ticks, nets)
    if status != SEARCH_OK:
        return zero, zero, 0, status
    if not ok:   # nothing goes through: the whole input is at risk (never screened profitable)
        return x0, u256_neg(x0), c0, SEARCH_OK
    x_trim, status = mixed_plateau_start(i, x0, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                         hop_spacing, hop_lo, hop_hi, ticks, nets)
    if status != SEARCH_OK:
        return zero, zero, 0, status
    if u256_lt(x_trim, x0):
        p1, c1, ok, status = mixed_profit_at(i, x_trim, n_hops, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick,
                                             hop_spacing, hop_lo, hop_hi, ticks, nets)
        if status != SEARCH_OK:
            return zero, zero, 0, status
        if ok and not s256_lt(p1, p0):
            return x_trim, p1, c1, SEARCH_OK
    return x0, p0, c0, SEARCH_OK


# Dependency order for kernels/compile.build, after the wide and exact functions they call.
SEARCH_FUNCTIONS = (
    s256_lt, float_to_u256, hop, forward, wide_mul3, mobius_rows, quadratic_at, wide_ratio, newton_step,
    reach, climbs,
    bound_coefficients, bounded, scan_state, scan_step, level, profit_at, v2_optimal_input,
    mixed_hop, mixed_chain, mixed_reaches, mixed_plateau_start, mixed_profit_at, mixed_input,
)


# ------------------------------------------------------------------------------------------------ batch drivers
def v2_optimal_input_row(i, x_float, reserve_in, reserve_out, fee_ppm, window, scratch, out_x, out_profit, out_proven,
                         out_evaluations, out_status):
    """v2_optimal_input of path i into row i of the outputs, with scratch[i] as its rows."""
    x, p, proven, evaluations, status = v2_optimal_input(x_float[i], reserve_in, reserve_out, fee_ppm, i, window,
                                                         scratch[i])
    for k in range(4):
        out_x[i, k] = x[k]
        out_profit[i, k] = p[k]
    out_proven[i] = proven
    out_evaluations[i] = evaluations
    out_status[i] = status


def v2_optimal_inputs_cpu(x_float, reserve_in, reserve_out, fee_ppm, window, scratch, out_x, out_profit,
                          out_proven, out_evaluations, out_status):
    """v2_optimal_input of every path (outputs: (n, 4) limbs, (n, 4) int256 limbs, (n,) bool, int64, int64);
    scratch: (n, SEARCH_ROWS, limbs) uint64, each path's own rows."""
    for i in prange(x_float.shape[0]):
        v2_optimal_input_row(i, x_float, reserve_in, reserve_out, fee_ppm, window, scratch, out_x, out_profit,
                             out_proven, out_evaluations, out_status)


def v2_optimal_inputs_cuda(x_float, reserve_in, reserve_out, fee_ppm, window, scratch, out_x, out_profit,
                           out_proven, out_evaluations, out_status):
    """v2_optimal_inputs_cpu, one thread per path."""
    i = cuda.grid(1)  # noqa: F821
    if i < x_float.shape[0]:
        v2_optimal_input_row(i, x_float, reserve_in, reserve_out, fee_ppm, window, scratch, out_x, out_profit,
                             out_proven, out_evaluations, out_status)


def mixed_input_row(i, x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi, ticks,
                    nets, out_x, out_profit, out_crossed, out_status):
    """mixed_input of cycle i into row i of the outputs."""
    x, p, crossed, status = mixed_input(i, x_float[i], hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing,
                                        hop_lo, hop_hi, ticks, nets)
    for k in range(4):
        out_x[i, k] = x[k]
        out_profit[i, k] = p[k]
    out_crossed[i] = crossed
    out_status[i] = status


def mixed_inputs_cpu(x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi, ticks,
                     nets, out_x, out_profit, out_crossed, out_status):
    """mixed_input of every cycle (outputs: (n, 4) limbs, (n, 4) int256 limbs, (n,) int64, int64)."""
    for i in prange(x_float.shape[0]):
        mixed_input_row(i, x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi,
                        ticks, nets, out_x, out_profit, out_crossed, out_status)


def mixed_inputs_cuda(x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi, ticks,
                      nets, out_x, out_profit, out_crossed, out_status):
    """mixed_inputs_cpu, one thread per cycle."""
    i = cuda.grid(1)  # noqa: F821
    if i < x_float.shape[0]:
        mixed_input_row(i, x_float, hop_v3, hop_zfo, hop_fee, hop_a, hop_b, hop_tick, hop_spacing, hop_lo, hop_hi,
                        ticks, nets, out_x, out_profit, out_crossed, out_status)


# The kernel's declaration (gpubt.kernels.REGISTRY).
DEVICE_FUNCTIONS = (_exact.DEVICE_FUNCTIONS + WIDE_FUNCTIONS + SEARCH_FUNCTIONS
                    + (v2_optimal_input_row, mixed_input_row))
DRIVERS = ((v2_optimal_inputs_cpu, v2_optimal_inputs_cuda), (mixed_inputs_cpu, mixed_inputs_cuda))
INLINE = False
