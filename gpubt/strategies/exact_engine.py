"""The exact engine's batched entry points, the V2 cycle search, the input of cycles with V3 hops, the sandwich's
pricing and the whole V3 swap (CEX-DEX legs, liquidations' sales): `exact.engine=python` runs the Python-int oracle
(gpubt.exact.v2, gpubt.exact.hops, the sandwich's price_sandwich, V3Pool.swap_outcome), `device` runs the same
algorithm as a kernel on the backend (kernels/exact_search.py, kernels/exact_sandwich.py, kernels/exact_uniswap.py)
and the oracle only for what the kernel hands back (ties and sizes it does not decide;
the counts are kept in `stats`).
Both give identical results (tests/exact/test_engine.py). It sits with the strategies, above the backend it
launches on."""
from __future__ import annotations

from collections import Counter

import numpy as np

from gpubt.exact import v2 as exact_v2
from gpubt.exact import v3 as exact_v3
from gpubt.exact.hops import refine_mixed_input, ticks_crossed, v2_hop, v3_hop, v3_quote_pool

ENGINES = ("python", "device")
DEVICE_MIN = 2              # on the CPU a call with fewer items runs the oracle: packing costs more than one item
SEARCH_MIN = 1              # ... except the cycle searches: one V2 search the ordered pass prices costs ~118 µs in the
                            # oracle, ~57 µs packed and run (a mixed input ~50 µs and ~41 µs: docs/performance.md)
SERIAL_MAX = 4              # on the CPU, up to this many run one by one from here (waking numba's threads costs more)
CHUNK = 2048                # paths per launch: bounds the scratch array (CHUNK × SEARCH_ROWS × limbs × 8 bytes)
stats: Counter = Counter()  # device searches run / handed back to the oracle, for the run's log and the tests


def scratch_limbs(max_hops: int, reserve_bits: int = 112) -> int:
    """32-bit limbs per scratch row for cycles of up to max_hops hops with reserves below 2^reserve_bits: the climb
    quadratic's largest term, Kq·Mq·Np²·a², is below 2^(2·hops·(reserve_bits + 21) + 2·reserve_bits + 16) (each
    hop's K, M, N < 2^(reserve_bits + 21); a level is an amount below a reserve). A row too narrow is never wrong:
    the kernel hands that search back to the oracle (WIDE_OVERFLOW)."""
    return (2 * max_hops * (reserve_bits + 21) + 2 * reserve_bits + 16) // 32 + 2


def pack_v2_cycles(reserves_in, reserves_out, fees_ppm, hops: int):
    """The kernel's path arrays of cycles given as lists of per-hop ints: reserves (n, hops, 4) uint64 limbs, fees
    (n, hops) int64 with −1 past a cycle's end."""
    n = len(fees_ppm)
    r_in, r_out = np.zeros((n, hops, 4), np.uint64), np.zeros((n, hops, 4), np.uint64)
    fees = np.full((n, hops), -1, np.int64)
    if n == 0:
        return r_in, r_out, fees
    at = np.asarray([t * hops + h for t in range(n) for h in range(len(fees_ppm[t]))], np.int64)
    r_in.reshape(-1, 4)[at] = _to_limbs([r for cycle in reserves_in for r in cycle])
    r_out.reshape(-1, 4)[at] = _to_limbs([r for cycle in reserves_out for r in cycle])
    fees.reshape(-1)[at] = [f for cycle in fees_ppm for f in cycle]
    return r_in, r_out, fees


def _limb_bits(*limbs: np.ndarray) -> int:
    """The bit length of the largest value in arrays of (..., 4) uint64 limbs: the cycles' largest reserve, which
    the scratch rows are sized to (shorter loops); read from the packed limbs (a Python loop over the ints cost
    ~0.5 µs a cycle)."""
    top = 0
    for array in limbs:
        flat = array.reshape(-1, 4)
        for k in (3, 2, 1, 0):
            largest = int(flat[:, k].max()) if len(flat) else 0
            if largest:
                top = max(top, 64 * k + largest.bit_length())
                break
    return top


def _to_limbs(values: list[int]) -> np.ndarray:
    """Non-negative ints < 2²⁵⁶ as (n, 4) uint64 limbs (one bytes join: ~10× a shift-and-mask per limb)."""
    return np.frombuffer(b"".join(v.to_bytes(32, "little") for v in values), "<u8").reshape(-1, 4).astype(np.uint64)


