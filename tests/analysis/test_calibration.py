"""gpubt/analysis/calibration.py: Brier score, expected calibration error and reliability bins of the auction's
win_probability against the realized `won` (hand-computed, edges, chunked per strategy), and the same figures end to
end: summary.json against trades.parquet, the console line and the report's reliability section."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from gpubt.analysis import competition
from gpubt.analysis.calibration import CalibrationTally, Reliability, calibration
from gpubt.report.console import format_summary

from ..cli import run_inprocess
from .test_competition import _cfg, trades_table


def test_hand_computed_example():
    """p = 0, .25, .25, .75, 1 against won = 0, 1, 0, 1, 1, by hand:
    brier = (0 + .5625 + .0625 + .0625 + 0) / 5 = .1375; bins 0 (n 1, p 0, won 0), 2 (n 2, p .25, won .5),
    7 (n 1, p .75, won 1), 9 (n 1, p 1, won 1): ece = 2/5 · .25 + 1/5 · .25 = .15."""
    got = calibration(np.array([0.0, 0.25, 0.25, 0.75, 1.0]), np.array([False, True, False, True, True]))
    assert got["n"] == 5
    assert got["brier"] == pytest.approx(0.1375, rel=1e-12)
    assert got["ece"] == pytest.approx(0.15, rel=1e-12)
    assert got["mean_predicted"] == pytest.approx(0.45, rel=1e-12) and got["observed_rate"] == pytest.approx(0.6)
    assert [b["n"] for b in got["bins"]] == [1, 0, 2, 0, 0, 0, 0, 1, 0, 1]
    assert [b["lo"] for b in got["bins"]] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert [b["hi"] for b in got["bins"]] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert [(b["mean_predicted"], b["observed_rate"]) for b in got["bins"]] == [
        (0.0, 0.0), (None, None), (0.25, 0.5), (None, None), (None, None), (None, None), (None, None),
        (0.75, 1.0), (None, None), (1.0, 1.0)]
    # the same with 0/1 outcomes and 4 bins: bins [0, .25) n 1, [.25, .5) n 2, [.75, 1] n 2 (p .75 and 1):
    # ece = 2/5 · |.25 − .5| + 2/5 · |.875 − 1| = .1 + .05
    four = calibration(np.array([0.0, 0.25, 0.25, 0.75, 1.0]), np.array([0, 1, 0, 1, 1]), bins=4)
    assert [b["n"] for b in four["bins"]] == [1, 2, 0, 2]
    assert four["ece"] == pytest.approx(0.15, rel=1e-12) and four["brier"] == pytest.approx(0.1375, rel=1e-12)


def test_perfect_and_calibrated_predictions():
    won = np.array([True, False, False, True, True, False])
    perfect = calibration(won.astype(np.float64), won)
    assert perfect["brier"] == 0.0 and perfect["ece"] == 0.0
    assert [b["n"] for b in perfect["bins"]] == [3, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    # always ½ on a fair coin's outcomes: calibrated (ece 0) but no foresight (brier ¼)
    half = calibration(np.full(6, 0.5), won)
    assert half["ece"] == 0.0 and half["brier"] == 0.25


def test_bin_edges_lower_edge_inclusive_and_one_in_the_last_bin():
    """bin b holds b/10 <= p < (b + 1)/10 (wins ÷ scenarios lands on the edges: 300/1000 = 0.3); p = 1 is in the
    last bin."""
    got = calibration(np.array([1.0]), np.array([False]))
    assert [b["n"] for b in got["bins"]] == [0] * 9 + [1]
    assert got["brier"] == 1.0 and got["ece"] == 1.0
    edges = calibration(np.array([0.1, 0.2, 0.3, 0.7, 0.9, 0.9999]), np.ones(6, bool))
    assert [b["n"] for b in edges["bins"]] == [0, 1, 1, 1, 0, 0, 0, 1, 0, 2]


def test_empty_and_bad_input():
    empty = calibration(np.zeros(0), np.zeros(0, bool))
    assert empty["n"] == 0 and empty["brier"] is None and empty["ece"] is None and empty["mean_predicted"] is None
    assert len(empty["bins"]) == 10 and all(b["n"] == 0 and b["observed_rate"] is None for b in empty["bins"])
    with pytest.raises(ValueError, match="outside"):
        calibration(np.array([0.5, 1.5]), np.array([True, False]))
    with pytest.raises(ValueError, match="outside"):
        calibration(np.array([np.nan]), np.array([True]))
    with pytest.raises(ValueError, match="2 probabilities but 1 outcomes"):
        calibration(np.array([0.5, 0.5]), np.array([True]))
    with pytest.raises(ValueError, match="0/1"):
        calibration(np.array([0.5]), np.array([2]))
    with pytest.raises(ValueError, match="bins = 0"):
        Reliability(0)


def test_tally_in_chunks_per_strategy_equals_whole_arrays():
    """Chunks in any split, strategies from an Arrow column (null → arbitrage): each strategy's figures are those of
    its trades' arrays at once, and "all" those of every trade."""
    rng = np.random.default_rng(3)
    n = 5_000
    p = np.round(rng.random(n), 3)   # wins ÷ 1000 scenarios: many on the bin edges
    won = rng.random(n) < p
    names = np.array(["arbitrage", "sandwich", None, "cexdex"], dtype=object)[rng.integers(0, 4, n)]
    tally = CalibrationTally()
    for piece in np.split(np.arange(n), [7, 1_000, 1_001, 3_333]):
        tally.add(p[piece], won[piece], pa.chunked_array([pa.array(names[piece][:3], pa.string()),
                                                         pa.array(names[piece][3:], pa.string())]))
    got = tally.summary()
    assert list(got) == ["arbitrage", "cexdex", "sandwich", "all"]
    groups = {"arbitrage": (names == "arbitrage") | (names == None), "cexdex": names == "cexdex",  # noqa: E711
              "sandwich": names == "sandwich", "all": np.ones(n, bool)}
    for name, mine in groups.items():
        want = calibration(p[mine], won[mine])
        assert got[name]["n"] == want["n"] == mine.sum()
        for key in ("brier", "ece", "mean_predicted", "observed_rate"):
            assert got[name][key] == pytest.approx(want[key], rel=1e-12), (name, key)
        assert [b["n"] for b in got[name]["bins"]] == [b["n"] for b in want["bins"]]
    without = CalibrationTally()
    without.add(p[:10], won[:10])  # no strategy column: arbitrage
    assert list(without.summary()) == ["arbitrage", "all"]


