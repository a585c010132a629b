"""What a run builds from its config before the batch loop: the checked options, the dataset, the strategies.

    cfg ─► check_options / check_ranges ─► open_dataset (synthetic | parquet | cryo) ─► RunSetup (gas model,
    threshold, one Strategy object per strategy of cfg.strategy, in config order)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpubt import schema
from gpubt.schema import GWEI, WEI_PER_ETH
from gpubt.backend import Backend
from gpubt.data.store import Dataset
from gpubt.exact.gas import GasModel
from gpubt.market.auction import BuilderAuction
from gpubt.run.execution import Execution
from gpubt.run.loop import Backtest
from gpubt.strategies.exact_engine import ENGINES



def open_dataset(data_cfg, progress: bool = True) -> Dataset:
    """The dataset the config names; the synthetic source generates (once, then reuses) a seeded dataset. An
    incomplete dataset (an interrupted writer's) is refused unless data.allow_incomplete=true; tokens whose
    decimals disagree with the prices are refused (Dataset.check_prices)."""
    if data_cfg.source == "synthetic":
        dataset = _synthetic_dataset(data_cfg, progress)
    elif data_cfg.source == "parquet":
        if not data_cfg.path:
            raise schema.SchemaError("data=parquet needs data.path=<a gpubt dataset folder>")
        dataset = Dataset(data_cfg.path)
    elif data_cfg.source == "cryo":  # cryo parquet → a gpubt dataset (converted once, cached), see gpubt/data/cryo.py
        from gpubt.data import cryo

        dataset = cryo.open_cached(data_cfg)
    else:
        raise schema.SchemaError(f"data.source={data_cfg.source!r} is unknown (synthetic, parquet or cryo)")
    if not dataset.complete:
        where = (f"{dataset.root / 'manifest.json'}: complete = false (an interrupted writer's dataset, blocks "
                 f"{dataset.first_block}..{dataset.last_block} so far)")
        if not data_cfg.get("allow_incomplete", False):
            raise schema.SchemaError(f"{where}: finish writing it, or add data.allow_incomplete=true to backtest "
                                     "what it holds")
        print(f"gpubt: warning: {where}: backtesting the incomplete dataset (data.allow_incomplete=true)",
              file=sys.stderr, flush=True)
    dataset.check_prices()
    return dataset


def _synthetic_dataset(data_cfg, progress: bool) -> Dataset:
    """data=synthetic: the seeded market at data.path (default: cache_dir/synthetic-<preset>-seed<seed>), generated
    when the folder is new or empty. gpubt replaces only what it generated into its own cache (the default
    folder, marked by synthetic.generate(cache=True)); any other dataset or file there is refused, never deleted."""
    from gpubt.data import synthetic

    cached = not data_cfg.path
    path = Path(data_cfg.path or Path(data_cfg.cache_dir) / f"synthetic-{data_cfg.preset}-seed{data_cfg.seed}")
    key = f"data.cache_dir={data_cfg.cache_dir}: {path}" if cached else f"data.path={path}"
    # a dataset generated with other preset parameters (an older generator's) is not this market
    params = {**synthetic.PRESETS.get(data_cfg.preset, {}), "preset": data_cfg.preset, "seed": int(data_cfg.seed)}
    if path.exists() and not path.is_dir():
        raise schema.SchemaError(f"{key} is a file, not a dataset folder")
    ours = cached and synthetic.is_own_cache(path)
    if (path / "manifest.json").is_file():
        try:
            existing = Dataset(path)
        except schema.SchemaError:
            if not ours:
                raise
            existing = None
        if existing is not None:
            manifest, has = existing.manifest, existing.manifest.get("params") or {}
            if (existing.complete and manifest.get("source") == "synthetic"
                    and all(has.get(k) == v for k, v in params.items())):
                return existing
            if not ours:
                what = (f"synthetic {has.get('preset')} seed {has.get('seed')}" if manifest.get("source") == "synthetic"
                        else f"source {manifest.get('source')!r}")
                raise schema.SchemaError(
                    f"{key} holds a dataset ({what}{'' if existing.complete else ', incomplete'}) that gpubt did "
                    f"not generate there, so it is "
                    f"never replaced: to backtest it run with data=parquet data.path={path}; for the synthetic "
                    f"{params['preset']} market seed {params['seed']} choose another (new or empty) folder")
    elif path.is_dir() and any(path.iterdir()) and not ours:
        raise schema.SchemaError(f"{key} is not a gpubt dataset (no manifest.json) and not empty: gpubt writes the "
                                 "synthetic market only into a new or empty folder; to backtest a dataset run with "
                                 "data=parquet data.path=<its folder>")
    synthetic.generate(path, preset=data_cfg.preset, seed=int(data_cfg.seed), progress=progress, overwrite=ours,
                       cache=cached)
    return Dataset(path)


def load_strategy(name: str):
    """The Strategy subclass of gpubt/strategies/<name>.py or the package gpubt/strategies/<name>/ (its `name`
    attribute equals `name`)."""
    import importlib

    from gpubt.strategies.base import Strategy

    try:
        module = importlib.import_module(f"gpubt.strategies.{name}")
    except ModuleNotFoundError:
        raise ValueError(f"strategy {name!r} is unknown (configs/strategy/ lists the strategies)") from None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy and value.name == name:
            return value
    raise ValueError(f"gpubt/strategies/{name} defines no Strategy named {name!r}")


def capital_plan(cfg) -> dict:
    """The capital the policy splits (analysis/policy.py) among the run's capital-bound strategies (a class
    `capital_eth`: sandwich, JIT; the others are flash-funded): `budget_eth` (policy.capital_eth; null: the sum of
    their configured capital_eth, so the run as configured is one split of it), `shares` (policy.capital_shares:
    the fractions of the budget one strategy may get), `tiers_eth` (shares × budget: the capitals every trade of
    theirs is also priced at) and `strategies` ({name: configured capital_eth}). From the config alone, so every
    executor's workers agree."""
    policy = cfg.get("policy") or {}
    bound = {name: float(cfg.strategy[name].get("capital_eth", default)) for name in cfg.strategy
             if (default := load_strategy(name).capital_eth) is not None}
    budget = policy.get("capital_eth")   # checked with the other options (check_options, policy.settings)
    budget = float(sum(bound.values()) if budget is None else budget)
    shares = sorted({float(x) for x in policy.get("capital_shares", ())})
    return {"budget_eth": budget, "shares": shares, "strategies": bound,
            "tiers_eth": [x * budget for x in shares] if bound else []}


