"""What a newcomer types first: `gpubt run` with the defaults (no out_dir), a multirun, every requested strategy
reported."""
import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.cli import gpubt, run_inprocess

from ..conftest import hand_market, write_market

TINY = ("backend=cpu", "data.preset=tiny", "progress=false", "report.enabled=false")


def test_run_without_out_dir_writes_results_under_the_working_directory(tiny_cache, tmp_path):
    proc = gpubt("run", *TINY, f"data.cache_dir={tiny_cache}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = (tmp_path / "results").iterdir()
    assert folder.name.startswith("synthetic-")
    assert (folder / "summary.json").is_file() and (folder / "trades.parquet").is_file()
    assert f"results  results/{folder.name}" in proc.stdout
    # every strategy, counterfactual, competition on: the bundles the ordered pass saw lose the auction (and left
    # the market alone) are the attempts the post-run reports lost
    summary = json.loads((folder / "summary.json").read_text())
    comp, execution = summary["competition"], summary["execution"]
    assert len(summary["by_strategy"]) == 5 and execution["mode"] == "counterfactual"
    assert execution["lost_bundles"] == comp["attempted"] - comp["won"] > 0


@pytest.mark.slow
def test_multirun_gets_one_folder_per_job(tiny_cache, tmp_path):
    proc = gpubt("run", "-m", *TINY, f"data.cache_dir={tiny_cache}", "thresholds.min_profit_eth=0.001,0.01",
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folders = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(folders) == 2 and folders[0].endswith("-0") and folders[1].endswith("-1"), folders
    thresholds = [json.loads((tmp_path / "results" / f / "summary.json").read_text())["run"]["min_profit_wei"]
                  for f in folders]
    assert thresholds == [str(10**15), str(10**16)]


def test_strategy_all_reports_all_five_and_prints_only_what_ran(tiny_cache, tmp_path):
    proc = gpubt("run", *TINY, f"data.cache_dir={tiny_cache}", "strategy=all", f"out_dir={tmp_path / 'all'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    by = json.loads((tmp_path / "all" / "summary.json").read_text())["by_strategy"]
    assert sorted(by) == ["arbitrage", "cexdex", "jit", "liquidation", "sandwich"]
    table = proc.stdout[proc.stdout.index("strategy "):]
    for name in by:
        assert f"\n{name} " in table, name
    # an arbitrage-only run on the same (labelled) market prints no line for the CEX-DEX labels it never chased
    alone = gpubt("run", *TINY, f"data.cache_dir={tiny_cache}", "strategy=arbitrage", f"out_dir={tmp_path / 'arb'}")
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "arbitrage  labels" in alone.stdout and "cexdex" not in alone.stdout


def test_a_strategy_with_nothing_to_do_says_why(tmp_path):
    """The hand market has V2 pools only and no pending swaps: JIT and sandwich show up with zeros and a reason."""
    data = write_market(tmp_path / "hand", hand_market())
    out = run_inprocess("backend=cpu", "data=parquet", f"data.path={data}", "progress=false", "report.enabled=false",
                        "strategy=[arbitrage,jit,sandwich]", "competition=none", f"out_dir={tmp_path / 'out'}").out_dir
    by = json.loads((out / "summary.json").read_text())["by_strategy"]
    assert sorted(by) == ["arbitrage", "jit", "sandwich"]
    assert by["jit"]["trades"] == 0 and by["jit"]["note"].startswith("no V3 pools in this dataset")
    assert by["sandwich"]["opportunities"] == 0 and "no pending victim swaps" in by["sandwich"]["note"]
    assert by["arbitrage"]["trades"] > 0 and "note" not in by["arbitrage"]


def test_ci_runs_the_readme_commands_as_written():
    """.ci/run runs `make run` with no ARGS before `make test`, and checks what it wrote."""
    from tests.cli import REPO

    lines = [line.strip().removeprefix("time ") for line in (REPO / ".ci" / "run").read_text().splitlines()]
    readme = (REPO / "README.md").read_text()
    assert "make run" in lines and "make run" in readme and "make test" in readme
    first_test = next(i for i, line in enumerate(lines) if line.startswith("make test"))
    assert lines.index("make run") < first_test
    assert any("summary.json" in line for line in lines) and any("report.html" in line for line in lines)


def test_run_returns_a_result_object_the_command_line_prints(tmp_path, capsys):
    """run(cfg) returns a RunResult and prints no summary: its summary is summary.json's, its console text (what
    `gpubt run` prints) ends with the results line, and its paths are the main outputs."""
    data = write_market(tmp_path / "hand", hand_market())
    out = tmp_path / "out"
    result = run_inprocess("backend=cpu", "data=parquet", f"data.path={data}", "progress=false", f"out_dir={out}")
    assert result.out_dir == out
    assert result.summary == json.loads((out / "summary.json").read_text())
    assert result.console.splitlines()[-1] == f"results  {out}"
    assert (result.summary_path, result.trades_path, result.opportunities_path, result.report_path) == (
        out / "summary.json", out / "trades.parquet", out / "opportunities.parquet", out / "report.html")
    assert all(p.is_file() for p in (result.summary_path, result.trades_path, result.opportunities_path,
                                     result.report_path))
    assert "results  " not in capsys.readouterr().out  # printing is the command line's job
    quiet = run_inprocess("backend=cpu", "data=parquet", f"data.path={data}", "progress=false",
                          "report.enabled=false", f"out_dir={tmp_path / 'quiet'}")
    assert quiet.report_path is None and not (quiet.out_dir / "report.html").exists()


@pytest.mark.slow  # generates the small market and backtests it as `make run` does (~30 s)
def test_the_default_run_meets_competition(tmp_path):
    """`gpubt run` as the README's quick start runs it (only where the cache goes and the results go differ): the
    small market, every strategy, competition on. What a mid-tier searcher gets is not 100 %: some bundles lose the
    auction, the landed ones pay bids, some landed trades lose after their bid (CEX-DEX's markout), and the
    reliability of the win predictions is reported."""
    out = tmp_path / "default"
    proc = gpubt("run", "progress=false", f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    comp, m = summary["competition"], summary["metrics"]
    assert summary["run"]["dataset_params"]["preset"] == "small" and comp["enabled"] is True
    assert 0 < comp["won"] < comp["attempted"] and 0 < m["survival_rate"] < 1
    assert int(comp["bids_paid_wei"]) > 0 and 0 < comp["mean_bid_share"] < 1
    assert sorted(summary["by_strategy"]) == ["arbitrage", "cexdex", "jit", "liquidation", "sandwich"]
    assert 0 < m["win_rate"] < 1 and int(m["net_profit_wei"]) < int(summary["execution"]["executed_net_wei"])
    landed = pq.read_table(out / "trades.parquet").filter(pc.field("won"))
    losing = sum(int(v) < 0 for v in landed.column("net_after_bid_wei").to_pylist())
    assert losing > 0 and m["losing_trades"] == losing
    assert 0 <= comp["calibration"]["all"]["brier"] < 0.25 and comp["calibration"]["all"]["n"] == comp["attempted"]
    assert "survival prediction: Brier" in proc.stdout
    # the market labels all five kinds, and validation scores every strategy against its own
    kinds = summary["validation"]["kinds"]
    assert sorted(kinds) == ["arbitrage", "cexdex", "jit", "liquidation", "sandwich"]
    for name, score in kinds.items():
        assert score["labels"] > 0 and score["matched"] > 0 and 0 < score["precision"] <= 1, name
    assert summary["execution"]["lost_bundles"] == comp["attempted"] - comp["won"] > 0
