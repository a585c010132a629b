"""exact.engine=device (the default: kernels/exact_search.py, exact_sandwich.py and exact_uniswap.py through
gpubt.strategies.exact_engine) against exact.engine=python (the Python-int oracle): identical trades.parquet for
strategy=all on the tiny and small synthetic markets, and the device engine really ran (its searches, mixed cycles'
refinements and sandwiches were not all handed back; the V3 legs of CEX-DEX trades and liquidations' sales were
swapped there)."""
from __future__ import annotations

import json
from pathlib import Path

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
    # the V3 legs of the CEX-DEX trades and of the liquidations' collateral sales swapped on the device
    # (kernels/exact_uniswap.py v3_swaps; tiny has no V3 pool)
    summary = json.loads((device / "summary.json").read_text())
    pools = pq.read_table(Path(summary["run"]["dataset"]) / "pools.parquet").to_pydict()
    v3 = {p for p, protocol in zip(pools["pool_id"], pools["protocol"]) if protocol == "v3"}
    details = [(t["strategy"], json.loads(t["detail"])) for t in a.to_pylist()]
    cexdex_legs = sum(d["protocol"] == "v3" for kind, d in details if kind == "cexdex")
    sale_legs = sum(leg["pool"] in v3 for kind, d in details if kind == "liquidation" for leg in d["legs"])
    assert searched.get("v3_swap_device", 0) >= cexdex_legs + sale_legs, (cexdex_legs, sale_legs, searched)
    assert preset == "tiny" or (cexdex_legs > 0 and sale_legs > 0), (cexdex_legs, sale_legs)
    assert engine.stats == searched  # exact.engine=python never calls the kernel


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(Exception, match=r"exact.engine='gpu': choose one of python, device"):
        run_inprocess("backend=cpu", "data.preset=tiny", f"out_dir={tmp_path / 'x'}", "exact.engine=gpu")
