"""gpubt/run/sharded.py's merge: the tasks' parts become the run's parts in the local loop's order."""
import json

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.run.sharded import CHAINED, FREE, Task, merge, plan
from gpubt.run.results import ResultParts

ORDER = ["arbitrage", "cexdex", "sandwich", "liquidation"]   # cfg order: the local loop adds rows in it per point
GROUPS = {FREE: ("arbitrage", "sandwich"), CHAINED: ("cexdex", "liquidation")}


def _rows(rng, n, lo, hi, strategies):
    """n rows at few (block, tx) points of lo..hi, so points shared by both groups are common (path_id: unique)."""
    return [{"strategy": str(rng.choice(strategies)), "block_number": int(rng.integers(lo, hi + 1)),
             "tx_index": int(rng.integers(-1, 2)), "path_id": lo * 1000 + i, "net_profit_wei": i} for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_puts_each_point_in_the_local_loops_order(tmp_path, seed):
    rng = np.random.default_rng(seed)
    shards = [(100, 109), (110, 119), (120, 129)]
    rows = [r for lo, hi in shards for r in _rows(rng, 40, lo, hi, ORDER)]
    # what the local loop writes: per batch, each strategy's rows in order, then a stable sort by point
    local = sorted(rows, key=lambda r: (r["block_number"], r["tx_index"], ORDER.index(r["strategy"])))
    tasks = []
    for shard, (lo, hi) in enumerate(shards):
        for group, names in GROUPS.items():
            task = Task(shard, group, lo, hi, list(names), tmp_path / f"shard-{shard:05d}-{group}")
            task.folder.mkdir()
            src = ResultParts(task.folder)
            mine = [r for r in rows if r["strategy"] in names and lo <= r["block_number"] <= hi]
            for half in (mine[: len(mine) // 2], mine[len(mine) // 2:]):  # two parts, each in point order
                src.append([pa.Table.from_pylist(half, schema.TRADES)],
                           [pa.Table.from_pylist([{k: r[k] for k in ("strategy", "block_number", "tx_index",
                                                                      "path_id")} for r in half],
                                                 schema.OPPORTUNITIES)])
            (task.folder / "done.json").write_text(json.dumps({"parts": src.count}))
            tasks.append(task)
    parts = ResultParts(tmp_path / "run")
    parts.folder.mkdir()
    merge(tasks, parts, ORDER)
    assert parts.count == len(shards)  # one part per shard
    assert parts.read("trades").column("path_id").to_pylist() == [r["path_id"] for r in local]
    assert parts.read("opportunities").column("path_id").to_pylist() == [r["path_id"] for r in local]
    assert not any(t.folder.exists() for t in tasks)


def test_plan_cuts_partitions_into_whole_batches(tmp_path):
    from omegaconf import OmegaConf

    class Data:
        partitions = [(0, 99), (100, 199), (200, 229)]

    cfg = OmegaConf.create({"executor": {"task_blocks": 30}, "batch_blocks": 20, "strategy": {"arbitrage": {}}})
    tasks = plan(cfg, Data(), 5, 229, tmp_path, ["liquidation"], ["sandwich"])
    # 30 blocks round up to 40 (two batches); free tasks start where the local loop's batches do (at 5, 100, 200);
    # the chain takes a partition a link
    free = [[(5, 44), (45, 84), (85, 99)], [(100, 139), (140, 179), (180, 199)], [(200, 229)]]
    chained = [(5, 99), (100, 199), (200, 229)]
    assert [(t.shard, t.group, t.first, t.last) for t in tasks] == [
        x for i in range(3) for x in [(i, FREE, lo, hi) for lo, hi in free[i]] + [(i, CHAINED, *chained[i])]]
    assert len({t.folder for t in tasks}) == len(tasks)
    whole = OmegaConf.create({"executor": {"task_blocks": 0}, "batch_blocks": 20, "strategy": {"arbitrage": {}}})
    assert [(t.first, t.last) for t in plan(whole, Data(), 0, 150, tmp_path, [], ["arbitrage"])] == [(0, 99),
                                                                                                   (100, 150)]
    only_chained = OmegaConf.create({"executor": {}, "batch_blocks": 20, "strategy": {"cexdex": {}}})
    assert {t.group for t in plan(only_chained, Data(), 0, 229, tmp_path, ["cexdex"], [])} == {CHAINED}
    with pytest.raises(ValueError, match="task_blocks = -1"):
        plan(OmegaConf.create({"executor": {"task_blocks": -1}, "batch_blocks": 20, "strategy": {}}), Data(), 0, 9,
             tmp_path, [], [])
