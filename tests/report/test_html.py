"""report.html from a real results folder (a run on the tiny preset), checked as data and in headless Chromium."""
import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gpubt.report.html import write_report

from ..cli import run_inprocess

BASE_PLOTS = ["Equity", "Drawdown", "Daily PnL", "Profit distribution per strategy", "Cumulative gas",
              "Opportunities per block", "Opportunity funnel", "Strategy selection policy"]
# a default `gpubt run` on a labeled dataset also validates, so its folder holds validation_matches.parquet
# ... and, competition being on by default, the reliability of its win predictions
RUN_PLOTS = BASE_PLOTS + ["Survival prediction: reliability", "Validation: estimated vs realized profit"]
IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]*)"')
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def results(tiny_cache, tmp_path_factory) -> Path:
    """A results folder written by `gpubt run` (in-process) on the tiny synthetic preset."""
    return run_inprocess("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}",
                         f"out_dir={tmp_path_factory.mktemp('report') / 'r'}", "progress=false").out_dir


def images(page: str) -> dict:
    found = IMG.findall(page)
    assert len(found) == page.count("<img"), "every <img> is an inline base64 PNG"
    return dict(found)


def test_report_is_self_contained_with_every_plot(results):
    out = write_report(results)
    assert out == results / "report.html"
    page = out.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', page), "no external resources"
    imgs = images(page)
    assert list(imgs) == RUN_PLOTS                       # no sweep input in a plain run
    for name, b64 in imgs.items():
        raw = base64.b64decode(b64, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            assert im.width >= 600 and im.height >= 200, (name, im.size)
            pixels = np.asarray(im.convert("L"))
            assert pixels.std() > 5, f"{name}: the plot is blank"
    metrics = json.loads((results / "summary.json").read_text())["metrics"]
    assert f"{metrics['trades']:,}" in page and f"{metrics['net_profit_eth']:.6f} ETH" in page
    policy = json.loads((results / "summary.json").read_text())["policy"]["policies"]
    assert all(f"<td class=num>{p['pnl_eth']:,.4f}</td>" in page for p in policy.values())   # its table
    for label in ("net profit", "max drawdown", "profit factor", "Sharpe (annualized)", "gas efficiency",
                  "survival rate", "win rate", "initial capital"):
        assert f"<th>{label}</th>" in page, label


def test_sweep_and_validation_plots_only_when_present(results, tmp_path):
    folder = tmp_path / "with-extras"
    shutil.copytree(results, folder)
    # the shape gpubt.analysis.sweep writes: parameter columns + per-config results (not parameters)
    rows = []
    for i, (a, h) in enumerate((a, h) for a in (0.0005, 0.001, 0.01) for h in (2, 3)):
        net = 1.0 - a * 10 + h * 0.1
        rows.append({"min_profit_eth": a, "max_hops": h, "config": i, "trades": 10 + i, "wins": 9,
                     "win_rate": 0.9 - i / 100, "net_profit_eth": net, "profit_factor": 3.0 + i,
                     "max_drawdown_eth": 0.01 * i, "sharpe": 1.0 + i, "blocks_below_run_threshold": int(i == 0),
                     "exact": i != 0})
    pq.write_table(pa.Table.from_pylist(rows), folder / "sweep.parquet")
    # the shape gpubt.analysis.validate writes: exact wei (decimal) and ETH (null across tokens) columns
    est = [10**15 * (k + 1) for k in range(20)]
    real = [e * 9 // 10 for e in est]
    pq.write_table(pa.table({
        "estimated_profit_wei": pa.array(est, pa.decimal128(38, 0)),
        "realized_profit_wei": pa.array(real, pa.decimal128(38, 0)),
        "estimated_profit_eth": [None if k == 3 else e / 1e18 for k, e in enumerate(est)],
        "realized_profit_eth": [None if k == 3 else r / 1e18 for k, r in enumerate(real)]}),
        folder / "validation_matches.parquet")
    # the distribution groups by the trades' strategy column
    trades = pq.read_table(folder / "trades.parquet")
    kinds = ["arbitrage" if i % 2 else "sandwich" for i in range(trades.num_rows)]
    trades = trades.set_column(trades.schema.get_field_index("strategy"), "strategy", pa.array(kinds))
    pq.write_table(trades, folder / "trades.parquet")
    page = write_report(folder).read_text(encoding="utf-8")
    imgs = images(page)
    assert list(imgs) == BASE_PLOTS + ["Survival prediction: reliability", "Threshold sweep",
                                       "Validation: estimated vs realized profit"]
    assert "6 configs; 1 config(s) below the run&#x27;s threshold left blank" in page
    assert "max_hops" in page and "win_rate" not in page   # result columns are not taken for parameters
    for b64 in imgs.values():
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            im.load()


def test_missing_summary_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json: not found"):
        write_report(tmp_path)


def _chromium(*args, user_data_dir: Path, timeout=120):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={user_data_dir}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_report_renders_in_headless_chromium(results, tmp_path):
    page = write_report(results).read_text(encoding="utf-8")
    n_images = page.count("<img")
    # a copy with a probe: after load, record how many images decoded and their natural sizes on <html>
    probe = ('<script>addEventListener("load", () => { const imgs = [...document.images];'
             'document.documentElement.setAttribute("data-probe", imgs.length + ";" + imgs.filter('
             'i => i.complete && i.naturalWidth > 0).length + ";" + imgs.map(i => i.naturalWidth + "x" + '
             'i.naturalHeight).join(",")); });</script></body>')
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", probe), encoding="utf-8")
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", check.as_uri(), user_data_dir=tmp_path / "u1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-probe="(\d+);(\d+);([^"]*)"', dom.stdout)
    assert found, "the page did not finish loading:\n" + dom.stdout[:500]
    total, loaded, sizes = int(found[1]), int(found[2]), found[3].split(",")
    assert total == loaded == n_images == len(RUN_PLOTS)
    assert all(int(s.split("x")[0]) >= 600 for s in sizes), sizes

    shot = tmp_path / "report.png"
    run = _chromium("--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
                    (results / "report.html").as_uri(), user_data_dir=tmp_path / "u2")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 20, "the screenshot is blank"
    # the top of the page is the metrics table: dark text on the light background
    assert (pixels[:600] < 100).mean() > 0.01


