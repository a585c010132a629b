"""`gpubt bench --smoke`: the benchmark suite runs end to end in seconds, so it cannot silently rot."""
import json

import pytest

from ..cli import gpubt


@pytest.mark.slow  # ~20 s: every workload once, dask's LocalCluster included
def test_bench_smoke(tmp_path):
    out = tmp_path / "suite.json"
    proc = gpubt("bench", "--smoke", "--cache-dir", tmp_path / "c", "--json", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and report["machine"]["cores"] >= 1
    workloads = [r["workload"] for r in report["rows"]]
    for prefix in ("kernel:", "sandwich kernel:", "jit kernel:", "liquidation kernel:", "cexdex kernel:",
                   "end to end: tiny, strategy=all", "screening ceiling: tiny", "context cost", "peak RSS (tiny",
                   "peak RSS as the block count doubles", "threshold sweep", "end to end, executor=dask 2 workers",
                   "peak RSS, executor=dask"):
        assert any(w.startswith(prefix) for w in workloads), prefix
    for r in report["rows"]:
        assert r["ratio"] > 0 and r["target"]
    # every strategy's kernel is timed against its pure-Python build, a NumPy reference it agreed with on the items
    # the reference covers, and a roofline
    for name in ("sandwich", "jit", "liquidation", "cexdex"):
        baselines = {r["baseline"].split(" (")[0] for r in report["rows"] if r["workload"].startswith(f"{name} kernel:")}
        assert baselines == {"pure Python", "NumPy vectorized", "gather-only roofline"}, (name, baselines)
    # the ceiling is blocks ÷ the run's own screen seconds, so it is above the run's end-to-end rate
    end, ceiling = (next(r for r in report["rows"] if r["workload"].startswith(p)) for p in
                    ("end to end: tiny", "screening ceiling: tiny"))
    assert ceiling["ratio"] > end["ratio"]
    assert "met?" in proc.stdout
