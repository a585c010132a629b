"""kernels/exact_uniswap.py against the Python-int oracle gpubt.exact (v2, v3): values equal to the wei and reverts
equal as outcomes, on seeded random cases with the edges mixed in: the CPU build (GPUBT_U256_CASES cases each,
default 20,000; CI sets 200,000) and the CUDA build under numba's simulator (2,000 each);
every device function and batch driver compiled to sm_90 PTX (ptxas registers, stack and spills where ptxas is on
PATH)."""
from __future__ import annotations

import random
import shutil
import warnings

import numpy as np
import pytest

from gpubt.backend import Backend
from gpubt.exact import v2, v3
from gpubt.kernels import exact_uniswap as ex
from gpubt.kernels import u256
from gpubt.kernels.compile import build_kernel
from gpubt.strategies.exact_engine import pack_v3_swaps

from .test_u256 import (MAX256, TARGET_CASES, compare, print_ptx_report, ptx_report, ptxas_info, random_uint,
                        run_rows, u256_signatures)

FEES = (0, 1, 100, 500, 3000, 10000, 999_999)
V2_BAD_FEES = (-1, 1_000_001, -(2**40))
V3_REVERT = {ex.EXACT_DIV_ZERO: "", ex.EXACT_OVERFLOW: "", ex.EXACT_REVERT: "", ex.EXACT_TICK: "T"}


def outcome(values, status, reasons=None):
    """A device result as the oracle's outcome: ("ok", values) or ("revert", reason)."""
    if status == ex.EXACT_OK:
        return "ok", values
    return "revert", (reasons or {}).get(status, ex.STATUS_NAMES[status])


# ----------------------------------------------------------------------------------------------------------- V2
def v2_fee(rng):
    draw = rng.random()
    if draw < 0.01:
        return rng.choice(V2_BAD_FEES)
    if draw < 0.03:
        return 1_000_000
    return rng.choice(FEES) if draw < 0.6 else rng.randrange(1_000_000)


def v2_reserve(rng):
    return random_uint(rng, 112) if rng.random() < 0.9 else random_uint(rng)


def v2_out_rows(rng, n):
    return [(random_uint(rng, rng.choice([64, 112, 128, 256])), v2_reserve(rng), v2_reserve(rng), v2_fee(rng))
            for _ in range(n)]


def v2_in_rows(rng, n):
    rows = []
    for _ in range(n):
        r_in, r_out = v2_reserve(rng), v2_reserve(rng)
        amount = rng.randrange(r_out) if r_out and rng.random() < 0.7 else random_uint(rng, rng.choice([112, 256]))
        rows.append((amount, r_in, r_out, v2_fee(rng)))
    return rows


def v2_expect(oracle, amount, r_in, r_out, fee, amount_out: bool):
    """The oracle's outcome, with the device's documented limits: a fee outside [0, 10⁶] is BAD_FEE and an
    intermediate of 256 bits or more is OVERFLOW (the oracle's Python ints go on there)."""
    try:
        value = oracle(amount, r_in, r_out, fee)
    except ValueError as exc:  # the input checks, first on both
        return "revert", str(exc)
    except ZeroDivisionError:
        value = None
    if not 0 <= fee <= v2.FEE_DENOMINATOR:
        return "revert", "BAD_FEE"
    kept = v2.FEE_DENOMINATOR - fee
    if amount_out:
        if amount * kept > MAX256 or r_in * v2.FEE_DENOMINATOR + amount * kept > MAX256:
            return "revert", "OVERFLOW"
    else:
        if r_in * v2.FEE_DENOMINATOR > MAX256 or (r_out - amount) * kept > MAX256:
            return "revert", "OVERFLOW"
        if value is None:
            return "revert", "DIV_ZERO"
        if value > MAX256:
            return "revert", "OVERFLOW"
    return "ok", (value,)


# ------------------------------------------------------------------------------------------------------------ V3
def tick(rng):
    draw = rng.random()
    if draw < 0.05:
        return rng.choice([0, 1, -1, v3.MAX_TICK, -v3.MAX_TICK, v3.MAX_TICK + 1, -v3.MAX_TICK - 1, 2**31, -2**31,
                           2**63 - 1, -2**63])
    return rng.randint(-v3.MAX_TICK - 50, v3.MAX_TICK + 50) if draw < 0.5 else rng.randint(-v3.MAX_TICK,
                                                                                             v3.MAX_TICK)


