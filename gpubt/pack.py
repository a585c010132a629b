"""Arrow tables of a block range → one columnar `Batch` of flat arrays (host numpy; the backend moves them).

Versioned pool state (ARCHITECTURE principle 4): the batch holds, per pool, the state at the batch start
(from `MarketState`) followed by every event of the batch, sorted by key; the state at any evaluation point is
a binary search in that log (kernels/cycles.py: find_state), so evaluation points are independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.paths import Paths

WETH = 0  # token_id of WETH in every gpubt dataset: profits are measured in it


def point_key(block_offset, tx_index):
    """Batch-relative key of the state after tx `tx_index` of block first+block_offset (tx −1 = top of block)."""
    return (np.asarray(block_offset, np.int64) << KEY_TX_BITS) + np.asarray(tx_index, np.int64)


class MarketState:
    """Exact pool reserves and last reference prices at the current batch boundary, carried batch to batch."""

    def __init__(self, n_pools: int, n_tokens: int):
        self.reserve0 = [0] * n_pools
        self.reserve1 = [0] * n_pools
        self.known = np.zeros(n_pools, np.bool_)
        self.price_usd = np.full(n_tokens, np.nan)

    def load_snapshot(self, snapshots: pa.Table) -> None:
        pools = snapshots.column("pool_id").to_numpy()
        for pid, r0, r1 in zip(pools.tolist(), snapshots.column("reserve0").to_pylist(),
                               snapshots.column("reserve1").to_pylist()):
            self.reserve0[pid], self.reserve1[pid] = int(r0), int(r1)
        self.known[pools] = True

    def apply_events(self, events: pa.Table) -> None:
        """Advance to the state after `events` (sorted): each pool takes its last event's reserves."""
        if events.num_rows == 0:
            return
        pools = events.column("pool_id").to_numpy()
        # last occurrence of each pool in the (sorted) events
        rev_unique, rev_first = np.unique(pools[::-1], return_index=True)
        last = (events.num_rows - 1 - rev_first).astype(np.int64)
        r0 = events.column("reserve0").take(pa.array(last)).to_pylist()
        r1 = events.column("reserve1").take(pa.array(last)).to_pylist()
        for pid, a, b in zip(rev_unique.tolist(), r0, r1):
            self.reserve0[pid], self.reserve1[pid] = int(a), int(b)
        self.known[rev_unique] = True

    def advance(self, events: pa.Table, batch: "Batch") -> None:
        """Move to the end of a packed batch: its events applied, its last prices kept."""
        self.apply_events(events)
        self.price_usd = batch.end_price_usd.copy()

    def apply_prices(self, prices: pa.Table) -> None:
        if prices.num_rows:
            self.price_usd[prices.column("token_id").to_numpy()] = prices.column("price_usd").to_numpy()


