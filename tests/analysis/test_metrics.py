"""Trading metrics against values computed by hand on tiny hand-built trade tables."""
import datetime
import json
import math
import statistics

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.analysis import metrics as M
from gpubt.report.console import format_summary

E18 = 10**18
DAY = 86_400
T0 = 1_700_006_400  # 2023-11-15 00:00:00 UTC, a day boundary


def trades_table(rows):
    """rows: (block, net_eth, gross_eth, gas_eth[, usd]) → a TRADES table (tx_index = row order)."""
    out = []
    for i, row in enumerate(rows):
        block, net, gross, gas = row[:4]
        usd = row[4] if len(row) > 4 else net * 2000.0
        out.append({"block_number": block, "tx_index": i, "path_id": 0, "start_token": 0, "pools": [0, 1],
                    "zero_for_one": [True, False], "amount_in": E18, "amount_out": E18,
                    "gross_profit_raw": round(gross * E18), "gross_profit_wei": round(gross * E18),
                    "gas_units": 170_000, "gas_price_wei": 20 * 10**9, "gas_cost_wei": round(gas * E18),
                    "net_profit_wei": round(net * E18), "net_profit_usd": usd, "screen_net_profit_wei": net * 1e18})
    return pa.Table.from_pylist(out, schema=schema.TRADES)


def blocks_table(first, n, seconds_per_block):
    return pa.Table.from_pydict({
        "block_number": np.arange(first, first + n, dtype=np.int64),
        "timestamp": T0 + np.arange(n, dtype=np.int64) * seconds_per_block,
        "base_fee_wei": np.full(n, 10**10), "gas_used": np.zeros(n, np.int64), "gas_limit": np.zeros(n, np.int64),
        "takes_bundles": np.ones(n, np.bool_),
    }, schema=schema.BLOCKS)


def strict_json(obj):
    return json.loads(json.dumps(obj, allow_nan=False))


# five trades on one day: equity 10 → 12 → 11 → 8 → 13 → 12
DD_ROWS = [(100, 2.0, 2.1, 0.1), (101, -1.0, 0.0, 1.0), (102, -3.0, -2.5, 0.5), (103, 5.0, 5.2, 0.2),
           (104, -1.0, -0.9, 0.1)]


def test_drawdown_profit_factor_win_rate_by_hand():
    t = trades_table(DD_ROWS)
    m = M.summarize_trades(t, 9, 100, 10, initial_capital_eth=10.0)
    assert m["max_drawdown_eth"] == pytest.approx(4.0)          # peak 12, trough 8
    assert m["max_drawdown_pct"] == pytest.approx(100 * 4 / 12)
    assert m["profit_factor"] == pytest.approx(7.0 / 5.0)      # wins 2 + 5, losses 1 + 3 + 1
    assert m["win_rate"] == pytest.approx(2 / 5)
    assert (m["winning_trades"], m["losing_trades"]) == (2, 3)
    assert m["mean_win_eth"] == pytest.approx(3.5) and m["mean_loss_eth"] == pytest.approx(-5 / 3)
    assert m["expected_value_per_trade_eth"] == pytest.approx(0.4)   # 2/5 × 3.5 − 3/5 × 5/3 = the mean
    assert m["mean_profit_per_trade_eth"] == pytest.approx(0.4)
    assert m["net_profit_eth"] == pytest.approx(2.0) and m["final_equity_eth"] == pytest.approx(12.0)
    assert m["return_on_capital"] == pytest.approx(0.2)
    assert m["trades_per_block"] == pytest.approx(0.5)
    assert m["gas_efficiency"] == pytest.approx((2.1 + 0 - 2.5 + 5.2 - 0.9) / (0.1 + 1.0 + 0.5 + 0.2 + 0.1))
    assert m["best_trade_eth"] == pytest.approx(5.0) and m["worst_trade_eth"] == pytest.approx(-3.0)
    assert m["std_profit_per_trade_eth"] == pytest.approx(statistics.stdev([2, -1, -3, 5, -1]))
    # existing keys keep their meaning
    assert (m["blocks"], m["pairs_evaluated"], m["opportunities"], m["trades"]) == (10, 100, 9, 5)
    assert m["net_profit_wei"] == str(2 * E18)
    assert m["days"] is None and m["sharpe_annualized"] is None   # no block timestamps given


