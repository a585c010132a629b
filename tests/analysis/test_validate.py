"""Validation against labeled MEV: hand-made tables with known scores, and a real tiny-market run."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpubt.analysis.validate import candidate_pairs, pools_matrix, validate

from .test_thresholds import _labels, _trades

E15 = 10**15


def test_hand_made_tables_known_scores(tmp_path):
    # trades: (block, tx, pools, net); gross = net + 1e15 (see _trades)
    trades = _trades([
        (10, 4, [1, 2, 3], 9 * E15),     # ← label A (tx 5, shares pool 2)
        (10, 4, [2, 7], 8 * E15),        # same point, same label: one-to-one, A is taken by the better overlap
        (11, -1, [4, 5], 3 * E15),       # ← label B (top of block → tx 0)
        (12, 3, [6], 2 * E15),           # label C is 3 txs later: no match with max_gap 1
        (13, 1, [8], E15),               # label D shares no pool
    ])
    labels = _labels([
        (10, 5, "arbitrage", [3, 2, 1], 10 * E15 + 500),  # A: estimate 10e15 (gross), realized 10e15 + 500
        (11, 0, "arbitrage", [5, 4], 4 * E15 - 1000),     # B
        (12, 6, "arbitrage", [6], 3 * E15),               # C: missed
        (13, 2, "arbitrage", [9], E15),                   # D: missed
        (10, 5, "cexdex", [1], 7),                         # a kind we do not run
        (99, 1, "arbitrage", [1], 1),                      # outside the block range: ignored
    ])
    result = validate(trades, labels, first_block=10, last_block=20)
    arb = result.scores["kinds"]["arbitrage"]
    assert (arb["labels"], arb["ours"], arb["matched"]) == (4, 5, 2)
    assert arb["precision"] == 2 / 5 and arb["recall"] == 2 / 4
    assert arb["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9, rel=1e-15)
    cex = result.scores["kinds"]["cexdex"]
    assert cex["recall"] == 0.0 and cex["precision"] is None and cex["matched"] == 0

    m = result.matches.to_pylist()
    assert [(r["block_number"], r["our_tx_index"], r["label_tx_index"], r["path_id"]) for r in m] == \
        [(10, 4, 5, 0), (11, -1, 0, 2)]
    assert m[0]["jaccard"] == 1.0 and m[1]["jaccard"] == 1.0
    assert [int(r["estimated_profit_wei"]) for r in m] == [10 * E15, 4 * E15]
    assert [int(r["realized_profit_wei"]) for r in m] == [10 * E15 + 500, 4 * E15 - 1000]
    profit = arb["profit"]
    assert profit["n"] == 2 and profit["mae_wei"] == 750.0
    assert profit["median_rel_error"] == pytest.approx(np.median([500 / (10 * E15 + 500), 1000 / (4 * E15 - 1000)]))
    assert profit["pearson"] == pytest.approx(1.0) and profit["r2"] == pytest.approx(1.0, abs=1e-9)

    misses = sorted(zip(result.misses.column("block_number").to_pylist(), result.misses.column("kind").to_pylist()))
    assert misses == [(10, "cexdex"), (12, "arbitrage"), (13, "arbitrage")]
    assert sorted(result.false_positives.column("path_id").to_pylist()) == [1, 3, 4]

    wider = validate(trades, labels, max_gap=3, first_block=10, last_block=20).scores["kinds"]["arbitrage"]
    assert wider["matched"] == 3 and wider["recall"] == 3 / 4

    result.write(tmp_path)
    table = pq.read_table(tmp_path / "validation_matches.parquet")
    assert {"block_number", "estimated_profit_wei", "realized_profit_wei", "estimated_profit_eth"} <= set(
        table.column_names)
    assert json.loads((tmp_path / "validation.json").read_text())["kinds"]["arbitrage"]["matched"] == 2
    assert pq.read_table(tmp_path / "validation_misses.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "validation_false_positives.parquet").num_rows == 3
    result.FALSE_POSITIVE_SLICE = 2  # written in slices: the same rows, in the same order, as the whole table
    result.write(tmp_path)
    assert pq.read_table(tmp_path / "validation_false_positives.parquet").equals(result.false_positives)


def _events(rows):
    """rows: (block, tx, pool)."""
    b, t, p = zip(*rows) if rows else ((), (), ())
    return pa.table({"block_number": pa.array(b, pa.int64()), "tx_index": pa.array(t, pa.int32()),
                     "pool_id": pa.array(p, pa.int32())})


def test_cexdex_labels_match_the_state_we_priced():
    trades = _trades([
        (20, -1, [1], 5 * E15),   # top of block: ← label at tx 3 on pool 1 (pool 1 untouched at tx 0..2)
        (20, -1, [2], 5 * E15),   # pool 2 swapped at tx 1, before its label at tx 4: superseded
        (20, 1, [2], 4 * E15),    # ← after that swap: the label at tx 4
        (21, 7, [3], 3 * E15),    # ← label in block 22 at tx 0: the pool kept this state across the block boundary
        (23, 5, [4], 2 * E15),    # pool 4 swapped at (24, 2), before its label at (24, 3): no match
    ])
    trades = trades.set_column(trades.schema.get_field_index("strategy"), "strategy", pa.array(["cexdex"] * 5))
    # the DEX leg: 1000 raw token 1 in, token 0 out; at the reference (0.5 token1 per token0) worth 2000 token 0
    detail = [json.dumps({"zero_for_one": False, "token_out": 0, "amount_in": "1000", "amount_out": str(2000 + e),
                          "reference_price_raw": 0.5}) for e in (7, 8, 9, 10, 11)]
    trades = trades.set_column(trades.schema.get_field_index("detail"), "detail", pa.array(detail))
    labels = _labels([(20, 3, "cexdex", [1], 6), (20, 4, "cexdex", [2], 9), (22, 0, "cexdex", [3], 13),
                      (24, 3, "cexdex", [4], 1), (19, 0, "cexdex", [1], 1)])  # the last one precedes all our points
    # the labels' own events too (at the label's tx: not "between")
    events = _events([(20, 0, 9), (20, 1, 2), (20, 3, 1), (20, 4, 2), (22, 0, 3), (24, 2, 4), (24, 3, 4)])
    result = validate(trades, labels, first_block=19, last_block=24, events=events)
    cex = result.scores["kinds"]["cexdex"]
    assert (cex["labels"], cex["ours"], cex["matched"]) == (5, 5, 3)
    assert "untouched" in result.scores["rule"]["match"]
    got = sorted((r["block_number"], r["our_tx_index"], r["label_tx_index"], r["path_id"])
                 for r in result.matches.to_pylist())
    assert got == [(20, -1, 3, 0), (20, 1, 4, 2), (21, 7, 0, 3)]
    # profits compared in the label's terms (received token at the reference): 7 vs 6, 9 vs 9, 10 vs 13
    assert [(int(r["estimated_profit_wei"]), int(r["realized_profit_wei"])) for r in result.matches.to_pylist()] == [
        (7, 6), (9, 9), (10, 13)]
    assert cex["profit"]["n"] == 3 and cex["profit"]["mae_wei"] == pytest.approx(4 / 3)
    # a trade the other way (our received token is not the label's profit token) is not the label's trade
    other_way = trades.set_column(trades.schema.get_field_index("detail"), "detail", pa.array(
        [d.replace('"token_out": 0', '"token_out": 1') for d in detail]))
    assert validate(other_way, labels, first_block=19, last_block=24, events=events).matches.num_rows == 0
    # the swap at tx 1 is what rules pool 2's top-of-block point out (here without the point after it)
    no_after = trades.take([0, 1, 3, 4])
    assert validate(no_after, labels, first_block=19, last_block=24, events=events).scores["kinds"]["cexdex"][
        "matched"] == 2
    quiet = validate(no_after, labels, first_block=19, last_block=24,
                     events=_events([(20, 3, 1), (22, 0, 3), (24, 3, 4)]))
    assert sorted((r["our_tx_index"], r["label_tx_index"]) for r in quiet.matches.to_pylist()) == [
        (-1, 3), (-1, 4), (5, 3), (7, 0)]
    # without events CEX-DEX falls back to the arbitrage window (1..1, same block): nothing here fits it
    assert validate(trades, labels, first_block=19, last_block=24).scores["kinds"]["cexdex"]["matched"] == 0


def test_candidate_pairs_windows_do_not_cross_blocks():
    ours = pools_matrix(_trades([(10, 30, [1], 1), (11, -1, [1], 1)]).column("pools"))
    labels = pools_matrix(_labels([(11, 0, "arbitrage", [1], 1)]).column("pools"))
    i, j, overlap, jaccard = candidate_pairs(np.array([10, 11]), np.array([30, -1]), ours, np.array([11]),
                                             np.array([0]), labels, 1, 50)
    assert i.tolist() == [1] and j.tolist() == [0] and overlap.tolist() == [1] and jaccard.tolist() == [1.0]
    empty = candidate_pairs(np.array([], np.int64), np.array([], np.int64), pools_matrix(_trades([]).column("pools")),
                            np.array([11]), np.array([0]), labels)
    assert all(len(a) == 0 for a in empty)


def test_tiny_market_run_finds_the_planted_arbitrages(tiny_cache):
    from gpubt.data.store import Dataset
    from gpubt.analysis.validate import load_labels

    from ..conftest import TINY
    from .test_sweep import run_backtest

    path = tiny_cache / TINY
    ds = Dataset(path)
    backtest = run_backtest(path, 5 * 10**14)
    labels = load_labels(ds, backtest.first_block, backtest.last_block)
    result = validate(backtest.trades(), labels)
    arb = result.scores["kinds"]["arbitrage"]
    assert arb["labels"] > 0 and arb["recall"] > 0
    for key in ("precision", "recall", "f1"):
        assert 0.0 <= arb[key] <= 1.0
    assert arb["matched"] == result.matches.num_rows
    assert result.misses.num_rows + arb["matched"] == labels.num_rows
    assert result.false_positives.num_rows + arb["matched"] == arb["ours"]
    # the searchers ran the same cycles on the same states: our exact estimates are close to what they realized
    assert arb["profit"]["pearson"] > 0.9 and arb["profit"]["median_rel_error"] < 0.05


def test_misses_leave_out_every_row_of_a_matched_label():
    """With several strategies, a label (tx_hash, kind) that matched is no miss, also where it appears twice."""
    trades = _trades([(10, 4, [1, 2], 9 * E15), (11, 3, [4], E15)])
    trades = trades.set_column(0, "strategy", pa.array(["arbitrage", "sandwich"]))
    labels = _labels([
        (10, 5, "arbitrage", [1, 2], 10 * E15),   # matched
        (10, 5, "arbitrage", [1, 2], 10 * E15),   # the same label twice (its tx_hash is set below)
        (12, 6, "arbitrage", [6], 3 * E15),       # missed
    ])
    labels = labels.set_column(labels.schema.get_field_index("tx_hash"), "tx_hash", pa.array(["0xa", "0xa", "0xc"]))
    result = validate(trades, labels, first_block=10, last_block=20)
    assert result.scores["kinds"]["arbitrage"]["matched"] == 1
    assert result.misses.column("tx_hash").to_pylist() == ["0xc"]
    assert result.false_positives.column("strategy").to_pylist() == ["sandwich"]


def _random_run(seed: int, n_blocks: int = 24):
    """Trades of three kinds, labels of four, and events (the labels' own among them) on six pools."""
    rng = np.random.default_rng(seed)
    pools = lambda: sorted(set(rng.integers(0, 6, size=rng.integers(1, 3)).tolist()))  # noqa: E731
    rows = [(int(rng.integers(1, n_blocks + 1)), int(rng.integers(-1, 7)), pools(), int(rng.integers(-5, 9)) * E15)
            for _ in range(70)]
    trades = _trades(rows)
    kinds = rng.choice(["arbitrage", "cexdex", "sandwich"], size=len(rows))
    detail = [json.dumps({"zero_for_one": bool(rng.integers(2)), "token_out": 0, "amount_in": "1000",
                          "amount_out": str(int(rng.integers(1000, 3000))), "reference_price_raw": 0.5})
              if k == "cexdex" else None for k in kinds]
    trades = trades.set_column(trades.schema.get_field_index("strategy"), "strategy", pa.array(kinds.tolist()))
    trades = trades.set_column(trades.schema.get_field_index("detail"), "detail", pa.array(detail, pa.string()))
    label_rows = [(int(rng.integers(1, n_blocks + 1)), int(rng.integers(0, 8)),
                   str(rng.choice(["arbitrage", "cexdex", "sandwich", "jit"])), pools(), int(rng.integers(0, 3000)))
                  for _ in range(45)]
    events = [(b, t, p) for b, t, _, ps, _ in label_rows for p in ps]
    events += [(int(rng.integers(1, n_blocks + 1)), int(rng.integers(0, 8)), int(rng.integers(0, 6)))
               for _ in range(25)]
    return trades, _labels(label_rows), _events(events)


def _in(table, lo, hi):
    b = table.column("block_number").to_numpy()
    return table.filter(pa.array((b >= lo) & (b <= hi)))


def _rows(table, keys):
    return sorted(tuple(json.dumps(r[k], sort_keys=True, default=str) for k in keys) for r in table.to_pylist())


def _close(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-18)
    return a == b


def test_validation_in_chunks_equals_the_whole_run():
    """The controller validates a run partition by partition; CEX-DEX labels match our latest point on their
    pools in any earlier block, so the chunks carry the trades that may still match. Every way of cutting the
    run into block ranges gives the whole run's matches, misses, false positives and scores."""
    from gpubt.analysis.validate import Validator

    carried_matches = 0
    for seed in range(6):
        trades, labels, events = _random_run(seed)
        whole = validate(trades, labels, first_block=1, last_block=24, events=events)
        assert whole.scores["kinds"]["cexdex"]["matched"] > 0
        rng = np.random.default_rng(100 + seed)
        for cuts in ([], [12], [5, 6, 7], sorted(rng.choice(np.arange(2, 24), 5, replace=False).tolist())):
            bounds = list(zip([1, *cuts], [c - 1 for c in cuts] + [24]))
            validator, out = Validator(), []
            for n, (lo, hi) in enumerate(bounds):
                out.append(validator.add(_in(trades, lo, hi), _in(labels, lo, hi), _in(events, lo, hi),
                                         final=n == len(bounds) - 1))
            matches, misses, false_positives = (pa.concat_tables([o[k] for o in out]) for k in range(3))
            assert _rows(matches, matches.column_names) == _rows(whole.matches, matches.column_names), cuts
            assert _rows(misses, ["tx_hash", "kind"]) == _rows(whole.misses, ["tx_hash", "kind"]), cuts
            assert false_positives.schema == whole.false_positives.schema
            assert _rows(false_positives, ["path_id"]) == _rows(whole.false_positives, ["path_id"]), cuts
            assert _close(validator.scores(), whole.scores), cuts
            for (lo, hi), o in zip(bounds, out):  # a match whose trade is in an earlier chunk than its label
                carried_matches += int((o[0].column("block_number").to_numpy() < lo).sum())
    assert carried_matches > 0, "the random runs must exercise the carry across chunks"
