"""Every device function and CUDA kernel of kernels/ compiles to sm_90 PTX (the H100/H200 target) without a GPU.

KERNELS is the registry: one entry per kernel module with its device functions, its CUDA driver, the CUDA build
the functions' calls bind to, and the argument types (written out; or, for the longest argument lists, typed from
real arguments of the driver). A new kernel module adds one entry; the test covers each of its functions and its
driver as a case of its own (a function shared by several kernels, e.g. amm_v3's, is checked once, under the first
kernel that lists it). kernels/u256.py and kernels/exact_uniswap.py have their own PTX tests (test_u256.py,
test_exact_uniswap.py), which also assemble the PTX with ptxas and report registers and spills."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import pytest

from gpubt.engine.competition import auction_kernels
from gpubt.kernels import auction, cexdex, cycles, jit, liquidation, rng, sandwich
from gpubt.kernels import compile as kc

from . import test_rng


@dataclass(frozen=True)
class Kernel:
    """One kernel module's entry: `cuda()` builds the CUDA functions the calls bind to; `signatures()` gives
    {name: argument types} of every function and the driver, or `driver_args()` real arguments of the driver
    (then the driver's types are theirs and each function's are the types the driver calls it with)."""

    module: str                          # kernels/<module>.py
    functions: tuple                     # its plain-Python device functions, in dependency order
    driver: Callable                     # its CUDA kernel, a plain function
    cuda: Callable
    signatures: Callable | None = None
    driver_args: Callable | None = None


def _types():
    """a1(t), a2(t) (C-contiguous 1-D and 2-D arrays of t), float64, int32, int64, boolean."""
    from numba import boolean, float64, int32, int64
    from numba.types import Array

    return (lambda t: Array(t, 1, "C")), (lambda t: Array(t, 2, "C")), float64, int32, int64, boolean


def _cycles_signatures():
    a1, a2, f8, i4, i8, b1 = _types()
    state = (a1(i8), a1(i8), a1(f8), a1(f8), a1(f8), a1(f8), a1(i4), a1(i4), a1(i8), a1(i4), a1(f8), a1(f8))
    screen_args = (a1(i8), a1(i4), a1(i4), a2(i4), a2(b1), a2(f8), a2(b1), a1(f8), a1(i4), *state, i8,
                   a2(f8), a1(f8), a1(f8), a1(f8), a1(f8))
    return {
        "v2_amount_out": (f8, f8, f8, f8),
        "compose_hop": (f8, f8, f8, f8, f8, f8),
        "cycle_out": (f8, f8, f8, f8),
        "optimal_input": (f8, f8, f8),
        "optimal_profit": (f8, f8, f8),
        "v3_next_tick_position": (i8, b1, a1(i4), i8, i8),
        "v3_tick_at_sqrt_price": (f8, i8, i8),
        "v3_swap_exact_in": (f8, b1, f8, f8, f8, i4, a1(i4), a1(f8), a1(f8), i8, i8, i8),
        "v3_marginal_rate": (b1, f8, f8),
        "v3_virtual_reserves": (b1, f8, f8),
        "find_state": (a1(i8), a1(i8), i4, i8),
        "cycle_eval": (f8, i4, i8, a2(i4), a2(b1), a2(f8), a2(b1), *state, i8),
        "screen_cycle": (i4, i8, a2(i4), a2(b1), a2(f8), a2(b1), *state, i8),
        "screen_pair": (i8, *screen_args),
        "screen_pairs_cuda": screen_args,
    }


def _rng_signatures():
    a1, a2, f8, _, i8, _ = _types()
    return {
        "philox_round": (i8,) * 6,
        "philox4x32": (i8,) * 6,
        "stream_key": (i8, i8),
        "words_to_unit": (i8, i8),
        "uniform2": (i8,) * 6,
        "uniform": (i8,) * 6,
        "normal": (i8,) * 6,
        "exponential": (i8,) * 6,
        "lognormal": (i8,) * 6 + (f8, f8),
        # the test kernel of tests/kernels/test_rng.py: the functions composed, int64 words, float64 outputs
        "draws_cuda": (i8, i8, a2(i8), a2(f8), a1(f8), a1(f8), a1(f8)),
    }


def _auction_signatures():
    a1, a2, f8, i4, i8, b1 = _types()
    population_args = (a1(f8), a1(f8), a1(f8), a2(f8), a1(f8))  # skill, latency, capital, focus, params
    outputs = (a1(f8),) * 6 + (a1(b1), a1(f8), a2(b1), a2(f8))
    kernel_args = (i8, i8, a1(i8), a1(f8), a1(i4), *population_args, *outputs)
    return {
        "competitor_bid": (i8, i8, i8, i8, i8, f8, i4, *population_args),
        "auction_scenario": (i8, i8, i8, i8, f8, i4, f8, *population_args),
        "our_bid_for": (i8, i8, i8, f8, i4, *population_args),
        "auction_opportunity": (i8, *kernel_args),
        "auction_cuda": kernel_args,
    }


def _cexdex_signatures():
    a1, a2, f8, i4, i8, b1 = _types()
    state = (a1(i8), a1(i8), a1(f8), a1(f8), a1(f8), a1(f8), a1(i4), a1(i4), a1(i8), a1(i4), a1(f8), a1(f8))
    pools = (a1(i4), a1(i4), a1(f8), a1(b1))
    outs = (a1(b1), a1(f8), a1(f8), a1(i8), a1(f8), a1(f8))
    pair_args = (a1(i4), a1(i8), a1(i4), *pools, *state, i8, a2(f8), a2(f8), a1(f8), a1(f8), a1(f8),
                 f8, f8, f8, f8, f8, *outs)
    return {
        "v2_input_to_rate": (f8, f8, f8, f8),
        "v3_input_to_price": (b1, f8, f8, f8, i4, a1(i4), a1(f8), a1(f8), i8, i8, f8, i8),
        "cexdex_trade": (i4, i8, *pools, *state[2:], i8, f8, f8, f8),
        "cexdex_pair": (i8, *pair_args),
        "cexdex_pairs_cuda": pair_args,
    }


def _liquidation_signatures():
    a1, a2, f8, i4, i8, b1 = _types()
    state = (a1(i8), a1(i8), a1(f8), a1(f8), a1(f8), a1(f8), a1(i4), a1(i4), a1(i8), a1(i4), a1(f8), a1(f8))
    routes = (a2(i4), a2(b1), a2(f8), a2(b1))
    pair_args = (a1(i4), a1(i4), a1(i4), a1(i4), a1(f8), a1(f8), a1(i8), a1(f8), a1(f8), a1(f8), a1(f8), a1(i8),
                 *routes, a1(f8), *state, i8, a2(f8), a1(f8), a1(f8), a1(f8), f8,
                 a1(f8), a1(f8), a1(f8), a1(i8), a1(f8), a1(f8))
    return {
        "route_amount_out": (i8, f8, i8, *routes, *state, i8),
        "liquidation_terms": (f8, f8, f8, f8, f8, f8, f8),
        "liquidation_pair": (i8, *pair_args),
        "liquidation_pairs_cuda": pair_args,
    }


def _jit_args():
    from .test_jit import jit_outputs, kernel_inputs

    kargs, _ = kernel_inputs(3, n=10)
    return (*kargs, *jit_outputs(kargs[0].shape[0]))


def _sandwich_args():
    from .test_sandwich import outputs, random_scenarios

    kargs, _, _ = random_scenarios(6, n=20, v3_share=0.5)
    return (*kargs, *outputs(kargs[0].shape[0]))


KERNELS = [
    Kernel("cycles", kc.DEVICE_FUNCTIONS, cycles.screen_pairs_cuda, kc.build_cuda, _cycles_signatures),
    # the RNG has no driver of its own: the test kernel of tests/kernels/test_rng.py composes its functions
    Kernel("rng", rng.RNG_FUNCTIONS, test_rng.draws_cuda, lambda: kc.build("cuda", test_rng.FUNCTIONS),
           _rng_signatures),
    Kernel("auction", auction.AUCTION_FUNCTIONS, auction.auction_cuda, lambda: auction_kernels("cuda"),
           _auction_signatures),
    Kernel("cexdex", cexdex.device_functions(), cexdex.cexdex_pairs_cuda, lambda: cexdex.build("cuda"),
           _cexdex_signatures),
    Kernel("liquidation", liquidation.device_functions(), liquidation.liquidation_pairs_cuda,
           lambda: liquidation.build("cuda"), _liquidation_signatures),
    Kernel("jit", jit.DEVICE_FUNCTIONS, jit.screen_jit_cuda, lambda: jit.build("cuda"), driver_args=_jit_args),
    Kernel("sandwich", sandwich.DEVICE_FUNCTIONS, sandwich.screen_sandwich_cuda, lambda: sandwich.build("cuda"),
           driver_args=_sandwich_args),
]
BY_MODULE = {k.module: k for k in KERNELS}


def _cases():
    """(kernel module, function name, is the driver) for every function once, and each kernel's driver."""
    seen, cases = set(), []
    for k in KERNELS:
        for fn in k.functions:
            if fn not in seen:
                seen.add(fn)
                cases.append(pytest.param(k.module, fn.__name__, False, id=f"{k.module}.{fn.__name__}"))
        cases.append(pytest.param(k.module, k.driver.__name__, True, id=f"{k.module}.{k.driver.__name__}"))
    return cases


