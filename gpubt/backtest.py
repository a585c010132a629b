"""`gpubt run`: a config in, a published results folder out, in one straight walk.

    check the options ─► claim the work folder ─► open the dataset, build the strategies (run/setup.py)
      ─► the batch loop (run/loop.py; executor=dask: run/sharded.py) ─► the post-run (analysis/postrun.py)
      ─► the console text (report/console.py) ─► publish the folder
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from gpubt import schema
from gpubt.analysis.policy import settings as policy_settings
from gpubt.analysis.postrun import post_run
from gpubt.backend import resolve_backend
from gpubt.report.console import format_by_strategy, format_execution, format_scores, format_summary
from gpubt.report.html import write_report
from gpubt.run.checkpoint import Checkpointer
from gpubt.run.results import ResultParts
from gpubt.run.setup import RUN_ONLY_KEYS, RunSetup, check_options, check_ranges, open_dataset
from gpubt.run.sharded import SHARDS_FILE


@dataclass(frozen=True)
class RunResult:
    """What a finished run returns: its published results folder, the summary written to summary.json, the console
    text the command line prints (ending with the `results  <out_dir>` line), and the paths of the main outputs."""
    out_dir: Path
    summary: dict
    console: str
    summary_path: Path
    trades_path: Path
    opportunities_path: Path
    report_path: Path | None  # None with report.enabled=false


def _replay_totals(cfg, dataset, backend, work: Path, progress: bool) -> dict:
    """The run's loop again under execution=replay (every point sees history): what it would have reported, for
    the side-by-side of summary.json `execution.replay` and the report (executed trades, Σ exact net, wins), and
    its wall seconds (summary.json timing.replay_wall_seconds)."""
    from omegaconf import OmegaConf

    replay = OmegaConf.merge(cfg, {"execution": {"mode": "replay"}})
    setup = RunSetup.build(replay, dataset, backend)  # fresh strategies: the books start as built
    (work / "replay").mkdir(exist_ok=True)
    loop = setup.backtest(replay, dataset, backend, progress=progress, parts=ResultParts(work / "replay"),
                          label="replay, for comparison").run()
    shutil.rmtree(work / "replay", ignore_errors=True)
    summary = loop.execution.summary(loop.last_block)
    return {k: summary[k] for k in ("executed_trades", "executed_net_wei", "executed_net_eth", "executed_wins",
                                    "executed_win_rate")}, loop.stats["wall_seconds"]


def run(cfg) -> RunResult:
    """Run the backtest `cfg` describes and write its results folder; returns a RunResult (prints no summary).

    The run works in a hidden `.<out_dir>.partial` folder, locked by this process, renamed into place as its very
    last step, so a failed run leaves no results folder and two runs never share one. With
    `checkpoint_every_blocks` > 0 it checkpoints there, and `resume=true` (same config and out_dir) continues an
    interrupted run to identical results.
    """
    from omegaconf import OmegaConf

    from gpubt.run.checkpoint import CHECKPOINT_FILE, OutDirError, claim_work_folder
    from gpubt.run.monitor import Monitor

    check_options(cfg)
    check_ranges(cfg)  # before the dataset: a synthetic run would build its cache first
    policy_settings(cfg.get("policy"))  # policy.name too: the post-run reads it, after the whole loop
    progress = bool(cfg.progress)
    resume = bool(cfg.get("resume", False))
    out_dir = Path(cfg.out_dir)
    sharded = cfg.get("executor", {}).get("name", "local") == "dask"
    work, lock = claim_work_folder(out_dir, resume, "dask" if sharded else "local",
                                   {"local": CHECKPOINT_FILE, "dask": SHARDS_FILE})
    marker = work / (SHARDS_FILE if sharded else CHECKPOINT_FILE)
    try:
        backend = resolve_backend(cfg.backend.name)
        print(f"gpubt: backend {backend.name} ({backend.reason})", flush=True)
        dataset = open_dataset(cfg.data, progress)
        setup = RunSetup.build(cfg, dataset, backend)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        fingerprint = {k: v for k, v in resolved.items() if k not in RUN_ONLY_KEYS}
        every = int(cfg.get("checkpoint_every_blocks", 0))
        checkpointer = Checkpointer(work, every, fingerprint) if (every > 0 or resume) and not sharded else None
        m = cfg.monitor
        monitor = Monitor(int(m.port), anomaly_k=float(m.anomaly_k), anomaly_alpha=float(m.anomaly_alpha),
                          anomaly_warmup=int(m.anomaly_warmup), anomaly_min_std=float(m.anomaly_min_std)).start()
        if monitor.url:
            print(f"gpubt: Prometheus metrics at {monitor.url}", flush=True)
        parts = ResultParts(work)
        try:
            if sharded:  # every finished task is a resume point
                from gpubt.run.sharded import run_sharded

                first = dataset.first_block if cfg.data.get("first_block") is None else int(cfg.data.first_block)
                last = dataset.last_block if cfg.data.get("last_block") is None else int(cfg.data.last_block)
                if not dataset.first_block <= first <= last <= dataset.last_block:
                    raise schema.SchemaError(f"block range {first}..{last} is outside the dataset's "
                                             f"{dataset.first_block}..{dataset.last_block}")
                loop = run_sharded(cfg, dataset, work, fingerprint, setup.strategies, first, last, resume,
                                   progress, monitor)
            else:
                loop = setup.backtest(cfg, dataset, backend, progress=progress, checkpointer=checkpointer,
                                      monitor=monitor, parts=parts).run().result()
        except BaseException:
            if marker.is_file():
                print(f"gpubt: the run stopped; its last checkpoint is in {work} (resume=true continues it)",
                      file=sys.stderr, flush=True)
            raise
        finally:
            monitor.stop()
        if loop.execution and loop.execution["mode"] == "counterfactual" and cfg.execution.get("compare_replay"):
            loop.execution["replay"], loop.stats["replay_wall_seconds"] = _replay_totals(cfg, dataset, backend, work,
                                                                                         progress)
        scores, summary = post_run(cfg, work, backend, dataset, loop, setup)
        if cfg.report.enabled:
            write_report(work, display_dir=out_dir)  # re-reads what it plots from the files just written
        # the console text is formatted before publishing: nothing that can fail runs after it
        console = [format_summary(summary)]
        if lines := format_execution(summary):
            console.append(lines)
        by = summary["by_strategy"]
        if len(by) > 1 or any(r.get("note") for r in by.values()):
            console.append(format_by_strategy(by))
        if scores is not None and (lines := format_scores(scores, ran=list(cfg.strategy))):
            console.append(lines)
        if checkpointer:
            checkpointer.remove()
        (work / SHARDS_FILE).unlink(missing_ok=True)
        parts.remove()
        try:
            os.replace(work, out_dir)  # publish: the last step (the lock is held until after it)
        except OSError as exc:
            raise OutDirError(f"out_dir {out_dir}: cannot publish the results there ({exc.strerror or exc}); "
                              "the run's results were discarded") from None
    finally:
        if work.exists() and not marker.is_file():
            shutil.rmtree(work, ignore_errors=True)
        lock.release()
    console.append(f"results  {out_dir}")
    return RunResult(out_dir=out_dir, summary=summary, console="\n".join(console),
                     summary_path=out_dir / "summary.json", trades_path=out_dir / "trades.parquet",
                     opportunities_path=out_dir / "opportunities.parquet",
                     report_path=out_dir / "report.html" if cfg.report.enabled else None)
