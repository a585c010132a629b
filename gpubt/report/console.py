"""What the command line prints after a run: the summary table, the per-strategy table, the validation lines."""
from __future__ import annotations

from gpubt.schema import WEI_PER_ETH


def _fmt(value, spec: str, unit: str = "", none: str = "n/a") -> str:
    if value is None:
        return none
    return f"{format(value, spec)}{unit}"


def _fmt_ci(ci, spec: str, unit: str = "", label: str = "   95% CI ") -> str:
    if not ci or ci[0] is None:
        return ""
    return f"{label}[{format(ci[0], spec)}, {format(ci[1], spec)}]{unit}"


def summary_rows(summary: dict) -> list[tuple[str, str, str]]:
    """(label, value with unit, note) rows of the headline metrics, shared by the console and the HTML report."""
    m = summary.get("metrics", summary)
    t = summary.get("timing", {})
    gas_eth = int(m.get("gas_cost_wei", 0)) / WEI_PER_ETH
    rows = [
        ("blocks", f"{m['blocks']:,}",
         f"{t['blocks_per_second']:,.0f} blocks/s" if t.get("blocks_per_second") else ""),
        ("screened", f"{m['pairs_evaluated']:,}",
         f"{t['pairs_per_second']:,.0f} per s, every strategy" if t.get("pairs_per_second") else ""),
        ("opportunities", f"{m['opportunities']:,}", ""),
        ("trades", f"{m['trades']:,}", f"{_fmt(m.get('trades_per_block'), '.3f')} per block"),
        ("net profit", f"{m['net_profit_eth']:.6f} ETH", f"${m['net_profit_usd']:,.2f}"),
        ("gas spent", f"{gas_eth:.6f} ETH", f"{m.get('gas_units', 0):,} gas"),
        ("profit per trade (mean)", f"{m['mean_profit_per_trade_eth']:.6f} ETH",
         f"median {m['median_profit_per_trade_eth']:.6f} ETH"
         + _fmt_ci(m.get("mean_profit_per_trade_ci95_eth"), ".6f", " ETH")),
        ("win rate", f"{m['win_rate']:.1%}",
         f"{m.get('winning_trades', 0):,} won, {m.get('losing_trades', 0):,} lost"),
    ]
    if "profit_factor" in m:
        pf = m["profit_factor"]
        rows += [
            ("profit factor", _fmt(pf, ".2f", "×", "∞ (no losing trade)" if m.get("trades") else "n/a"),
             "gross wins ÷ gross losses"),
            ("expected value / trade", f"{m['expected_value_per_trade_eth']:.6f} ETH",
             f"per attempt {_fmt(m.get('expected_value_per_attempt_eth'), '.6f', ' ETH')}"),
            ("survival rate", _fmt(m.get("survival_rate"), ".1%"), f"{m['trades']:,} of {m['attempted']:,} attempted"),
            ("gas efficiency", _fmt(m.get("gas_efficiency"), ".2f", "×"), "gross profit ÷ gas cost"),
            ("initial capital", f"{m['initial_capital_eth']:,.2f} ETH",
             f"final {m['final_equity_eth']:,.6f} ETH ({m['return_on_capital']:+.4%})"),
            ("max drawdown", f"{m['max_drawdown_eth']:.6f} ETH", f"{m['max_drawdown_pct']:.4f} % of peak equity"),
            ("days", _fmt(m.get("days"), ",d"),
             f"mean {_fmt(m.get('mean_daily_pnl_eth'), '.6f', ' ETH')}/day, "
             f"{_fmt(m.get('mean_daily_pnl_usd'), ',.2f', ' USD')}/day" if m.get("days") else "no block timestamps"),
            ("Sharpe (annualized)", _fmt(m.get("sharpe_annualized"), ".2f", none="n/a (needs ≥ 2 days)"),
             _fmt_ci(m.get("sharpe_ci95"), ".2f").strip() or "daily returns × √365"),
        ]
    return rows


def format_summary(summary: dict) -> str:
    """A short aligned console table of the headline metrics (a summary.json dict or its "metrics"), then the
    survival prediction's line under competition."""
    rows = summary_rows(summary)
    width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{label:<{width}}  {value:>{value_width}}   {note}".rstrip() for label, value, note in rows]
    for line in (format_calibration(summary), format_policy(summary)):
        if line:
            lines.append(line)
    return "\n".join(lines)


def format_policy(summary: dict) -> str:
    """One line: the strategy-selection policies' P&L (summary.json `policy`), the run's own marked; '' without."""
    section = summary.get("policy") or {}
    if not section.get("policies"):
        return ""
    parts = [f"{'*' if name == section['name'] else ''}{name} {p['pnl_eth']:.6f}"
             + _fmt_ci(p.get("pnl_ci95_eth"), ".4f", label=" ")
             for name, p in section["policies"].items()]
    line = (f"policy ({section['window_blocks']}-block windows, {section['windows']:,}): P&L ETH "
            + ", ".join(parts) + " (95% CI; *: policy=)")
    capital = section.get("capital")
    if capital and section["name"] != "static":   # the run's policy's mean share of the budget per strategy
        shares = section["policies"][section["name"]].get("mean_capital_share", {})
        line += (f"; its capital split of {capital['budget_eth']:,.2f} ETH: "
                 + ", ".join(f"{s} {v:.0%}" for s, v in shares.items()) + " on average")
    return line


