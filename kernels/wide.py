"""Wide integers (up to a few thousand bits) as device functions: each number is one row of a scratch array
`w` (rows × limbs, uint64), 32-bit limbs least significant first, its sign (when it has one) a separate bool.
One source for numba-CPU and numba-CUDA (kernels/compile.py).

Why rows, not tuples as kernels/u256.py: the V2 search's exact bound (kernels/exact_search.py) multiplies Möbius
coefficients of a whole cycle, ~266 bits per hop plus two 112-bit levels (1,022 bits for three hops); tuples that
wide would be thousands of registers. A row of a caller-owned array is plain memory on both targets (the CUDA
driver hands each thread its own slice of one global array), and the loops run only over the limbs in use.
Why 32-bit limbs: a limb product plus two limbs fits a uint64, so schoolbook multiplication needs no 128-bit type.

Device functions never raise: a result that does not fit the row is the status WIDE_OVERFLOW (the caller falls
back to Python ints). Operands of wide_mul must be rows other than its destination; add, sub and the signed add
may write over an operand. Those and the comparisons work on a row's first n limbs (the caller's bound on the
values: a scan over short numbers need not walk a whole row); the limbs above n must be zero.
"""
import numpy as np

from .u256 import M32, S32, Z

WIDE_OK = 0
WIDE_OVERFLOW = 1


def wide_zero(w, d):
    """Row d = 0."""
    for i in range(w.shape[1]):
        w[d, i] = Z


def wide_set_u256(w, d, x):
    """Row d = the u256 x (a 4-tuple of uint64 limbs)."""
    wide_zero(w, d)
    for k in range(4):
        w[d, 2 * k] = x[k] & M32
        w[d, 2 * k + 1] = x[k] >> S32


def wide_len(w, a, n):
    """Limbs of row a in use (0 for zero), looking at its first n limbs."""
    while n > 0 and w[a, n - 1] == Z:
        n -= 1
    return n


def wide_is_zero(w, a, n):
    """Row a == 0 (its first n limbs)."""
    return wide_len(w, a, n) == 0


def wide_cmp(w, a, b, n):
    """−1, 0 or 1 as row a <, = or > row b (magnitudes in their first n limbs)."""
    for i in range(n - 1, -1, -1):
        if w[a, i] != w[b, i]:
            return 1 if w[a, i] > w[b, i] else -1
    return 0


def wide_add(w, d, a, b, n):
    """Row d = row a + row b over their first n limbs; WIDE_OVERFLOW when the sum needs more."""
    carry = Z
    for i in range(n):
        t = w[a, i] + w[b, i] + carry
        w[d, i] = t & M32
        carry = t >> S32
    return WIDE_OVERFLOW if carry != Z else WIDE_OK


def wide_sub(w, d, a, b, n):
    """Row d = row a − row b over their first n limbs, for row a ≥ row b."""
    borrow = Z
    for i in range(n):
        t = (w[a, i] | np.uint64(1 << 32)) - w[b, i] - borrow  # in [0, 2³³): no wrap
        w[d, i] = t & M32
        borrow = np.uint64(1) - (t >> S32)


def wide_mul_small(w, d, a, m):
    """Row d = row a × m for a uint64 m < 2³²; WIDE_OVERFLOW when the product does not fit the row."""
    carry = Z
    for i in range(w.shape[1]):
        t = w[a, i] * m + carry
        w[d, i] = t & M32
        carry = t >> S32
    return WIDE_OVERFLOW if carry != Z else WIDE_OK


def wide_mul(w, d, a, b):
    """Row d = row a × row b (d neither a nor b); WIDE_OVERFLOW (d undefined) when the operands' limbs in use
    add up to more than a row has."""
    la = wide_len(w, a, w.shape[1])
    lb = wide_len(w, b, w.shape[1])
    wide_zero(w, d)
    if la == 0 or lb == 0:
        return WIDE_OK
    if la + lb > w.shape[1]:
        return WIDE_OVERFLOW
    for i in range(la):
        ai = w[a, i]
        carry = Z
        if ai != Z:
            for j in range(lb):
                t = w[d, i + j] + ai * w[b, j] + carry  # ≤ (2³²−1)² + 2·(2³²−1) = 2⁶⁴ − 1
                w[d, i + j] = t & M32
                carry = t >> S32
        w[d, i + lb] = carry
    return WIDE_OK


def wide_signed_add(w, d, a, a_neg, b, b_neg, n):
    """Row d = (±row a) + (±row b) over their first n limbs, signs as bools: (d's sign, status); zero is never
    negative."""
    if a_neg == b_neg:
        status = wide_add(w, d, a, b, n)
        return a_neg and not wide_is_zero(w, d, n), status
    order = wide_cmp(w, a, b, n)
    if order >= 0:
        wide_sub(w, d, a, b, n)
        return a_neg and order != 0, WIDE_OK
    wide_sub(w, d, b, a, n)
    return b_neg, WIDE_OK


# Dependency order for kernels/compile.build.
WIDE_FUNCTIONS = (
    wide_zero, wide_set_u256, wide_len, wide_is_zero, wide_cmp, wide_add, wide_sub, wide_mul_small,
    wide_mul, wide_signed_add,
)


# ------------------------------------------------------------------------------------------- host side (not device)
def to_row(x: int, limbs: int) -> np.ndarray:
    """A non-negative Python int as a row of `limbs` 32-bit limbs (ValueError when it does not fit)."""
    if x < 0 or x >> (32 * limbs):
        raise ValueError(f"{x} does not fit {limbs} 32-bit limbs")
    return np.array([(x >> (32 * i)) & 0xFFFFFFFF for i in range(limbs)], np.uint64)


def from_row(row) -> int:
    """A row of 32-bit limbs as a Python int."""
    return sum(int(v) << (32 * i) for i, v in enumerate(row))
