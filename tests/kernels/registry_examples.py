"""Example launches of every driver of gpubt.kernels.REGISTRY, from each kernel's own test module: test_ptx.py types
each driver's sm_90 PTX by them and test_cudasim.py runs them on the CPU and under numba's simulator.

EXAMPLES["<module>.<driver>"] maps a case id to a function returning (n items, the driver's arguments with fresh
output arrays): the same inputs on every call. A newly registered driver fails both tests until it has an entry."""
from __future__ import annotations

import random

import numpy as np

from gpubt.backend import Backend
from gpubt.kernels import REGISTRY
from gpubt.kernels.compile import kernel_module


class BuildBackend(Backend):
    """Backend `name` whose launches run `build` (kernels.compile.build of a test's own drivers, or a registered
    kernel's pure-Python build as "cpu") through the one launcher, Backend.launch."""

    def __init__(self, name: str, build):
        super().__init__(name)
        self.build = build

    def compiled(self, module: str):
        return self.build


def drivers() -> list[str]:
    """"<module>.<driver>" of every registered driver, in registry order."""
    return [f"{m}.{cpu.__name__.removesuffix('_cpu')}" for m in REGISTRY for cpu, _ in kernel_module(m).DRIVERS]


def _cycles(seed, v3_share):
    from .test_cycles import random_batch

    args, outs = random_batch(seed, n_pairs=200, v3_share=v3_share)  # 200 pairs: 2 blocks of 128, the tail masked
    return len(args[0]), (*args, *outs)


def _sandwich():
    from .test_sandwich import outputs, random_scenarios

    args = random_scenarios(3, n=40, v3_share=0.5)[0]
    return len(args[0]), (*args, *outputs(len(args[0])))


def _jit():
    from .test_jit import jit_outputs, kernel_inputs

    args = kernel_inputs(3, n=10)[0]
    return len(args[0]), (*args, *jit_outputs(len(args[0])))


def _liquidation():
    from .test_liquidation import outputs, random_args

    args = random_args(3, n_positions=30)
    return len(args[0]), (*args, *outputs(len(args[0])))


def _cexdex():
    from .test_cexdex import outputs, random_args

    args = random_args(3, n_pairs=200)
    return len(args[0]), (*args, *outputs(len(args[0])))


def _auction():
    """12 opportunities × 6 scenarios × 16 searchers: the simulator runs every scenario thread in Python."""
    from gpubt.kernels.auction import POLICY_SHADE
    from gpubt.market.auction import kernel_searchers

    from .test_auction import opportunities, params, population

    value, kind, ids = opportunities(12, seed=1)
    pop, n, record = population(16, seed=2), 12, 4
    outs = [np.zeros(n) for _ in range(6)] + [np.zeros(n, np.bool_), np.zeros(n), np.zeros((n, record), np.bool_),
                                              np.zeros((n, record))]
    p = params(POLICY_SHADE, 0.9, 1e14)
    return n, (99, 6, ids, value, kind, *kernel_searchers(pop, p), p, *outs)


def _auction_realized():
    """The realized outcomes alone of the same 12 opportunities (what the ordered pass launches per bundle)."""
    n, args = _auction()
    return n, (*args[:10], np.zeros(n), np.zeros(n, np.bool_))


def _exact_rows(name, n=130):
    """Driver `name` of kernels/exact_uniswap.py on n random cases of test_exact_uniswap.py or test_u256.py (mul_div)
    with the edges mixed in."""
    from . import test_exact_uniswap, test_u256

    if name in test_exact_uniswap.CASES:
        ins, outs, generate, _, _ = test_exact_uniswap.CASES[name]
    else:
        _, ins, outs, generate, _ = test_u256.CASES[name]
    rows = generate(random.Random(f"registry:{name}"), n)
    return n, (*(test_u256.to_column([row[k] for row in rows], kind) for k, kind in enumerate(ins)),
               *(test_u256.empty_column(n, kind) for kind in outs))


def _exact_paths(n=130, max_hops=3):
    """v2_paths_amount_out on 1–3 hop paths (−1 fee pads a shorter path)."""
    from gpubt.kernels import u256

    rng = np.random.default_rng(7)
    amounts = u256.to_limb_array([int(x) for x in rng.integers(1, 2**62, n)])
    reserves_in = np.zeros((n, max_hops, 4), np.uint64)
    reserves_out = np.zeros((n, max_hops, 4), np.uint64)
    fees = np.full((n, max_hops), -1, np.int64)
    for i in range(n):
        hops = int(rng.integers(1, max_hops + 1))
        reserves_in[i, :hops, :2] = rng.integers(1, 2**62, (hops, 2))
        reserves_out[i, :hops, :2] = rng.integers(1, 2**62, (hops, 2))
        fees[i, :hops] = rng.choice([0, 500, 3000, 10000], hops)
    return n, (amounts, reserves_in, reserves_out, fees, np.zeros((n, 4), np.uint64), np.zeros(n, np.int64))