def _from_limbs(limbs: np.ndarray, signed: bool = False) -> list[int]:
    raw = np.ascontiguousarray(limbs, "<u8").tobytes()
    return [int.from_bytes(raw[32 * i:32 * i + 32], "little", signed=signed) for i in range(len(limbs))]


def _oracle_only(backend, n: int, engine: str, minimum: int = DEVICE_MIN) -> bool:
    """Whether a call of n items runs the oracle alone: exact.engine=python, nothing to do, or on the CPU fewer than
    `minimum` (too few for packing to pay). An unknown engine name is refused."""
    if engine not in ENGINES:
        raise ValueError(f"exact.engine={engine!r}: choose one of {', '.join(ENGINES)}")
    return engine == "python" or n == 0 or (n < minimum and backend.name == "cpu")


def _run_rows(backend, driver: str, row: str, m: int, args: tuple, module: str = "exact_search") -> tuple:
    """The arguments on the backend after kernels/<module>.py's `driver` ran over their m rows; on the CPU, up to
    SERIAL_MAX rows run one by one through the device function `row` (a parallel launch costs ~30 µs)."""
    dev = tuple(backend.to_device(a) if isinstance(a, np.ndarray) else a for a in args)
    if backend.name == "cpu" and m <= SERIAL_MAX:
        fn = getattr(backend.compiled(module), row)
        for j in range(m):
            fn(j, *dev)
    else:
        backend.launch(module, driver, m, dev)
    return dev


def v2_optimal_inputs(backend, x_float, reserves_in, reserves_out, fees_ppm, engine: str = "device",
                      window: int = 128) -> list[tuple[int, int, bool, int]]:
    """optimal_input_search of every cycle (lists of per-hop ints): [(amount_in, profit, proven, evaluations)]."""
    n = len(x_float)
    if _oracle_only(backend, n, engine, SEARCH_MIN):
        return [exact_v2.optimal_input_search(float(x_float[t]), reserves_in[t], reserves_out[t], fees_ppm[t],
                                              window) for t in range(n)]
    from gpubt.kernels.exact_search import SEARCH_FALLBACK, SEARCH_ROWS

    hops = max(len(r) for r in reserves_in)
    results = []
    for lo in range(0, n, CHUNK):
        idx = range(lo, min(n, lo + CHUNK))
        m = len(idx)
        r_in, r_out, fees = pack_v2_cycles([reserves_in[t] for t in idx], [reserves_out[t] for t in idx],
                                           [fees_ppm[t] for t in idx], hops)
        args = (np.asarray([float(x_float[t]) for t in idx]), r_in, r_out, fees, window,
                np.zeros((m, SEARCH_ROWS, scratch_limbs(hops, _limb_bits(r_in, r_out))),
                         np.uint64),
                np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64), np.zeros(m, np.bool_),
                np.zeros(m, np.int64), np.zeros(m, np.int64))
        dev = _run_rows(backend, "v2_optimal_inputs", "v2_optimal_input_row", m, args)
        x, p, proven, evaluations, status = (backend.to_host(a) for a in dev[6:])
        xs, ps = _from_limbs(x), _from_limbs(p, signed=True)
        for j, t in enumerate(idx):
            if status[j] == SEARCH_FALLBACK:
                stats["fallback"] += 1
                results.append(exact_v2.optimal_input_search(float(x_float[t]), reserves_in[t], reserves_out[t],
                                                             fees_ppm[t], window))
            else:
                stats["device"] += 1
                results.append((xs[j], ps[j], bool(proven[j]), int(evaluations[j])))
    return results


def _mixed_oracle(x_float: float, spec: list, cache: dict) -> tuple[int, int, int]:
    """refine_mixed_input and the V3 ticks crossed at its input, in Python ints, for one cycle's hop specs."""
    hops = [v3_hop(v3_quote_pool(h[5], h[4], h[1], h[2], h[3], h[7], cache), h[6]) if h[0] == "v3"
            else v2_hop(h[1], h[2], h[3]) for h in spec]
    amount_in, profit = refine_mixed_input(float(x_float), hops)
    return amount_in, profit, ticks_crossed(hops, amount_in) if any(h[0] == "v3" for h in spec) else 0


