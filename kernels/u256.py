"""256-bit unsigned integers as device functions: a u256 is a 4-tuple of np.uint64 limbs, least significant first;
a 512-bit number is a pair (lo, hi) of u256. One source for numba-CPU and numba-CUDA (kernels/compile.py).

Why tuples of limbs: they are plain values on both targets (registers, no arrays, no allocation), and every
operation below is fixed-size straight-line code. Division is Knuth's algorithm D with 64-bit digits; the divisor
is shifted left until its top bit is set, so it always has exactly 4 digits and a quotient that fits 256 bits is
always 4 steps of the same code (a step whose quotient digit is plainly 0 is skipped).

Integer pitfalls the code is written around: numba promotes a mix of signed and unsigned integers to float64, so
every constant, shift count and comparison operand is an np.uint64; a shift by ≥ 64 is undefined, so shifts by a
variable count are guarded; numba has no 128-bit integer, so 64×64→128 products and 128/64 divisions go through
32-bit halves. Wrapping (mod 2⁶⁴) is intended wherever it happens; numba wraps silently, NumPy scalars (the CUDA
simulator) wrap too but warn, which tests silence.

Device functions never raise: a failure is a status (U256_DIV_ZERO, U256_OVERFLOW) returned with a zero value.
Host-side helpers (Python int ↔ limbs, limb arrays) sit at the end and are not device code.
"""
import numpy as np

Z = np.uint64(0)
ONE = np.uint64(1)
MAX64 = np.uint64(0xFFFFFFFFFFFFFFFF)
M32 = np.uint64(0xFFFFFFFF)
B32 = np.uint64(1 << 32)
S1 = np.uint64(1)
S2 = np.uint64(2)
S4 = np.uint64(4)
S6 = np.uint64(6)
S8 = np.uint64(8)
S16 = np.uint64(16)
S32 = np.uint64(32)
S48 = np.uint64(48)
S56 = np.uint64(56)
S60 = np.uint64(60)
S62 = np.uint64(62)
S63 = np.uint64(63)
S64 = np.uint64(64)
S128 = np.uint64(128)
S192 = np.uint64(192)
S256 = np.uint64(256)
W1 = np.uint64(1)   # limb counts compared against a uint64 shift
W2 = np.uint64(2)
W3 = np.uint64(3)
TWO64F = 18446744073709551616.0   # 2⁶⁴ as a float64

U256_OK = 0
U256_DIV_ZERO = 1    # the divisor is 0 (FullMath.mulDiv's require(denominator > 0))
U256_OVERFLOW = 2    # the result does not fit 256 bits


# ----------------------------------------------------------------------------------------------- 64-bit limbs
def mul64(a, b):
    """a·b of two uint64 as (lo, hi), through 32-bit halves (no term overflows 64 bits)."""
    a_lo = a & M32
    a_hi = a >> S32
    b_lo = b & M32
    b_hi = b >> S32
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    hh = a_hi * b_hi
    cross = (ll >> S32) + (lh & M32) + hl
    return (cross << S32) | (ll & M32), hh + (lh >> S32) + (cross >> S32)


def mac64(acc, a, b, carry):
    """acc + a·b + carry (at most 2¹²⁸ − 1) as (lo, hi)."""
    lo, hi = mul64(a, b)
    lo = lo + acc
    if lo < acc:
        hi += ONE
    lo = lo + carry
    if lo < carry:
        hi += ONE
    return lo, hi


def add_carry(a, b, carry):
    """a + b + carry (carry 0 or 1) as (sum mod 2⁶⁴, carry out)."""
    s = a + b
    c = Z
    if s < a:
        c = ONE
    t = s + carry
    if t < s:
        c = ONE
    return t, c


def sub_borrow(a, b, borrow):
    """a − b − borrow (borrow 0 or 1) as (difference mod 2⁶⁴, borrow out)."""
    d = a - b
    c = Z
    if a < b:
        c = ONE
    t = d - borrow
    if d < borrow:
        c = ONE
    return t, c


def clz64(x):
    """Leading zero bits of a uint64 (64 for 0), as a uint64."""
    if x == Z:
        return S64
    n = Z
    if (x >> S32) == Z:
        n += S32
        x = x << S32
    if (x >> S48) == Z:
        n += S16
        x = x << S16
    if (x >> S56) == Z:
        n += S8
        x = x << S8
    if (x >> S60) == Z:
        n += S4
        x = x << S4
    if (x >> S62) == Z:
        n += S2
        x = x << S2
    if (x >> S63) == Z:
        n += S1
    return n


