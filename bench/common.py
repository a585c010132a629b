"""What every benchmark script shares: median timing and the machine's description for the JSON."""
from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

# kernels/amm_v3.py constants, restated for the NumPy references (bench/ref_*.py import nothing from kernels/)
MIN_SQRT_PRICE = 4295128739 / 2**96
MAX_SQRT_PRICE = 1461446703485210103287273052203988822378723970342 / 2**96
MIN_TICK = -887272
MAX_TICK = 887272
LOG_SQRT_TICK = 0.5 * math.log(1.0001)


def row(workload, baseline, t_base, ours, t_ours, target, want) -> dict:
    """One table row: ours vs a baseline measured in the same run; `met` when a wanted ratio is given."""
    ratio = t_base / t_ours if t_ours > 0 else float("inf")
    return {"workload": workload, "baseline": baseline, "baseline_seconds": t_base, "ours": ours,
            "ours_seconds": t_ours, "ratio": ratio, "target": target,
            "met": None if want is None else bool(ratio >= want)}


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn() (machines are noisy: medians, never single runs)."""
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine(packages=("gpubt", "numpy", "numba", "pyarrow")) -> dict:
    """CPU model, cores, Python, platform, GPU availability and package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    from gpubt.backend import cuda_unavailable_reason

    why_not = cuda_unavailable_reason()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "gpu": "usable" if why_not is None else f"none ({why_not})", "packages": versions}


def kernel_args(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei):
    """The cycle-screening kernel's arguments (kernels/cycles.py: screen_pairs_*) for a V2-only workload: the V3
    state arrays empty, no path has a V3 hop."""
    import numpy as np

    return (pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma,
            np.zeros(path_pools.shape, np.bool_), path_gas_units, path_start_slot, log_offsets, log_key,
            log_reserve0, log_reserve1, np.zeros(0), np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32),
            np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros(0), 0, wei_per_raw, gas_price_wei)


def assert_screen_agrees(reference, outs):
    """A NumPy screening reference (amount in, gross, net) agrees with the kernel's outputs. The kernel takes the
    profit as (√k − √m)²/n (kernels/amm_v2.py: optimal_profit), a reference as out(x*) − x*, so they differ by
    float rounding, and the reference's own rounding is ~1e-16 of x* (out − x cancels): hence 1e-12 of the input
    on the gross. The net subtracts the gas cost from a gross of about its size: hence 1e-9 of the largest
    gross-to-net gap on it. The input of a barely profitable cycle is ill-conditioned (√k − √m cancels; the profit is
    flat there), hence 1e-6 on it."""
    import numpy as np

    ref_x, ref_gross, ref_net = (np.asarray(a) for a in reference)
    np.testing.assert_allclose(ref_x, outs[0], rtol=1e-6, atol=1e-3)
    gross_slack = 1e-9 * np.abs(ref_gross) + 1e-12 * np.abs(ref_x) + 1e-3
    np.testing.assert_array_less(np.abs(ref_gross - outs[1]), gross_slack)
    gap = float(np.abs(ref_net - ref_gross).max(initial=0.0))
    np.testing.assert_array_less(np.abs(ref_net - outs[2]), 1e-9 * np.abs(ref_net) + 1e-9 * gap + gross_slack)


def search_right(keys, lo, hi, x):
    """Per element, the first position in [lo, hi) whose key is > x (hi if none): the kernels' binary search
    (find_state, v3_next_tick_position) vectorized, lock-step over all elements for bit_length(longest slice)
    rounds. For the NumPy references (bench/ref_*.py)."""
    import numpy as np

    lo = np.asarray(lo).astype(np.int64)
    hi = np.asarray(hi).astype(np.int64)
    rounds = int((hi - lo).max(initial=0)).bit_length()
    last = max(keys.shape[0] - 1, 0)
    for _ in range(rounds):
        active = lo < hi
        mid = (lo + hi) // 2
        right = keys.take(np.minimum(mid, last)) <= x  # mid == hi == len(keys) only where inactive
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return lo


def segment_search_right(keys, offsets, seg, x):
    """search_right over slice [offsets[seg], offsets[seg + 1]) of each element (its start if the slice is empty
    or reversed). One np.searchsorted on (segment, key) packed into an int64 when the table is one run of sorted
    slices (the host builds it so) and the packing fits, else the lock-step search."""
    import numpy as np

    lo = offsets[seg]
    hi = offsets[seg + 1]
    x = np.asarray(x, np.int64)
    m = offsets.shape[0] - 1
    if keys.shape[0] and offsets[0] == 0 and offsets[-1] == keys.shape[0] and m > 0:
        kmin, kmax = int(keys.min()), int(keys.max())
        span = kmax - kmin + 2  # keys map to 1..span-1; a query below every key to 0, above every key to span-1
        if m * span < 2**62:
            sid = np.repeat(np.arange(m, dtype=np.int64), np.diff(offsets))
            packed = sid * span + (keys.astype(np.int64) - (kmin - 1))
            q = seg * span + (np.clip(x, kmin - 1, kmax) - (kmin - 1))
            return np.where(lo < hi, np.searchsorted(packed, q, side="right"), lo)
    return search_right(keys, lo, hi, x)


def subset_args(names, args, items, per_item) -> tuple:
    """A kernel's arguments restricted to `items` (bench/ref_*.py: subset): the arrays named in `per_item` sliced,
    tables and scalars shared, every out_* array fresh zeros of len(items)."""
    import numpy as np

    items = np.asarray(items, np.int64)
    out = []
    for name, arg in zip(names, args):
        if name.startswith("out_"):
            out.append(np.zeros(items.shape[0], arg.dtype))
        elif name in per_item:
            out.append(np.ascontiguousarray(arg[items]))
        else:
            out.append(arg)
    return tuple(out)


@functools.cache
def numba_lookups():
    """(find_state, v3_next_tick_position) of kernels/cycles.py and kernels/amm_v3.py compiled by numba, inlined
    where called: the gather-only rooflines (bench/ref_*.py) address the state log and the tick table with the
    kernels' own binary searches. Compiled at the first call of a roofline that uses them."""
    import numba

    from gpubt.kernels.amm_v3 import v3_next_tick_position
    from gpubt.kernels.cycles import find_state

    inline = numba.njit(inline="always")
    return inline(find_state), inline(v3_next_tick_position)
