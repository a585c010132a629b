"""Adaptive strategy selection by regime: per window of blocks, which strategies are active (`policy=`).

    landed trades (after the auction) ─► net after bid per (window, strategy): the all-on run's P&L table
    block features (analysis/thresholds.py) at the block before each window ─► the window's context
      ─► static (all on) | bandit (Thompson sampling, online, bandit feedback) | oracle (hindsight: P&L > 0)

The approximation: every policy is scored on the all-on run's trades. Switching a strategy off in a window removes
its trades there; the market is not replayed, so a trade it would have left undone does not go to a rival or to a
later point of ours (counterfactual execution would have let others take those pools). Method: docs/policy.md.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.analysis.metrics import bootstrap_ci
from gpubt.analysis.thresholds import FEATURES, FeatureWindows, block_features
from gpubt.schema import WEI_PER_ETH

POLICIES = ("static", "bandit", "oracle")
DEFAULTS = {"name": "static", "window_blocks": 50, "warmup_windows": 4, "seed": 0, "prior_var": 1.0,
            "noise_var": 1.0}


def settings(cfg) -> dict:
    """The `policy` config group (None: DEFAULTS, for a config from before it) as plain values, checked."""
    out = {k: (cfg.get(k, v) if cfg is not None else v) for k, v in DEFAULTS.items()}
    if out["name"] not in POLICIES:
        raise ValueError(f"policy.name={out['name']!r}: one of {', '.join(POLICIES)} (policy=static|bandit|oracle)")
    return {"name": str(out["name"]), "window_blocks": int(out["window_blocks"]),
            "warmup_windows": int(out["warmup_windows"]), "seed": int(out["seed"]),
            "prior_var": float(out["prior_var"]), "noise_var": float(out["noise_var"])}


class WindowTally:
    """Chunk by chunk (`add`: trades with the auction's columns): per (window, strategy) the landed trades' count
    and exact Σ net after bid (wei), and per attempted trade its block and success (won, net after bid > 0) for
    the success_rate feature. Memory: the table (windows × strategies) and 9 bytes per attempted trade."""

    def __init__(self, first_block: int, last_block: int, window_blocks: int, strategies):
        self.first_block, self.window_blocks = int(first_block), int(window_blocks)
        self.n_windows = (int(last_block) - self.first_block) // self.window_blocks + 1
        self.strategies = list(strategies)
        self.net_wei = [[0] * len(self.strategies) for _ in range(self.n_windows)]
        self.trades = np.zeros((self.n_windows, len(self.strategies)), np.int64)
        self.outcome_blocks, self.outcome_success = [], []

    def add(self, trades: pa.Table) -> None:
        won = trades.column("won")
        after = trades.column("net_after_bid_wei")
        self.outcome_blocks.append(trades.column("block_number").to_numpy().astype(np.int64))
        self.outcome_success.append(pc.and_(won, pc.greater(after, 0)).to_numpy(zero_copy_only=False).astype(bool))
        landed = trades.filter(won)
        window = (landed.column("block_number").to_numpy().astype(np.int64) - self.first_block) // self.window_blocks
        cells = pa.table({"window": window, "strategy": landed.column("strategy"),
                          "net": landed.column("net_after_bid_wei")})
        for row in cells.group_by(["window", "strategy"]).aggregate([("net", "sum"), ("net", "count")]).to_pylist():
            if row["strategy"] not in self.strategies:
                self.strategies.append(row["strategy"])
                self.trades = np.concatenate([self.trades, np.zeros((self.n_windows, 1), np.int64)], axis=1)
                for cells_w in self.net_wei:
                    cells_w.append(0)
            s = self.strategies.index(row["strategy"])
            self.net_wei[row["window"]][s] += int(row["net_sum"] or 0)
            self.trades[row["window"], s] += row["net_count"]

    def pnl_eth(self) -> np.ndarray:
        """float64 (windows, strategies): Σ net after bid (ETH)."""
        return np.array(self.net_wei, np.float64).reshape(self.n_windows, len(self.strategies)) / WEI_PER_ETH

    def outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.outcome_blocks:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        return np.concatenate(self.outcome_blocks), np.concatenate(self.outcome_success)


def window_contexts(blocks: pa.Table, prices: pa.Table, labels: pa.Table | None, outcomes, window_blocks: int,
                    n_windows: int, windows: FeatureWindows = FeatureWindows(), priority_fee_wei: int = 10**9
                    ) -> np.ndarray:
    """float64 (windows, FEATURES): each window's features at the block before its first block (trailing only:
    eth_vol counts its own block's return, so the window's first block must not be the row read). The first
    window has no block before it in the run: NaN (the bandit takes it as z = 0)."""
    features = block_features(blocks, prices, labels, outcomes=outcomes, windows=windows,
                              priority_fee_wei=priority_fee_wei)
    out = np.full((n_windows, len(FEATURES)), np.nan)
    before = np.arange(1, n_windows) * window_blocks - 1  # row of block (window's first block − 1)
    out[1:] = features.values[before]
    return out


class TrailingScaler:
    """Standardization of the contexts by the mean and std of those seen so far (window w: rows 0..w, all of them
    known before window w starts). `matrix()` maps a raw row [1, x] to [1, z]: an affine map, so a posterior kept
    in raw moments is re-expressed in today's standardization (a constant feature, or a NaN row, gives z = 0)."""

    def __init__(self, n_features: int):
        self.total, self.squares, self.n = np.zeros(n_features), np.zeros(n_features), 0

    def add(self, row: np.ndarray) -> None:
        self.total += row
        self.squares += row ** 2
        self.n += 1

    def matrix(self) -> np.ndarray:
        f = len(self.total)
        mean = self.total / max(self.n, 1)
        std = np.sqrt(np.maximum(self.squares / max(self.n, 1) - mean ** 2, 0.0))
        # relative floor: a feature constant so far (the sums leave round-off) is not blown up into noise
        usable = std > 1e-9 * np.maximum(np.abs(mean), 1e-12)
        inv = np.where(usable, 1.0 / np.where(usable, std, 1.0), 0.0)
        out = np.zeros((f + 1, f + 1))
        out[0, 0] = 1.0
        out[1:, 0] = -inv * mean
        out[1:, 1:] = np.diag(inv)
        return out


