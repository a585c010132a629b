"""bench/gpu_check.sh, the one command a lent GPU runs (issue 25), run here as a functional check: every step runs
and reports its status, the CPU steps pass their --check, and the CUDA step either passes (a GPU) or says why it
could not run; what comes back fits a device call's limit (8 files)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpubt.backend import cuda_unavailable_reason

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"
STEPS = ("exact_engine_cuda", "exact_engine_cpu", "screen", "pytest_gpu")


@pytest.mark.slow
def test_gpu_check_runs_every_step(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "N": "200", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    status = {line.split(":")[0]: line for line in (out / "steps.txt").read_text().splitlines()
              if line.split(":")[0] in STEPS}
    assert set(status) == set(STEPS), (out / "steps.txt").read_text()
    for name in ("exact_engine_cpu", "screen", "pytest_gpu"):
        assert "exit 0 " in status[name], (out / f"{name}.txt").read_text()[-2000:]
    cuda = (out / "exact_engine_cuda.txt").read_text()
    if cuda_unavailable_reason() is None:
        assert "exit 0 " in status["exact_engine_cuda"], cuda[-2000:]
    else:
        assert "exit 0 " not in status["exact_engine_cuda"] and "backend=cuda is not usable here" in cuda
    assert "numba CPU" in (out / "exact_engine_cpu.txt").read_text()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 8, files
