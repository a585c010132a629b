"""Picks the compute target: `cpu` (numba, parallel), `cuda` (numba-cuda + cupy), `cudasim` (numba's CUDA
simulator on the host: the CUDA code path, slowly, for tests) or `auto` (cuda if a GPU is usable, else cpu).

A backend gives the array module `xp` and launches the compiled kernels; asking explicitly for an unavailable
backend raises `BackendUnavailable` with the reason, only `auto` falls back.
"""
from __future__ import annotations

import functools
import os

import numpy as np

NAMES = ("auto", "cpu", "cuda", "cudasim")
THREADS_PER_BLOCK = 128


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


class Backend:
    """`name`, array module `xp`, and `screen_pairs(...)` launching the cycle-screening kernel."""

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

    @functools.cached_property
    def kernels(self):
        from gpubt.kernels import compile as kc

        if self.name == "cpu":
            return kc.build_cpu(cache=True)
        return kc.build_cuda(simulator=self.name == "cudasim")

    def to_device(self, array):
        return self.xp.asarray(array)

    def to_host(self, array) -> np.ndarray:
        return array.get() if self.name == "cuda" else np.asarray(array)

    def screen_pairs(self, *args) -> None:
        """Launch the pair-screening kernel; arguments as kernels/cycles.py:screen_pairs_*, on this backend."""
        n = args[0].shape[0]
        if n == 0:
            return
        if self.name == "cpu":
            self.kernels.screen_pairs_cpu(*args)
        else:
            blocks = (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
            self.kernels.screen_pairs_cuda[blocks, THREADS_PER_BLOCK](*args)
            if self.name == "cuda":
                self.xp.cuda.runtime.deviceSynchronize()


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
