"""The exact engine's batched entry points: `exact.engine=python` runs the Python-int oracle (gpubt.exact.v2),
`device` runs the same algorithm as a kernel on the backend (kernels/exact_search.py) and the oracle only for
what the kernel hands back (SEARCH_FALLBACK: ties and sizes it does not decide; the count is kept in `stats`).
Both give identical results (tests/exact/test_engine.py). It sits with the strategies, above the backend it
launches on."""
from __future__ import annotations

from collections import Counter

import numpy as np

from gpubt.exact import v2 as exact_v2

ENGINES = ("python", "device")
DEVICE_MIN = 2              # on the CPU a call with fewer searches runs the oracle: packing costs more than one search
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


def _reserve_bits(reserves_in, reserves_out, idx) -> int:
    """The bit length of the largest reserve of the cycles `idx` (the rows are sized to it: shorter loops)."""
    return max(max(r.bit_length() for r in reserves_in[t] + reserves_out[t]) for t in idx)


def _to_limbs(values: list[int]) -> np.ndarray:
    """Non-negative ints < 2²⁵⁶ as (n, 4) uint64 limbs (one bytes join: ~10× a shift-and-mask per limb)."""
    return np.frombuffer(b"".join(v.to_bytes(32, "little") for v in values), "<u8").reshape(-1, 4).astype(np.uint64)


def _from_limbs(limbs: np.ndarray, signed: bool = False) -> list[int]:
    raw = np.ascontiguousarray(limbs, "<u8").tobytes()
    return [int.from_bytes(raw[32 * i:32 * i + 32], "little", signed=signed) for i in range(len(limbs))]


def v2_optimal_inputs(backend, x_float, reserves_in, reserves_out, fees_ppm, engine: str = "device",
                      window: int = 128) -> list[tuple[int, int, bool, int]]:
    """optimal_input_search of every cycle (lists of per-hop ints): [(amount_in, profit, proven, evaluations)]."""
    if engine not in ENGINES:
        raise ValueError(f"exact.engine={engine!r}: choose one of {', '.join(ENGINES)}")
    n = len(x_float)
    if engine == "python" or n == 0 or (n < DEVICE_MIN and backend.name == "cpu"):
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
                np.zeros((m, SEARCH_ROWS, scratch_limbs(hops, _reserve_bits(reserves_in, reserves_out, idx))),
                         np.uint64),
                np.zeros((m, 4), np.uint64), np.zeros((m, 4), np.uint64), np.zeros(m, np.bool_),
                np.zeros(m, np.int64), np.zeros(m, np.int64))
        dev = tuple(backend.to_device(a) if isinstance(a, np.ndarray) else a for a in args)
        if backend.name == "cpu" and m <= SERIAL_MAX:  # a parallel launch costs ~30 µs: more than a few searches
            row = backend.compiled("exact_search").v2_optimal_input_row
            for j in range(m):
                row(j, *dev)
        else:
            backend.launch("exact_search", "v2_optimal_inputs", m, dev)
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
