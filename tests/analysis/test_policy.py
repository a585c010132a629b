"""Strategy selection by regime (analysis/policy.py, summary.json `policy`): the bandit learns planted regimes from
trailing features, never reads a later window, is deterministic, and the oracle bounds it; end to end, static's
P&L is the landed trades' net after bid."""
import itertools
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
    chosen = policy.choices(policy.Arms(pnl), contexts, SETTINGS)
    figures = policy.evaluate(chosen, bootstrap_samples=200)
    static, bandit, oracle = (figures[n]["pnl_eth"] for n in policy.POLICIES)
    assert static < bandit <= oracle
    assert bandit > static + 0.5 * (oracle - static)   # most of the way to the hindsight bound
    after = slice(80, None)
    on = chosen["bandit"]["active"][after]
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
    on = policy.bandit_choices(policy.Arms(pnl), np.full_like(contexts, np.nan), seed=0, warmup_windows=4)[80:]
    follows = (on[:, 1] == volatile[80:]) & (on[:, 2] == ~volatile[80:])
    assert follows.mean() < 0.7


@pytest.mark.parametrize("k", [1, 5, 90, 250])
def test_no_look_ahead(k):
    """Changing every window from k on (its P&L and its context) changes no choice before k."""
    pnl, contexts, _ = planted()
    base = policy.bandit_choices(policy.Arms(pnl), contexts, seed=3, warmup_windows=4)
    rng = np.random.default_rng(k)
    pnl2, contexts2 = pnl.copy(), contexts.copy()
    pnl2[k:] = rng.normal(0, 5.0, pnl2[k:].shape)
    contexts2[k:] = rng.normal(10.0, 3.0, contexts2[k:].shape)
    changed = policy.bandit_choices(policy.Arms(pnl2), contexts2, seed=3, warmup_windows=4)
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
    arms = policy.Arms(pnl)
    one, two = policy.choices(arms, contexts, settings), policy.choices(arms, contexts, settings)
    assert all(np.array_equal(one[n]["active"], two[n]["active"]) for n in policy.POLICIES)
    other = policy.choices(arms, contexts, {**settings, "seed": seed + 100})["bandit"]
    assert not np.array_equal(one["bandit"]["active"], other["active"])   # the seed is what the draws depend on
    figures = policy.evaluate(one, bootstrap_samples=50, seed=seed)
    assert figures["oracle"]["pnl_eth"] >= figures["bandit"]["pnl_eth"]
    assert figures["oracle"]["pnl_eth"] >= figures["static"]["pnl_eth"]
    assert np.all(np.diff(figures["bandit"]["cumulative_regret_eth"]) >= 0)   # per window, oracle ≥ any choice


SHARES = (0.25, 0.5, 0.75, 1.0)


def planted_capital(n_windows=400, stretch=40, seed=2):
    """Arms for arbitrage (flash-funded) and two capital-bound strategies, sandwich and JIT, whose window P&L grows
    with their share of the budget (concavely) in their own regime and is ~0 in the other: sandwiches in calm
    busy stretches, JIT in volatile ones. Contexts as `planted`'s."""
    _, contexts, volatile = planted(n_windows, stretch, seed)
    rng = np.random.default_rng(seed)
    shares = np.asarray(SHARES)
    tiers = np.zeros((n_windows, 3, len(SHARES)))
    tiers[:, 0] = 0.2
    tiers[:, 1] = np.where(~volatile, 1.0, 0.02)[:, None] * np.sqrt(shares)
    tiers[:, 2] = np.where(volatile, 1.0, 0.02)[:, None] * np.sqrt(shares)
    tiers += rng.normal(0.0, 0.1, tiers.shape)
    tiers[:, 0] = tiers[:, 0, :1]   # a flash-funded strategy earns the same whatever the share
    pnl = tiers[:, :, 1]            # the run as configured: 0.5 of the budget each
    return policy.Arms(pnl, tiers, [False, True, True], SHARES, [0.0, 0.5, 0.5]), contexts, volatile


