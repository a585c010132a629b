"""Arrow tables of a block range → one columnar `Batch` of flat arrays (host numpy; uploaded once per batch).

Versioned pool state (ARCHITECTURE principle 4): the batch holds, per pool, the state at the batch start
(from `MarketState`) followed by every event of the batch, sorted by key; the state at any evaluation point is
a binary search in that log (kernels/cycles.py: find_state), so evaluation points are independent.

V3 pools: a log entry carries (sqrt price, liquidity, tick) after its event and the version of the pool's
initialized-tick table it sees. The table changes only on mint and burn, so each V3 pool has one table version
at the batch start plus one per mint/burn of the batch; the tables are concatenated (tick_offsets slices them)
and the state at any point is still one binary search plus one index.

Keys: a point key is (block − batch.first_block) << 20 | tx_index (kernels/cycles.py: KEY_TX_BITS); the top of
block o (before its first tx) is (o << 20) − 1.
"""
from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.backend import ContextPool
from gpubt.exact import v3 as exact_v3
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market import prices as market_prices
from gpubt.market.prices import WETH
from gpubt.market.state import MarketState, V3State

LOG_KEY_SPAN = np.int64(1) << 44  # log keys + 1 < 2**44 for any batch under 2**24 blocks (Batch.log_index)
STATE_NAMES = ("log_offsets", "log_key", "log_reserve0", "log_reserve1", "log_sqrt_price", "log_liquidity",
               "log_tick", "log_tick_version", "tick_offsets", "tick_index", "tick_sqrt_price", "tick_liquidity_net")
__all__ = ["Batch", "LOG_KEY_SPAN", "WETH", "pack_batch", "point_key", "tick_sqrt_price"]


def point_key(block_offset, tx_index):
    """Batch-relative key of the state after tx `tx_index` of block first+block_offset (tx −1 = top of block)."""
    return (np.asarray(block_offset, np.int64) << KEY_TX_BITS) + np.asarray(tx_index, np.int64)


