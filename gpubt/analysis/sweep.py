"""Vectorized threshold sweeps: K threshold configs evaluated in one pass over a run's trades.

Why one run suffices, the kernel and the per-config metrics: docs/strategies.md#threshold-sweeps.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit, prange

from gpubt import schema
from gpubt.schema import GWEI, WEI_PER_ETH
from gpubt.analysis.thresholds import BLOCKS_PER_YEAR, MIN_PROBABILITY, BlockFeatures, DynamicThreshold

OBJECTIVES = ("net_profit", "sharpe", "profit_factor")


@dataclass(frozen=True)
class SweepInput:
    """The trades a run selected at its own threshold, in time order, as flat arrays."""

    first_block: int
    n_blocks: int
    run_min_profit_wei: float
    block_idx: np.ndarray       # int64 (N): block − first_block
    screen_net_wei: np.ndarray  # float64 (N): the screened net profit the threshold compares
    net_hi: np.ndarray          # int64 (N): exact net profit = net_hi × 1e9 + net_lo, 0 <= net_lo < 1e9
    net_lo: np.ndarray          # int64 (N)
    net_eth: np.ndarray         # float64 (N): exact net ÷ 1e18

    @classmethod
    def from_arrays(cls, block_number, tx_index, screen_net_wei, exact_net_wei, first_block: int, last_block: int,
                    run_min_profit_wei: float) -> "SweepInput":
        block_number = np.asarray(block_number, np.int64)
        order = np.lexsort((np.asarray(tx_index, np.int64), block_number))   # time order, stable within a point
        nets = [int(exact_net_wei[i]) for i in order.tolist()]
        hi_lo = [divmod(v, GWEI) for v in nets]
        if block_number.size and (block_number.min() < first_block or block_number.max() > last_block):
            raise ValueError(f"trades in blocks {block_number.min()}..{block_number.max()} are outside the sweep's "
                             f"{first_block}..{last_block}")
        return cls(
            first_block=int(first_block), n_blocks=int(last_block - first_block + 1),
            run_min_profit_wei=float(run_min_profit_wei),
            block_idx=block_number[order] - int(first_block),
            screen_net_wei=np.asarray(screen_net_wei, np.float64)[order],
            net_hi=np.asarray([h for h, _ in hi_lo], np.int64).reshape(-1),
            net_lo=np.asarray([lo for _, lo in hi_lo], np.int64).reshape(-1),
            net_eth=np.asarray([v / WEI_PER_ETH for v in nets], np.float64).reshape(-1),
        )

    @classmethod
    def from_trades(cls, trades: pa.Table, first_block: int, last_block: int,
                    run_min_profit_wei: float) -> "SweepInput":
        """From a run's trades.parquet (the greedy selection at the run's threshold, exactly re-priced)."""
        trades = schema.conform(trades, "trades", "trades")
        # trades are taken on their exact net profit (strategies/arbitrage/pricing.py: screen_floor), so configs compare it too
        exact_net = schema.amounts_float(trades.column("net_profit_wei"))
        return cls.from_arrays(trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(),
                               exact_net,
                               trades.column("net_profit_wei").to_pylist(), first_block, last_block,
                               run_min_profit_wei)

    @classmethod
    def from_opportunities(cls, opportunities: pa.Table, exact_net_wei, first_block: int, last_block: int,
                           run_min_profit_wei: float, selected=None, paths=None) -> "SweepInput":
        """From the opportunities table and the exact net profit (wei, ints) of each row; `selected` (bool per row)
        is the greedy selection, computed with `verify.select` on `paths` when not given. Only selected rows'
        exact profits are read (None elsewhere is fine)."""
        opportunities = schema.conform(opportunities, "opportunities", "opportunities")
        block = opportunities.column("block_number").to_numpy()
        tx = opportunities.column("tx_index").to_numpy()
        screen = opportunities.column("screen_net_profit_wei").to_numpy()
        if selected is None:
            if paths is None:
                raise ValueError("from_opportunities: give `selected` or the run's `paths` to select with")
            from gpubt.analysis.validate import point_code
            from gpubt.strategies.arbitrage.pricing import select

            rows = select(point_code(block, tx), opportunities.column("path_id").to_numpy(), screen, paths)
            selected = np.zeros(len(block), bool)
            selected[rows] = True
        rows = np.flatnonzero(np.asarray(selected, bool))
        exact = [exact_net_wei[r] for r in rows.tolist()]
        # compared on the exact net, as the run takes trades (from_trades): the screen overstates a V3 hop that
        # crosses ticks (their gas is charged on the exact figure only)
        return cls.from_arrays(block[rows], tx[rows], [float(v) for v in exact], exact, first_block, last_block,
                               run_min_profit_wei)


@dataclass(frozen=True)
class ThresholdGrid:
    """K threshold configs: threshold_wei(k, b) = params[k] · basis[b]; `names` label the params' columns."""

    names: tuple
    params: np.ndarray   # float64 (K, J)
    basis: np.ndarray    # float64 (n_blocks, J)

    def __len__(self) -> int:
        return int(self.params.shape[0])

    def threshold_wei(self, k: int) -> np.ndarray:
        """The per-block thresholds of config k (for inspection and reference loops)."""
        return self.basis @ self.params[k]