def sqrt_price(rng, near=None):
    """Mostly a tick's price (or one within a few ticks of `near`), nudged by a few wei; sometimes any uint160."""
    draw = rng.random()
    if draw < 0.05:
        return rng.choice([0, 1, v3.MIN_SQRT_RATIO, v3.MAX_SQRT_RATIO, v3.MAX_SQRT_RATIO - 1, 2**96, 2**160 - 1])
    if draw < 0.2:
        return random_uint(rng, 160)
    if near is not None and v3.MIN_SQRT_RATIO <= near < v3.MAX_SQRT_RATIO and draw < 0.7:
        t = min(max(v3.get_tick_at_sqrt_ratio(near) + rng.randint(-300, 300), v3.MIN_TICK), v3.MAX_TICK)
    else:
        t = rng.randint(v3.MIN_TICK, v3.MAX_TICK)
    price = v3.get_sqrt_ratio_at_tick(t) + rng.randint(-3, 3)
    return min(max(price, v3.MIN_SQRT_RATIO), v3.MAX_SQRT_RATIO)


def liquidity(rng):
    return random_uint(rng, rng.choice([64, 96, 128]))


def amount(rng):
    return random_uint(rng, rng.choice([64, 96, 128, 160, 200, 256]))


def v3_expect(fn, *args):
    try:
        value = fn(*args)
    except v3.V3Revert as exc:
        return "revert", exc.reason
    return "ok", tuple(value) if isinstance(value, tuple) else (value,)


def price_rows(rng, n):
    return [(sqrt_price(rng), liquidity(rng), amount(rng), rng.random() < 0.5) for _ in range(n)]


def delta_rows(rng, n, liquidity_bits=128):
    rows = []
    for _ in range(n):
        a = sqrt_price(rng)
        liq = liquidity(rng) if rng.random() < 0.9 else random_uint(rng, liquidity_bits)
        rows.append((a, sqrt_price(rng, near=a), liq, rng.random() < 0.5))
    return rows


def delta1_rows(rng, n):
    """getAmount1Delta shifts no liquidity, so any uint256 liquidity is in its domain (and can overflow)."""
    return delta_rows(rng, n, liquidity_bits=256)


def swap_step_rows(rng, n):
    rows = []
    for _ in range(n):
        current = sqrt_price(rng)
        target = sqrt_price(rng, near=current)
        remaining = rng.choice([0, 1, -1, 2**255 - 1, -2**255]) if rng.random() < 0.03 else amount(rng) >> 1
        if rng.random() < 0.5:
            remaining = -remaining
        fee = rng.choice(FEES) if rng.random() < 0.7 else rng.randrange(1_000_000)
        rows.append((current, target, liquidity(rng), remaining, fee))
    return rows


def swap_step_expect(current, target, liq, remaining, fee):
    kind, values = v3_expect(v3.compute_swap_step, current, target, liq, remaining, fee)
    return kind, tuple(v & MAX256 for v in values) if kind == "ok" else values


def liquidity_delta_rows(rng, n):
    """(liquidity, liquidityNet as an int128's two's complement, negate): nets of both signs, near the edges too."""
    rows = []
    for _ in range(n):
        x = random_uint(rng, 128)
        if rng.random() < 0.1:
            y = rng.choice([1, -1]) * rng.choice([x, x + 1, x - 1, 2**127 - 1])
        else:
            y = rng.choice([1, -1]) * random_uint(rng, rng.choice([64, 127]))
        y = min(max(y, -(2**127) + 1), 2**127 - 1)
        rows.append((x, y % 2**256, rng.random() < 0.5))
    return rows


def liquidity_delta_expect(x, net, negate):
    """LiquidityMath.addDelta(x, ±net); 'LS' and 'LA' are both the device's EXACT_REVERT."""
    y = net - 2**256 if net >> 255 else net
    try:
        return "ok", (v3.add_delta(x, -y if negate else y),)
    except v3.V3Revert:
        return "revert", ""


