"""Validation against labeled MEV: which labeled transactions did the backtest find, and how exact were its profits.

Matching rule (one-to-one): a trade of ours and a label match when they are in the same block, of the same kind
(our cycles are kind "arbitrage"), share at least one pool, and our evaluation point is just before the label:
`min_gap <= label.tx_index − our.tx_index <= max_gap` (default 1..1: our state is "after tx t", the labeled
back-run is tx t + 1; the top of a block is tx −1, so it matches a label at tx 0). Where several pairs qualify,
the greedy assignment prefers the larger pool overlap (Jaccard), then the smaller gap, then the closer profit.
Per kind (KIND_GAPS): sandwiches and JIT sit at −1..1 of the victim. Liquidations (POSITION_KINDS) match by
position: a label's `position_id` against our liquidation of that position in the same block, ours not after it.
CEX-DEX (STATE_KINDS) is matched by state, not by gap: a label against our latest point on its pool before it, in
any earlier block, kept when the pool had no event in between (we trade a pool state once; the label's searcher may
trade it blocks later, at the top of a block behind other CEX-DEX trades). That needs the events (`events=`).

Scores per label kind: precision = matched trades ÷ our trades of that kind, recall = matched labels ÷ labels,
F1 = their harmonic mean. Profit error on matched pairs compares our exact gross profit (amount out − amount in,
before gas, `gross_profit_raw`; CEX-DEX: see with_estimates) with the label's realized `profit_raw` (also before gas),
in wei: pairs whose profit is not WETH on both sides are matched but left out of the error statistics.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema
from gpubt.schema import WEI_PER_ETH
from gpubt.market.prices import WETH

POINT_TX_BITS = 21   # point code = block << 21 | (tx_index + 1): tx −1 (top of block) stays non-negative

MATCHES = pa.schema([
    ("block_number", pa.int64()),
    ("kind", pa.string()),
    ("our_tx_index", pa.int32()),
    ("label_tx_index", pa.int32()),
    ("path_id", pa.int32()),
    ("our_pools", pa.list_(pa.int32())),
    ("label_pools", pa.list_(pa.int32())),
    ("jaccard", pa.float64()),
    ("searcher", pa.string()),
    ("tx_hash", pa.string()),
    ("profit_token", pa.int32()),
    ("estimated_profit_wei", schema.AMOUNT),   # our exact gross profit (raw units of profit_token)
    ("realized_profit_wei", schema.AMOUNT),    # the label's profit_raw
    ("estimated_profit_eth", pa.float64()),    # the same ÷ 1e18 (null when the tokens differ), for plots
    ("realized_profit_eth", pa.float64()),
    ("our_net_profit_wei", schema.AMOUNT),
])


def pools_matrix(pools_col) -> np.ndarray:
    """A list<int32> column → int32 (n, max_len) matrix padded with −1."""
    arr = pools_col.combine_chunks() if isinstance(pools_col, pa.ChunkedArray) else pools_col
    n = len(arr)
    if n == 0:
        return np.full((0, 1), -1, np.int32)
    offsets = arr.offsets.to_numpy()
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int32)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()), 1)
    out = np.full((n, width), -1, np.int32)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(values)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    out[rows, cols] = values
    return out


def point_code(block_number, tx_index) -> np.ndarray:
    return (np.asarray(block_number, np.int64) << POINT_TX_BITS) + (np.asarray(tx_index, np.int64) + 1)


def candidate_pairs(our_block, our_tx, our_pools, label_block, label_tx, label_pools, min_gap: int = 1,
                    max_gap: int = 1):
    """All (ours i, label j) pairs in the same block with min_gap <= label tx − our tx <= max_gap sharing a pool.

    our_pools / label_pools: int32 matrices padded with −1 (`pools_matrix`). Returns (i, j, overlap, jaccard)
    arrays; no (ours × labels) matrix is built: labels look their window up in the sorted points.
    """
    our_code = point_code(our_block, our_tx)
    order = np.argsort(our_code, kind="stable")
    sorted_code = our_code[order]
    label_block = np.asarray(label_block, np.int64)
    label_tx = np.asarray(label_tx, np.int64)
    lo = np.searchsorted(sorted_code, point_code(label_block, label_tx - max_gap), side="left")
    hi = np.searchsorted(sorted_code, point_code(label_block, label_tx - min_gap), side="right")
    # a window must not leak into the previous block (tx −1 is the lowest point of a block)
    lo = np.maximum(lo, np.searchsorted(sorted_code, point_code(label_block, -1), side="left"))
    counts = np.maximum(hi - lo, 0)
    j = np.repeat(np.arange(len(label_block)), counts)
    starts = np.repeat(lo, counts)
    within = np.arange(len(j)) - np.repeat(np.cumsum(counts) - counts, counts)
    i = order[starts + within]
    return _with_overlap(i, j, our_pools, label_pools)


def _with_overlap(i, j, our_pools, label_pools):
    """Keep the pairs (i, j) that share a pool: (i, j, overlap, jaccard)."""
    a, b = our_pools[i], label_pools[j]
    overlap = np.zeros(len(i), np.int64)
    for ha in range(a.shape[1]):
        for hb in range(b.shape[1]):
            overlap += (a[:, ha] == b[:, hb]) & (a[:, ha] >= 0)
    size_a = (a >= 0).sum(axis=1)
    size_b = (b >= 0).sum(axis=1)
    keep = overlap > 0
    jaccard = overlap / np.maximum(size_a + size_b - overlap, 1)
    return i[keep], j[keep], overlap[keep], jaccard[keep]


ESTIMATE_COLUMNS = ("label_estimate_raw", "label_estimate_token")


def with_estimates(trades: pa.Table, our_kind: str = "arbitrage") -> pa.Table:
    """`trades` with our profit in the labels' terms (ESTIMATE_COLUMNS: raw amount, token) appended, unless
    present. Default: gross_profit_raw in start_token. CEX-DEX labels count the received token: amount out −
    amount in × the reference rate at the trade, so a CEX-DEX trade's is re-expressed from its `detail`.
    A trade without a `strategy` is of `our_kind`."""
    if all(c in trades.column_names for c in ESTIMATE_COLUMNS):
        return trades
    est = trades.column("gross_profit_raw").combine_chunks().cast(schema.AMOUNT)
    token = trades.column("start_token").to_numpy().astype(np.int32)
    if "detail" in trades.column_names and trades.num_rows:
        kinds = (pc.fill_null(trades.column("strategy"), our_kind) if "strategy" in trades.column_names
                 else pa.array([our_kind] * trades.num_rows, pa.string()))
        is_cexdex = pc.equal(kinds, "cexdex").combine_chunks()
        rows = np.flatnonzero(is_cexdex.to_numpy(zero_copy_only=False))
        values = []
        for k, d in zip(rows.tolist(), trades.column("detail").take(pa.array(rows, pa.int64())).to_pylist()):
            d = json.loads(d)
            rate = d["reference_price_raw"] if d["zero_for_one"] else 1.0 / d["reference_price_raw"]  # out per in
            values.append(int(d["amount_out"]) - round(int(d["amount_in"]) * rate))
            token[k] = d["token_out"]
        if values:
            est = pc.replace_with_mask(est, is_cexdex, pa.array(values, schema.AMOUNT))
    return trades.append_column(ESTIMATE_COLUMNS[0], est).append_column(ESTIMATE_COLUMNS[1],
                                                                        pa.array(token, pa.int32()))


def _conform_trades(trades: pa.Table, our_kind: str) -> pa.Table:
    """TRADES columns (schema.conform) plus ESTIMATE_COLUMNS."""
    est = with_estimates(trades, our_kind)
    out = schema.conform(trades, "trades", "trades")
    for c in ESTIMATE_COLUMNS:
        out = out.append_column(est.schema.field(c), est.column(c))
    return out


def _profit_stats(est: np.ndarray, real: np.ndarray) -> dict:
    """MAE, median relative error, R² (estimate as a predictor of realized) and Pearson r, in wei and ETH."""
    n = len(est)
    if n == 0:
        return {"n": 0, "mae_wei": None, "mae_eth": None, "median_rel_error": None, "r2": None, "pearson": None}
    err = est - real
    nonzero = real != 0
    ss_res = float(np.sum(err ** 2))
    ss_tot = float(np.sum((real - real.mean()) ** 2))
    pearson = None
    if n > 1 and est.std() > 0 and real.std() > 0:
        pearson = float(np.corrcoef(est, real)[0, 1])
    return {
        "n": n,
        "mae_wei": float(np.mean(np.abs(err))),
        "mae_eth": float(np.mean(np.abs(err))) / WEI_PER_ETH,
        "median_rel_error": float(np.median(np.abs(err[nonzero]) / np.abs(real[nonzero]))) if nonzero.any() else None,
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else None,
        "pearson": pearson,
    }


@dataclass
class Validation:
    """Matched pairs, misses (labels we did not find), false positives (our trades with no label), scores."""

    matches: pa.Table
    misses: pa.Table
    false_positives: pa.Table        # validated trades (_conform_trades) that matched no label
    scores: dict = field(default_factory=dict)

    def write(self, out_dir) -> None:
        """validation_matches.parquet, validation_misses.parquet, validation_false_positives.parquet,
        validation.json (scores) into `out_dir`."""
        with ValidationWriter(out_dir) as writer:
            writer.add(self.matches, self.misses, self.false_positives)
            writer.finish(self.scores)


class ValidationWriter:
    """The validation files written chunk by chunk (`add`), then `finish`; with `with`, an error leaves none."""

    NAMES = ("validation_matches", "validation_misses", "validation_false_positives")

    def __init__(self, out_dir):
        from gpubt.data.store import ParquetStream

        self.out_dir = Path(out_dir)
        self.streams = [ParquetStream(self.out_dir / f"{name}.parquet") for name in self.NAMES]

    def __enter__(self):
        return self

    def add(self, matches: pa.Table, misses: pa.Table, false_positives: pa.Table) -> None:
        for stream, table in zip(self.streams, (matches, misses, false_positives)):
            stream.write(table)  # the first chunk's table fixes the file's schema

    def finish(self, scores: dict) -> None:
        from gpubt.data.store import write_json_atomic

        for stream in self.streams:
            stream.close()
        self.streams = []
        write_json_atomic(scores, self.out_dir / "validation.json")

    def __exit__(self, *exc):
        for stream in self.streams:  # not finished
            stream.abort()


# Where a label sits relative to our point (label tx − our tx) for strategies whose trade sits just before a
# victim: our point is "after the tx before the victim", the attacker's front-run/mint is that tx itself.
# CEX-DEX (STATE_KINDS, with `events`): a label matches our latest point on its pool before it, in any earlier
# block, as long as the pool had no event in between: the label's searcher traded the very state we priced.
KIND_GAPS = {"sandwich": (-1, 1), "jit": (-1, 1)}
STATE_KINDS = frozenset({"cexdex"})
# Liquidations are matched by position, not by pools (the labeled liquidator may keep the collateral and touch no
# pool): a label (its `position_id`) against our liquidation of that position (`path_id`) in the same block, ours at
# or before the label's tx (our trade sits at the top of the block).
POSITION_KINDS = frozenset({"liquidation"})
EVENT_COLUMNS = ["block_number", "tx_index", "pool_id"]


class _PoolPoints:
    """Points (block, tx) on pools, sorted by (pool, point) in one int64 code: rank of the pool << bits | point
    code relative to block b0 (so mainnet block numbers and many pools still fit 63 bits)."""

    def __init__(self, pools: np.ndarray, blocks: np.ndarray, txs: np.ndarray, b0: int, b1: int):
        self.b0 = b0
        self.bits = int(b1 - b0 + 1).bit_length() + POINT_TX_BITS
        self.ids, rank = np.unique(np.asarray(pools, np.int64), return_inverse=True)
        if self.bits + int(len(self.ids)).bit_length() > 62:
            raise ValueError(f"validation: {b1 - b0 + 1} blocks × {len(self.ids)} pools do not fit one int64 sort "
                             "key; validate a shorter block range")
        code = (rank.astype(np.int64) << self.bits) + self.point(blocks, txs)
        self.order = np.argsort(code, kind="stable")
        self.code = code[self.order]

    def point(self, blocks, txs) -> np.ndarray:
        return point_code(np.asarray(blocks, np.int64) - self.b0, txs)

    def base(self, pools) -> tuple[np.ndarray, np.ndarray]:
        """(rank << bits, known) of query pools; unknown pools have no points."""
        pools = np.asarray(pools, np.int64)
        at = np.minimum(np.searchsorted(self.ids, pools), len(self.ids) - 1)
        return at.astype(np.int64) << self.bits, (pools >= 0) & (self.ids[at] == pools)


def _span(*blocks) -> tuple[int, int]:
    present = [np.asarray(b, np.int64) for b in blocks if len(b)]
    return (min(int(b.min()) for b in present), max(int(b.max()) for b in present)) if present else (0, 0)


def untouched(events: pa.Table, our_block, our_tx, label_block, label_tx, pools) -> np.ndarray:
    """True where no pool of a row of `pools` (int matrix padded with −1) has an event strictly between our point
    (our_block, our_tx) and the label's (label_block, label_tx). `events`: EVENT_COLUMNS, any order."""
    ok = np.ones(len(our_block), bool)
    if not len(our_block) or not events.num_rows:
        return ok
    ev_block = events.column("block_number").to_numpy()
    index = _PoolPoints(events.column("pool_id").to_numpy(), ev_block, events.column("tx_index").to_numpy(),
                        *_span(ev_block, our_block, label_block))
    lo_point = index.point(our_block, our_tx) + 1
    hi_point = index.point(label_block, label_tx) - 1
    for c in range(pools.shape[1]):
        base, known = index.base(pools[:, c])
        lo = np.searchsorted(index.code, base + lo_point, side="left")
        hi = np.searchsorted(index.code, base + hi_point, side="right")
        ok &= ~(known & (hi > lo))
    return ok


