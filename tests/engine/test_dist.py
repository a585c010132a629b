"""gpubt/dist.py's merge: the tasks' parts become the run's parts in the local loop's order."""
import json

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.dist import CHAINED, FREE, Task, merge, plan
from gpubt.engine.results import ResultParts

ORDER = ["arbitrage", "cexdex", "sandwich", "liquidation"]   # cfg order: the local loop adds rows in it per point
GROUPS = {FREE: ("arbitrage", "sandwich"), CHAINED: ("cexdex", "liquidation")}


def _rows(rng, n, lo, hi, strategies):
    """n rows at few (block, tx) points of lo..hi, so points shared by both groups are common."""
    return [{"strategy": str(rng.choice(strategies)), "block_number": int(rng.integers(lo, hi + 1)),
             "tx_index": int(rng.integers(-1, 2)), "path_id": i, "net_profit_wei": i} for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_puts_each_point_in_the_local_loops_order(tmp_path, seed):
    rng = np.random.default_rng(seed)
    bounds = [(100, 109), (110, 119), (120, 129)]
    rows = [r for lo, hi in bounds for r in _rows(rng, 40, lo, hi, ORDER)]
    # what the local loop writes: per batch, each strategy's rows in order, then a stable sort by point
    local = sorted(rows, key=lambda r: (r["block_number"], r["tx_index"], ORDER.index(r["strategy"])))
    tasks = []
    for group, names in GROUPS.items():
        task = Task(0, group, bounds, list(names), tmp_path / f"shard-0000-{group}")
        task.folder.mkdir()
        src = ResultParts(task.folder)
        for lo, hi in bounds:  # a part per partition, in the group's own (point) order
            mine = [r for r in rows if r["strategy"] in names and lo <= r["block_number"] <= hi]
            src.append([pa.Table.from_pylist(mine, schema.TRADES)],
                       [pa.Table.from_pylist([{k: r[k] for k in ("strategy", "block_number", "tx_index", "path_id")}
                                              for r in mine], schema.OPPORTUNITIES)])
        (task.folder / "done.json").write_text(json.dumps({"parts": src.count}))
        tasks.append(task)
    parts = ResultParts(tmp_path / "run")
    parts.folder.mkdir()
    merge(tasks, parts, ORDER)
    assert parts.count == len(bounds)  # one part per partition
    got = parts.read("trades")
    assert got.column("path_id").to_pylist() == [r["path_id"] for r in local]
    assert parts.read("opportunities").column("path_id").to_pylist() == [r["path_id"] for r in local]
    assert not any(t.folder.exists() for t in tasks)


def test_plan_shards_partitions_and_groups(tmp_path):
    from omegaconf import OmegaConf

    class Data:
        partitions = [(0, 9), (10, 19), (20, 29)]

    cfg = OmegaConf.create({"executor": {"shard_partitions": 2}, "strategy": {"arbitrage": {}}})
    tasks = plan(cfg, Data(), 5, 29, tmp_path, ["liquidation"], ["sandwich"])
    assert [(t.shard, t.group, t.bounds) for t in tasks] == [
        (0, FREE, [(5, 9), (10, 19)]), (0, CHAINED, [(5, 9), (10, 19)]), (1, FREE, [(20, 29)]),
        (1, CHAINED, [(20, 29)])]
    assert plan(cfg, Data(), 0, 29, tmp_path, ["cexdex"], [])[0].group == FREE  # the cycles need a free task
    only_chained = OmegaConf.create({"executor": {"shard_partitions": 1}, "strategy": {"cexdex": {}}})
    assert {t.group for t in plan(only_chained, Data(), 0, 29, tmp_path, ["cexdex"], [])} == {CHAINED}