def test_drawdown_follows_block_order_not_row_order():
    rows = list(reversed(DD_ROWS))
    m = M.summarize_trades(trades_table(rows), 0, 0, 10, initial_capital_eth=10.0)
    assert m["max_drawdown_eth"] == pytest.approx(4.0)


def test_profit_factor_without_losses_is_null_and_json_safe():
    m = M.summarize_trades(trades_table([(100, 1.0, 1.1, 0.1), (101, 0.5, 0.6, 0.1)]), 2, 10, 2)
    assert m["profit_factor"] is None and m["losing_trades"] == 0
    assert m["max_drawdown_eth"] == 0.0 and m["max_drawdown_pct"] == 0.0
    assert strict_json(m) == m
    assert "∞ (no losing trade)" in format_summary(m)


def test_no_trades_is_json_safe():
    empty = schema.TRADES.empty_table()
    m = M.summarize_trades(empty, 0, 1000, 50, blocks=blocks_table(1, 50, 12))
    assert strict_json(m) == m
    assert m["trades"] == 0 and m["win_rate"] == 0.0 and m["profit_factor"] is None
    assert m["gas_efficiency"] is None and m["survival_rate"] is None
    assert m["mean_profit_per_trade_ci95_eth"] == [None, None]
    assert m["days"] == 1 and m["sharpe_annualized"] is None      # one day: no volatility to divide by
    assert "n/a" in format_summary({"metrics": m})