def _param_matrix(axes: dict, search: str, k: int | None, seed: int) -> np.ndarray:
    values = [np.atleast_1d(np.asarray(v, np.float64)) for v in axes.values()]
    if search == "grid":
        return np.asarray(list(itertools.product(*values)), np.float64).reshape(-1, len(values))
    if search == "random":
        if not k:
            raise ValueError("search=random needs k (the number of configs)")
        rng = np.random.default_rng(seed)
        return np.stack([rng.uniform(v.min(), v.max(), k) for v in values], axis=1)
    raise ValueError(f"search = {search!r} (grid or random)")


def static_grid(n_blocks: int, min_profit_eth, search: str = "grid", k: int | None = None,
                seed: int = 0) -> ThresholdGrid:
    """Static thresholds: threshold = min_profit_eth × 1e18 in every block."""
    params = _param_matrix({"min_profit_eth": min_profit_eth}, search, k, seed)
    return ThresholdGrid(("min_profit_eth",), params, np.full((n_blocks, 1), float(WEI_PER_ETH)))


def linear_grid(features: BlockFeatures, min_profit_eth, weights_eth: dict, search: str = "grid",
                k: int | None = None, seed: int = 0) -> ThresholdGrid:
    """threshold = 1e18 × (min_profit_eth + Σ_f w_f × z_f(b)), z the block features standardized over the run:
    e.g. weights_eth={"gas_pct": [0, 0.001]} raises the bar by 0.001 ETH per standard deviation of gas_pct."""
    cols = []
    for name in weights_eth:
        if name not in features.names:
            raise ValueError(f"linear_grid: unknown feature {name!r} (features: {', '.join(features.names)})")
        v = features.values[:, features.names.index(name)]
        cols.append((v - v.mean()) / (v.std() if v.std() > 0 else 1.0))
    basis = np.stack([np.ones(features.n_blocks), *cols], axis=1) * float(WEI_PER_ETH)
    params = _param_matrix({"min_profit_eth": min_profit_eth, **weights_eth}, search, k, seed)
    return ThresholdGrid(("min_profit_eth", *(f"w_{n}_eth" for n in weights_eth)), params, basis)


def dynamic_grid(model: DynamicThreshold, features: BlockFeatures, margin_eth, risk_scale=(1.0,),
                 search: str = "grid", k: int | None = None, seed: int = 0) -> ThresholdGrid:
    """The fitted model's thresholds with its margin and the weight of the preemption loss swept:
    threshold = (margin_eth × 1e18 + risk_scale × (1 − p_b) × C_b) ÷ p_b (risk_scale 1 is the model itself)."""
    p = np.maximum(model.success_probability(features.values), MIN_PROBABILITY)
    loss_wei = float(model.revert_gas_units) * features.gas_price_wei
    basis = np.stack([float(WEI_PER_ETH) / p, (1.0 - p) * loss_wei / p], axis=1)
    params = _param_matrix({"margin_eth": margin_eth, "risk_scale": risk_scale}, search, k, seed)
    return ThresholdGrid(("margin_eth", "risk_scale"), params, basis)


