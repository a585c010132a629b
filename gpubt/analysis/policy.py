"""Adaptive strategy selection by regime: per window of blocks, which strategies are active and how the capital
budget is split between those that need it, sandwich and JIT (`policy=`).

    landed trades (after the auction) ─► net after bid per (window, strategy): the all-on run's P&L table
      sandwich / JIT: their detail's net at every share of the budget, auctioned ─► per (window, strategy, share)
    block features (analysis/thresholds.py) at the block before each window ─► the window's context
      ─► static (as configured) | bandit (Thompson sampling, online, bandit feedback) | oracle (hindsight best)

The approximation: every policy is scored on the all-on run's trades. Switching a strategy off in a window removes
its trades there; the market is not replayed, so a trade it would have left undone does not go to a rival or to a
later point of ours (counterfactual execution would have let others take those pools). Method: docs/policy.md.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.analysis.metrics import bootstrap_ci
from gpubt.analysis.thresholds import FEATURES, FeatureWindows, block_features
from gpubt.schema import WEI_PER_ETH

POLICIES = ("static", "bandit", "oracle")
DEFAULTS = {"name": "static", "window_blocks": 50, "warmup_windows": 4, "seed": 0, "prior_var": 1.0,
            "noise_var": 1.0, "capital_eth": None, "capital_shares": (0.25, 0.5, 0.75, 1.0)}


def settings(cfg) -> dict:
    """The `policy` config group (None: DEFAULTS, for a config from before it) as plain values, checked."""
    out = {k: (cfg.get(k, v) if cfg is not None else v) for k, v in DEFAULTS.items()}
    if out["name"] not in POLICIES:
        raise ValueError(f"policy.name={out['name']!r}: one of {', '.join(POLICIES)} (policy=static|bandit|oracle)")
    try:
        shares = sorted({float(x) for x in out["capital_shares"]})
    except (TypeError, ValueError):
        shares = None
    if not shares or any(not 0.0 < x <= 1.0 for x in shares):
        raise ValueError(f"policy.capital_shares={out['capital_shares']}: a list of fractions of the capital "
                         "budget, each in (0, 1]")
    return {"name": str(out["name"]), "window_blocks": int(out["window_blocks"]),
            "warmup_windows": int(out["warmup_windows"]), "seed": int(out["seed"]),
            "prior_var": float(out["prior_var"]), "noise_var": float(out["noise_var"]),
            "capital_eth": None if out["capital_eth"] is None else float(out["capital_eth"]),
            "capital_shares": shares}


class WindowTally:
    """Chunk by chunk (`add`: trades with the auction's columns): per (window, strategy) the landed trades' count
    and exact Σ net after bid (wei), the same per share of the capital budget for the capital-bound strategies
    (`capital`: RunSetup's plan), and per attempted trade its block and success (won, net after bid > 0) for
    the success_rate feature. Memory: the tables (windows × strategies × shares) and 9 bytes per attempted trade."""

    def __init__(self, first_block: int, last_block: int, window_blocks: int, strategies, capital: dict | None = None):
        self.first_block, self.window_blocks = int(first_block), int(window_blocks)
        self.n_windows = (int(last_block) - self.first_block) // self.window_blocks + 1
        self.strategies = list(strategies)
        capital = capital or {}
        self.bound = dict(capital.get("strategies") or {})   # name -> configured capital_eth
        self.budget_eth = float(capital.get("budget_eth") or 0.0)
        self.shares = list(capital.get("shares") or []) if self.bound else []
        self.net_wei = [[0] * len(self.strategies) for _ in range(self.n_windows)]
        self.trades = np.zeros((self.n_windows, len(self.strategies)), np.int64)
        self.tier_wei = {}     # (window, strategy, share index) -> Σ net after bid (wei) of the trades landed there
        self.tier_trades = {}  # the same keys -> their count
        self.outcome_blocks, self.outcome_success = [], []

    def _index(self, strategy: str) -> int:
        if strategy not in self.strategies:
            self.strategies.append(strategy)
            self.trades = np.concatenate([self.trades, np.zeros((self.n_windows, 1), np.int64)], axis=1)
            for cells_w in self.net_wei:
                cells_w.append(0)
        return self.strategies.index(strategy)

    def add(self, trades: pa.Table, at_tiers=()) -> None:
        """`at_tiers`: per share (`shares`), (won, net after bid) per row of `trades` had its capital-bound
        strategy got that share (competition.Auctions.outcomes_at on the detail's capital_net_wei)."""
        won = trades.column("won")
        after = trades.column("net_after_bid_wei")
        blocks = trades.column("block_number").to_numpy().astype(np.int64)
        self.outcome_blocks.append(blocks)
        self.outcome_success.append(pc.and_(won, pc.greater(after, 0)).to_numpy(zero_copy_only=False).astype(bool))
        landed = trades.filter(won)
        window = (landed.column("block_number").to_numpy().astype(np.int64) - self.first_block) // self.window_blocks
        cells = pa.table({"window": window, "strategy": landed.column("strategy"),
                          "net": landed.column("net_after_bid_wei")})
        for row in cells.group_by(["window", "strategy"]).aggregate([("net", "sum"), ("net", "count")]).to_pylist():
            s = self._index(row["strategy"])
            self.net_wei[row["window"]][s] += int(row["net_sum"] or 0)
            self.trades[row["window"], s] += row["net_count"]
        if not at_tiers:
            return
        names = trades.column("strategy").to_pylist()
        window = (blocks - self.first_block) // self.window_blocks
        for i in np.flatnonzero(np.isin(names, list(self.bound))).tolist():
            s = self._index(names[i])
            for k, (won_k, after_k) in enumerate(at_tiers):
                if won_k[i]:
                    key = (int(window[i]), s, k)
                    self.tier_wei[key] = self.tier_wei.get(key, 0) + int(after_k[i])
                    self.tier_trades[key] = self.tier_trades.get(key, 0) + 1

    def pnl_eth(self) -> np.ndarray:
        """float64 (windows, strategies): Σ net after bid (ETH)."""
        return np.array(self.net_wei, np.float64).reshape(self.n_windows, len(self.strategies)) / WEI_PER_ETH

    def arms(self) -> "Arms":
        """The choices a policy has (Arms): the P&L per (window, strategy) and per share for the capital-bound."""
        pnl = self.pnl_eth()
        bound = np.array([s in self.bound for s in self.strategies], bool)
        tiers = np.repeat(pnl[:, :, None], max(len(self.shares), 1), axis=2)
        tiers[:, bound] = 0.0
        for (w, s, k), v in self.tier_wei.items():
            tiers[w, s, k] = v / WEI_PER_ETH
        static = np.array([self.bound.get(s, 0.0) / self.budget_eth if self.budget_eth else 0.0
                           for s in self.strategies])
        return Arms(pnl, tiers, bound, self.shares, static)

    def kept(self, choice: dict) -> tuple[int, int]:
        """(trades, Σ net after bid wei) that a policy's choice keeps: the landed trades of its active cells, a
        capital-bound strategy's at its share."""
        count = total = 0
        for w, s in zip(*np.nonzero(choice["active"])):
            if self.strategies[s] in self.bound and self.shares:
                k = self.shares.index(float(choice["share"][w, s]))
                count += self.tier_trades.get((w, s, k), 0)
                total += self.tier_wei.get((w, s, k), 0)
            else:
                count += int(self.trades[w, s])
                total += self.net_wei[w][s]
        return count, total

    def outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.outcome_blocks:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        return np.concatenate(self.outcome_blocks), np.concatenate(self.outcome_success)


CURVE = "capital_net_wei"   # the post-run's core has no `detail`: each trade's capital curve, taken while at hand


def with_capital_curve(trades: pa.Table) -> pa.Table:
    """`trades` (with `detail`) plus CURVE: per trade the detail's `capital_net_wei` (Strategy.with_capital_curve:
    its exact net profit wei at each share of the capital budget, null where it would not be sent), null for a
    trade without one (a flash-funded strategy's)."""
    curves = [None] * trades.num_rows
    for i, d in enumerate(trades.column("detail").to_pylist()):
        if d and CURVE in d:
            curves[i] = json.loads(d)[CURVE]
    return trades.append_column(CURVE, pa.array(curves, pa.list_(pa.string())))


def tier_outcomes(trades: pa.Table, auctions, closed_blocks, n_shares: int) -> list:
    """Per share of the capital budget: (won, net after bid wei) per row of `trades` (the auctioned core, with
    CURVE) at its curve's value there, auctioned as the run's trades are (`auctions.outcomes_at`); a row whose
    value is its reported net keeps its own outcome (the auction is keyed by the trade and its value), one
    without a curve is not sent."""
    if not n_shares or CURVE not in trades.column_names:
        return []
    curves = trades.column(CURVE).to_pylist()
    net = trades.column("net_profit_wei").to_pylist()
    won, after = trades.column("won").to_pylist(), trades.column("net_after_bid_wei").to_pylist()
    out = []
    for k in range(n_shares):
        values = [None if c is None or c[k] is None else int(c[k]) for c in curves]
        again = [i for i, (v, n) in enumerate(zip(values, net)) if v is not None and v != int(n)]
        won_k, after_k = auctions.outcomes_at(trades.take(pa.array(again, pa.int64())),
                                              [values[i] for i in again], closed_blocks)
        w, a = np.zeros(len(values), bool), [0] * len(values)
        for i, v in enumerate(values):
            if v is not None:
                w[i], a[i] = won[i], int(after[i])
        for j, i in enumerate(again):
            w[i], a[i] = won_k[j], after_k[j]
        out.append((w, a))
    return out


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


class Arms:
    """What a policy chooses from per window. A flash-funded strategy is on or off; a capital-bound one (sandwich,
    JIT: RunSetup's `capital`) is off or gets one of `shares` of the capital budget, at most the whole budget
    between them. `pnl` (windows, strategies): the run as configured (static); `tiers` (windows, strategies,
    shares): each strategy's P&L with that share (a flash-funded strategy's is its pnl at every share)."""

    def __init__(self, pnl, tiers=None, bound=None, shares=(), static_share=None):
        self.pnl = np.asarray(pnl, np.float64)
        n_windows, n_strategies = self.pnl.shape
        self.shares = np.asarray(shares, np.float64)
        self.bound = np.zeros(n_strategies, bool) if bound is None else np.asarray(bound, bool)
        if not len(self.shares):
            self.bound[:] = False
        self.tiers = (np.repeat(self.pnl[:, :, None], max(len(self.shares), 1), axis=2) if tiers is None
                      else np.asarray(tiers, np.float64))
        self.static_share = np.zeros(n_strategies) if static_share is None else np.asarray(static_share, np.float64)
        # arms: (strategy, share index), share −1 for a flash-funded strategy
        self.arms = [(s, k) for s in range(n_strategies)
                     for k in (range(len(self.shares)) if self.bound[s] else (-1,))]
        self.arm_pnl = np.stack([self.pnl[:, s] if k < 0 else self.tiers[:, s, k] for s, k in self.arms], axis=1)
        flash = [i for i, (s, k) in enumerate(self.arms) if k < 0]
        self.flash_arms = np.array(flash, np.int64)
        self.bound_strategies = np.flatnonzero(self.bound)
        # every split of the budget: per capital-bound strategy off (0) or share k (k + 1), Σ shares <= 1
        options = itertools.product(range(len(self.shares) + 1), repeat=len(self.bound_strategies))
        used = np.concatenate([[0.0], self.shares])
        splits = [c for c in options if used[list(c)].sum() <= 1.0 + 1e-9]
        self.splits = np.array(splits, np.int64).reshape(len(splits), len(self.bound_strategies))
        first_arm = {s: i for i, (s, k) in reversed(list(enumerate(self.arms)))}
        self.split_arms = np.where(self.splits > 0, np.array([first_arm[s] for s in self.bound_strategies],
                                                               np.int64) + self.splits - 1, -1)
        fair = self.shares[self.shares <= 1.0 / max(len(self.bound_strategies), 1) + 1e-9]
        self.warm_level = int(np.flatnonzero(self.shares == fair.max())[0]) if len(fair) else -1

    def decide(self, value: np.ndarray) -> np.ndarray:
        """bool per arm: the flash-funded arms worth > 0, and the split of the budget whose arms are worth the
        most in all (off: 0; the first best split, off first on a tie)."""
        on = np.zeros(len(self.arms), bool)
        on[self.flash_arms] = value[self.flash_arms] > 0
        if len(self.bound_strategies):
            worth = np.where(self.split_arms >= 0, value[np.maximum(self.split_arms, 0)], 0.0).sum(axis=1)
            chosen = self.split_arms[int(np.argmax(worth))]
            on[chosen[chosen >= 0]] = True
        return on

    def warm(self) -> np.ndarray:
        """bool per arm of a warm-up window: every strategy on, the capital-bound ones at an equal split."""
        return np.array([k < 0 or k == self.warm_level for s, k in self.arms])

    def choice(self, on: np.ndarray) -> dict:
        """A policy's choices from bool (windows, arms): per (window, strategy) `active`, `share` of the budget
        and `earned` (its P&L there, ETH)."""
        n_windows, n_strategies = self.pnl.shape
        active, share, earned = (np.zeros((n_windows, n_strategies), bool), np.zeros((n_windows, n_strategies)),
                                 np.zeros((n_windows, n_strategies)))
        for i, (s, k) in enumerate(self.arms):
            active[:, s] |= on[:, i]
            earned[:, s] += np.where(on[:, i], self.arm_pnl[:, i], 0.0)
            if k >= 0:
                share[:, s] += np.where(on[:, i], self.shares[k], 0.0)
        return {"active": active, "share": share, "earned": earned}

    def static(self) -> dict:
        n_windows = len(self.pnl)
        return {"active": np.ones(self.pnl.shape, bool), "share": np.tile(self.static_share, (n_windows, 1)),
                "earned": self.pnl.copy()}


def bandit_choices(arms: Arms, contexts: np.ndarray, seed: int = 0, warmup_windows: int = 0,
                   prior_var: float = 1.0, noise_var: float = 1.0) -> np.ndarray:
    """bool (windows, arms): contextual Thompson sampling, one Bayesian linear regression per arm (a flash-funded
    strategy, or a capital-bound strategy at one share of the budget).

    Window w's P&L of arm a is modelled as θ_a · [1, z_w] + ε, ε ~ N(0, σ_a²), z_w the context standardized
    by the contexts seen so far (TrailingScaler; past windows re-expressed in the same scaling), the P&L in units
    of a's RMS observed window P&L so far (so one prior fits every strategy's scale). Conjugate normal-inverse-gamma
    prior: σ_a² ~ IG(1, noise_var), θ_a | σ_a² ~ N(0, σ_a² · prior_var · I), so the noise is learned too. Each
    window (σ_a², θ_a) is drawn from the posterior and `arms.decide` chooses by the drawn θ_a · [1, z_w]: a
    flash-funded strategy is on when it is > 0, the capital goes to the split worth the most. An arm's realized
    P&L updates its posterior only when it was chosen (bandit feedback). The first `warmup_windows` are all on
    (`arms.warm`). Window w reads P&L before w and contexts[:w + 1] only; the draws come from one seeded stream,
    the same whatever is chosen."""
    pnl = arms.arm_pnl
    raw = np.asarray(contexts, np.float64)
    n_windows, n_arms = pnl.shape
    known = ~np.isnan(raw).any(axis=1)   # a NaN context (the first window) decides on the prior's neutral z = 0
    d = raw.shape[1] + 1
    scaler = TrailingScaler(raw.shape[1])
    moments = np.zeros((n_arms, d, d))   # Σ r rᵀ, r = [1, x] raw, over a's windows chosen
    r_pnl = np.zeros((n_arms, d))        # Σ r · pnl (ETH)
    square, seen = np.zeros(n_arms), np.zeros(n_arms)   # Σ pnl², windows chosen
    a0, b0 = 1.0, float(noise_var)
    rng = np.random.default_rng(seed)
    chosen = np.zeros((n_windows, n_arms), bool)
    for w in range(n_windows):
        eps, gamma = rng.standard_normal((n_arms, d)), rng.standard_gamma(a0 + seen / 2)
        r = np.concatenate([[1.0], raw[w] if known[w] else np.zeros(d - 1)])
        if known[w]:
            scaler.add(raw[w])
        if w < warmup_windows:
            chosen[w] = arms.warm()
        else:
            t = scaler.matrix()
            z = t @ r if known[w] else np.eye(d)[0]
            value = np.zeros(n_arms)
            for a in range(n_arms):
                scale = np.sqrt(square[a] / seen[a]) if seen[a] and square[a] > 0 else 1.0
                precision = np.eye(d) / prior_var + t @ moments[a] @ t.T
                cov = np.linalg.inv(precision)
                mean = cov @ (t @ r_pnl[a]) / scale
                b = b0 + 0.5 * max(square[a] / scale ** 2 - mean @ precision @ mean, 0.0)
                sigma = np.sqrt(b / gamma[a])   # σ² ~ IG(a, b): b / Gamma(a, 1)
                theta = mean + sigma * (np.linalg.cholesky((cov + cov.T) / 2) @ eps[a])
                value[a] = (theta @ z) * scale
            chosen[w] = arms.decide(value)
        on = chosen[w] & known[w]
        moments[on] += np.outer(r, r)
        r_pnl[on] += pnl[w, on, None] * r
        square[on] += pnl[w, on] ** 2
        seen[on] += 1
    return chosen


def choices(arms: Arms, contexts: np.ndarray, settings_: dict) -> dict:
    """{policy: Arms.choice dict} for every POLICIES: static (the run as configured), the bandit, and the oracle
    (each window, in hindsight, the choice worth the most: `arms.decide` on the realized P&L)."""
    return {"static": arms.static(),
            "bandit": arms.choice(bandit_choices(arms, contexts, settings_["seed"], settings_["warmup_windows"],
                                                 settings_["prior_var"], settings_["noise_var"])),
            "oracle": arms.choice(np.array([arms.decide(row) for row in arms.arm_pnl]).reshape(arms.arm_pnl.shape))}


def evaluate(chosen: dict, bootstrap_samples: int = 1000, seed: int = 0) -> dict:
    """Per policy: total P&L (ETH) with its 95 % block-bootstrap interval (windows resampled with replacement;
    the same resamples for every policy, so intervals and regrets are paired), regret vs the oracle with its
    interval, and per window its P&L, cumulative P&L and cumulative regret."""
    per_window = {name: c["earned"].sum(axis=1) for name, c in chosen.items()}
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
    """summary.json `policy`: the three policies' figures, the choices over time (which strategies, and each
    capital-bound one's share of the budget), and for a bandit or oracle run the trades its choices keep."""
    arms = tally.arms()
    chosen = choices(arms, contexts, settings_)
    figures = evaluate(chosen, bootstrap_samples, seed)
    names = tally.strategies
    bound = [i for i, s in enumerate(names) if arms.bound[i]]
    for name, c in chosen.items():
        figures[name]["active_fraction"] = {s: float(c["active"][:, i].mean()) for i, s in enumerate(names)}
        if bound:
            figures[name]["mean_capital_share"] = {names[i]: float(c["share"][:, i].mean()) for i in bound}
    out = {**settings_, "features": list(FEATURES), "windows": tally.n_windows, "strategies": names,
           "window_first_block": [tally.first_block + w * tally.window_blocks for w in range(tally.n_windows)],
           "window_pnl_eth": {s: arms.pnl[:, i] for i, s in enumerate(names)},
           "policies": figures,
           # '1' where the strategy is on in that window (static: every window)
           "choices": {name: {s: "".join("1" if v else "0" for v in chosen[name]["active"][:, i])
                              for i, s in enumerate(names)} for name in ("bandit", "oracle")},
           "approximation": "each policy is scored on the all-on run's landed trades: a strategy switched off in a "
                            "window loses its trades there, the market is not replayed (docs/policy.md)"}
    if bound:
        out["capital"] = {"budget_eth": tally.budget_eth, "shares": tally.shares,
                          "configured_eth": {names[i]: tally.bound[names[i]] for i in bound},
                          "window_pnl_eth": {names[i]: {f"{x:g}": arms.tiers[:, i, k] for k, x in
                                                        enumerate(tally.shares)} for i in bound},
                          # per window, the share of the budget each policy gave (0: off)
                          "share": {name: {names[i]: chosen[name]["share"][:, i] for i in bound}
                                    for name in POLICIES}}
    if settings_["name"] != "static":
        count, kept_wei = tally.kept(chosen[settings_["name"]])
        out["kept"] = {"trades": count, "of_trades": int(tally.trades.sum()),
                       "net_after_bid_wei": str(kept_wei), "net_after_bid_eth": kept_wei / WEI_PER_ETH}
    return out