def test_sharpe_daily_returns_on_equity_by_hand():
    # 4 days of blocks (one every 6 h); day 2 has no trade and counts as a zero return
    blocks = blocks_table(1000, 16, DAY // 4)
    rows = [(1000, 0.6, 0.7, 0.1, 1200.0), (1002, 0.4, 0.5, 0.1, 800.0),   # day 0: +1.0
            (1005, -0.5, -0.4, 0.1, -1000.0),                              # day 1: −0.5
            (1013, 2.0, 2.1, 0.1, 4000.0)]                                 # day 3: +2.0
    t = trades_table(rows)
    m = M.summarize_trades(t, 4, 40, 16, blocks=blocks, initial_capital_eth=100.0, bootstrap_samples=2000)
    returns = [1.0 / 100.0, -0.5 / 101.0, 0.0 / 100.5, 2.0 / 100.5]
    expected = statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(365)
    assert m["days"] == 4
    assert m["sharpe_annualized"] == pytest.approx(expected, rel=1e-12)
    assert m["std_daily_return"] == pytest.approx(statistics.stdev(returns), rel=1e-12)
    assert m["mean_daily_pnl_eth"] == pytest.approx(2.5 / 4)
    assert m["mean_daily_pnl_usd"] == pytest.approx(5000.0 / 4)
    lo, hi = m["sharpe_ci95"]
    assert lo <= m["sharpe_annualized"] <= hi

    daily = M.daily_pnl(t, blocks, 100.0)
    assert daily.schema == M.DAILY_PNL
    assert daily.column("day").to_pylist() == [datetime.date(2023, 11, 15) + datetime.timedelta(days=d)
                                               for d in range(4)]
    assert daily.column("trades").to_pylist() == [2, 1, 0, 1]
    assert daily.column("pnl_eth").to_pylist() == pytest.approx([1.0, -0.5, 0.0, 2.0])
    assert daily.column("pnl_usd").to_pylist() == pytest.approx([2000.0, -1000.0, 0.0, 4000.0])
    assert daily.column("equity_eth").to_pylist() == pytest.approx([101.0, 100.5, 100.5, 102.5])
    assert daily.column("return_frac").to_pylist() == pytest.approx(returns)
    # the same from a (block_numbers, timestamps) pair, and restricted to the run's blocks
    pair = (blocks.column("block_number").to_numpy(), blocks.column("timestamp").to_numpy())
    assert M.daily_pnl(t, pair, 100.0).equals(daily)
    assert M.daily_pnl(t, pair, 100.0, first_block=1000, last_block=1015).equals(daily)


def test_bootstrap_intervals_contain_point_estimates_and_are_seeded():
    rng = np.random.default_rng(7)
    n_days, per_day = 60, 6
    blocks = blocks_table(1, n_days * per_day, DAY // per_day)
    pnl = rng.normal(0.05, 0.2, n_days * per_day)
    rows = [(1 + i, float(p), float(p) + 0.01, 0.01) for i, p in enumerate(pnl)]
    t = trades_table(rows)
    a = M.summarize_trades(t, 0, 0, n_days * per_day, blocks=blocks, seed=3)
    b = M.summarize_trades(t, 0, 0, n_days * per_day, blocks=blocks, seed=3)
    assert a == b
    lo, hi = a["mean_profit_per_trade_ci95_eth"]
    assert lo < a["mean_profit_per_trade_eth"] < hi
    # the interval's width matches the normal approximation 2 × 1.96 σ/√n to within sampling error
    assert (hi - lo) == pytest.approx(2 * 1.96 * pnl.std(ddof=1) / math.sqrt(len(pnl)), rel=0.2)
    lo, hi = a["sharpe_ci95"]
    assert lo < a["sharpe_annualized"] < hi
    assert a["days"] == n_days
    c = M.summarize_trades(t, 0, 0, n_days * per_day, blocks=blocks, seed=4)
    assert c["sharpe_ci95"] != a["sharpe_ci95"]
    assert strict_json(a) == a


def test_sharpe_is_null_for_flat_returns():
    assert M.sharpe_ratio(np.zeros(10)) is None
    assert M.sharpe_ratio(np.array([0.01])) is None
    assert M.sharpe_ratio(np.array([0.01, 0.03])) == pytest.approx(0.02 / statistics.stdev([0.01, 0.03])
                                                                   * math.sqrt(365))


def test_survival_rate_and_expected_value_per_attempt():
    t = trades_table(DD_ROWS)
    m = M.summarize_trades(t, 9, 100, 10, attempted=8)
    assert m["survival_rate"] == pytest.approx(5 / 8)
    assert m["expected_value_per_attempt_eth"] == pytest.approx(2.0 / 8)
    assert M.summarize_trades(t, 9, 100, 10)["survival_rate"] == 1.0
    with pytest.raises(ValueError, match="attempted = 3 < trades = 5"):
        M.summarize_trades(t, 9, 100, 10, attempted=3)
    with pytest.raises(ValueError, match="initial_capital_eth"):
        M.summarize_trades(t, 9, 100, 10, initial_capital_eth=0)


def test_trade_outside_blocks_table_names_the_block():
    with pytest.raises(ValueError, match="block 999 is not in the blocks table"):
        M.summarize_trades(trades_table([(999, 1.0, 1.0, 0.0)]), 1, 1, 1, blocks=blocks_table(1000, 4, 12))


def test_json_safe_and_format_summary():
    assert M.json_safe({"a": float("nan"), "b": [np.float64(np.inf), np.int64(3)], "c": np.bool_(True)}) == \
        {"a": None, "b": [None, 3], "c": True}
    m = M.summarize_trades(trades_table(DD_ROWS), 9, 100, 10, initial_capital_eth=10.0)
    text = format_summary({"metrics": m, "timing": {"blocks_per_second": 50.0, "pairs_per_second": 1e6}})
    for needle in ("profit factor", "1.40×", "max drawdown", "4.000000 ETH", "33.3333 % of peak equity",
                   "win rate", "40.0%", "Sharpe (annualized)", "50 blocks/s"):
        assert needle in text, needle
    # the old summary.json layout (no extended keys) still formats
    old = {k: m[k] for k in ("blocks", "pairs_evaluated", "opportunities", "trades", "net_profit_eth",
                             "net_profit_usd", "gas_cost_wei", "gas_units", "mean_profit_per_trade_eth",
                             "median_profit_per_trade_eth", "win_rate")}
    assert "net profit" in format_summary(old)


def test_amount_helpers_are_exact_beyond_int64():
    """amounts_float rounds every value as float(int(v)) and amount_sum is exact, also past int64 (≥ 9.2 ETH)."""
    rng = np.random.default_rng(7)
    values = [int(v) for v in rng.integers(-2**62, 2**62, 500)]
    values += [2**63 - 1, 2**63, -2**63, 3 * 10**30 + 1, -10**25 - 7]
    col = pa.chunked_array([pa.array(values[:200], schema.AMOUNT), pa.array(values[200:], schema.AMOUNT)])
    assert schema.amounts_float(col).tolist() == [float(v) for v in values]
    assert schema.amount_sum(col) == sum(values)
    empty = pa.array([], schema.AMOUNT)
    assert schema.amount_sum(empty) == 0 and len(schema.amounts_float(empty)) == 0


def test_amounts_int_reads_the_decimal_words_exactly():
    """amounts_int (Python ints from the decimal128's two words) equals int(Decimal) for values of either sign up
    to 38 digits, in sliced and chunked columns, with None for nulls; other types are refused."""
    rng = np.random.default_rng(11)
    values = [int(v) for v in rng.integers(-2**62, 2**62, 300)] + [int(10 ** e) for e in rng.uniform(0, 37.9, 200)]
    values += [0, 1, -1, 2**63, -2**63, 2**64 - 1, -2**64, 2**112 - 1, 10**38 - 1, -(10**38 - 1), None, 5]
    col = pa.array(values, schema.AMOUNT)
    assert schema.amounts_int(col) == values
    assert schema.amounts_int(col.slice(250, 200)) == values[250:450]
    assert schema.amounts_int(pa.chunked_array([col.slice(0, 3), col.slice(3)])) == values
    assert schema.amounts_int(pa.array([], schema.AMOUNT)) == []
    with pytest.raises(ValueError, match="decimal128"):
        schema.amounts_int(pa.array([1, 2], pa.int64()))


def test_summary_sums_stay_exact_for_huge_trades():
    """Totals, win/loss means and per-trade ETH of trades far beyond int64 wei match Python-int arithmetic."""
    t = trades_table([(100, 1.0, 1.1, 0.1), (101, -0.5, 0.0, 0.5), (102, 2.0, 2.2, 0.2)])
    huge = [12_345_678_901_234_567_890_123, -98_765_432_109_876_543_211, 3]
    t = t.set_column(t.schema.get_field_index("net_profit_wei"), "net_profit_wei", pa.array(huge, schema.AMOUNT))
    s = M.summarize_trades(t, 3, 3, 3)
    assert s["net_profit_wei"] == str(sum(huge))
    assert s["winning_trades"] == 2 and s["losing_trades"] == 1
    assert s["mean_win_eth"] == (huge[0] + huge[2]) / 2 / E18
    assert s["mean_loss_eth"] == huge[1] / E18
    assert s["best_trade_eth"] == float(huge[0]) / E18 and s["worst_trade_eth"] == float(huge[1]) / E18
    assert s["profit_factor"] == (huge[0] + huge[2]) / -huge[1]


def test_block_range_mask_is_closed_and_open_ended():
    blocks = np.array([5, 6, 7, 8])
    assert schema.block_range_mask(blocks, 6, 7).tolist() == [False, True, True, False]
    assert schema.block_range_mask(blocks, None, 6).tolist() == [True, True, False, False]
    assert schema.block_range_mask(blocks).all()


def test_by_strategy_table_keeps_month_sized_columns_apart():
    """The console's per-strategy table: 8-digit counts and 6-digit ETH sums stay separate, parseable columns."""
    from gpubt.report.console import format_by_strategy

    by = {"arbitrage": dict(opportunities=46_126_912, attempted=7_750_584, trades=7_750_583, survival_rate=1.0,
                            net_profit_eth=367649.119482, gas_cost_eth=31040.817492),
          "jit": dict(opportunities=5, attempted=0, trades=0, survival_rate=None, net_profit_eth=0.0,
                      gas_cost_eth=0.0)}
    lines = format_by_strategy(by).splitlines()
    assert lines[0].split() == ["strategy", "opportunities", "attempted", "won", "survival", "net", "profit", "ETH",
                                "gas", "ETH"]
    assert lines[1].split() == ["arbitrage", "46,126,912", "7,750,584", "7,750,583", "100.0%", "367649.119482",
                                "31040.817492"]
    assert lines[2].split() == ["jit", "5", "0", "0", "n/a", "0.000000", "0.000000"]
    assert len({len(line) for line in lines}) == 1  # right-aligned: every row as wide as the header


def test_trade_totals_in_chunks_equal_the_whole_table():
    """The controller reduces a run chunk by chunk (one dataset partition at a time): the summary and the days
    equal those of the whole table (chunks in block order, each in any row order)."""
    rng = np.random.default_rng(11)
    n_days, per_day = 9, 40
    blocks = blocks_table(1, n_days * per_day, DAY // per_day)
    pnl = rng.normal(0.01, 0.05, 500)
    rows = sorted((int(b), float(p), float(p) + 0.002, 0.002) for b, p in zip(rng.integers(1, n_days * per_day, 500),
                                                                              pnl))
    t = trades_table(rows)
    kwargs = dict(blocks=blocks, first_block=1, last_block=n_days * per_day, initial_capital_eth=5.0, attempted=600,
                  bootstrap_samples=200, seed=2)
    whole = M.summarize_trades(t, 700, 9000, n_days * per_day, **kwargs)
    totals = M.TradeTotals()
    block = t.column("block_number").to_numpy()
    for lo, hi in ((1, 50), (51, 51), (52, 200), (201, n_days * per_day)):
        chunk = t.filter(pa.array((block >= lo) & (block <= hi)))
        totals.add(chunk.take(pa.array(np.arange(chunk.num_rows)[::-1])))  # row order within a chunk: any
    assert totals.summary(700, 9000, n_days * per_day, **kwargs) == whole
    days = totals.daily(blocks, 5.0, 1, n_days * per_day)
    assert totals.summary(700, 9000, n_days * per_day, daily=days, **kwargs) == whole   # the controller's: days once
    assert totals.daily(blocks, 5.0, 1, n_days * per_day).equals(M.daily_pnl(t, blocks, 5.0, 1, n_days * per_day))
    assert whole["trades"] == 500 and whole["days"] == n_days


def test_days_from_per_block_sums_with_blocks_split_over_chunks():
    """The days come from per-block sums added in trade order: a block whose trades arrive in two chunks sums to
    one pass's value to the last bit, the days equal one pass's, and a missing block in a later chunk is named."""
    rng = np.random.default_rng(13)
    n_days, per_day = 7, 30
    blocks = blocks_table(1, n_days * per_day, DAY // per_day)
    rows = sorted((int(b), float(p), float(p) + 0.001, 0.001, float(u))
                  for b, p, u in zip(rng.integers(1, 40, 400), rng.normal(0.0, 0.05, 400), rng.normal(0, 90, 400)))
    t = trades_table(rows)
    one_pass = M.TradeTotals().add(t)
    block = t.column("block_number").to_numpy()
    cuts = [0, 13, 101, 102, 250, 400]
    assert any(block[c - 1] == block[c] for c in cuts[1:-1])       # some block's trades lie on both sides of a cut
    split = M.TradeTotals()
    for lo, hi in zip(cuts, cuts[1:]):
        split.add(t.slice(lo, hi - lo))
    for name in ("_blocks", "_block_trades", "_block_eth", "_block_usd", "_net_eth"):
        assert np.array_equal(getattr(split, name), getattr(one_pass, name)), name
    assert split.daily(blocks, 5.0).equals(M.daily_pnl(t, blocks, 5.0))
    assert split._block_usd.sum() == pytest.approx(sum(r[4] for r in rows))
    day = M.daily_pnl(t, blocks, 5.0)
    assert day.column("trades").to_numpy().sum() == 400 and day.num_rows == n_days
    with pytest.raises(ValueError, match="block 215 is not in the blocks table"):
        split.add(trades_table([(215, 0.1, 0.1, 0.0)])).daily(blocks, 5.0)


def test_median_and_std_without_whole_length_copies(monkeypatch):
    """median() is a chunked radix select equal to np.median (ties, negatives, odd and even counts, values all
    alike past a chunk); std_ddof1 sums the squared deviations a chunk at a time and matches np.std."""
    rng = np.random.default_rng(5)
    for chunk in (4, 64, 1 << 20):
        monkeypatch.setattr(M, "CHUNK_VALUES", chunk)
        for n in (1, 2, 3, 10, 257, 2000):
            for values in (rng.normal(0, 1, n), np.round(rng.normal(0, 3, n)), np.full(n, -2.5),
                           rng.exponential(1e-3, n) - 2e-4, np.concatenate([np.zeros(n // 2), rng.normal(0, 1, n - n // 2)])):
                assert M.median(values) == np.median(values)
                k = int(rng.integers(0, n))
                assert M._kth_smallest(values, k) == np.sort(values)[k]
                if n > 1:
                    assert M.std_ddof1(values) == pytest.approx(values.std(ddof=1), rel=1e-12, abs=1e-300)
    strided = rng.normal(0, 1, (101, 3))[:, 1]                      # a column: not contiguous, keys need a copy
    assert M.median(strided) == np.median(strided) and M.median([3, 1, 2]) == 2.0


def test_summary_memory_is_eight_bytes_a_trade_and_chunk_sized_temporaries(monkeypatch):
    """TradeTotals holds one float64 per trade plus per-block sums; summary() and daily() allocate only
    chunk-sized temporaries (the month's np.median copy, std deviations, cumsum and the chunks' join were each a
    whole-length array: 142 MB over 17.8M trades)."""
    import tracemalloc

    monkeypatch.setattr(M, "CHUNK_VALUES", 1 << 14)
    rng = np.random.default_rng(3)
    n, n_blocks = 1_000_000, 20_000
    net = rng.normal(1e15, 5e15, n).astype(np.int64)
    block = np.sort(rng.integers(1, n_blocks + 1, n))
    dec = pa.array(net).cast(schema.AMOUNT)
    t = pa.table({"block_number": block, "tx_index": np.arange(n, dtype=np.int32), "net_profit_wei": dec,
                  "gross_profit_wei": dec, "gas_cost_wei": dec, "gas_units": np.full(n, 170_000),
                  "net_profit_usd": net / 1e18 * 2000.0})
    pieces = [t.slice(lo, 100_000) for lo in range(0, n, 100_000)]
    blocks = blocks_table(1, n_blocks, 12)
    whole_length = 8 * n
    tracemalloc.start()
    try:
        totals = M.TradeTotals()
        for piece in pieces:
            totals.add(piece)
        held = tracemalloc.get_traced_memory()[0]
        assert held < whole_length + 24 * n_blocks + 2_000_000
        tracemalloc.reset_peak()
        daily = totals.daily(blocks, 100.0)
        m = totals.summary(1, 1, n_blocks, blocks=blocks, daily=daily, bootstrap_samples=3)
        extra = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    assert extra < whole_length / 4, f"summary allocated {extra:,} B over {whole_length:,} B of per-trade floats"
    net_eth = net / 1e18
    assert m["median_profit_per_trade_eth"] == np.median(net_eth)
    assert m["final_equity_eth"] == 100.0 + float(np.cumsum(net_eth)[-1])
    assert m["std_profit_per_trade_eth"] == pytest.approx(net_eth.std(ddof=1), rel=1e-12)
    assert m["trades"] == n and m["days"] == daily.num_rows


def test_max_drawdown_in_chunks_equals_the_whole_curve(monkeypatch):
    """max_drawdown works through the trades a chunk at a time; its maxima equal drawdown()'s to the last bit."""
    rng = np.random.default_rng(12)
    net = rng.normal(0.0, 1.0, 5000) + np.repeat(rng.normal(0, 0.3, 50), 100)   # trending stretches
    dd_eth, dd_frac = M.drawdown(net, 40.0)
    whole = M.max_drawdown(net, 40.0)
    assert whole == (float(dd_eth.max()), float(dd_frac.max())) and whole[0] > 0
    for chunk in (1, 7, 999, 5000):
        monkeypatch.setattr(M, "CHUNK_VALUES", chunk)
        assert M.max_drawdown(net, 40.0) == whole
    assert M.max_drawdown(np.zeros(0), 40.0) == (0.0, 0.0)


def test_bootstrap_of_the_mean_in_chunks(monkeypatch):
    """Up to CHUNK_VALUES values the mean's interval is bootstrap_ci's; past it each resample is drawn and summed a
    chunk at a time, and is still a seeded interval around the mean as wide as the normal approximation."""
    rng = np.random.default_rng(13)
    values = rng.exponential(1.0, 3000) - 0.9                       # skewed, like trade profits
    small = M.bootstrap_mean_ci(values, 400, np.random.default_rng(1))
    assert small == M.bootstrap_ci(values, M._mean_rows, 400, np.random.default_rng(1))
    monkeypatch.setattr(M, "CHUNK_VALUES", 256)
    lo, hi = M.bootstrap_mean_ci(values, 400, np.random.default_rng(1))
    assert [lo, hi] == M.bootstrap_mean_ci(values, 400, np.random.default_rng(1))
    assert [lo, hi] != small
    assert lo < values.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * values.std(ddof=1) / math.sqrt(len(values)), rel=0.2)
    # every resample draws exactly n values however they split over the chunks: a constant's mean is exact
    assert M.bootstrap_mean_ci(np.full(3000, 0.1), 50, np.random.default_rng(2)) == [pytest.approx(0.1, rel=1e-12)] * 2
    # halves of 0 and 1: the chunks' shares of the draws centre the means on 0.5, as wide as the normal approximation
    lo, hi = M.bootstrap_mean_ci(np.repeat([0.0, 1.0], 1500), 400, np.random.default_rng(3))
    assert (lo + hi) / 2 == pytest.approx(0.5, abs=0.003) and (hi - lo) == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(3000), rel=0.2)