def pack_mixed_cycles(cycles: list, hops: int) -> tuple:
    """The kernel's hop arrays (kernels/exact_search.py mixed_input) of cycles given as hop specs, ("v2", reserve
    in, reserve out, fee) or ("v3", sqrt price, liquidity, tick, spacing, fee, zero_for_one, table (ticks,
    liquidity nets, ...)): the V3 tables concatenated once each (by identity: the cycles of a point share them)."""
    n = len(cycles)
    v3 = np.zeros((n, hops), np.bool_)
    zfo = np.zeros((n, hops), np.bool_)
    fee = np.full((n, hops), -1, np.int64)
    tick, spacing, lo, hi = (np.zeros((n, hops), np.int64) for _ in range(4))
    a_vals, b_vals, at = [], [], []
    tables: dict = {}
    ticks, nets = [], []
    for t, cycle in enumerate(cycles):
        for h, spec in enumerate(cycle):
            at.append(t * hops + h)
            fee[t, h] = spec[5] if spec[0] == "v3" else spec[3]
            if spec[0] == "v3":
                # v3_quote_pool's rule: a pool of unknown spacing (0) has its fee tier's
                v3[t, h], zfo[t, h], tick[t, h] = True, spec[6], spec[3]
                spacing[t, h] = spec[4] or exact_v3.TICK_SPACINGS[spec[5]]
                a_vals.append(spec[1])
                b_vals.append(spec[2])
                lo[t, h], hi[t, h] = _pack_tables(tables, ticks, nets, spec[7])
            else:
                zfo[t, h] = True   # the V2 hop's direction is in which reserve is in and which out
                a_vals.append(spec[1])
                b_vals.append(spec[2])
    hop_a, hop_b = np.zeros((n, hops, 4), np.uint64), np.zeros((n, hops, 4), np.uint64)
    if at:
        hop_a.reshape(-1, 4)[at] = _to_limbs(a_vals)
        hop_b.reshape(-1, 4)[at] = _to_limbs(b_vals)
    return (v3, zfo, fee, hop_a, hop_b, tick, spacing, lo, hi, np.asarray(ticks or [0], np.int64),
            _to_limbs(nets) if nets else np.zeros((1, 4), np.uint64))


def mixed_inputs(backend, x_float, cycles: list, engine: str = "device") -> list[tuple[int, int, int]]:
    """refine_mixed_input of every cycle (hop specs: pack_mixed_cycles) from its float optimum: [(amount_in, exact
    gross profit, V3 ticks crossed at that input)]."""
    n = len(cycles)
    cache: dict = {}
    if _oracle_only(backend, n, engine, SEARCH_MIN):
        return [_mixed_oracle(x_float[t], cycles[t], cache) for t in range(n)]
    from gpubt.kernels.exact_search import SEARCH_FALLBACK

    hops = max(len(c) for c in cycles)
    results = []
    for start in range(0, n, CHUNK):
        idx = range(start, min(n, start + CHUNK))
        m = len(idx)
        args = (np.asarray([float(x_float[t]) for t in idx]), *pack_mixed_cycles([cycles[t] for t in idx], hops),
                np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64), np.zeros(m, np.int64), np.zeros(m, np.int64))
        dev = _run_rows(backend, "mixed_inputs", "mixed_input_row", m, args)
        x, p, crossed, status = (backend.to_host(a) for a in dev[12:])
        xs, ps = _from_limbs(x), _from_limbs(p, signed=True)
        for j, t in enumerate(idx):
            if status[j] == SEARCH_FALLBACK:
                stats["mixed_fallback"] += 1
                results.append(_mixed_oracle(x_float[t], cycles[t], cache))
            else:
                stats["mixed_device"] += 1
                results.append((xs[j], ps[j], int(crossed[j])))
    return results


def _pack_tables(tables: dict, ticks: list, nets: list, table) -> tuple[int, int]:
    """(lo, hi) of a V3 tick table (ticks, liquidity nets, ...) in the concatenated arrays, added once by identity."""
    if id(table) not in tables:
        tables[id(table)] = (len(ticks), len(ticks) + len(table[0]))
        ticks.extend(table[0])
        nets.extend(v % (1 << 256) for v in table[1])   # int128 → its 256-bit two's complement
    return tables[id(table)]


