"""kernels/u256.py against Python ints: every device function on seeded random cases with the edges mixed in, on the
CPU build (GPUBT_U256_CASES cases each, default 20,000; CI sets 200,000) and the CUDA build under numba's simulator
(2,000 each), and every device function compiled to sm_90 PTX (with ptxas's stack and spill figures where ptxas is
on PATH). The column helpers here are shared with test_exact_uniswap.py."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import warnings

import numpy as np
import pytest

from gpubt.kernels import u256

from .registry_examples import BuildBackend

N_CASES = int(os.environ.get("GPUBT_U256_CASES", "20000"))
SIM_CASES = 2_000
TARGET_CASES = {"cpu": N_CASES, "cudasim": SIM_CASES}
MAX256 = 2**256 - 1
MAX64 = 2**64 - 1
EDGES = (0, 1, 2, 3, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**64, 2**64 + 1, 2**96, 2**112 - 1, 2**127, 2**128 - 1,
         2**128, 2**128 + 1, 2**160 - 1, 2**160, 2**192 - 1, 2**192, 2**255 - 1, 2**255, 2**256 - 2, MAX256)


def random_uint(rng: random.Random, bits: int = 256) -> int:
    """A uint of at most `bits` bits: an edge (one draw in five), else uniform in a random bit length, sometimes
    with a run of one bits (carries and borrows across limbs)."""
    draw = rng.random()
    if draw < 0.2:
        return rng.choice([e for e in EDGES if e < 2**bits] + [2**bits - 1])
    x = rng.getrandbits(rng.randint(1, bits))
    if draw < 0.3:
        x |= ((1 << rng.randint(0, bits)) - 1) & ~((1 << rng.randint(0, bits)) - 1)
    return x & (2**bits - 1)


# ------------------------------------------------------------------------------------------- columns of cases
def to_column(values, kind: str) -> np.ndarray:
    if kind == "u":
        return u256.to_limb_array(values)
    return np.array(values, dtype={"w": np.uint64, "i": np.int64, "b": np.bool_}[kind])


def from_column(column: np.ndarray, kind: str) -> list:
    if kind == "u":
        return u256.from_limb_array(column)
    if kind == "b":
        return [bool(v) for v in column]
    return [int(v) for v in column.tolist()]


def empty_column(n: int, kind: str) -> np.ndarray:
    if kind == "u":
        return np.zeros((n, 4), dtype=np.uint64)
    return np.zeros(n, dtype={"w": np.uint64, "i": np.int64, "b": np.bool_}[kind])


def run_rows(backend, module: str, name: str, in_kinds: str, out_kinds: str, rows: list) -> list:
    """Driver `name` (kernels/u256.elementwise) of `module` on `rows` (tuples of Python values), launched by
    `backend`: a tuple of outputs per row."""
    columns = [to_column([row[k] for row in rows], kind) for k, kind in enumerate(in_kinds)]
    outs = [empty_column(len(rows), kind) for kind in out_kinds]
    with warnings.catch_warnings():  # NumPy scalars (the simulator) warn where numba wraps mod 2**64 on purpose
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        backend.launch(module, name, len(rows), (*columns, *outs))
    return list(zip(*(from_column(o, kind) for o, kind in zip(outs, out_kinds))))


def compare(rows: list, got: list, expect: list, name: str) -> None:
    mismatches = [(row, g, e) for row, g, e in zip(rows, got, expect) if g != e]
    detail = "\n".join(f"  {row} -> {g}, expected {e}" for row, g, e in mismatches[:5])
    assert not mismatches, f"{name}: {len(mismatches)} mismatches in {len(rows)} cases, e.g.\n{detail}"


# ------------------------------------------------------------------------------------------------- the cases
def _normalized_divisor(rng):
    return (1 << 63) | rng.getrandbits(63) if rng.random() < 0.9 else rng.choice([1 << 63, MAX64])


def _div128_rows(rng, n):
    rows = []
    for _ in range(n):
        v = _normalized_divisor(rng)
        u1 = rng.choice([0, v - 1, rng.randrange(v)])
        rows.append((u1, random_uint(rng, 64), v))
    return rows


def _u512_rows(rng, n):
    """(lo, hi, d): mostly hi < d (a quotient that fits), some overflow and zero divisors."""
    rows = []
    for _ in range(n):
        d = random_uint(rng)
        draw = rng.random()
        hi = rng.randrange(d) if d and draw < 0.8 else random_uint(rng)
        rows.append((random_uint(rng), hi, d))
    return rows


def _mul_div_expect(a, b, d, round_up=False):
    if d == 0:
        return 0, u256.U256_DIV_ZERO
    q, r = divmod(a * b, d)
    q += 1 if round_up and r else 0
    return (q, u256.U256_OK) if q <= MAX256 else (0, u256.U256_OVERFLOW)


def _divmod512(lo, hi, d):
    if d == 0:
        return 0, 0, u256.U256_DIV_ZERO
    q, r = divmod(hi << 256 | lo, d)
    return (q, r, u256.U256_OK) if q <= MAX256 else (0, 0, u256.U256_OVERFLOW)


def _rows(*bits):
    return lambda rng, n: [tuple(random_uint(rng, b) for b in bits) for _ in range(n)]


def _rows_with_shift(rng, n):
    return [(random_uint(rng), rng.choice([0, 1, 63, 64, 65, 127, 128, 192, 255, 256, 300, rng.randrange(257)]))
            for _ in range(n)]


U = 256
# name: (device function, input kinds, output kinds, case generator, oracle on Python ints)
CASES = {
    "mul64": (u256.mul64, "ww", "ww", _rows(64, 64), lambda a, b: (a * b & MAX64, a * b >> 64)),
    "clz64": (u256.clz64, "w", "w", _rows(64), lambda a: (64 - a.bit_length(),)),
    "div128by64": (u256.div128by64, "www", "ww", _div128_rows, lambda u1, u0, v: divmod(u1 << 64 | u0, v)),
    "u256_add": (u256.u256_add, "uu", "uw", _rows(U, U), lambda a, b: ((a + b) & MAX256, (a + b) >> 256)),
    "u256_sub": (u256.u256_sub, "uu", "uw", _rows(U, U), lambda a, b: ((a - b) & MAX256, int(b > a))),
    "u256_neg": (u256.u256_neg, "u", "u", _rows(U), lambda a: (-a & MAX256,)),
    "u256_lt": (u256.u256_lt, "uu", "b", _rows(U, U), lambda a, b: (a < b,)),
    "u256_eq": (u256.u256_eq, "uu", "b", lambda rng, n: [(a, a if rng.random() < 0.3 else b) for a, b in
                                                        _rows(U, U)(rng, n)], lambda a, b: (a == b,)),
    "u256_is_zero": (u256.u256_is_zero, "u", "b", _rows(U), lambda a: (a == 0,)),
    "u256_shl": (u256.u256_shl, "ui", "u", _rows_with_shift, lambda a, n: ((a << n) & MAX256,)),
    "u256_shr": (u256.u256_shr, "ui", "u", _rows_with_shift, lambda a, n: (a >> n,)),
    "u256_clz": (u256.u256_clz, "u", "w", _rows(U), lambda a: (256 - a.bit_length(),)),
    "u256_mul_small": (u256.u256_mul_small, "uw", "uw", _rows(U, 64), lambda a, m: (a * m & MAX256, a * m >> 256)),
    "u256_mul": (u256.u256_mul, "uu", "uu", _rows(U, U), lambda a, b: (a * b & MAX256, a * b >> 256)),
    "u256_divmod": (u256.u256_divmod, "uu", "uui", _rows(U, U),
                    lambda a, d: (a // d, a % d, u256.U256_OK) if d else (0, 0, u256.U256_DIV_ZERO)),
    "u512_divmod": (u256.u512_divmod, "uuu", "uui", _u512_rows, _divmod512),
    "mul_div": (u256.mul_div, "uuu", "ui", _rows(U, U, U), _mul_div_expect),
    "mul_div_rounding_up": (u256.mul_div_rounding_up, "uuu", "ui", _rows(U, U, U),
                            lambda a, b, d: _mul_div_expect(a, b, d, round_up=True)),
    "div_rounding_up": (u256.div_rounding_up, "uu", "u", _rows(U, U),
                        lambda x, y: (-(-x // y) if y else 0,)),
}


def u256_build(target: str):
    return u256.build(target, drivers=[u256.elementwise(fn, ins, outs) for fn, ins, outs, _, _ in CASES.values()])


@pytest.fixture(scope="module")
def builds():
    return {}


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(CASES))
def test_against_python_ints(builds, target, name):
    fn, ins, outs, generate, oracle = CASES[name]
    if target not in builds:
        builds[target] = BuildBackend(target, u256_build(target))  # this file's drivers (u256 has none)
    rng = random.Random(f"{name}:{target}")
    rows = generate(rng, TARGET_CASES[target])
    got = run_rows(builds[target], "u256", name, ins, outs, rows)
    compare(rows, got, [oracle(*row) for row in rows], f"{name} ({target})")


def test_mul_div_exercises_every_outcome():
    """The mul_div cases hit results that fit, overflows and zero divisors (so the outcome comparison bites)."""
    rows = _rows(U, U, U)(random.Random("mul_div:cpu"), N_CASES)
    outcomes = {_mul_div_expect(*row)[1] for row in rows}
    assert outcomes == {u256.U256_OK, u256.U256_OVERFLOW, u256.U256_DIV_ZERO}


def test_limb_helpers_round_trip():
    rng = random.Random(1)
    values = [random_uint(rng) for _ in range(1000)]
    assert u256.from_limb_array(u256.to_limb_array(values)) == values
    assert [u256.from_limbs(u256.to_limbs(v)) for v in values] == values
    assert u256.from_limbs(u256.to_limbs(-1)) == MAX256 and u256.signed(MAX256) == -1
    with pytest.raises(ValueError, match="outside uint256"):
        u256.to_limbs(2**256)


# --------------------------------------------------------------------------------------------------------- PTX
def u256_signatures():
    from numba import types

    t, w, i = types.UniTuple(types.uint64, 4), types.uint64, types.int64
    return {
        "mul64": (w, w), "mac64": (w, w, w, w), "add_carry": (w, w, w), "sub_borrow": (w, w, w), "clz64": (w,),
        "div128by64": (w, w, w), "u256_is_zero": (t,), "u256_eq": (t, t),
        "u256_lt": (t, t), "u256_add": (t, t), "u256_sub": (t, t), "u256_neg": (t,), "u256_or": (t, t),
        "u256_shl": (t, w), "u256_shr": (t, i), "u256_clz": (t,), "u256_mul_small": (t, w), "u256_mul": (t, t),
        "knuth_step": (w, t, t), "u512_divmod": (t, t, t), "u256_divmod": (t, t), "mul_div": (t, t, t),
        "mul_div_rounding_up": (t, t, t), "div_rounding_up": (t, t), "u256_to_float": (t,),
    }


def ptx_report(functions, signatures, monkeypatch, dependencies=()) -> dict:
    """name -> (PTX bytes, ptxas stack/spill line or None): every function compiled to sm_90 PTX without a GPU
    (the compute capability answered as tests/kernels/test_ptx.py does), calls bound to the CUDA build of
    `dependencies` + `functions`, then assembled by ptxas if present."""
    from numba import cuda
    import numba.cuda.dispatcher as dispatcher

    from gpubt.kernels.compile import rebind

    class _Device:
        compute_capability = (9, 0)

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: _Device())
    cuda_fns = u256.build("cuda", tuple(dependencies) + tuple(functions))
    deps = {name: getattr(cuda_fns, name) for name in vars(cuda_fns)}
    ptxas = shutil.which("ptxas")
    report = {}
    for fn in functions:
        ptx, _ = cuda.compile_ptx(rebind(fn, deps), signatures[fn.__name__], device=True, cc=(9, 0))
        assert ".target sm_90" in ptx and ".func" in ptx, fn.__name__
        report[fn.__name__] = (len(ptx), ptxas_info(ptxas, fn.__name__, ptx, "-c"))
    return report


def ptxas_info(ptxas, name: str, ptx: str, *flags) -> str | None:
    """Assemble `ptx` for sm_90 with ptxas -v (asserting it is accepted); its register / stack lines, or None
    without ptxas."""
    if not ptxas:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, f"{name}.ptx")
        with open(source, "w") as f:
            f.write(ptx)
        done = subprocess.run([ptxas, "-arch=sm_90", *flags, "-v", "-o", os.devnull, source], text=True,
                              capture_output=True, timeout=300)
    assert done.returncode == 0, f"ptxas rejected {name}: {done.stderr[-2000:]}"
    return "; ".join(ln.split("ptxas info    : ")[-1].strip() for ln in done.stderr.splitlines()
                     if "registers" in ln or "stack frame" in ln) or None


def print_ptx_report(report: dict) -> None:
    print(f"\n{'device function':42s} {'PTX bytes':>10s}  ptxas")
    for name, (size, resources) in report.items():
        print(f"{name:42s} {size:10,d}  {resources or '(no ptxas on PATH)'}")


@pytest.mark.slow
def test_every_u256_function_compiles_to_ptx(monkeypatch):
    report = ptx_report(u256.U256_FUNCTIONS, u256_signatures(), monkeypatch)
    print_ptx_report(report)
    assert set(report) == {fn.__name__ for fn in u256.U256_FUNCTIONS}
