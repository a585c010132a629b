"""After the batch loop: thresholds, the builder auction, validation, metrics and the results files.

    result parts (run/results.py) ─► thresholds (static | dynamic) ─► competition (builder auction: who lands)
      ─► validation against the labels ─► metrics ─► trades.parquet, opportunities.parquet, daily_pnl.parquet,
         validation files, thresholds.json, summary.json (gpubt/backtest.py then writes report.html)

One dataset partition at a time, so memory stays near one partition's results whatever the run's length.
"""
from __future__ import annotations

import contextlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from gpubt import schema
from gpubt.schema import WEI_PER_ETH
from gpubt.analysis.metrics import json_safe
from gpubt.data.store import write_table_atomic
from gpubt.run.monitor import release_memory
from gpubt.run.results import ROW, LoopResult
from gpubt.run.setup import RunSetup
from gpubt.strategies.base import STAT_KEYS



class StrategyTally:
    """Per strategy, chunk by chunk: trades attempted, and of the landed ones the count, exact net profit and gas,
    and wins; `table(opportunity_counts)` is summary.json's by_strategy."""

    def __init__(self):
        self.tried: dict[str, int] = {}
        self.tried_net: dict[str, int] = {}  # name -> Σ exact net profit (before any bid) of the trades attempted
        self.landed: dict[str, list] = {}  # name -> [trades, net wei, gas wei, wins]

    def add(self, attempted: pa.Table, landed: pa.Table) -> None:
        for c in pc.value_counts(attempted.column("strategy")).to_pylist():
            self.tried[c["values"]] = self.tried.get(c["values"], 0) + c["counts"]
        for name in pc.unique(attempted.column("strategy")).to_pylist():
            net = attempted.column("net_profit_wei").filter(pc.equal(attempted.column("strategy"), name))
            self.tried_net[name] = self.tried_net.get(name, 0) + schema.amount_sum(net)
        amounts = landed.select(["net_profit_wei", "gas_cost_wei"])
        for name in pc.unique(landed.column("strategy")).to_pylist():
            mine = amounts.filter(pc.equal(landed.column("strategy"), name))
            net = mine.column("net_profit_wei")
            row = self.landed.setdefault(name, [0, 0, 0, 0])
            row[0] += mine.num_rows
            row[1] += schema.amount_sum(net)
            row[2] += schema.amount_sum(mine.column("gas_cost_wei"))
            row[3] += pc.sum(pc.greater(net, 0)).as_py() or 0

    def table(self, opportunity_counts: dict, requested=(), notes: dict | None = None) -> dict:
        """Per strategy: opportunities, trades attempted and won (survival rate), exact net profit and gas, win
        rate. Every `requested` strategy has a row, zeros included; `notes`: name -> why it had nothing to do."""
        out = {}
        for name in sorted(set(opportunity_counts) | set(self.tried) | set(requested)):
            n, total, gas, wins = self.landed.get(name, (0, 0, 0, 0))
            n_tried = self.tried.get(name, 0)
            out[name] = {"opportunities": opportunity_counts.get(name, 0), "attempted": n_tried, "trades": n,
                         "survival_rate": n / n_tried if n_tried else None,
                         "net_profit_wei": str(total), "net_profit_eth": total / WEI_PER_ETH,
                         "gas_cost_eth": gas / WEI_PER_ETH, "win_rate": wins / n if n else None}
            if (notes or {}).get(name):
                out[name]["note"] = notes[name]
        return out


# the opportunity funnel's stages, in order (docs/metrics.md, "The opportunity funnel")
FUNNEL_STAGES = ("screened", "over_threshold", "chosen", "exact_confirmed", "executed", "attempted", "won")


