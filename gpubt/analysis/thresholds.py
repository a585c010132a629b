"""When to act on a screened opportunity: a static minimum profit, or a dynamic one learned from history.

Features, the dynamic model and its outcome label: docs/strategies.md#thresholds-when-to-act.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema

FEATURES = ("gas_pct", "eth_vol", "congestion", "competition", "success_rate")
BLOCKS_PER_YEAR = 365.25 * 86400 / 12
SUCCESS_PRIOR, SUCCESS_PRIOR_WEIGHT = 0.5, 5.0
MIN_PROBABILITY = 1e-3   # caps the dynamic threshold at 1000 × (margin + C_b)


def require_jax():
    """Import JAX or explain how to install it (the dynamic threshold's fitting needs it; applying does not)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("thresholds.kind=dynamic fits its model with JAX, which is not installed: "
                          "pip install -e '.[jax]' (or use thresholds.kind=static)") from exc
    return jax, jnp


@dataclass(frozen=True)
class FeatureWindows:
    gas_window: int = 100
    vol_window: int = 300
    competition_window: int = 100
    success_window: int = 200


@dataclass(frozen=True)
class BlockFeatures:
    """Per-block features of blocks first_block .. first_block + n − 1."""

    first_block: int
    names: tuple
    values: np.ndarray          # float64 (n_blocks, n_features), raw (not standardized)
    gas_price_wei: np.ndarray   # float64 (n_blocks): base fee + priority fee

    @property
    def n_blocks(self) -> int:
        return int(self.values.shape[0])

    def index(self, block_number) -> np.ndarray:
        """Row of each block number (raises when a block is outside the features' range)."""
        idx = np.asarray(block_number, np.int64) - self.first_block
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_blocks):
            raise IndexError(f"blocks {int(np.min(block_number))}..{int(np.max(block_number))} are outside the "
                             f"features' {self.first_block}..{self.first_block + self.n_blocks - 1}")
        return idx


def _trailing_sum(per_block: np.ndarray, window: int, include_current: bool) -> np.ndarray:
    """Σ per_block over the last `window` blocks, ending at b (include_current) or at b − 1."""
    c = np.concatenate([[0.0], np.cumsum(per_block, dtype=np.float64)])
    n = len(per_block)
    end = np.arange(n) + (1 if include_current else 0)
    start = np.maximum(end - window, 0)
    return c[end] - c[start]


def _percentile_rank(values: np.ndarray, window: int, chunk: int = 1 << 15) -> np.ndarray:
    """Fraction of the last `window` values (current included; the first blocks use what exists) <= current."""
    n = len(values)
    out = np.empty(n, np.float64)
    padded = np.concatenate([np.full(window - 1, np.nan), values.astype(np.float64)])
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    for lo in range(0, n, chunk):
        w = view[lo:lo + chunk]
        cur = values[lo:lo + chunk, None]
        valid = ~np.isnan(w)
        out[lo:lo + chunk] = (valid & (w <= cur)).sum(axis=1) / valid.sum(axis=1)
    return out


