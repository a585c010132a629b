"""ContextPool: device buffers preallocated once and reused by every batch (no per-block or per-batch rebuild)."""
from __future__ import annotations

import time


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
