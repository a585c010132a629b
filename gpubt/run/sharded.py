"""Dask executor: the batch loop sharded by dataset partition over a Dask cluster, merged in point order.

    gpubt run executor=dask executor.workers=2            # a LocalCluster of 2 worker processes
    gpubt run executor=dask executor.address=tcp://HOST:8786   # a running cluster (workers must see the dataset
                                                                # and the results folder at the same paths)

Every dataset partition starts from its own snapshot (state is versioned, not replayed), so the strategies that
carry nothing from batch to batch (arbitrage, sandwich, JIT) run as one task per shard of partitions, in any order,
on any worker. Liquidation and CEX-DEX carry state their own trades change (Strategy.carried: the book, the pools
whose state we traded), so they run as a chain: shard k's task starts from what shard k − 1's task carried. With
execution=counterfactual every strategy is in the chain: our trades fork pools, and the forks (run/execution.py:
Execution.carried) go from shard to shard. Each
task writes its result parts into its own folder (work/shard-KKKK-<group>); the host then merges each partition's
parts in the local executor's order (block, tx, then the strategies in config order), so trades.parquet,
opportunities.parquet and every metric equal `executor=local`'s. A finished task leaves done.json (its counters
and what it carried): `resume=true` runs only the tasks without one.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm

from gpubt.data.store import write_json_atomic
from gpubt.run.checkpoint import FAILPOINT_ENV, check_fingerprint
from gpubt.run.execution import summed_summaries
from gpubt.run.monitor import release_memory
from gpubt.run.results import ResultParts

SHARDS_FILE = "shards.json"   # the work folder's plan: fingerprint and shards (marks a resumable sharded run)
FREE, CHAINED = "free", "chained"


@dataclass
class Task:
    """One unit of work: blocks first..last (inside one dataset partition) of shard `shard`, for one group of
    strategies."""

    shard: int
    group: str                 # FREE: the strategies that carry nothing; CHAINED: the others
    first: int
    last: int
    names: list                # the group's strategies
    folder: Path

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1

    def done(self) -> dict | None:
        path = self.folder / "done.json"
        return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------------------ on a worker
_SETUPS: dict = {}  # per worker process: (config, group) -> (cfg, dataset, backend, RunSetup, initial carried)


def run_task(cfg_json: str, dataset_root: str, task: Task, top_block: int, threads: int, previous=None) -> dict:
    """Run `task` in this (worker) process and write done.json; `previous`: the chained group's result of the
    shard before (its `carried` is where this shard's book starts)."""
    import numba
    from omegaconf import OmegaConf

    from gpubt.backend import resolve_backend
    from gpubt.data.store import Dataset
    from gpubt.run.setup import RunSetup

    if threads > 0:  # the worker's share of the machine: prange loops would otherwise take every core
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    key = (cfg_json, task.group)
    if key not in _SETUPS:
        cfg = OmegaConf.create(json.loads(cfg_json))
        dataset = Dataset(dataset_root)
        backend = resolve_backend(cfg.backend.name)
        setup = RunSetup.build(cfg, dataset, backend, task.names)
        initial = {s.name: c for s in setup.strategies if (c := s.carried()) is not None}
        _SETUPS[key] = (cfg, dataset, backend, setup, initial)
    cfg, dataset, backend, setup, initial = _SETUPS[key]
    # the first shard starts from the book as built (this worker may have run later shards of the chain)
    carried = previous["carried"] if previous is not None else initial
    for strategy in setup.strategies:
        if strategy.name in carried:
            strategy.restore(carried[strategy.name])
        strategy.stats = dict.fromkeys(strategy.stats, 0)  # this task's counts (the objects serve many tasks)
    if os.environ.get(FAILPOINT_ENV) == f"task:{task.folder.name}":  # the resume tests' fault injection
        raise RuntimeError(f"failpoint {FAILPOINT_ENV}=task:{task.folder.name}")
    started = time.time()
    if task.folder.exists():  # an interrupted attempt's parts
        shutil.rmtree(task.folder)
    task.folder.mkdir(parents=True)
    parts = ResultParts(task.folder)
    cfg.data.first_block, cfg.data.last_block = task.first, task.last
    bt = setup.backtest(cfg, dataset, backend, progress=False, parts=parts, top_block=top_block)
    if bt.execution.counterfactual and previous is not None:  # the forks the shard before left
        bt._carried_execution = previous["carried"].get("_execution")
    bt.run()
    carried = {s.name: c for s in setup.strategies if (c := s.carried()) is not None}
    if bt.execution.counterfactual:
        carried["_execution"] = bt.execution.carried(bt.state)
    result = {
        "stats": bt.stats, "strategy_stats": bt.strategy_stats(), "parts": parts.count,
        "net_profit_wei": str(bt.net_profit_wei),
        "carried": carried, "execution": bt.execution.summary(task.last),
        "batch_blocks": bt.batch_blocks, "context": [bt.context.allocations, bt.context.seconds],
        "counts": bt.counts,
        "pid": os.getpid(), "started": started, "finished": time.time(),
    }
    write_json_atomic(result, task.folder / "done.json")
    return result


# ------------------------------------------------------------------------------------------------ on the host
def plan(cfg, dataset, first: int, last: int, work: Path, chained_names: list, free_names: list) -> list[Task]:
    """The tasks, by dataset partition (the shard): FREE tasks of `executor.task_blocks` blocks (rounded up to
    whole batches, so their batches are the local loop's; 0: the partition) when a strategy carries nothing, and
    one CHAINED task for the partition when a strategy carries state (few, long links: each waits for a worker to
    free up)."""
    step = int(cfg.executor.get("task_blocks", 0))
    if step < 0:
        raise ValueError(f"executor.task_blocks = {step}: must be >= 0 (0: a dataset partition per task)")
    batch = int(cfg.batch_blocks)
    step = -(-step // batch) * batch if step else None
    free = bool(free_names)
    tasks = []
    for lo, hi in dataset.partitions:
        lo, hi = max(lo, first), min(hi, last)
        if lo > hi:  # outside the run's range
            continue
        shard = len({t.shard for t in tasks})
        if free:
            for k, start in enumerate(range(lo, hi + 1, step or hi - lo + 1)):  # the loop's batches start at lo
                tasks.append(Task(shard, FREE, start, min(start + (step or hi - lo + 1) - 1, hi), list(free_names),
                                  work / f"shard-{shard:05d}-free-{k:03d}"))
        if chained_names:
            tasks.append(Task(shard, CHAINED, lo, hi, list(chained_names), work / f"shard-{shard:05d}-chained"))
    return tasks


def _check_plan(work: Path, fingerprint: dict, tasks: list[Task], resume: bool) -> None:
    """Write the plan, or on resume check that the interrupted run had the same settings and shards."""
    path = work / SHARDS_FILE
    plan_ = {"fingerprint": fingerprint, "tasks": [[t.shard, t.group, t.first, t.last] for t in tasks]}
    if resume and path.is_file():
        old = json.loads(path.read_text())
        check_fingerprint(path, old["fingerprint"], fingerprint)
        if old["tasks"] != plan_["tasks"]:
            raise ValueError(f"{path}: the interrupted run had other shards (executor.task_blocks or the "
                             "dataset changed); resume with the same ones, or delete the folder to start over")
        return
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_, path)


def client_for(executor_cfg):
    """A dask.distributed Client: on `executor.address`, or on a LocalCluster of `executor.workers` processes
    (0: one per core) with `executor.threads_per_worker` threads each."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("executor=dask needs dask.distributed: pip install -e '.[dist]'") from None
    if executor_cfg.get("address"):
        return Client(str(executor_cfg.address)), None
    import dask

    workers = int(executor_cfg.get("workers", 0)) or os.cpu_count() or 1
    threads = int(executor_cfg.get("threads_per_worker", 1))
    # the workers' statistical profiler samples every thread's stack every 10 ms (~5 % of a task's time here), and
    # Dask's MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold: every large numpy temporary is then
    # mmapped and unmapped (page faults each time)
    with dask.config.set({"distributed.worker.profile.enabled": False,
                          "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        # numba's thread pool sized before numba loads: with the OpenMP layer, idle pool threads of one worker spin
        # on the cores the others compute on (set_num_threads alone keeps the pool: tasks ran 1.6x slower)
        env = {"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address=None, silence_logs=40, env=env)
    return Client(cluster), cluster


def run_sharded(cfg, dataset, work: Path, fingerprint: dict, strategies: list, first: int, last: int,
                resume: bool, progress: bool = True, monitor=None):
    """The batch loop of `cfg` as Dask tasks; returns the run with its parts merged into `work`.
    `strategies`: the host's strategy objects (which of them carry state decides the groups)."""
    from omegaconf import OmegaConf

    from gpubt.run.results import LoopResult

    chained = [s.name for s in strategies if s.carried() is not None]
    if cfg.execution.mode == "counterfactual":  # our trades fork the market: every shard continues the one before
        chained = [s.name for s in strategies]
    free = [s.name for s in strategies if s.name not in chained]
    tasks = plan(cfg, dataset, first, last, work, chained, free)
    _check_plan(work, fingerprint, tasks, resume)
    done = {id(t): t.done() for t in tasks}
    resumed = any(done.values())
    cfg_json = json.dumps(OmegaConf.to_container(cfg, resolve=True))
    threads = int(cfg.executor.get("threads_per_worker", 1))
    results: dict = {}
    t0 = time.perf_counter()
    total = sum(t.blocks for t in tasks)
    with tqdm(total=total, unit="blk", desc=f"backtest [dask, {len(tasks)} tasks]", disable=not progress,
              dynamic_ncols=True) as bar:
        for t in tasks:
            if done[id(t)]:
                results[id(t)] = done[id(t)]
                bar.update(t.blocks)
        todo = [t for t in tasks if not done[id(t)]]
        if resumed:
            print(f"gpubt: dask: {len(tasks) - len(todo)} of {len(tasks)} tasks already done (resume)", flush=True)
        n_workers = 0
        if todo:
            client, cluster = client_for(cfg.executor)
            n_workers = len(client.scheduler_info()["workers"])
            try:
                from dask.distributed import as_completed

                def submit(t, previous=None):
                    # the chain is the critical path: its tasks go first when a worker frees up
                    fut = client.submit(run_task, cfg_json, str(dataset.root), t, first, threads, previous,
                                        pure=False, priority=10 if t.group == CHAINED else 0)
                    futures[fut] = t
                    return fut

                futures: dict = {}
                chain = [t for t in tasks if t.group == CHAINED and not done[id(t)]]
                previous = next((done[id(t)] for t in reversed(tasks) if t.group == CHAINED and done[id(t)]), None)
                pending = as_completed([submit(t) for t in todo if t.group == FREE] +
                                       ([submit(chain.pop(0), previous)] if chain else []))
                for fut in pending:
                    t = futures[fut]
                    results[id(t)] = fut.result()
                    if t.group == CHAINED and chain:  # the next link starts from what this one carried
                        pending.add(submit(chain.pop(0), results[id(t)]))
                    bar.update(t.blocks)
                    if monitor is not None:  # a task is the monitor's batch here
                        r = results[id(t)]
                        monitor.observe_batch(t.blocks, r["stats"]["wall_seconds"],
                                              {k: v[0] for k, v in r["counts"].items()},
                                              {k: v[1] for k, v in r["counts"].items() if v[1]},
                                              int(r["net_profit_wei"]) / 1e18, first_block=t.first,
                                              last_block=t.last)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    parts = ResultParts(work)
    merge(tasks, parts, [s.name for s in strategies])
    stats = _sum_stats([results[id(t)] for t in tasks])
    stats["wall_seconds"] = time.perf_counter() - t0
    stats["tasks"] = len(tasks)
    ran = [results[id(t)] for t in tasks if not done[id(t)]]
    stats["workers_used"] = len({r["pid"] for r in ran})
    # how busy the workers were: task seconds ÷ (workers × the loop's wall); the rest is waiting (the chain, the
    # last tasks) and start-up
    loop_wall = max((r["finished"] for r in ran), default=0) - min((r["started"] for r in ran), default=0)
    stats["worker_utilization"] = (sum(r["finished"] - r["started"] for r in ran) / (n_workers * loop_wall)
                                   if ran and loop_wall > 0 else None)
    per = _sum_strategy_stats([results[id(t)] for t in tasks])
    restored = ({name: sum(done[id(t)]["strategy_stats"].get(name, {}).get("screened", 0) for t in tasks
                           if done[id(t)]) for name in per} if resumed else {})
    if cfg.execution.mode == "counterfactual":  # the chain carried the counts: its last link holds the run's
        execution = [results[id(t)] for t in tasks if t.group == CHAINED][-1].get("execution")
    else:  # every task counted its own
        execution = summed_summaries([results[id(t)].get("execution") or {} for t in tasks])
    return LoopResult(parts, first, last, stats, per, restored, first if resumed else None,
                      min((r["batch_blocks"] for r in results.values()), default=int(cfg.batch_blocks)),
                      sum(r["context"][0] for r in results.values()), sum(r["context"][1] for r in results.values()),
                      execution)


def _sum_stats(results: list[dict]) -> dict:
    """The tasks' loop counters summed."""
    out = {"batches": 0}
    for r in results:
        for k, v in r["stats"].items():
            if k != "wall_seconds":
                out[k] = out.get(k, 0) + v
    return out


def _sum_strategy_stats(results: list[dict]) -> dict:
    """Per strategy, the tasks' stats summed (compile_seconds: the largest, as workers compile side by side)."""
    out: dict = {}
    for r in results:
        for name, stats in r["strategy_stats"].items():
            mine = out.setdefault(name, {})
            for k, v in stats.items():
                mine[k] = max(mine.get(k, 0.0), v) if k == "compile_seconds" else mine.get(k, 0) + v
    return out


def merge(tasks: list[Task], parts: ResultParts, order: list) -> None:
    """The tasks' parts as the run's parts, one per shard, in point order and, at one point, in the strategies'
    `order` (what the local loop's stable sort gives). A shard with one group's parts is moved, not rewritten."""
    by_shard: dict = {}
    for t in tasks:
        by_shard.setdefault(t.shard, []).append(t)
    for shard in sorted(by_shard):
        sources = []
        for t in by_shard[shard]:
            src = ResultParts(t.folder)
            src.count = t.done()["parts"]
            sources.append(src)
        if len(sources) == 1:
            for i in range(sources[0].count):
                for name in ResultParts.NAMES:
                    os.replace(sources[0].path(name, i), parts.path(name, parts.count))
                parts.count += 1
        elif any(src.count for src in sources):
            tables = {name: [pq.read_table(src.path(name, i)) for src in sources for i in range(src.count)]
                      for name in ResultParts.NAMES}
            parts.append(tables["trades"], tables["opportunities"], order)
            tables = None
            release_memory()
    for t in tasks:
        shutil.rmtree(t.folder, ignore_errors=True)
