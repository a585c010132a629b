"""A self-contained HTML report of a results folder: the summary table and matplotlib plots as inline PNGs.

    write_report("results/synthetic-20250101-120000")   # → <folder>/report.html (no external resources)

Reads summary.json, trades.parquet and opportunities.parquet; optional inputs, each plotted only when the
file is in the folder:
  daily_pnl.parquet            gpubt.analysis.metrics.DAILY_PNL (else computed from the dataset's blocks table
                               when summary.json's run.dataset can still be opened)
  sweep.parquet                one row per threshold config: parameter columns + a metric column
                               (net_profit_eth, else net_profit_wei, profit_eth, trades): a heatmap of the
                               first two parameters (best over the others), a line for one parameter
  validation_matches.parquet   one row per matched trade: an estimated and a realized profit column
                               (names containing "estimated"/"screen"/"predicted" and "realized"/"actual"/
                               "label"/"observed"; ETH or wei by name): a scatter with the y = x line
With competition, summary.json's competition.calibration gives the survival prediction's reliability curve;
summary.json's policy, the strategy-selection policies' cumulative P&L and the bandit's choices per window.
Trades without a `strategy` column are "arbitrage".
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpubt.analysis import metrics as M
from gpubt.run.monitor import release_memory
from gpubt.report.console import execution_rows, summary_rows
from gpubt.schema import WEI_PER_ETH, amounts_float

DEFAULT_STRATEGY = "arbitrage"
MAX_BARS = 400           # opportunities per block: more blocks than this are averaged into bins
MAX_STEP_POINTS = 20_000  # a step series longer than this is thinned (_Thinner)
# trades.parquet columns no plot or metric reads: a month of results is millions of rows
TRADE_COLUMNS_UNUSED = ("detail", "pools", "zero_for_one", "amount_in", "amount_out", "screen_net_profit_wei",
                        "path_id", "start_token", "gross_profit_raw", "gas_price_wei", "win_probability",
                        "expected_payoff_wei", "mean_winning_bid_wei", "competitors_bidding", "won", "bid_wei",
                        "net_after_bid_wei")
COLORS = ("#1f5fa8", "#d9731a", "#2a9d4b", "#b5302a", "#7b4fa6", "#7f7f7f")


def write_report(results_dir, out_name: str = "report.html", display_dir=None) -> Path:
    """Write `<results_dir>/report.html` (self-contained) and return its path.

    `display_dir`: the folder name the page shows, when the report is written into a temporary folder that is
    renamed into place afterwards (the controller's atomic results folder).
    """
    folder = Path(results_dir)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: not found (is {folder} a gpubt results folder?)")
    summary = json.loads(summary_path.read_text())
    run = summary.get("run", {})
    opportunities = _opportunity_counts(folder / "opportunities.parquet", run)
    capital = _initial_capital(summary, folder)
    daily = _read(folder / "daily_pnl.parquet") or _daily_from_dataset(folder, run, capital)

    metrics = summary.get("metrics", {})
    recomputed = False
    if "max_drawdown_eth" not in metrics:  # summary.json from before the extended metrics: fill them in
        blocks = _blocks_from_dataset(run)
        metrics = M.summarize_trades(_read(folder / "trades.parquet", skip=TRADE_COLUMNS_UNUSED),
                                     metrics.get("opportunities", opportunities.total),
                                     metrics.get("pairs_evaluated", 0), metrics.get("blocks", 0),
                                     blocks=blocks, first_block=run.get("first_block"),
                                     last_block=run.get("last_block"), initial_capital_eth=capital)
        recomputed = True
    summary = dict(summary, metrics=metrics)

    figures = []
    trades = _read_trades(folder / "trades.parquet", capital, run)
    release_memory()   # Arrow's pool and malloc keep the batches' freed pages otherwise
    net_eth = trades.net_eth
    figures.append(("Equity", _plot_equity(trades, capital, run),
                    f"Equity = initial capital ({capital:,.2f} ETH) + cumulative net profit, after each trade "
                    "that landed (trades in block, transaction order)."))
    figures.append(("Drawdown", _plot_drawdown(trades, capital, run),
                    "Drawdown = running peak of equity − equity (ETH), and as % of the running peak."))
    if daily is not None and daily.num_rows:
        figures.append(("Daily PnL", _plot_daily(daily),
                        "Net profit per UTC day of the block timestamps (ETH, bars) and equity at day end."))
    figures.append(("Profit distribution per strategy", _plot_profit_distribution(trades, net_eth),
                    "Histogram of the exact net profit per trade (ETH, after gas), one series per strategy."))
    figures.append(("Cumulative gas", _plot_gas(trades, run),
                    "Σ gas cost (gas units × gas price, ETH) of the trades taken, against Σ gross profit."))
    figures.append(("Opportunities per block", _plot_opportunities(opportunities),
                    "Pairs over the threshold per block, by strategy (mean per block over bins when the run "
                    f"has more than {MAX_BARS} blocks)."))
    if summary.get("funnel"):
        figures.append(("Opportunity funnel", _plot_funnel(summary["funnel"]),
                        "Per strategy, how many opportunities reach each stage: screened by the kernel, over the "
                        "float threshold, chosen for exact pricing, confirmed by the exact figure, attempted (kept by "
                        "the threshold model), won the auction; and the value there (ETH: screened net, then exact "
                        "net, then net after our bid). docs/metrics.md defines each stage."))
    if (summary.get("policy") or {}).get("policies"):
        section = summary["policy"]
        figures.append(("Strategy selection policy", _plot_policy(section),
                        f"Per window of {section['window_blocks']:,} blocks, the strategies on: static (all, every "
                        "window, capital as configured), bandit (contextual Thompson sampling on trailing regime "
                        "features, learned online from its own windows), oracle (in hindsight, the choice worth the "
                        "most). Sandwich and JIT need capital: a policy splits a budget between them, and their "
                        "trades are priced exactly at each share. Above, each policy's cumulative P&L (ETH, net "
                        "after bids); below, the windows in which the bandit ran each strategy and the share it "
                        "gave. Scored on this run's trades: switching a strategy off removes its trades, the market "
                        "is not replayed (docs/policy.md).", _policy_table(section)))
    calibrated = _calibrated(summary)
    if calibrated:
        figures.append(("Survival prediction: reliability", _plot_reliability(calibrated),
                        "Each trade's predicted win probability (wins ÷ Monte Carlo scenarios of the auction) against "
                        "whether it won: per bin of 0.1, the observed win rate over the mean predicted probability "
                        "(marker area ∝ trades in the bin; below, the trades per bin). Points on the dashed diagonal "
                        "are calibrated. Brier = mean (p − won)²; ECE = Σ bins n_b ÷ n × |mean p − observed rate| "
                        "(docs/metrics.md).", _calibration_table(calibrated)))
    sweep = _read(folder / "sweep.parquet")
    if sweep is not None and sweep.num_rows:
        fig = _plot_sweep(sweep)
        if fig is not None:
            figures.append(("Threshold sweep", fig[0], fig[1]))
    validation = _read_validation(folder / "validation_matches.parquet")
    if validation is not None:
        fig = _plot_validation(*validation)
        if fig is not None:
            figures.append(("Validation: estimated vs realized profit", fig[0], fig[1]))

    page = _page(Path(display_dir) if display_dir is not None else folder, summary, figures, recomputed)
    out = folder / out_name
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- inputs

def _read(path: Path, required: bool = False, skip=()) -> pa.Table | None:
    """A results table (without the `skip` columns), or None when optional and absent."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: not found (the results folder is incomplete)")
        return None
    names = pq.read_schema(path).names
    return pq.read_table(path, columns=[n for n in names if n not in skip])