def pack_sandwiches(scenarios: list) -> tuple:
    """The kernel's inputs (kernels/exact_sandwich.py sandwich_prices) of scenarios (pool, zero_for_one, victims,
    x_float, a_max_float, capital_raw): pool ("v2", fee, reserve0, reserve1) or ("v3", fee, spacing, sqrt price,
    liquidity, tick, table); victims [(amount_in, amount_out_min or amountOut, exact_output)]."""
    n = len(scenarios)
    is_v3, fee, tick, spacing, lo, hi = (np.zeros(n, t) for t in (np.bool_, np.int64, np.int64, np.int64, np.int64,
                                                                    np.int64))
    a_vals, b_vals, v_amounts, v_limits, v_exact, v0, nv = [], [], [], [], [], [], []
    tables: dict = {}
    ticks, nets = [], []
    for t, (pool, _, victims, _, _, _) in enumerate(scenarios):
        fee[t] = pool[1]
        if pool[0] == "v3":
            is_v3[t], tick[t] = True, pool[5]
            spacing[t] = pool[2] or exact_v3.TICK_SPACINGS[pool[1]]   # v3_quote_pool's rule
            a_vals.append(pool[3])
            b_vals.append(pool[4])
            lo[t], hi[t] = _pack_tables(tables, ticks, nets, pool[6])
        else:
            a_vals.append(pool[2])
            b_vals.append(pool[3])
        v0.append(len(v_amounts))
        nv.append(len(victims))
        for amount, limit, exact_output in victims:
            v_amounts.append(amount)
            v_limits.append(limit)
            v_exact.append(bool(exact_output))
    col = np.asarray
    return (is_v3, fee, _to_limbs(a_vals), _to_limbs(b_vals), tick, spacing, lo, hi,
            col(ticks or [0], np.int64), _to_limbs(nets) if nets else np.zeros((1, 4), np.uint64),
            col([s[1] for s in scenarios], np.bool_), col(v0, np.int64), col(nv, np.int64),
            col([float(s[3]) for s in scenarios]), col([float(s[4]) for s in scenarios]),
            col([float(s[5]) for s in scenarios]), _to_limbs(v_amounts), _to_limbs(v_limits), col(v_exact, np.bool_))


def sandwich_prices(backend, scenarios: list, oracle, engine: str = "device") -> list:
    """price_sandwich of every scenario (pack_sandwiches): [(front-run, its bound, the bundle: front_out, back_out,
    victim_in, victim_out, reverted, crossed, gross, feasible) or None]; `oracle(t)` prices scenario t in Python ints
    (exact.engine=python, a call too small for a launch, and what the kernel hands back)."""
    n = len(scenarios)
    if _oracle_only(backend, n, engine):
        return [oracle(t) for t in range(n)]
    from gpubt.kernels.exact_sandwich import SANDWICH_FALLBACK, SANDWICH_NONE

    results = []
    for start in range(0, n, CHUNK):
        idx = range(start, min(n, start + CHUNK))
        m = len(idx)
        args = pack_sandwiches([scenarios[t] for t in idx])
        n_v = len(args[16])
        args += (np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64),
                 np.zeros((m, 4), np.uint64), np.zeros(m, np.int64), np.zeros((n_v, 4), np.uint64),
                 np.zeros((n_v, 4), np.uint64), np.zeros(n_v, np.bool_), np.zeros(m, np.int64))
        dev = _run_rows(backend, "sandwich_prices", "sandwich_price", m, args, module="exact_sandwich")
        front, front_max, front_out, back_out, crossed, paid, received, reverted, status = (
            backend.to_host(a) for a in dev[19:])
        front, front_max, front_out, back_out, paid, received = (
            _from_limbs(a) for a in (front, front_max, front_out, back_out, paid, received))
        v0 = args[11]
        for j, t in enumerate(idx):
            if status[j] == SANDWICH_FALLBACK:
                stats["sandwich_fallback"] += 1
                results.append(oracle(t))
                continue
            stats["sandwich_device"] += 1
            if status[j] == SANDWICH_NONE:
                results.append(None)
                continue
            vs = range(int(v0[j]), int(v0[j]) + len(scenarios[t][2]))
            results.append((front[j], front_max[j], dict(
                front_out=front_out[j], back_out=back_out[j], victim_in=[paid[k] for k in vs],
                victim_out=[received[k] for k in vs], reverted=[bool(reverted[k]) for k in vs],
                feasible=True, crossed=int(crossed[j]), gross=back_out[j] - front[j])))
    return results