def _sweep(block_idx, screen_net_wei, net_hi, net_lo, net_eth, basis, params, run_min_wei, out_int, out_float):
    """Per config k (prange): walk the trades in time order, take those above threshold params[k]·basis[block].

    out_int[k]   = trades, wins, net_hi, net_lo, win_hi, win_lo, loss_hi, loss_lo, blocks_below_run_threshold
    out_float[k] = max_drawdown_eth, Σ block pnl, Σ block pnl², (unused)
    """
    n_configs, n_params = params.shape
    n_trades = block_idx.shape[0]
    for k in prange(n_configs):
        below = 0
        for b in range(basis.shape[0]):
            thr = 0.0
            for j in range(n_params):
                thr += params[k, j] * basis[b, j]
            if thr < run_min_wei:
                below += 1
        trades = 0
        wins = 0
        hi = 0
        lo = 0
        win_hi = 0
        win_lo = 0
        loss_hi = 0
        loss_lo = 0
        equity = 0.0
        peak = 0.0
        max_dd = 0.0
        block_pnl = 0.0
        s1 = 0.0
        s2 = 0.0
        current = -1
        thr = 0.0
        for i in range(n_trades):
            b = block_idx[i]
            if b != current:
                s1 += block_pnl
                s2 += block_pnl * block_pnl
                block_pnl = 0.0
                current = b
                thr = 0.0
                for j in range(n_params):
                    thr += params[k, j] * basis[b, j]
            if screen_net_wei[i] > thr:
                trades += 1
                hi += net_hi[i]
                lo += net_lo[i]
                if net_hi[i] > 0 or (net_hi[i] == 0 and net_lo[i] > 0):
                    wins += 1
                    win_hi += net_hi[i]
                    win_lo += net_lo[i]
                else:
                    loss_hi += net_hi[i]
                    loss_lo += net_lo[i]
                equity += net_eth[i]
                block_pnl += net_eth[i]
                if equity > peak:
                    peak = equity
                if peak - equity > max_dd:
                    max_dd = peak - equity
        s1 += block_pnl
        s2 += block_pnl * block_pnl
        out_int[k, 0] = trades
        out_int[k, 1] = wins
        out_int[k, 2] = hi
        out_int[k, 3] = lo
        out_int[k, 4] = win_hi
        out_int[k, 5] = win_lo
        out_int[k, 6] = loss_hi
        out_int[k, 7] = loss_lo
        out_int[k, 8] = below
        out_float[k, 0] = max_dd
        out_float[k, 1] = s1
        out_float[k, 2] = s2


# one source, two compilations: launching a parallel region costs milliseconds on a busy machine, so small
# sweeps (K × N below PARALLEL_MIN_WORK) run the serial build
sweep_nb = njit(parallel=True, cache=True)(_sweep)
sweep_serial_nb = njit(cache=True)(_sweep)
PARALLEL_MIN_WORK = 2_000_000


def _profit_factor(win_wei: int, loss_wei: int) -> float:
    if loss_wei < 0:
        return win_wei / -loss_wei
    return math.inf if win_wei > 0 else 0.0


def sharpe_from_sums(s1: float, s2: float, n_blocks: int) -> float:
    """Annualised Sharpe of the per-block net profit from its sum and sum of squares over n_blocks blocks."""
    mean = s1 / n_blocks
    var = s2 / n_blocks - mean * mean
    return mean / math.sqrt(var) * math.sqrt(BLOCKS_PER_YEAR) if var > 0 else 0.0


@dataclass
class SweepResult:
    table: pa.Table   # one row per config: its params, then the metrics
    best: dict        # the best exact config's row (None when no config is exact and trades)
    objective: str


