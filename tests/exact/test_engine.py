"""exact.engine=device (the default: kernels/exact_search.py and exact_sandwich.py through
gpubt.strategies.exact_engine) against exact.engine=python (the Python-int oracle): identical trades.parquet for
strategy=all on the tiny and small synthetic markets, and the device engine really ran (its searches, mixed cycles'
refinements and sandwiches were not all handed back)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.cli import run_inprocess


def _run(tmp_path, cache, preset, engine):
    args = ["backend=cpu", f"data.preset={preset}", f"out_dir={tmp_path / engine}", "progress=false",
            "report.enabled=false", "strategy=all"]
    if cache is not None:
        args.append(f"data.cache_dir={cache}")
    if engine != "default":
        args.append(f"exact.engine={engine}")
    return run_inprocess(*args).out_dir


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_device_engine_trades_equal_the_oracle(preset, tiny_cache, tmp_path):
    from gpubt.strategies import exact_engine as engine

    cache = tiny_cache if preset == "tiny" else None
    engine.stats.clear()
    device = _run(tmp_path, cache, preset, "default")   # what a user gets: exact.engine=device
    searched = dict(engine.stats)
    python = _run(tmp_path, cache, preset, "python")
    a, b = pq.read_table(device / "trades.parquet"), pq.read_table(python / "trades.parquet")
    assert a.num_rows > 0 and a.equals(b)
    assert json.loads((device / "summary.json").read_text())["metrics"] == \
        json.loads((python / "summary.json").read_text())["metrics"]
    assert searched.get("device", 0) > 0 and searched.get("fallback", 0) <= searched["device"] // 100, searched
    # cycles with V3 hops too (their input refined on the device)
    assert searched.get("mixed_device", 0) > 0 and searched.get("mixed_fallback", 0) <= searched["mixed_device"] // 20
    # the sandwiches priced on the device (kernels/exact_sandwich.py)
    assert searched.get("sandwich_device", 0) > 0 and searched.get("sandwich_fallback", 0) == 0, searched
    assert engine.stats == searched  # exact.engine=python never calls the kernel


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(Exception, match=r"exact.engine='gpu': choose one of python, device"):
        run_inprocess("backend=cpu", "data.preset=tiny", f"out_dir={tmp_path / 'x'}", "exact.engine=gpu")
