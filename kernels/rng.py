"""Counter-based random numbers as device functions (ARCHITECTURE principle 5): no state, no thread order.

A draw is a pure function of (key, counter): Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as
easy as 1, 2, 3"; the generator behind cuRAND's Philox and Random123), 10 rounds of two 32×32→64-bit multiplies.
`stream_key(seed, stream)` folds a run seed and a 64-bit stream id (an opportunity) into the 2-word key; the
4-word counter is (scenario, searcher, draw, phase) in gpubt's kernels. Each Philox block yields 4 × 32 bits =
two float64 uniforms with 53 random bits each.

Integer semantics. Every word is kept in [0, 2**32) and every product is of two such words, so it is < 2**64:
Python ints (the reference and the CUDA simulator) compute it exactly; numba's int64 (CPU and CUDA) wraps it
modulo 2**64, and the masks after each shift (`(p >> 32) & M32`) give the same bits either way (an arithmetic
shift of the wrapped value differs only above bit 31). Inputs pass through `int()` so the simulator's numpy
scalars become Python ints (no numpy overflow warnings, no int64/uint64 → float64 promotion). So the words are
bit-identical on pure Python, the simulator, numba CPU and numba CUDA.

Floats. Uniforms are exact dyadic rationals (k + 0.5)·2**-53, identical everywhere. Normal / exponential /
lognormal go through log, sqrt, cos, exp: identical between the CPU build, the simulator and Python (the same
libm); on a real GPU libdevice's functions and FMA contraction may differ in the last bits (compare with rtol).
"""
import math

M32 = 0xFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9   # golden ratio
PHILOX_W1 = 0xBB67AE85   # sqrt(3) - 1
PHILOX_ROUNDS = 10
TWO_POW_M53 = 1.0 / 9007199254740992.0
TWO_PI = 2.0 * math.pi
KEY_TAG = 0x6B657921     # counter word 3 of the key derivation ("key!"), so a key is never a data block


def philox_round(c0, c1, c2, c3, k0, k1):
    """One Philox4x32 round: two 32×32→64 multiplies, then the S-box-free word permutation."""
    p0 = PHILOX_M0 * c0
    p1 = PHILOX_M1 * c2
    return ((p1 >> 32) & M32) ^ c1 ^ k0, p1 & M32, ((p0 >> 32) & M32) ^ c3 ^ k1, p0 & M32


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) and key (k0, k1), every word in [0, 2**32): four words in [0, 2**32)."""
    c0 = int(c0) & M32
    c1 = int(c1) & M32
    c2 = int(c2) & M32
    c3 = int(c3) & M32
    k0 = int(k0) & M32
    k1 = int(k1) & M32
    c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    for _ in range(PHILOX_ROUNDS - 1):
        k0 = (k0 + PHILOX_W0) & M32
        k1 = (k1 + PHILOX_W1) & M32
        c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
    return c0, c1, c2, c3


def stream_key(seed, stream):
    """The Philox key (k0, k1) of one stream (e.g. an opportunity id) of a run seed; both are int64 (any sign)."""
    seed = int(seed)
    stream = int(stream)
    x0, x1, x2, x3 = philox4x32(stream & M32, (stream >> 32) & M32, 0, KEY_TAG, seed & M32, (seed >> 32) & M32)
    return x0 ^ x2, x1 ^ x3


def words_to_unit(hi, lo):
    """A float64 in the open interval (0, 1) from 53 bits of two 32-bit words: (k + 0.5)·2**-53."""
    bits = ((hi & M32) << 21) | ((lo & M32) >> 11)
    return (float(bits) + 0.5) * TWO_POW_M53


def uniform2(k0, k1, c0, c1, c2, c3):
    """Two independent uniforms in (0, 1) of counter (c0..c3) under key (k0, k1)."""
    x0, x1, x2, x3 = philox4x32(c0, c1, c2, c3, k0, k1)
    return words_to_unit(x0, x1), words_to_unit(x2, x3)


def uniform(k0, k1, c0, c1, c2, c3):
    """One uniform in (0, 1) (the first of `uniform2`)."""
    u, _ = uniform2(k0, k1, c0, c1, c2, c3)
    return u


def normal(k0, k1, c0, c1, c2, c3):
    """A standard normal (Box–Muller of `uniform2`; its second variate, the sin branch, is not used)."""
    u0, u1 = uniform2(k0, k1, c0, c1, c2, c3)
    return math.sqrt(-2.0 * math.log(u0)) * math.cos(TWO_PI * u1)


def exponential(k0, k1, c0, c1, c2, c3):
    """An exponential variate with mean 1 (inverse CDF; u < 1 so it is > 0 and finite)."""
    return -math.log(uniform(k0, k1, c0, c1, c2, c3))


def lognormal(k0, k1, c0, c1, c2, c3, mu, sigma):
    """exp(mu + sigma·Z), Z the `normal` of the same counter."""
    return math.exp(mu + sigma * normal(k0, k1, c0, c1, c2, c3))


# Dependency order for kernels/compile.build (a function calls only functions listed before it).
RNG_FUNCTIONS = (philox_round, philox4x32, stream_key, words_to_unit, uniform2, uniform, normal, exponential,
                 lognormal)