def test_bandit_moves_the_capital_to_the_paying_strategy():
    """The split follows the planted regimes: most of the budget to sandwiches in calm stretches and to JIT in
    volatile ones, beating the fixed equal split; the budget is never exceeded and the oracle bounds everyone."""
    arms, contexts, volatile = planted_capital()
    chosen = policy.choices(arms, contexts, SETTINGS)
    figures = policy.evaluate(chosen, bootstrap_samples=100)
    static, bandit, oracle = (figures[n]["pnl_eth"] for n in policy.POLICIES)
    assert static < bandit <= oracle
    share = chosen["bandit"]["share"][80:]
    paying = np.where(volatile[80:], share[:, 2], share[:, 1])
    other = np.where(volatile[80:], share[:, 1], share[:, 2])
    assert (paying >= 0.75).mean() >= 0.8, (paying >= 0.75).mean()
    assert (paying > other).mean() >= 0.85
    for c in chosen.values():
        assert np.all(c["share"][:, 1:].sum(axis=1) <= 1.0 + 1e-12)
        assert np.all(c["share"][:, 0] == 0.0)   # flash-funded: no capital
    # without the context features the split cannot follow the regimes: they are what it learns from
    blind = arms.choice(policy.bandit_choices(arms, np.full_like(contexts, np.nan), seed=0, warmup_windows=4))
    blind_paying = np.where(volatile[80:], blind["share"][80:, 2], blind["share"][80:, 1])
    assert (blind_paying >= 0.75).mean() < 0.5
    # each window's oracle split is the best of every split of the budget (brute force)
    for w in range(0, 400, 37):
        best = max(sum(arms.tiers[w, s, k] for s, k in zip((1, 2), split) if k >= 0)
                   for split in itertools.product(range(-1, 4), repeat=2)
                   if sum(SHARES[k] for k in split if k >= 0) <= 1.0)
        best += max(arms.pnl[w, 0], 0.0)
        assert chosen["oracle"]["earned"][w].sum() == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("k", [1, 90, 250])
def test_no_look_ahead_in_the_split(k):
    """Changing every window from k on changes no arm chosen before k."""
    arms, contexts, _ = planted_capital()
    base = policy.bandit_choices(arms, contexts, seed=3, warmup_windows=4)
    rng = np.random.default_rng(k)
    tiers, contexts2 = arms.tiers.copy(), contexts.copy()
    tiers[k:] = rng.normal(0, 5.0, tiers[k:].shape)
    contexts2[k:] = rng.normal(10.0, 3.0, contexts2[k:].shape)
    changed = policy.bandit_choices(policy.Arms(arms.pnl, tiers, arms.bound, SHARES, arms.static_share), contexts2,
                                    seed=3, warmup_windows=4)
    assert np.array_equal(base[:k], changed[:k])
    assert not np.array_equal(base, changed)


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
    # the capital split by default: sandwich and JIT share their configured 100 + 100 ETH; as configured is static
    capital = section["capital"]
    assert (capital["budget_eth"], capital["configured_eth"]) == (200.0, {"sandwich": 100.0, "jit": 100.0})
    for s in ("sandwich", "jit"):
        assert np.allclose(capital["window_pnl_eth"][s]["0.5"], section["window_pnl_eth"][s], atol=1e-12)
    assert "its capital split of 200.00 ETH: sandwich" in done.stdout

    default = tmp_path / "default"
    done = gpubt("run", *common, f"out_dir={default}")
    assert done.returncode == 0, done.stderr[-2000:]
    section = json.loads((default / "summary.json").read_text())["policy"]
    assert section["name"] == "static" and "kept" not in section
    assert section["policies"]["static"]["pnl_eth"] == pytest.approx(total_wei / 1e18, rel=1e-12)


