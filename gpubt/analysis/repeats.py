"""Repeated captures: arbitrage trades that take a cycle we already traded, with no searcher closing it in between.

Under execution=replay every point sees history, so a mispricing nobody closes is sold again at every point that
re-evaluates its cycle; under execution=counterfactual a re-trade earns only what the history since our trade
re-created. summary.json `execution.repeated_captures` counts them either way (docs/execution.md).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema
from gpubt.kernels.cycles import KEY_TX_BITS


def _keys(blocks, txs) -> np.ndarray:
    """Global point keys: (block << 20) + tx (tx −1: the top of the block)."""
    return (np.asarray(blocks, np.int64) << KEY_TX_BITS) + np.asarray(txs, np.int64)


def repeated_captures(trades: pa.Table, labels: pa.Table | None) -> dict:
    """{trades, gross_profit_wei, share_of_trades, share_of_gross_profit} of the arbitrage trades (TRADES rows:
    block_number, tx_index, path_id, pools, gross_profit_wei, strategy) whose cycle we traded before with no
    labeled arbitrage (LABELS) on one of its pools between the two trades (after the first trade's point, up to and
    including the second's tx)."""
    arb = trades.filter(pc.equal(trades.column("strategy"), "arbitrage")) if trades.num_rows else trades
    n = arb.num_rows
    out = {"trades": 0, "gross_profit_wei": "0", "share_of_trades": None, "share_of_gross_profit": None}
    if n == 0:
        return out
    closers = defaultdict(list)  # pool -> keys of the labeled arbitrages through it
    if labels is not None and labels.num_rows:
        arbs = labels.filter(pc.equal(labels.column("kind"), "arbitrage"))
        keys = _keys(arbs.column("block_number").to_numpy(), arbs.column("tx_index").to_numpy())
        for key, pools in zip(keys.tolist(), arbs.column("pools").to_pylist()):
            for pool in pools:
                closers[pool].append(key)
    closers = {p: np.sort(np.asarray(k, np.int64)) for p, k in closers.items()}
    keys = _keys(arb.column("block_number").to_numpy(), arb.column("tx_index").to_numpy())
    path = arb.column("path_id").to_numpy()
    gross = schema.amounts_int(arb.column("gross_profit_wei").combine_chunks())
    pools = arb.column("pools").to_pylist()
    last: dict = {}  # path -> key of our last trade on it
    n_repeat, gross_repeat = 0, 0
    for i in np.lexsort((keys, path)).tolist():
        before = last.get(int(path[i]))
        last[int(path[i])] = int(keys[i])
        if before is None:
            continue
        closed = False
        for pool in pools[i]:
            k = closers.get(pool)
            if k is not None and np.searchsorted(k, keys[i], "right") > np.searchsorted(k, before, "right"):
                closed = True
                break
        if not closed:
            n_repeat += 1
            gross_repeat += gross[i]
    total = sum(gross)
    out.update(trades=n_repeat, gross_profit_wei=str(gross_repeat), share_of_trades=n_repeat / n,
               share_of_gross_profit=gross_repeat / total if total else None)
    return out
