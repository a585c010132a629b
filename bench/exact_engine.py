"""Exact Uniswap math: Python ints (gpubt.exact, the oracle) vs the u256 device functions (kernels/exact_uniswap.py)
built for the numba CPU, in ns per operation on one core.

Workloads (seeded, mainnet-sized numbers; none reverts): V2 getAmountOut (0.30 % fee), the amount chain of a 3-hop
V2 cycle, V3 SwapMath.computeSwapStep (exact in and out, both directions, targets up to 200 ticks away),
FullMath.mulDiv (V3-sized operands), the proven V2 cycle search, a whole V3 swap (UniswapV3Pool.swap's loop), the
input of a cycle with V3 hops (refine_mixed_input) and a sandwich's exact pricing (price_sandwich). Python: a loop
calling the oracle on prebuilt ints. Numba: the batch driver over limb arrays already packed (packing ints into
limbs is a host cost not counted here), compiled beforehand, run with --threads numba threads (default 1: per
core). Medians of --repeats; `--check` asserts both give the same values.

    python bench/exact_engine.py                  # 20,000 cases per op, 5 repeats
    python bench/exact_engine.py --n 100000 --check
    python bench/exact_engine.py --check --backend cuda --json bench_results/exact_engine_cuda.json   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

import sys

from common import machine, median_seconds, row  # bench/common.py (scripts run from bench/)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ (the search's cycles)

from gpubt.backend import resolve_backend
from gpubt.exact import v2, v3
from gpubt.kernels import u256


def _mainnet_amount(rng, lo=15, hi=21):
    return int(10 ** rng.uniform(lo, hi))


def get_amount_out_case(rng, n):
    rows = [(_mainnet_amount(rng), _mainnet_amount(rng, 18, 24), _mainnet_amount(rng, 18, 24), 3000)
            for _ in range(n)]
    python = (lambda: [v2.get_amount_out(*r) for r in rows])
    columns = [u256.to_limb_array([r[k] for r in rows]) for k in range(3)] + [np.full(n, 3000, np.int64)]
    outs = [np.zeros((n, 4), np.uint64), np.zeros(n, np.int64)]
    return python, "v2_get_amount_out", columns, outs, lambda res: [(v,) for v in res]


def cycle_case(rng, n, hops=3):
    paths = []
    for _ in range(n):
        r_in = [_mainnet_amount(rng, 18, 24) for _ in range(hops)]
        r_out = [_mainnet_amount(rng, 18, 24) for _ in range(hops)]
        paths.append((_mainnet_amount(rng, 16, 20), r_in, r_out, [3000] * hops))
    python = (lambda: [v2.path_amount_out(*p) for p in paths])
    reserve_in = np.stack([u256.to_limb_array(p[1]) for p in paths])
    reserve_out = np.stack([u256.to_limb_array(p[2]) for p in paths])
    columns = [u256.to_limb_array([p[0] for p in paths]), reserve_in, reserve_out, np.full((n, hops), 3000, np.int64)]
    outs = [np.zeros((n, 4), np.uint64), np.zeros(n, np.int64)]
    return python, "v2_paths_amount_out", columns, outs, lambda res: [(v,) for v in res]


def swap_step_case(rng, n):
    rows = []
    for _ in range(n):
        tick = rng.randint(-200_000, 200_000)
        current = v3.get_sqrt_ratio_at_tick(tick) + rng.randrange(1 << 40)
        target = v3.get_sqrt_ratio_at_tick(tick + rng.choice([-1, 1]) * rng.randint(1, 200))
        remaining = _mainnet_amount(rng, 12, 22) * rng.choice([1, -1])
        rows.append((current, target, _mainnet_amount(rng, 15, 24), remaining, rng.choice([500, 3000, 10000])))
    python = (lambda: [v3.compute_swap_step(*r) for r in rows])
    columns = [u256.to_limb_array([r[k] for r in rows]) for k in range(4)] + [np.array([r[4] for r in rows])]
    outs = [np.zeros((n, 4), np.uint64) for _ in range(4)] + [np.zeros(n, np.int64)]
    return python, "compute_swap_step", columns, outs, lambda res: [tuple(step) for step in res]


def mul_div_case(rng, n):
    rows = [(rng.getrandbits(rng.randint(96, 200)), rng.getrandbits(rng.randint(64, 160)),
             rng.getrandbits(rng.randint(104, 160)) | 1 << 103) for _ in range(n)]
    python = (lambda: [v3.mul_div(*r) for r in rows])
    columns = [u256.to_limb_array([r[k] for r in rows]) for k in range(3)]
    outs = [np.zeros((n, 4), np.uint64), np.zeros(n, np.int64)]
    return python, "mul_div", columns, outs, lambda res: [(v,) for v in res]


def search_case(rng, n):
    """The proven V2 cycle search (gpubt.exact.v2.optimal_input_search, one per trade re-priced) on the mainnet-shaped
    cycles of tests/kernels/test_exact_search.py, against kernels/exact_search.py through its batch driver."""
    from gpubt.strategies.exact_engine import pack_v2_cycles, scratch_limbs
    from gpubt.kernels.exact_search import SEARCH_ROWS
    from tests.kernels.test_exact_search import cycle_cases

    cases = cycle_cases(rng, n)
    python = (lambda: [v2.optimal_input_search(*c)[:2] for c in cases])
    r_in, r_out, fees = pack_v2_cycles([c[1] for c in cases], [c[2] for c in cases], [c[3] for c in cases], 3)
    columns = [np.array([c[0] for c in cases]), r_in, r_out, fees, 128,
               np.zeros((n, SEARCH_ROWS, scratch_limbs(3, max(r.bit_length() for c in cases for r in c[1] + c[2]))),
                        np.uint64)]
    outs = [np.zeros((n, 4), np.uint64), np.zeros((n, 4), np.uint64), np.zeros(n, np.bool_), np.zeros(n, np.int64),
            np.zeros(n, np.int64)]
    return python, ("exact_search", "v2_optimal_inputs"), columns, outs, lambda res: res


def v3_swap_case(rng, n, n_pools=20):
    """A whole V3 exact-input swap (UniswapV3Pool.swap's loop: word steps, tick crossings) on mainnet-shaped pools
    (0.30 %, spacing 60: one full-range position and 30 concentrated ones within ±6,000 ticks of the price, 1e15
    to 1e21 liquidity each), amounts of 1e15 to 1e22 raw units, both directions: the oracle's
    V3Pool.swap_outcome(commit=False) against kernels/exact_uniswap.py's v3_swaps (the hops' price limit; the
    price, tick and liquidity after computed on both sides)."""
    pools = []
    for _ in range(n_pools):
        pool = v3.V3Pool(fee=3000, tick_spacing=60)
        centre = rng.randint(-250_000, 250_000)
        pool.initialize(v3.get_sqrt_ratio_at_tick(centre) + rng.randrange(1 << 64))
        pool.mint(-887220, 887220, _mainnet_amount(rng, 17, 21))
        for _ in range(30):
            lower = (centre // 60 - rng.randint(1, 100)) * 60
            pool.mint(lower, lower + rng.randint(1, 200) * 60, _mainnet_amount(rng, 15, 21))
        pools.append(pool)
    rows = [(rng.randrange(n_pools), rng.random() < 0.5, _mainnet_amount(rng, 15, 22)) for _ in range(n)]

    def python():
        out = []
        for p, z, a in rows:
            o = pools[p].swap_outcome(z, a, v3.MIN_SQRT_RATIO + 1 if z else v3.MAX_SQRT_RATIO - 1, commit=False)
            out.append((o.amount0, -o.amount1) if z else (o.amount1, -o.amount0))
        return out

    from tests.kernels.test_exact_uniswap import v3_swap_columns, v3_swap_outputs

    limit = {True: v3.MIN_SQRT_RATIO + 1, False: v3.MAX_SQRT_RATIO - 1}
    columns = list(v3_swap_columns(pools, [(p, z, True, a, limit[z]) for p, z, a in rows]))
    return python, "v3_swaps", columns, list(v3_swap_outputs(n)), lambda res: res, (0, 1, 6)   # --check: amounts, status


def mixed_case(rng, n):
    """The input of a cycle with V3 hops (gpubt.exact.hops.refine_mixed_input and the ticks crossed, one per mixed
    trade re-priced) on the mainnet-shaped cycles of tests/kernels/test_exact_search.py with one to three hops made
    V3, against kernels/exact_search.py's mixed_inputs (the hop arrays packed beforehand)."""
    from gpubt.strategies.exact_engine import _mixed_oracle, pack_mixed_cycles
    from tests.kernels.test_exact_search import mixed_cycle_cases

    cases = mixed_cycle_cases(rng, n)
    def python():
        cache: dict = {}   # as the pricing's: a call's V3 pools built once per tick table
        return [_mixed_oracle(x, spec, cache) for x, spec in cases]

    columns = [np.array([c[0] for c in cases]), *pack_mixed_cycles([c[1] for c in cases], 3)]
    outs = [np.zeros((n, 4), np.uint64), np.zeros((n, 4), np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64)]
    return python, ("exact_search", "mixed_inputs"), columns, outs, lambda res: res


