"""Static and dynamic thresholds: block features, outcome labels, JAX fitting, save/load, the optional-JAX error."""
from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.analysis.thresholds import (FEATURES, BlockFeatures, DynamicThreshold, FeatureWindows, StaticThreshold,
                                     block_features, load_threshold, success_labels)

E18 = 10**18


def _blocks(n=40, first=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pa.Table.from_pydict({
        "block_number": np.arange(first, first + n), "timestamp": 12 * np.arange(n),
        "base_fee_wei": rng.integers(10, 60, n) * 10**9, "gas_used": rng.integers(5, 30, n) * 10**6,
        "gas_limit": np.full(n, 30_000_000), "takes_bundles": np.ones(n, np.bool_)}, schema=schema.BLOCKS)


def _labels(rows):
    return pa.Table.from_pylist([{"block_number": b, "tx_index": t, "tx_hash": f"0x{i:x}", "kind": k,
                                  "searcher": "s", "pools": p, "profit_token": 0, "profit_raw": v, "gas_used": 1}
                                 for i, (b, t, k, p, v) in enumerate(rows)], schema=schema.LABELS)


def _trades(rows):
    """rows: (block, tx, pools, net_wei)."""
    return pa.Table.from_pylist([{
        "block_number": b, "tx_index": t, "path_id": i, "start_token": 0, "pools": p, "zero_for_one": [True] * len(p),
        "amount_in": E18, "amount_out": E18 + net + 10**15, "gross_profit_raw": net + 10**15,
        "gross_profit_wei": net + 10**15, "gas_units": 1, "gas_price_wei": 10**15, "gas_cost_wei": 10**15,
        "net_profit_wei": net, "net_profit_usd": 0.0, "screen_net_profit_wei": float(net)}
        for i, (b, t, p, net) in enumerate(rows)], schema=schema.TRADES)


def test_block_features_match_their_definitions():
    n, first = 40, 1000
    blocks = _blocks(n, first)
    price_blocks = np.arange(first, first + n, 5)
    eth = 2000 * np.exp(np.cumsum(np.r_[0, np.random.default_rng(1).normal(0, 0.01, len(price_blocks) - 1)]))
    prices = pa.Table.from_pydict({"block_number": price_blocks, "token_id": np.zeros(len(price_blocks), np.int32),
                                   "price_usd": eth}, schema=schema.PRICES)
    labels = _labels([(1002, 3, "arbitrage", [1], 5), (1002, 9, "arbitrage", [2], 5), (1010, 1, "cexdex", [1], 5),
                      (1011, 1, "arbitrage", [3], 5)])
    windows = FeatureWindows(gas_window=7, vol_window=10, competition_window=4, success_window=5)
    outcomes = (np.array([1001, 1001, 1003, 1020]), np.array([True, False, True, True]))
    f = block_features(blocks, prices, labels, outcomes, windows, priority_fee_wei=10**9)
    assert f.names == FEATURES and f.values.shape == (n, 5) and f.first_block == first
    fee = blocks.column("base_fee_wei").to_numpy()
    col = dict(zip(FEATURES, f.values.T))
    for b in range(n):
        window = fee[max(0, b - 6):b + 1]
        assert col["gas_pct"][b] == np.mean(window <= fee[b])
    ratio = blocks.column("gas_used").to_numpy() / 30_000_000
    assert np.array_equal(col["congestion"][1:], ratio[:-1]) and col["congestion"][0] == ratio[0]
    # arbitrage labels in the 4 blocks before b (cexdex not counted), per block
    assert col["competition"][2] == 0 and col["competition"][3] == 2 / 4 and col["competition"][6] == 2 / 4
    assert col["competition"][7] == 0 and col["competition"][12] == 1 / 4
    # success rate: (wins + 2.5) / (tries + 5) over the 5 previous blocks
    assert col["success_rate"][0] == 0.5 and col["success_rate"][2] == (1 + 2.5) / (2 + 5)
    assert col["success_rate"][4] == (2 + 2.5) / (3 + 5) and col["success_rate"][21] == (1 + 2.5) / (1 + 5)
    # realized volatility: Σ r² of the samples in the last 10 blocks (current included) ÷ 10, annualised
    r2 = np.diff(np.log(eth)) ** 2
    b = 27
    in_window = (price_blocks[1:] - first > b - 10) & (price_blocks[1:] - first <= b)
    assert col["eth_vol"][b] == pytest.approx(np.sqrt(r2[in_window].sum() / 10 * 365.25 * 86400 / 12), rel=1e-12)
    assert np.array_equal(f.gas_price_wei, fee + 1e9)
    assert np.array_equal(f.index([1000, 1039]), [0, 39])
    with pytest.raises(IndexError):
        f.index([1040])
    constant = block_features(blocks, prices, labels, competition=3.0)
    assert np.all(constant.values[:, FEATURES.index("competition")] == 3.0)


def test_success_labels_preemption_and_losses():
    trades = _trades([(10, 4, [1, 2], 5), (10, 4, [3, 4], 5), (10, 7, [5], 5), (11, -1, [6], 5), (12, 2, [7], -3)])
    labels = _labels([(10, 5, "arbitrage", [2, 9], 1),   # right after trade 0 on pool 2: preempted
                      (10, 9, "arbitrage", [5], 1),      # 2 txs after trade 2: outside preempt_txs=1
                      (11, 0, "arbitrage", [6], 1),      # top of block −1 → tx 0: preempted
                      (10, 5, "cexdex", [3], 1)])        # another kind does not preempt
    assert success_labels(trades, labels).tolist() == [False, True, True, False, False]
    assert success_labels(trades, labels, preempt_txs=2).tolist() == [False, True, False, False, False]


def test_static_threshold_and_round_trip(tmp_path):
    f = BlockFeatures(5, FEATURES, np.zeros((3, 5)), np.ones(3))
    static = StaticThreshold(123 * 10**15)
    assert static.threshold_wei(f).tolist() == [1.23e17] * 3
    static.save(tmp_path / "t.json")
    loaded = load_threshold(tmp_path / "t.json")
    assert isinstance(loaded, StaticThreshold) and loaded.min_profit_wei == 123 * 10**15


def test_dynamic_threshold_formula_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 5))
    features = BlockFeatures(100, FEATURES, values, np.linspace(2e10, 5e10, 6))
    model = DynamicThreshold(weights=np.array([0.5, -1.0, 0.2, 0.0, 2.0]), bias=0.3, mean=np.full(5, 0.1),
                             std=np.full(5, 2.0), margin_wei=10**15, revert_gas_units=80_000,
                             windows=FeatureWindows(10, 20, 30, 40), fit_info={"samples": 3})
    p = 1 / (1 + np.exp(-(((values - 0.1) / 2.0) @ model.weights + 0.3)))
    expected = (1e15 + (1 - p) * 80_000 * features.gas_price_wei) / p
    assert np.allclose(model.threshold_wei(features), expected, rtol=1e-14)
    model.save(tmp_path / "thresholds.json")
    loaded = load_threshold(tmp_path / "thresholds.json")
    assert isinstance(loaded, DynamicThreshold)
    assert np.array_equal(loaded.threshold_wei(features), model.threshold_wei(features))
    assert loaded.windows == model.windows and loaded.margin_wei == 10**15 and loaded.fit_info == {"samples": 3}
    other = BlockFeatures(100, ("a",), values[:, :1], features.gas_price_wei)
    with pytest.raises(ValueError, match="differ"):
        model.threshold_wei(other)


