"""The gpubt benchmark suite: every figure against a baseline measured in the same run, as medians and ratios.

    gpubt bench                 # quick subset (~1 min): kernel, small end to end, sweep, context cost
    gpubt bench --scaling       # + peak RSS of one and two mainnet-month partitions, counterfactual vs replay
                                #   on one (~15 min)
    gpubt bench --executors     # + four mainnet-month partitions, executor=local vs executor=dask (~10 min)
    gpubt bench --full          # + 1M-path kernel, strategy kernels on the month, half month and month end to
                                #   end, memory scaling (long)
    gpubt bench --smoke         # seconds: what the test suite runs so the suite cannot rot

Prints a table (workload, baseline, ours, ratio, target, met?) and writes JSON with the machine's description.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/common.py, also when run through `gpubt bench`

from common import assert_screen_agrees, kernel_args, machine, median_seconds, row  # noqa: E402
from strategy_kernels import bench_strategy_kernels  # noqa: E402


# ---------------------------------------------------------------- kernel: 3-hop V2 cycles over a pool table
def random_cycles(n_paths: int, n_pools: int = 2000, seed: int = 0):
    """3-hop cycles over a pool table (one state per pool): the kernel's arguments with one pair per path."""
    rng = np.random.default_rng(seed)
    reserve0 = 10 ** rng.uniform(20, 24, n_pools)
    reserve1 = reserve0 * rng.uniform(0.97, 1.03, n_pools)
    path_pools = rng.integers(0, n_pools, (n_paths, 3)).astype(np.int32)
    path_zfo = rng.random((n_paths, 3)) < 0.5
    path_gamma = np.full((n_paths, 3), 0.997)
    gas_units = np.full(n_paths, 32_952 + 3 * 51_557.0)
    start_slot = np.zeros(n_paths, np.int32)
    log_offsets = np.arange(n_pools + 1, dtype=np.int64)   # one state-log entry per pool
    log_key = np.full(n_pools, -1, np.int64)
    pair_key = np.zeros(n_paths, np.int64)
    pair_path = np.arange(n_paths, dtype=np.int32)
    pair_block = np.zeros(n_paths, np.int32)
    wei_per_raw = np.ones((1, 1))
    gas_price = np.full(1, 20e9)
    return (pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, gas_units, start_slot, log_offsets,
            log_key, reserve0, reserve1, wei_per_raw, gas_price)


def numpy_reference(pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, gas_units, start_slot,
                    log_offsets, log_key, reserve0, reserve1, wei_per_raw, gas_price):
    """The same evaluation vectorized with NumPy (gather per hop, compose, closed-form optimum)."""
    k = np.ones(len(pair_path))
    m = np.ones(len(pair_path))
    n = np.zeros(len(pair_path))
    for h in range(path_pools.shape[1]):
        idx = log_offsets[path_pools[pair_path, h]]
        zfo = path_zfo[pair_path, h]
        r_in = np.where(zfo, reserve0[idx], reserve1[idx])
        r_out = np.where(zfo, reserve1[idx], reserve0[idx])
        g = path_gamma[pair_path, h]
        k, m, n = g * r_out * k, r_in * m, r_in * n + g * k
    ok = k > m
    x = np.where(ok, (np.sqrt(k) * np.sqrt(m) - m) / np.where(ok, n, 1.0), 0.0)
    gross = np.where(ok, k * x / (m + n * x) - x, 0.0)
    return x, gross, gross * wei_per_raw[pair_block, start_slot[pair_path]] - gas_units[pair_path] * gas_price[pair_block]


def gather_only(pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, gas_units, start_slot,
                log_offsets, log_key, reserve0, reserve1, wei_per_raw, gas_price, out_x, out_gross, out_net):
    """Roofline: reads every input the real kernel reads (same gathers), no AMM math."""
    for i in prange(pair_key.shape[0]):  # noqa: F821 (numba prange, bound below)
        p = pair_path[i]
        s = 0.0
        for h in range(path_pools.shape[1]):
            j = log_offsets[path_pools[p, h]]
            s += reserve0[j] + reserve1[j] + path_gamma[p, h] + (1.0 if path_zfo[p, h] else 0.0) + log_key[j]
        b = pair_block[i]
        out_x[i] = s
        out_gross[i] = gas_units[p] * gas_price[b]
        out_net[i] = wei_per_raw[b, start_slot[p]] + pair_key[i]