def bandit_choices(pnl: np.ndarray, contexts: np.ndarray, seed: int = 0, warmup_windows: int = 0,
                   prior_var: float = 1.0, noise_var: float = 1.0) -> np.ndarray:
    """bool (windows, strategies): contextual Thompson sampling, one Bayesian linear regression per strategy.

    Window w's P&L of strategy s is modelled as θ_s · [1, z_w] + ε, ε ~ N(0, σ_s²), z_w the context standardized
    by the contexts seen so far (TrailingScaler; past windows re-expressed in the same scaling), the P&L in units
    of s's RMS observed window P&L so far (so one prior fits every strategy's scale). Conjugate normal-inverse-gamma
    prior: σ_s² ~ IG(1, noise_var), θ_s | σ_s² ~ N(0, σ_s² · prior_var · I), so the noise is learned too. Each
    window (σ_s², θ_s) is drawn from the posterior and s is on when θ_s · [1, z_w] > 0; s's realized P&L updates
    its posterior only when s was on (bandit feedback). The first `warmup_windows` are all on. Window w reads
    pnl[:w] and contexts[:w + 1] only; the draws come from one seeded stream, the same whatever is chosen."""
    pnl = np.asarray(pnl, np.float64)
    raw = np.asarray(contexts, np.float64)
    n_windows, n_strategies = pnl.shape
    known = ~np.isnan(raw).any(axis=1)   # a NaN context (the first window) decides on the prior's neutral z = 0
    d = raw.shape[1] + 1
    scaler = TrailingScaler(raw.shape[1])
    moments = np.zeros((n_strategies, d, d))   # Σ r rᵀ, r = [1, x] raw, over s's windows on
    r_pnl = np.zeros((n_strategies, d))        # Σ r · pnl (ETH)
    square, seen = np.zeros(n_strategies), np.zeros(n_strategies)   # Σ pnl², windows on
    a0, b0 = 1.0, float(noise_var)
    rng = np.random.default_rng(seed)
    active = np.zeros((n_windows, n_strategies), bool)
    for w in range(n_windows):
        eps, gamma = rng.standard_normal((n_strategies, d)), rng.standard_gamma(a0 + seen / 2)
        r = np.concatenate([[1.0], raw[w] if known[w] else np.zeros(d - 1)])
        if known[w]:
            scaler.add(raw[w])
        t = scaler.matrix()
        z = t @ r if known[w] else np.eye(d)[0]
        for s in range(n_strategies if w >= warmup_windows else 0):
            scale = np.sqrt(square[s] / seen[s]) if seen[s] and square[s] > 0 else 1.0
            precision = np.eye(d) / prior_var + t @ moments[s] @ t.T
            cov = np.linalg.inv(precision)
            mean = cov @ (t @ r_pnl[s]) / scale
            b = b0 + 0.5 * max(square[s] / scale ** 2 - mean @ precision @ mean, 0.0)
            sigma = np.sqrt(b / gamma[s])   # σ² ~ IG(a, b): b / Gamma(a, 1)
            theta = mean + sigma * (np.linalg.cholesky((cov + cov.T) / 2) @ eps[s])
            active[w, s] = theta @ z > 0
        if w < warmup_windows:
            active[w] = True
        on = active[w] & known[w]
        moments[on] += np.outer(r, r)
        r_pnl[on] += pnl[w, on, None] * r
        square[on] += pnl[w, on] ** 2
        seen[on] += 1
    return active


