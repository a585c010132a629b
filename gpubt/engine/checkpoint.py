"""Checkpoint / resume: the controller's position, market state and results so far, written atomically.

Layout of a work folder (the results folder's hidden `.partial` twin until the run completes):

    checkpoint.json          position (next block), market state, counters, and how many result parts are valid
    trades-00000.parquet ... the run's result parts (gpubt/engine/results.py), written as the run goes
    opportunities-00000.parquet ...

The results so far are written as a part before checkpoint.json, which is replaced atomically last: a crash
at any point leaves either the old checkpoint (and maybe orphan parts, ignored and overwritten) or the new one.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
from gpubt.data.store import write_json_atomic

FAILPOINT_ENV = "GPUBT_FAILPOINT"  # fault injection for tests: "after-checkpoint:N" or "after-parts:N"


def _failpoint(stage: str, n: int) -> None:
    """SIGKILL this process at a named point (set by the kill/resume tests; a no-op otherwise)."""
    if os.environ.get(FAILPOINT_ENV) == f"{stage}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


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
        return self.folder / "checkpoint.json"

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