# name: (input kinds, output kinds, case generator, expected outcome, device status -> oracle reason)
CASES = {
    "v2_get_amount_out": ("uuui", "ui", v2_out_rows,
                          lambda *row: v2_expect(v2.get_amount_out, *row, amount_out=True), None),
    "v2_get_amount_in": ("uuui", "ui", v2_in_rows,
                         lambda *row: v2_expect(v2.get_amount_in, *row, amount_out=False), None),
    "get_sqrt_ratio_at_tick": ("i", "ui", lambda rng, n: [(tick(rng),) for _ in range(n)],
                               lambda t: v3_expect(v3.get_sqrt_ratio_at_tick, t), V3_REVERT),
    "get_tick_at_sqrt_ratio": ("u", "ii", lambda rng, n: [(sqrt_price(rng),) for _ in range(n)],
                               lambda p: v3_expect(v3.get_tick_at_sqrt_ratio, p), {ex.EXACT_REVERT: "R"}),
    "get_next_sqrt_price_from_input": ("uuub", "ui", price_rows,
                                       lambda *row: v3_expect(v3.get_next_sqrt_price_from_input, *row), V3_REVERT),
    "get_next_sqrt_price_from_output": ("uuub", "ui", price_rows,
                                        lambda *row: v3_expect(v3.get_next_sqrt_price_from_output, *row), V3_REVERT),
    "get_amount0_delta": ("uuub", "ui", delta_rows, lambda *row: v3_expect(v3.get_amount0_delta, *row), V3_REVERT),
    "get_amount1_delta": ("uuub", "ui", delta1_rows, lambda *row: v3_expect(v3.get_amount1_delta, *row), V3_REVERT),
    "compute_swap_step": ("uuuui", "uuuui", swap_step_rows, swap_step_expect, V3_REVERT),
    "add_liquidity_delta": ("uub", "ui", liquidity_delta_rows, liquidity_delta_expect, {ex.EXACT_REVERT: ""}),
}


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(CASES))
def test_equals_the_oracle(target, name):
    ins, outs, generate, expect, reasons = CASES[name]
    rng = random.Random(f"{name}:{target}")
    rows = generate(rng, TARGET_CASES[target])
    got = [outcome(r[:-1], r[-1], reasons) for r in run_rows(Backend(target), "exact_uniswap", name, ins, outs, rows)]
    expected = [expect(*row) for row in rows]
    compare(rows, got, expected, f"{name} ({target})")
    kinds = {kind for kind, _ in expected}
    assert kinds == {"ok", "revert"}, f"{name}: the cases only exercise {kinds}"


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
def test_v2_path_amount_out(target):
    """The 1–3 hop amount chain (−1 fee pads a shorter path) equals gpubt.exact.v2.path_amount_out."""
    rng = random.Random(f"path:{target}")
    n, max_hops = TARGET_CASES[target], 3
    amounts, reserves_in, reserves_out, fees, expected = [], np.zeros((n, max_hops, 4), np.uint64), \
        np.zeros((n, max_hops, 4), np.uint64), np.full((n, max_hops), -1, np.int64), []
    for i in range(n):
        hops = rng.randint(1, max_hops)
        r_in = [random_uint(rng, 112) | 1 for _ in range(hops)]
        r_out = [random_uint(rng, 112) | 1 for _ in range(hops)]
        fee = [rng.choice(FEES) for _ in range(hops)]
        x = random_uint(rng, rng.choice([64, 112]))
        amounts.append(x)
        reserves_in[i, :hops] = u256.to_limb_array(r_in)
        reserves_out[i, :hops] = u256.to_limb_array(r_out)
        fees[i, :hops] = fee
        try:
            expected.append(("ok", v2.path_amount_out(x, r_in, r_out, fee)))
        except ValueError as exc:
            expected.append(("revert", str(exc)))
    out, status = np.zeros((n, 4), np.uint64), np.zeros(n, np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        Backend(target).launch("exact_uniswap", "v2_paths_amount_out", n,
                               (u256.to_limb_array(amounts), reserves_in, reserves_out, fees, out, status))
    got = [outcome(value, int(s)) for value, s in zip(u256.from_limb_array(out), status)]
    compare(list(range(n)), got, expected, f"v2_path_amount_out ({target})")
    assert sum(kind == "ok" and value > 0 for kind, value in got) > n // 2


# ------------------------------------------------------------------------------------------------- the V3 swap
V3_TIERS = ((100, 1), (500, 10), (3000, 60), (10000, 200))


def random_v3_pool(rng) -> v3.V3Pool:
    """An exact V3Pool with 0–10 minted positions around a random price (sometimes a full-range one, sometimes near
    the edges of the tick range); one in twenty has its in-range liquidity overwritten, so a crossing can leave
    uint128 ('LS' / 'LA' reverts)."""
    fee, spacing = rng.choice(V3_TIERS)
    centre = rng.choice([rng.randint(-200_000, 200_000), rng.randint(-v3.MAX_TICK, v3.MAX_TICK),
                         rng.choice([-1, 1]) * (v3.MAX_TICK - rng.randint(0, 3000)), 0])
    pool = v3.V3Pool(fee=fee, tick_spacing=spacing)
    low, high = v3.get_sqrt_ratio_at_tick(centre), v3.get_sqrt_ratio_at_tick(min(centre + 1, v3.MAX_TICK))
    pool.initialize(max(v3.MIN_SQRT_RATIO, min(rng.randint(low, high), v3.MAX_SQRT_RATIO - 1)))
    lo_tick, hi_tick = -(v3.MAX_TICK // spacing) * spacing, (v3.MAX_TICK // spacing) * spacing
    cap = pool.max_liquidity_per_tick
    for _ in range(rng.randint(0, 10)):
        if rng.random() < 0.15:
            lower, upper = lo_tick, hi_tick
        else:
            width = rng.choice([1, 3, 20, 300, 3000])
            lower = (pool.tick // spacing - rng.randint(0, width)) * spacing
            upper = lower + rng.randint(1, 2 * width) * spacing
            lower, upper = max(lower, lo_tick), min(upper, hi_tick)
            if lower >= upper:
                continue
        try:
            pool.mint(lower, upper, min(random_uint(rng, rng.choice([40, 80, 110, 128])) or 1, cap // 4) or 1)
        except v3.V3Revert:
            pass
    if rng.random() < 0.05:
        pool.liquidity = random_uint(rng, 128)
    return pool


def v3_swap_limit(rng, pool: v3.V3Pool, zero_for_one: bool) -> int:
    """Mostly the hops' limit (MIN_SQRT_RATIO + 1 / MAX_SQRT_RATIO − 1), else a price a few to a few thousand
    ticks away in the swap's direction; now and then one the contract refuses ('SPL': the pool's own price, the
    wrong side, the ratio bounds themselves)."""
    draw = rng.random()
    if draw < 0.5:
        return v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1
    if draw < 0.54:
        return rng.choice([pool.sqrt_price_x96, v3.MIN_SQRT_RATIO, v3.MAX_SQRT_RATIO, pool.sqrt_price_x96 + 1,
                           pool.sqrt_price_x96 - 1])
    reach = pool.tick_spacing * rng.choice([1, 5, 50, 2000])
    t = pool.tick - rng.randint(0, reach) if zero_for_one else pool.tick + rng.randint(1, reach)
    t = min(max(t, v3.MIN_TICK), v3.MAX_TICK)
    return min(max(v3.get_sqrt_ratio_at_tick(t) + rng.randint(-2, 2), v3.MIN_SQRT_RATIO + 1), v3.MAX_SQRT_RATIO - 1)


def v3_swap_rows(rng, n, pools_per=20):
    """(pools, rows): rows (pool index, zero_for_one, exact_in, amount, price limit) on `n // pools_per` random
    pools."""
    pools = [random_v3_pool(rng) for _ in range(max(1, n // pools_per))]
    rows = []
    for _ in range(n):
        p, zero_for_one = rng.randrange(len(pools)), rng.random() < 0.5
        rows.append((p, zero_for_one, rng.random() < 0.6, random_uint(rng, rng.choice([32, 64, 96, 128])),
                     v3_swap_limit(rng, pools[p], zero_for_one)))
    return pools, rows


def v3_swap_expected(pool: v3.V3Pool, zero_for_one: bool, exact_in: bool, amount: int, limit: int,
                     steps: list | None = None):
    """The oracle: ("ok", (input paid, output received, price, tick and liquidity after, ticks crossed)) or
    ("revert", ""), the pool left as it was; the swap loop's iterations appended to `steps` (0 for a revert)."""
    before = pool.sqrt_price_x96, pool.tick, pool.liquidity
    try:
        o = pool.swap_outcome(zero_for_one, amount if exact_in else -amount, limit)
    except v3.V3Revert:
        if steps is not None:
            steps.append(0)
        return "revert", ""
    after = pool.sqrt_price_x96, pool.tick, pool.liquidity
    pool.sqrt_price_x96, pool.tick, pool.liquidity = before   # all that swap_outcome commits
    if steps is not None:
        steps.append(o.steps)
    paid, received = (o.amount0, -o.amount1) if zero_for_one else (o.amount1, -o.amount0)
    return "ok", (paid, received, *after, o.ticks_crossed)


def v3_swap_columns(pools, rows):
    """exact_engine.pack_v3_swaps of rows (pool index, zero_for_one, exact_in, amount, price limit) on `pools`."""
    tables = []
    for pool in pools:
        ticks = [c * pool.tick_spacing for c in pool.initialized]
        tables.append((ticks, [pool.ticks[t].liquidity_net for t in ticks]))
    return pack_v3_swaps([(q.sqrt_price_x96, q.tick, q.liquidity, q.tick_spacing, q.fee, a, e, z, limit, tables[p])
                          for p, z, e, a, limit in rows for q in (pools[p],)])


def v3_swap_outputs(n):
    """The driver's outputs: paid, received, price, tick, liquidity, crossed, status."""
    return (np.zeros((n, 4), np.uint64), np.zeros((n, 4), np.uint64), np.zeros((n, 4), np.uint64),
            np.zeros(n, np.int64), np.zeros((n, 4), np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64))


def v3_swap_results(outs):
    """The driver's outputs as the oracle's outcomes (v3_swap_expected)."""
    paid, received, price, tick_after, liquidity_after, crossed, status = outs
    return [("ok", (a, b, p, int(t), q, int(c))) if s == ex.EXACT_OK else ("revert", "")
            for a, b, p, t, q, c, s in zip(u256.from_limb_array(paid), u256.from_limb_array(received),
                                           u256.from_limb_array(price), tick_after, u256.from_limb_array(liquidity_after),
                                           crossed, status)]


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
def test_v3_swap(target):
    """The whole swap, exact input and exact output (word by word, crossing initialized ticks, stopping at the
    price limit, the limit's own checks), equals the oracle's V3Pool.swap_outcome: input paid, output received, the
    price, tick and liquidity after, ticks crossed, and reverts."""
    rng = random.Random(f"v3_swap:{target}")
    n = TARGET_CASES[target]
    pools, rows = v3_swap_rows(rng, n if target == "cpu" else 2 * n)
    steps = []
    expected = [v3_swap_expected(pools[p], z, e, a, lim, steps) for p, z, e, a, lim in rows]
    if target == "cudasim":   # the simulator runs ~1,000× slower: swaps of up to 16 steps (the CPU build: any)
        keep = [i for i, k in enumerate(steps) if k <= 16][:n]
        rows, expected = [rows[i] for i in keep], [expected[i] for i in keep]
    assert len(rows) == n
    outs = v3_swap_outputs(n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        Backend(target).launch("exact_uniswap", "v3_swaps", n, (*v3_swap_columns(pools, rows), *outs))
    got = v3_swap_results(outs)
    compare(rows, got, expected, f"v3_swap ({target})")
    done = [(row, e[1]) for row, e in zip(rows, expected) if e[0] == "ok"]
    assert sum(e[0] == "revert" for e in expected) > 0
    assert sum(e[5] > 1 for _, e in done) > n // 20                                # swaps crossing several ticks
    hops_limit = {v3.MIN_SQRT_RATIO + 1, v3.MAX_SQRT_RATIO - 1}
    assert sum(e[2] == row[4] and row[4] not in hops_limit for row, e in done) > n // 20   # stopped at a limit
    # swaps ending inside a tick range: the tick after is getTickAtSqrtRatio's
    assert sum(e[3] != pools[row[0]].tick and e[2] != v3.get_sqrt_ratio_at_tick(e[3]) for row, e in done) > n // 5
    for exact_in in (True, False):   # both kinds, some stopped by the price limit
        mine = [(row[3], e[0] if exact_in else e[1]) for row, e in done if row[2] == exact_in]
        assert len(mine) > n // 4 and any(amount > got for amount, got in mine)


def test_swap_step_cases_cover_every_branch():
    """The swap-step cases hit both directions, exact in and out, reaching the target and stopping short."""
    seen = set()
    for current, target, liq, remaining, fee in swap_step_rows(random.Random("compute_swap_step:cpu"), 5000):
        try:
            step = v3.compute_swap_step(current, target, liq, remaining, fee)
        except v3.V3Revert:
            continue
        seen.add((current >= target, remaining >= 0, step.sqrt_ratio_next_x96 == target))
    assert len(seen) == 8, seen


# --------------------------------------------------------------------------------------------------------- PTX
def exact_signatures():
    from numba import types

    t, i, b = types.UniTuple(types.uint64, 4), types.int64, types.boolean
    limbs3, ticks = types.Array(types.uint64, 3, "C"), types.Array(types.int64, 1, "C")
    return {
        **u256_signatures(),
        "v2_get_amount_out": (t, t, t, i), "v2_get_amount_in": (t, t, t, i),
        "v2_path_amount_out": (t, limbs3, limbs3, types.Array(types.int64, 2, "C"), i),
        "mul_shr128": (t, types.UniTuple(types.uint64, 2)), "get_sqrt_ratio_at_tick": (i,), "fits_uint160": (t,),
        "next_sqrt_price_from_amount0_rounding_up": (t, t, t, b),
        "next_sqrt_price_from_amount1_rounding_down": (t, t, t, b),
        "get_next_sqrt_price_from_input": (t, t, t, b), "get_next_sqrt_price_from_output": (t, t, t, b),
        "get_amount0_delta": (t, t, t, b), "get_amount1_delta": (t, t, t, b), "get_amount_delta": (b, t, t, t, b),
        "next_sqrt_price": (t, t, t, b, b), "compute_swap_step": (t, t, t, t, i),
        "add_liquidity_delta": (t, t, b), "next_initialized_tick": (ticks, i, i, i, i, b),
        "get_tick_at_sqrt_ratio": (t,),
        "v3_swap": (t, t, i, i, i, t, b, b, t, ticks, types.Array(types.uint64, 2, "C"), i, i, b),
        "v3_quote": (t, t, i, i, i, t, b, b, ticks, types.Array(types.uint64, 2, "C"), i, i),
    }


def driver_signature(in_kinds, out_kinds):
    from numba import types

    column = {"u": types.Array(types.uint64, 2, "C"), "w": types.Array(types.uint64, 1, "C"),
              "i": types.Array(types.int64, 1, "C"), "b": types.Array(types.boolean, 1, "C")}
    return tuple(column[k] for k in in_kinds + out_kinds)


@pytest.mark.slow
def test_every_exact_function_and_driver_compiles_to_ptx(monkeypatch):
    """Each device function to an sm_90 .func and each batch driver to an .entry (assembled by ptxas: registers)."""
    from numba import cuda, types

    from gpubt.kernels.compile import rebind

    report = ptx_report(ex.EXACT_FUNCTIONS, exact_signatures(), monkeypatch,  # patches the device query
                        dependencies=u256.U256_FUNCTIONS)
    cuda_fns = build_kernel("exact_uniswap", "cuda")
    deps = {name: getattr(cuda_fns, name) for name in vars(cuda_fns)}
    deps["cuda"] = cuda
    ptxas = shutil.which("ptxas")
    by_name = {fn.__name__: fn for fn in ex.DEVICE_FUNCTIONS}
    limbs3, fees = types.Array(types.uint64, 3, "C"), types.Array(types.int64, 2, "C")
    kernels = [(name, u256.elementwise(by_name[name], ins, outs)[1], driver_signature(ins, outs))
               for name, (ins, outs) in ex.BATCH_KINDS.items()]
    kernels.append(("v2_paths_amount_out", ex.v2_paths_amount_out_cuda,
                    driver_signature("u", "") + (limbs3, limbs3, fees) + driver_signature("", "ui")))
    kernels.append(("v3_swaps", ex.v3_swaps_cuda, driver_signature("uuiiiubbuiiiu", "uuuiuii")))
    for name, driver, signature in kernels:
        ptx, _ = cuda.compile_ptx(rebind(driver, deps), signature, cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx, name
        report[f"{name}_cuda (kernel)"] = (len(ptx), ptxas_info(ptxas, f"the {name} driver", ptx))
    print_ptx_report(report)
    assert {fn.__name__ for fn in ex.EXACT_FUNCTIONS} <= set(report)

