"""A forked pool: the exact state of one pool where our bundles (or the history re-executed after them) made it
differ from the dataset's. Python ints, as the chain holds them: V2 reserves, or a V3Pool with its own tick table.

A fork is built from a batch's state at a key (`ForkedPool.at`), then executes swaps, mints and burns in order
(Uniswap's integer math: gpubt.exact.v2 / v3). A swap that cannot go through returns None and leaves the state as
it was, as a reverted transaction does.
"""
from __future__ import annotations

import copy

import numpy as np

from gpubt.exact import v2 as exact_v2
from gpubt.exact import v3 as exact_v3


class ForkedPool:
    __slots__ = ("pool", "is_v3", "fee_ppm", "r0", "r1", "v3", "_table", "_shared", "edits")

    def __init__(self, pool: int, is_v3: bool, fee_ppm: int, r0: int = 0, r1: int = 0, v3=None):
        self.pool, self.is_v3, self.fee_ppm = pool, is_v3, fee_ppm
        self.r0, self.r1 = r0, r1   # V2 reserves; V3: the pool's token balances (kept for the event rows)
        self.v3 = v3                # exact_v3.V3Pool (own tick dict) for V3 pools
        self._table = None          # the V3 tick table as a batch returns it, while no mint/burn changed it
        self._shared = False        # the V3 tick dict is another fork's too (copied before a mint/burn writes it)
        self.edits = 0              # V3 mints and burns executed on the fork (each changes its tick table)

    @classmethod
    def at(cls, batch, pool: int, key: int, fee_ppm: int, tick_spacing: int) -> "ForkedPool":
        """The state of `pool` in `batch` at `key` (after every event with key <= `key`), as a fork."""
        i = batch.log_entry(pool, key)
        if i < 0:
            raise KeyError(f"pool {pool} has no state at key {key}")
        exact0, exact1 = batch.log_exact_ints
        if not batch.pool_is_v3[pool]:
            return cls(pool, False, fee_ppm, exact0[i], exact1[i])
        sqrt_price, liquidity, tick, table = batch.exact_v3_at(i, pool, key)
        v3 = exact_v3.V3Pool(fee=fee_ppm, tick_spacing=tick_spacing)
        v3.sqrt_price_x96, v3.liquidity, v3.tick = sqrt_price, liquidity, tick
        v3.ticks = {t: exact_v3.TickInfo(g, n) for t, n, g in zip(*table)}
        v3.initialized = sorted(t // v3.tick_spacing for t in table[0])
        fork = cls(pool, True, fee_ppm, exact0[i], exact1[i], v3)
        fork._table = table
        return fork

    def copy(self) -> "ForkedPool":
        out = ForkedPool(self.pool, self.is_v3, self.fee_ppm, self.r0, self.r1)
        if self.is_v3:  # swaps only read the ticks: the copy shares them until a mint or burn
            out.v3, out._table, out.edits = copy.copy(self.v3), self._table, self.edits
            out.v3.positions = {}
            out._shared = self._shared = True
        return out

    # -- what a batch lookup returns for a forked pool -------------------------------------------------------------
    def reserves(self) -> tuple[int, int]:
        return self.r0, self.r1

    def v3_state(self) -> tuple[int, int, int, tuple]:
        """(sqrtPriceX96, liquidity, tick, tick table) as Batch.exact_v3_state returns them."""
        if self._table is None:
            ticks = sorted(self.v3.ticks)
            self._table = (tuple(ticks), tuple(self.v3.ticks[t].liquidity_net for t in ticks),
                           tuple(self.v3.ticks[t].liquidity_gross for t in ticks))
        return self.v3.sqrt_price_x96, self.v3.liquidity, self.v3.tick, self._table

    def state_key(self) -> tuple:
        """What a pool's state is compared by (a fork equal to history's state is history again)."""
        if self.is_v3:
            return self.v3.sqrt_price_x96, self.v3.liquidity, self.v3.tick
        return self.r0, self.r1

    def float_key(self) -> tuple:
        """The state as the screening kernels see it (a V3 mint or burn changes the tick table: `_table` reset)."""
        if self.is_v3:
            return self.v3.sqrt_price_x96 / 2**96, float(self.v3.liquidity), self.edits
        return float(self.r0), float(self.r1)

    def price(self) -> float:
        """Raw token1 per raw token0 (marginal, before fees)."""
        if self.is_v3:
            return (self.v3.sqrt_price_x96 / 2**96) ** 2
        return self.r1 / self.r0 if self.r0 else float("nan")

    # -- execution ---------------------------------------------------------------------------------------------------
    def swap_in(self, zero_for_one: bool, amount_in: int) -> int | None:
        """Exact-input swap: the output, or None (state unchanged) when the pool cannot take the whole input."""
        if amount_in <= 0:
            return None
        if self.is_v3:
            o = self._v3_swap(zero_for_one, amount_in)
            if o is None or (o[0] if zero_for_one else o[1]) != amount_in:
                return None
            return self._v3_commit(zero_for_one, amount_in, o)
        r_in, r_out = (self.r0, self.r1) if zero_for_one else (self.r1, self.r0)
        try:
            out = exact_v2.get_amount_out(amount_in, r_in, r_out, self.fee_ppm)
        except ValueError:
            return None
        if out <= 0 or out >= r_out:
            return None
        self._v2_apply(zero_for_one, amount_in, out)
        return out

    def swap_out(self, zero_for_one: bool, amount_out: int) -> int | None:
        """Exact-output swap: the input it takes (V2 getAmountIn, V3 the exact-output swap), or None (unchanged)."""
        if amount_out <= 0:
            return None
        if self.is_v3:
            o = self._v3_swap(zero_for_one, -amount_out)
            if o is None or -(o[1] if zero_for_one else o[0]) != amount_out:
                return None
            paid = o[0] if zero_for_one else o[1]
            self._v3_commit(zero_for_one, -amount_out, o)
            return paid
        r_in, r_out = (self.r0, self.r1) if zero_for_one else (self.r1, self.r0)
        try:
            paid = exact_v2.get_amount_in(amount_out, r_in, r_out, self.fee_ppm)
        except ValueError:
            return None
        self._v2_apply(zero_for_one, paid, amount_out)
        return paid

    def _v2_apply(self, zero_for_one: bool, amount_in: int, amount_out: int) -> None:
        if zero_for_one:
            self.r0, self.r1 = self.r0 + amount_in, self.r1 - amount_out
        else:
            self.r0, self.r1 = self.r0 - amount_out, self.r1 + amount_in

    def _v3_swap(self, zero_for_one: bool, amount_specified: int):
        limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
        try:
            o = self.v3.swap_outcome(zero_for_one, amount_specified, limit, commit=False)
        except exact_v3.V3Revert:
            return None
        return o.amount0, o.amount1

    def _v3_commit(self, zero_for_one: bool, amount_specified: int, quoted) -> int:
        limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
        self.v3.swap_outcome(zero_for_one, amount_specified, limit, commit=True)
        a0, a1 = quoted
        self.r0, self.r1 = self.r0 + a0, self.r1 + a1
        return -(a1 if zero_for_one else a0)

    def v2_share(self, numerator: int, denominator: int, add: bool) -> tuple[int, int]:
        """A V2 mint (add) or burn of the share numerator/denominator of the pool, as the same liquidity tokens
        take or return: floor(reserve · share) of each token. Returns the amounts moved."""
        d0, d1 = self.r0 * numerator // denominator, self.r1 * numerator // denominator
        if add:
            self.r0, self.r1 = self.r0 + d0, self.r1 + d1
        else:
            d0, d1 = min(d0, self.r0 - 1), min(d1, self.r1 - 1)
            self.r0, self.r1 = self.r0 - d0, self.r1 - d1
        return d0, d1

    def v3_modify(self, tick_lower: int, tick_upper: int, liquidity_delta: int) -> tuple[int, int] | None:
        """A V3 mint (delta > 0) or burn (delta < 0) of [tick_lower, tick_upper): the amounts paid in (mint) or
        owed out (burn), or None when the pool reverts it."""
        if self._shared:
            self.v3.ticks, self.v3.initialized = dict(self.v3.ticks), list(self.v3.initialized)
            self._shared = False
        try:
            if liquidity_delta > 0:
                a0, a1 = self.v3.mint(tick_lower, tick_upper, liquidity_delta, owner="fork")
                self.r0, self.r1 = self.r0 + a0, self.r1 + a1
            else:
                # the fork does not track who holds what: the burn is of liquidity minted before the fork
                self.v3.positions[("fork", tick_lower, tick_upper)] = (
                    self.v3.positions.get(("fork", tick_lower, tick_upper), 0) - liquidity_delta)
                a0, a1 = self.v3.burn(tick_lower, tick_upper, -liquidity_delta, owner="fork")
                self.r0, self.r1 = self.r0 - a0, self.r1 - a1
        except exact_v3.V3Revert:
            return None
        self._table = None
        self.edits += 1
        return a0, a1



class ForkView:
    """A copy of the batch's float64 state log with forked pools' current states written over it, so the kernels
    see the market the ordered pass has reached. The pass walks keys in order and writes a fork's state into the
    pool's log entry at the current key (`set`) whenever the fork changes: every entry a kernel reads at the
    current key or later is then current (history's events on a forked pool are re-executed, each writing its
    own entry). The tick tables stay the batch's: a fork changes a V3 pool's price and liquidity, not its ticks
    (history's mints and burns re-execute with their own liquidity)."""

    def __init__(self, batch):
        self.batch = batch
        self.forked = np.zeros(len(batch.log_offsets), np.bool_)  # n_pools + 1: a path's −1 padding reads False
        self.state = list(batch.kernel_state())
        for j in (2, 3, 4, 5, 6):  # reserve0, reserve1, sqrt price, liquidity, tick: the columns a fork writes
            self.state[j] = np.array(self.state[j])

    def kernel_state(self) -> tuple:
        """Batch.kernel_state's arrays, forks written over."""
        return tuple(self.state)

    def set(self, pool: int, fork: "ForkedPool | None", key: int) -> None:
        """The pool's state from `key` on is `fork` (None: the batch's again)."""
        self.forked[pool] = fork is not None
        if fork is None:
            return
        i = self.batch.log_entry(pool, key)
        s = self.state
        s[2][i], s[3][i] = float(fork.r0), float(fork.r1)
        if fork.is_v3:
            s[4][i], s[5][i], s[6][i] = fork.v3.sqrt_price_x96 / 2**96, float(fork.v3.liquidity), fork.v3.tick
