"""How well the auction's survival prediction is calibrated: each trade's `win_probability` (wins ÷ S Monte Carlo
scenarios, gpubt/analysis/competition.py) against its realized outcome `won` (one more draw).

    brier = mean over the trades of (p − won)²
    ece   = Σ_b n_b / n · |mean p in bin b − mean won in bin b|,  bins of equal width on [0, 1]:
            bin b holds b/bins <= p < (b + 1)/bins; the last bin also holds p = 1

Both are computed from per-bin sums (count, Σp, Σwon, Σ(p − won)²), so a run's millions of trades are added a
chunk at a time in O(bins) memory per strategy (`CalibrationTally`); `calibration(p, won)` is the same over one pair
of arrays. docs/metrics.md defines them in words.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_BINS = 10
DEFAULT_STRATEGY = "arbitrage"  # trades without a strategy (a null or no column) are cyclic arbitrage
ALL = "all"


class Reliability:
    """Per-bin sums of (predicted probability, outcome) pairs, added a piece at a time; `result()` is the
    calibration dict (see `calibration`)."""

    def __init__(self, bins: int = DEFAULT_BINS):
        if int(bins) != bins or bins < 1:
            raise ValueError(f"calibration: bins = {bins}: must be an integer >= 1")
        self.bins = int(bins)
        self.edges = np.arange(self.bins + 1) / self.bins  # edges[b] = b / bins, exactly as the bins' lo and hi
        self.count = np.zeros(self.bins, np.int64)
        self.predicted = np.zeros(self.bins)        # Σ p
        self.observed = np.zeros(self.bins)         # Σ won
        self.squared_error = np.zeros(self.bins)    # Σ (p − won)²

    def add(self, p, won) -> None:
        """Add a piece: p float64 in [0, 1] and won (bool, or 0/1) of the same length."""
        p = np.asarray(p, np.float64).ravel()
        won = np.asarray(won).ravel()
        if len(p) != len(won):
            raise ValueError(f"calibration: {len(p)} probabilities but {len(won)} outcomes (one of each per trade)")
        if not len(p):
            return
        if not np.all((p >= 0.0) & (p <= 1.0)):  # also False for NaN
            bad = p[~((p >= 0.0) & (p <= 1.0))][0]
            raise ValueError(f"calibration: probability {bad} is outside [0, 1] (win_probability is wins ÷ scenarios)")
        if won.dtype != np.bool_:
            if not np.all((won == 0) | (won == 1)):
                raise ValueError("calibration: outcomes must be booleans or 0/1 (won)")
        outcome = won.astype(np.float64)
        b = np.minimum(np.searchsorted(self.edges, p, side="right") - 1, self.bins - 1)  # p = 1 → the last bin
        self.count += np.bincount(b, minlength=self.bins)
        self.predicted += np.bincount(b, weights=p, minlength=self.bins)
        self.observed += np.bincount(b, weights=outcome, minlength=self.bins)
        self.squared_error += np.bincount(b, weights=(p - outcome) ** 2, minlength=self.bins)

    def result(self) -> dict:
        """{n, brier, ece, mean_predicted, observed_rate, bins: [{lo, hi, n, mean_predicted, observed_rate}]}; the
        figures are None with no trades, a bin's means None when it is empty."""
        n = int(self.count.sum())
        rows = []
        for b in range(self.bins):
            n_b = int(self.count[b])
            rows.append({"lo": float(self.edges[b]), "hi": float(self.edges[b + 1]), "n": n_b,
                         "mean_predicted": float(self.predicted[b] / n_b) if n_b else None,
                         "observed_rate": float(self.observed[b] / n_b) if n_b else None})
        if not n:
            return {"n": 0, "brier": None, "ece": None, "mean_predicted": None, "observed_rate": None, "bins": rows}
        gap = sum(r["n"] / n * abs(r["mean_predicted"] - r["observed_rate"]) for r in rows if r["n"])
        return {"n": n, "brier": float(self.squared_error.sum() / n), "ece": float(gap),
                "mean_predicted": float(self.predicted.sum() / n), "observed_rate": float(self.observed.sum() / n),
                "bins": rows}


def calibration(p: np.ndarray, won: np.ndarray, bins: int = DEFAULT_BINS) -> dict:
    """Brier score, expected calibration error and the reliability bins of predicted probabilities `p` (float64 in
    [0, 1]) against outcomes `won` (bool), one of each per trade: Reliability.result()'s dict."""
    reliability = Reliability(bins)
    reliability.add(p, won)
    return reliability.result()


class CalibrationTally:
    """`calibration` per strategy and over every trade ("all"), added chunk by chunk (`add`)."""

    def __init__(self, bins: int = DEFAULT_BINS):
        self.bins = bins
        self.every = Reliability(bins)
        self.by_strategy: dict[str, Reliability] = {}

    def add(self, p, won, strategy: pa.Array | pa.ChunkedArray | None = None) -> None:
        """One chunk's trades: p, won, and their `strategy` column (None: every trade is arbitrage)."""
        p, won = np.asarray(p, np.float64), np.asarray(won)
        self.every.add(p, won)
        if strategy is None:
            names, codes = [DEFAULT_STRATEGY], np.zeros(len(p), np.int64)
        else:  # no Python string per row: a run has millions of trades
            encoded = pc.fill_null(strategy, DEFAULT_STRATEGY)
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.combine_chunks()
            encoded = encoded.dictionary_encode()
            names, codes = encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False)
        for i, name in enumerate(names):
            mine = codes == i
            if mine.any():
                self.by_strategy.setdefault(name, Reliability(self.bins)).add(p[mine], won[mine])

    def summary(self) -> dict:
        """{strategy: calibration dict, ..., "all": the same over every trade}, strategies by name."""
        return {**{name: self.by_strategy[name].result() for name in sorted(self.by_strategy)},
                ALL: self.every.result()}
