"""One source, two targets: compile the plain-Python device functions for numba-CPU and numba-CUDA.

Each function is cloned with its globals rebound to the *compiled* versions (for the same target) of the
functions it calls, so `screen_cycle` calls the CPU `compose_hop` on the CPU and the CUDA one on the GPU.
"""
import types
from types import SimpleNamespace

from . import amm_v2, cycles

# Dependency order: a function may call only functions listed before it.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v2.compose_hop, amm_v2.cycle_out, amm_v2.optimal_input,
    cycles.find_state, cycles.screen_cycle, cycles.screen_pair,
)
CPU_DRIVERS = (cycles.screen_pairs_cpu,)
CUDA_DRIVERS = (cycles.screen_pairs_cuda,)


def rebind(fn, names: dict):
    """A copy of `fn` whose global names in `names` resolve to the given objects."""
    globals_ = dict(fn.__globals__)
    globals_.update(names)
    clone = types.FunctionType(fn.__code__, globals_, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__doc__ = fn.__doc__
    clone.__qualname__ = fn.__qualname__
    return clone


def _build(device_decorator, driver_decorator, drivers, extra=None):
    compiled = dict(extra or {})
    for fn in DEVICE_FUNCTIONS:
        compiled[fn.__name__] = device_decorator(rebind(fn, compiled))
    for fn in drivers:
        compiled[fn.__name__] = driver_decorator(rebind(fn, compiled))
    return SimpleNamespace(**{k: v for k, v in compiled.items() if k != "cuda"})


def python_functions():
    """The undecorated device functions with calls resolved to each other (the slow pure-Python reference)."""
    return _build(lambda f: f, lambda f: f, CPU_DRIVERS, extra={"prange": range})


def build_cpu():
    """numba.njit device functions and `prange`-parallel drivers."""
    import numba

    return _build(lambda f: numba.njit(f, fastmath=False),
                  lambda f: numba.njit(f, parallel=True, fastmath=False), CPU_DRIVERS)


def build_cuda(simulator: bool = False):
    """numba.cuda.jit(device=True) functions and `cuda.grid` kernels; `simulator` uses numba's CUDA simulator."""
    from numba import cuda

    jit = cuda.jit
    if simulator:
        import numba.cuda.simulator as sim

        jit = sim.jit
    # the simulator swaps every global that *is* numba.cuda for its fake module while a kernel runs
    return _build(lambda f: jit(device=True)(f), lambda f: jit(f), CUDA_DRIVERS, extra={"cuda": cuda})