@dataclass(frozen=True)
class Batch:
    """Flat arrays of one block range; every evaluation pair is (pair_key, pair_path, pair_block)."""

    first_block: int
    n_blocks: int
    # versioned state: log entries of pool p are log_offsets[p] .. log_offsets[p+1]
    log_offsets: np.ndarray      # int64 (n_pools + 1)
    log_key: np.ndarray          # int64
    log_reserve0: np.ndarray     # float64 (screening)
    log_reserve1: np.ndarray
    log_exact0: pa.Array         # decimal128 (exact verification), same order
    log_exact1: pa.Array
    # evaluation pairs
    pair_key: np.ndarray         # int64
    pair_path: np.ndarray        # int32
    pair_block: np.ndarray       # int32, block offset in the batch
    # per block
    base_fee_wei: np.ndarray     # int64 (n_blocks)
    gas_price_wei: np.ndarray    # float64 (n_blocks): base fee + priority fee
    wei_per_raw: np.ndarray      # float64 (n_blocks, n_start_slots): value of one raw unit of a start token in wei
    eth_usd: np.ndarray          # float64 (n_blocks)
    end_price_usd: np.ndarray    # float64 (n_tokens): last reference prices at the batch end (for MarketState)

    @property
    def device_bytes(self) -> int:
        """Bytes this batch occupies on the backend: pair inputs and outputs plus the state log."""
        return self.n_pairs * (8 + 4 + 4 + 3 * 8) + len(self.log_key) * (8 + 8 + 8) + self.log_offsets.nbytes

    @property
    def n_pairs(self) -> int:
        return int(self.pair_key.shape[0])

    def log_index(self, pools: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Vectorized host twin of find_state: log entry of each (pool, key), −1 where the pool has no state."""
        pools = np.asarray(pools, np.int64)
        keys = np.broadcast_to(np.asarray(keys, np.int64), pools.shape)
        lo, hi = self.log_offsets[pools], self.log_offsets[pools + 1]
        log_pool = np.repeat(np.arange(len(self.log_offsets) - 1, dtype=np.int64), np.diff(self.log_offsets))
        span = np.int64(1) << 44  # keys + 1 < 2**44 for any batch under 2**24 blocks
        composite = log_pool * span + self.log_key + 1
        idx = np.searchsorted(composite, pools * span + keys + 1, side="right") - 1
        return np.where((idx >= lo) & (idx < hi), idx, -1)

    def exact_reserves(self, pools, keys) -> tuple[list[int], list[int]]:
        """Exact reserve0s and reserve1s (Python ints) of each (pool, key)."""
        idx = self.log_index(pools, keys).ravel()
        if (idx < 0).any():
            bad = int(np.flatnonzero(idx < 0)[0])
            raise KeyError(f"pool {np.ravel(pools)[bad]} has no state at key {np.ravel(keys)[bad]}")
        take = pa.array(idx)
        return ([int(v) for v in self.log_exact0.take(take).to_pylist()],
                [int(v) for v in self.log_exact1.take(take).to_pylist()])


def pack_batch(first_block: int, last_block: int, blocks: pa.Table, events: pa.Table, prices: pa.Table,
               state: MarketState, paths: Paths, start_slots: np.ndarray, token_decimals: np.ndarray,
               priority_fee_wei: int, evaluate_top: bool) -> Batch:
    """Pack blocks first..last (tables already sliced to that range, events sorted); `state` is only read:
    after evaluating, `state.advance(events, batch)` moves it to the batch end.

    Evaluation points: after every tx that changes a pool's state, for the paths through that pool, and (if
    `evaluate_top`) the top of `first_block` for every path. A later top-of-block would repeat the state of the
    last tx before it, so it is not evaluated again (no opportunity is counted twice).
    """
    n_blocks = last_block - first_block + 1
    n_pools = len(state.known)
    block_numbers = blocks.column("block_number").to_numpy()
    if len(block_numbers) != n_blocks or (n_blocks and (block_numbers[0] != first_block
                                                        or block_numbers[-1] != last_block)):
        raise schema.SchemaError(f"blocks {first_block}..{last_block}: {len(block_numbers)} rows, expected "
                                 f"{n_blocks} consecutive blocks (the dataset has a gap)")

    # --- versioned state log: the batch-start snapshot (key −1) then the batch's events
    snap_pools = np.flatnonzero(state.known).astype(np.int32)
    ev_pool = events.column("pool_id").to_numpy().astype(np.int32)
    ev_key = point_key(events.column("block_number").to_numpy() - first_block,
                       events.column("tx_index").to_numpy())
    all_pool = np.concatenate([snap_pools, ev_pool])
    all_key = np.concatenate([np.full(len(snap_pools), -1, np.int64), ev_key])
    snap0 = pa.array([state.reserve0[p] for p in snap_pools.tolist()], schema.AMOUNT)
    snap1 = pa.array([state.reserve1[p] for p in snap_pools.tolist()], schema.AMOUNT)
    exact0 = pa.concat_arrays([snap0, events.column("reserve0").combine_chunks()])
    exact1 = pa.concat_arrays([snap1, events.column("reserve1").combine_chunks()])
    order = np.argsort(all_pool, kind="stable")  # stable: keeps the key order within a pool
    log_pool = all_pool[order]
    log_key = all_key[order]
    log_exact0 = exact0.take(pa.array(order))
    log_exact1 = exact1.take(pa.array(order))
    log_reserve0 = schema.amounts_to_float(log_exact0)
    log_reserve1 = schema.amounts_to_float(log_exact1)
    log_offsets = np.zeros(n_pools + 1, np.int64)
    np.cumsum(np.bincount(log_pool, minlength=n_pools), out=log_offsets[1:])

    # --- evaluation pairs: events that change a pool's state trigger the paths through that pool
    changed = np.ones(len(log_pool), np.bool_)
    same_pool = log_pool[1:] == log_pool[:-1]
    changed[1:] = ~(same_pool & (log_reserve0[1:] == log_reserve0[:-1]) & (log_reserve1[1:] == log_reserve1[:-1]))
    trigger = changed & (log_key >= 0)
    trig_pool, trig_key = log_pool[trigger], log_key[trigger]
    counts = paths.pool_offsets[trig_pool + 1] - paths.pool_offsets[trig_pool]
    pair_path = paths.through(trig_pool)
    pair_key = np.repeat(trig_key, counts)
    if evaluate_top and len(paths):
        pair_path = np.concatenate([np.arange(len(paths), dtype=np.int32), pair_path])
        pair_key = np.concatenate([np.full(len(paths), -1, np.int64), pair_key])
    # one tx touching several pools of a path must evaluate that path once
    code = np.sort((pair_key + 1) * max(len(paths), 1) + pair_path)  # sort + diff: far faster than np.unique
    if len(code):
        code = code[np.concatenate(([True], code[1:] != code[:-1]))]
    pair_key = code // max(len(paths), 1) - 1
    pair_path = (code % max(len(paths), 1)).astype(np.int32)
    # after tx t of block o the key is (o << 20) + t; the top of block o is (o << 20) − 1: both give o here
    pair_block = ((pair_key + 1) >> KEY_TX_BITS).astype(np.int32)

    # --- per-block gas price and value of start tokens
    base_fee_wei = blocks.column("base_fee_wei").to_numpy().astype(np.int64)
    gas_price_wei = base_fee_wei.astype(np.float64) + float(priority_fee_wei)
    price_block = prices.column("block_number").to_numpy() - first_block
    price_token = prices.column("token_id").to_numpy()
    price_usd = prices.column("price_usd").to_numpy()
    per_block = np.empty((n_blocks, len(state.price_usd)))
    current = state.price_usd.copy()
    cursor = 0
    for b in range(n_blocks):  # forward-fill the sparse price samples
        while cursor < len(price_block) and price_block[cursor] <= b:
            current[price_token[cursor]] = price_usd[cursor]
            cursor += 1
        per_block[b] = current
    eth_usd = per_block[:, WETH]
    if np.isnan(eth_usd).any():
        b = int(np.flatnonzero(np.isnan(eth_usd))[0])
        raise schema.SchemaError(f"prices: no WETH (token 0) price at or before block {first_block + b} "
                                 "(profits are reported in ETH and USD through it)")
    scale = 10.0 ** (18 - token_decimals[start_slots].astype(np.float64))
    wei_per_raw = per_block[:, start_slots] / eth_usd[:, None] * scale[None, :]
    wei_per_raw[:, start_slots == WETH] = 1.0  # exact: profits in WETH are wei

    return Batch(first_block, n_blocks, log_offsets, log_key, log_reserve0, log_reserve1, log_exact0, log_exact1,
                 pair_key.astype(np.int64), pair_path, pair_block, base_fee_wei, gas_price_wei, wei_per_raw, eth_usd,
                 current)