# settings that do not change results (a resume may change them); executor=dask's results equal executor=local's
RUN_ONLY_KEYS = ("progress", "resume", "checkpoint_every_blocks", "out_dir", "monitor", "report", "sweep", "executor")


@dataclass
class RunSetup:
    """What a config builds before the batch loop: the gas model, the threshold and the strategy objects."""

    gas: GasModel
    min_profit_wei: int
    strategies: list
    capital: dict   # the policy's capital split (`capital_plan`)

    @classmethod
    def build(cls, cfg, dataset: Dataset, backend: Backend, names=None) -> "RunSetup":
        """`names`: the strategies to construct (in config order), default all of cfg.strategy."""
        gas = GasModel(int(cfg.gas.base_units), int(cfg.gas.per_hop_units),
                       int(round(cfg.gas.priority_fee_gwei * GWEI)), int(cfg.gas.v3_hop_units),
                       int(cfg.gas.v3_tick_units))
        min_profit_wei = int(round(float(cfg.thresholds.min_profit_eth) * WEI_PER_ETH))
        names = list(cfg.strategy) if names is None else names
        strategies = [load_strategy(name)(cfg.strategy[name], dataset, backend, gas, min_profit_wei) for name in names]
        engine = str(cfg.get("exact", {}).get("engine", "device"))
        capital = capital_plan(cfg)
        for strategy in strategies:
            strategy.exact_engine = engine
            if strategy.name in capital["strategies"]:
                strategy.capital_tiers_eth = tuple(capital["tiers_eth"])
        return cls(gas, min_profit_wei, strategies, capital)

    def backtest(self, cfg, dataset: Dataset, backend: Backend, **options) -> Backtest:
        """The batch loop over cfg's block range (`options`: Backtest's keyword arguments)."""
        mode = str(cfg.execution.mode)
        auction, closed = None, ()
        if mode == "counterfactual":  # a bundle that loses the builder's auction does not touch the market
            auction = BuilderAuction(cfg.get("competition"))
            if auction.enabled:
                blocks = dataset.read_range("blocks", cfg.data.get("first_block"), cfg.data.get("last_block"),
                                            ["block_number", "takes_bundles"])
                shut = ~blocks.column("takes_bundles").fill_null(True).to_numpy(zero_copy_only=False)
                closed = blocks.column("block_number").to_numpy()[shut]
        execution = Execution(mode, dataset, self.strategies, int(cfg.execution.default_slippage_bps), auction,
                              closed)
        return Backtest(dataset, backend, self.strategies, self.gas, int(cfg.batch_blocks),
                        cfg.data.get("first_block"), cfg.data.get("last_block"),
                        memory_budget_mb=float(cfg.get("memory_budget_mb", 2048)), execution=execution, **options)