def _exact_v3_swaps(n=24):
    """v3_swaps on random pools of test_exact_uniswap.py (minted positions, word-by-word swaps, price limits): swaps
    of at most 20 steps (the simulator is slow)."""
    from . import test_exact_uniswap as t

    pools, rows = t.v3_swap_rows(random.Random("registry:v3_swap"), 200)
    steps = []
    for p, z, e, a, limit in rows:
        t.v3_swap_expected(pools[p], z, e, a, limit, steps)
    rows = [r for r, k in zip(rows, steps) if k <= 20][:n]
    return n, (*t.v3_swap_columns(pools, rows), *t.v3_swap_outputs(n))


def _exact():
    from gpubt.kernels.exact_uniswap import BATCH_KINDS

    cases = {f"exact_uniswap.{name}": {"random": (lambda name=name: _exact_rows(name))} for name in BATCH_KINDS}
    cases["exact_uniswap.v2_paths_amount_out"] = {"random": _exact_paths}
    cases["exact_uniswap.v3_swaps"] = {"random": _exact_v3_swaps}
    return cases


def _exact_search(n=6):
    """v2_optimal_inputs on mainnet-shaped 2- and 3-hop cycles (tests/kernels/test_exact_search.py)."""
    import random

    from gpubt.strategies.exact_engine import pack_v2_cycles, scratch_limbs
    from gpubt.kernels.exact_search import SEARCH_ROWS

    from .test_exact_search import cycle_cases

    cases = cycle_cases(random.Random("registry"), n)
    r_in, r_out, fees = pack_v2_cycles([c[1] for c in cases], [c[2] for c in cases], [c[3] for c in cases], 3)
    return n, (np.array([c[0] for c in cases]), r_in, r_out, fees, 128,
               np.zeros((n, SEARCH_ROWS, scratch_limbs(3)), np.uint64), np.zeros((n, 4), np.uint64),
               np.zeros((n, 4), np.uint64), np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.int64))


def _exact_mixed(n=6):
    """mixed_inputs on cycles with V3 hops (tests/kernels/test_exact_search.py mixed_cycle_cases)."""
    import random

    from gpubt.strategies.exact_engine import pack_mixed_cycles

    from .test_exact_search import mixed_cycle_cases

    cases = mixed_cycle_cases(random.Random("registry:mixed"), n)
    return n, (np.array([c[0] for c in cases]), *pack_mixed_cycles([c[1] for c in cases], 3),
               np.zeros((n, 4), np.uint64), np.zeros((n, 4), np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64))


def _exact_sandwich(n=4):
    """sandwich_prices on V2 and V3 scenarios of tests/kernels/test_exact_sandwich.py (the V3 ones in the simulator
    take a few seconds each)."""
    import random

    from gpubt.strategies.exact_engine import pack_sandwiches

    from .test_exact_sandwich import _scenario

    rng = random.Random("registry:sandwich")
    scenarios = [_scenario(rng) for _ in range(n)]
    n_v = sum(len(s[2]) for s in scenarios)
    return n, (*pack_sandwiches(scenarios), *(np.zeros((n, 4), np.uint64) for _ in range(4)), np.zeros(n, np.int64),
               np.zeros((n_v, 4), np.uint64), np.zeros((n_v, 4), np.uint64), np.zeros(n_v, np.bool_),
               np.zeros(n, np.int64))


EXAMPLES = {
    "cycles.screen_pairs": {"v2-seed0": lambda: _cycles(0, 0.0), "v2-seed3": lambda: _cycles(3, 0.0),
                            "mixed-seed5": lambda: _cycles(5, 0.6)},
    "cycles.screen_pairs_serial": {"mixed-seed5": lambda: _cycles(5, 0.6)},
    "sandwich.screen_sandwich": {"mixed": _sandwich},
    "jit.screen_jit": {"random": _jit},
    "liquidation.liquidation_pairs": {"mixed": _liquidation},
    "cexdex.cexdex_pairs": {"mixed": _cexdex},
    "auction.auction": {"shade": _auction},
    "auction.realized": {"shade": _auction_realized},
    "exact_search.v2_optimal_inputs": {"cycles": _exact_search},
    "exact_search.mixed_inputs": {"cycles": _exact_mixed},
    "exact_sandwich.sandwich_prices": {"scenarios": _exact_sandwich},
    **_exact(),
}
