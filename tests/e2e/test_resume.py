"""Checkpoint / resume: SIGKILL the real CLI at several points; the resumed run's outputs equal an
uninterrupted run's."""
import json
import signal

import pyarrow.parquet as pq
import pytest

from ..cli import gpubt, run_inprocess

RUN = ("backend=cpu", "data.preset=tiny", "progress=false", "batch_blocks=20", "thresholds.min_profit_eth=0.0001")


def run_cli(cache, out, *extra, failpoint=None):
    """`gpubt run` in a subprocess (the point here: it gets SIGKILLed), GPUBT_FAILPOINT set only when asked."""
    return gpubt("run", *RUN, f"data.cache_dir={cache}", f"out_dir={out}", *extra,
                 env={"GPUBT_FAILPOINT": failpoint or ""})


@pytest.fixture(scope="module")
def reference(tiny_cache, tmp_path_factory):
    """The uninterrupted run on the shared tiny market: its results folder."""
    return run_inprocess(*RUN, f"data.cache_dir={tiny_cache}",
                         f"out_dir={tmp_path_factory.mktemp('resume') / 'reference'}").out_dir


@pytest.mark.parametrize("failpoint", ["after-checkpoint:1", pytest.param("after-parts:3", marks=pytest.mark.slow),
                                       pytest.param("after-checkpoint:4", marks=pytest.mark.slow)])
def test_kill_and_resume_gives_identical_results(tiny_cache, reference, tmp_path, failpoint):
    out = tmp_path / "run"
    work = tmp_path / ".run.partial"
    killed = run_cli(tiny_cache, out, "checkpoint_every_blocks=40", failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (work / "checkpoint.json").is_file() and not out.exists()

    again = run_cli(tiny_cache, out, "checkpoint_every_blocks=40")  # forgot resume=true
    assert again.returncode == 2 and "resume=true" in again.stderr

    resumed = run_cli(tiny_cache, out, "checkpoint_every_blocks=40", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not work.exists()
    for name in ("trades.parquet", "opportunities.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(reference / name)), name
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    assert got["metrics"] == want["metrics"]
    assert got["run"]["resumed_from_block"] > want["run"]["first_block"]


@pytest.mark.slow  # generates the small market (2,000 blocks) and runs every strategy over 800 of them, 3 times
def test_resume_carries_what_strategies_carry(tmp_path):
    """Liquidations shrink the book and CEX-DEX skips pools whose state it traded: the checkpoint holds both, so
    a resumed strategy=all run neither liquidates a position twice nor re-trades a pool."""
    extra = ("strategy=all", "data.preset=small", "data.last_block=18000799", "batch_blocks=50",
             "report.enabled=false")
    run_inprocess(*RUN, f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'reference'}", *extra)
    out, work = tmp_path / "run", tmp_path / ".run.partial"
    killed = run_cli(tmp_path / "cache", out, *extra, "checkpoint_every_blocks=300", failpoint="after-checkpoint:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoint = json.loads((work / "checkpoint.json").read_text())
    resumed_at = checkpoint["next_block"]
    assert set(checkpoint["strategies"]) == {"cexdex", "liquidation", "_execution"}
    assert checkpoint["strategies"]["_execution"]["forked"]  # the pools our trades forked, and their states
    assert checkpoint["strategies"]["cexdex"]["arbed"] and any(checkpoint["strategies"]["liquidation"]["liquidations"])
    resumed = run_cli(tmp_path / "cache", out, *extra, "checkpoint_every_blocks=300", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    want = pq.read_table(tmp_path / "reference" / "trades.parquet")
    for strategy in ("liquidation", "cexdex"):  # both trade on either side of the checkpoint
        blocks = [b for b, s in zip(want.column("block_number").to_pylist(), want.column("strategy").to_pylist())
                  if s == strategy]
        assert min(blocks) < resumed_at <= max(blocks), strategy
    for name in ("trades.parquet", "opportunities.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(tmp_path / "reference" / name)), name
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, tmp_path / "reference"))
    assert got["metrics"] == want["metrics"] and got["by_strategy"] == want["by_strategy"]


def test_resume_refuses_a_changed_config(tiny_cache, tmp_path):
    out = tmp_path / "run"
    killed = run_cli(tiny_cache, out, "checkpoint_every_blocks=40", failpoint="after-checkpoint:2")
    assert killed.returncode == -signal.SIGKILL
    with pytest.raises(ValueError, match=r"the interrupted run had different settings \(strategy\)"):
        run_inprocess(*RUN, f"data.cache_dir={tiny_cache}", f"out_dir={out}", "checkpoint_every_blocks=40",
                      "resume=true", "strategy.arbitrage.max_hops=2")
    assert (tmp_path / ".run.partial" / "checkpoint.json").is_file()  # a refused resume keeps the interrupted run


def test_resume_without_checkpoint_says_so(tiny_cache, tmp_path):
    with pytest.raises(FileExistsError, match="no checkpoint"):
        run_inprocess(*RUN, f"data.cache_dir={tiny_cache}", f"out_dir={tmp_path / 'nothing'}", "resume=true")
    assert not (tmp_path / "nothing").exists() and not (tmp_path / ".nothing.partial").exists()