def test_thinning_keeps_each_buckets_extremes_and_ends_in_any_pieces():
    """A long step series is cut to ~max_points and keeps its first and last points and every bucket's min/max,
    the same whether it is fed at once or a piece at a time (the report feeds it a parquet batch at a time)."""
    from gpubt.report.html import _Thinner

    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=100_001))
    x = np.arange(len(y), dtype=np.float64)
    whole = _Thinner(len(x), 2_000)
    whole.add(x, y)
    tx, ty = whole.finish()
    assert len(tx) <= 2_000 and tx[0] == 0 and tx[-1] == x[-1] and np.all(np.diff(tx) > 0)
    assert ty.min() == y.min() and ty.max() == y.max()
    assert np.array_equal(ty, y[tx.astype(np.int64)])
    cuts = np.sort(rng.choice(np.arange(1, len(y)), 40, replace=False))
    pieces = _Thinner(len(x), 2_000)
    for xs, ys in zip(np.split(x, cuts), np.split(y, cuts)):
        pieces.add(xs, ys)
    px, py = pieces.finish()
    assert np.array_equal(px, tx) and np.array_equal(py, ty)
    short = _Thinner(50, 2_000)
    short.add(x[:50], y[:50])
    short_x, short_y = short.finish()
    assert np.array_equal(short_x, x[:50]) and np.array_equal(short_y, y[:50])