def block_features(blocks: pa.Table, prices: pa.Table, labels: pa.Table | None = None, outcomes=None,
                   windows: FeatureWindows = FeatureWindows(), priority_fee_wei: int = 10**9, eth_token: int = 0,
                   competition: float | None = None, competing_kind: str = "arbitrage") -> BlockFeatures:
    """The FEATURES of every block of `blocks` (consecutive block numbers).

    outcomes: (block_number, success) arrays of our past trades, for success_rate (None: the prior 0.5).
    competition: a constant competition intensity instead of counting `labels` of `competing_kind`.
    """
    block_number = blocks.column("block_number").to_numpy().astype(np.int64)
    n = len(block_number)
    if n == 0:
        raise ValueError("block_features: the blocks table is empty")
    first = int(block_number[0])
    if not np.array_equal(block_number, first + np.arange(n)):
        raise schema.SchemaError("block_features: blocks must be consecutive block numbers")
    base_fee = blocks.column("base_fee_wei").to_numpy().astype(np.float64)
    gas_pct = _percentile_rank(base_fee, windows.gas_window)

    # realized volatility from the reference ETH price samples
    pb = prices.column("block_number").to_numpy()
    sel = (prices.column("token_id").to_numpy() == eth_token) & (pb >= first) & (pb < first + n)
    sample_block = pb[sel] - first
    sample_price = prices.column("price_usd").to_numpy()[sel]
    order = np.argsort(sample_block, kind="stable")
    sample_block, sample_price = sample_block[order], sample_price[order]
    r2 = np.zeros(n, np.float64)
    if len(sample_price) > 1:
        np.add.at(r2, sample_block[1:], np.diff(np.log(sample_price)) ** 2)
    eth_vol = np.sqrt(_trailing_sum(r2, windows.vol_window, True) / windows.vol_window * BLOCKS_PER_YEAR)

    used = blocks.column("gas_used").to_numpy().astype(np.float64)
    limit = np.maximum(blocks.column("gas_limit").to_numpy().astype(np.float64), 1.0)
    ratio = used / limit
    congestion = np.concatenate([ratio[:1], ratio[:-1]])

    if competition is not None or labels is None:
        comp = np.full(n, float(competition or 0.0))
    else:
        lb = labels.column("block_number").to_numpy()
        kinds = np.asarray(labels.column("kind").to_pylist(), dtype=object)
        keep = (kinds == competing_kind) & (lb >= first) & (lb < first + n)
        per_block = np.bincount(lb[keep] - first, minlength=n).astype(np.float64)
        comp = _trailing_sum(per_block, windows.competition_window, False) / windows.competition_window

    tries = np.zeros(n, np.float64)
    wins = np.zeros(n, np.float64)
    if outcomes is not None:
        ob, ok = np.asarray(outcomes[0], np.int64) - first, np.asarray(outcomes[1], bool)
        inside = (ob >= 0) & (ob < n)
        tries = np.bincount(ob[inside], minlength=n).astype(np.float64)
        wins = np.bincount(ob[inside], weights=ok[inside].astype(np.float64), minlength=n)
    success_rate = ((_trailing_sum(wins, windows.success_window, False) + SUCCESS_PRIOR_WEIGHT * SUCCESS_PRIOR)
                    / (_trailing_sum(tries, windows.success_window, False) + SUCCESS_PRIOR_WEIGHT))

    values = np.stack([gas_pct, eth_vol, congestion, comp, success_rate], axis=1)
    return BlockFeatures(first, FEATURES, values, base_fee + float(priority_fee_wei))


def success_labels(trades: pa.Table, labels: pa.Table, preempt_txs: int = 1,
                   competing_kind: str = "arbitrage") -> np.ndarray:
    """bool per trade: exact net profit > 0 and no labeled `competing_kind` at tx t+1..t+preempt_txs of its block
    shares a pool with it (docs/strategies.md#thresholds-when-to-act)."""
    from gpubt.analysis.validate import candidate_pairs, pools_matrix

    net_positive = np.asarray(pc.greater(trades.column("net_profit_wei"), 0).to_numpy(zero_copy_only=False), bool)
    kinds = np.asarray(labels.column("kind").to_pylist(), dtype=object)
    comp = labels.filter(pa.array(kinds == competing_kind)) if labels.num_rows else labels
    i, _, _, _ = candidate_pairs(trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(),
                                 pools_matrix(trades.column("pools")), comp.column("block_number").to_numpy(),
                                 comp.column("tx_index").to_numpy(), pools_matrix(comp.column("pools")),
                                 1, preempt_txs)
    preempted = np.zeros(trades.num_rows, bool)
    preempted[i] = True
    return net_positive & ~preempted


@dataclass
class StaticThreshold:
    """Act iff screened net profit > min_profit_wei, in every block."""

    min_profit_wei: int
    kind: str = field(default="static", init=False)

    def threshold_wei(self, features: BlockFeatures, xp=np):
        return xp.full(features.n_blocks, float(self.min_profit_wei), dtype=xp.float64)

    def to_json(self) -> dict:
        return {"kind": "static", "min_profit_wei": str(int(self.min_profit_wei))}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))