def _typed_by_the_driver(k: Kernel, deps: dict) -> dict:
    """The driver compiled to PTX on real arguments (numba.typeof): the CUDA build's dispatchers in `deps` keep
    the types each device function was called with."""
    import numba
    from numba import cuda

    from gpubt.kernels.compile import rebind

    signature = tuple(numba.typeof(a) for a in k.driver_args())
    cuda.compile_ptx(rebind(k.driver, {**deps, "cuda": cuda}), signature, cc=(9, 0))
    out = {fn.__name__: next(iter(getattr(deps[fn.__name__], "overloads", {})), None) for fn in k.functions}
    out[k.driver.__name__] = signature
    return out


@functools.lru_cache(maxsize=None)
def _prepared(module: str):
    """(functions by name, the CUDA build's functions by name, signatures) of a kernel module, once per session
    (called under no_gpu_sm90)."""
    k = BY_MODULE[module]
    cuda_fns = k.cuda()
    deps = {name: getattr(cuda_fns, name) for name in vars(cuda_fns)}
    fns = {fn.__name__: fn for fn in (*k.functions, k.driver)}
    return fns, deps, k.signatures() if k.signatures else _typed_by_the_driver(k, deps)


@pytest.fixture
def no_gpu_sm90(monkeypatch):
    """compile_ptx of a kernel that calls device functions asks the current device for its compute capability;
    with no GPU this answers for it: sm_90."""
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = (9, 0)

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: _Device())


