"""One source, two targets: compile the plain-Python device functions for numba-CPU and numba-CUDA.

Each function is cloned with its globals rebound to the *compiled* versions (for the same target) of the
functions it calls, so `screen_cycle` calls the CPU `compose_hop` on the CPU and the CUDA one on the GPU.
"""
import types
from types import SimpleNamespace

from . import amm_v2, amm_v3, cycles

# Dependency order: a function may call only functions listed before it.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v2.compose_hop, amm_v2.cycle_out, amm_v2.optimal_input,
    amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_swap_exact_in, amm_v3.v3_marginal_rate,
    amm_v3.v3_virtual_reserves,
    cycles.find_state, cycles.cycle_eval, cycles.screen_cycle, cycles.screen_pair,
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


def _build(device_decorator, driver_decorator, drivers, extra=None, functions=None):
    compiled = dict(extra or {})
    for fn in DEVICE_FUNCTIONS if functions is None else functions:
        compiled[fn.__name__] = device_decorator(rebind(fn, compiled))
    for fn in drivers:
        compiled[fn.__name__] = driver_decorator(rebind(fn, compiled))
    return SimpleNamespace(**{k: v for k, v in compiled.items() if k != "cuda"})


def python_functions():
    """The undecorated device functions with calls resolved to each other (the slow pure-Python reference)."""
    return _build(lambda f: f, lambda f: f, CPU_DRIVERS, extra={"prange": range})


def build_cpu(cache: bool = False):
    """numba.njit device functions and `prange`-parallel drivers; `cache` caches the device functions on disk
    (the synthetic market's float pass uses them from its own cached numba code)."""
    import numba

    return _build(lambda f: numba.njit(f, fastmath=False, cache=cache),
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


def build(target: str, functions, cpu_drivers=(), cuda_drivers=()):
    """Compile any device functions (dependency order; include the helpers they call, e.g. amm_v2's) and their
    drivers for `target`: "python" (the pure-Python reference), "cpu", "cuda" or "cudasim". A strategy's kernel
    module lists its own functions and calls this (the cycle kernels use build_cpu / build_cuda above)."""
    functions = tuple(functions)
    if target == "python":
        return _build(lambda f: f, lambda f: f, cpu_drivers, extra={"prange": range}, functions=functions)
    if target == "cpu":
        import numba

        return _build(lambda f: numba.njit(f, fastmath=False), lambda f: numba.njit(f, parallel=True, fastmath=False),
                      cpu_drivers, functions=functions)
    if target in ("cuda", "cudasim"):
        from numba import cuda

        jit = cuda.jit
        if target == "cudasim":
            import numba.cuda.simulator as sim

            jit = sim.jit
        return _build(lambda f: jit(device=True)(f), lambda f: jit(f), cuda_drivers, extra={"cuda": cuda},
                      functions=functions)
    raise ValueError(f"target = {target!r} (python, cpu, cuda or cudasim)")