# option values run() checks before anything else: key -> kind (KINDS: what the value must be)
OPTION_KINDS = {
    "batch_blocks": "int>=1", "memory_budget_mb": "num>0", "checkpoint_every_blocks": "int>=0",
    "progress": "bool", "resume": "bool", "thresholds.min_profit_eth": "num>=0",
    "gas.base_units": "int>=0", "gas.per_hop_units": "int>=0", "gas.v3_hop_units": "int>=0",
    "gas.v3_tick_units": "int>=0", "gas.priority_fee_gwei": "num>=0",
    "metrics.initial_capital_eth": "num>0", "metrics.bootstrap_samples": "int>=0", "metrics.seed": "int",
    "validation.enabled": "bool", "validation.min_gap": "int", "validation.max_gap": "int",
    "monitor.port": "port", "monitor.anomaly_k": "num>0", "monitor.anomaly_alpha": "fraction",
    "monitor.anomaly_warmup": "int>=0", "monitor.anomaly_min_std": "num>=0", "report.enabled": "bool",
    "data.seed": "int", "data.first_block": "block", "data.last_block": "block",
    "policy.window_blocks": "int>=1", "policy.warmup_windows": "int>=0", "policy.seed": "int",
    "policy.prior_var": "num>0", "policy.noise_var": "num>0", "policy.capital_eth": "num>0|null",
    "execution.default_slippage_bps": "int>=0", "execution.compare_replay": "bool", "executor.workers": "int>=0", "executor.threads_per_worker": "int>=0", "executor.task_blocks": "int>=0",
}
KINDS = {  # kind -> (accepts the value, what it must be)
    "int": (lambda v: True, "an integer"),
    "int>=0": (lambda v: v >= 0, "an integer >= 0"),
    "int>=1": (lambda v: v >= 1, "an integer >= 1"),
    "block": (lambda v: v >= 0, "a block number (or null)"),
    "port": (lambda v: 0 <= v <= 65535, "a port number 0..65535 (0: off)"),
    "num>=0": (lambda v: v >= 0, "a finite number >= 0"),
    "num>0": (lambda v: v > 0, "a finite number > 0"),
    "num>0|null": (lambda v: v > 0, "a finite number > 0 (or null)"),
    "fraction": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "bool": (lambda v: True, "true or false"),
}


def check_options(cfg) -> None:
    """Raise ValueError naming the first option of OPTION_KINDS whose value is the wrong type or out of range."""
    from omegaconf import OmegaConf

    absent = object()
    for key, kind in OPTION_KINDS.items():
        value = OmegaConf.select(cfg, key, default=absent)
        if value is absent or (value is None and kind in ("block", "num>0|null")):
            continue
        accepts, must = KINDS[kind]
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind.startswith(("num", "fraction")):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or not accepts(value):
            raise ValueError(f"{key}={value}: must be {must}")


def check_ranges(cfg) -> None:
    """Raise SchemaError naming the options whose values disagree with each other (each alone: check_options)."""
    arbitrage = cfg.strategy.get("arbitrage")
    if arbitrage:
        lo, hi = int(arbitrage.min_hops), int(arbitrage.max_hops)
        for key, hops in (("min_hops", lo), ("max_hops", hi)):
            if hops < 2:
                raise schema.SchemaError(f"strategy.arbitrage.{key}={hops}: a cycle has at least 2 hops")
        if lo > hi:
            raise schema.SchemaError(f"strategy.arbitrage.min_hops={lo} is more than strategy.arbitrage.max_hops="
                                     f"{hi}: no cycle has min_hops..max_hops hops")
    engine = cfg.get("exact", {}).get("engine", "device")
    if engine not in ENGINES:
        raise schema.SchemaError(f"exact.engine={engine!r}: choose one of {', '.join(ENGINES)} (device: the exact "
                                 "kernels on the backend; python: the Python-int oracle; identical results)")
    first, last = cfg.data.get("first_block"), cfg.data.get("last_block")
    if first is not None and last is not None and int(first) > int(last):
        raise schema.SchemaError(f"data.first_block={first} is after data.last_block={last}: the range is "
                                 "first_block..last_block")
