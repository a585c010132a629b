"""The one way tests run gpubt: the real command line in a subprocess (exit codes, what a user sees), or the
same config composed in-process through Hydra (no process: config and input-validation checks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GPUBT = [sys.executable, "-m", "gpubt.cli"]
REPO = Path(__file__).resolve().parents[1]


def gpubt(*args, cwd=None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`gpubt ARGS...` as a user types it; returns the finished process (returncode, stdout, stderr). The test
    process's environment minus GPUBT_FAILPOINT (a kill point is set only by the test that passes it in `env`)."""
    full_env = {k: v for k, v in os.environ.items() if k != "GPUBT_FAILPOINT"}
    full_env.update(PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([*GPUBT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=full_env)


def compose(*overrides, config_name: str = "config"):
    """The config `gpubt run OVERRIDES...` builds (Hydra's compose API, nothing run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from gpubt.cli import _config_dir, _job_suffix

    if not OmegaConf.has_resolver("job_suffix"):
        OmegaConf.register_new_resolver("job_suffix", _job_suffix)
    with initialize_config_dir(config_dir=_config_dir(), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=[str(o) for o in overrides])


def run_inprocess(*overrides):
    """`gpubt run OVERRIDES...` in this process; returns its RunResult (`.out_dir` is the results folder;
    exceptions propagate)."""
    from gpubt.backtest import run

    return run(compose(*overrides))
