"""Misuse of `gpubt run` (issue 22): bad option values, an unusable out_dir, two runs into one folder, a run
killed before its first checkpoint. Each ends in one clear line (exit 2) or in the right results, never in a
traceback, a half-published folder or a mix of two runs."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gpubt.run.checkpoint import OutDirError, WorkLock
from tests.cli import GPUBT, gpubt, run_inprocess

BASE = ("data.preset=tiny", "backend=cpu", "progress=false", "report.enabled=false")


def _run_args(cache, out, *extra):
    return (*BASE, f"data.cache_dir={cache}", f"out_dir={out}", *extra)


def _no_traceback(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------------------- publishing last
def test_a_failure_after_the_post_run_publishes_nothing(tiny_cache, tmp_path, monkeypatch):
    """Formatting the console summary (a TypeError there, e.g. a WETH price of inf) must not leave a published
    results folder: publishing is the last thing a run does."""
    from gpubt import backtest

    def broken(summary):
        raise TypeError("unsupported format string passed to NoneType.__format__")

    monkeypatch.setattr(backtest, "format_summary", broken)
    out = tmp_path / "run"
    with pytest.raises(TypeError):
        run_inprocess(*_run_args(tiny_cache, out))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results, no .run.partial, no lock file


# ------------------------------------------------------------------------------------------ option values
@pytest.mark.parametrize("override, key", [
    ("thresholds.min_profit_eth=nan", "thresholds.min_profit_eth"),
    ("thresholds.min_profit_eth=inf", "thresholds.min_profit_eth"),
    ("thresholds.min_profit_eth=-1", "thresholds.min_profit_eth"),
    ("batch_blocks=abc", "batch_blocks"),
    ("batch_blocks=2.5", "batch_blocks"),
    ("batch_blocks=0", "batch_blocks"),
    ("checkpoint_every_blocks=-1", "checkpoint_every_blocks"),
    ("memory_budget_mb=nan", "memory_budget_mb"),
    ("gas.priority_fee_gwei=inf", "gas.priority_fee_gwei"),
    ("gas.base_units=x", "gas.base_units"),
    ("metrics.initial_capital_eth=0", "metrics.initial_capital_eth"),
    ("monitor.port=70000", "monitor.port"),
    ("progress=maybe", "progress"),
    ("policy.name=greedy", "policy.name"),   # read by the post-run: checked before the loop all the same
    ("policy.capital_eth=0", "policy.capital_eth"),
    ("policy.capital_shares=[0.5,1.5]", "policy.capital_shares"),
    ("policy.capital_shares=[]", "policy.capital_shares"),
])
def test_bad_option_values_name_the_key(tiny_cache, tmp_path, override, key):
    cache = tmp_path / "cache"  # nothing may be generated for a config that cannot run
    with pytest.raises(ValueError) as exc:
        run_inprocess(*_run_args(cache, tmp_path / "run"), override)
    message = str(exc.value)
    assert message.startswith(f"{key}="), message
    assert "\n" not in message
    assert not cache.exists() and not any(tmp_path.iterdir())


def test_bad_option_value_is_one_line_exit_2(tmp_path):
    proc = gpubt("run", *_run_args(tmp_path / "cache", tmp_path / "run"), "thresholds.min_profit_eth=inf",
                 timeout=120)
    assert proc.returncode == 2
    assert _no_traceback(proc).startswith("gpubt: error: thresholds.min_profit_eth=inf")


# --------------------------------------------------------------------------------------------- the out_dir
def test_out_dir_under_a_file(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    proc = gpubt("run", *_run_args(tmp_path / "cache", afile / "x"), timeout=120)
    assert proc.returncode == 2
    line = _no_traceback(proc)
    assert line.startswith(f"gpubt: error: out_dir {afile / 'x'}: {afile} is a file, not a folder"), line
    assert not (tmp_path / "cache").exists()  # refused before any work (no dataset generated)


def test_out_dir_deeper_under_a_file(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    with pytest.raises(OutDirError, match=f"out_dir {afile}/a/b: {afile} is a file, not a folder"):
        run_inprocess(*_run_args(tmp_path / "cache", afile / "a" / "b"))
    assert not (tmp_path / "cache").exists()


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def test_out_dir_in_an_immutable_folder(tmp_path):
    """root ignores permission bits; the immutable attribute stops root too (skipped where chattr can't set it)."""
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if not _chattr("+i", frozen):
        pytest.skip("chattr +i is not available here (see the read-only file system test)")
    try:
        proc = gpubt("run", *_run_args(tmp_path / "cache", frozen / "run"), timeout=120)
    finally:
        _chattr("-i", frozen)
    assert proc.returncode == 2
    line = _no_traceback(proc)
    assert line.startswith(f"gpubt: error: out_dir {frozen / 'run'}: "), line
    assert "Operation not permitted" in line
    assert not (tmp_path / "cache").exists() and not any(frozen.iterdir())


def test_out_dir_on_a_read_only_file_system(tmp_path, monkeypatch):
    """A read-only mount, simulated: every create under tmp_path/ro fails with EROFS."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path):
        if str(path).startswith(str(ro)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(OutDirError, match=f"out_dir {ro}/run: .*Read-only file system"):
        run_inprocess(*_run_args(tmp_path / "cache", ro / "run"))
    assert not (tmp_path / "cache").exists() and not any(ro.iterdir())


# ------------------------------------------------------------------------------------ one run per folder
def test_a_held_folder_is_refused_naming_the_holder(tiny_cache, tmp_path):
    out = tmp_path / "run"
    work = tmp_path / ".run.partial"
    work.mkdir()
    (work / "checkpoint.json").write_text("{}")  # the holder's files: left exactly as they are
    lock = WorkLock(work)
    lock.acquire()
    try:
        for extra in ((), ("resume=true",), ("executor=dask",)):  # refused before a Dask cluster starts
            with pytest.raises(OutDirError, match=f"another gpubt run \\(pid {os.getpid()}\\) is writing"):
                run_inprocess(*_run_args(tiny_cache, out), *extra)
            assert sorted(p.name for p in work.iterdir()) == ["checkpoint.json"]
    finally:
        lock.release()
    assert not out.exists()


@pytest.mark.parametrize("leftover", ["empty", "parts-only"])
def test_a_partial_folder_without_checkpoint_starts_over(tiny_cache, tmp_path, capsys, leftover):
    out = tmp_path / "run"
    work = tmp_path / ".run.partial"
    work.mkdir()
    if leftover == "parts-only":
        (work / "trades-00000.parquet").write_bytes(b"half a part")
    (tmp_path / ".run.partial.lock").write_text("999999999\n")  # a dead holder's lock file: no lock held
    assert run_inprocess(*_run_args(tiny_cache, out)).out_dir == out
    assert "starting over" in capsys.readouterr().out
    assert (out / "summary.json").is_file() and not (out / "trades-00000.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except FileNotFoundError:
        return False


CHECKPOINTED = ("batch_blocks=20", "checkpoint_every_blocks=40", "thresholds.min_profit_eth=0.0001")


@pytest.fixture(scope="module")
def reference_trades(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("misuse") / "reference"
    run_inprocess(*_run_args(tiny_cache, out), *CHECKPOINTED)
    return pq.read_table(out / "trades.parquet")


def test_second_run_into_a_running_folder(tiny_cache, tmp_path, reference_trades):
    """Run 1 stops itself (SIGSTOP) right after its first checkpoint, holding its folder; a second run into the
    same out_dir (with or without resume=true) is refused at once naming run 1's pid; run 1 then finishes with
    its own results."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", GPUBT_FAILPOINT="after-checkpoint:1:stop")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([*GPUBT, "run", *_run_args(tiny_cache, out), *CHECKPOINTED], stdout=log,
                                 stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while not _stopped(first.pid):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "run 1 never reached its first checkpoint"
            time.sleep(0.05)
        assert (tmp_path / ".run.partial" / "checkpoint.json").is_file()
        for extra in ((), ("resume=true",)):
            t0 = time.monotonic()
            second = gpubt("run", *_run_args(tiny_cache, out), *CHECKPOINTED, *extra, timeout=120,
                           env={"GPUBT_FAILPOINT": ""})
            assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
            line = _no_traceback(second)
            assert f"another gpubt run (pid {first.pid}) is writing" in line, line
            assert "resume=true" not in line
            assert time.monotonic() - t0 < 60
            assert not out.exists()
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=180) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            os.kill(first.pid, signal.SIGCONT)
            first.wait(timeout=30)
    assert pq.read_table(out / "trades.parquet").equals(reference_trades)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.log", "run"]


