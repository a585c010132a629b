"""Strategy selection by regime (analysis/policy.py, summary.json `policy`): the bandit learns planted regimes from
trailing features, never reads a later window, is deterministic, and the oracle bounds it; end to end, static's
P&L is the landed trades' net after bid."""
import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt.analysis import policy
from gpubt.analysis.thresholds import FEATURES

from ..cli import gpubt

STRATEGIES = ("arbitrage", "cexdex", "sandwich")
SETTINGS = {**policy.DEFAULTS, "name": "bandit", "warmup_windows": 4}


def planted(n_windows=400, stretch=40, seed=1):
    """(pnl ETH (windows × STRATEGIES), contexts (windows × FEATURES), volatile bool per window): stretches of
    `stretch` windows alternate between a volatile regime (CEX-DEX pays, sandwiches lose) and a calm busy one (the
    opposite); arbitrage pays a little in both. A window's context is the previous window's regime (trailing)."""
    rng = np.random.default_rng(seed)
    volatile = (np.arange(n_windows) // stretch) % 2 == 0
    pnl = np.stack([np.full(n_windows, 0.2), np.where(volatile, 1.0, -0.6), np.where(volatile, -0.6, 1.0)], axis=1)
    pnl += rng.normal(0.0, 0.3, pnl.shape)
    before = np.concatenate([[volatile[0]], volatile[:-1]])
    contexts = rng.normal(0.0, 1.0, (n_windows, len(FEATURES))) * 0.05 + 0.5   # noise features
    contexts[:, FEATURES.index("eth_vol")] = np.where(before, 1.2, 0.4) + rng.normal(0, 0.1, n_windows)
    contexts[:, FEATURES.index("congestion")] = np.where(before, 0.4, 0.9) + rng.normal(0, 0.05, n_windows)
    contexts[0] = np.nan  # the first window has no block before it
    return pnl, contexts, volatile


def test_bandit_follows_planted_regimes():
    pnl, contexts, volatile = planted()
    chosen = policy.choices(pnl, contexts, SETTINGS)
    figures = policy.evaluate(pnl, chosen, bootstrap_samples=200)
    static, bandit, oracle = (figures[n]["pnl_eth"] for n in policy.POLICIES)
    assert static < bandit <= oracle
    assert bandit > static + 0.5 * (oracle - static)   # most of the way to the hindsight bound
    after = slice(80, None)
    on = chosen["bandit"][after]
    follows = (on[:, 1] == volatile[after]) & (on[:, 2] == ~volatile[after])
    assert follows.mean() >= 0.8, follows.mean()
    assert on[:, 0].mean() > 0.9   # arbitrage pays in both regimes: kept on
    lo, hi = figures["bandit"]["pnl_ci95_eth"]
    assert lo < bandit < hi
    assert figures["oracle"]["regret_eth"] == 0.0
    assert figures["bandit"]["cumulative_regret_eth"][-1] == pytest.approx(oracle - bandit)


def test_bandit_without_context_cannot_follow_the_regimes():
    """The regime is learned from the features: with them blanked out, the choices stop following it."""
    pnl, contexts, volatile = planted()
    on = policy.bandit_choices(pnl, np.full_like(contexts, np.nan), seed=0, warmup_windows=4)[80:]
    follows = (on[:, 1] == volatile[80:]) & (on[:, 2] == ~volatile[80:])
    assert follows.mean() < 0.7


@pytest.mark.parametrize("k", [1, 5, 90, 250])
def test_no_look_ahead(k):
    """Changing every window from k on (its P&L and its context) changes no choice before k."""
    pnl, contexts, _ = planted()
    base = policy.bandit_choices(pnl, contexts, seed=3, warmup_windows=4)
    rng = np.random.default_rng(k)
    pnl2, contexts2 = pnl.copy(), contexts.copy()
    pnl2[k:] = rng.normal(0, 5.0, pnl2[k:].shape)
    contexts2[k:] = rng.normal(10.0, 3.0, contexts2[k:].shape)
    changed = policy.bandit_choices(pnl2, contexts2, seed=3, warmup_windows=4)
    assert np.array_equal(base[:k], changed[:k])
    assert not np.array_equal(base, changed)   # the change did reach the later windows


def test_scaler_reads_the_past_only():
    _, contexts, _ = planted()
    scaler = policy.TrailingScaler(len(FEATURES))
    for row in contexts[1:201]:
        scaler.add(row)
    z = (scaler.matrix() @ np.concatenate([np.ones((200, 1)), contexts[1:201]], axis=1).T).T
    assert np.allclose(z[:, 0], 1.0)
    assert np.allclose(z[:, 1:].mean(axis=0), 0.0) and np.allclose(z[:, 1:].std(axis=0), 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_deterministic_and_bounded_by_the_oracle(seed):
    rng = np.random.default_rng(seed)
    pnl = rng.normal(0.05, 1.0, (60, 4)) * rng.lognormal(0, 1, 4)   # strategies of different scales
    contexts = rng.normal(0, 1, (60, len(FEATURES)))
    settings = {**SETTINGS, "seed": seed}
    one, two = policy.choices(pnl, contexts, settings), policy.choices(pnl, contexts, settings)
    assert all(np.array_equal(one[n], two[n]) for n in policy.POLICIES)
    other = policy.choices(pnl, contexts, {**settings, "seed": seed + 100})["bandit"]
    assert not np.array_equal(one["bandit"], other)   # the seed is what the draws depend on
    figures = policy.evaluate(pnl, one, bootstrap_samples=50, seed=seed)
    assert figures["oracle"]["pnl_eth"] >= figures["bandit"]["pnl_eth"]
    assert figures["oracle"]["pnl_eth"] >= figures["static"]["pnl_eth"]
    assert np.all(np.diff(figures["bandit"]["cumulative_regret_eth"]) >= 0)   # per window, oracle ≥ any choice


def test_settings_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="policy.name"):
        policy.settings({"name": "greedy"})
    assert policy.settings(None)["name"] == "static"


def _landed_net_by(trades, strategy=None):
    won = trades.filter(trades.column("won"))
    if strategy is not None:
        won = won.filter(pc.equal(won.column("strategy"), strategy))
    return sum(int(v) for v in won.column("net_after_bid_wei").to_pylist())


def test_cli_policy_bandit_and_default(tiny_cache, tmp_path):
    """`gpubt run strategy=all policy=bandit` as typed: the three policies in summary.json, static's P&L the
    landed trades' Σ net after bid (recomputed from trades.parquet), the oracle above both; the default is static."""
    common = ("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", "progress=false",
              "thresholds.min_profit_eth=0.0001", "strategy=all", "report.enabled=false", "validation.enabled=false",
              "execution.compare_replay=false")
    out = tmp_path / "bandit"
    done = gpubt("run", *common, "policy=bandit", "policy.window_blocks=10", "policy.warmup_windows=2",
                 f"out_dir={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "policy (10-block windows" in done.stdout
    section = json.loads((out / "summary.json").read_text())["policy"]
    trades = pq.read_table(out / "trades.parquet", columns=["strategy", "block_number", "won", "net_after_bid_wei"])
    total_wei = _landed_net_by(trades)
    assert total_wei != 0
    figures = section["policies"]
    assert section["name"] == "bandit" and set(figures) == set(policy.POLICIES) and section["windows"] == 20
    assert figures["static"]["pnl_eth"] == pytest.approx(total_wei / 1e18, rel=1e-12)
    assert figures["oracle"]["pnl_eth"] >= figures["static"]["pnl_eth"]
    assert figures["oracle"]["pnl_eth"] >= figures["bandit"]["pnl_eth"]
    # the per (window, strategy) table is the trades', and the bandit's kept trades are its active cells'
    window = (trades.column("block_number").to_numpy() - section["window_first_block"][0]) // 10
    for s in section["strategies"]:
        mine = trades.filter(pc.and_(pc.equal(trades.column("strategy"), s), trades.column("won")))
        w = (mine.column("block_number").to_numpy() - section["window_first_block"][0]) // 10
        net = np.array([int(v) for v in mine.column("net_after_bid_wei").to_pylist()], np.float64) / 1e18
        assert np.allclose(np.bincount(w, weights=net, minlength=20), section["window_pnl_eth"][s], atol=1e-12)
    kept = sum(int(v) for v, b, s, won in zip(trades.column("net_after_bid_wei").to_pylist(), window,
                                               trades.column("strategy").to_pylist(), trades.column("won").to_pylist())
               if won and section["choices"]["bandit"][s][b] == "1")
    assert int(section["kept"]["net_after_bid_wei"]) == kept
    kept_count = sum(bool(won) and section["choices"]["bandit"][s][b] == "1" for b, s, won in
                     zip(window, trades.column("strategy").to_pylist(), trades.column("won").to_pylist()))
    landed = pc.sum(trades.column("won")).as_py()
    assert (section["kept"]["trades"], section["kept"]["of_trades"]) == (kept_count, landed)
    assert section["kept"]["net_after_bid_eth"] == pytest.approx(figures["bandit"]["pnl_eth"], rel=1e-9, abs=1e-12)

    default = tmp_path / "default"
    done = gpubt("run", *common, f"out_dir={default}")
    assert done.returncode == 0, done.stderr[-2000:]
    section = json.loads((default / "summary.json").read_text())["policy"]
    assert section["name"] == "static" and "kept" not in section
    assert section["policies"]["static"]["pnl_eth"] == pytest.approx(total_wei / 1e18, rel=1e-12)
