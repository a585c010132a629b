"""Every device function and driver of every registered kernel module (gpubt.kernels.REGISTRY) compiles to sm_90 PTX
(the H100/H200 target) without a GPU: a newly registered kernel is covered with no edit here.

Each CUDA driver is compiled on the argument types of its example launch (tests/kernels/registry_examples.py), its
calls bound to the module's CUDA build, and assembled by ptxas where it is on PATH (registers, spills); each device function on the types the module's drivers call it with, as a
case of its own under the first registered module that lists it (a function shared by several kernels, e.g.
amm_v3's, is checked once). A function no driver of that module calls gets its types from UNCALLED. u256 and exact
Uniswap functions are also assembled by ptxas (registers, spills) in test_u256.py and test_exact_uniswap.py."""
from __future__ import annotations

import functools
import importlib
import shutil
from pathlib import Path

import pytest
from numba import boolean, float64, int64, uint64
from numba.types import Array, UniTuple

import gpubt.kernels as pkg
from gpubt.kernels import REGISTRY
from gpubt.kernels.compile import build_kernel, kernel_module, rebind

from .registry_examples import EXAMPLES
from .test_u256 import ptxas_info

# ~8 minutes of one core (the exact engine's drivers take 1-2 minutes each to compile): `make test` and CI run it,
# `make test-fast` leaves it out, as it does test_u256.py's and test_exact_uniswap.py's PTX tests
pytestmark = pytest.mark.slow


_U256 = UniTuple(uint64, 4)

# Argument types of the device functions no driver of their (first) module calls: amm_v2's host-side helpers and the
# RNG's other draws (tests/kernels/test_rng.py runs them).
UNCALLED = {
    "cycle_out": (float64,) * 4,
    "optimal_input": (float64,) * 3,
    "uniform": (int64,) * 6,
    "exponential": (int64,) * 6,
    "lognormal": (int64,) * 6 + (float64, float64),
    # exact_uniswap's quote at the hops' price limit: exact_search's mixed cycles call it (v3_swaps calls v3_swap)
    "v3_quote": (_U256, _U256, int64, int64, int64, _U256, boolean, boolean, Array(int64, 1, "C"),
                 Array(uint64, 2, "C"), int64, int64),
}


def _cases():
    """(module, function name, is a driver) for every device function once, and every driver."""
    seen, cases = set(), []
    for module in REGISTRY:
        declared = kernel_module(module)
        for fn in declared.DEVICE_FUNCTIONS:
            if fn not in seen:
                seen.add(fn)
                cases.append(pytest.param(module, fn.__name__, False, id=f"{module}.{fn.__name__}"))
        for _, driver in declared.DRIVERS:
            cases.append(pytest.param(module, driver.__name__, True, id=f"{module}.{driver.__name__}"))
    return cases


@functools.lru_cache(maxsize=None)
def _prepared(module: str):
    """(PTX of each CUDA driver by name, each device function's argument types by name) of a registered module,
    once per session (called under no_gpu_sm90): the drivers compiled on their example launches' types leave the
    types they call each device function with in the CUDA build's dispatchers."""
    import numba
    from numba import cuda

    declared = kernel_module(module)
    cuda_build = build_kernel(module, "cuda")
    deps = {name: getattr(cuda_build, name) for name in vars(cuda_build)}
    driver_ptx = {}
    for cpu, driver in declared.DRIVERS:
        key = f"{module}.{cpu.__name__.removesuffix('_cpu')}"
        assert key in EXAMPLES, f"{key} has no example launch in tests/kernels/registry_examples.py"
        _, args = next(iter(EXAMPLES[key].values()))()
        signature = tuple(numba.typeof(a) for a in args)
        driver_ptx[driver.__name__], _ = cuda.compile_ptx(rebind(driver, {**deps, "cuda": cuda}), signature,
                                                          cc=(9, 0))
    signatures = {fn.__name__: next(iter(getattr(deps[fn.__name__], "overloads", {})), None)
                  or UNCALLED.get(fn.__name__) for fn in declared.DEVICE_FUNCTIONS}
    return driver_ptx, signatures, deps


@pytest.fixture
def no_gpu_sm90(monkeypatch):
    """compile_ptx of a kernel that calls device functions asks the current device for its compute capability;
    with no GPU this answers for it: sm_90."""
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = (9, 0)

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: _Device())


def test_every_kernel_module_is_registered():
    """Every kernels/*.py that declares DRIVERS is in REGISTRY: no kernel escapes the launcher and these tests."""
    declaring = {p.stem for p in Path(pkg.__file__).parent.glob("*.py")
                 if hasattr(importlib.import_module(f"gpubt.kernels.{p.stem}"), "DRIVERS")}
    assert declaring == set(REGISTRY), declaring ^ set(REGISTRY)


@pytest.mark.parametrize("module, name, is_driver", _cases())
def test_compiles_to_sm90_ptx(no_gpu_sm90, module, name, is_driver):
    from numba import cuda

    driver_ptx, signatures, deps = _prepared(module)
    if is_driver:   # a kernel entry: assembled for sm_90 by ptxas too where it is on PATH (registers, stack, spills)
        ptx = driver_ptx[name]
        assert ".entry" in ptx and ".target sm_90" in ptx
        print(f"\n{name}: {len(ptx):,d} bytes of PTX; ptxas: {ptxas_info(shutil.which('ptxas'), name, ptx)}")
        return
    assert signatures[name], (f"{module}.{name}: no driver of kernels/{module}.py calls it; add its argument types "
                              "to UNCALLED in tests/kernels/test_ptx.py")
    fn = next(f for f in kernel_module(module).DEVICE_FUNCTIONS if f.__name__ == name)
    ptx, _ = cuda.compile_ptx(rebind(fn, deps), signatures[name], device=True, cc=(9, 0))
    assert ".target sm_90" in ptx and ".func" in ptx, name