def funnel(strategy_stats: dict, opportunity_counts: dict, screened_wei: dict, tally: StrategyTally) -> dict:
    """Per strategy, each stage of an opportunity's life with its count and value (ETH; None where the stage has
    no single figure) and the value lost since the stage before: screened by the kernel → over the float
    threshold (the opportunities table, Σ screened net) → chosen for exact pricing (Σ their screened net) →
    confirmed by the exact figure (Σ exact net) → executed by the ordered exact pass (after conflicts across
    strategies and re-pricing where our bundles changed the state: the trades table) → attempted (kept by the threshold model) → won the auction
    (landed; Σ net after our bid: the realized profit)."""
    out = {}
    for name in sorted(set(strategy_stats) | set(opportunity_counts) | set(tally.tried)):
        st = strategy_stats.get(name, {})
        won = tally.landed.get(name, (0, 0, 0, 0))
        rows = [("screened", st.get("screened", 0), None),
                ("over_threshold", opportunity_counts.get(name, 0), screened_wei.get(name, 0.0) / WEI_PER_ETH),
                ("chosen", st.get("exact_priced", 0), st.get("exact_priced_screen_wei", 0.0) / WEI_PER_ETH),
                ("exact_confirmed", st.get("trades", 0), int(st.get("trades_net_wei", 0)) / WEI_PER_ETH),
                ("executed", st.get("executed", 0), int(st.get("executed_net_wei", 0)) / WEI_PER_ETH),
                ("attempted", tally.tried.get(name, 0), tally.tried_net.get(name, 0) / WEI_PER_ETH),
                ("won", won[0], won[1] / WEI_PER_ETH)]
        stages, before = [], None
        for stage, count, value in rows:
            lost = before - value if before is not None and value is not None else None
            stages.append({"stage": stage, "count": int(count), "value_eth": value, "lost_eth": lost})
            before = value if value is not None else before
        out[name] = stages
    return out


def idle_notes(setup: "RunSetup", opportunity_counts: dict, first_block: int, last_block: int) -> dict:
    """name -> one line on why a requested strategy found no opportunity, where the data is the reason."""
    return {s.name: why for s in setup.strategies
            if not opportunity_counts.get(s.name) and (why := s.idle_reason(first_block, last_block))}


