"""Checkpoint / resume: SIGKILL the real CLI at several points; the resumed run's outputs equal an
uninterrupted run's."""
import json
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

CLI = [sys.executable, "-m", "gpubt.cli", "run", "backend=cpu", "data.preset=tiny", "progress=false",
       "batch_blocks=20", "thresholds.min_profit_eth=0.0001"]


def run_cli(cache, out, *extra, failpoint=None):
    env = dict(os.environ)
    env.pop("GPUBT_FAILPOINT", None)
    if failpoint:
        env["GPUBT_FAILPOINT"] = failpoint
    return subprocess.run([*CLI, f"data.cache_dir={cache}", f"out_dir={out}", *extra], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    proc = run_cli(work / "cache", work / "reference")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work


@pytest.mark.parametrize("failpoint", ["after-checkpoint:1", "after-parts:3", "after-checkpoint:4"])
def test_kill_and_resume_gives_identical_results(reference, tmp_path, failpoint):
    out = tmp_path / "run"
    work = tmp_path / ".run.partial"
    killed = run_cli(reference / "cache", out, "checkpoint_every_blocks=40", failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (work / "checkpoint.json").is_file() and not out.exists()

    again = run_cli(reference / "cache", out, "checkpoint_every_blocks=40")  # forgot resume=true
    assert again.returncode == 2 and "resume=true" in again.stderr

    resumed = run_cli(reference / "cache", out, "checkpoint_every_blocks=40", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not work.exists()
    ref = reference / "reference"
    for name in ("trades.parquet", "opportunities.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(ref / name)), name
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert got["metrics"] == want["metrics"]
    assert got["run"]["resumed_from_block"] > want["run"]["first_block"]


def test_resume_carries_what_strategies_carry(tmp_path):
    """Liquidations shrink the book and CEX-DEX skips pools whose state it traded: the checkpoint holds both, so
    a resumed strategy=all run neither liquidates a position twice nor re-trades a pool."""
    extra = ("strategy=all", "data.preset=small", "data.last_block=18000799", "batch_blocks=50",
             "report.enabled=false")
    ref = run_cli(tmp_path / "cache", tmp_path / "reference", *extra)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out, work = tmp_path / "run", tmp_path / ".run.partial"
    killed = run_cli(tmp_path / "cache", out, *extra, "checkpoint_every_blocks=300", failpoint="after-checkpoint:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoint = json.loads((work / "checkpoint.json").read_text())
    resumed_at = checkpoint["next_block"]
    assert set(checkpoint["strategies"]) == {"cexdex", "liquidation"}
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


def test_resume_refuses_a_changed_config(reference, tmp_path):
    out = tmp_path / "run"
    killed = run_cli(reference / "cache", out, "checkpoint_every_blocks=40", failpoint="after-checkpoint:2")
    assert killed.returncode == -signal.SIGKILL
    changed = run_cli(reference / "cache", out, "checkpoint_every_blocks=40", "resume=true", "strategy.arbitrage.max_hops=2")
    assert changed.returncode == 2 and "different settings (strategy)" in changed.stderr


def test_resume_without_checkpoint_says_so(reference, tmp_path):
    proc = run_cli(reference / "cache", tmp_path / "nothing", "resume=true")
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr
