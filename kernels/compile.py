"""One source, two targets: compile the plain-Python device functions for numba-CPU and numba-CUDA.

Each function is cloned with its globals rebound to the *compiled* versions (for the same target) of the
functions it calls, so `screen_cycle` calls the CPU `compose_hop` on the CPU and the CUDA one on the GPU.

On the CPU, device functions are inlined into their callers at numba-IR level (`inline="always"`), except the
few big ones in NOT_INLINED. Why: a call numba does not inline passes every array argument with an atomic
reference-count increment and decrement; a screening kernel passes ~20 arrays per call, and that traffic made the
3-hop cycle kernel 5x slower (103 ms vs 19 ms per 1M paths on 2 cores; bench/suite.py). The big functions stay
calls because inlining them at each of their call sites multiplies compile time (30 s instead of 4 s).

CPU builds are cached on disk (`cache=True`, what the backtester and the synthetic market use). numba keys a
cached function on its own source file only, so an edit to a callee in another file would load stale machine
code; `cached_njit` keys it on every kernels/*.py file plus its own instead.
"""
import hashlib
import types
from pathlib import Path
from types import SimpleNamespace

from . import amm_v2, amm_v3, cycles

# Dependency order: a function may call only functions listed before it.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v2.compose_hop, amm_v2.cycle_out, amm_v2.optimal_profit, amm_v2.optimal_input,
    amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_swap_exact_in, amm_v3.v3_marginal_rate,
    amm_v3.v3_virtual_reserves,
    cycles.find_state, cycles.cycle_eval, cycles.screen_cycle, cycles.screen_pair,
)
CPU_DRIVERS = (cycles.screen_pairs_cpu,)
CUDA_DRIVERS = (cycles.screen_pairs_cuda,)

# Device functions the CPU build calls rather than inlines: loops called from several sites (see above).
NOT_INLINED = frozenset({
    "v3_next_tick_position", "v3_tick_at_sqrt_price", "v3_swap_exact_in", "cycle_eval",       # amm_v3, cycles
    "v3_swap_with_position", "jit_eval",                                                      # jit
    "pool_swap", "sandwich_eval",                                                             # sandwich
    "route_amount_out", "v3_input_to_price",                                                  # liquidation, cexdex
})


KERNEL_DIR = Path(__file__).resolve().parent


def source_stamp(extra_file: str | None = None, kernel_dir: Path = KERNEL_DIR) -> str:
    """SHA-256 over every kernels/*.py file (name and bytes) and `extra_file`: changes whenever any
    device function a cached kernel may have inlined or linked changes."""
    digest = hashlib.sha256()
    paths = sorted(Path(kernel_dir).glob("*.py"))
    if extra_file is not None and Path(extra_file).resolve() not in paths:
        paths.append(Path(extra_file).resolve())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cache_class():
    from numba.core import caching

    class Stamped:
        def get_source_stamp(self):
            return source_stamp(self._py_file)

    class InTree(Stamped, caching.InTreeCacheLocator):
        pass

    class UserWide(Stamped, caching.UserWideCacheLocator):   # when kernels/__pycache__ is not writable
        pass

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [InTree, UserWide]

    class KernelCache(caching.FunctionCache):
        _impl_class = Impl

    return KernelCache


def cached_njit(fn=None, **options):
    """`numba.njit(**options)` with a disk cache stamped by `source_stamp` (see the module docstring)."""
    import numba

    def wrap(f):
        dispatcher = numba.njit(f, **options)
        dispatcher._cache = _cache_class()(dispatcher.py_func)   # what Dispatcher.enable_caching sets
        return dispatcher

    return wrap if fn is None else wrap(fn)


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


def build(target: str, functions=None, cpu_drivers=(), cuda_drivers=(), cache: bool = False, inline: bool = True):
    """Compile device functions (dependency order; include the helpers they call, e.g. amm_v2's) and their
    drivers for `target`: "python" (the pure-Python reference), "cpu", "cuda" or "cudasim" (numba's CUDA
    simulator). No functions: the cycle-screening kernel; a strategy's kernel module passes its own.
    `cache` caches the CPU build on disk (`cached_njit`); `inline=False` compiles every CPU
    device function on its own (slower, but each one's typed signatures can be read, e.g. to build it for CUDA)."""
    if functions is None:
        functions, cpu_drivers, cuda_drivers = DEVICE_FUNCTIONS, CPU_DRIVERS, CUDA_DRIVERS
    functions = tuple(functions)
    if target == "python":
        return _build(lambda f: f, lambda f: f, cpu_drivers, extra={"prange": range}, functions=functions)
    if target == "cpu":
        import numba

        # an un-inlined build would share the inlined build's cache entries (same functions, slower code)
        njit = cached_njit if cache and inline else numba.njit

        def device(f):
            # CPython compiles a call with more than 30 arguments as f(*args), which numba cannot inline
            call = not inline or f.__name__ in NOT_INLINED or f.__code__.co_argcount > 30
            # numpy error model (the CUDA build's float semantics): a division by zero whose result a select
            # discards (amm_v2.optimal_profit) gives inf instead of raising
            return njit(f, fastmath=False, error_model="numpy", inline="never" if call else "always")

        return _build(device, lambda f: njit(f, parallel=True, fastmath=False, error_model="numpy"), cpu_drivers,
                      functions=functions)
    if target in ("cuda", "cudasim"):
        from numba import cuda

        jit = cuda.jit
        if target == "cudasim":
            import numba.cuda.simulator as sim

            jit = sim.jit
        # the simulator swaps every global that *is* numba.cuda for its fake module while a kernel runs
        return _build(lambda f: jit(device=True)(f), lambda f: jit(f), cuda_drivers, extra={"cuda": cuda},
                      functions=functions)
    raise ValueError(f"target = {target!r} (python, cpu, cuda or cudasim)")


def python_functions():
    """The undecorated device functions with calls resolved to each other (the slow pure-Python reference)."""
    return build("python")


def build_cpu(cache: bool = False):
    """The cycle-screening kernel for numba-CPU (`prange`-parallel driver)."""
    return build("cpu", cache=cache)


def build_cuda(simulator: bool = False):
    """The cycle-screening kernel for numba-CUDA (`cuda.grid` driver), or for numba's CUDA simulator."""
    return build("cudasim" if simulator else "cuda")
