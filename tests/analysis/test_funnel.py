"""The opportunity funnel (summary.json `funnel`, report.html, the monitor's `gpubt_funnel` counters): its counts
and values equal what the opportunities and trades tables say, and no stage exceeds the one before."""
import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt.analysis.postrun import FUNNEL_STAGES
from gpubt.data.store import Dataset
from gpubt.run.loop import Backtest
from gpubt.run.monitor import Monitor

from ..cli import run_inprocess
from ..market import GAS, arbitrage

E18 = 1e18


@pytest.fixture(scope="module")
def tiny_all(tiny_cache, tmp_path_factory):
    """`gpubt run strategy=all competition=default` on the tiny market (the bids make `won` < `attempted`)."""
    out = tmp_path_factory.mktemp("funnel") / "run"
    run_inprocess("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", "progress=false",
                  "strategy=all", "competition=default", "thresholds.min_profit_eth=0.0001", f"out_dir={out}")
    return out


def _column_sum(table, name):
    return sum(int(v) for v in table.column(name).to_pylist())


def test_funnel_equals_the_tables_and_narrows(tiny_all):
    summary = json.loads((tiny_all / "summary.json").read_text())
    funnel = summary["funnel"]
    opportunities = pq.read_table(tiny_all / "opportunities.parquet")
    trades = pq.read_table(tiny_all / "trades.parquet")
    assert set(funnel) == set(summary["run"]["strategies"])
    assert sum(trades.column("won").to_pylist()) < trades.num_rows  # the auction is at work in this run
    for name, stages in funnel.items():
        assert [s["stage"] for s in stages] == list(FUNNEL_STAGES)
        s = {row["stage"]: row for row in stages}
        counts = [row["count"] for row in stages]
        assert counts == sorted(counts, reverse=True), (name, counts)  # every stage <= the one before
        mine = opportunities.filter(pc.equal(opportunities.column("strategy"), name))
        assert s["over_threshold"]["count"] == mine.num_rows
        assert s["over_threshold"]["value_eth"] == pytest.approx(
            float(np.sum(mine.column("screen_net_profit_wei").to_numpy())) / E18, rel=1e-12, abs=1e-12)
        ours = trades.filter(pc.equal(trades.column("strategy"), name))
        # a static threshold keeps what the ordered exact pass executed: both stages are the trades table's rows
        assert s["executed"]["count"] == s["attempted"]["count"] == ours.num_rows
        assert s["exact_confirmed"]["count"] == summary["timing"]["by_strategy"][name]["trades"]
        assert s["executed"]["value_eth"] == s["attempted"]["value_eth"] == pytest.approx(
            _column_sum(ours, "net_profit_wei") / E18, rel=1e-12, abs=1e-12)
        won = ours.filter(ours.column("won"))
        assert s["won"]["count"] == won.num_rows == summary["by_strategy"][name]["trades"]
        assert s["won"]["value_eth"] == pytest.approx(_column_sum(won, "net_after_bid_wei") / E18, rel=1e-12,
                                                      abs=1e-12)
        assert s["screened"]["count"] == summary["timing"]["by_strategy"][name]["screened"]
        assert s["chosen"]["count"] == summary["timing"]["by_strategy"][name]["exact_priced"]
        for before, row in zip(stages[1:], stages[2:]):  # value lost = the stage before's value − this one's
            assert row["lost_eth"] == pytest.approx(before["value_eth"] - row["value_eth"], abs=1e-12)
    assert "Opportunity funnel" in (tiny_all / "report.html").read_text()


def test_monitor_counts_the_loop_stages(tiny_cache):
    from ..conftest import TINY

    ds = Dataset(tiny_cache / TINY)
    strategy = arbitrage(ds, min_profit_wei=10**14)
    monitor = Monitor(0)
    bt = Backtest(ds, strategy.backend, [strategy], GAS, 20, progress=False, monitor=monitor).run()
    sample = lambda stage: monitor.registry.get_sample_value(  # noqa: E731
        "gpubt_funnel_total", {"strategy": "arbitrage", "stage": stage})
    assert sample("screened") == strategy.stats["screened"] > 0
    assert sample("over_threshold") == bt.opportunities().num_rows > 0
    assert sample("chosen") == strategy.stats["exact_priced"]
    assert sample("exact_confirmed") == strategy.stats["trades"] == bt.trades().num_rows > 0