def div128by64(u1, u0, v):
    """floor((u1·2⁶⁴ + u0) / v) and the remainder, for v with its top bit set and u1 < v (so the quotient fits
    64 bits): Hacker's Delight `divlu` with 32-bit digits, each estimate corrected at most twice."""
    vn1 = v >> S32
    vn0 = v & M32
    un1 = u0 >> S32
    un0 = u0 & M32
    q1 = u1 // vn1
    rhat = u1 - q1 * vn1
    while q1 >= B32 or q1 * vn0 > ((rhat << S32) | un1):
        q1 -= ONE
        rhat += vn1
        if rhat >= B32:
            break
    un21 = ((u1 << S32) | un1) - q1 * v  # exact mod 2⁶⁴: the true value is < v
    q0 = un21 // vn1
    rhat = un21 - q0 * vn1
    while q0 >= B32 or q0 * vn0 > ((rhat << S32) | un0):
        q0 -= ONE
        rhat += vn1
        if rhat >= B32:
            break
    return (q1 << S32) | q0, ((un21 << S32) | un0) - q0 * v


# ------------------------------------------------------------------------------------------------------- u256
def u256_is_zero(a):
    """a == 0."""
    return (a[0] | a[1] | a[2] | a[3]) == Z


def u256_eq(a, b):
    """a == b."""
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


def u256_lt(a, b):
    """a < b."""
    if a[3] != b[3]:
        return a[3] < b[3]
    if a[2] != b[2]:
        return a[2] < b[2]
    if a[1] != b[1]:
        return a[1] < b[1]
    return a[0] < b[0]


def u256_add(a, b):
    """a + b mod 2²⁵⁶ and the carry out (uint64 0 or 1)."""
    r0, c = add_carry(a[0], b[0], Z)
    r1, c = add_carry(a[1], b[1], c)
    r2, c = add_carry(a[2], b[2], c)
    r3, c = add_carry(a[3], b[3], c)
    return (r0, r1, r2, r3), c


def u256_sub(a, b):
    """a − b mod 2²⁵⁶ and the borrow out (uint64 1 when b > a)."""
    r0, c = sub_borrow(a[0], b[0], Z)
    r1, c = sub_borrow(a[1], b[1], c)
    r2, c = sub_borrow(a[2], b[2], c)
    r3, c = sub_borrow(a[3], b[3], c)
    return (r0, r1, r2, r3), c


def u256_neg(a):
    """−a mod 2²⁵⁶ (two's complement: an int256 is a u256 whose top bit is the sign)."""
    r, _ = u256_sub((Z, Z, Z, Z), a)
    return r


def u256_or(a, b):
    """a | b."""
    return (a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3])


def u256_shl(a, n):
    """a << n mod 2²⁵⁶ for a bit count n ≥ 0 (0 when n ≥ 256)."""
    n = np.uint64(n)
    if n >= S256:
        return (Z, Z, Z, Z)
    w = n >> S6
    s = n & S63
    a0, a1, a2, a3 = a
    if w == W1:
        a0, a1, a2, a3 = Z, a0, a1, a2
    elif w == W2:
        a0, a1, a2, a3 = Z, Z, a0, a1
    elif w == W3:
        a0, a1, a2, a3 = Z, Z, Z, a0
    if s == Z:
        return (a0, a1, a2, a3)
    t = S64 - s
    return (a0 << s, (a1 << s) | (a0 >> t), (a2 << s) | (a1 >> t), (a3 << s) | (a2 >> t))


def u256_shr(a, n):
    """a >> n for a bit count n ≥ 0 (0 when n ≥ 256)."""
    n = np.uint64(n)
    if n >= S256:
        return (Z, Z, Z, Z)
    w = n >> S6
    s = n & S63
    a0, a1, a2, a3 = a
    if w == W1:
        a0, a1, a2, a3 = a1, a2, a3, Z
    elif w == W2:
        a0, a1, a2, a3 = a2, a3, Z, Z
    elif w == W3:
        a0, a1, a2, a3 = a3, Z, Z, Z
    if s == Z:
        return (a0, a1, a2, a3)
    t = S64 - s
    return ((a0 >> s) | (a1 << t), (a1 >> s) | (a2 << t), (a2 >> s) | (a3 << t), a3 >> s)