def test_fit_reduces_loss_and_recovers_weight_signs():
    pytest.importorskip("jax")
    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -2.0]   # raw features, different scales
    z = (x - x.mean(0)) / x.std(0)
    p = 1 / (1 + np.exp(-(1.5 * z[:, 0] - 2.0 * z[:, 1] + 0.4)))
    y = rng.random(n) < p
    model = DynamicThreshold.fit(x, y, steps=400, feature_names=("a", "b", "c"))
    info = model.fit_info
    assert info["loss_final"] < info["loss_initial"] - 0.1
    assert model.weights[0] > 0.8 and model.weights[1] < -1.2 and abs(model.weights[2]) < 0.2
    assert model.bias > 0
    # the fitted probabilities beat the constant base rate on the same data
    q = model.success_probability(x)
    base = y.mean()
    bce = lambda prob: -np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob))  # noqa: E731
    assert bce(q) < bce(np.full(n, base)) - 0.1


def test_fit_from_run_on_tiny_market(tiny_cache, tmp_path):
    pytest.importorskip("jax")
    from gpubt.data.store import Dataset
    from gpubt.analysis.thresholds import fit_from_run

    from ..conftest import TINY
    from .test_sweep import run_backtest

    path = tiny_cache / TINY
    ds = Dataset(path)
    trades = run_backtest(path, 10**14).trades()
    model, features, success = fit_from_run(trades, ds.read("labels"), ds.read("blocks"), ds.read("prices"),
                                            steps=100)
    assert len(success) == trades.num_rows and 0 < success.mean() < 1
    assert model.fit_info["loss_final"] <= model.fit_info["loss_initial"]
    thr = model.threshold_wei(features)
    assert thr.shape == (features.n_blocks,) and np.all(thr > 0) and np.all(np.isfinite(thr))
    model.save(tmp_path / "thresholds.json")
    assert np.array_equal(load_threshold(tmp_path / "thresholds.json").threshold_wei(features), thr)


def test_dynamic_fit_without_jax_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[jax\]'"):
        DynamicThreshold.fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
