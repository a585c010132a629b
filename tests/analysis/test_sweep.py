"""Vectorized threshold sweeps: equal to a naive per-config loop, and to re-running the backtest per threshold."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gpubt.analysis.sweep import (SweepInput, ThresholdGrid, linear_grid, prefix_metrics, sharpe_from_sums, static_grid,
                                sweep)
from gpubt.analysis.thresholds import FEATURES, BlockFeatures

E18 = 10**18
GAS = dict(base_units=50_000, per_hop_units=60_000, priority_fee_wei=10**9)


def run_backtest(dataset_path, min_profit_wei: int, batch_blocks: int = 50):
    """A cpu backtest of WETH cycles (≤ 3 hops) over the whole dataset; returns the finished Backtest."""
    from gpubt.data.store import Dataset
    from gpubt.run.loop import Backtest
    from gpubt.exact.gas import GasModel

    from ..market import arbitrage

    ds = Dataset(dataset_path)
    strategy = arbitrage(ds, gas=GasModel(**GAS), min_profit_wei=min_profit_wei, max_hops=3, min_hops=2)
    return Backtest(ds, strategy.backend, [strategy], GasModel(**GAS), batch_blocks=batch_blocks,
                    progress=False).run()


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cache):
    from ..conftest import TINY

    return tiny_cache / TINY


def _random_input(rng, n_trades=400, n_blocks=60, run_min=1e15):
    block = np.sort(rng.integers(100, 100 + n_blocks, n_trades))
    tx = rng.integers(-1, 30, n_trades)
    screen = run_min + rng.exponential(2e16, n_trades)
    screen[::7] = screen[3]                      # ties in the screened profit
    net = [int(s) - int(rng.integers(0, 3 * 10**16)) for s in screen]   # some lose, huge and odd wei values
    net[5] = 0
    return SweepInput.from_arrays(block, tx, screen, net, 100, 100 + n_blocks - 1, run_min), net


def naive_sweep(inp: SweepInput, grid: ThresholdGrid, net_wei: list[int]) -> list[dict]:
    """One config at a time in plain Python: the reference the kernel must equal exactly."""
    rows = []
    for k in range(len(grid)):
        thr = grid.threshold_wei(k)
        taken = [i for i in range(len(inp.block_idx)) if inp.screen_net_wei[i] > thr[inp.block_idx[i]]]
        nets = [net_wei[i] for i in taken]
        equity = peak = max_dd = 0.0
        per_block = {}
        for i in taken:
            equity += inp.net_eth[i]
            peak = max(peak, equity)
            max_dd = max(max_dd, peak - equity)
            per_block.setdefault(int(inp.block_idx[i]), []).append(inp.net_eth[i])
        s1 = s2 = 0.0
        for b in sorted(per_block):
            pnl = 0.0
            for v in per_block[b]:
                pnl += v
            s1 += pnl
            s2 += pnl * pnl
        win = sum(v for v in nets if v > 0)
        loss = sum(v for v in nets if v <= 0)
        rows.append({"trades": len(taken), "wins": sum(1 for v in nets if v > 0), "net_profit_wei": sum(nets),
                     "profit_factor": win / -loss if loss < 0 else (math.inf if win > 0 else 0.0),
                     "max_drawdown_eth": max_dd, "sharpe": sharpe_from_sums(s1, s2, inp.n_blocks),
                     "blocks_below_run_threshold": int(np.sum(thr < inp.run_min_profit_wei * (1 - 1e-12)))})
    return rows


def _time_ordered_nets(inp: SweepInput) -> list[int]:
    return [int(h) * 10**9 + int(lo) for h, lo in zip(inp.net_hi.tolist(), inp.net_lo.tolist())]


def _assert_equal(result, reference):
    table = result.table.to_pylist()
    assert len(table) == len(reference)
    for got, ref in zip(table, reference):
        for key, value in ref.items():
            got_value = int(got[key]) if key == "net_profit_wei" else got[key]
            assert got_value == value, (key, got_value, value)


def test_static_sweep_equals_naive_loop():
    inp, _ = _random_input(np.random.default_rng(1))
    grid = static_grid(inp.n_blocks, [0.0, 0.001, 0.005, 0.01, 0.02, 0.04, 1.0])
    result = sweep(inp, grid)
    _assert_equal(result, naive_sweep(inp, grid, _time_ordered_nets(inp)))
    # 0.0 is below the run's threshold (0.001 ETH): flagged in every block and never the best
    assert result.table.column("blocks_below_run_threshold")[0].as_py() == inp.n_blocks
    assert result.best["config"] != 0 and result.best["exact"]


def test_block_dependent_sweep_equals_naive_loop():
    rng = np.random.default_rng(2)
    inp, _ = _random_input(rng)
    values = rng.normal(size=(inp.n_blocks, len(FEATURES)))
    features = BlockFeatures(100, FEATURES, values, np.full(inp.n_blocks, 2e10))
    grid = linear_grid(features, [0.002, 0.01], {"gas_pct": [-0.004, 0.0, 0.003], "eth_vol": [0.0, 0.002]})
    assert len(grid) == 12 and grid.names == ("min_profit_eth", "w_gas_pct_eth", "w_eth_vol_eth")
    result = sweep(inp, grid, objective="sharpe")
    _assert_equal(result, naive_sweep(inp, grid, _time_ordered_nets(inp)))
    random = linear_grid(features, [0.002, 0.01], {"gas_pct": [-0.004, 0.003]}, search="random", k=25, seed=4)
    assert len(random) == 25
    _assert_equal(sweep(inp, random), naive_sweep(inp, random, _time_ordered_nets(inp)))


def test_parallel_and_serial_builds_agree(monkeypatch):
    import gpubt.analysis.sweep as sweep_module

    inp, _ = _random_input(np.random.default_rng(5), n_trades=300)
    grid = static_grid(inp.n_blocks, np.linspace(0.0, 0.05, 40))
    serial = sweep(inp, grid).table
    monkeypatch.setattr(sweep_module, "PARALLEL_MIN_WORK", 0)
    assert sweep(inp, grid).table.equals(serial)
    _assert_equal(sweep(inp, grid), naive_sweep(inp, grid, _time_ordered_nets(inp)))


def test_prefix_metrics_equal_the_kernel():
    inp, _ = _random_input(np.random.default_rng(3), n_trades=2000)
    eth = np.linspace(0.001, 0.08, 97)
    result = sweep(inp, static_grid(inp.n_blocks, eth))
    prefix = prefix_metrics(inp, eth * E18)
    assert prefix["trades"].tolist() == result.table.column("trades").to_pylist()
    assert prefix["wins"].tolist() == result.table.column("wins").to_pylist()
    assert prefix["net_profit_wei"] == [int(v) for v in result.table.column("net_profit_wei").to_pylist()]


def test_objectives_and_errors():
    inp, _ = _random_input(np.random.default_rng(4))
    grid = static_grid(inp.n_blocks, [0.001, 0.01, 0.03])
    for objective in ("net_profit", "sharpe", "profit_factor"):
        result = sweep(inp, grid, objective)
        column = {"net_profit": "net_profit_eth"}.get(objective, objective)
        assert result.best[column] == max(result.table.column(column).to_pylist())
    with pytest.raises(ValueError, match="objective"):
        sweep(inp, grid, "alpha")
    with pytest.raises(ValueError, match="blocks"):
        sweep(inp, static_grid(inp.n_blocks + 1, [0.01]))


def test_one_config_sweep_equals_the_static_backtest(tiny_dataset):
    """Sweeping thresholds over one run's trades gives exactly what re-running the backtest at each threshold gives."""
    from gpubt.analysis.metrics import summarize_trades

    base = run_backtest(tiny_dataset, min_profit_wei=10**14)
    trades = base.trades()
    assert trades.num_rows > 20
    inp = SweepInput.from_trades(trades, base.first_block, base.last_block, 10**14)
    eth = [0.0001, 0.002, 0.01]
    result = sweep(inp, static_grid(inp.n_blocks, eth))
    counts = result.table.column("trades").to_pylist()
    assert counts[0] > counts[1] > counts[2] > 0, counts
    for row, min_eth in zip(result.table.to_pylist(), eth):
        rerun = base if min_eth == 0.0001 else run_backtest(tiny_dataset, min_profit_wei=round(min_eth * E18))
        summary = summarize_trades(rerun.trades(), 0, 0, inp.n_blocks)
        assert row["trades"] == summary["trades"]
        assert str(int(row["net_profit_wei"])) == summary["net_profit_wei"]
        assert row["win_rate"] == pytest.approx(summary["win_rate"], abs=0, rel=1e-15)
        assert row["exact"]
    # the same from the opportunities table plus exact nets of the selected rows (selection recomputed)
    opps = base.opportunities()
    exact = {(r["block_number"], r["tx_index"], r["path_id"]): int(r["net_profit_wei"]) for r in trades.to_pylist()}
    nets = [exact.get((b, t, p)) for b, t, p in zip(opps.column("block_number").to_pylist(),
                                                    opps.column("tx_index").to_pylist(),
                                                    opps.column("path_id").to_pylist())]
    from_opps = SweepInput.from_opportunities(opps, nets, base.first_block, base.last_block, 10**14, paths=base.strategies[0].paths)
    again = sweep(from_opps, static_grid(inp.n_blocks, eth))
    assert again.table.column("net_profit_wei").to_pylist() == result.table.column("net_profit_wei").to_pylist()


def test_dynamic_grid_reproduces_the_model_and_the_naive_loop():
    from gpubt.analysis.sweep import dynamic_grid
    from gpubt.analysis.thresholds import DynamicThreshold

    rng = np.random.default_rng(6)
    inp, _ = _random_input(rng, run_min=0.0)
    features = BlockFeatures(100, FEATURES, rng.normal(size=(inp.n_blocks, 5)),
                             rng.uniform(1e10, 8e10, inp.n_blocks))
    model = DynamicThreshold(weights=rng.normal(size=5), bias=0.2, mean=np.zeros(5), std=np.ones(5),
                             margin_wei=2 * 10**15, revert_gas_units=120_000)
    grid = dynamic_grid(model, features, margin_eth=[0.0, 0.002, 0.01], risk_scale=[0.5, 1.0])
    assert grid.names == ("margin_eth", "risk_scale") and len(grid) == 6
    assert np.allclose(grid.threshold_wei(3), model.threshold_wei(features), rtol=1e-12)   # (0.002, 1.0)
    _assert_equal(sweep(inp, grid), naive_sweep(inp, grid, _time_ordered_nets(inp)))