def _initial_capital(summary: dict, folder: Path) -> float:
    value = summary.get("metrics", {}).get("initial_capital_eth")
    if value is None and (folder / "config.yaml").is_file():
        try:
            from omegaconf import OmegaConf

            value = OmegaConf.select(OmegaConf.load(folder / "config.yaml"), "metrics.initial_capital_eth")
        except Exception:  # an unreadable config only loses the configured capital, not the report
            value = None
    return float(value) if value is not None else M.DEFAULT_INITIAL_CAPITAL_ETH


def _blocks_from_dataset(run: dict):
    """(block_numbers, timestamps) of the run's dataset, or None when it cannot be opened any more."""
    path = run.get("dataset")
    if not path or not Path(path).is_dir():
        return None
    try:
        from gpubt.data.store import Dataset

        blocks = Dataset(path).read("blocks")
    except Exception:  # moved or partial dataset: the report goes on without daily figures
        return None
    return blocks.column("block_number").to_numpy(), blocks.column("timestamp").to_numpy()


def _daily_from_dataset(folder: Path, run: dict, capital: float) -> pa.Table | None:
    """daily PnL for a results folder from before daily_pnl.parquet, from its trades and the dataset's blocks."""
    clock = _blocks_from_dataset(run)
    if clock is None:
        return None
    try:
        trades = _read(folder / "trades.parquet", skip=TRADE_COLUMNS_UNUSED)
        return M.daily_pnl(trades, clock, capital, run.get("first_block"), run.get("last_block"))
    except ValueError:
        return None


@dataclass
class _Trades:
    """The landed trades as the plots need them: net profit and strategy per trade (the histogram), and the step
    series in (block, tx) order already thinned (_Thinner), so no other per-trade array is kept (a month is ~19M
    trades: its block, gas and gross arrays and their cumulative sums took ~3 GB)."""

    net_eth: np.ndarray
    names: list          # strategy names, sorted
    codes: np.ndarray    # each trade's index into names
    gas_units: int
    equity: tuple        # (x, y): block, equity after each trade (ETH), from the run's first block
    drawdown: tuple      # (x, −drawdown in ETH)
    worst: tuple         # (largest drawdown in ETH, as a fraction of its peak)
    gas: tuple           # (x, Σ gas cost in ETH)
    gross: tuple         # (x, Σ gross profit in ETH)

    @property
    def num_rows(self) -> int:
        return len(self.net_eth)


class _Unordered(Exception):
    """trades.parquet is not in (block, tx) order (gpubt run writes it in that order)."""


def _read_trades(path: Path, capital: float = M.DEFAULT_INITIAL_CAPITAL_ETH, run: dict | None = None) -> _Trades:
    """trades.parquet's landed trades (`won`, net after the builder bid), read a batch at a time."""
    file = pq.ParquetFile(path, pre_buffer=False)
    names = set(file.schema_arrow.names)
    net = "net_after_bid_wei" if "net_after_bid_wei" in names else "net_profit_wei"
    columns = [c for c in ("strategy", "block_number", "tx_index", net, "gross_profit_wei", "gas_cost_wei",
                           "gas_units", "won") if c in names]
    try:
        return _accumulate(file.iter_batches(columns=columns, batch_size=1 << 18), file.metadata.num_rows, net,
                           capital, run or {})
    except _Unordered:  # a file not written by gpubt run: sorted whole, then the same
        table = pq.read_table(path, columns=columns).sort_by([("block_number", "ascending"), ("tx_index", "ascending")])
        return _accumulate(table.to_batches(1 << 20), table.num_rows, net, capital, run or {})


