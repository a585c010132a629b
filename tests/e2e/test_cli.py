"""The real `gpubt` command line end to end: its contract as a process (exit 0 on success, 2 and one line on stderr
for a user error, --help, Hydra's multirun), and the same runs in-process (tests/cli.py) where the process is not
the point (results, validation, sweeps, bad input)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gpubt.backend import BackendUnavailable, cuda_unavailable_reason
from gpubt.schema import SchemaError

from ..cli import GPUBT, compose, gpubt, run_inprocess
from ..conftest import LANDING_BID, hand_market, write_market

# arbitrage: this file re-derives every trade as a cycle (the default, every strategy: test_front_door.py)
TINY_RUN = ("backend=cpu", "data.preset=tiny", "progress=false", "thresholds.min_profit_eth=0.0001",
            "strategy=arbitrage", f"competition.ours.bid_fraction={LANDING_BID}")


def test_help():
    top = gpubt("--help")
    assert top.returncode == 0 and "run" in top.stdout and "generate" in top.stdout
    run_help = gpubt("run", "--help")
    assert run_help.returncode == 0
    for text in ("backtest", "backend: auto, cpu, cuda, cudasim", "min_profit_eth", "preset"):
        assert text in run_help.stdout, text
    bad = gpubt("frobnicate")
    assert bad.returncode == 2 and "unknown command" in bad.stderr


def _get_amount_out(x, r_in, r_out):
    """Independent of gpubt.exact: UniswapV2Library.getAmountOut as written in Solidity."""
    x_fee = x * 997
    return x_fee * r_out // (r_in * 1000 + x_fee)


def _replayed_state(events_rows, snapshots_rows):
    """{pool: [(block, tx, r0, r1), ...]} from the raw parquet rows, to look states up without gpubt.pack."""
    states = {}
    for s in snapshots_rows:
        states.setdefault(s["pool_id"], []).append((-1, -1, int(s["reserve0"]), int(s["reserve1"])))
    for e in events_rows:
        states.setdefault(e["pool_id"], []).append((e["block_number"], e["tx_index"], int(e["reserve0"]),
                                                    int(e["reserve1"])))
    return states


def _v3_amount_out(events_rows, info, amount, zero_for_one, block, tx):
    """Exact V3 output (gpubt.exact.v3) of the pool's state after every event <= the point, replayed from its
    Initialize: price, liquidity and tick from the last event, initialized ticks from its mints and burns."""
    from gpubt.exact import v3 as exact_v3

    point = (block - 1, 10**9) if tx < 0 else (block, tx)
    pool = exact_v3.V3Pool(fee=info["fee_ppm"], tick_spacing=info["tick_spacing"])
    ticks = {}
    for e in events_rows:
        if e["pool_id"] != info["pool_id"] or (e["block_number"], e["tx_index"]) > point:
            continue
        if e["kind"] in ("mint", "burn"):
            for t, sign in ((e["tick_lower"], 1), (e["tick_upper"], -1)):
                gross, net = ticks.get(t, (0, 0))
                ticks[t] = (gross + int(e["liquidity_delta"]), net + sign * int(e["liquidity_delta"]))
        pool.sqrt_price_x96, pool.liquidity, pool.tick = int(e["sqrt_price_x96"]), int(e["liquidity"]), e["tick"]
    pool.ticks = {t: exact_v3.TickInfo(g, n) for t, (g, n) in ticks.items() if g}
    pool.initialized = sorted(t // pool.tick_spacing for t in pool.ticks)
    limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
    outcome = pool.swap_outcome(zero_for_one, amount, limit)
    amount0, amount1 = outcome.amount0, outcome.amount1
    assert (amount0 if zero_for_one else amount1) == amount
    return -(amount1 if zero_for_one else amount0), outcome.ticks_crossed


def _state_at(states, pool, block, tx):
    """Last state with (block, tx) <= the point; top of block (tx −1) = after every tx of block − 1."""
    point = (block - 1, 10**9) if tx < 0 else (block, tx)
    best = None
    for b, t, r0, r1 in states[pool]:
        if (b, t) <= point:
            best = (r0, r1)
    return best


@pytest.fixture(scope="module")
def tiny_run(tiny_cache, tmp_path_factory):
    """`gpubt run` on the tiny market as a user types it: (results folder, the finished process)."""
    out = tmp_path_factory.mktemp("e2e") / "results" / "tiny"
    proc = gpubt("run", *TINY_RUN, f"data.cache_dir={tiny_cache}", f"out_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture(scope="module")
def tiny_replay_run(tiny_cache, tmp_path_factory):
    """The tiny run under execution=replay: every trade priced on history's state, which this file replays."""
    out = tmp_path_factory.mktemp("e2e") / "results" / "tiny-replay"
    proc = gpubt("run", *TINY_RUN, "execution=replay", f"data.cache_dir={tiny_cache}", f"out_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_tiny_run_summary_equals_independent_recomputation(tiny_replay_run):
    """Every trade re-derived from the dataset alone (replay: the state at its point is history's; the
    counterfactual market is recomputed independently in tests/run/test_execution.py)."""
    out, proc = tiny_replay_run
    assert "backend cpu" in proc.stdout and "net profit" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    trades = pq.read_table(out / "trades.parquet").to_pylist()
    m = summary["metrics"]
    # competition is on by default: trades.parquet holds every attempt, the metrics the ones that won the auction
    landed = [t for t in trades if t["won"]]
    assert len(trades) > m["trades"] == len(landed) > 0, "the tiny market must leave arbitrage for the backtester"
    assert summary["competition"]["attempted"] == len(trades) and m["opportunities"] >= len(trades)
    assert (out / "config.yaml").is_file() and "preset: tiny" in (out / "config.yaml").read_text()

    dataset = Path(summary["run"]["dataset"])
    events = [row for f in sorted((dataset / "events").glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    first_snap = sorted((dataset / "snapshots").glob("*.parquet"))[0]
    states = _replayed_state(events, pq.read_table(first_snap).to_pylist())
    pools = {p["pool_id"]: p for p in pq.read_table(dataset / "pools.parquet").to_pylist()}
    base_fee = {b["block_number"]: b["base_fee_wei"] for f in sorted((dataset / "blocks").glob("*.parquet"))
                for b in pq.read_table(f).to_pylist()}
    gas_cfg = summary["run"]["gas_model"]

    total_net = total_gas = 0
    for t in trades:
        amount = int(t["amount_in"])
        v3_hops = ticks = 0
        for pool, zfo in zip(t["pools"], t["zero_for_one"]):
            if pools[pool]["protocol"] == "v3":  # V3 hops: gpubt.exact.v3 on the replayed events
                amount, crossed = _v3_amount_out(events, pools[pool], amount, zfo, t["block_number"], t["tx_index"])
                v3_hops += 1
                ticks += crossed
                continue
            assert pools[pool]["fee_ppm"] == 3000
            r0, r1 = _state_at(states, pool, t["block_number"], t["tx_index"])
            amount = _get_amount_out(amount, r0, r1) if zfo else _get_amount_out(amount, r1, r0)
        assert amount == int(t["amount_out"])
        gross = amount - int(t["amount_in"])
        assert gross == int(t["gross_profit_wei"])  # WETH start: raw units are wei
        gas_price = base_fee[t["block_number"]] + gas_cfg["priority_fee_wei"]
        gas_units = (gas_cfg["base_units"] + gas_cfg["per_hop_units"] * (len(t["pools"]) - v3_hops)
                     + gas_cfg["v3_hop_units"] * v3_hops + gas_cfg["v3_tick_units"] * ticks)
        gas_cost = gas_units * gas_price
        assert gas_cost == int(t["gas_cost_wei"]) and int(t["net_profit_wei"]) == gross - gas_cost
        bid = int(t["bid_wei"])
        assert 0 <= bid <= gross - gas_cost
        if t["won"]:  # a landed trade pays its bid to the builder
            assert int(t["net_after_bid_wei"]) == gross - gas_cost - bid
            total_net += gross - gas_cost - bid
            total_gas += gas_cost
    assert int(m["net_profit_wei"]) == total_net
    assert int(m["gas_cost_wei"]) == total_gas
    assert m["win_rate"] == sum(1 for t in landed if int(t["net_after_bid_wei"]) > 0) / len(landed)
    protocols = [{pools[p]["protocol"] for p in t["pools"]} for t in trades]
    assert any(s == {"v2", "v3"} for s in protocols), "the tiny market's trades include mixed V2/V3 cycles"


def test_rerun_reuses_the_dataset_and_is_deterministic(tiny_run, tiny_cache, tmp_path):
    out, _ = tiny_run
    manifest = Path(json.loads((out / "summary.json").read_text())["run"]["dataset"]) / "manifest.json"
    assert manifest.parent.parent == tiny_cache and json.loads(manifest.read_text())["complete"] is True
    written = manifest.stat().st_mtime_ns
    again = run_inprocess(*TINY_RUN, f"data.cache_dir={tiny_cache}", f"out_dir={tmp_path / 'again'}").out_dir
    assert pq.read_table(again / "trades.parquet").equals(pq.read_table(out / "trades.parquet"))
    assert manifest.stat().st_mtime_ns == written  # the complete cached dataset was reused, not regenerated
    # an existing results folder is never overwritten: the CLI's user-error contract, exit 2 and one line
    clash = gpubt("run", "backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", f"out_dir={again}",
                  "progress=false")
    assert clash.returncode == 2 and clash.stdout == "", clash.stdout
    assert clash.stderr.splitlines() == [f"gpubt: error: out_dir {again} already exists; choose another out_dir "
                                         "(results are never overwritten)"]


def _corrupt(tmp_path, how):
    tables = hand_market()
    root = write_market(tmp_path / "bad", tables)
    part = next((root / "events").glob("*.parquet"))
    events = pq.read_table(part)
    if how == "missing_column":
        events = events.drop_columns(["reserve1"])
    elif how == "negative_reserve":
        rows = events.to_pylist()
        rows[3]["reserve0"] = -5
        events = events.from_pylist(rows, schema=events.schema)
    elif how == "duplicate_event":
        rows = events.to_pylist()
        rows.insert(2, dict(rows[1]))
        events = events.from_pylist(rows, schema=events.schema)
    elif how == "unknown_pool":
        rows = events.to_pylist()
        rows[4]["pool_id"] = 99
        events = events.from_pylist(rows, schema=events.schema)
    pq.write_table(events, part)
    return root, part


BAD_INPUT = [
    ("missing_column", "missing column(s) reserve1"),
    ("negative_reserve", "row 3: reserve0 = -5"),
    ("duplicate_event", "row 2: duplicate event"),
    ("unknown_pool", "row 4: pool_id = 99 is not in the pools table"),
]


@pytest.mark.parametrize("how, message", BAD_INPUT)
def test_bad_input_fails_cleanly(tmp_path, how, message):
    root, part = _corrupt(tmp_path, how)
    out = tmp_path / "results" / "bad"
    with pytest.raises(SchemaError) as err:
        run_inprocess("backend=cpu", "data=parquet", f"data.path={root}", f"out_dir={out}", "progress=false")
    assert message in str(err.value) and str(part) in str(err.value), str(err.value)
    assert "\n" not in str(err.value)  # the CLI prints it as its one line on stderr
    assert not out.exists()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_bad_input_through_the_cli_exits_2_with_one_line(tmp_path):
    """The process contract of a user error: exit status 2, one line on stderr naming the file and row, no
    traceback, no results folder."""
    how, message = BAD_INPUT[1]
    root, part = _corrupt(tmp_path, how)
    out = tmp_path / "results" / "bad"
    proc = gpubt("run", "backend=cpu", "data=parquet", f"data.path={root}", f"out_dir={out}", "progress=false")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpubt: error: ") and message in line and str(part) in line, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.skipif(cuda_unavailable_reason() is None, reason="a GPU is usable here")
def test_cuda_backend_without_gpu_says_why(hand_dataset, tmp_path, capsys):
    with pytest.raises(BackendUnavailable, match="backend=cuda is not usable here"):
        run_inprocess("backend=cuda", "data=parquet", f"data.path={hand_dataset}", f"out_dir={tmp_path / 'r'}")
    assert not (tmp_path / "r").exists()
    run_inprocess("backend=auto", "data=parquet", f"data.path={hand_dataset}", f"out_dir={tmp_path / 'a'}",
                  "progress=false")
    assert "backend cpu (auto: cuda unavailable" in capsys.readouterr().out
    from gpubt.cli import main

    assert main(["backends"]) == 0
    listing = capsys.readouterr().out
    assert "cpu" in listing and "cuda     unavailable" in listing


def test_cudasim_backend_equals_cpu_in_a_run(hand_dataset, tmp_path):
    # trades are what is compared: the auction's simulator run is tests/kernels/test_auction.py's (minutes here)
    common = ("data=parquet", f"data.path={hand_dataset}", "progress=false", "thresholds.min_profit_eth=0",
              "competition=none")
    sim = run_inprocess("backend=cudasim", *common, f"out_dir={tmp_path / 's'}").out_dir
    cpu = run_inprocess("backend=cpu", *common, f"out_dir={tmp_path / 'c'}").out_dir
    trades = pq.read_table(sim / "trades.parquet")
    assert trades.num_rows > 0 and trades.equals(pq.read_table(cpu / "trades.parquet"))
    assert json.loads((sim / "summary.json").read_text())["run"]["backend"] == "cudasim"


def test_run_writes_report_validation_and_daily_pnl(tiny_run):
    out, proc = tiny_run
    for name in ("report.html", "daily_pnl.parquet", "thresholds.json", "validation.json",
                 "validation_matches.parquet"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    arb = summary["validation"]["kinds"]["arbitrage"]
    assert arb["labels"] > 0 and 0 < arb["recall"] <= 1 and 0 < arb["precision"] <= 1
    assert "recall" in proc.stdout and "Sharpe" in proc.stdout
    assert "<img" in (out / "report.html").read_text()


def test_sweep_command(tiny_run, tmp_path):
    """`gpubt sweep` (in-process: the config it composes, then the CLI's task: the sweep, then the report)."""
    from gpubt.analysis.sweep import run_sweep
    from gpubt.cli import _sweep

    out, _ = tiny_run
    run_copy = tmp_path / "run"
    shutil.copytree(out, run_copy)
    assert "Threshold sweep" not in (run_copy / "report.html").read_text()
    _sweep(compose(f"sweep.run_dir={run_copy}", "sweep.grid=static", "sweep.min_profit_eth=[0.0001,0.001,0.01,1.0]"))
    assert "Threshold sweep" in (run_copy / "report.html").read_text()  # the report is refreshed with the sweep
    table = pq.read_table(run_copy / "sweep.parquet").to_pylist()
    assert [round(r["min_profit_eth"], 6) for r in table] == [0.0001, 0.001, 0.01, 1.0]
    trades = pq.read_table(out / "trades.parquet").to_pylist()
    for row in table:  # each config = the run's trades above its threshold, exactly
        kept = [t for t in trades if float(t["net_profit_wei"]) > row["min_profit_eth"] * 1e18]
        assert row["trades"] == len(kept)
        assert int(row["net_profit_wei"]) == sum(int(t["net_profit_wei"]) for t in kept)
    best = json.loads((run_copy / "sweep_best.json").read_text())
    assert best["configs"] == 4 and best["best"]["config"] == 0
    with pytest.raises(SchemaError, match="no summary.json"):
        run_sweep(compose(f"sweep.run_dir={tmp_path / 'nope'}"))


def test_dynamic_threshold_run(tiny_run, tiny_cache, tmp_path):
    out, _ = tiny_run
    dyn = run_inprocess(*TINY_RUN, f"data.cache_dir={tiny_cache}", f"out_dir={tmp_path / 'dynamic'}",
                        "thresholds=dynamic", "report.enabled=false").out_dir
    model = json.loads((dyn / "thresholds.json").read_text())
    assert model["kind"] == "dynamic" and len(model["weights"]) == 5
    summary = json.loads((dyn / "summary.json").read_text())
    info = summary["run"]["threshold"]
    static_trades = pq.read_table(out / "trades.parquet").num_rows
    # the threshold filters what is attempted; the metrics count what then won the auction (competition=default)
    assert info["trades_before"] == static_trades >= info["trades_kept"] == summary["competition"]["attempted"]
    assert info["trades_kept"] >= summary["metrics"]["trades"]
    assert info["fit_blocks"][1] < summary["run"]["last_block"]  # the second half is out of sample


@pytest.mark.slow  # generates the small market (2,000 blocks): long enough a run to scrape it while it runs
def test_prometheus_endpoint_during_a_real_run(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    proc = subprocess.Popen([*GPUBT, "run", "backend=cpu", "data.preset=small", f"data.cache_dir={tmp_path / 'c'}",
                             f"out_dir={tmp_path / 'r'}", "progress=false", "batch_blocks=25", f"monitor.port={port}",
                             "report.enabled=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen = []
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
        except OSError:
            time.sleep(0.05)
            continue
        for line in body.splitlines():
            if line.startswith("gpubt_blocks_processed_total "):
                seen.append(float(line.split()[1]))
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert seen and max(seen) > 0, "never scraped a block count during the run"
    assert any(0 < v < 2000 for v in seen) or max(seen) == 2000
    assert seen == sorted(seen)  # counters only grow


def test_hydra_multirun_gives_each_job_its_own_results(tiny_cache, tmp_path):
    proc = gpubt("run", "-m", "backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}",
                 "progress=false", "report.enabled=false", "strategy.arbitrage.max_hops=2,3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted((tmp_path / "results").iterdir())
    assert [r.name[-2:] for r in runs] == ["-0", "-1"]
    hops = [json.loads((r / "summary.json").read_text())["run"]["setup"]["arbitrage"]["paths"] for r in runs]
    assert hops[0] < hops[1]  # max_hops=2 enumerates fewer cycles than 3


def test_all_strategies_with_competition(tiny_cache, tmp_path):
    """strategy=all: every strategy runs, trades carry their strategy, the summary's exact totals are the landed
    trades' sums, and the auction decides which trades land."""
    result = run_inprocess("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}",
                           f"out_dir={tmp_path / 'all'}", "progress=false", "report.enabled=false", "strategy=all",
                           "competition=default", "thresholds.min_profit_eth=0.0001")
    out, stdout = result.out_dir, result.console
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["strategies"] == ["arbitrage", "sandwich", "jit", "liquidation", "cexdex"]
    trades = pq.read_table(out / "trades.parquet").to_pylist()
    kinds = {t["strategy"] for t in trades}
    assert {"arbitrage", "sandwich"} <= kinds <= set(summary["run"]["strategies"])
    for t in trades:
        if t["strategy"] != "arbitrage":
            assert json.loads(t["detail"]), t["strategy"]  # enough to re-check the trade
    comp = summary["competition"]
    landed = [t for t in trades if t["won"]]
    assert comp["attempted"] == len(trades) and comp["won"] == len(landed) < len(trades)
    m = summary["metrics"]
    assert m["trades"] == len(landed)
    assert int(m["net_profit_wei"]) == sum(int(t["net_after_bid_wei"]) for t in landed)
    assert abs(m["survival_rate"] - len(landed) / len(trades)) < 1e-12
    by = summary["by_strategy"]
    assert sum(v["trades"] for v in by.values()) == len(landed)
    assert sum(v["attempted"] for v in by.values()) == len(trades)
    for name, row in by.items():
        won = [t for t in landed if t["strategy"] == name]
        assert row["trades"] == len(won)
        assert abs(row["gas_cost_eth"] - sum(int(t["gas_cost_wei"]) for t in won) / 1e18) < 1e-9
    assert "survival" in stdout  # the per-strategy table
    # the synthetic CEX-DEX searchers trade pool states our CEX-DEX strategy priced (same-state rule; the gap rule
    # matched none of them). Recall stays well below 1 on tiny: the backtester sees PRICES every 10 blocks, the
    # searchers every block, and a 5 bps CEX fee keeps it off the narrow-band 0.05 % V3 pools the searchers trade;
    # and under execution=counterfactual our arbitrage and CEX-DEX bundles share the pools: one bundle per pool
    # state at a point (replay sent both: 0.19 recall on this run, counterfactual 0.065)
    cex = json.loads((out / "validation.json").read_text())["kinds"]["cexdex"]
    assert cex["labels"] > 50 and cex["recall"] > 0.03 and 0 < cex["matched"] <= cex["ours"]
    assert cex["profit"]["n"] > 0 and cex["profit"]["pearson"] > 0.5
    # the run validated partition by partition; the whole run at once finds the same pairs
    from gpubt.data.store import Dataset
    from gpubt.analysis.validate import EVENT_COLUMNS, load_labels, validate

    ds, run = Dataset(summary["run"]["dataset"]), summary["run"]
    assert len(ds.partitions) > 1
    whole = validate(pq.read_table(out / "trades.parquet"), load_labels(ds, run["first_block"], run["last_block"]),
                     first_block=run["first_block"], last_block=run["last_block"],
                     events=ds.read_range("events", run["first_block"], run["last_block"], EVENT_COLUMNS))
    key = lambda t: sorted(zip(*(t.column(c).to_pylist() for c in ("tx_hash", "kind", "block_number", "path_id"))))  # noqa: E731
    assert key(pq.read_table(out / "validation_matches.parquet")) == key(whole.matches)
    assert {k: v["matched"] for k, v in summary["validation"]["kinds"].items()} == {
        k: v["matched"] for k, v in whole.scores["kinds"].items()}
    assert pq.read_table(out / "validation_false_positives.parquet").num_rows == whole.false_positives.num_rows


def test_the_default_run_moves_the_market_and_shows_replay_beside_it(tiny_run, tiny_replay_run):
    """What a user types runs execution=counterfactual and prints, beside it, what replay would have reported:
    the replay column is the replay run's own trades table."""
    out, proc = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    e = summary["execution"]
    replay_trades = pq.read_table(tiny_replay_run[0] / "trades.parquet")
    assert e["mode"] == "counterfactual" and e["replay"]["executed_trades"] == replay_trades.num_rows
    assert e["replay"]["executed_net_wei"] == sum(int(v) for v in replay_trades.column("net_profit_wei").to_pylist())
    ours = pq.read_table(out / "trades.parquet")
    assert e["executed_trades"] == ours.num_rows < replay_trades.num_rows  # no mispricing sold twice
    assert e["reexecuted_txs"] > 0 and e["diverged_pools"] > 0
    assert "execution" in proc.stdout and "replay" in proc.stdout and "historical txs re-executed" in proc.stdout
    assert "Execution: our trades move the market" in (out / "report.html").read_text()
