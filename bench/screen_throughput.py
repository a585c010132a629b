"""Cycle-screening throughput on a synthetic batch: pure Python vs NumPy vs gpubt cpu (vs gpubt cuda).

All baselines are measured in the same run on the same pairs; the table reports medians of --repeats runs
and ratios. `--check` asserts the baselines and gpubt agree (NumPy within rounding: common.assert_screen_agrees).

    python bench/screen_throughput.py --preset small --blocks 500 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from common import assert_screen_agrees, kernel_args, median_seconds  # bench/common.py (scripts run from bench/)

from gpubt.backend import Backend, cuda_unavailable_reason
from gpubt.data.store import Dataset
from gpubt.data import synthetic
from gpubt.kernels.compile import build_kernel
from gpubt.exact.gas import GasModel
from gpubt.market.batch import pack_batch
from gpubt.market.state import MarketState
from gpubt.strategies.arbitrage import Arbitrage


def load_batch(preset: str, blocks: int, cache_dir: str, max_hops: int):

    # a V2-only market: the NumPy baseline knows V2 hops only
    path = Path(cache_dir) / f"synthetic-{preset}-seed0-v2only"
    if not (path / "manifest.json").is_file() or not Dataset(path).complete:
        synthetic.generate(path, preset=preset, seed=0, progress=False, overwrite=True, v3_pools=0)
    ds = Dataset(path)
    part = ds.partitions[0]
    last = min(part[0] + blocks - 1, part[1])
    arbitrage = Arbitrage({"start_tokens": [0], "max_hops": max_hops, "min_hops": 2}, ds, Backend("cpu"),
                          GasModel(50_000, 60_000, 10**9), 0)
    paths = arbitrage.paths
    n_tokens = int(ds.tokens.column("token_id").to_numpy().max()) + 1
    state = MarketState(int(ds.pools.column("pool_id").to_numpy().max()) + 1, n_tokens)
    state.load_snapshot(ds.read_partition("snapshots", part))

    def upto(t):
        return t.filter(t["block_number"].to_numpy() <= last)

    batch = pack_batch(part[0], last, upto(ds.read_partition("blocks", part)), upto(ds.read_partition("events", part)),
                       upto(ds.read_partition("prices", part)), state, paths.pool_is_v3, 10**9, evaluate_top=True,
                       dataset=ds)
    pair_key, pair_path, pair_block = arbitrage.pairs(batch)
    gas_units = (50_000 + 60_000 * paths.hops).astype(np.float64)
    args = (pair_key, pair_path, pair_block, paths.pools, paths.zero_for_one, paths.gamma, gas_units,
            np.zeros(len(paths), np.int32), batch.log_offsets, batch.log_key, batch.log_reserve0, batch.log_reserve1,
            arbitrage.wei_per_raw(batch), batch.gas_price_wei)  # V2 pools only (the NumPy baseline has no V3 hop)
    return batch, paths, args


def screen_numpy(pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, path_gas_units, path_start_slot,
                 log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei):
    """The same screen, vectorized over pairs with NumPy: one searchsorted per hop on (pool, key) composites."""
    n_pools = log_offsets.shape[0] - 1
    log_pool = np.repeat(np.arange(n_pools, dtype=np.int64), np.diff(log_offsets))
    shift = np.int64(1 << 42)  # keys are < 2**41 for batches of < 2**21 blocks
    composite = log_pool * shift + (log_key + 1)
    k = np.ones(len(pair_key))
    m = np.ones(len(pair_key))
    n = np.zeros(len(pair_key))
    valid = np.ones(len(pair_key), bool)
    for h in range(path_pools.shape[1]):
        pool = path_pools[pair_path, h].astype(np.int64)
        active = pool >= 0
        idx = np.searchsorted(composite, np.where(active, pool, 0) * shift + (pair_key + 1), side="right") - 1
        found = (idx >= 0) & (log_pool[np.maximum(idx, 0)] == np.where(active, pool, -1))
        valid &= found | ~active
        idx = np.maximum(idx, 0)
        zfo = path_zfo[pair_path, h]
        r_in = np.where(zfo, log_reserve0[idx], log_reserve1[idx])
        r_out = np.where(zfo, log_reserve1[idx], log_reserve0[idx])
        g = path_gamma[pair_path, h]
        k, m, n = np.where(active, g * r_out * k, k), np.where(active, r_in * m, m), np.where(active, r_in * n + g * k, n)
    ok = valid & (k > m) & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(ok, (np.sqrt(k) * np.sqrt(m) - m) / n, 0.0)
        gross = np.where(ok & (x > 0), k * x / (m + n * x) - x, 0.0)
    x = np.where(x > 0, x, 0.0)
    net = gross * wei_per_raw[pair_block, path_start_slot[pair_path]] - path_gas_units[pair_path] * gas_price_wei[pair_block]
    return x, gross, net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--blocks", type=int, default=500, help="blocks in the batch")
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python-sample", type=int, default=3000, help="pairs the pure-Python baseline screens")
    parser.add_argument("--cache-dir", default="data_cache")
    parser.add_argument("--json", default="bench_results/screen_throughput.json")
    parser.add_argument("--check", action="store_true", help="assert that every implementation agrees")
    opts = parser.parse_args(argv)

    batch, paths, args = load_batch(opts.preset, opts.blocks, opts.cache_dir, opts.max_hops)
    n = len(args[0])
    print(f"batch: {opts.preset}, {batch.n_blocks} blocks, {len(paths):,} paths, {n:,} pairs, "
          f"{len(batch.log_key):,} state-log entries; {os.cpu_count()} cores")
    outs = lambda size: tuple(np.zeros(size) for _ in range(3))  # noqa: E731
    rows = []

    ref = build_kernel("cycles", "python")
    sample = min(opts.python_sample, n)
    ref_out = outs(n)
    t_py = median_seconds(lambda: [ref.screen_pair(i, *kernel_args(*args), *ref_out) for i in range(sample)], 1)
    rows.append({"workload": "pure Python (same source, unjitted)", "pairs": sample, "seconds": t_py})

    np_out = [None]
    t_np = median_seconds(lambda: np_out.__setitem__(0, screen_numpy(*args)), opts.repeats)
    rows.append({"workload": "NumPy (vectorized)", "pairs": n, "seconds": t_np})

    cpu = Backend("cpu")
    cpu_out = outs(n)
    cpu.launch("cycles", "screen_pairs", n, (*kernel_args(*args), *cpu_out))  # compile outside the timing
    t_cpu = median_seconds(lambda: cpu.launch("cycles", "screen_pairs", n, (*kernel_args(*args), *cpu_out)),
                           opts.repeats)
    rows.append({"workload": f"gpubt cpu (numba prange, {os.cpu_count()} cores)", "pairs": n, "seconds": t_cpu})

    if cuda_unavailable_reason() is None:
        gpu = Backend("cuda")
        dev_args = [gpu.to_device(a) if isinstance(a, np.ndarray) else a for a in kernel_args(*args)]
        dev_out = [gpu.to_device(o) for o in outs(n)]
        gpu.launch("cycles", "screen_pairs", n, (*dev_args, *dev_out))
        t_gpu = median_seconds(lambda: gpu.launch("cycles", "screen_pairs", n, (*dev_args, *dev_out)), opts.repeats)
        rows.append({"workload": "gpubt cuda (kernel, arrays resident)", "pairs": n, "seconds": t_gpu})
    else:
        print(f"(cuda not measured: {cuda_unavailable_reason()})")

    for r in rows:
        r["pairs_per_second"] = r["pairs"] / r["seconds"]
    base_py = rows[0]["pairs_per_second"]
    base_np = rows[1]["pairs_per_second"]
    print(f"\n{'workload':44s} {'pairs':>11s} {'median s':>10s} {'pairs/s':>14s} {'vs Python':>10s} {'vs NumPy':>9s}")
    for r in rows:
        r["vs_python"] = r["pairs_per_second"] / base_py
        r["vs_numpy"] = r["pairs_per_second"] / base_np
        print(f"{r['workload']:44s} {r['pairs']:>11,} {r['seconds']:>10.4f} {r['pairs_per_second']:>14,.0f} "
              f"{r['vs_python']:>9.1f}x {r['vs_numpy']:>8.1f}x")

    if opts.check:
        assert_screen_agrees(np_out[0], cpu_out)
        for a, b in zip(ref_out, cpu_out):
            np.testing.assert_array_equal(a[:sample], b[:sample])
        print("check: pure Python == gpubt cpu (exact), NumPy ≈ gpubt cpu (common.assert_screen_agrees)")

    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": opts.preset, "blocks": batch.n_blocks, "paths": len(paths), "pairs": n,
                               "repeats": opts.repeats, "cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