def u256_clz(a):
    """Leading zero bits of a u256 (256 for 0), as a uint64."""
    if a[3] != Z:
        return clz64(a[3])
    if a[2] != Z:
        return S64 + clz64(a[2])
    if a[1] != Z:
        return S128 + clz64(a[1])
    return S192 + clz64(a[0])


def u256_mul_small(a, m):
    """a·m for a uint64 m: (low 256 bits, the uint64 above them)."""
    r0, c = mac64(Z, a[0], m, Z)
    r1, c = mac64(Z, a[1], m, c)
    r2, c = mac64(Z, a[2], m, c)
    r3, c = mac64(Z, a[3], m, c)
    return (r0, r1, r2, r3), c


def u256_mul(a, b):
    """The full 512-bit product a·b as (lo, hi)."""
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    r0, c = mac64(Z, a0, b0, Z)
    r1, c = mac64(Z, a0, b1, c)
    r2, c = mac64(Z, a0, b2, c)
    r3, r4 = mac64(Z, a0, b3, c)
    r1, c = mac64(r1, a1, b0, Z)
    r2, c = mac64(r2, a1, b1, c)
    r3, c = mac64(r3, a1, b2, c)
    r4, r5 = mac64(r4, a1, b3, c)
    r2, c = mac64(r2, a2, b0, Z)
    r3, c = mac64(r3, a2, b1, c)
    r4, c = mac64(r4, a2, b2, c)
    r5, r6 = mac64(r5, a2, b3, c)
    r3, c = mac64(r3, a3, b0, Z)
    r4, c = mac64(r4, a3, b1, c)
    r5, c = mac64(r5, a3, b2, c)
    r6, r7 = mac64(r6, a3, b3, c)
    return (r0, r1, r2, r3), (r4, r5, r6, r7)


def knuth_step(u, r, d):
    """One step of Knuth's algorithm D: floor((r·2⁶⁴ + u) / d) and the remainder, for a divisor d with its top bit
    set and a partial remainder r < d (so the quotient digit fits 64 bits)."""
    r0, r1, r2, r3 = r
    d0, d1, d2, d3 = d
    if r3 == Z and r2 < d3:  # r·2⁶⁴ + u < d3·2¹⁹² ≤ d: the digit is 0
        return Z, (u, r0, r1, r2)
    # estimate from the top two remainder digits over the top divisor digit (≥ the true digit, by at most 2)
    if r3 >= d3:  # r3 == d3, as r < d
        qhat = MAX64
        rhat = r2 + d3
        refine = rhat >= r2  # rhat < 2⁶⁴: the test below is meaningful
    else:
        qhat, rhat = div128by64(r3, r2, d3)
        refine = True
    # Knuth's test with the next divisor digit: qhat·d2 > rhat·2⁶⁴ + r1 means qhat is too large (at most twice)
    if refine:
        p_lo, p_hi = mul64(qhat, d2)
        if p_hi > rhat or (p_hi == rhat and p_lo > r1):
            qhat -= ONE
            rhat2 = rhat + d3
            if rhat2 >= rhat:
                p_lo, p_hi = mul64(qhat, d2)
                if p_hi > rhat2 or (p_hi == rhat2 and p_lo > r1):
                    qhat -= ONE
    # multiply and subtract: (r3 r2 r1 r0 u) − qhat·d
    m, m4 = u256_mul_small(d, qhat)
    s0, b = sub_borrow(u, m[0], Z)
    s1, b = sub_borrow(r0, m[1], b)
    s2, b = sub_borrow(r1, m[2], b)
    s3, b = sub_borrow(r2, m[3], b)
    _, b = sub_borrow(r3, m4, b)
    if b != Z:  # qhat was still one too large (probability ~2⁻⁶³): add d back
        qhat -= ONE
        s0, c = add_carry(s0, d0, Z)
        s1, c = add_carry(s1, d1, c)
        s2, c = add_carry(s2, d2, c)
        s3, c = add_carry(s3, d3, c)
    return qhat, (s0, s1, s2, s3)