def test_auctions_summary_has_calibration_only_when_enabled():
    trades = trades_table(60)
    out, summary = competition.apply(trades, _cfg(scenarios=200), "cpu")
    want = calibration(out.column("win_probability").to_numpy(), out.column("won").to_numpy())
    assert set(summary["calibration"]) == {"arbitrage", "all"}  # trades_table's strategy is null
    assert summary["calibration"]["all"]["brier"] == pytest.approx(want["brier"], rel=1e-12)
    assert summary["calibration"]["arbitrage"]["ece"] == pytest.approx(want["ece"], rel=1e-12)
    _, disabled = competition.apply(trades, OmegaConf.create({"enabled": False}), "cpu")
    assert "calibration" not in disabled


def test_console_line():
    m = {"blocks": 10, "pairs_evaluated": 5, "opportunities": 3, "trades": 2, "trades_per_block": 0.2,
         "net_profit_eth": 1.0, "net_profit_usd": 2000.0, "mean_profit_per_trade_eth": 0.5,
         "median_profit_per_trade_eth": 0.5, "win_rate": 1.0}
    cal = {"all": {"n": 1234, "brier": 0.19512, "ece": 0.05311}}
    text = format_summary({"metrics": m, "competition": {"enabled": True, "calibration": cal}})
    assert text.splitlines()[-1] == "survival prediction: Brier 0.195, ECE 0.053 (1,234 trades)"
    assert "survival prediction" not in format_summary({"metrics": m, "competition": {"enabled": False}})


def _independent(p, won):
    """Brier and ECE as docs/metrics.md defines them, with numpy on the arrays (bins b/10 <= p < (b+1)/10, the last
    one closed at 1)."""
    brier = float(np.mean((p - won) ** 2))
    ece = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        mine = (p >= lo) & ((p <= hi) if b == 9 else (p < hi))
        if mine.any():
            ece += mine.sum() / len(p) * abs(p[mine].mean() - won[mine].mean())
    return brier, ece


def test_run_with_competition_reports_calibration(tiny_cache, tmp_path):
    """strategy=all under competition=default: summary.json's Brier and ECE per strategy equal those recomputed
    from trades.parquet; the console prints the line and report.html the reliability section. competition=none:
    neither, and no calibration key."""
    run = ("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", "progress=false", "strategy=all",
           "thresholds.min_profit_eth=0.0001")
    result = run_inprocess(*run, "competition=default", f"out_dir={tmp_path / 'on'}")
    out = result.out_dir
    cal = json.loads((out / "summary.json").read_text())["competition"]["calibration"]
    trades = pq.read_table(out / "trades.parquet", columns=["strategy", "win_probability", "won"]).to_pydict()
    p = np.asarray(trades["win_probability"], np.float64)
    won = np.asarray(trades["won"], np.float64)
    strategy = np.array([s or "arbitrage" for s in trades["strategy"]])
    assert len(set(strategy)) > 1 and 0 < won.mean() < 1
    assert set(cal) == set(strategy) | {"all"}
    for name in cal:
        mine = np.ones(len(p), bool) if name == "all" else strategy == name
        brier, ece = _independent(p[mine], won[mine])
        assert cal[name]["n"] == mine.sum()
        assert cal[name]["brier"] == pytest.approx(brier, rel=1e-9), name
        assert cal[name]["ece"] == pytest.approx(ece, rel=1e-9), name
        assert cal[name]["observed_rate"] == pytest.approx(won[mine].mean(), rel=1e-9)
    every = cal["all"]
    assert f"survival prediction: Brier {every['brier']:.3f}, ECE {every['ece']:.3f} ({every['n']:,} trades)" \
        in result.console
    page = (out / "report.html").read_text()
    assert "Survival prediction: reliability" in page
    for name, c in cal.items():
        assert f"<td>{name}</td><td class=num>{c['n']:,}</td><td class=num>{c['brier']:.4f}</td>" in page

    off = run_inprocess(*run, "competition=none", f"out_dir={tmp_path / 'off'}")
    assert "calibration" not in json.loads((off.out_dir / "summary.json").read_text())["competition"]
    assert "survival prediction" not in off.console
    assert "reliability" not in (off.out_dir / "report.html").read_text()