@dataclass
class DynamicThreshold:
    """threshold_b = (margin + (1 − p_b) · revert_gas_units · gas_price_b) ÷ p_b, p_b = sigmoid(w · z_b + bias)."""

    weights: np.ndarray                 # (n_features,) on standardized features
    bias: float
    mean: np.ndarray                    # standardization of the fitting data
    std: np.ndarray
    feature_names: tuple = FEATURES
    margin_wei: int = 0
    revert_gas_units: int = 100_000
    windows: FeatureWindows = FeatureWindows()
    fit_info: dict = field(default_factory=dict)
    kind: str = field(default="dynamic", init=False)

    def success_probability(self, feature_values, xp=np):
        """p per row of `feature_values` (n × n_features raw features); numpy or cupy via `xp`."""
        z = (xp.asarray(feature_values) - xp.asarray(self.mean)) / xp.asarray(self.std)
        logit = z @ xp.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + xp.exp(-logit))

    def threshold_wei(self, features: BlockFeatures, xp=np):
        if tuple(features.names) != tuple(self.feature_names):
            raise ValueError(f"features {features.names} differ from the model's {self.feature_names}")
        p = xp.maximum(self.success_probability(features.values, xp), MIN_PROBABILITY)
        loss_wei = float(self.revert_gas_units) * xp.asarray(features.gas_price_wei)
        return (float(self.margin_wei) + (1.0 - p) * loss_wei) / p

    @classmethod
    def fit(cls, feature_values: np.ndarray, success: np.ndarray, steps: int = 400, learning_rate: float = 0.05,
            l2: float = 1e-3, feature_names: tuple = FEATURES, **model_kwargs) -> "DynamicThreshold":
        """Fit w, bias by full-batch Adam on mean BCE + l2·|w|² over samples (n × n_features raw, n bools)."""
        jax, jnp = require_jax()
        x = np.asarray(feature_values, np.float64)
        y = np.asarray(success, np.float64)
        if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
            raise ValueError(f"fit: feature_values {x.shape} and success {y.shape} must be (n, f) and (n,), n > 0")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 0, std, 1.0)   # a constant feature gets weight ~0 through the L2 term
        z = jnp.asarray((x - mean) / std, jnp.float32)
        yj = jnp.asarray(y, jnp.float32)

        def loss(params):
            logit = z @ params["w"] + params["b"]
            bce = jnp.mean(jnp.logaddexp(0.0, logit) - yj * logit)   # −log-likelihood, stable form
            return bce + l2 * jnp.sum(params["w"] ** 2)

        params = {"w": jnp.zeros(x.shape[1], jnp.float32), "b": jnp.asarray(0.0, jnp.float32)}
        value_and_grad = jax.jit(jax.value_and_grad(loss))
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = jax.tree_util.tree_map(jnp.zeros_like, params)
        v = jax.tree_util.tree_map(jnp.zeros_like, params)

        @jax.jit
        def step(params, m, v, t):
            value, grads = value_and_grad(params)
            m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
            v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
            params = jax.tree_util.tree_map(
                lambda p, a, s: p - learning_rate * (a / (1 - b1 ** t)) / (jnp.sqrt(s / (1 - b2 ** t)) + eps),
                params, m, v)
            return params, m, v, value

        history = []
        for t in range(1, steps + 1):
            params, m, v, value = step(params, m, v, float(t))
            if t == 1 or t % 50 == 0:
                history.append(float(value))
        final = float(loss(params))
        info = {"samples": int(len(y)), "success_rate": float(y.mean()), "steps": steps,
                "learning_rate": learning_rate, "l2": l2, "loss_initial": history[0], "loss_final": final,
                "loss_history": history}
        return cls(weights=np.asarray(params["w"], np.float64), bias=float(params["b"]), mean=mean, std=std,
                   feature_names=tuple(feature_names), fit_info=info, **model_kwargs)

    def to_json(self) -> dict:
        return {"kind": "dynamic", "feature_names": list(self.feature_names),
                "weights": self.weights.tolist(), "bias": self.bias, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "margin_wei": str(int(self.margin_wei)),
                "revert_gas_units": int(self.revert_gas_units), "windows": asdict(self.windows),
                "fit": self.fit_info}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))


def load_threshold(path) -> StaticThreshold | DynamicThreshold:
    """A threshold saved by `save` (thresholds.json in a results folder)."""
    obj = json.loads(Path(path).read_text())
    if obj.get("kind") == "static":
        return StaticThreshold(int(obj["min_profit_wei"]))
    if obj.get("kind") == "dynamic":
        return DynamicThreshold(weights=np.asarray(obj["weights"], np.float64), bias=float(obj["bias"]),
                                mean=np.asarray(obj["mean"], np.float64), std=np.asarray(obj["std"], np.float64),
                                feature_names=tuple(obj["feature_names"]), margin_wei=int(obj["margin_wei"]),
                                revert_gas_units=int(obj["revert_gas_units"]),
                                windows=FeatureWindows(**obj["windows"]), fit_info=obj.get("fit", {}))
    raise ValueError(f"{path}: kind = {obj.get('kind')!r} (expected static or dynamic)")