def post_run(cfg, work, backend, dataset, loop: LoopResult, setup: RunSetup):
    """Thresholds, the builder auction, validation, metrics and the files, from the run's result parts.

    One dataset partition at a time: its trades' core (no `detail`: gpubt/run/results.py), its labels and
    events. The chunk's trades are streamed into trades.parquet and the validation files; the metrics keep
    exact sums and three numbers per landed trade (analysis/metrics.py TradeTotals). So memory stays near one
    partition's results, whatever the run's length. Returns (validation scores or None, summary)."""
    from omegaconf import OmegaConf

    from gpubt.data.store import ParquetStream
    from gpubt.analysis import competition, policy
    from gpubt.analysis.metrics import TradeTotals
    from gpubt.analysis.validate import EVENT_COLUMNS, ValidationWriter, Validator, with_estimates

    parts = loop.parts
    first, last = loop.first_block, loop.last_block
    blocks = dataset.read_range("blocks", first, last)
    bounds = [(max(lo, first), min(hi, last)) for lo, hi in dataset.partitions if hi >= first and lo <= last]
    kept_rows, threshold, threshold_info = _thresholds(cfg.thresholds, parts, dataset, blocks, first, last,
                                                       setup.min_profit_wei, setup.gas.priority_fee_wei)
    auctions = competition.Auctions(cfg.get("competition"), backend.name)
    closed = blocks.filter(pc.invert(blocks.column("takes_bundles").fill_null(True))).column("block_number").to_numpy()
    totals, by_strategy = TradeTotals(), StrategyTally()
    policy_settings = policy.settings(cfg.get("policy"))
    windows = policy.WindowTally(first, last, policy_settings["window_blocks"], list(cfg.strategy), setup.capital)
    validator = None
    if cfg.validation.enabled and dataset.read_range("labels", first, last, ["block_number"]).num_rows:
        validator = Validator(min_gap=int(cfg.validation.min_gap), max_gap=int(cfg.validation.max_gap))
    trades_schema = pa.schema([*schema.TRADES, *competition.fields()])
    chunks = list(zip(bounds, parts.chunks(bounds)))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(ParquetStream(work / "trades.parquet", trades_schema))
        checks = stack.enter_context(ValidationWriter(work)) if validator else None
        for n, ((lo, hi), group) in enumerate(tqdm(chunks, desc="post-run", unit="partition",
                                                   disable=not cfg.progress or len(chunks) < 2)):
            core = parts.core(group, lambda t: policy.with_capital_curve(competition.with_bid_basis(with_estimates(t))))
            if kept_rows is not None:
                core = core.filter(pc.is_in(core.column(ROW), value_set=kept_rows))
            trades = auctions.add(core, closed)
            landed = competition.landed(trades)
            totals.add(landed)
            by_strategy.add(trades, landed)
            windows.add(trades, policy.tier_outcomes(trades, auctions, closed, len(windows.shares)))
            for piece in parts.trade_pieces(trades, competition.COLUMNS):
                out.write(piece)
            if validator:  # CEX-DEX: pools untouched since our point, from the events
                events = dataset.read_range("events", lo, hi, EVENT_COLUMNS)
                checks.add(*validator.add(trades.drop_columns([ROW]), dataset.read_range("labels", lo, hi), events,
                                          final=n == len(chunks) - 1))
            core = trades = landed = events = None
            release_memory()  # Arrow's pool and malloc keep freed pages: give them back
        scores = validator.scores() if validator else None
        if validator:
            checks.finish(scores)
    daily = totals.daily(blocks, float(cfg.metrics.initial_capital_eth), first, last)
    write_table_atomic(daily, work / "daily_pnl.parquet")
    screened_wei: dict = {}
    opportunity_counts = parts.write_opportunities(work / "opportunities.parquet", screened_wei)
    threshold.save(work / "thresholds.json")
    notes = idle_notes(setup, opportunity_counts, first, last)
    summary = _summary(cfg, backend, dataset, loop, setup, notes, totals,
                       by_strategy, opportunity_counts, blocks, daily, threshold_info, scores, auctions.summary())
    summary["funnel"] = json_safe(funnel(loop.strategy_stats, opportunity_counts, screened_wei, by_strategy))
    summary["policy"] = json_safe(_policy(cfg, dataset, blocks, windows, policy_settings, setup.gas.priority_fee_wei))
    if loop.execution is not None:
        from gpubt.analysis.repeats import repeated_captures
        from gpubt.analysis.validate import load_labels

        # captures are the trades that landed: a lost bundle took nothing (and, counterfactually, changed nothing)
        arbitrage = pq.read_table(work / "trades.parquet", columns=["strategy", "block_number", "tx_index", "path_id",
                                                                   "pools", "gross_profit_wei", "won"])
        summary["execution"] = json_safe({**loop.execution, "repeated_captures": repeated_captures(
            arbitrage.filter(arbitrage.column("won")),
            load_labels(dataset, first, last) if "arbitrage" in cfg.strategy else None)})
    del totals, by_strategy  # the per-trade floats, before the report reads its own
    release_memory()
    (work / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (work / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return scores, summary


def _policy(cfg, dataset, blocks, windows, settings: dict, priority_fee_wei: int) -> dict:
    """summary.json `policy` (analysis/policy.py): the window contexts from the block features, read a partition
    at a time (the ETH reference price and the competing labels only), then the three policies."""
    from gpubt.analysis import policy
    from gpubt.analysis.thresholds import FeatureWindows

    first, last = windows.first_block, int(blocks.column("block_number")[-1].as_py())
    prices, labels = [], []
    for lo, hi in dataset.partitions:
        if hi < first or lo > last:
            continue
        p = dataset.read_range("prices", max(lo, first), min(hi, last), ["block_number", "token_id", "price_usd"])
        prices.append(p.filter(pc.equal(p.column("token_id"), 0)))  # ETH: block_features' eth_token
        lab = dataset.read_range("labels", max(lo, first), min(hi, last), ["block_number", "kind"])
        labels.append(lab.filter(pc.equal(lab.column("kind"), "arbitrage")))  # block_features' competing kind
    window_cfg = cfg.thresholds.get("windows") if cfg.get("thresholds") is not None else None
    feature_windows = FeatureWindows(**{k: int(v) for k, v in dict(window_cfg or {}).items()})
    contexts = policy.window_contexts(blocks, pa.concat_tables(prices), pa.concat_tables(labels),
                                      windows.outcomes(), windows.window_blocks, windows.n_windows,
                                      feature_windows, priority_fee_wei)
    return policy.policy_summary(windows, contexts, settings, int(cfg.metrics.bootstrap_samples),
                                 int(cfg.metrics.seed))


def _thresholds(cfg, parts, dataset, blocks, first, last, min_profit_wei, priority_fee_wei):
    """(kept core rows or None for all, threshold model, info): the `thresholds` group on the run's trades. A
    dynamic model reads what it fits on and filters by for the whole run: the trades' block, tx, pools and
    exact net profit, and the labels."""
    from gpubt.analysis.thresholds import apply_config
    from gpubt.analysis.validate import load_labels

    if cfg.kind == "static":
        _, threshold, info = apply_config(cfg, None, None, blocks, None, min_profit_wei, priority_fee_wei)
        return None, threshold, info
    lean = parts.read("trades", ["block_number", "tx_index", "pools", "net_profit_wei"])
    lean = lean.append_column(ROW, pa.array(np.arange(lean.num_rows), pa.int64()))
    kept, threshold, info = apply_config(cfg, lean, load_labels(dataset, first, last), blocks,
                                         lambda: dataset.read_range("prices", first, last), min_profit_wei,
                                         priority_fee_wei)
    return kept.column(ROW).combine_chunks(), threshold, info


def _summary(cfg, backend, dataset, loop: LoopResult, setup: RunSetup, notes: dict, totals, by_strategy,
             opportunity_counts, blocks, daily, threshold_info, scores, competition_summary) -> dict:
    """summary.json: metrics of the trades that landed (after the builder bid: `totals`), run facts, timing.
    `by_strategy`: a StrategyTally; `opportunity_counts`: per strategy; `daily`: totals.daily() of the run, as
    written; `scores`: validation's (or None); `notes`: why a requested strategy had nothing to do."""
    stats, gas, per = loop.stats, setup.gas, loop.strategy_stats
    n_blocks = loop.last_block - loop.first_block + 1
    blocks_here = loop.last_block - (loop.resumed_from or loop.first_block) + 1
    total = {k: sum(st.get(k, 0) for st in per.values()) for k in STAT_KEYS}
    screened_here = sum(st["screened"] - loop.restored_screened.get(name, 0) for name, st in per.items())
    summary = {
        "metrics": totals.summary(sum(opportunity_counts.values()), total["screened"], n_blocks,
                                  attempted=competition_summary["attempted"], blocks=blocks,
                                  first_block=loop.first_block, last_block=loop.last_block, daily=daily,
                                  initial_capital_eth=float(cfg.metrics.initial_capital_eth),
                                  bootstrap_samples=int(cfg.metrics.bootstrap_samples), seed=int(cfg.metrics.seed)),
        "run": {
            "backend": backend.name, "backend_reason": backend.reason,
            "dataset": str(dataset.root), "dataset_params": dataset.manifest.get("params", {}),
            "first_block": loop.first_block, "last_block": loop.last_block,
            "resumed_from_block": loop.resumed_from,
            "strategies": list(cfg.strategy),
            "setup": {s.name: s.describe() for s in setup.strategies},
            "min_profit_wei": str(setup.min_profit_wei),
            "threshold": threshold_info,
            "gas_model": {"base_units": gas.base_units, "per_hop_units": gas.per_hop_units,
                          "v3_hop_units": gas.v3_hop_units, "v3_tick_units": gas.v3_tick_units,
                          "priority_fee_wei": gas.priority_fee_wei},
        },
        "timing": {  # this process's work (a resumed run times only what it did itself)
            "wall_seconds": stats["wall_seconds"],
            "blocks_per_second": blocks_here / stats["wall_seconds"] if stats["wall_seconds"] else None,
            "compile_seconds": total["compile_seconds"],
            "screen_seconds": total["screen_seconds"],
            "pairs_per_second": screened_here / total["screen_seconds"] if total["screen_seconds"] else None,
            "exact_seconds": total["exact_seconds"],
            "exact_rejected": total["exact_rejected"],
            "batches": stats["batches"],
            "final_batch_blocks": loop.batch_blocks,
            "buffer_allocations": loop.buffer_allocations,
            "context_seconds": loop.context_seconds,
            "context_us_per_block": 1e6 * loop.context_seconds / blocks_here,
            "by_strategy": per,
        },
    }
    for key in ("tasks", "workers_used", "worker_utilization",  # executor=dask (gpubt/run/sharded.py)
                "replay_wall_seconds"):  # execution.compare_replay: the loop run again under replay
        if key in stats:
            summary["timing"][key] = stats[key]
    summary["competition"] = competition_summary
    summary["by_strategy"] = by_strategy.table(opportunity_counts, list(cfg.strategy), notes)
    if scores is not None:
        summary["validation"] = scores
    return json_safe(summary)