def sandwich_case(rng, n):
    """The exact pricing of a sandwich (gpubt.strategies.sandwich.price_sandwich: the front-run's bound by exact
    regula falsi on the victims' slack, the bundle at the candidates; one per sandwich re-priced) on mainnet-shaped
    V2 scenarios (99 % of a month partition's sandwiches are V2): 0.30 % pools of 1e20 to 1e24 reserves, one to three
    exact-input victims of 1e17 to 1e21 with 0.1–3 % slippage, the screen's hints within a few times the answer,
    100 ETH of capital; against kernels/exact_sandwich.py's sandwich_prices (the scenarios packed beforehand)."""
    from gpubt.exact import v2 as exact_v2
    from gpubt.strategies.exact_engine import pack_sandwiches
    from gpubt.strategies.sandwich import V2PoolFactory, price_sandwich

    scenarios = []
    for _ in range(n):
        r0, r1, zfo = _mainnet_amount(rng, 20, 24), _mainnet_amount(rng, 20, 24), rng.random() < 0.5
        r_in, r_out = (r0, r1) if zfo else (r1, r0)
        victims = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            amount = _mainnet_amount(rng, 17, 21)
            out = exact_v2.get_amount_out(amount, r_in, r_out, 3000)
            victims.append((amount, int(out * (1 - rng.choice([0.001, 0.005, 0.01, 0.03]))), False))
        x = victims[0][0] * rng.uniform(0.1, 3)
        scenarios.append((("v2", 3000, r0, r1), zfo, victims, x, x * rng.uniform(1, 3), 1e20))

    def python():
        out = []
        for spec, zfo, victims, x, a_max, capital in scenarios:
            r = price_sandwich(V2PoolFactory(spec[1], spec[2:]), zfo, victims, x, a_max, capital)
            out.append((0, 0, 0, 0) if r is None else (r[0], r[1], r[2]["front_out"], r[2]["back_out"]))
        return out

    columns = list(pack_sandwiches(scenarios))
    n_v = len(columns[16])
    outs = ([np.zeros((n, 4), np.uint64) for _ in range(4)] + [np.zeros(n, np.int64)]
            + [np.zeros((n_v, 4), np.uint64), np.zeros((n_v, 4), np.uint64), np.zeros(n_v, np.bool_),
               np.zeros(n, np.int64)])
    return python, ("exact_sandwich", "sandwich_prices"), columns, outs, lambda res: res, (0, 1, 2, 3, 8)


