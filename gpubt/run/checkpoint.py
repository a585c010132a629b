"""Checkpoint / resume: the controller's position, market state and results so far, written atomically.

Layout of a work folder (the results folder's hidden `.partial` twin until the run completes):

    checkpoint.json          position (next block), market state, counters, and how many result parts are valid
    trades-00000.parquet ... the run's result parts (gpubt/run/results.py), written as the run goes
    opportunities-00000.parquet ...

The results so far are written as a part before checkpoint.json, which is replaced atomically last: a crash
at any point leaves either the old checkpoint (and maybe orphan parts, ignored and overwritten) or the new one.

One process per work folder: `claim_work_folder` takes an flock on `.<out_dir>.partial.lock` beside it (the file
holds the holder's pid) before touching the folder, and the run keeps it until its results folder is published or
it failed. The kernel drops the lock with its process, so a killed run's folder is free again at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
from gpubt.data.store import write_json_atomic

# fault injection for tests: "after-checkpoint:N" or "after-parts:N" (SIGKILL there); with ":stop" appended the
# process SIGSTOPs itself instead, holding its work folder until a SIGCONT (the two-runs-one-folder tests)
FAILPOINT_ENV = "GPUBT_FAILPOINT"
CHECKPOINT_FILE = "checkpoint.json"


def _failpoint(stage: str, n: int) -> None:
    """SIGKILL (or SIGSTOP) this process at a named point (set by tests; a no-op otherwise)."""
    point = os.environ.get(FAILPOINT_ENV)
    if point == f"{stage}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)
    elif point == f"{stage}:{n}:stop":
        os.kill(os.getpid(), signal.SIGSTOP)


class OutDirError(ValueError):
    """out_dir cannot be used: its folder cannot be written, or another run is writing it."""


class WorkLock:
    """This process's exclusive hold on a work folder: fcntl.flock on `<work>.lock` beside it, which holds the
    holder's pid. `acquire()` never waits: it raises OutDirError naming the holder."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.path = self.work.with_name(self.work.name + ".lock")
        self._fd = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutDirError(f"another gpubt run (pid {holder}) is writing {self.work}; wait for it to finish, "
                                  "or choose another out_dir") from None
            except BaseException:
                os.close(fd)
                raise
            # the holder we waited on may have finished and unlinked the file between our open and flock
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file (still holding it, so no one locks a file about to vanish), then let go."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass  # a stale lock file is harmless: the next run locks it
        os.close(self._fd)
        self._fd = None


def _unwritable(out_dir: Path, exc: OSError) -> OutDirError:
    above = next((p for p in Path(out_dir).parents if p.exists()), None)  # mkdir says "File exists" for a file there
    if above is not None and not above.is_dir():
        reason = f"{above} is a file, not a folder"
    else:
        reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return OutDirError(f"out_dir {out_dir}: {reason}; choose an out_dir in a writable folder")


def claim_work_folder(out_dir: Path, resume: bool, executor: str, markers: dict) -> tuple[Path, WorkLock]:
    """The work folder of `out_dir`, created (or kept, to resume) and locked by this process: (folder, lock).

    Refused with one line before any work: out_dir exists, cannot be written, another run holds the folder, or it
    holds an interrupted run that resume=true continues. `markers`: executor name -> the file in the folder that
    marks its resumable run. A folder with no such file (a run killed before its first checkpoint) is removed
    and the run starts over."""
    out_dir = Path(out_dir)
    work = out_dir.parent / f".{out_dir.name}.partial"
    if out_dir.exists():
        raise FileExistsError(f"out_dir {out_dir} already exists; choose another out_dir (results are never "
                              "overwritten)")
    lock = WorkLock(work)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        raise _unwritable(out_dir, exc) from None
    try:
        if out_dir.exists():  # published by the run that held the lock a moment ago
            raise FileExistsError(f"out_dir {out_dir} already exists; choose another out_dir (results are never "
                                  "overwritten)")
        found = [name for name, marker in markers.items() if (work / marker).is_file()]
        if found and not resume:
            raise FileExistsError(f"{work} holds an interrupted run of out_dir={out_dir}: add resume=true to "
                                  "continue it, or delete that folder to start over")
        if found and executor not in found:
            raise FileExistsError(f"resume=true: {work} holds a run of executor={found[0]}; resume it with that "
                                  "executor")
        if resume and not found and not work.exists():
            raise FileExistsError(f"resume=true: no checkpoint at {work} (pass the interrupted run's out_dir; a run "
                                  "checkpoints only with checkpoint_every_blocks > 0 or executor=dask)")
        try:
            if not found and work.exists():
                print(f"gpubt: {work} holds no checkpoint (a run stopped before its first one): starting over",
                      flush=True)
                shutil.rmtree(work)
            work.mkdir(exist_ok=True)
        except OSError as exc:
            raise _unwritable(out_dir, exc) from None
    except BaseException:
        lock.release()
        raise
    return work, lock


def check_fingerprint(path: Path, saved: dict, fingerprint: dict) -> None:
    """Raise naming the settings that differ between an interrupted run (`saved`, read from `path`) and this one."""
    if saved != fingerprint:
        changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        raise ValueError(f"{path}: the interrupted run had different settings ({', '.join(changed)}); resume with "
                         "the same config, or delete the folder to start over")


class Checkpointer:
    """Writes a checkpoint every `every_blocks` blocks into `folder`; `load()` returns the last one or None."""

    def __init__(self, folder: Path, every_blocks: int, fingerprint: dict):
        self.folder = Path(folder)
        self.every_blocks = int(every_blocks)
        self.fingerprint = fingerprint  # what must match for a resume to be valid (config that changes results)
        self.written = 0  # checkpoints written by this process (the failpoints count them)
        self.last_block_written = None

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def due(self, block: int, first_block: int) -> bool:
        if self.every_blocks <= 0:
            return False
        since = block - (self.last_block_written if self.last_block_written is not None else first_block - 1)
        return since >= self.every_blocks

    def write(self, next_block: int, state, counters: dict, parts: int, strategies: dict | None = None) -> None:
        """Record the position after `parts` result parts (already written: see Backtest._spill); `strategies`:
        what each strategy carries across batches (Strategy.carried), by name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _failpoint("after-parts", self.written + 1)
        self.written += 1
        write_json_atomic({
            "fingerprint": self.fingerprint,
            "next_block": int(next_block),
            "parts": int(parts),
            "counters": counters,
            "strategies": strategies or {},
            "state": {
                "reserve0": [str(r) for r in state.reserve0],
                "reserve1": [str(r) for r in state.reserve1],
                "known": state.known.tolist(),
                "price_usd": [None if np.isnan(p) else float(p) for p in state.price_usd],
            },
        }, self.path)
        self.last_block_written = next_block - 1
        _failpoint("after-checkpoint", self.written)

    def load(self, state):
        """Restore `state` from the checkpoint; returns (next_block, counters, valid result parts, what the
        strategies carried) or None."""
        if not self.path.is_file():
            return None
        data = json.loads(self.path.read_text())
        check_fingerprint(self.path, data["fingerprint"], self.fingerprint)
        s = data["state"]
        state.reserve0 = [int(r) for r in s["reserve0"]]
        state.reserve1 = [int(r) for r in s["reserve1"]]
        state.known = np.asarray(s["known"], np.bool_)
        state.price_usd = np.asarray([np.nan if p is None else p for p in s["price_usd"]], np.float64)
        self.last_block_written = data["next_block"] - 1
        return data["next_block"], data["counters"], int(data["parts"]), data.get("strategies", {})

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
