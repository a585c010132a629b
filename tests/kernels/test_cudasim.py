"""Every screening kernel's CUDA build, one thread per item under numba's CUDA simulator, equals its CPU build.

CPU and simulator both evaluate in IEEE float64 without FMA, so equality is exact here; on a real GPU a·b+c may
fuse into one FMA: tests/kernels/test_gpu.py compares with rtol 1e-12 there. LAUNCHES is the registry: a kernel
module, its driver, and random inputs from the kernel's own test module (the JIT kernel is checked with its pure-
Python build in test_jit.py, the auction's through run_auction in test_auction.py, the RNG's in test_rng.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from gpubt.backend import Backend
from gpubt.strategies.base import launch


@dataclass(frozen=True)
class Launch:
    """`inputs()`: the kernel's arguments without outputs; `outputs(n)`: fresh output arrays for n items;
    `run(backend, n, args)`: the launch (strategies.base.launch of kernels/<module>.py's <driver>_cpu/_cuda)."""

    module: str
    driver: str
    inputs: Callable
    outputs: Callable
    run: Callable | None = None


def _cycles(seed, v3_share):
    from .test_cycles import random_batch

    return Launch("cycles", "screen_pairs", lambda: random_batch(seed, n_pairs=200, v3_share=v3_share)[0],
                  lambda n: random_batch(seed, n_pairs=200, v3_share=v3_share)[1],
                  run=lambda backend, n, args: backend.screen_pairs(*args))  # the backtester's own launch


def _sandwich():
    from . import test_sandwich as t

    return Launch("sandwich", "screen_sandwich", lambda: t.random_scenarios(3, n=40, v3_share=0.5)[0], t.outputs)


def _cexdex():
    from . import test_cexdex as t

    return Launch("cexdex", "cexdex_pairs", lambda: t.random_args(3, n_pairs=200), t.outputs)


def _liquidation():
    from . import test_liquidation as t

    return Launch("liquidation", "liquidation_pairs", lambda: t.random_args(3, n_positions=30), t.outputs)


# 200 pairs: 2 blocks of 128 threads, the tail masked
LAUNCHES = {
    "cycles-v2-seed0": lambda: _cycles(0, 0.0),
    "cycles-v2-seed3": lambda: _cycles(3, 0.0),
    "cycles-mixed-seed5": lambda: _cycles(5, 0.6),
    "sandwich": _sandwich,
    "cexdex": _cexdex,
    "liquidation": _liquidation,
}


SLOW_LAUNCHES = {"sandwich"}  # ~1-2 min in the simulator: make test runs it, make test-fast skips it


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_LAUNCHES else n
                                  for n in LAUNCHES])
@pytest.mark.usefixtures("simulator_threads")
def test_cudasim_equals_cpu(name):
    case = LAUNCHES[name]()
    args = tuple(case.inputs())
    n = len(args[0])
    run = case.run or (lambda backend, n, a: launch(backend, case.module, case.driver, n, a))
    out_cpu, out_sim = case.outputs(n), case.outputs(n)
    run(Backend("cpu"), n, (*args, *out_cpu))
    run(Backend("cudasim"), n, (*args, *out_sim))
    assert len(out_cpu) == len(out_sim) > 0
    for a, b in zip(out_cpu, out_sim):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(a != 0) for a in out_cpu), "the inputs must give the kernel something to compute"