def _accumulate(batches, n_rows: int, net: str, capital: float, run: dict) -> _Trades:
    """_Trades from record batches of trades.parquet in (block, tx) order (_Unordered otherwise)."""
    net_eth, codes = np.empty(n_rows), np.empty(n_rows, np.int8)   # pages past the landed count are never touched
    curves = [_Thinner(n_rows + 1) for _ in range(4)]              # equity, −drawdown, Σ gas, Σ gross
    seen, count, gas_units, last = {}, 0, 0, None                  # seen: strategy name -> code, in order of appearance
    equity_run, sums = M.Drawdown(capital), [0.0, 0.0]

    def begin(start: float) -> None:  # every series starts before the first trade, at its start value
        for curve, y0 in zip(curves, (equity_run.capital, 0.0, 0.0, 0.0)):
            curve.add(np.array([start]), np.array([y0]))

    for batch in batches:
        t = pa.Table.from_batches([batch])
        if "won" in t.column_names:
            t = t.filter(pc.fill_null(t.column("won"), False))
        if not t.num_rows:
            continue
        block, tx = t.column("block_number").to_numpy(), t.column("tx_index").to_numpy()
        step = np.diff(np.concatenate([[last[0]], block])) if last else np.diff(block)
        tx_step = np.diff(np.concatenate([[last[1]], tx])) if last else np.diff(tx)
        if not np.all((step > 0) | ((step == 0) & (tx_step >= 0))):
            raise _Unordered
        if last is None:
            begin(float(run.get("first_block", block[0])))
        last = (int(block[-1]), int(tx[-1]))
        local, local_codes = _strategies(t)
        remap = np.asarray([seen.setdefault(name, len(seen)) for name in local] or [0], np.int8)
        gas_units += int(t.column("gas_units").to_numpy().sum())
        pnl = _eth(t, net)
        net_eth[count:count + len(pnl)] = pnl
        codes[count:count + len(pnl)] = remap[local_codes]
        count += len(pnl)
        x = block.astype(np.float64)
        equity, fall = equity_run.add(pnl)
        curves[0].add(x, equity)
        curves[1].add(x, -fall)
        for i, column in enumerate(("gas_cost_wei", "gross_profit_wei")):
            cum = M.running_sum(_eth(t, column), sums[i])
            sums[i] = float(cum[-1])
            curves[2 + i].add(x, cum)
    if last is None:
        begin(float(run.get("first_block", 0)))
    ranked = sorted(seen)
    rank = np.asarray([ranked.index(name) for name in seen] or [0], np.int8)
    equity, drawdown, gas, gross = (c.finish() for c in curves)
    return _Trades(net_eth[:count], ranked, rank[codes[:count]], gas_units, equity, drawdown,
                   (equity_run.worst_eth, equity_run.worst_frac), gas, gross)


def _eth(table: pa.Table, column: str) -> np.ndarray:
    return amounts_float(table.column(column)) / WEI_PER_ETH


def _strategies(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """(the strategy names, sorted; each row's index into them), without a Python string per row."""
    if "strategy" not in table.column_names:
        return [DEFAULT_STRATEGY] if table.num_rows else [], np.zeros(table.num_rows, np.int64)
    encoded = pc.fill_null(table.column("strategy"), DEFAULT_STRATEGY).combine_chunks().dictionary_encode()
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), np.int64)
    rank[np.argsort(names)] = np.arange(len(names))
    return sorted(names), rank[encoded.indices.to_numpy(zero_copy_only=False)]


@dataclass
class _OpportunityCounts:
    """Opportunities per strategy and block bin (MAX_BARS bins over the run), counted a batch at a time."""

    first: int
    last: int
    bin_blocks: int
    counts: dict        # strategy -> per-bin counts
    total: int


def _opportunity_counts(path: Path, run: dict) -> _OpportunityCounts:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (the results folder is incomplete)")
    file = pq.ParquetFile(path)
    columns = [c for c in ("strategy", "block_number") if c in file.schema_arrow.names]
    stats = [file.metadata.row_group(i).column(columns.index("block_number")).statistics
             for i in range(file.num_row_groups)]
    known = [s for s in stats if s is not None and s.has_min_max]
    first = int(run.get("first_block", min((s.min for s in known), default=0)))
    last = int(run.get("last_block", max((s.max for s in known), default=first)))
    bin_blocks = max(1, math.ceil((last - first + 1) / MAX_BARS))
    n_bins = math.ceil((last - first + 1) / bin_blocks)
    counts, total = {}, 0
    for batch in file.iter_batches(columns=columns, batch_size=1 << 18):
        t = pa.Table.from_batches([batch])
        names, codes = _strategies(t)
        bins = (t.column("block_number").to_numpy() - first) // bin_blocks
        for i, name in enumerate(names):
            add = np.bincount(bins[codes == i], minlength=n_bins)[:n_bins]
            counts[name] = counts.get(name, 0) + add
        total += t.num_rows
    return _OpportunityCounts(first, last, bin_blocks, dict(sorted(counts.items())), total)


# ---------------------------------------------------------------- plots