def bench_kernel(n_paths: int, repeats: int, python_sample: int) -> list[dict]:
    import numba

    from gpubt.backend import Backend, cuda_unavailable_reason
    from gpubt.kernels.compile import build_kernel, rebind

    args = random_cycles(n_paths)           # V2 workload: what the NumPy reference and the roofline take
    kargs = kernel_args(*args)              # the kernel's full argument list (empty V3 state)
    outs = [np.zeros(n_paths) for _ in range(3)]
    cpu = Backend("cpu")
    cpu.launch("cycles", "screen_pairs", n_paths, (*kargs, *outs))  # compile outside timing
    t_cpu = median_seconds(lambda: cpu.launch("cycles", "screen_pairs", n_paths, (*kargs, *outs)), repeats)
    t_np = median_seconds(lambda: numpy_reference(*args), repeats)
    ref = build_kernel("cycles", "python")
    sample = min(python_sample, n_paths)
    ref_outs = [np.zeros(n_paths) for _ in range(3)]
    t_py = median_seconds(lambda: [ref.screen_pair(i, *kargs, *ref_outs) for i in range(sample)], 1) * n_paths / sample
    roof = numba.njit(rebind(gather_only, {"prange": numba.prange}), parallel=True)
    roof_outs = [np.zeros(n_paths) for _ in range(3)]
    roof(*args, *roof_outs)
    t_roof = median_seconds(lambda: roof(*args, *roof_outs), repeats)
    assert_screen_agrees(numpy_reference(*args), outs)   # parity: the NumPy reference and the kernel agree
    rows = [
        row(f"kernel: {n_paths:,} 3-hop V2 cycles", "NumPy vectorized", t_np, "gpubt cpu", t_cpu, ">= 50x", 50),
        row(f"kernel: {n_paths:,} 3-hop V2 cycles", f"pure Python ({sample:,}-path sample, scaled)", t_py,
            "gpubt cpu", t_cpu, ">= 300x", 300),
        row(f"kernel: {n_paths:,} 3-hop V2 cycles", "gather-only roofline", t_roof, "gpubt cpu", t_cpu,
            ">= 0.7x of roofline", 0.7),
    ]
    rows[0]["paths_per_second"] = n_paths / t_cpu
    if cuda_unavailable_reason() is None:
        gpu = Backend("cuda")
        dev = [gpu.to_device(a) if isinstance(a, np.ndarray) else a for a in kargs]
        dev_out = [gpu.to_device(o) for o in outs]
        gpu.launch("cycles", "screen_pairs", n_paths, (*dev, *dev_out))
        t_gpu = median_seconds(lambda: gpu.launch("cycles", "screen_pairs", n_paths, (*dev, *dev_out)), repeats)
        rows.append(row(f"kernel: {n_paths:,} 3-hop V2 cycles", "gpubt cpu", t_cpu, "gpubt cuda", t_gpu, "", None))
    return rows


