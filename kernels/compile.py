"""One source, two targets: compile the plain-Python device functions for numba-CPU and numba-CUDA.

`build_kernel(name, target)` compiles a registered kernel module from its declaration (gpubt.kernels.REGISTRY);
`build` compiles any functions and drivers (tests' own kernels).

Each function is cloned with its globals rebound to the *compiled* versions (for the same target) of the
functions it calls, so `screen_cycle` calls the CPU `compose_hop` on the CPU and the CUDA one on the GPU.

On the CPU, device functions are inlined into their callers at numba-IR level (`inline="always"`), except the
few big ones in NOT_INLINED. Why: a call numba does not inline passes every array argument with an atomic
reference-count increment and decrement; a screening kernel passes ~20 arrays per call, and that traffic made the
3-hop cycle kernel 5x slower (103 ms vs 19 ms per 1M paths on 2 cores; bench/suite.py). The big functions stay
calls because inlining them at each of their call sites multiplies compile time (30 s instead of 4 s).
A call with more than 30 arguments is one numba cannot inline (CPython passes them as f(*args)), and the strategy
drivers call their per-item function with 32-41; so the CPU build pastes that function's body into the driver's
prange loop instead (`paste_item`: the CEX-DEX kernel ran ~9x faster on the month's launches, bench/strategy_kernels.py).

CPU builds are cached on disk (`cache=True`, what the backtester and the synthetic market use). numba keys a
cached function on its own source file only, so an edit to a callee in another file would load stale machine
code; `cached_njit` keys it on every kernels/*.py file plus its own instead.
"""
import ast
import hashlib
import importlib
import inspect
import textwrap
import types
from pathlib import Path
from types import SimpleNamespace

from . import REGISTRY

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