def choices(pnl: np.ndarray, contexts: np.ndarray, settings_: dict) -> dict:
    """{policy: bool (windows, strategies)} for every POLICIES."""
    pnl = np.asarray(pnl, np.float64)
    return {"static": np.ones(pnl.shape, bool),
            "bandit": bandit_choices(pnl, contexts, settings_["seed"], settings_["warmup_windows"],
                                     settings_["prior_var"], settings_["noise_var"]),
            "oracle": pnl > 0}


def evaluate(pnl: np.ndarray, chosen: dict, bootstrap_samples: int = 1000, seed: int = 0) -> dict:
    """Per policy: total P&L (ETH) with its 95 % block-bootstrap interval (windows resampled with replacement;
    the same resamples for every policy, so intervals and regrets are paired), regret vs the oracle with its
    interval, and per window its P&L, cumulative P&L and cumulative regret."""
    pnl = np.asarray(pnl, np.float64)
    per_window = {name: (pnl * on).sum(axis=1) for name, on in chosen.items()}
    oracle = per_window["oracle"]

    def ci(values):
        return bootstrap_ci(values, lambda rows: rows.sum(axis=1), bootstrap_samples, np.random.default_rng(seed))

    out = {}
    for name, values in per_window.items():
        regret = oracle - values
        out[name] = {"pnl_eth": float(values.sum()), "pnl_ci95_eth": ci(values),
                     "regret_eth": float(regret.sum()), "regret_ci95_eth": ci(regret),
                     "window_pnl_eth": values, "cumulative_pnl_eth": np.cumsum(values),
                     "cumulative_regret_eth": np.cumsum(regret)}
    return out


def policy_summary(tally: WindowTally, contexts: np.ndarray, settings_: dict, bootstrap_samples: int = 1000,
                   seed: int = 0) -> dict:
    """summary.json `policy`: the three policies' figures, the choices over time, and for a bandit or oracle run
    the trades its choices keep (count, Σ net after bid)."""
    pnl = tally.pnl_eth()
    chosen = choices(pnl, contexts, settings_)
    figures = evaluate(pnl, chosen, bootstrap_samples, seed)
    names = tally.strategies
    for name, on in chosen.items():
        figures[name]["active_fraction"] = {s: float(on[:, i].mean()) for i, s in enumerate(names)}
    out = {**settings_, "features": list(FEATURES), "windows": tally.n_windows, "strategies": names,
           "window_first_block": [tally.first_block + w * tally.window_blocks for w in range(tally.n_windows)],
           "window_pnl_eth": {s: pnl[:, i] for i, s in enumerate(names)},
           "policies": figures,
           # '1' where the strategy is on in that window (static: every window)
           "choices": {name: {s: "".join("1" if v else "0" for v in chosen[name][:, i]) for i, s in enumerate(names)}
                       for name in ("bandit", "oracle")},
           "approximation": "each policy is scored on the all-on run's landed trades: a strategy switched off in a "
                            "window loses its trades there, the market is not replayed (docs/policy.md)"}
    if settings_["name"] != "static":
        on = chosen[settings_["name"]]
        kept_wei = sum(v for row, mask in zip(tally.net_wei, on) for v, m in zip(row, mask) if m)
        out["kept"] = {"trades": int(tally.trades[on].sum()), "of_trades": int(tally.trades.sum()),
                       "net_after_bid_wei": str(kept_wei), "net_after_bid_eth": kept_wei / WEI_PER_ETH}
    return out