# ---------------------------------------------------------------- end to end, sweep, context cost, memory
def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (executor=dask's workers are grandchildren)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def backtest_once(preset: str, cache_dir: str, last_block=None, strategy: str = "all", extra=()) -> dict:
    """One `gpubt run` (the main job: every strategy, post-run, report) in a child process, so its peak RSS is
    its own (os.wait4: the largest process of its tree) and, sampled every 0.5 s, its whole tree's: wall
    seconds, blocks/s, the run's own timing, peak RSS."""
    import os
    import tempfile
    import threading
    import time

    with tempfile.TemporaryDirectory(prefix="gpubt-bench-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "gpubt.cli", "run", f"data.preset={preset}", f"data.cache_dir={cache_dir}",
               f"strategy={strategy}", "backend=cpu", "progress=false", f"out_dir={out}", *extra]
        if last_block is not None:
            cmd.append(f"data.last_block={last_block}")
        with open(Path(tmp) / "log", "w+") as log:
            t0 = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            timeline, stop = [], threading.Event()   # (seconds since start, tree RSS bytes)

            def sample():
                while not stop.wait(0.5):
                    timeline.append((time.perf_counter() - t0, _tree_rss(child.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode:
                log.seek(0)
                raise RuntimeError(f"{' '.join(cmd)} failed ({child.returncode}):\n{log.read()[-3000:]}")
        summary = json.loads((out / "summary.json").read_text())
    n = summary["metrics"]["blocks"]
    return {"blocks": n, "wall_seconds": wall, "blocks_per_second": n / wall, "strategy": strategy,
            # the arbitrage screen's own figures (summary.json timing.by_strategy)
            "pairs_per_block": summary["timing"]["by_strategy"]["arbitrage"]["screened"] / n,
            "arbitrage_screen_seconds": summary["timing"]["by_strategy"]["arbitrage"]["screen_seconds"],
            "trades": summary["metrics"]["trades"], "opportunities": summary["metrics"]["opportunities"],
            "paths": summary["run"]["setup"]["arbitrage"]["paths"], "timing": summary["timing"],
            "context_us_per_block": summary["timing"]["context_us_per_block"],
            "peak_rss_mb": usage.ru_maxrss / 1024, "peak_tree_rss_mb": max((r for _, r in timeline), default=0) / 2**20,
            # where the memory goes over the run: the loop is its first timing.wall_seconds (after start-up)
            "peak_tree_at_seconds": max(timeline, key=lambda x: x[1], default=(None, 0))[0],
            "rss_timeline_mb": _thinned(timeline, 300),
            "net_profit_wei": summary["metrics"]["net_profit_wei"], "command": " ".join(cmd[1:])}


def _thinned(timeline: list, points: int) -> list:
    """[(seconds, MB)] of at most `points` stretches of the samples, each its highest sample (peaks survive)."""
    step = max(1, -(-len(timeline) // points))
    return [[round(t, 1), round(r / 2**20)] for t, r in (max(timeline[i:i + step], key=lambda x: x[1])
                                                        for i in range(0, len(timeline), step))]


def bench_end_to_end(preset: str, cache_dir: str, last_block=None) -> list[dict]:
    r = backtest_once(preset, cache_dir, last_block)
    ceiling = r["blocks"] / r["arbitrage_screen_seconds"]
    # baseline: the targets (the seed system's month took 7,560 s: 28.6 blocks/s), not measured here
    rows = [{"workload": f"end to end: {preset}, strategy=all ({r['blocks']:,} blocks, {r['trades']:,} trades)",
             "baseline": "target 3,600 blocks/s", "baseline_seconds": None, "ours": "gpubt run (cpu)",
             "ours_seconds": r["wall_seconds"], "ratio": r["blocks_per_second"] / 3600, "target": ">= 3,600 blocks/s",
             "met": r["blocks_per_second"] >= 3600, "detail": r},
            # what the arbitrage screen alone allows: the loop cannot beat blocks ÷ the kernel's own seconds (its
            # pairs per block × the kernel's pairs/s), however little the rest of the loop costs
            {"workload": f"screening ceiling: {preset} ({r['pairs_per_block']:,.0f} pairs/block at "
                         f"{r['pairs_per_block'] * r['blocks'] / r['arbitrage_screen_seconds'] / 1e6:,.1f}M pairs/s)",
             "baseline": "target 3,600 blocks/s", "baseline_seconds": None, "ours": "blocks / screen s",
             "ours_seconds": r["arbitrage_screen_seconds"], "ratio": ceiling / 3600,
             "target": ">= 3,600 blocks/s", "met": ceiling >= 3600},
            {"workload": f"context cost per block ({preset})", "baseline": "target 10 µs", "baseline_seconds": None,
             "ours": "ContextPool", "ours_seconds": r["context_us_per_block"] * 1e-6,
             "ratio": 10 / max(r["context_us_per_block"], 1e-9), "target": "<= 10 µs/block",
             "met": r["context_us_per_block"] <= 10},
            {"workload": f"peak RSS ({preset}, {r['blocks']:,} blocks)", "baseline": "target 2 GB",
             "baseline_seconds": None, "ours": f"{r['peak_rss_mb']:,.0f} MB", "ours_seconds": None,
             "ratio": 2048 / r["peak_rss_mb"], "target": "<= 2 GB", "met": r["peak_rss_mb"] <= 2048}]
    return rows


def bench_executors(preset: str, cache_dir: str, last_block=None, workers: int = 2) -> list[dict]:
    """The same run on executor=local and on executor=dask with `workers` single-threaded processes: wall,
    blocks/s, memory (the dask run's whole process tree); both must find the same trades and profit."""
    local = backtest_once(preset, cache_dir, last_block)
    dask = backtest_once(preset, cache_dir, last_block,
                         extra=("executor=dask", f"executor.workers={workers}", "executor.threads_per_worker=1"))
    for key in ("trades", "opportunities", "net_profit_wei"):
        assert local[key] == dask[key], (key, local[key], dask[key])
    name = f"{preset}, strategy=all ({local['blocks']:,} blocks)"
    return [{"workload": f"end to end, executor=dask {workers} workers: {name}", "baseline": "executor=local",
             "baseline_seconds": local["wall_seconds"], "ours": f"dask ({dask['blocks_per_second']:,.0f} blk/s)",
             "ours_seconds": dask["wall_seconds"], "ratio": local["wall_seconds"] / dask["wall_seconds"],
             "target": "(information)", "met": None, "detail": {"local": local, "dask": dask}},
            {"workload": f"peak RSS, executor=dask {workers} workers (all processes): {name}",
             "baseline": f"local: {local['peak_tree_rss_mb']:,.0f} MB", "baseline_seconds": None,
             "ours": f"{dask['peak_tree_rss_mb']:,.0f} MB", "ours_seconds": None,
             "ratio": dask["peak_tree_rss_mb"] / max(local["peak_tree_rss_mb"], 1e-9), "target": "(information)",
             "met": None}]


def bench_memory_scaling(preset: str, cache_dir: str, blocks: int) -> list[dict]:
    """Peak RSS of `blocks` blocks and of twice as many (the run's first blocks): flat means the ratio ~1."""
    from omegaconf import OmegaConf

    from gpubt.run.setup import open_dataset

    ds_first = open_dataset(OmegaConf.create({"source": "synthetic", "preset": preset, "seed": 0, "path": None,
                                              "cache_dir": cache_dir}), progress=False).first_block
    one = bench_end_to_end(preset, cache_dir, ds_first + blocks - 1)
    two = bench_end_to_end(preset, cache_dir, ds_first + 2 * blocks - 1)
    rss1 = one[0]["detail"]["peak_rss_mb"]
    rss2 = two[0]["detail"]["peak_rss_mb"]
    return [*one, *two, {"workload": f"peak RSS as the block count doubles ({preset})",
                         "baseline": f"{blocks:,} blocks: {rss1:,.0f} MB", "baseline_seconds": None,
                         "ours": f"{2 * blocks:,}: {rss2:,.0f} MB", "ours_seconds": None, "ratio": rss2 / rss1,
                         "target": "flat (<= 1.2x)", "met": rss2 / rss1 <= 1.2}]


def bench_sweep(preset: str, cache_dir: str, repeats: int, k: int = 1000) -> list[dict]:
    """1 vs k static threshold configs over a small run's trades (the vectorized sweep)."""
    from omegaconf import OmegaConf

    from gpubt.analysis.sweep import SweepInput, static_grid, sweep
    from gpubt.backend import Backend
    from gpubt.exact import gas
    from gpubt.exact.gas import GasModel
    from gpubt.run.loop import Backtest
    from gpubt.run.setup import open_dataset
    from gpubt.strategies.arbitrage import Arbitrage

    ds = open_dataset(OmegaConf.create({"source": "synthetic", "preset": preset, "seed": 0, "path": None,
                                        "cache_dir": cache_dir}), progress=False)
    gas_model = GasModel(gas.CYCLE_BASE_GAS, gas.V2_HOP_GAS, 10**9)
    arbitrage = Arbitrage({"start_tokens": [0], "max_hops": 3, "min_hops": 2}, ds, Backend("cpu"), gas_model, 10**14)
    bt = Backtest(ds, arbitrage.backend, [arbitrage], gas_model, 250, progress=False).run()
    trades = bt.trades()
    inp = SweepInput.from_trades(trades, bt.first_block, bt.last_block, 10**14)  # the prebuilt input
    one = static_grid(inp.n_blocks, [0.001])
    many = static_grid(inp.n_blocks, list(np.linspace(0.0001, 0.05, k)))
    sweep(inp, one)
    sweep(inp, many)  # compile both kernels outside the timing
    # what a user waits for (`gpubt sweep`: from the run's trades table, input built each time), and the kernel
    # alone on a prebuilt input (which scales with the configs: it is 1,000x the work)
    def from_table():
        return SweepInput.from_trades(trades, bt.first_block, bt.last_block, 10**14)

    t1 = median_seconds(lambda: sweep(from_table(), one), repeats)
    tk = median_seconds(lambda: sweep(from_table(), many), repeats)
    k1 = median_seconds(lambda: sweep(inp, one), repeats)
    kk = median_seconds(lambda: sweep(inp, many), repeats)
    return [{"workload": f"threshold sweep over {len(inp.block_idx):,} trades", "baseline": f"{k:,} configs",
             "baseline_seconds": tk, "ours": "1 config", "ours_seconds": t1, "ratio": tk / t1,
             "target": "<= 2x (k configs / 1 config)", "met": tk / t1 <= 2},
            {"workload": f"threshold sweep kernel alone ({len(inp.block_idx):,} trades, input prebuilt)",
             "baseline": f"{k:,} configs", "baseline_seconds": kk, "ours": "1 config", "ours_seconds": k1,
             "ratio": kk / k1, "target": "(information)", "met": None}]


def print_table(rows: list[dict]) -> None:
    print(f"\n{'workload':58s} {'baseline':34s} {'base s':>9s} {'ours':22s} {'ours s':>9s} {'ratio':>9s} "
          f"{'target':>22s} met?")
    for r in rows:
        fmt = lambda v: "" if v is None else f"{v:9.4f}"  # noqa: E731
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['workload'][:58]:58s} {r['baseline'][:34]:34s} {fmt(r['baseline_seconds']):>9s} "
              f"{str(r['ours'])[:22]:22s} {fmt(r['ours_seconds']):>9s} {r['ratio']:9.2f} {r['target']:>22s} {met}")


def bench_execution(preset: str, cache_dir: str, last_block=None, strategy: str = "arbitrage") -> list[dict]:
    """execution=counterfactual (our trades fork the pools; history re-executed on them) against execution=replay,
    the same run otherwise: the whole run's wall and the batch loop's (summary.json timing.wall_seconds)."""
    replay = backtest_once(preset, cache_dir, last_block, strategy, extra=("execution=replay",))
    ours = backtest_once(preset, cache_dir, last_block, strategy,
                         extra=("execution=counterfactual", "execution.compare_replay=false"))
    name = f"{preset}, strategy={strategy} ({ours['blocks']:,} blocks; trades {replay['trades']:,} → {ours['trades']:,})"
    loop_replay, loop_ours = replay["timing"]["wall_seconds"], ours["timing"]["wall_seconds"]
    return [{"workload": f"execution=counterfactual, whole run: {name}", "baseline": "execution=replay",
             "baseline_seconds": replay["wall_seconds"], "ours": "counterfactual", "ours_seconds": ours["wall_seconds"],
             "ratio": ours["wall_seconds"] / replay["wall_seconds"], "target": "<= 1.5x replay",
             "met": ours["wall_seconds"] <= 1.5 * replay["wall_seconds"], "detail": {"replay": replay, "ours": ours}},
            {"workload": f"execution=counterfactual, batch loop: {name}", "baseline": "execution=replay",
             "baseline_seconds": loop_replay, "ours": "counterfactual", "ours_seconds": loop_ours,
             "ratio": loop_ours / loop_replay, "target": "<= 1.5x replay", "met": loop_ours <= 1.5 * loop_replay}]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="1M-path kernel, mainnet-month, memory scaling")
    size.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite's check)")
    parser.add_argument("--scaling", action="store_true",
                        help="+ memory scaling on one and two mainnet-month partitions (~5 min)")
    parser.add_argument("--executors", action="store_true",
                        help="+ four mainnet-month partitions on executor=local vs executor=dask (~10 min)")
    parser.add_argument("--workers", type=int, default=2, help="executor=dask workers of --executors")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-dir", default="data_cache")
    parser.add_argument("--json", default="bench_results/suite.json")
    opts = parser.parse_args(argv)

    rows = []
    if opts.smoke:
        rows += bench_kernel(20_000, 2, 500)
        rows += bench_strategy_kernels("tiny", opts.cache_dir, 100, 2, 200)
        rows += bench_memory_scaling("tiny", opts.cache_dir, 100)
        rows += bench_sweep("tiny", opts.cache_dir, 2, k=100)
        rows += bench_executors("tiny", opts.cache_dir)
        rows += bench_execution("tiny", opts.cache_dir)
    else:
        rows += bench_kernel(1_000_000 if opts.full else 200_000, opts.repeats, 20_000)
        # each strategy's kernel on a real run's launches (small has no V3 pool, so no JIT: the month has)
        preset, blocks = ("mainnet-month", 1_000) if opts.full else ("small", 2_000)
        rows += bench_strategy_kernels(preset, opts.cache_dir, blocks, opts.repeats, 2_000)
        rows += bench_end_to_end("small", opts.cache_dir)
        rows += bench_execution("small", opts.cache_dir)
        rows += bench_sweep("small", opts.cache_dir, opts.repeats)
        if opts.scaling or opts.full:  # one mainnet-month partition (7,200 blocks) and two
            from gpubt.data.synthetic import FIRST_BLOCK

            rows += bench_memory_scaling("mainnet-month", opts.cache_dir, 7_200)
            rows += bench_execution("mainnet-month", opts.cache_dir, FIRST_BLOCK + 7_200 - 1, "all")
        if opts.executors or opts.full:  # four mainnet-month partitions, local vs dask
            from gpubt.data.synthetic import FIRST_BLOCK

            rows += bench_executors("mainnet-month", opts.cache_dir, FIRST_BLOCK + 4 * 7_200 - 1, opts.workers)
        if opts.full:
            rows += bench_memory_scaling("mainnet-month", opts.cache_dir, 108_000)  # half month and the month
    print_table(rows)
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "mode": "full" if opts.full else "smoke" if opts.smoke else "quick",
                               "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