def u512_divmod(lo, hi, d):
    """floor((hi·2²⁵⁶ + lo) / d) and the remainder, with a status: U256_DIV_ZERO when d = 0, U256_OVERFLOW when the
    quotient does not fit 256 bits (hi ≥ d); zeros then."""
    if u256_is_zero(d):
        return (Z, Z, Z, Z), (Z, Z, Z, Z), U256_DIV_ZERO
    if not u256_lt(hi, d):
        return (Z, Z, Z, Z), (Z, Z, Z, Z), U256_OVERFLOW
    s = u256_clz(d)
    dn = u256_shl(d, s)
    # the dividend shifted by s still fits 512 bits: hi < d, so hi·2ˢ < d·2ˢ < 2²⁵⁶
    if s == Z:
        un_lo = lo
        un_hi = hi
    else:
        un_lo = u256_shl(lo, s)
        un_hi = u256_or(u256_shl(hi, s), u256_shr(lo, S256 - s))
    # one quotient digit per dividend limb, top first; the limbs rotate so every index is a constant
    q = (Z, Z, Z, Z)
    r = un_hi
    for _ in range(4):
        digit, r = knuth_step(un_lo[3], r, dn)
        q = (digit, q[0], q[1], q[2])
        un_lo = (Z, un_lo[0], un_lo[1], un_lo[2])
    return q, u256_shr(r, s), U256_OK


def u256_divmod(a, d):
    """floor(a / d) and a mod d, with a status (U256_DIV_ZERO when d = 0)."""
    if u256_lt(a, d):
        if u256_is_zero(d):
            return (Z, Z, Z, Z), (Z, Z, Z, Z), U256_DIV_ZERO
        return (Z, Z, Z, Z), a, U256_OK
    return u512_divmod(a, (Z, Z, Z, Z), d)


def mul_div(a, b, denominator):
    """FullMath.mulDiv: floor(a·b / denominator) with a 512-bit product, and a status: U256_DIV_ZERO when
    denominator = 0, U256_OVERFLOW when the result is ≥ 2²⁵⁶ (both revert in the contract)."""
    lo, hi = u256_mul(a, b)
    q, _, status = u512_divmod(lo, hi, denominator)
    return q, status


def mul_div_rounding_up(a, b, denominator):
    """FullMath.mulDivRoundingUp: ceil(a·b / denominator) and a status, as mul_div (U256_OVERFLOW also when the
    floor is 2²⁵⁶ − 1 and there is a remainder)."""
    lo, hi = u256_mul(a, b)
    q, r, status = u512_divmod(lo, hi, denominator)
    if status != U256_OK or u256_is_zero(r):
        return q, status
    q, carry = u256_add(q, (ONE, Z, Z, Z))
    if carry != Z:
        return (Z, Z, Z, Z), U256_OVERFLOW
    return q, U256_OK


def div_rounding_up(x, y):
    """UnsafeMath.divRoundingUp: ceil(x / y); 0 when y = 0 (the EVM's div and mod by zero give 0)."""
    if u256_is_zero(y):
        return (Z, Z, Z, Z)
    q, r, _ = u256_divmod(x, y)
    if u256_is_zero(r):
        return q
    q, _ = u256_add(q, (ONE, Z, Z, Z))  # q < 2²⁵⁶ − 1 here (y ≥ 2 when there is a remainder)
    return q


def u256_to_float(a):
    """A u256 as a float64 (within a few ulp)."""
    return ((float(a[3]) * TWO64F + float(a[2])) * TWO64F + float(a[1])) * TWO64F + float(a[0])


# Dependency order for kernels/compile.build (a function calls only functions listed before it).
U256_FUNCTIONS = (
    mul64, mac64, add_carry, sub_borrow, clz64, div128by64,
    u256_is_zero, u256_eq, u256_lt, u256_add, u256_sub, u256_neg, u256_or, u256_shl,
    u256_shr, u256_clz, u256_mul_small, u256_mul, knuth_step, u512_divmod, u256_divmod, mul_div,
    mul_div_rounding_up, div_rounding_up, u256_to_float,
)


# ------------------------------------------------------------------------------------------- host side (not device)
MASK64 = (1 << 64) - 1
MAX_UINT256 = (1 << 256) - 1