def test_report_reads_the_landed_trades_in_point_order(tmp_path):
    """The plots read trades.parquet a batch at a time: only the trades that landed (`won`), with their net after
    the builder bid, in (block, tx) order, strategies sorted by name."""
    from gpubt import schema
    from gpubt.analysis import competition
    from gpubt.report.html import _read_trades

    rows = [("sandwich", 12, 3, 5, 2, True), ("arbitrage", 10, 1, 7, 7, True), ("cexdex", 11, 0, 9, 0, False),
            ("arbitrage", 12, 1, 4, 1, True), ("sandwich", 10, 0, 6, 6, True)]  # (kind, block, tx, net, after, won)
    table = pa.Table.from_pylist([{
        "strategy": k, "block_number": b, "tx_index": t, "net_profit_wei": n * 10**17, "gross_profit_wei": 10**18,
        "gas_cost_wei": 10**17, "gas_units": 100, "net_profit_usd": 0.0, "won": w, "net_after_bid_wei": a * 10**17}
        for k, b, t, n, a, w in rows], schema=pa.schema([*schema.TRADES, *competition.fields()]))
    pq.write_table(table, tmp_path / "trades.parquet", row_group_size=2)
    got = _read_trades(tmp_path / "trades.parquet", capital=5.0, run={"first_block": 9})
    assert got.net_eth.tolist() == pytest.approx([0.6, 0.7, 0.1, 0.2])
    assert got.names == ["arbitrage", "sandwich"]
    assert [got.names[c] for c in got.codes] == ["sandwich", "arbitrage", "arbitrage", "sandwich"]
    assert got.gas_units == 400
    x, equity = got.equity
    assert x.tolist() == [9, 10, 10, 12, 12] and equity == pytest.approx([5.0, 5.6, 6.3, 6.4, 6.6])
    assert got.gas[1] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4]) and got.gross[1] == pytest.approx([0, 1, 2, 3, 4])
    assert got.drawdown[1].tolist() == [0.0] * 5 and got.worst == (0.0, 0.0)
    # in point order already (as gpubt run writes it), read a batch at a time: the same
    pq.write_table(table.sort_by([("block_number", "ascending"), ("tx_index", "ascending")]),
                   tmp_path / "sorted.parquet", row_group_size=2)
    again = _read_trades(tmp_path / "sorted.parquet", capital=5.0, run={"first_block": 9})
    assert np.array_equal(again.equity[1], equity) and again.names == got.names


def test_report_curves_equal_the_whole_run_formulas(tmp_path):
    """Equity, drawdown and cumulative gas built a batch at a time equal metrics' whole-run formulas (before
    thinning), and the largest drawdown equals max_drawdown's."""
    from gpubt import schema
    from gpubt.analysis import metrics as M
    from gpubt.report import html as H

    rng = np.random.default_rng(8)
    n = 3_000
    net = (rng.normal(0.001, 0.05, n) * 1e18).astype(np.int64)
    block = np.sort(rng.integers(100, 400, n))
    table = pa.Table.from_pylist([{
        "strategy": "arbitrage", "block_number": int(b), "tx_index": i, "net_profit_wei": int(v),
        "gross_profit_wei": int(v) + 10**16, "gas_cost_wei": 10**16, "gas_units": 21_000, "net_profit_usd": 0.0}
        for i, (b, v) in enumerate(zip(block, net))], schema=pa.schema(schema.TRADES))
    pq.write_table(table, tmp_path / "trades.parquet", row_group_size=500)
    net_eth = net / 1e18
    for batch in (n, 256):
        file = pq.ParquetFile(tmp_path / "trades.parquet")
        got = H._accumulate(file.iter_batches(batch_size=batch), n, "net_profit_wei", 3.0, {"first_block": 90})
        x, equity = got.equity
        assert x[0] == 90 and np.array_equal(x[1:], block.astype(float))
        assert np.array_equal(equity, M.equity_curve(net_eth, 3.0))
        dd_eth, _ = M.drawdown(net_eth, 3.0)
        assert np.array_equal(got.drawdown[1], -dd_eth)
        assert got.worst == M.max_drawdown(net_eth, 3.0) and got.worst[0] > 0
        assert got.gas[1][-1] == pytest.approx(n * 0.01)


def test_binned_histogram_equals_numpy_per_strategy(monkeypatch):
    """The profit histogram's counts, worked through in chunks, are np.histogram's of each strategy's profits."""
    from gpubt.analysis import metrics
    from gpubt.report import html

    monkeypatch.setattr(metrics, "CHUNK_VALUES", 1000)  # several chunks
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(-4, 2, 4000), -rng.lognormal(-6, 1, 500), [0.0]])
    codes = rng.integers(0, 3, len(values)).astype(np.int8)
    bins = np.histogram_bin_edges(values, bins=30)
    bins_narrow = np.linspace(-0.01, 0.05, 17)  # values outside are left out, as np.histogram does
    for edges in (bins, bins_narrow, np.logspace(-6, 1, 30)):
        counts, sums = html._binned(values, codes, edges, 3)
        for i in range(3):
            np.testing.assert_array_equal(counts[i], np.histogram(values[codes == i], edges)[0])
            assert sums[i] == pytest.approx(values[codes == i].sum(), rel=1e-12)
