"""`gpubt` command line: subcommands forward to plain functions through Hydra (configs/ is the config)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

HELP = """usage: gpubt <command> [key=value ...]

GPU-accelerated MEV backtesting on Uniswap pools (CUDA GPU, or the CPU fallback).

commands:
  run        backtest a strategy over a dataset and write a results folder
             (default: the embedded synthetic market, small preset; `gpubt run --help` lists every option)
  generate   write a seeded synthetic market as a parquet dataset
             (e.g. gpubt generate data.preset=mainnet-month data.path=data/month)
  sweep      evaluate K threshold configs over a finished run in one pass
             (e.g. gpubt sweep sweep.run_dir=results/RUN sweep.grid=linear; writes sweep.parquet)
  ingest     read Uniswap pools' history from a JSON-RPC node into a parquet dataset
             (e.g. gpubt ingest rpc_url=URL first_block=N last_block=M pools='[0x...]' out=data/x)
  market-stats  a dataset's market statistics beside the published mainnet ranges
             (e.g. gpubt market-stats data_cache/synthetic-small-seed0; --json for the rows)
  bench      the benchmark suite (bench/suite.py; --full for the long workloads, --smoke for seconds)
  backends   say which compute backends are usable on this machine

Options are Hydra overrides: key=value (backend=cpu, data.preset=tiny, thresholds.min_profit_eth=0.01).
"""


def _config_dir() -> str:
    import gpubt.configs

    return str(Path(gpubt.configs.__file__).parent)


def _fail_cleanly(fn):
    """Run fn(cfg); known input errors exit with status 2 and one line naming the problem (no traceback)."""
    from gpubt.backend import BackendUnavailable
    from gpubt.schema import SchemaError

    def task(cfg):
        try:
            fn(cfg)
        except (SchemaError, BackendUnavailable, FileExistsError, ValueError) as exc:
            print(f"gpubt: error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except BrokenPipeError:  # `gpubt run | head`: the reader left; what was written stays written
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            print("gpubt: stdout was closed (broken pipe)", file=sys.stderr, flush=True)
            raise SystemExit(141) from None

    return task


def _run(cfg) -> None:
    from gpubt.backtest import run

    print(run(cfg).console, flush=True)


def _sweep(cfg) -> None:
    from gpubt.analysis.sweep import run_sweep
    from gpubt.report.html import write_report

    run_dir = run_sweep(cfg)
    if (run_dir / "report.html").is_file():  # the report shows the sweep too
        write_report(run_dir)


def _generate(cfg) -> None:
    from gpubt.data import synthetic

    data = cfg.data
    path = Path(data.path or Path(data.cache_dir) / f"synthetic-{data.preset}-seed{data.seed}")
    out = synthetic.generate(path, preset=data.preset, seed=int(data.seed), progress=bool(cfg.progress))
    print(f"gpubt: wrote dataset {out}")


def _ingest(cfg) -> None:
    from gpubt.data.rpc import run_from_hydra

    run_from_hydra(cfg)


def _job_suffix() -> str:
    """'-N' for job N of a Hydra multirun (`gpubt run -m ...`), '' for a single run: keeps out_dirs apart."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    # a single run leaves hydra.job.num missing ('???'): reading it there raises, so ask for the mode first
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    return f"-{HydraConfig.get().job.num}"


def _hydra(command: str, task, argv: list[str], config_name: str = "config") -> int:
    import hydra
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("job_suffix"):
        OmegaConf.register_new_resolver("job_suffix", _job_suffix)
    sys.argv = [f"gpubt {command}", *argv]
    main = hydra.main(version_base="1.3", config_path=_config_dir(), config_name=config_name)(_fail_cleanly(task))
    main()
    return 0


def _bench(argv: list[str]) -> int:
    """Run bench/suite.py of the source checkout gpubt is installed from (benchmarks are not packaged)."""
    import runpy

    suite = Path(__file__).resolve().parents[1] / "bench" / "suite.py"
    if not suite.is_file():
        print(f"gpubt: error: {suite} not found: `gpubt bench` needs a source checkout (pip install -e .)",
              file=sys.stderr)
        return 2
    sys.argv = [str(suite), *argv]
    runpy.run_path(str(suite), run_name="__main__")
    return 0


def _backends() -> int:
    from gpubt.backend import NAMES, BackendUnavailable, resolve_backend

    for name in NAMES:
        try:
            backend = resolve_backend(name)
            print(f"{name:8s} usable: {backend.name} ({backend.reason})")
        except BackendUnavailable as exc:
            print(f"{name:8s} unavailable: {exc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        return _hydra("run", _run, rest)
    if command == "generate":
        return _hydra("generate", _generate, rest)
    if command == "sweep":
        return _hydra("sweep", _sweep, rest)
    if command == "ingest":
        return _hydra("ingest", _ingest, rest, config_name="ingest")
    if command == "market-stats":
        from gpubt.analysis.market_stats import main as market_stats

        return market_stats(rest)
    if command == "bench":
        return _bench(rest)
    if command == "backends":
        return _backends()
    print(f"gpubt: unknown command {command!r}\n\n{HELP}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