def to_limbs(x: int) -> tuple:
    """A Python int in [0, 2²⁵⁶) (or a negative int256, as two's complement) as a u256 tuple."""
    if not -(1 << 255) <= x <= MAX_UINT256:
        raise ValueError(f"{x} is outside uint256 and int256")
    x &= MAX_UINT256
    return tuple(np.uint64((x >> (64 * k)) & MASK64) for k in range(4))


def from_limbs(limbs) -> int:
    """The Python int of a u256 (a tuple, or a length-4 array row)."""
    return sum(int(limbs[k]) << (64 * k) for k in range(4))


def to_limb_array(values) -> np.ndarray:
    """Python ints (uint256, or int256 as two's complement) as an (n, 4) uint64 array of limbs."""
    values = list(values)
    out = np.empty((len(values), 4), dtype=np.uint64)
    for k in range(4):
        out[:, k] = [(v & MAX_UINT256) >> (64 * k) & MASK64 for v in values]
    return out


def from_limb_array(limbs: np.ndarray) -> list:
    """An (n, 4) uint64 limb array as Python ints."""
    limbs = np.asarray(limbs, dtype=np.uint64)
    return [int(a) | int(b) << 64 | int(c) << 128 | int(d) << 192 for a, b, c, d in limbs.tolist()]


def signed(x: int) -> int:
    """A uint256 read as an int256 (two's complement)."""
    return x - (1 << 256) if x >> 255 else x


# ------------------------------------------------------------------------------------ batch drivers (host side)
COLUMN_KINDS = {"u": "an (n, 4) uint64 limb column", "w": "an (n,) uint64 column", "i": "an (n,) int64 column",
                "b": "an (n,) bool column"}


def elementwise(fn, in_kinds: str, out_kinds: str):
    """(cpu_driver, cuda_driver) applying the device function `fn` row by row: argument k from input column k,
    result k (or the one result) into output column k. Kinds, one letter per column: u (n, 4) uint64 limbs,
    w (n,) uint64, i (n,) int64, b (n,) bool. The drivers are plain functions for kernels/compile.build, named
    `<fn>_cpu` (a prange loop) and `<fn>_cuda` (one thread per row)."""
    from numba import prange

    for kind in in_kinds + out_kinds:
        if kind not in COLUMN_KINDS:
            raise ValueError(f"column kind {kind!r} in {in_kinds!r} -> {out_kinds!r}: "
                             f"use one of {sorted(COLUMN_KINDS)}")
    name = fn.__name__
    ins = [f"in{k}" for k in range(len(in_kinds))]
    outs = [f"out{k}" for k in range(len(out_kinds))]
    args = ", ".join(f"({c}[i, 0], {c}[i, 1], {c}[i, 2], {c}[i, 3])" if kind == "u" else f"{c}[i]"
                     for c, kind in zip(ins, in_kinds))
    results = [f"r{k}" for k in range(len(out_kinds))]
    body = [f"{', '.join(results)}{',' if len(results) == 1 else ''} = {name}({args})" if len(results) > 1
            else f"r0 = {name}({args})"]
    for c, r, kind in zip(outs, results, out_kinds):
        if kind == "u":
            body += [f"{c}[i, {k}] = {r}[{k}]" for k in range(4)]
        else:
            body.append(f"{c}[i] = {r}")
    params = ", ".join(ins + outs)
    source = (f"def {name}_cpu({params}):\n    for i in prange({ins[0]}.shape[0]):\n"
              + "".join(f"        {line}\n" for line in body)
              + f"def {name}_cuda({params}):\n    i = cuda.grid(1)\n    if i < {ins[0]}.shape[0]:\n"
              + "".join(f"        {line}\n" for line in body))
    namespace = {}
    exec(compile(source, f"<elementwise {name}>", "exec"), {"prange": prange, name: fn}, namespace)
    return namespace[f"{name}_cpu"], namespace[f"{name}_cuda"]


def build(target: str, functions=U256_FUNCTIONS, drivers=()):
    """`functions` (dependency order) and `drivers` ((cpu, cuda) pairs, e.g. from `elementwise`) compiled for
    `target` (cpu | cuda | cudasim) by kernels/compile.build: a namespace of compiled functions by name.

    On the CPU every function is its own numba function (inline="never"; LLVM still inlines the small ones):
    forcing numba-IR inlining of the swap step into a prange body breaks numba's parfor analysis."""
    from .compile import build as _build

    return _build(target, functions, [d[0] for d in drivers], [d[1] for d in drivers], inline=False)
