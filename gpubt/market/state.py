"""The market's exact state at a batch boundary, carried batch to batch: V2 reserves, V3 pools (slot0, liquidity,
initialized ticks) and the last reference prices. Exact: Python ints, as the chain holds them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema


class V3State:
    """Exact state of one V3 pool: slot0 sqrt price and tick, in-range liquidity, initialized ticks
    {tick: [liquidity_gross, liquidity_net]} (Python ints)."""

    __slots__ = ("sqrt_price_x96", "liquidity", "tick", "ticks")

    def __init__(self, sqrt_price_x96: int, liquidity: int, tick: int, ticks: dict | None = None):
        self.sqrt_price_x96, self.liquidity, self.tick = sqrt_price_x96, liquidity, tick
        self.ticks = ticks if ticks is not None else {}

    def modify(self, tick_lower: int, tick_upper: int, liquidity_delta: int) -> None:
        """A mint (delta > 0) or burn (delta < 0) of [tick_lower, tick_upper): Tick.update on both ends."""
        for t, sign in ((tick_lower, 1), (tick_upper, -1)):
            gross, net = self.ticks.get(t, (0, 0))
            gross += liquidity_delta
            if gross < 0:
                raise schema.SchemaError(f"V3 tick {t}: liquidity_gross would be {gross} < 0 (a burn without "
                                         "its mint: the events and snapshot/ticks tables disagree)")
            if gross == 0:
                self.ticks.pop(t, None)
            else:
                self.ticks[t] = (gross, net + sign * liquidity_delta)

    def table(self) -> tuple:
        """(ticks, liquidity_nets, liquidity_grosses) sorted by tick: an immutable tick-table version."""
        ticks = sorted(self.ticks)
        return (tuple(ticks), tuple(self.ticks[t][1] for t in ticks), tuple(self.ticks[t][0] for t in ticks))


def apply_v3_events(v3: dict, events: pa.Table, pool_is_v3: np.ndarray, on_table=None) -> None:
    """Advance the exact V3 states `v3` {pool: V3State} through `events` (sorted); rows of V2 pools are skipped.
    `on_table(row, pool)` is called after every mint/burn row (pack uses it to record tick-table versions)."""
    if events.num_rows == 0 or not pool_is_v3.any():
        return
    pool = events.column("pool_id").to_numpy()
    rows = np.flatnonzero(pool_is_v3[pool])
    if len(rows) == 0:
        return
    sub = events.take(pa.array(rows))
    cols = {c: sub.column(c).to_pylist() for c in ("kind", "sqrt_price_x96", "liquidity", "tick", "tick_lower",
                                                   "tick_upper", "liquidity_delta")}
    for j, (row, pid) in enumerate(zip(rows.tolist(), pool[rows].tolist())):
        sqrt_price, liquidity, tick = cols["sqrt_price_x96"][j], cols["liquidity"][j], cols["tick"][j]
        if sqrt_price is None or liquidity is None or tick is None:
            raise schema.SchemaError(f"events row {row}: V3 pool {pid} without sqrt_price_x96 / liquidity / tick "
                                     "(V3 rows carry the pool's state after the event)")
        state = v3.get(pid)
        if state is None:
            state = v3[pid] = V3State(int(sqrt_price), int(liquidity), int(tick))
        kind = cols["kind"][j]
        if kind in ("mint", "burn"):
            state.modify(int(cols["tick_lower"][j]), int(cols["tick_upper"][j]), int(cols["liquidity_delta"][j]))
        state.sqrt_price_x96, state.liquidity, state.tick = int(sqrt_price), int(liquidity), int(tick)
        if on_table is not None and kind in ("mint", "burn"):
            on_table(row, pid)


class MarketState:
    """Exact pool reserves and last reference prices at the current batch boundary, carried batch to batch.

    V3 pools: `v3` {pool_id: V3State} holds the exact state after every event before block `v3_block`. It is
    loaded on demand (`load_v3`: the partition's SNAPSHOTS + TICKS, then its events up to the block), so a run
    that starts or resumes anywhere gets it, and `advance` carries it from batch to batch.
    """

    def __init__(self, n_pools: int, n_tokens: int):
        self.reserve0 = [0] * n_pools
        self.reserve1 = [0] * n_pools
        self.known = np.zeros(n_pools, np.bool_)
        self.price_usd = np.full(n_tokens, np.nan)
        self.v3: dict[int, V3State] = {}
        self.v3_block = None  # the V3 state is at the top of this block (None: not loaded)
        self.pool_is_v3 = None
        # forked V3 pools' (sqrtPriceX96, liquidity, tick) that the next `load_v3` puts over the dataset's (a
        # checkpoint or the shard before carried them: run/execution.py); the tick tables are history's
        self.v3_overrides: dict = {}

    def load_v3(self, dataset, block: int, pool_is_v3: np.ndarray) -> None:
        """Exact V3 states at the top of `block`: the partition's snapshot and tick tables, then its events."""
        part = next((p for p in dataset.partitions if p[0] <= block <= p[1]), None)
        if part is None:
            raise schema.SchemaError(f"block {block} is in no partition of {dataset.root}")
        self.v3 = {}
        self.pool_is_v3 = pool_is_v3
        snaps = dataset.read_partition("snapshots", part)
        pools = snaps.column("pool_id").to_numpy()
        rows = np.flatnonzero(pool_is_v3[pools] & pc.is_valid(snaps.column("sqrt_price_x96")).to_numpy(
            zero_copy_only=False))
        sub = snaps.take(pa.array(rows))
        columns = (sub.column(name).to_pylist() for name in ("sqrt_price_x96", "liquidity", "tick"))
        for pid, sqrt_price, liquidity, tick in zip(pools[rows].tolist(), *columns):
            if int(sqrt_price) > 0:
                self.v3[pid] = V3State(int(sqrt_price), int(liquidity), int(tick))
        ticks = dataset.read_partition("ticks", part)
        for pid, t, net, gross in zip(ticks.column("pool_id").to_pylist(), ticks.column("tick").to_pylist(),
                                      ticks.column("liquidity_net").to_pylist(),
                                      ticks.column("liquidity_gross").to_pylist()):
            if pid not in self.v3:
                raise schema.SchemaError(f"{dataset.path('ticks', part)}: ticks of pool {pid}, which has no V3 "
                                         "snapshot row (sqrt_price_x96) in that partition")
            self.v3[pid].ticks[int(t)] = (int(gross), int(net))
        events = dataset.read_partition("events", part)
        before = events.slice(0, int(np.searchsorted(events.column("block_number").to_numpy(), block, side="left")))
        apply_v3_events(self.v3, before, pool_is_v3)
        for pid, (sqrt_price, liquidity, tick) in self.v3_overrides.items():
            if pid in self.v3:
                self.v3[pid].sqrt_price_x96, self.v3[pid].liquidity, self.v3[pid].tick = sqrt_price, liquidity, tick
        self.v3_overrides = {}
        self.v3_block = block

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

    def advance(self, events: pa.Table, batch) -> None:
        """Move to the end of a packed batch: its events applied, its last prices kept."""
        self.apply_events(events)
        if self.v3_block is not None:
            apply_v3_events(self.v3, events, self.pool_is_v3)
            self.v3_block = batch.first_block + batch.n_blocks
        self.price_usd = batch.end_price_usd.copy()

    def apply_prices(self, prices: pa.Table) -> None:
        if prices.num_rows:
            self.price_usd[prices.column("token_id").to_numpy()] = prices.column("price_usd").to_numpy()
