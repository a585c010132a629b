"""Threshold sweep cost: 1 config vs K configs (default 1,000) over one run's trades (target: ≤ 2x).

Workload: the trades of a `small` preset run (backtest at the lowest threshold swept), swept over static
min_profit thresholds and over a block-dependent linear grid (min_profit × gas_pct weight × eth_vol weight).
Timed end to end from the trades table (building the sweep input included, kernel compiled beforehand), and the
kernel alone; medians of --repeats. `--check` compares the K-config sweep with a per-config loop of 1-config
sweeps (every metric equal).

    python bench/sweep_ratio.py                      # runs the small preset first if --run is not given
    python bench/sweep_ratio.py --run results/small --configs 1000 --check
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from common import median_seconds  # bench/common.py (scripts run from bench/)

from gpubt.data.store import Dataset
from gpubt.analysis.sweep import (PARALLEL_MIN_WORK, SweepInput, ThresholdGrid, linear_grid, static_grid, sweep,
                                sweep_nb, sweep_serial_nb)
from gpubt.analysis.thresholds import block_features


def _kernel(inp, grid):
    k = len(grid)
    kernel = sweep_nb if k * (len(inp.block_idx) + inp.n_blocks) >= PARALLEL_MIN_WORK else sweep_serial_nb
    kernel(inp.block_idx, inp.screen_net_wei, inp.net_hi, inp.net_lo, inp.net_eth, grid.basis, grid.params,
           inp.run_min_profit_wei, np.zeros((k, 9), np.int64), np.zeros((k, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a gpubt results folder (default: run the small preset into a temp folder)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default="bench_results/sweep_ratio.json")
    parser.add_argument("--check", action="store_true", help="assert the K-config sweep equals K 1-config sweeps")
    opts = parser.parse_args()

    tmp = None
    run_dir = Path(opts.run) if opts.run else None
    if run_dir is None:
        tmp = tempfile.TemporaryDirectory()
        run_dir = Path(tmp.name) / "run"
        subprocess.run([sys.executable, "-m", "gpubt.cli", "run", "backend=cpu", f"data.preset={opts.preset}",
                        f"out_dir={run_dir}", "progress=false"], check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    first, last = summary["run"]["first_block"], summary["run"]["last_block"]
    run_min = float(summary["run"]["min_profit_wei"])
    trades = pq.read_table(run_dir / "trades.parquet")
    dataset = Dataset(summary["run"]["dataset"])
    blocks = dataset.read("blocks")
    b = blocks.column("block_number").to_numpy()
    blocks = blocks.filter((b >= first) & (b <= last))
    features = block_features(blocks, dataset.read("prices"), dataset.read("labels"),
                              priority_fee_wei=round(cfg["gas"]["priority_fee_gwei"] * 10**9))

    k = opts.configs
    lo_eth = run_min / 1e18
    grids = {
        "static": lambda n: static_grid(features.n_blocks, np.linspace(lo_eth, 0.05, n)),
        "linear": lambda n: linear_grid(features, [lo_eth + 0.004], {"gas_pct": [0.0, 0.003], "eth_vol": [0.0, 0.003]},
                                        search="random", k=n, seed=0) if n > 1 else
        linear_grid(features, [lo_eth + 0.004], {"gas_pct": [0.001], "eth_vol": [0.001]}),
    }
    inp = SweepInput.from_trades(trades, first, last, run_min)
    sweep(inp, static_grid(inp.n_blocks, [lo_eth]))      # compile both builds (cached on disk after the first time)
    sweep(inp, static_grid(inp.n_blocks, np.linspace(lo_eth, 0.05, 1 + PARALLEL_MIN_WORK // inp.n_blocks)))
    rows = []
    for name, make in grids.items():
        one, many = make(1), make(k)
        t1 = median_seconds(lambda: sweep(SweepInput.from_trades(trades, first, last, run_min), one), opts.repeats)
        tk = median_seconds(lambda: sweep(SweepInput.from_trades(trades, first, last, run_min), many), opts.repeats)
        k1 = median_seconds(lambda: _kernel(inp, one), opts.repeats)
        kk = median_seconds(lambda: _kernel(inp, many), opts.repeats)
        rows.append({"grid": name, "configs": k, "trades": inp.block_idx.shape[0], "blocks": inp.n_blocks,
                     "seconds_1": t1, "seconds_k": tk, "ratio": tk / t1,
                     "kernel_seconds_1": k1, "kernel_seconds_k": kk, "kernel_ratio": kk / k1,
                     "naive_seconds_k_estimate": t1 * k})
        if opts.check:
            result = sweep(inp, many).table.to_pylist()
            for i in range(0, k, max(1, k // 50)):
                single = ThresholdGrid(many.names, many.params[i:i + 1], many.basis)
                ref = sweep(inp, single).table.to_pylist()[0]
                ref["config"] = i
                assert ref == result[i], (name, i)
    print(f"{'grid':<8}{'configs':>9}{'trades':>8}{'1 config':>12}{'K configs':>12}{'ratio':>8}"
          f"{'kernel 1':>12}{'kernel K':>12}{'k ratio':>9}")
    for r in rows:
        print(f"{r['grid']:<8}{r['configs']:>9}{r['trades']:>8}{r['seconds_1'] * 1e3:>10.2f}ms"
              f"{r['seconds_k'] * 1e3:>10.2f}ms{r['ratio']:>8.2f}{r['kernel_seconds_1'] * 1e3:>10.2f}ms"
              f"{r['kernel_seconds_k'] * 1e3:>10.2f}ms{r['kernel_ratio']:>9.1f}")
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": str(run_dir) if opts.run else f"{opts.preset} preset (temporary)",
                               "target_ratio": 2.0, "results": rows}, indent=2))
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
