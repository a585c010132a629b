"""Picks the compute target: `cpu` (numba, parallel), `cuda` (numba-cuda + cupy), `cudasim` (numba's CUDA
simulator on the host: the CUDA code path, slowly, for tests) or `auto` (cuda if a GPU is usable, else cpu).

A backend gives the array module `xp` and launches the compiled kernels; asking explicitly for an unavailable
backend raises `BackendUnavailable` with the reason, only `auto` falls back.
"""
from __future__ import annotations

import functools
import os
import time

import numpy as np

NAMES = ("auto", "cpu", "cuda", "cudasim")
THREADS_PER_BLOCK = 128
# The simulator runs each thread of a block as a Python thread and its launcher polls them all: 128 threads
# contending for the GIL ran the V3 swap 8x slower than one thread per block with three other busy processes on two
# cores (64 swaps: 5.7 s against 0.72 s), so simulated launches take one thread per block (no kernel shares a block).
SIM_THREADS_PER_BLOCK = 1


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why and what to use instead."""


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable through numba-cuda and cupy, else why not."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 is set (numba's CUDA is the simulator)"
    try:
        from numba import cuda
    except ImportError as exc:
        return f"numba.cuda is not importable ({exc}); install the extra: pip install 'gpubt[cuda]'"
    try:
        if not cuda.is_available():
            return "numba.cuda.is_available() is False (no NVIDIA driver or GPU on this machine)"
    except Exception as exc:  # driver errors surface as many exception types
        return f"CUDA driver error: {exc}"
    try:
        import cupy
    except ImportError as exc:
        return f"cupy is not importable ({exc}); install the extra: pip install 'gpubt[cuda]'"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "cupy sees no CUDA device"
    except Exception as exc:
        return f"cupy cannot use the GPU: {exc}"
    return None


@functools.cache
def _compiled(module: str, name: str):
    from gpubt.kernels.compile import build_kernel

    return build_kernel(module, name, cache=name == "cpu")


class Backend:
    """`name`, array module `xp`, and `launch(module, driver, n, args)` running any registered kernel."""

    def __init__(self, name: str, reason: str = ""):
        self.name = name
        self.reason = reason
        if name == "cuda":
            import cupy

            self.xp = cupy
        else:
            self.xp = np

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def to_device(self, array):
        return self.xp.asarray(array)

    def to_host(self, array) -> np.ndarray:
        return array.get() if self.name == "cuda" else np.asarray(array)

    def compiled(self, module: str):
        """kernels/<module>.py (gpubt.kernels.REGISTRY) compiled for this backend: its functions by name. Built once
        per (module, backend name) in a process; the CPU build is cached on disk (kernels.compile.cached_njit)."""
        return _compiled(module, self.name)

    def launch(self, module: str, driver: str, n: int, args: tuple) -> None:
        """Run kernels/<module>.py's `driver` over n items: `<driver>_cpu` (a prange loop) on cpu, `<driver>_cuda`
        (one thread per item) on cuda and cudasim; `args` are the driver's, on this backend's device."""
        if n == 0:
            return
        kernels = self.compiled(module)
        if self.name == "cpu":
            getattr(kernels, f"{driver}_cpu")(*args)
            return
        threads = SIM_THREADS_PER_BLOCK if self.name == "cudasim" else THREADS_PER_BLOCK
        getattr(kernels, f"{driver}_cuda")[(n + threads - 1) // threads, threads](*args)
        if self.name == "cuda":
            self.xp.cuda.runtime.deviceSynchronize()


@functools.cache
def cpu_backend() -> Backend:
    """The process's CPU backend (the ordered pass, the exact engine and the auction's realized outcomes off a GPU
    run on it)."""
    return Backend("cpu")


def resolve_backend(name: str) -> Backend:
    """The backend for `name`; `auto` says which it picked and why (`Backend.reason`)."""
    if name not in NAMES:
        raise BackendUnavailable(f"backend={name!r} is unknown; choose one of {', '.join(NAMES)}")
    if name == "cpu":
        return Backend("cpu", "requested")
    if name == "cudasim":
        try:
            import numba.cuda.simulator  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"backend=cudasim needs numba's CUDA simulator ({exc}); "
                                     "pip install 'gpubt[dev]'") from None
        return Backend("cudasim", "requested (numba CUDA simulator: the CUDA code path run on the host, slow)")
    why_not = cuda_unavailable_reason()
    if name == "cuda":
        if why_not:
            raise BackendUnavailable(f"backend=cuda is not usable here: {why_not}. "
                                     "Use backend=cpu (or backend=auto to pick whatever works).")
        return Backend("cuda", "requested")
    if why_not:
        return Backend("cpu", f"auto: cuda unavailable ({why_not}), using cpu")
    return Backend("cuda", "auto: a CUDA GPU is usable")


class ContextPool:
    """Named buffers on a backend; `get(name, n, dtype)` returns a length-n view, growing the buffer ×1.5 only
    when a batch needs more than any batch before it. `upload` copies host arrays into such buffers on a GPU; on
    the CPU (`copy` False by default there) the kernels read the host arrays themselves, so nothing is copied
    (the copy cost 24 µs per block on a mainnet-month partition, over the 10 µs context budget)."""

    def __init__(self, backend, growth: float = 1.5, copy: bool | None = None):
        self.backend = backend
        self.growth = growth
        self.copy = backend.name != "cpu" if copy is None else bool(copy)
        self._buffers: dict[str, object] = {}
        self.allocations = 0  # how many device allocations happened (tests check reuse)
        self.seconds = 0.0    # time spent providing buffers (the per-batch "context cost")

    def get(self, name: str, n: int, dtype):
        t0 = time.perf_counter()
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < n or buf.dtype != dtype:
            capacity = max(n, int(buf.shape[0] * self.growth) if buf is not None else n, 1)
            buf = self.backend.xp.empty(capacity, dtype=dtype)
            self._buffers[name] = buf
            self.allocations += 1
        self.seconds += time.perf_counter() - t0
        return buf[:n]

    def upload(self, name: str, host_array):
        """Copy a host array into the named reusable buffer; returns the device view (on the CPU: the array)."""
        if not self.copy:
            return host_array
        view = self.get(name, host_array.shape[0], host_array.dtype)
        t0 = time.perf_counter()
        view[...] = host_array  # cupy copies a numpy source host → device
        self.seconds += time.perf_counter() - t0
        return view