def _figure(height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, height), dpi=110, layout="constrained")
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def _block_axis(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xlabel("block number")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _extend_to_end(x: np.ndarray, y: np.ndarray, run: dict) -> tuple[np.ndarray, np.ndarray]:
    end = run.get("last_block")
    if end is not None and len(x) and end > x[-1]:
        return np.append(x, float(end)), np.append(y, y[-1])
    return x, y


class _Thinner:
    """A step series fed in order a piece at a time, kept as ~max_points: each bucket of `size` consecutive points
    keeps its first, last, lowest and highest point, so the drawn envelope is the same at screen resolution."""

    def __init__(self, n_points: int, max_points: int = MAX_STEP_POINTS):
        self.size = 1 if n_points <= max_points else math.ceil(n_points / (max_points // 4))
        self.xs, self.ys = [], []
        self.tail = (np.zeros(0), np.zeros(0))   # the points of a bucket not yet full

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.concatenate([self.tail[0], x]), np.concatenate([self.tail[1], y])
        full = len(y) // self.size * self.size
        self._keep(x[:full], y[:full], self.size)
        self.tail = (x[full:], y[full:])

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._keep(*self.tail, len(self.tail[1]))
        self.tail = (np.zeros(0), np.zeros(0))
        return np.concatenate(self.xs or [np.zeros(0)]), np.concatenate(self.ys or [np.zeros(0)])

    def _keep(self, x: np.ndarray, y: np.ndarray, size: int) -> None:
        if not len(y):
            return
        if size > 1:
            body = y.reshape(-1, size)   # a view: whole buckets only
            starts = np.arange(0, len(y), size)
            keep = np.unique(np.concatenate([starts, starts + size - 1, starts + body.argmin(axis=1),
                                             starts + body.argmax(axis=1)]))
            x, y = x[keep], y[keep]
        self.xs.append(x)
        self.ys.append(y)


def _plot_equity(trades, capital, run) -> str:
    fig, ax = _figure()
    x, y = _extend_to_end(*trades.equity, run)
    ax.step(x, y, where="post", color=COLORS[0], linewidth=1.4)
    ax.axhline(capital, color="#999", linewidth=0.8, linestyle="--", label=f"initial capital {capital:,.2f} ETH")
    ax.set_ylabel("equity (ETH)")
    ax.set_title("Equity curve")
    ax.legend(loc="upper left", frameon=False)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    _block_axis(ax)
    return _png(fig)


def _plot_drawdown(trades, capital, run) -> str:
    fig, ax = _figure(2.8)
    x, y = _extend_to_end(*trades.drawdown, run)
    ax.fill_between(x, y, 0, step="post", color=COLORS[3], alpha=0.35, linewidth=0)
    ax.step(x, y, where="post", color=COLORS[3], linewidth=1.0)
    ax.set_ylabel("drawdown (ETH)")
    worst, worst_frac = trades.worst
    ax.set_title(f"Drawdown (max {worst:.6f} ETH, {100 * worst_frac:.4f} % of peak)")
    if worst == 0:
        ax.set_ylim(-1e-3 * capital, 1e-4 * capital)
        _empty(ax, "no drawdown: equity never fell below its running peak")
    _block_axis(ax)
    return _png(fig)


def _plot_daily(daily: pa.Table) -> str:
    fig, ax = _figure()
    days = [str(d) for d in daily.column("day").to_pylist()]
    pnl = daily.column("pnl_eth").to_numpy()
    x = np.arange(len(days))
    ax.bar(x, pnl, color=np.where(pnl >= 0, COLORS[2], COLORS[3]), width=0.6 if len(days) > 3 else 0.3)
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.set_ylabel("net PnL per day (ETH)")
    ax2 = ax.twinx()
    ax2.plot(x, daily.column("equity_eth").to_numpy(), color=COLORS[0], marker="o", markersize=3)
    ax2.set_ylabel("equity at day end (ETH)", color=COLORS[0])
    ax2.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax2.spines[["top"]].set_visible(False)
    step = max(1, math.ceil(len(days) / 12))
    ax.set_xticks(x[::step], days[::step], rotation=30 if len(days) > 6 else 0)
    ax.set_xlim(-0.75, len(days) - 0.25)
    ax.set_title(f"Daily PnL ({len(days)} day{'s' if len(days) != 1 else ''}, UTC)")
    return _png(fig)


def _binned(values: np.ndarray, codes: np.ndarray, bins: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per code, the histogram counts of `values` over `bins` (np.histogram's, last bin closed) and their sum,
    M.CHUNK_VALUES at a time: no per-strategy copy of a month's ~19M profits."""
    counts, sums = np.zeros((n_codes, len(bins) - 1), np.int64), np.zeros(n_codes)
    for lo in range(0, len(values), M.CHUNK_VALUES):
        v, c = values[lo:lo + M.CHUNK_VALUES], codes[lo:lo + M.CHUNK_VALUES].astype(np.int64)
        b = np.clip(np.searchsorted(bins, v, side="right") - 1, 0, len(bins) - 2)
        inside = (v >= bins[0]) & (v <= bins[-1])
        counts += np.bincount(c[inside] * (len(bins) - 1) + b[inside],
                              minlength=n_codes * (len(bins) - 1)).reshape(n_codes, -1)
        sums += np.bincount(c, weights=v, minlength=n_codes)
    return counts, sums


def _plot_profit_distribution(trades, net_eth) -> str:
    fig, ax = _figure()
    if not len(net_eth):
        _empty(ax, "no trades")
        return _png(fig)
    names, codes = trades.names, trades.codes
    positive = bool((net_eth > 0).all())
    if positive:  # heavy-tailed: log-spaced bins on a log axis
        bins = np.logspace(np.log10(net_eth.min()), np.log10(net_eth.max()) + 1e-9, 30)
        ax.set_xscale("log")
    else:
        bins = np.histogram_bin_edges(net_eth, bins=30)
        ax.axvline(0, color="#999", linewidth=0.8)
    counts, sums = _binned(net_eth, codes, bins, len(names))
    for i, name in enumerate(names):
        n = int(counts[i].sum())
        ax.stairs(counts[i], bins, fill=True, alpha=0.6 if len(names) > 1 else 0.85, color=COLORS[i % len(COLORS)],
                  label=f"{name}: {n:,} trades, mean {sums[i] / max(n, 1):.6f} ETH")
    ax.set_xlabel("net profit per trade (ETH" + (", log scale)" if positive else ")"))
    ax.set_ylabel("trades")
    ax.set_title("Profit distribution per strategy")
    ax.legend(frameon=False)
    return _png(fig)


def _plot_gas(trades, run) -> str:
    fig, ax = _figure()
    if not trades.num_rows:
        _empty(ax, "no trades")
        return _png(fig)
    xg, gas = _extend_to_end(*trades.gas, run)
    xp, gross = _extend_to_end(*trades.gross, run)
    ax.step(xg, gas, where="post", color=COLORS[1], linewidth=1.4, label=f"Σ gas cost ({gas[-1]:.6f} ETH)")
    ax.step(xp, gross, where="post", color=COLORS[2], linewidth=1.0, linestyle="--",
            label=f"Σ gross profit ({gross[-1]:.6f} ETH)")
    ax.set_ylabel("cumulative (ETH)")
    ax.set_title(f"Cumulative gas ({trades.gas_units:,} gas units)")
    ax.legend(loc="upper left", frameon=False)
    _block_axis(ax)
    return _png(fig)


def _plot_opportunities(opportunities: _OpportunityCounts) -> str:
    fig, ax = _figure()
    o = opportunities
    n_blocks, bin_blocks = o.last - o.first + 1, o.bin_blocks
    n_bins = math.ceil(n_blocks / bin_blocks)
    left = o.first + np.arange(n_bins) * bin_blocks
    bottom = np.zeros(n_bins)
    for i, (name, per_bin) in enumerate((o.counts or {DEFAULT_STRATEGY: np.zeros(n_bins, np.int64)}).items()):
        counts = per_bin / bin_blocks
        ax.bar(left, counts, width=bin_blocks, bottom=bottom, align="edge", color=COLORS[i % len(COLORS)],
               label=f"{name}: {int(per_bin.sum()):,} opportunities", linewidth=0)
        bottom += counts
    ax.set_ylabel("opportunities per block" if bin_blocks == 1 else f"opportunities per block\n(mean of {bin_blocks})")
    ax.set_title(f"Opportunities per block ({o.total:,} over {n_blocks:,} blocks, "
                 f"{o.total / n_blocks:.3f} per block)")
    ax.set_xlim(o.first, o.last + 1)
    ax.legend(loc="upper right", frameon=False)
    _block_axis(ax)
    return _png(fig)


def _plot_funnel(funnel: dict) -> str:
    """Horizontal bars, one group per strategy, a bar per stage (log count), each labeled with its count and value."""
    names = list(funnel)
    n_stages = max(len(stages) for stages in funnel.values())
    fig, ax = _figure(height=max(2.4, 0.22 * len(names) * (n_stages + 1) + 0.8))
    y, labels, ticks = 0.0, [], []
    for i, name in enumerate(names):
        for stage in funnel[name]:
            count = max(stage["count"], 0)
            if count:
                ax.barh(y, count, color=COLORS[i % len(COLORS)], height=0.8, log=True)
            value = "" if stage["value_eth"] is None else f"  {stage['value_eth']:,.4f} ETH"
            ax.text(max(count, 1) * 1.15, y, f"{count:,}{value}", va="center", fontsize=7)
            ticks.append(y)
            labels.append(f"{name}: {stage['stage'].replace('_', ' ')}")
            y -= 1.0
        y -= 0.8
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("opportunities reaching the stage (log)")
    ax.set_xlim(0.7, max(max(s["count"] for st in funnel.values() for s in st), 1) * 60)
    ax.set_title("Opportunity funnel by strategy")
    return _png(fig)


def _calibrated(summary: dict) -> dict:
    """summary.json's competition.calibration of the strategies with trades, then "all" when there are two or more
    of them; {} without competition or trades."""
    table = (summary.get("competition") or {}).get("calibration") or {}
    strategies = {k: v for k, v in table.items() if k != "all" and v.get("n")}
    if len(strategies) > 1:
        strategies["all"] = table["all"]
    return strategies


def _plot_reliability(calibrated: dict) -> str:
    """The reliability curve (observed rate over mean predicted probability per bin, one line per strategy, the
    diagonal dashed) above the trades per bin."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.0, 5.4), dpi=110, layout="constrained", sharex=True,
                                   gridspec_kw={"height_ratios": (3, 1)})
    for a in (ax, hist):
        a.grid(True, alpha=0.3, linewidth=0.6)
        a.spines[["top", "right"]].set_visible(False)
    ax.plot([0, 1], [0, 1], color="#999", linewidth=0.8, linestyle="--", label="calibrated")
    n_max = max(b["n"] for c in calibrated.values() for b in c["bins"])
    width = 0.8 / len(calibrated)
    for i, (name, c) in enumerate(calibrated.items()):
        color = "#222" if name == "all" else COLORS[i % len(COLORS)]
        full = [b for b in c["bins"] if b["n"]]
        x = np.array([b["mean_predicted"] for b in full])
        y = np.array([b["observed_rate"] for b in full])
        ax.plot(x, y, color=color, linewidth=1.2, linestyle=":" if name == "all" else "-", zorder=2)
        ax.scatter(x, y, s=12 + 140 * np.sqrt(np.array([b["n"] for b in full]) / n_max), color=color, alpha=0.75,
                   linewidths=0, zorder=3, label=f"{name}: Brier {c['brier']:.3f}, ECE {c['ece']:.3f}")
        lo = np.array([b["lo"] for b in c["bins"]])
        step = c["bins"][0]["hi"] - c["bins"][0]["lo"]
        hist.bar(lo + step * (0.1 + width * i), [b["n"] for b in c["bins"]], width=step * width, align="edge",
                 color=color, linewidth=0)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed win rate")
    ax.set_title("Survival prediction: reliability")
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    hist.set_xlabel("predicted win probability")
    hist.set_ylabel("trades")
    return _png(fig)


def _calibration_table(calibrated: dict) -> str:
    """The small table beside the reliability plot: per strategy, trades, Brier, ECE, mean predicted and observed."""
    head = "".join(f"<th>{h}</th>" for h in ("strategy", "trades", "Brier", "ECE", "predicted", "observed"))
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=num>{c['n']:,}</td><td class=num>{c['brier']:.4f}</td>"
        f"<td class=num>{c['ece']:.4f}</td><td class=num>{c['mean_predicted']:.3f}</td>"
        f"<td class=num>{c['observed_rate']:.3f}</td></tr>" for name, c in calibrated.items())
    return f"<table class=small><tr>{head}</tr>{body}</table>"


def _plot_policy(section: dict) -> str:
    """Cumulative P&L over windows of each policy (steps at the windows' first blocks), above a strip of the
    bandit's choices (a row per strategy, a cell per window, filled where it was on)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    names = section["strategies"]
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(9.0, 3.4 + 0.22 * len(names)), dpi=110, layout="constrained",
                                    sharex=True, gridspec_kw={"height_ratios": (3, 0.6 + 0.25 * len(names))})
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    starts = np.asarray(section["window_first_block"], np.float64)
    edges = np.append(starts, starts[-1] + section["window_blocks"])
    for i, (name, p) in enumerate(section["policies"].items()):
        y = np.concatenate([[0.0], p["cumulative_pnl_eth"]])
        ax.step(edges, y, where="post", color=COLORS[i % len(COLORS)], linewidth=1.4,
                label=f"{name}: {p['pnl_eth']:,.4f} ETH" + (" (policy=)" if name == section["name"] else ""))
    ax.axhline(0.0, color="#999", linewidth=0.6)
    ax.set_ylabel("cumulative P&L (ETH)")
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    shares = ((section.get("capital") or {}).get("share") or {}).get("bandit", {})
    on = np.array([shares[s] if s in shares else [c == "1" for c in section["choices"]["bandit"][s]]
                   for s in names], np.float64)
    mesh = strip.pcolormesh(edges, np.arange(len(names) + 1), on,
                            cmap=LinearSegmentedColormap.from_list("share", ["#f3f3f3", COLORS[0]]), vmin=0, vmax=1)
    strip.set_yticks(np.arange(len(names)) + 0.5, [f"{s} (capital)" if s in shares else s for s in names],
                     fontsize=7)
    strip.invert_yaxis()
    strip.set_title("bandit: strategies on per window" + (" (capital: the share of the budget, 0 to 1)" if shares
                                                          else ""), fontsize=8, loc="left")
    if shares:
        fig.colorbar(mesh, ax=strip, pad=0.01, aspect=8).ax.tick_params(labelsize=6)
    _block_axis(strip)
    return _png(fig)


def _policy_table(section: dict) -> str:
    """Beside the policy plot: per policy, P&L with its 95 % interval and the regret vs the oracle."""
    def ci(pair):
        return "—" if not pair or pair[0] is None else f"[{pair[0]:,.4f}, {pair[1]:,.4f}]"

    head = "".join(f"<th>{h}</th>" for h in ("policy", "P&L ETH", "95 % CI", "regret ETH"))
    body = "".join(
        f"<tr><td>{html.escape(name)}{' *' if name == section['name'] else ''}</td>"
        f"<td class=num>{p['pnl_eth']:,.4f}</td><td class=num>{ci(p['pnl_ci95_eth'])}</td>"
        f"<td class=num>{p['regret_eth']:,.4f}</td></tr>" for name, p in section["policies"].items())
    return (f"<table class=small><tr>{head}</tr>{body}</table><p class=sub>{section['windows']:,} windows; "
            "CI: windows resampled (block bootstrap); *: the run's policy=</p>")


SWEEP_VALUES = ("net_profit_eth", "net_profit_wei", "profit_eth", "trades")   # the plotted metric, first found
# per-config results of gpubt.analysis.sweep (and the usual id columns): never threshold parameters
SWEEP_RESULT_COLUMNS = {"config", "config_id", "sweep_id", "index", "trades", "wins", "win_rate",
                        "net_profit_wei", "net_profit_eth", "profit_eth", "profit_factor", "max_drawdown_eth",
                        "sharpe", "blocks_below_run_threshold", "exact"}
MAX_HEATMAP_CELLS = 25   # per axis; more distinct values (random search) → scatter coloured by the metric


def _plot_sweep(sweep: pa.Table):
    metric = next((c for c in SWEEP_VALUES if c in sweep.column_names), None)
    if metric is None:
        return None
    values = np.asarray([np.nan if v is None else float(v) for v in sweep.column(metric).to_pylist()])
    if metric == "net_profit_wei":
        values, metric = values / WEI_PER_ETH, "net_profit_eth"
    inexact = 0
    if "exact" in sweep.column_names:  # configs below the run's own threshold are not measured exactly
        exact = np.asarray(sweep.column("exact").fill_null(False).to_pylist(), bool)
        inexact = int((~exact).sum())
        values = np.where(exact, values, np.nan)
    params = [f.name for f in sweep.schema if f.name not in SWEEP_RESULT_COLUMNS
              and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
              and len(set(sweep.column(f.name).to_pylist())) > 1]
    unit = " (ETH)" if metric.endswith("_eth") else ""
    note = f"; {inexact} config(s) below the run's threshold left blank (not measured exactly)" if inexact else ""
    if not params or not np.isfinite(values).any():
        return None
    if len(params) == 1:
        fig, ax = _figure()
        x = np.asarray(sweep.column(params[0]).to_pylist(), np.float64)
        order = np.argsort(x)
        ax.plot(x[order], values[order], marker="o", color=COLORS[0])
        ax.set_xlabel(params[0])
        ax.set_ylabel(metric + unit)
        ax.set_title(f"Threshold sweep: {metric} by {params[0]}")
        return _png(fig), f"{metric}{unit} for each value of {params[0]} ({sweep.num_rows} configs{note})."
    px, py = params[0], params[1]
    x_all = np.asarray(sweep.column(px).to_pylist(), np.float64)
    y_all = np.asarray(sweep.column(py).to_pylist(), np.float64)
    xs, ys = sorted(set(x_all.tolist())), sorted(set(y_all.tolist()))
    rest = f"; best over {', '.join(params[2:])}" if len(params) > 2 else ""
    best_row = int(np.nanargmax(values))
    title = (f"Threshold sweep: {metric} by {px} × {py}\nbest {values[best_row]:.4g}{unit.replace(' (', ' ').rstrip(')')} at {px} = "
             f"{x_all[best_row]:g}, {py} = {y_all[best_row]:g}")
    if len(xs) > MAX_HEATMAP_CELLS or len(ys) > MAX_HEATMAP_CELLS:
        fig, ax = _figure(4.2)
        ok = np.isfinite(values)
        points = ax.scatter(x_all[ok], y_all[ok], c=values[ok], cmap="viridis", s=18)
        ax.set_xlabel(px)
        ax.set_ylabel(py)
        fig.colorbar(points, ax=ax, label=metric + unit)
        ax.set_title(title)
        return _png(fig), (f"{metric}{unit} of each threshold config by {px} × {py} "
                              f"({sweep.num_rows} configs{rest}{note}).")
    grid = np.full((len(ys), len(xs)), np.nan)
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    for a, b, v in zip(x_all.tolist(), y_all.tolist(), values):
        cell = (yi[b], xi[a])
        if np.isfinite(v) and not grid[cell] >= v:
            grid[cell] = v
    fig, ax = _figure(max(2.8, 0.45 * len(ys) + 1.6))
    ax.grid(False)
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], rotation=45 if len(xs) > 8 else 0)
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(px)
    ax.set_ylabel(py)
    fig.colorbar(image, ax=ax, label=metric + unit)
    if grid.size <= 120:
        finite = grid[np.isfinite(grid)]
        mid = (finite.min() + finite.max()) / 2
        for (r, c), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="black" if v > mid else "white")
    ax.set_title(title)
    return _png(fig), (f"{metric}{unit} of each threshold config by {px} × {py} "
                              f"({sweep.num_rows} configs{rest}{note}).")


def _find_column(names, keys, exclude=()):
    """The first profit column whose name contains one of `keys` (in order), ETH columns before wei ones."""
    ranked = sorted(names, key=lambda n: not n.lower().endswith("_eth"))
    for key in keys:
        for name in ranked:
            low = name.lower()
            if key in low and "profit" in low and not any(e in low for e in exclude):
                return name
    return None


def _read_validation(path: Path):
    """(estimated, realized profit in ETH, their column names) of the validation matches, or None: only those two
    columns are read (a month has ~6M matches, with pools and hashes per row)."""
    if not path.is_file():
        return None
    names = pq.read_schema(path).names
    est = _find_column(names, ("estimated", "screen", "predicted", "backtest"))
    real = _find_column(names, ("realized", "actual", "label", "observed"), exclude=("estimated",))
    if est is None or real is None:
        return None
    file = pq.ParquetFile(path, pre_buffer=False)
    out = [np.empty(file.metadata.num_rows), np.empty(file.metadata.num_rows)]
    count = 0
    # a batch at a time: the exact amounts (16-byte decimal words) of ~6M rows would take ~200 MB at once
    for batch in file.iter_batches(columns=[est, real], batch_size=1 << 18):
        for values, name in zip(out, (est, real)):
            column = batch.column(name)
            if pa.types.is_floating(column.type):
                v = pc.fill_null(column, float("nan")).to_numpy(zero_copy_only=False)
            else:  # exact amounts (decimal words, integers); nulls come out as NaN
                v = amounts_float(column)
            values[count:count + len(v)] = v / WEI_PER_ETH if name.lower().endswith("_wei") else v
        count += batch.num_rows
    release_memory()
    return out[0][:count], out[1][:count], est, real


MAX_SCATTER_POINTS = 50_000   # more matches than this are drawn as an even sample (the statistics use all)


def _plot_validation(x: np.ndarray, y: np.ndarray, est: str, real: str):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return None
    fig, ax = _figure(4.2)
    shown = slice(None, None, math.ceil(len(x) / MAX_SCATTER_POINTS))
    ax.scatter(x[shown], y[shown], s=12, alpha=0.7, color=COLORS[0], linewidths=0)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="#999", linewidth=0.8, linestyle="--", label="y = x")
    corr = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 and x.std() > 0 and y.std() > 0 else float("nan")
    mae = float(np.abs(x - y).mean())
    ax.set_xlabel(f"estimated profit (ETH, {est})")
    ax.set_ylabel(f"realized profit (ETH, {real})")
    ax.set_title(f"Validation: {len(x):,} matches, mean |error| {mae:.6f} ETH"
                 + (f", Pearson r {corr:.3f}" if math.isfinite(corr) else ""))
    ax.legend(loc="upper left", frameon=False)
    sampled = f" Every {shown.step:,}th match is drawn; the title's figures use all." if shown.step > 1 else ""
    return _png(fig), ("Each point is a matched trade: the backtest's estimated profit against the profit "
                       "realized on chain (ETH); points on the dashed line agree exactly." + sampled)


# ---------------------------------------------------------------- page

CSS = """
body { font: 14px/1.45 -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #1d2330;
       max-width: 1040px; margin: 24px auto; padding: 0 16px; background: #fafbfc; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.sub { color: #5a6272; margin: 0 0 18px; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); width: 100%; }
th { width: 14em; font-weight: 600; }
td, th { padding: 4px 12px; border-bottom: 1px solid #e6e9ee; text-align: left; vertical-align: top; }
td.num { width: 14em; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; font-weight: 600; }
td.note { color: #5a6272; }
figure { margin: 0 0 8px; background: #fff; padding: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #5a6272; font-size: 12.5px; margin-top: 4px; }
.warn { color: #8a5300; }
.side { display: flex; gap: 12px; align-items: flex-start; margin: 0 0 8px; }
.side figure { flex: 1 1 62%; margin: 0; } .side table { flex: 0 1 38%; width: auto; }
table.small th, table.small td.num { width: auto; } table.small td, table.small th { padding: 3px 8px; }
"""


def _run_rows(summary: dict) -> list[tuple[str, str, str]]:
    run, timing = summary.get("run", {}), summary.get("timing", {})
    rows = []
    if run.get("backend"):
        rows.append(("backend", run["backend"], run.get("backend_reason", "")))
    if run.get("first_block") is not None:
        rows.append(("blocks", f"{run['first_block']:,} … {run['last_block']:,}",
                     f"{run['last_block'] - run['first_block'] + 1:,} blocks"))
    if run.get("dataset"):
        params = run.get("dataset_params", {})
        note = ", ".join(f"{k} {params[k]}" for k in ("preset", "seed") if k in params)
        rows.append(("dataset", run["dataset"], note))
    for name, built in (run.get("setup") or {}).items():  # what each strategy built (Strategy.describe)
        if built:
            rows.append((name, ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in built.items()),
                         "set up"))
    if run.get("min_profit_wei") is not None:
        rows.append(("threshold", f"{int(run['min_profit_wei']) / WEI_PER_ETH:g} ETH", "min net profit (float screen)"))
    if run.get("gas_model"):
        g = run["gas_model"]
        rows.append(("gas model", f"{g['base_units']:,} + {g['per_hop_units']:,} × hops gas",
                     f"priority fee {g['priority_fee_wei'] / 1e9:g} gwei"))
    if timing.get("wall_seconds") is not None:
        rows.append(("wall time", f"{timing['wall_seconds']:,.2f} s",
                     f"compile {timing.get('compile_seconds', 0):,.2f} s, screen "
                     f"{timing.get('screen_seconds', 0):,.3f} s, exact {timing.get('exact_seconds', 0):,.3f} s"))
    return rows