def _parsed(fn) -> ast.FunctionDef:
    """fn's definition as an AST whose line numbers are those of its source file."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    ast.increment_lineno(tree, fn.__code__.co_firstlineno - 1)
    return tree.body[0]


class _ReturnToContinue(ast.NodeTransformer):
    def visit_Return(self, node):
        return ast.copy_location(ast.Continue(), node)


def paste_item(driver, functions):
    """`driver` — `for i in prange(n): item(i, <its own parameters>)` — with `item`'s body pasted into the loop
    (a bare `return` becomes `continue`), when that call has more than 30 arguments (see the module docstring).
    The driver unchanged when it has another shape, or when a `return` of the item sits inside a loop of its own."""
    dfn = _parsed(driver)
    body = [b for b in dfn.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.For) or len(body[0].body) != 1:
        return driver
    loop = body[0]
    call = loop.body[0].value if isinstance(loop.body[0], ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and len(call.args) > 30
            and not call.keywords and all(isinstance(a, ast.Name) for a in call.args)):
        return driver
    item = next((f for f in functions if f.__name__ == call.func.id and f.__module__ == driver.__module__), None)
    if item is None:
        return driver
    ifn = _parsed(item)
    params = [a.arg for a in ifn.args.args]
    passed = [a.id for a in call.args]
    if (params[1:] != passed[1:] or ifn.args.vararg or ifn.args.kwarg or ifn.args.defaults
            or not isinstance(loop.target, ast.Name) or passed[0] != loop.target.id):
        return driver
    stmts = [b for b in ifn.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    for node in ast.walk(ast.Module(body=stmts, type_ignores=[])):
        if isinstance(node, ast.Return) and node.value is not None:
            return driver
        if isinstance(node, (ast.For, ast.While)) and any(isinstance(n, ast.Return) for n in ast.walk(node)):
            return driver
    if params[0] != loop.target.id:  # the item names its index otherwise
        stmts.insert(0, ast.Assign([ast.Name(params[0], ast.Store())], ast.Name(loop.target.id, ast.Load()),
                                   lineno=loop.lineno))
    loop.body = [_ReturnToContinue().visit(b) for b in stmts]
    dfn.decorator_list = []
    module = ast.fix_missing_locations(ast.Module(body=[dfn], type_ignores=[]))
    namespace = {}
    exec(compile(module, inspect.getsourcefile(driver), "exec"), dict(driver.__globals__), namespace)
    pasted = namespace[dfn.name]
    pasted.__qualname__ = driver.__qualname__
    pasted.__module__ = driver.__module__
    return pasted


def _build(device_decorator, driver_decorator, drivers, functions, extra=None):
    compiled = dict(extra or {})
    for fn in functions:
        compiled[fn.__name__] = device_decorator(rebind(fn, compiled))
    for fn in drivers:
        compiled[fn.__name__] = driver_decorator(rebind(fn, compiled))
    return SimpleNamespace(**{k: v for k, v in compiled.items() if k != "cuda"})


def build(target: str, functions, cpu_drivers=(), cuda_drivers=(), cache: bool = False, inline: bool = True):
    """Compile device functions (dependency order; include the helpers they call, e.g. amm_v2's) and their
    drivers for `target`: "python" (the pure-Python reference), "cpu", "cuda" or "cudasim" (numba's CUDA
    simulator): a namespace of the compiled functions by name. A registered kernel module: `build_kernel`.
    `cache` caches the CPU build on disk (`cached_njit`); `inline=False` compiles every CPU
    device function on its own (slower, but each one's typed signatures can be read, e.g. to build it for CUDA)."""
    functions = tuple(functions)
    if target == "python":
        return _build(lambda f: f, lambda f: f, cpu_drivers, extra={"prange": range}, functions=functions)
    if target == "cpu":
        import numba

        # cache entries do not record inlining, so a function compiled both ways would share one: the modules that
        # build un-inlined (INLINE = False: u256, exact_uniswap, wide, exact_search) share no function with the others
        def njit(f, **options):  # generated sources (kernels/u256.elementwise's drivers) have no file to key a cache on
            cached = cache and not f.__code__.co_filename.startswith("<")
            return (cached_njit if cached else numba.njit)(f, **options)

        from . import u256
        from .native import CPU_LEAVES

        def device(f):
            if f.__name__ in CPU_LEAVES and getattr(u256, f.__name__).__code__ is f.__code__:
                return CPU_LEAVES[f.__name__]  # the CPU's own instructions for u256's 64-bit leaves (kernels/native.py)
            # CPython compiles a call with more than 30 arguments as f(*args), which numba cannot inline
            call = not inline or f.__name__ in NOT_INLINED or f.__code__.co_argcount > 30
            # numpy error model (the CUDA build's float semantics): a division by zero whose result a select
            # discards (amm_v2.optimal_profit) gives inf instead of raising
            return njit(f, fastmath=False, error_model="numpy", inline="never" if call else "always")

        if inline:
            cpu_drivers = tuple(paste_item(d, functions) for d in cpu_drivers)
        # parallel only where a driver has a prange loop: numba warns about a serial one (screen_pairs_serial_cpu)
        return _build(device, lambda f: njit(f, parallel="prange" in f.__code__.co_names, fastmath=False,
                                             error_model="numpy"), cpu_drivers, functions=functions)
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


def kernel_module(name: str):
    """kernels/<name>.py, a module of the REGISTRY (kernels/__init__.py says what it declares)."""
    if name not in REGISTRY:
        raise ValueError(f"kernels/{name}.py is not a registered kernel module; register it in "
                         f"gpubt.kernels.REGISTRY (now: {', '.join(REGISTRY)})")
    return importlib.import_module(f"{__package__}.{name}")


def build_kernel(name: str, target: str, cache: bool = False):
    """kernels/<name>.py compiled for `target` from its declaration (DEVICE_FUNCTIONS, DRIVERS, INLINE) by `build`;
    `cache`: the CPU build on disk. gpubt.backend.Backend.compiled is this, built once per process."""
    module = kernel_module(name)
    cpu_drivers = tuple(cpu for cpu, _ in module.DRIVERS)
    cuda_drivers = tuple(cuda for _, cuda in module.DRIVERS)
    return build(target, module.DEVICE_FUNCTIONS, cpu_drivers, cuda_drivers, cache=cache,
                 inline=getattr(module, "INLINE", True))