def latest_before(our_block, our_tx, our_pools, label_block, label_tx, label_pools):
    """For each label and each of its pools, our latest point on that pool strictly before the label (any earlier
    block): (i, j, overlap, jaccard) like candidate_pairs, without repeats."""
    rows, cols = np.nonzero(our_pools >= 0)
    lrows, lcols = np.nonzero(label_pools >= 0)
    if not len(rows) or not len(lrows):
        return _with_overlap(np.zeros(0, np.int64), np.zeros(0, np.int64), our_pools, label_pools)
    our_block = np.asarray(our_block, np.int64)
    index = _PoolPoints(our_pools[rows, cols], our_block[rows], np.asarray(our_tx)[rows],
                        *_span(our_block, label_block))
    base, known = index.base(label_pools[lrows, lcols])
    pos = np.searchsorted(index.code, base + index.point(np.asarray(label_block)[lrows],
                                                         np.asarray(label_tx)[lrows]), side="left") - 1
    hit = known & (pos >= 0)
    hit[hit] &= (index.code[pos[hit]] >> index.bits) == (base[hit] >> index.bits)
    i, j = rows[index.order[pos[hit]]], lrows[hit]
    pair = np.unique(i.astype(np.int64) * len(label_pools) + j)
    return _with_overlap(pair // len(label_pools), pair % len(label_pools), our_pools, label_pools)


def validate(trades: pa.Table, labels: pa.Table, our_kind: str = "arbitrage", min_gap: int = 1, max_gap: int = 1,
             first_block: int | None = None, last_block: int | None = None,
             events: pa.Table | None = None) -> Validation:
    """Match trades of every strategy (their `strategy` column, else `our_kind`) against labels of the same
    kind; arbitrage uses min_gap..max_gap, sandwich and JIT KIND_GAPS, STATE_KINDS the same-state rule when
    `events` (EVENT_COLUMNS of the range) are given, else min_gap..max_gap. Scores per kind, merged.
    One chunk of a Validator (the controller validates a run chunk by chunk)."""
    labels = schema.conform(labels, "labels", "labels")
    keep = schema.block_range_mask(labels.column("block_number").to_numpy(), first_block, last_block)
    if not keep.all():
        labels = labels.filter(pa.array(keep))
    validator = Validator(our_kind, min_gap, max_gap)
    matches, misses, false_positives = validator.add(trades, labels, events, final=True)
    return Validation(matches, misses, false_positives, validator.scores())


class Validator:
    """Validation of a run chunk by chunk: `add` each chunk (consecutive block ranges in order, with the labels
    and events of its range only), `final=True` for the last; `scores()` covers them all.

    Same-block kinds match within a chunk. A STATE_KINDS label matches our latest point on its pools in any
    earlier block, so after each chunk the trades that could still match a later label are carried into the
    next: each pool's latest point, when unmatched and its pool had no event since (an event in between rules
    the pair out, and the labeled trade is itself an event). The events before a chunk count through each
    pool's latest event point. A carried trade is a false positive of the chunk where it stops being carried.
    """

    def __init__(self, our_kind: str = "arbitrage", min_gap: int = 1, max_gap: int = 1):
        self.our_kind, self.min_gap, self.max_gap = our_kind, min_gap, max_gap
        self.label_counts: dict[str, int] = {}
        self.tallies: dict[str, _KindTally] = {}    # per our kind
        self.carry: dict[str, pa.Table] = {}        # per STATE kind: validated trades carried to the next chunk
        self.last_event = np.full(0, -1, np.int64)  # per pool id: point code of its latest event so far
        self.state_rule = None                      # whether STATE_KINDS use events (fixed by the first chunk)

    def add(self, trades: pa.Table, labels: pa.Table, events: pa.Table | None = None,
            final: bool = False) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(matches, misses, false positives) of one chunk: `trades` (any TRADES columns), `labels` (LABELS of
        the chunk's blocks), `events` (EVENT_COLUMNS of the chunk's blocks, or None: no same-state rule)."""
        if self.state_rule is None:
            self.state_rule = events is not None
        elif self.state_rule != (events is not None):
            raise ValueError("Validator.add: pass events with every chunk or with none")
        trades = _conform_trades(trades, self.our_kind)
        labels = schema.conform(labels, "labels", "labels")
        for c in pc.value_counts(labels.column("kind")).to_pylist():
            self.label_counts[c["values"]] = self.label_counts.get(c["values"], 0) + c["counts"]
        strategy = pc.fill_null(trades.column("strategy"), self.our_kind)  # null: written before strategies
        ours = sorted(set(pc.unique(strategy).to_pylist()) | set(self.carry))
        if not ours:  # no trade to match (a whole run without any still scores the default kind)
            return MATCHES.empty_table(), labels, trades
        prior_events = self.last_event.copy()  # before this chunk (updated in place below)
        if events is not None and events.num_rows:
            pools = events.column("pool_id").to_numpy().astype(np.int64)
            self.last_event = _grown(self.last_event, int(pools.max()) + 1)
            np.maximum.at(self.last_event, pools, point_code(events.column("block_number").to_numpy(),
                                                             events.column("tx_index").to_numpy()))
        lean = trades.select(MATCH_COLUMNS)  # what matching reads: a kind's rows are copied, not all its columns
        parts, unmatched = [], []
        for kind in ours:
            in_kind = pc.equal(strategy, kind)
            rows = np.flatnonzero(in_kind.to_numpy(zero_copy_only=False))
            gaps = KIND_GAPS.get(kind, (self.min_gap, self.max_gap))
            state = events is not None and kind in STATE_KINDS
            carried = self.carry.pop(kind, None)
            mine = lean.filter(in_kind)
            n_carried = 0 if carried is None else carried.num_rows
            if n_carried:
                mine = pa.concat_tables([carried.select(MATCH_COLUMNS), mine])
            part = _validate_kind(mine, labels, kind, gaps[0], gaps[1], events if state else None,
                                  prior_events if n_carried else None, n_carried)
            parts.append(part)
            tally = self.tallies.setdefault(kind, _KindTally(kind, state, gaps))
            tally.add(part, mine.num_rows - n_carried)
            still = np.zeros(mine.num_rows, bool)
            if state and not final:
                still = ~part.our_taken & _may_match_later(mine, self.last_event)
                self.carry[kind] = _take(carried, trades, rows, np.flatnonzero(still))
            fp = np.flatnonzero(~part.our_taken & ~still)  # false positives: carried rows first (earlier points)
            unmatched.append(_take(carried, trades, rows, fp))
        false_positives = pa.concat_tables(unmatched)
        matches = pa.concat_tables([p.matches for p in parts])
        if len(parts) == 1:
            return matches, labels.filter(pa.array(~parts[0].label_taken)), false_positives
        # a label (tx_hash, kind) matched by any strategy is not a miss, nor is a duplicate row of it; the keys are
        # built only for the labels left and the matches that share their tx_hash (not for every label and match)
        rest = labels.filter(pa.array(~np.logical_or.reduce([p.label_taken for p in parts])))
        near = matches.filter(pc.is_in(matches.column("tx_hash"), value_set=rest.column("tx_hash").combine_chunks()))
        key = lambda t: pc.binary_join_element_wise(t.column("tx_hash"), t.column("kind"), "\x00")  # noqa: E731
        misses = rest.filter(pc.invert(pc.is_in(key(rest), value_set=key(near).combine_chunks())))
        return matches, misses, false_positives

    def scores(self) -> dict:
        """Per label kind: labels, ours, matched, precision, recall, F1, profit error; and each kind's rule."""
        kind = self.our_kind
        tallies = [self.tallies[k] for k in sorted(self.tallies)] or [_KindTally(
            kind, bool(self.state_rule) and kind in STATE_KINDS, KIND_GAPS.get(kind, (self.min_gap, self.max_gap)))]
        per_kind = [t.scores(self.label_counts) for t in tallies]
        if len(per_kind) == 1:
            return per_kind[0]
        scores = {"rule": {"kinds": {s["rule"]["our_kind"]: s["rule"] for s in per_kind}}, "kinds": {}}
        for s in per_kind:
            for kind, entry in s["kinds"].items():
                if kind == s["rule"]["our_kind"] or kind not in scores["kinds"]:
                    scores["kinds"][kind] = entry
        return scores


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    return array if len(array) >= size else np.concatenate([array, np.full(size - len(array), -1, np.int64)])


def _take(carried: pa.Table | None, trades: pa.Table, rows: np.ndarray, picked: np.ndarray) -> pa.Table:
    """Rows `picked` of (carried rows, then trades' `rows`), as validated trades."""
    n_carried = 0 if carried is None else carried.num_rows
    own = trades.take(pa.array(rows[picked[picked >= n_carried] - n_carried], pa.int64()))
    return pa.concat_tables([carried.take(pa.array(picked[picked < n_carried], pa.int64())), own]) if n_carried \
        else own


def _may_match_later(trades: pa.Table, last_event: np.ndarray) -> np.ndarray:
    """Per trade: it is our latest point on one of its pools and that pool has had no event after it, so a later
    label on that pool may still match it under the same-state rule."""
    pools = pools_matrix(trades.column("pools"))
    rows, cols = np.nonzero(pools >= 0)
    out = np.zeros(trades.num_rows, bool)
    if not len(rows):
        return out
    pool = pools[rows, cols].astype(np.int64)
    code = point_code(trades.column("block_number").to_numpy()[rows], trades.column("tx_index").to_numpy()[rows])
    order = np.lexsort((rows, code, pool))  # the last of each pool: latest point, then last row (latest_before's)
    last = order[np.r_[pool[order][1:] != pool[order][:-1], True]]
    event = _grown(last_event, int(pool.max()) + 1)[pool[last]]
    out[rows[last[event <= code[last]]]] = True  # an event at our point itself is not after it
    return out


@dataclass
class _KindTally:
    """One of our kinds across chunks: trades, matches, and the matched pairs' profits for the error statistics."""

    kind: str
    state: bool
    gaps: tuple
    ours: int = 0
    matched: int = 0
    est: list = field(default_factory=list)
    real: list = field(default_factory=list)

    def add(self, part: "_KindResult", ours: int) -> None:
        self.ours += ours
        self.matched += part.matched
        self.est.append(part.est_eth)
        self.real.append(part.real_eth)

    def scores(self, label_counts: dict) -> dict:
        rule = ({"match": "latest point on the label's pools before it, pools untouched in between"}
                if self.state else {"match": "same block and position (path_id = the label's position_id), ours "
                                             "not after the label"} if self.kind in POSITION_KINDS
                else {"min_gap": self.gaps[0], "max_gap": self.gaps[1]})
        estimated = ("amount out − amount in × the reference rate at our point (exact DEX leg)"
                     if self.kind == "cexdex" else "our exact gross_profit_raw (before gas)")
        scores = {"rule": {"our_kind": self.kind, **rule, "estimated": estimated,
                           "realized": "label profit_raw (before gas)"},
                  "kinds": {}}
        empty = np.zeros(0)
        for kind in sorted(set(label_counts) | {self.kind}):
            n_labels = label_counts.get(kind, 0)
            n_ours = self.ours if kind == self.kind else 0
            matched = self.matched if kind == self.kind else 0
            precision = matched / n_ours if n_ours and n_labels else None  # no label of this kind: unmeasurable
            recall = matched / n_labels if n_labels else None
            f1 = (2 * precision * recall / (precision + recall)
                  if precision is not None and recall is not None and precision + recall > 0 else
                  (0.0 if precision is not None and recall is not None else None))
            mine = kind == self.kind and self.est
            stats = _profit_stats(np.concatenate(self.est) if mine else empty,
                                  np.concatenate(self.real) if mine else empty)
            scores["kinds"][kind] = {"labels": n_labels, "ours": n_ours, "matched": matched, "precision": precision,
                                     "recall": recall, "f1": f1, "profit": stats}
        return _finite(scores)


@dataclass
class _KindResult:
    """One kind's matching in one chunk: its matches, which of its trades and which labels were taken, and the
    matched pairs' profits in ETH where both are WETH (the error statistics)."""

    matches: pa.Table
    our_taken: np.ndarray    # per trade of the kind
    label_taken: np.ndarray  # per label
    matched: int
    est_eth: np.ndarray
    real_eth: np.ndarray


MATCH_COLUMNS = ["block_number", "tx_index", "path_id", "start_token", "pools", "net_profit_wei", *ESTIMATE_COLUMNS]


def _validate_kind(trades: pa.Table, labels: pa.Table, our_kind: str, min_gap: int, max_gap: int,
                   events: pa.Table | None, prior_events: np.ndarray | None = None, n_prior: int = 0) -> _KindResult:
    """Match our `trades` (MATCH_COLUMNS of `_conform_trades`) against `labels` (LABELS schema, of the validated
    range). With `events`: the same-state rule (each label against our latest point on its pools before it, kept
    while those pools had no event in between) instead of the min_gap..max_gap window; the first `n_prior` trades
    are from earlier chunks, whose events count through `prior_events` (latest event point per pool id).

    Every trade is of `our_kind`; labels of other kinds are not matched (Validator.scores counts them as misses
    of a strategy we did not run: recall 0, precision null).
    """
    label_kinds = labels.column("kind")
    is_ours = np.asarray(pc.equal(label_kinds, our_kind).to_numpy(zero_copy_only=False), bool)

    our_pools = pools_matrix(trades.column("pools"))
    label_pools = pools_matrix(labels.column("pools"))
    args = (trades.column("block_number").to_numpy(), trades.column("tx_index").to_numpy(), our_pools,
            labels.column("block_number").to_numpy()[is_ours], labels.column("tx_index").to_numpy()[is_ours],
            label_pools[is_ours])
    if our_kind in POSITION_KINDS:
        i, j, jaccard = same_position(trades, labels.filter(pa.array(is_ours)))
    elif events is None:
        i, j, _, jaccard = candidate_pairs(*args, min_gap, max_gap)
    else:
        i, j, _, jaccard = latest_before(*args)
        quiet = untouched(events, args[0][i], args[1][i], args[3][j], args[4][j], args[5][j])
        early = np.flatnonzero(i < n_prior)
        if len(early):  # events before this chunk, after our point, on the label's pools
            pools = args[5][j[early]]
            latest = np.where(pools >= 0, _grown(prior_events, int(pools.max()) + 1)[np.maximum(pools, 0)], -1)
            quiet[early] &= ~(latest > point_code(args[0][i[early]], args[1][i[early]])[:, None]).any(axis=1)
        i, j, jaccard = i[quiet], j[quiet], jaccard[quiet]
    label_rows = np.flatnonzero(is_ours)
    j = label_rows[j]

    est_col, start_token = trades.column(ESTIMATE_COLUMNS[0]), trades.column(ESTIMATE_COLUMNS[1]).to_numpy()
    real_col = labels.column("profit_raw")
    profit_token = labels.column("profit_token").to_numpy()
    if our_kind in STATE_KINDS:  # the same trade receives the label's profit token (else it went the other way)
        same_way = start_token[i] == profit_token[j]
        i, j, jaccard = i[same_way], j[same_way], jaccard[same_way]
    # how far before the label our point is (the tx gap within a block; later blocks count 2**21 txs each)
    gap = (point_code(labels.column("block_number").to_numpy()[j], labels.column("tx_index").to_numpy()[j])
           - point_code(trades.column("block_number").to_numpy()[i], trades.column("tx_index").to_numpy()[i]))
    # |estimate − realized| of each candidate pair, exact in decimal256 (39 digits), then rounded to float64
    wide = pa.decimal256(75, 0)
    closeness = schema.amounts_float(pc.abs(pc.subtract(est_col.take(pa.array(i, pa.int64())).cast(wide),
                                                        real_col.take(pa.array(j, pa.int64())).cast(wide))))
    order = np.lexsort((closeness, gap, -jaccard))
    our_taken = np.zeros(trades.num_rows, bool)
    label_taken = np.zeros(labels.num_rows, bool)
    chosen = []  # greedy one-to-one assignment in that order (positions into order)
    for k, (a, b) in enumerate(zip(i[order].tolist(), j[order].tolist())):
        if not our_taken[a] and not label_taken[b]:
            our_taken[a] = label_taken[b] = True
            chosen.append(k)
    picked = order[np.asarray(chosen, np.int64)]
    picked = picked[np.argsort(i[picked], kind="stable")]  # in trade order (a trade is in one pair at most)
    rows_a, rows_b = pa.array(i[picked], pa.int64()), pa.array(j[picked], pa.int64())

    # error statistics in wei: both profits in WETH (other tokens' raw units are not comparable across pairs)
    same_token = (start_token[i[picked]] == profit_token[j[picked]]) & (profit_token[j[picked]] == WETH)
    est, real = est_col.take(rows_a), real_col.take(rows_b)
    matches = pa.Table.from_pydict({
        "block_number": trades.column("block_number").take(rows_a),
        "kind": labels.column("kind").take(rows_b),
        "our_tx_index": trades.column("tx_index").take(rows_a),
        "label_tx_index": labels.column("tx_index").take(rows_b),
        "path_id": trades.column("path_id").take(rows_a),
        "our_pools": trades.column("pools").take(rows_a),
        "label_pools": labels.column("pools").take(rows_b),
        "jaccard": jaccard[picked],
        "searcher": labels.column("searcher").take(rows_b),
        "tx_hash": labels.column("tx_hash").take(rows_b),
        "profit_token": labels.column("profit_token").take(rows_b),
        "estimated_profit_wei": est,
        "realized_profit_wei": real,
        "estimated_profit_eth": _eth_where(est, same_token),
        "realized_profit_eth": _eth_where(real, same_token),
        "our_net_profit_wei": trades.column("net_profit_wei").take(rows_a),
    }, schema=MATCHES)
    return _KindResult(matches, our_taken, label_taken, len(picked), schema.amounts_float(est)[same_token],
                       schema.amounts_float(real)[same_token])


def same_position(trades: pa.Table, labels: pa.Table):
    """(i, j, jaccard) of POSITION_KINDS: every (trade i, label j) in the same block on the same position (trade
    path_id = label position_id), the trade's tx at or before the label's; jaccard 1 (pools are not compared)."""
    pos = labels.column("position_id").to_numpy(zero_copy_only=False) if "position_id" in labels.column_names \
        else np.full(labels.num_rows, np.nan)
    known = ~np.isnan(pos.astype(np.float64))
    l_block = labels.column("block_number").to_numpy()
    l_tx = labels.column("tx_index").to_numpy()
    t_block = trades.column("block_number").to_numpy()
    t_tx = trades.column("tx_index").to_numpy()
    t_path = trades.column("path_id").to_numpy(zero_copy_only=False).astype(np.int64)
    by_key: dict = {}
    for k, key in enumerate(zip(t_block.tolist(), t_path.tolist())):
        by_key.setdefault(key, []).append(k)
    i, j = [], []
    for b in np.flatnonzero(known).tolist():
        for a in by_key.get((int(l_block[b]), int(pos[b])), ()):
            if t_tx[a] <= l_tx[b]:
                i.append(a)
                j.append(b)
    return np.asarray(i, np.int64), np.asarray(j, np.int64), np.ones(len(i))


def _eth_where(amounts, keep: np.ndarray) -> pa.Array:
    """amount ÷ 1e18 as float64 where `keep` (exactly Python's int / int: correctly rounded), else null."""
    rows = pa.array(np.flatnonzero(keep), pa.int64())
    values = np.zeros(len(keep))
    values[keep] = [int(v) / WEI_PER_ETH for v in amounts.take(rows).to_pylist()]
    return pa.array(values, pa.float64(), mask=~keep)


def _finite(obj):
    """NaN/inf → None so validation.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_labels(dataset, first_block: int | None = None, last_block: int | None = None) -> pa.Table:
    """The labels of a gpubt dataset restricted to first_block..last_block (only the partitions that overlap)."""
    return dataset.read_range("labels", first_block, last_block)


if __name__ == "__main__":  # pragma: no cover - manual inspection: python -m gpubt.analysis.validate RUN DATASET
    import sys

    import pyarrow.parquet as pq

    from gpubt.data.store import Dataset

    run_dir, ds = Path(sys.argv[1]), Dataset(sys.argv[2])
    trades_t = pq.read_table(run_dir / "trades.parquet")
    result = validate(trades_t, load_labels(ds), first_block=ds.first_block, last_block=ds.last_block,
                      events=ds.read_range("events", columns=EVENT_COLUMNS))
    print(json.dumps(result.scores["kinds"], indent=1))
    print(json.dumps(result.scores, indent=1)[:2000])