def pack_v3_swaps(swaps: list) -> tuple:
    """kernels/exact_uniswap.py v3_swaps' inputs from rows (sqrt_price, tick, liquidity, tick_spacing, fee, amount,
    exact_in, zero_for_one, price limit, table): table = (initialized ticks, their liquidityNet), a pool's packed
    once however many rows use it (by identity)."""
    n = len(swaps)
    lo, hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
    tables: dict = {}
    ticks, nets = [], []
    for t, row in enumerate(swaps):
        lo[t], hi[t] = _pack_tables(tables, ticks, nets, row[9])
    col = np.asarray
    return (_to_limbs([r[0] for r in swaps]), _to_limbs([r[2] for r in swaps]), col([r[1] for r in swaps], np.int64),
            col([r[3] for r in swaps], np.int64), col([r[4] for r in swaps], np.int64), _to_limbs([r[5] for r in swaps]),
            col([r[6] for r in swaps], np.bool_), col([r[7] for r in swaps], np.bool_),
            _to_limbs([r[8] for r in swaps]), lo, hi, col(ticks or [0], np.int64),
            _to_limbs(nets) if nets else np.zeros((1, 4), np.uint64))


def v3_leg(batch, pools, pool: int, key: int, zero_for_one: bool, amount_in: int) -> tuple:
    """The pack_v3_swaps row of an exact-input swap of amount_in on V3 pool `pool` at `key` of `batch`, no price
    limit (the hops' limit)."""
    sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
    fee = int(pools.fee_ppm[pool])
    spacing = int(pools.tick_spacing[pool]) or exact_v3.TICK_SPACINGS[fee]   # v3_quote_pool's rule
    limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
    return (sqrt_price, tick, liquidity, spacing, fee, amount_in, True, zero_for_one, limit, table)


def v3_swap_oracle(row: tuple, cache: dict):
    """v3_swaps' oracle of one exact-input row (Python ints): (input paid, output received, ticks crossed), None on
    a revert."""
    sqrt_price, tick, liquidity, spacing, fee, amount_in, _, zero_for_one, limit, table = row
    quote = v3_quote_pool(fee, spacing, sqrt_price, liquidity, tick, table, cache)
    try:
        o = quote.swap_outcome(zero_for_one, amount_in, limit, commit=False)
    except exact_v3.V3Revert:
        return None
    return ((o.amount0, -o.amount1) if zero_for_one else (o.amount1, -o.amount0)) + (o.ticks_crossed,)


def v3_swaps(backend, swaps: list, oracle, engine: str = "device") -> list:
    """The whole V3 swap of every row (pack_v3_swaps): (input paid, output received, ticks crossed) each, or None
    where the pool reverts; `oracle(t)` swaps row t in Python ints (exact.engine=python, a call too small for a
    launch). The kernel decides every row (no hand-back): tests/kernels/test_exact_uniswap.py holds it equal."""
    n = len(swaps)
    if _oracle_only(backend, n, engine):
        return [oracle(t) for t in range(n)]
    from gpubt.kernels.exact_uniswap import EXACT_OK

    results = []
    for start in range(0, n, CHUNK):
        m = min(n, start + CHUNK) - start
        args = pack_v3_swaps(swaps[start:start + m])
        args += (np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64),
                 np.zeros(m, np.int64), np.zeros((m, 4), np.uint64), np.zeros(m, np.int64), np.zeros(m, np.int64))
        dev = _run_rows(backend, "v3_swaps", "v3_swap_row", m, args, module="exact_uniswap")
        paid, received, _, _, _, crossed, status = (backend.to_host(a) for a in dev[13:])
        paid, received = _from_limbs(paid), _from_limbs(received)
        stats["v3_swap_device"] += m
        results += [(paid[j], received[j], int(crossed[j])) if status[j] == EXACT_OK else None for j in range(m)]
    return results