WORKLOADS = {
    "getAmountOut (V2)": get_amount_out_case,
    "3-hop V2 cycle amount chain": cycle_case,
    "computeSwapStep (V3)": swap_step_case,
    "mulDiv (FullMath)": mul_div_case,
    "V2 cycle exact search (proven)": search_case,
    "V3 swap, whole (exact in)": v3_swap_case,
    "mixed V2/V3 cycle input": mixed_case,
    "sandwich, exact (V2)": sandwich_case,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="cases per operation")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="numba threads (1: ns per op on one core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench_results/exact_engine.json")
    parser.add_argument("--check", action="store_true", help="assert numba's values equal the Python ints'")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "cuda"),
                        help="where the kernels run (cuda: a GPU; the arrays are uploaded once, outside the timing)")
    opts = parser.parse_args()

    import numba

    numba.set_num_threads(opts.threads)
    backend = resolve_backend(opts.backend)  # cuda without a GPU: BackendUnavailable says why
    label = "numba CPU" if backend.name == "cpu" else "CUDA"
    rows = []
    print(f"{'operation':30s} {'Python ints ns/op':>18s} {label + ' ns/op':>16s} {'ratio':>7s}")
    for name, make in WORKLOADS.items():
        python, driver, columns, outs, as_tuples, *checked = make(random.Random(f"{opts.seed}:{name}"), opts.n)

        module, driver = driver if isinstance(driver, tuple) else ("exact_uniswap", driver)

        on_device = [backend.to_device(a) if isinstance(a, np.ndarray) else a for a in (*columns, *outs)]

        def run_numba():
            backend.launch(module, driver, opts.n, on_device)

        run_numba()  # compile
        t_python = median_seconds(python, opts.repeats)
        t_numba = median_seconds(run_numba, opts.repeats)
        outs = [backend.to_host(a) for a in on_device[len(columns):]]
        if checked:   # which outputs --check compares (values..., status), where a driver has others too
            outs = [outs[i] for i in checked[0]]
        if opts.check and driver == "mixed_inputs":
            profit = [v - (1 << 256) if v >> 255 else v for v in u256.from_limb_array(outs[1])]
            values = list(zip(u256.from_limb_array(outs[0]), profit, outs[2].tolist()))
            assert not outs[3].any(), f"{name}: a cycle was handed back to the oracle"
            mismatches = sum(a != b for a, b in zip(values, python()))
            assert mismatches == 0, f"{name}: {mismatches} of {opts.n} values differ"
        elif opts.check and module == "exact_sandwich":   # none handed back; "no sandwich" is zeros on both sides
            assert not (outs[-1] > 1).any(), f"{name}: a scenario was handed back to the oracle"
            values = list(zip(*(u256.from_limb_array(o) for o in outs[:-1])))
            mismatches = sum(a != b for a, b in zip(values, python()))
            assert mismatches == 0, f"{name}: {mismatches} of {opts.n} values differ"
        elif opts.check and module == "exact_search":
            assert not outs[-1].any(), f"{name}: a search was handed back to the oracle"
            profit = [v - (1 << 256) if v >> 255 else v for v in u256.from_limb_array(outs[1])]
            values = list(zip(u256.from_limb_array(outs[0]), profit))
            mismatches = sum(a != b for a, b in zip(values, python()))
            assert mismatches == 0, f"{name}: {mismatches} of {opts.n} values differ"
        elif opts.check:
            assert not outs[-1].any(), f"{name}: a case reverted on the device"
            values = list(zip(*(u256.from_limb_array(o) for o in outs[:-1])))
            expected = as_tuples(python())
            mismatches = sum(a != b for a, b in zip(values, expected))
            assert mismatches == 0, f"{name}: {mismatches} of {opts.n} values differ"
        entry = row(name, "Python ints (gpubt.exact)", t_python, f"{label} (kernels/{module})", t_numba,
                    None, None)
        entry.update(n=opts.n, python_ns_per_op=t_python / opts.n * 1e9, numba_ns_per_op=t_numba / opts.n * 1e9)
        rows.append(entry)
        print(f"{name:30s} {entry['python_ns_per_op']:18,.0f} {entry['numba_ns_per_op']:16,.0f} "
              f"{entry['ratio']:6.1f}x")
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "exact_engine", "n": opts.n, "repeats": opts.repeats,
                               "threads": opts.threads, "backend": backend.name, "checked": opts.check,
                               "machine": machine(), "rows": rows},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