def format_calibration(summary: dict) -> str:
    """One line on how well the auction's win probability predicted the outcomes, over every trade (summary.json
    competition.calibration.all); '' without competition or trades."""
    every = ((summary.get("competition") or {}).get("calibration") or {}).get("all") or {}
    if not every.get("n"):
        return ""
    return f"survival prediction: Brier {every['brier']:.3f}, ECE {every['ece']:.3f} ({every['n']:,} trades)"


def format_by_strategy(by: dict) -> str:
    """The console's per-strategy table; each column as wide as its widest cell (a month has 8-digit counts)."""
    header = ("strategy", "opportunities", "attempted", "won", "survival", "net profit ETH", "gas ETH")
    rows = [(name, f"{r['opportunities']:,}", f"{r['attempted']:,}", f"{r['trades']:,}",
             "n/a" if r["survival_rate"] is None else f"{r['survival_rate']:.1%}", f"{r['net_profit_eth']:.6f}",
             f"{r['gas_cost_eth']:.6f}") for name, r in by.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" ".join(cell.ljust(w) if i == 0 else cell.rjust(w + 2) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    return "\n".join([*lines, *(f"{name}: {r['note']}" for name, r in by.items() if r.get("note"))])


def format_scores(scores: dict, ran=None) -> str:
    """One console line per label kind; `ran`: only the kinds of these strategies (default every kind)."""
    lines = []
    for kind, s in scores["kinds"].items():
        if ran is not None and kind not in ran:
            continue
        p = s["profit"]
        fmt = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)  # noqa: E731
        lines.append(f"{kind:<10} labels {s['labels']:>6}  ours {s['ours']:>6}  matched {s['matched']:>6}  "
                     f"precision {fmt(s['precision'])}  recall {fmt(s['recall'])}  F1 {fmt(s['f1'])}  "
                     f"profit MAE {fmt(p['mae_eth'], '{:.6f}')} ETH  med rel err {fmt(p['median_rel_error'], '{:.2e}')}  "
                     f"R² {fmt(p['r2'], '{:.4f}')}  r {fmt(p['pearson'], '{:.4f}')}")
    return "\n".join(lines)


def execution_rows(summary: dict) -> tuple[list, list]:
    """The ordered exact pass (summary.json `execution`): (label, this run, replay) rows of our executed trades,
    their exact net profit and win rate in both modes; then (label, value, note) rows of what the market's reaction
    did. Both empty for a summary without an `execution` section."""
    e = summary.get("execution")
    if not e:
        return [], []
    r = e.get("replay") or {}
    mine = e["mode"]

    def win(d):
        return _fmt(d.get("executed_win_rate"), ".1%") if d else "—"

    rows = [("execution", mine, "replay" if r else "—"),
            ("trades executed", f"{e['executed_trades']:,}", f"{r['executed_trades']:,}" if r else "—"),
            ("net profit (exact, before bids)", f"{e['executed_net_eth']:.6f} ETH",
             f"{r['executed_net_eth']:.6f} ETH" if r else "—"),
            ("win rate", win(e), win(r))]
    reaction = []
    rep = e.get("repeated_captures") or {}
    if rep:
        reaction.append(("repeated captures", f"{rep['trades']:,}", "arbitrage trades re-taking a cycle we traded, "
                         "no searcher closing it in between"))
    if mine == "counterfactual":
        reaction += [("historical txs re-executed", f"{e['reexecuted_txs']:,}", "on pools our trades forked"),
                 ("user swaps reverted", f"{e['reverted_user_swaps']:,}", "their limit failed on the forked state"),
                 ("rival bundles pre-empted", f"{e['preempted_rivals']:,}", "labeled searcher txs that no longer paid"),
                 ("pools diverged", f"{e['diverged_pools']:,}",
                  f"mean {e['mean_blocks_diverged']:,.0f} blocks, mean |Δprice| {e['mean_abs_price_divergence']:.3%}"),
                 ("bundles dropped or re-priced", f"{e['conflicts']:,} / {e['repriced']:,}",
                  f"conflicts at a point / re-priced on a changed pool ({e['repriced_dropped']:,} then not sent)"),
                 ("bundles lost at the auction", f"{e.get('lost_bundles', 0):,}",
                  "sent, outbid or in a block without bundles: the market kept history's state")]
    return rows, reaction


def format_execution(summary: dict) -> str:
    """The console's lines on the ordered exact pass (execution_rows), '' without an execution section."""
    compared, reaction = execution_rows(summary)
    rows = compared + reaction
    if not rows:
        return ""
    width = max(len(a) for a, _, _ in rows)
    value = max(len(b) for _, b, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value}}   {c}".rstrip() for a, b, c in rows)