@dataclass(frozen=True)
class Batch:
    """Flat arrays of one block range: the versioned pool state, what changed it, gas and prices per block.
    It knows no strategy: each one turns `trigger_pool`/`trigger_key` (and `evaluate_top`) into its own work."""

    first_block: int
    n_blocks: int
    # versioned state: log entries of pool p are log_offsets[p] .. log_offsets[p+1]
    log_offsets: np.ndarray      # int64 (n_pools + 1)
    log_key: np.ndarray          # int64
    log_reserve0: np.ndarray     # float64 (screening)
    log_reserve1: np.ndarray
    log_exact0: pa.Array         # decimal128 (exact verification), same order
    log_exact1: pa.Array
    # state changes: (pool, key) of every event that changed a pool's state, in log order (pool, then key)
    trigger_pool: np.ndarray     # int32
    trigger_key: np.ndarray      # int64
    evaluate_top: bool           # the batch starts the run: evaluate the top of its first block too (key −1)
    pool_is_v3: np.ndarray       # bool (n_pools)
    # per block
    base_fee_wei: np.ndarray     # int64 (n_blocks)
    gas_price_wei: np.ndarray    # float64 (n_blocks): base fee + priority fee
    price_usd: np.ndarray        # float64 (n_blocks, n_tokens): reference USD prices in force (NaN: none yet)
    eth_usd: np.ndarray          # float64 (n_blocks)
    end_price_usd: np.ndarray    # float64 (n_tokens): last reference prices at the batch end (for MarketState)
    # V3 entries of the log (empty arrays when the log has no V3 entry; V2 entries hold 0 / version −1)
    log_sqrt_price: np.ndarray   # float64: sqrtPriceX96 / 2**96
    log_liquidity: np.ndarray    # float64
    log_tick: np.ndarray         # int32
    log_tick_version: np.ndarray  # int32: tick-table version (tick_offsets[v] .. tick_offsets[v+1])
    tick_offsets: np.ndarray     # int64 (n_versions + 1)
    tick_index: np.ndarray       # int32, sorted within a version
    tick_sqrt_price: np.ndarray  # float64: TickMath sqrt ratio / 2**96
    tick_liquidity_net: np.ndarray  # float64
    log_exact_sqrt_price: list   # Python ints (None for V2 entries), same order as the log
    log_exact_liquidity: list
    tick_versions: list          # per version: (ticks, liquidity_nets, liquidity_grosses), Python ints

    @property
    def device_bytes(self) -> int:
        """Bytes the state log occupies on the backend (a strategy adds its own: Strategy.device_bytes)."""
        return (len(self.log_key) * (8 + 8 + 8) + self.log_offsets.nbytes
                + len(self.log_sqrt_price) * (8 + 8 + 4 + 4) + self.tick_offsets.nbytes
                + len(self.tick_index) * (4 + 8 + 8))

    def kernel_state(self) -> tuple:
        """The state-log arrays (host) in the order every kernel takes them (kernels/cycles.py: find_state)."""
        return (self.log_offsets, self.log_key, self.log_reserve0, self.log_reserve1, self.log_sqrt_price,
                self.log_liquidity, self.log_tick, self.log_tick_version, self.tick_offsets, self.tick_index,
                self.tick_sqrt_price, self.tick_liquidity_net)

    def upload(self, context: ContextPool) -> None:
        """Put the state log on the backend through `context`'s reused buffers: once per batch, for every
        strategy (the loop calls it; `device_state` does when nobody did)."""
        arrays = tuple(context.upload(name, array) for name, array in zip(STATE_NAMES, self.kernel_state()))
        self.__dict__.setdefault("_device", {})[context.backend.name] = (context, arrays)

    def device_state(self, backend) -> tuple:
        """The state-log arrays on `backend`, in kernel_state's order (uploaded once)."""
        if backend.name not in self.__dict__.get("_device", {}):
            self.upload(ContextPool(backend))
        return self.__dict__["_device"][backend.name][1]

    def context(self, backend) -> ContextPool:
        """The buffer pool the state log was uploaded through: strategies take their own buffers from it."""
        self.device_state(backend)
        return self.__dict__["_device"][backend.name][0]

    @functools.cached_property
    def log_composite(self) -> np.ndarray:
        """(pool, key) of every log entry folded into one sorted int64 (pool · LOG_KEY_SPAN + key + 1)."""
        log_pool = np.repeat(np.arange(len(self.log_offsets) - 1, dtype=np.int64), np.diff(self.log_offsets))
        return log_pool * LOG_KEY_SPAN + self.log_key + 1

    def log_index(self, pools: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Vectorized host twin of find_state: log entry of each (pool, key), −1 where the pool has no state."""
        pools = np.asarray(pools, np.int64)
        keys = np.broadcast_to(np.asarray(keys, np.int64), pools.shape)
        lo, hi = self.log_offsets[pools], self.log_offsets[pools + 1]
        idx = np.searchsorted(self.log_composite, pools * LOG_KEY_SPAN + keys + 1, side="right") - 1
        return np.where((idx >= lo) & (idx < hi), idx, -1)

    @functools.cached_property
    def _log_lists(self) -> tuple[list[int], list[int]]:
        """log_offsets and log_key as Python lists, for `log_entry` (built once per batch)."""
        return self.log_offsets.tolist(), self.log_key.tolist()

    def log_entry(self, pool: int, key: int) -> int:
        """Scalar log_index: the log entry of one (pool, key), −1 where the pool has no state (a trade leg's
        lookup; the vectorized form costs ~10 µs of array set-up for one element). A bisect on Python lists:
        the ordered exact pass asks ~10^5 times a batch, and np.searchsorted on a slice costs ~4 µs a call."""
        offsets, log_key = self._log_lists
        lo = offsets[pool]
        before = bisect.bisect_right(log_key, key, lo, offsets[pool + 1]) - lo  # entries with key <= `key`
        return lo + before - 1 if before else -1

    # -- the ordered exact pass's forks (gpubt/run/execution.py) -------------------------------------------------
    @property
    def overlay(self) -> dict:
        """{pool: gpubt.market.fork.ForkedPool}: pools whose current state differs from the log (our bundles
        forked them). While the ordered exact pass walks a point, the exact lookups below return a forked pool's
        current state whatever key they ask for (every lookup of a strategy's pricing is at the point walked)."""
        return self.__dict__.get("_overlay") or {}

    def set_overlay(self, forks: dict | None) -> None:
        self.__dict__["_overlay"] = forks

    def exact_reserve(self, pool: int, key: int) -> tuple[int, int]:
        """Exact (reserve0, reserve1) of one V2 pool at `key`."""
        fork = self.overlay.get(pool)
        if fork is not None:
            return fork.reserves()
        i = self.log_entry(pool, key)
        if i < 0:
            raise KeyError(f"pool {pool} has no state at key {key}")
        exact0, exact1 = self.log_exact_ints
        return exact0[i], exact1[i]

    @functools.cached_property
    def log_exact_ints(self) -> tuple[list[int], list[int]]:
        """The exact reserve0s and reserve1s of every log entry as Python ints (built once per batch, ~0.2 µs an
        entry; an Arrow scalar read and int(Decimal) per trade leg cost ~10x that)."""
        return schema.amounts_int(self.log_exact0), schema.amounts_int(self.log_exact1)

    def exact_reserves(self, pools, keys, idx=None) -> tuple[list[int], list[int]]:
        """Exact reserve0s and reserve1s (Python ints) of each (pool, key) (or of the log entries `idx`)."""
        idx = self.log_index(pools, keys).ravel() if idx is None else idx
        if (idx < 0).any():
            bad = int(np.flatnonzero(idx < 0)[0])
            raise KeyError(f"pool {np.ravel(pools)[bad]} has no state at key {np.ravel(keys)[bad]}")
        exact0, exact1 = self.log_exact_ints
        idx = idx.tolist()
        r0, r1 = [exact0[i] for i in idx], [exact1[i] for i in idx]
        overlay = self.overlay
        if overlay:
            for j, pool in enumerate(np.ravel(pools).tolist()):
                if pool in overlay:
                    r0[j], r1[j] = overlay[pool].reserves()
        return r0, r1

    def exact_v3_state(self, pool: int, key: int) -> tuple[int, int, int, tuple]:
        """(sqrtPriceX96, liquidity, tick, tick table) of V3 pool `pool` at `key`, exact."""
        fork = self.overlay.get(pool)
        if fork is not None:
            return fork.v3_state()
        return self.exact_v3_at(self.log_entry(pool, key), pool, key)

    def exact_v3_at(self, i: int, pool=None, key=None) -> tuple[int, int, int, tuple]:
        """exact_v3_state of log entry i (from log_index)."""
        fork = self.overlay.get(pool)
        if fork is not None:
            return fork.v3_state()
        if i < 0 or self.log_exact_sqrt_price[i] is None:
            raise KeyError(f"V3 pool {pool} has no state at key {key}")
        return (self.log_exact_sqrt_price[i], self.log_exact_liquidity[i], int(self.log_tick[i]),
                self.tick_versions[int(self.log_tick_version[i])])


def pack_batch(first_block: int, last_block: int, blocks: pa.Table, events: pa.Table, prices: pa.Table,
               state: MarketState, pool_is_v3: np.ndarray, priority_fee_wei: int, evaluate_top: bool,
               dataset=None) -> Batch:
    """Pack blocks first..last (tables already sliced to that range, events sorted); `state` is only read:
    after evaluating, `state.advance(events, batch)` moves it to the batch end. With V3 pools `dataset` is where
    the state loads its exact V3 state from when it has none at `first_block` (the run's start, or a resume).

    Triggers: every tx that changes a pool's state (a strategy evaluates what goes through that pool there), and
    with `evaluate_top` the top of `first_block`. A later top-of-block would repeat the state of the last tx
    before it, so it is no trigger (no opportunity is counted twice).
    """
    n_blocks = last_block - first_block + 1
    n_pools = len(state.known)
    block_numbers = blocks.column("block_number").to_numpy()
    if len(block_numbers) != n_blocks or (n_blocks and (block_numbers[0] != first_block
                                                        or block_numbers[-1] != last_block)):
        raise schema.SchemaError(f"blocks {first_block}..{last_block}: {len(block_numbers)} rows, expected "
                                 f"{n_blocks} consecutive blocks (the dataset has a gap)")

    # --- versioned state log: the batch-start snapshot (key −1) then the batch's events
    if pool_is_v3.any() and state.v3_block != first_block:
        if dataset is None:
            raise ValueError("pack_batch: the market has V3 pools; pass dataset= to load their exact state")
        state.load_v3(dataset, first_block, pool_is_v3)
    snap_pools = np.flatnonzero(state.known & ~pool_is_v3[:len(state.known)]).astype(np.int32)
    v3_snap_pools = np.asarray(sorted(state.v3), np.int32) if pool_is_v3.any() else np.empty(0, np.int32)
    snap_pools = np.concatenate([snap_pools, v3_snap_pools])
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
    # floats correctly rounded from the exact ints (Arrow's decimal cast is not: a 1-ulp difference from a fork's
    # float(int) in the ordered pass would move a V3 cycle's float optimum, and its integer input)
    exact_ints = (schema.amounts_int(log_exact0), schema.amounts_int(log_exact1))
    log_reserve0 = np.fromiter(map(float, exact_ints[0]), np.float64, len(exact_ints[0]))
    log_reserve1 = np.fromiter(map(float, exact_ints[1]), np.float64, len(exact_ints[1]))
    log_offsets = np.zeros(n_pools + 1, np.int64)
    np.cumsum(np.bincount(log_pool, minlength=n_pools), out=log_offsets[1:])
    v3_log = _v3_log(state, events, pool_is_v3, v3_snap_pools, len(snap_pools), order)

    # --- triggers: the events that change a pool's state
    changed = np.ones(len(log_pool), np.bool_)
    same_pool = log_pool[1:] == log_pool[:-1]
    same_state = same_pool & (log_reserve0[1:] == log_reserve0[:-1]) & (log_reserve1[1:] == log_reserve1[:-1])
    if len(v3_log["log_sqrt_price"]):
        for name in ("log_sqrt_price", "log_liquidity", "log_tick_version"):
            same_state &= v3_log[name][1:] == v3_log[name][:-1]
    changed[1:] = ~same_state
    trigger = changed & (log_key >= 0)

    # --- per-block gas price and value of start tokens
    base_fee_wei = blocks.column("base_fee_wei").to_numpy().astype(np.int64)
    gas_price_wei = base_fee_wei.astype(np.float64) + float(priority_fee_wei)
    per_block = market_prices.per_block(prices, first_block, n_blocks, state.price_usd)
    eth_usd = per_block[:, WETH]
    if np.isnan(eth_usd).any():
        b = int(np.flatnonzero(np.isnan(eth_usd))[0])
        raise schema.SchemaError(f"prices: no WETH (token 0) price at or before block {first_block + b} "
                                 "(profits are reported in ETH and USD through it)")
    end_price_usd = per_block[-1].copy() if n_blocks else state.price_usd.copy()

    batch = Batch(first_block, n_blocks, log_offsets, log_key, log_reserve0, log_reserve1, log_exact0, log_exact1,
                 log_pool[trigger].astype(np.int32), log_key[trigger], bool(evaluate_top), pool_is_v3,
                 base_fee_wei, gas_price_wei, per_block, eth_usd, end_price_usd, **v3_log)
    batch.__dict__["log_exact_ints"] = exact_ints  # the cached_property, from the ints already made
    return batch


Q96 = float(2**96)


@functools.lru_cache(maxsize=None)
def tick_sqrt_price(tick: int) -> float:
    """TickMath.getSqrtRatioAtTick(tick) / 2**96 as a float (what the kernel compares a price against)."""
    return exact_v3.get_sqrt_ratio_at_tick(tick) / Q96


def _v3_log(state: MarketState, events: pa.Table, pool_is_v3: np.ndarray, v3_snap_pools: np.ndarray,
            n_snap: int, order: np.ndarray) -> dict:
    """The V3 columns of the state log (in log order) and the tick-table versions of the batch.

    Snapshot entries (the last len(v3_snap_pools) of the n_snap snapshot entries) see their pool's batch-start
    table; an event sees its pool's table after every mint/burn up to and including it."""
    n_log = len(order)
    n_events = events.num_rows
    ev_pool = events.column("pool_id").to_numpy()
    ev_v3 = pool_is_v3[ev_pool] if n_events else np.zeros(0, np.bool_)
    if len(v3_snap_pools) == 0 and not ev_v3.any():
        empty_f, empty_i = np.empty(0, np.float64), np.empty(0, np.int32)
        return dict(log_sqrt_price=empty_f, log_liquidity=empty_f, log_tick=empty_i, log_tick_version=empty_i,
                    tick_offsets=np.zeros(1, np.int64), tick_index=empty_i, tick_sqrt_price=empty_f,
                    tick_liquidity_net=empty_f, log_exact_sqrt_price=[None] * n_log,
                    log_exact_liquidity=[None] * n_log, tick_versions=[])
    versions: list = []
    current = {}  # pool → V3State copy walked through the batch's mint/burns
    version_of_pool = {}
    for pid in v3_snap_pools.tolist():
        st = state.v3[pid]
        current[pid] = V3State(st.sqrt_price_x96, st.liquidity, st.tick, dict(st.ticks))
        version_of_pool[pid] = len(versions)
        versions.append(current[pid].table())
    # the V3 rows of the events: their exact state columns, and the table version each one sees
    sqrt_col = events.column("sqrt_price_x96").to_pylist()
    liq_col = events.column("liquidity").to_pylist()
    tick_col = events.column("tick").fill_null(0).to_numpy() if n_events else np.zeros(0, np.int32)
    ev_version = np.full(n_events, -1, np.int32)
    kinds = events.column("kind").to_pylist()
    lower = events.column("tick_lower").to_pylist()
    upper = events.column("tick_upper").to_pylist()
    delta = events.column("liquidity_delta").to_pylist()
    for row in np.flatnonzero(ev_v3).tolist():
        pid = int(ev_pool[row])
        if sqrt_col[row] is None or liq_col[row] is None:
            raise schema.SchemaError(f"events row {row}: V3 pool {pid} without sqrt_price_x96 / liquidity")
        st = current.get(pid)
        if st is None:  # the pool's first state (its initialize) is in this batch
            st = current[pid] = V3State(0, 0, 0)
            version_of_pool[pid] = len(versions)
            versions.append(st.table())
        if kinds[row] in ("mint", "burn"):
            st.modify(int(lower[row]), int(upper[row]), int(delta[row]))
            version_of_pool[pid] = len(versions)
            versions.append(st.table())
        ev_version[row] = version_of_pool[pid]

    snap_sqrt = [None] * (n_snap - len(v3_snap_pools)) + [state.v3[p].sqrt_price_x96 for p in v3_snap_pools.tolist()]
    snap_liq = [None] * (n_snap - len(v3_snap_pools)) + [state.v3[p].liquidity for p in v3_snap_pools.tolist()]
    snap_tick = np.zeros(n_snap, np.int32)
    snap_tick[n_snap - len(v3_snap_pools):] = [state.v3[p].tick for p in v3_snap_pools.tolist()]
    snap_version = np.full(n_snap, -1, np.int32)
    snap_version[n_snap - len(v3_snap_pools):] = np.arange(len(v3_snap_pools), dtype=np.int32)  # created first
    all_sqrt = snap_sqrt + [None if v is None else int(v) for v in sqrt_col]
    all_liq = snap_liq + [None if v is None else int(v) for v in liq_col]
    order_list = order.tolist()
    log_exact_sqrt = [all_sqrt[j] for j in order_list]
    log_exact_liq = [all_liq[j] for j in order_list]
    log_sqrt_price = np.array([0.0 if v is None else v / Q96 for v in log_exact_sqrt], np.float64)
    log_liquidity = np.array([0.0 if v is None else float(v) for v in log_exact_liq], np.float64)
    log_tick = np.concatenate([snap_tick, tick_col.astype(np.int32)])[order]
    log_tick_version = np.concatenate([snap_version, ev_version])[order]

    sizes = np.array([len(v[0]) for v in versions], np.int64)
    tick_offsets = np.zeros(len(versions) + 1, np.int64)
    np.cumsum(sizes, out=tick_offsets[1:])
    flat_ticks = [t for v in versions for t in v[0]]
    return dict(
        log_sqrt_price=log_sqrt_price, log_liquidity=log_liquidity, log_tick=log_tick.astype(np.int32),
        log_tick_version=log_tick_version.astype(np.int32), tick_offsets=tick_offsets,
        tick_index=np.array(flat_ticks, np.int32),
        tick_sqrt_price=np.array([tick_sqrt_price(t) for t in flat_ticks], np.float64),
        tick_liquidity_net=np.array([float(n) for v in versions for n in v[1]], np.float64),
        log_exact_sqrt_price=log_exact_sqrt, log_exact_liquidity=log_exact_liq, tick_versions=versions)


def iter_batches(dataset, first: int, last: int, batch_blocks: int, priority_fee_wei: int):
    """Batches of first..last of `dataset` packed as the run's loop packs them (evaluate_top on the first; the
    state carried from the dataset's first snapshot through each batch), without the loop's checkpoints,
    forks and results: for tests and benchmarks that drive one strategy's `evaluate`."""
    from gpubt.market.pools import PoolTable

    def rows_in(table, lo, hi):
        b = table.column("block_number").to_numpy()
        return table.filter((b >= lo) & (b <= hi))

    n_tokens = int(dataset.tokens.column("token_id").to_numpy().max()) + 1
    n_pools = int(dataset.pools.column("pool_id").to_numpy().max()) + 1
    state = MarketState(n_pools, n_tokens)
    blocks, events, prices = dataset.read("blocks"), dataset.read("events"), dataset.read("prices")
    state.load_snapshot(dataset.read_partition("snapshots", dataset.partitions[0]))
    state.apply_events(rows_in(events, dataset.first_block, first - 1))
    state.apply_prices(rows_in(prices, dataset.first_block, first - 1))
    is_v3 = PoolTable(dataset.pools).is_v3
    for lo in range(first, last + 1, batch_blocks):
        hi = min(lo + batch_blocks - 1, last)
        ev = rows_in(events, lo, hi)
        batch = pack_batch(lo, hi, rows_in(blocks, lo, hi), ev, rows_in(prices, lo, hi), state, is_v3,
                           priority_fee_wei, evaluate_top=lo == first, dataset=dataset)
        yield batch
        state.advance(ev, batch)