def _table(rows) -> str:
    body = "\n".join(f"<tr><th>{html.escape(str(a))}</th><td class=num>{html.escape(str(b))}</td>"
                     f"<td class=note>{html.escape(str(c))}</td></tr>" for a, b, c in rows)
    return f"<table>\n{body}\n</table>"


def _page(folder: Path, summary: dict, figures, recomputed: bool) -> str:
    title = f"gpubt report: {folder.name}"
    parts = [f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class=sub>{html.escape(str(folder.resolve()))} · profits are exact net of gas "
             "(wei → ETH); USD at the block's reference ETH/USD price</p>",
             "<h2>Metrics</h2>", _table(summary_rows(summary))]
    if recomputed:
        parts.append("<p class=warn>summary.json predates the extended metrics: they were computed by the "
                     "report from trades.parquet.</p>")
    compared, reaction = execution_rows(summary)
    if compared:
        parts += ["<h2>Execution: our trades move the market</h2>",
                  "<p class=sub>counterfactual: our bundles fork the pools they touch and history after them is "
                  "re-executed on the forks; replay: every point sees history (the same mispricing can be sold "
                  "again). The loop's figures, before thresholds and bids.</p>", _table(compared), _table(reaction)]
    parts += ["<h2>Run</h2>", _table(_run_rows(summary))]
    for name, png, caption, *aside in figures:  # aside: an HTML table shown beside the figure
        figure = (f"<figure><img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{png}\">"
                  f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append(f"<h2>{html.escape(name)}</h2>"
                     + (f"<div class=side>{figure}{aside[0]}</div>" if aside else figure))
    parts.append("<p class=sub>Sharpe = mean(daily return) ÷ std(daily return) × √365, daily return = day's PnL ÷ "
                 "equity at the previous day's end; 95 % intervals by seeded percentile bootstrap.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


if __name__ == "__main__":  # python -m gpubt.report.html RESULTS_DIR
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m gpubt.report.html RESULTS_DIR")
    print(write_report(sys.argv[1]))