@pytest.mark.slow  # generates the small market (2,000 blocks) and runs sandwich and JIT over 800 of them, twice
def test_cli_capital_split_prices_each_trade_at_each_share(tmp_path):
    """`gpubt run strategy=[sandwich,jit] policy=bandit` with a 200 ETH budget in shares of 1, 2, 25 and 50 %
    (2, 4, 50 and 100 ETH; sandwich configured with 4, JIT with 100): each trade's net profit at a share equals
    the same trade in a run whose strategies were given that capital; the configured split's P&L is static's;
    every policy keeps within the budget."""
    common = ("backend=cpu", "data.preset=small", f"data.cache_dir={tmp_path / 'cache'}", "data.last_block=18000799",
              "progress=false", "strategy=[sandwich,jit]", "report.enabled=false", "validation.enabled=false",
              "execution=replay")
    full, half = tmp_path / "full", tmp_path / "half"
    full_run = gpubt("run", *common, "policy=bandit", "policy.capital_eth=200",
                     "policy.capital_shares=[0.01,0.02,0.25,0.5]", "strategy.sandwich.capital_eth=4", f"out_dir={full}")
    assert full_run.returncode == 0, full_run.stderr[-2000:]
    done = gpubt("run", *common, "strategy.sandwich.capital_eth=2", "strategy.jit.capital_eth=50", f"out_dir={half}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "its capital split of 200.00 ETH: sandwich" in full_run.stdout
    section = json.loads((full / "summary.json").read_text())["policy"]
    capital = section["capital"]
    assert capital["budget_eth"] == 200.0 and capital["shares"] == [0.01, 0.02, 0.25, 0.5]
    assert capital["configured_eth"] == {"sandwich": 4.0, "jit": 100.0}

    key = ("strategy", "block_number", "tx_index", "path_id")
    at = {"sandwich": (1, 0), "jit": (3, 2)}   # (the configured capital's tier, the half's)
    a = pq.read_table(full / "trades.parquet", columns=[*key, "net_profit_wei", "detail"])
    b = pq.read_table(half / "trades.parquet", columns=[*key, "net_profit_wei", "detail"])
    curves = {tuple(r[k] for k in key): json.loads(r["detail"])["capital_net_wei"] for r in a.to_pylist()}
    assert len(curves) > 50 and {k[0] for k in curves} == {"sandwich", "jit"}
    for (k, curve), net in zip(curves.items(), a.column("net_profit_wei").to_pylist()):
        assert len(curve) == 4 and int(curve[at[k[0]][0]]) == int(net)   # the configured capital: the trade
    at_half = {tuple(r[k] for k in key): int(r["net_profit_wei"]) for r in b.to_pylist()}
    # a sandwich whose best front-run is inside its bound starts from the float screen's golden-section optimum,
    # whose bracket is the capital: its integer front-run (and net) may differ in the last ~1e-12 between capitals
    interior = {tuple(r[k] for k in key) for r in b.to_pylist() if r["strategy"] == "sandwich"
                and int(json.loads(r["detail"])["front_run_in"]) < int(json.loads(r["detail"])["max_front_run"])}
    matched = [k for k in at_half if k in curves]
    assert len(matched) >= 0.9 * len(at_half) and {k[0] for k in matched} == {"sandwich", "jit"}
    bad = [(k, curves[k], at_half[k]) for k in matched
           if (int(curves[k][at[k[0]][1]]) != at_half[k] if k not in interior
               else abs(int(curves[k][at[k[0]][1]]) - at_half[k]) > 1e-12 * abs(at_half[k]))]
    assert not bad, bad[:5]
    assert len(interior) < len(matched) / 2   # most sandwiches are bound by their victims' limits: exact equality
    for s, (mine, lower) in at.items():   # capital binds for both: some trades earn less with half of it
        assert any(c[lower] is None or int(c[lower]) < int(c[mine]) for k, c in curves.items() if k[0] == s)

    figures = section["policies"]
    for s, (mine, _) in at.items():   # the configured split is static's P&L, per window
        assert np.allclose(capital["window_pnl_eth"][s][f"{capital['shares'][mine]:g}"],
                           section["window_pnl_eth"][s], atol=1e-12)
    assert figures["static"]["mean_capital_share"] == {"sandwich": 0.02, "jit": 0.5}
    for name in policy.POLICIES:
        used = np.add(capital["share"][name]["sandwich"], capital["share"][name]["jit"])
        assert np.all(used <= 1.0 + 1e-12)
        assert figures["oracle"]["pnl_eth"] >= figures[name]["pnl_eth"] - 1e-12
    assert section["kept"]["net_after_bid_eth"] == pytest.approx(figures["bandit"]["pnl_eth"], rel=1e-9, abs=1e-12)
