"""executor=dask (gpubt/run/sharded.py) through the real CLI on a real LocalCluster: its results equal executor=local's,
with the chained strategies' state and the forked pools (execution=counterfactual) carried across shards, and a
failed task's run resumes where it stopped."""
import json

import pyarrow.parquet as pq
import pytest

from ..cli import gpubt, run_inprocess

pytest.importorskip("dask.distributed")

# the two 100-block partitions of tiny, free tasks of 40 blocks (two start inside a partition), every strategy, the
# builder auction: the merge puts both groups' trades of one point in the local loop's order, and liquidation /
# CEX-DEX trade on either side of the chain's link (tiny's default book holds 3 positions, 110 a day: a bigger one,
# generated in memory, without the dataset's rival history, which tests/strategies/test_rival_liquidations.py carries)
RUN = ("backend=cpu", "data.preset=tiny", "progress=false", "batch_blocks=20",
       "strategy=[arbitrage,cexdex,sandwich,liquidation,jit]", "competition=default", "report.enabled=false",
       "strategy.liquidation.generate.positions_per_day=4000")
DASK = ("executor=dask", "executor.workers=2", "executor.task_blocks=40")  # 3 free tasks per partition
FILES = ("trades.parquet", "opportunities.parquet", "daily_pnl.parquet", "validation_matches.parquet",
         "validation_misses.parquet", "validation_false_positives.parquet")


def run_cli(cache, out, *extra, failpoint=None):
    """`gpubt run` in a subprocess: dask starts its LocalCluster there, and a failpoint stops that process."""
    return gpubt("run", *RUN, f"data.cache_dir={cache}", f"out_dir={out}", *extra, timeout=900,
                 env={"GPUBT_FAILPOINT": failpoint or ""})


@pytest.fixture(scope="module")
def local(tiny_cache, tmp_path_factory):
    """executor=local on the tiny market: the folder holding the results folder `local`."""
    work = tmp_path_factory.mktemp("dist")
    run_inprocess(*RUN, f"data.cache_dir={tiny_cache}", f"out_dir={work / 'local'}")
    return work


def assert_same_results(got, want):
    for name in FILES:
        assert pq.read_table(got / name).equals(pq.read_table(want / name)), name
    a, b = (json.loads((d / "summary.json").read_text()) for d in (got, want))
    for key in ("metrics", "by_strategy", "validation", "competition"):
        assert a[key] == b[key], key
    assert a["execution"] == b["execution"]  # the forks crossed the shards: the same reaction, counted once
    return a, b


@pytest.mark.slow
def test_dask_equals_local(local, tmp_path):
    proc = run_cli(local / "cache", tmp_path / "dask", *DASK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = assert_same_results(tmp_path / "dask", local / "local")
    trades = pq.read_table(local / "local" / "trades.parquet").to_pydict()
    for strategy in ("liquidation", "cexdex", "arbitrage"):  # the chain's state crosses shard boundaries
        blocks = [b for b, s in zip(trades["block_number"], trades["strategy"]) if s == strategy]
        assert min(blocks) < 18000100 <= max(blocks), strategy
    # counterfactual: every strategy is in the chain (our trades fork pools), one task per partition
    assert got["execution"]["mode"] == "counterfactual" and got["execution"]["forked_at_end"] > 0
    assert got["timing"]["tasks"] == 2 and got["timing"]["workers_used"] >= 1
    assert 0 < got["timing"]["worker_utilization"] <= 1
    assert got["timing"]["pairs_per_second"] > 0 and got["run"]["resumed_from_block"] is None
    assert not list(tmp_path.glob(".dask.partial*"))


@pytest.mark.slow
def test_a_failed_task_resumes_where_it_stopped(local, tmp_path):
    out, work = tmp_path / "dask", tmp_path / ".dask.partial"
    failed = run_cli(local / "cache", out, *DASK, failpoint="task:shard-00001-chained")
    assert failed.returncode != 0 and "failpoint" in failed.stderr
    assert (work / "shards.json").is_file() and not out.exists()
    finished = sorted(p.parent.name for p in work.glob("shard-*/done.json"))
    assert "shard-00000-chained" in finished and "shard-00001-chained" not in finished

    again = run_cli(local / "cache", out, *DASK)  # forgot resume=true
    assert again.returncode == 2 and "resume=true" in again.stderr
    other = run_cli(local / "cache", out, "resume=true")
    assert other.returncode == 2 and "executor=dask" in other.stderr
    changed = run_cli(local / "cache", out, *DASK, "resume=true", "thresholds.min_profit_eth=0.5")
    assert changed.returncode == 2 and "different settings (thresholds)" in changed.stderr
    assert (work / "shards.json").is_file()  # a refused resume keeps the interrupted run

    resumed = run_cli(local / "cache", out, *DASK, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{len(finished)} of 2 tasks already done" in resumed.stdout
    got, _ = assert_same_results(out, local / "local")
    assert got["run"]["resumed_from_block"] is not None and not work.exists()


@pytest.mark.slow
def test_dask_replay_runs_free_tasks_in_parallel(tiny_cache, tmp_path):
    """execution=replay: the strategies that carry nothing run as free tasks (40 blocks each, in any order), the
    others as a chain; the merge equals executor=local's results."""
    run_inprocess(*RUN, "execution=replay", f"data.cache_dir={tiny_cache}", f"out_dir={tmp_path / 'local'}")
    proc = run_cli(tiny_cache, tmp_path / "dask", "execution=replay", *DASK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, _ = assert_same_results(tmp_path / "dask", tmp_path / "local")
    assert got["timing"]["tasks"] == 8 and got["timing"]["workers_used"] == 2


def test_bad_executor_settings_fail_cleanly(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match=r"executor\.task_blocks ?= ?-1"):
        run_inprocess(*RUN, *DASK, f"data.cache_dir={tiny_cache}", f"out_dir={tmp_path / 'bad'}",
                      "executor.task_blocks=-1")
    assert not (tmp_path / "bad").exists() and not (tmp_path / ".bad.partial").exists()