def sweep(inp: SweepInput, grid: ThresholdGrid, objective: str = "net_profit") -> SweepResult:
    """Evaluate every config of `grid` on the run's trades in one kernel pass; pick the best by `objective`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} (one of {', '.join(OBJECTIVES)})")
    if grid.basis.shape[0] != inp.n_blocks:
        raise ValueError(f"grid has {grid.basis.shape[0]} blocks, the run {inp.n_blocks}")
    k = len(grid)
    out_int = np.zeros((k, 9), np.int64)
    out_float = np.zeros((k, 3), np.float64)
    kernel = sweep_nb if k * (len(inp.block_idx) + inp.n_blocks) >= PARALLEL_MIN_WORK else sweep_serial_nb
    kernel(inp.block_idx, inp.screen_net_wei, inp.net_hi, inp.net_lo, inp.net_eth,
             np.ascontiguousarray(grid.basis, np.float64), np.ascontiguousarray(grid.params, np.float64),
             float(inp.run_min_profit_wei) * (1 - 1e-12), out_int, out_float)   # 1e-12: float rounding of params
    net = [h * GWEI + lo for h, lo in zip(out_int[:, 2].tolist(), out_int[:, 3].tolist())]
    win = [h * GWEI + lo for h, lo in zip(out_int[:, 4].tolist(), out_int[:, 5].tolist())]
    loss = [h * GWEI + lo for h, lo in zip(out_int[:, 6].tolist(), out_int[:, 7].tolist())]
    trades, wins = out_int[:, 0], out_int[:, 1]
    cols = {name: grid.params[:, j] for j, name in enumerate(grid.names)}
    cols.update({
        "config": np.arange(k, dtype=np.int64),
        "trades": trades,
        "wins": wins,
        "win_rate": np.where(trades > 0, wins / np.maximum(trades, 1), 0.0),
        "net_profit_wei": pa.array([v for v in net], schema.AMOUNT),
        "net_profit_eth": np.asarray([v / WEI_PER_ETH for v in net], np.float64),
        "profit_factor": np.asarray([_profit_factor(w, lo) for w, lo in zip(win, loss)], np.float64),
        "max_drawdown_eth": out_float[:, 0],
        "sharpe": np.asarray([sharpe_from_sums(a, b, inp.n_blocks) for a, b in out_float[:, 1:3].tolist()]),
        "blocks_below_run_threshold": out_int[:, 8],
        "exact": out_int[:, 8] == 0,
    })
    table = pa.table(cols)
    score = {"net_profit": table.column("net_profit_eth").to_numpy(),
             "sharpe": table.column("sharpe").to_numpy(),
             "profit_factor": table.column("profit_factor").to_numpy()}[objective].copy()
    eligible = (out_int[:, 8] == 0) & (trades > 0)
    best = None
    if eligible.any():
        score[~eligible] = -np.inf
        best = table.slice(int(np.argmax(score)), 1).to_pylist()[0]
        best["net_profit_wei"] = str(best["net_profit_wei"])
    return SweepResult(table, best, objective)


def prefix_metrics(inp: SweepInput, min_profit_wei) -> dict:
    """Static thresholds only, by index arithmetic: sort by screened profit once, searchsorted per threshold,
    cumulative sums. Returns trades, wins, net_profit_wei (exact ints) per threshold."""
    thresholds = np.asarray(min_profit_wei, np.float64).reshape(-1)
    order = np.argsort(inp.screen_net_wei, kind="stable")
    screen = inp.screen_net_wei[order]
    positive = (inp.net_hi > 0) | ((inp.net_hi == 0) & (inp.net_lo > 0))

    def suffix(values):   # suffix[i] = Σ values[order][i:]
        c = np.concatenate([[0], np.cumsum(values[order][::-1])])[::-1]
        return c

    count = len(screen) - np.arange(len(screen) + 1)
    start = np.searchsorted(screen, thresholds, side="right")   # first row with screen > threshold
    hi, lo, w = suffix(inp.net_hi), suffix(inp.net_lo), suffix(positive.astype(np.int64))
    return {"trades": count[start], "wins": w[start],
            "net_profit_wei": [int(h) * GWEI + int(x) for h, x in zip(hi[start].tolist(), lo[start].tolist())],
            "below_run_threshold": thresholds < inp.run_min_profit_wei * (1 - 1e-12)}


def format_best(result: SweepResult) -> str:
    b = result.best
    if b is None:
        return "sweep: no exact config took a trade"
    params = ", ".join(f"{k}={v:.6g}" for k, v in b.items() if k not in SWEEP_METRICS)
    return (f"best by {result.objective}: config {b['config']} ({params}): trades {b['trades']}, net "
            f"{b['net_profit_eth']:.6f} ETH, win rate {b['win_rate']:.1%}, profit factor {b['profit_factor']:.3g}, "
            f"max drawdown {b['max_drawdown_eth']:.6f} ETH, sharpe {b['sharpe']:.3g}")


SWEEP_METRICS = ("config", "trades", "wins", "win_rate", "net_profit_wei", "net_profit_eth", "profit_factor",
                 "max_drawdown_eth", "sharpe", "blocks_below_run_threshold", "exact")


def run_sweep(cfg) -> Path:
    """`gpubt sweep sweep.run_dir=RESULTS`: evaluate the `sweep` config's grid over a finished static-threshold
    run in one pass; writes sweep.parquet and sweep_best.json into the run folder (the CLI then refreshes its
    report) and returns the folder."""
    import json
    import time

    import pyarrow.parquet as pq

    from gpubt.data.store import Dataset, write_json_atomic, write_table_atomic
    from gpubt.analysis.thresholds import block_features, load_threshold
    from gpubt.analysis.validate import load_labels

    sc = cfg.sweep
    if not sc.run_dir:
        raise ValueError("gpubt sweep needs sweep.run_dir=<a results folder of gpubt run>")
    run_dir = Path(sc.run_dir)
    if not (run_dir / "summary.json").is_file():
        raise schema.SchemaError(f"{run_dir}: no summary.json (is it a results folder of gpubt run?)")
    summary = json.loads((run_dir / "summary.json").read_text())
    run = summary["run"]
    if run.get("threshold", {}).get("kind", "static") != "static":
        raise ValueError(f"{run_dir} used a {run['threshold']['kind']} threshold: a sweep needs a static-threshold "
                         "run (its trades are everything selected at the screening floor)")
    first, last = int(run["first_block"]), int(run["last_block"])
    inp = SweepInput.from_trades(pq.read_table(run_dir / "trades.parquet"), first, last, int(run["min_profit_wei"]))

    def features():
        ds = Dataset(run["dataset"])
        blocks = ds.read("blocks")
        b = blocks.column("block_number").to_numpy()
        blocks = blocks.filter(pa.array((b >= first) & (b <= last)))
        return block_features(blocks, ds.read("prices"), load_labels(ds, first, last),
                              priority_fee_wei=int(run["gas_model"]["priority_fee_wei"]))

    search, k, seed = str(sc.search), int(sc.k), int(sc.seed)
    if sc.grid == "static":
        grid = static_grid(inp.n_blocks, list(sc.min_profit_eth), search, k, seed)
    elif sc.grid == "linear":
        grid = linear_grid(features(), list(sc.min_profit_eth), {n: list(v) for n, v in sc.weights_eth.items()},
                           search, k, seed)
    elif sc.grid == "dynamic":
        if not sc.get("model_path"):
            raise ValueError("sweep.grid=dynamic needs sweep.model_path=<thresholds.json of a dynamic run>")
        model = load_threshold(sc.model_path)
        if not isinstance(model, DynamicThreshold):
            raise ValueError(f"{sc.model_path}: not a dynamic threshold model")
        grid = dynamic_grid(model, features(), list(sc.margin_eth), list(sc.risk_scale), search, k, seed)
    else:
        raise ValueError(f"sweep.grid = {sc.grid!r} (static, linear or dynamic)")
    t0 = time.perf_counter()
    result = sweep(inp, grid, str(sc.objective))
    seconds = time.perf_counter() - t0
    write_table_atomic(result.table, run_dir / "sweep.parquet")
    write_json_atomic({"objective": result.objective, "best": result.best, "configs": len(grid),
                       "grid": str(sc.grid), "search": search, "seconds": seconds}, run_dir / "sweep_best.json")
    print(f"gpubt sweep: {len(grid):,} configs over {inp.block_idx.shape[0]:,} trades in {seconds:.3f} s")
    print(format_best(result))
    return run_dir