def test_registry_covers_every_kernel_module():
    """Every CUDA driver a kernels/*.py module lists (CUDA_DRIVERS) is a registry entry's: a new kernel cannot be
    left out of the PTX check."""
    import importlib
    from pathlib import Path

    import gpubt.kernels as pkg

    drivers = {fn for p in Path(pkg.__file__).parent.glob("*.py")
               for fn in getattr(importlib.import_module(f"gpubt.kernels.{p.stem}"), "CUDA_DRIVERS", ())}
    registered = {k.driver for k in KERNELS}
    assert len(drivers) >= 6 and drivers <= registered, {fn.__name__ for fn in drivers - registered}


@pytest.mark.parametrize("module, name, is_driver", _cases())
def test_compiles_to_sm90_ptx(no_gpu_sm90, module, name, is_driver):
    from numba import cuda

    from gpubt.kernels.compile import rebind

    fns, deps, signatures = _prepared(module)
    assert signatures.get(name), f"no signature for {module}.{name}"
    if is_driver:
        ptx, _ = cuda.compile_ptx(rebind(fns[name], {**deps, "cuda": cuda}), signatures[name], cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx
    else:
        ptx, _ = cuda.compile_ptx(rebind(fns[name], deps), signatures[name], device=True, cc=(9, 0))
        assert ".target sm_90" in ptx and ".func" in ptx, name