def fit_from_run(trades: pa.Table, labels: pa.Table, blocks: pa.Table, prices: pa.Table, margin_wei: int = 0,
                 revert_gas_units: int = 100_000, preempt_txs: int = 1, priority_fee_wei: int = 10**9,
                 windows: FeatureWindows = FeatureWindows(), competition: float | None = None, **fit_kwargs):
    """Label a run's trades (`success_labels`), compute the block features, fit a DynamicThreshold.

    Returns (model, features, success). Fit on one block range and apply to a later one to avoid in-sample
    selection (the features are trailing, but the weights are fitted on the whole range given).
    """
    success = success_labels(trades, labels, preempt_txs)
    tb = trades.column("block_number").to_numpy()
    features = block_features(blocks, prices, labels, outcomes=(tb, success), windows=windows,
                              priority_fee_wei=priority_fee_wei, competition=competition)
    x = features.values[features.index(tb)]
    model = DynamicThreshold.fit(x, success, margin_wei=margin_wei, revert_gas_units=revert_gas_units,
                                 windows=windows, **fit_kwargs)
    model.fit_info["preempt_txs"] = preempt_txs
    return model, features, success


def apply_config(cfg, trades: pa.Table, labels: pa.Table, blocks: pa.Table, read_prices,
                 run_min_profit_wei: int, priority_fee_wei: int):
    """The `thresholds` config group applied to a run's trades (selected at the screening floor).

    static: nothing to filter. dynamic: fit the model on cfg.fit's block range (default: the first half of the
    run, so the second half is out of sample) or load cfg.model_path, then keep the trades whose screened net
    profit beats max(floor, threshold of their block) — exact, by docs/strategies.md#threshold-sweeps.
    `read_prices()` returns the PRICES of the run's blocks: called only by the dynamic model (the
    static one never reads them). Returns (trades, threshold model, info dict for the summary).
    """
    if cfg.kind == "static":
        return trades, StaticThreshold(run_min_profit_wei), {"kind": "static", "min_profit_wei": str(run_min_profit_wei)}
    if cfg.kind != "dynamic":
        raise ValueError(f"thresholds.kind = {cfg.kind!r} (static or dynamic)")
    windows = FeatureWindows(**{k: int(v) for k, v in dict(cfg.windows).items()})
    first = int(blocks.column("block_number")[0].as_py())
    last = int(blocks.column("block_number")[-1].as_py())
    competition = None if cfg.competition is None else float(cfg.competition)
    prices = read_prices()
    info = {"kind": "dynamic", "floor_wei": str(run_min_profit_wei)}
    if cfg.model_path:
        model = load_threshold(cfg.model_path)
        info["model_path"] = str(cfg.model_path)
    else:
        fit_first = first if cfg.fit.first_block is None else int(cfg.fit.first_block)
        fit_last = (first + last) // 2 if cfg.fit.last_block is None else int(cfg.fit.last_block)
        tb = trades.column("block_number").to_numpy()
        in_fit = pa.array((tb >= fit_first) & (tb <= fit_last))
        fit_blocks = blocks.filter(pa.array((blocks.column("block_number").to_numpy() >= fit_first)
                                            & (blocks.column("block_number").to_numpy() <= fit_last)))
        model, _, _ = fit_from_run(trades.filter(in_fit), labels, fit_blocks, prices,
                                   margin_wei=int(round(float(cfg.margin_eth) * 1e18)),
                                   revert_gas_units=int(cfg.revert_gas_units), preempt_txs=int(cfg.preempt_txs),
                                   priority_fee_wei=priority_fee_wei, windows=windows, competition=competition,
                                   steps=int(cfg.fit.steps), learning_rate=float(cfg.fit.learning_rate),
                                   l2=float(cfg.fit.l2))
        info["fit_blocks"] = [fit_first, fit_last]
        info["out_of_sample_from_block"] = fit_last + 1
    success = success_labels(trades, labels, int(cfg.preempt_txs))
    features = block_features(blocks, prices, labels, outcomes=(trades.column("block_number").to_numpy(), success),
                              windows=windows, priority_fee_wei=priority_fee_wei, competition=competition)
    threshold = np.maximum(model.threshold_wei(features), float(run_min_profit_wei))
    offset = trades.column("block_number").to_numpy() - first
    exact_net = schema.amounts_float(trades.column("net_profit_wei"))
    keep = exact_net > threshold[offset]  # trades are taken on their exact net profit (strategies/arbitrage/pricing.py)
    info.update({"trades_before": trades.num_rows, "trades_kept": int(keep.sum()),
                 "threshold_eth_median": float(np.median(threshold) / 1e18)})
    return trades.filter(pa.array(keep)), model, info