@pytest.mark.parametrize("resume", [False, True])
def test_kill_before_the_first_checkpoint_then_rerun(tiny_cache, tmp_path, reference_trades, resume):
    """SIGKILL after the first result part, before checkpoint.json: the rerun (resume=true or not) starts over."""
    out = tmp_path / "run"
    killed = gpubt("run", *_run_args(tiny_cache, out), *CHECKPOINTED, timeout=180,
                   env={"GPUBT_FAILPOINT": "after-parts:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    work = tmp_path / ".run.partial"
    assert work.is_dir() and not (work / "checkpoint.json").exists()
    again = gpubt("run", *_run_args(tiny_cache, out), *CHECKPOINTED, *(("resume=true",) if resume else ()),
                  timeout=180, env={"GPUBT_FAILPOINT": ""})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "starting over" in again.stdout
    assert pq.read_table(out / "trades.parquet").equals(reference_trades)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_reader_that_leaves_early_gets_no_traceback(tiny_cache, tmp_path):
    """`gpubt run | head -1`: the run finishes and publishes; the closed stdout is one line on stderr, exit 141."""
    out = tmp_path / "piped"
    proc = subprocess.Popen([*GPUBT, "run", *_run_args(tiny_cache, out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()  # "gpubt: backend cpu ...", then the reader is gone
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=600) == 141, stderr[-2000:]
    assert "Traceback" not in stderr and "broken pipe" in stderr
    assert (out / "summary.json").is_file()
