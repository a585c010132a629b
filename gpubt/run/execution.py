"""The ordered exact pass: the bundles we send execute at their points, fork the pools they touch, and the
history that follows on a forked pool is re-executed on it (ARCHITECTURE principle 4; docs/execution.md).

`execution=counterfactual` (the default), per batch:

1. Projection. Pools our earlier batches forked differ from the dataset. Every historical tx touching one is
   re-executed on the forked state (`Walker`) and the batch's events are rewritten with the outcome, so the
   strategies' parallel screen runs on the market as our past trades left it.
2. Screen and propose. Every strategy screens and exactly prices on that projected batch, as in replay mode; what
   it would take are proposals.
3. The ordered pass walks the batch's points in (block, tx) order. At a point: the historical tx re-executes on
   the pools our bundles of this batch changed; cyclic arbitrage screens again where a fork made the projected
   screen stale (`Strategy.rescreen`: what only the changed state makes profitable is found, what it closed is
   gone); the proposals are chosen best first across strategies, one per victim; one touching a pool a bundle
   changed is priced again on its current state (`trade["_reprice"]`), or dropped when it cannot be; each
   chosen bundle is sent, and if it wins the builder's auction (`competition`: the realized outcome the summary
   reports, decided here as it is sent) its effects (`Strategy.effects`) execute on the forks; a lost one leaves
   the market as history has it (the rival's bundle that won is history's).
4. The market state carried to the next batch takes the forks' final states.

Re-execution rule (`Walker`): a tx touching a forked pool runs again, all of it, with its historical inputs
(a swap's input; a swap whose input is the previous swap's output in the same tx takes the new output, as a
router or a searcher's contract chains them; an exact-output victim asks its historical output). A user swap
reverts when its limit fails: the VICTIMS row's (amountOutMin, or amountInMax for exact-output), otherwise
`default_slippage_bps` below its historical output (the interface's default tolerance). A labeled searcher's tx
(LABELS) reverts when it no longer pays: its historical profit plus the change of its profit-token flows <= 0.
V2 mints and burns move the same share of the pool; V3 ones the same liquidity. A reverted tx leaves its pools as
they were (so the pools it would have touched fork too). A fork ends when its state equals history's again.
`execution=replay` keeps the proposals as they are: every point sees history, whatever we traded.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.schema import WEI_PER_ETH
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.batch import point_key
from gpubt.market.fork import ForkedPool, ForkView
from gpubt.market.pools import PoolTable

MODES = ("counterfactual", "replay")
# summary.json `execution` counts (docs/metrics.md, "Execution")
REACTION_KEYS = ("executed_trades", "executed_net_wei", "executed_wins", "reexecuted_txs", "reverted_user_swaps",
                 "preempted_rivals", "bundles", "conflicts", "repriced", "repriced_dropped", "stale_dropped",
                 "victims_in_bundles", "reverted_victims_in_bundles", "lost_bundles")


class ExecutionMismatch(RuntimeError):
    """A bundle's effects did not reproduce its exact pricing on the forked state (a bug, never expected)."""


class History:
    """One batch's historical transactions as Python ints, grouped by tx (events sorted by block, tx, log), with
    the users' limits (VICTIMS) and the labeled searchers' txs (LABELS) they carry."""

    def __init__(self, events: pa.Table, first_block: int, victims: pa.Table | None, labels: pa.Table | None,
                 pools: PoolTable):
        self.pools = pools
        n = events.num_rows
        self.block = events.column("block_number").to_numpy()
        self.tx = events.column("tx_index").to_numpy()
        self.key = point_key(self.block - first_block, self.tx) if n else np.zeros(0, np.int64)
        starts = np.flatnonzero(np.r_[True, self.key[1:] != self.key[:-1]]) if n else np.zeros(0, np.int64)
        self.tx_start = np.r_[starts, n].astype(np.int64)
        self.tx_key = self.key[starts]
        self.pool_np = events.column("pool_id").to_numpy()
        # the same as Python ints: `walk_tx` asks at every tx of the batch whether it touches a fork
        self.pool_list = self.pool_np.tolist()
        self.tx_bounds = list(zip(self.tx_start[:-1].tolist(), self.tx_start[1:].tolist(), self.tx_key.tolist()))
        self._events = events
        self._cols = None
        self.victims = {}
        if victims is not None and victims.num_rows:
            exact_out = schema.victims_exact_output(victims).tolist()
            for b, t, p, a_in, a_min, eo in zip(victims.column("block_number").to_pylist(),
                                                 victims.column("tx_index").to_pylist(),
                                                 victims.column("pool_id").to_pylist(),
                                                 schema.amounts_int(victims.column("amount_in")),
                                                 schema.amounts_int(victims.column("amount_out_min")), exact_out):
                self.victims[(b, t, p)] = (bool(eo), a_in, a_min)
        self.labels = {}
        if labels is not None and labels.num_rows:
            for b, t, kind, token, profit in zip(labels.column("block_number").to_pylist(),
                                                 labels.column("tx_index").to_pylist(),
                                                 labels.column("kind").to_pylist(),
                                                 labels.column("profit_token").to_pylist(),
                                                 schema.amounts_int(labels.column("profit_raw"))):
                self.labels[(b, t)] = (kind, token, profit)

    @property
    def cols(self) -> dict:
        """The event columns as Python lists (built on first use: only batches with a fork need them)."""
        if self._cols is None:
            e = self._events
            c = {name: e.column(name).to_pylist() for name in ("pool_id", "kind", "block_number", "tx_index")}
            for name in ("amount0_in", "amount1_in", "amount0_out", "amount1_out", "reserve0", "reserve1"):
                c[name] = schema.amounts_int(e.column(name))
            for name in ("sqrt_price_x96", "liquidity", "liquidity_delta"):  # decimal256: through Decimal
                c[name] = ([None if v is None else int(v) for v in e.column(name).to_pylist()]
                           if name in e.column_names else [None] * e.num_rows)
            for name in ("tick", "tick_lower", "tick_upper"):
                c[name] = e.column(name).to_pylist() if name in e.column_names else [None] * e.num_rows
            self._cols = c
        return self._cols

    def rewritten(self, post: dict) -> pa.Table:
        """The events table with the re-executed rows' states (`post`: row -> the pool's ForkedPool state tuple
        (reserve0, reserve1, sqrt price, liquidity, tick) after the row, or before it where its tx reverted)."""
        if not post:
            return self._events
        e, c = self._events, self.cols
        cols = {name: list(c[name]) for name in ("reserve0", "reserve1", "sqrt_price_x96", "liquidity", "tick")}
        for row, (r0, r1, sqrt_price, liquidity, tick) in post.items():
            cols["reserve0"][row], cols["reserve1"][row] = r0, r1
            if sqrt_price is not None:
                cols["sqrt_price_x96"][row], cols["liquidity"][row], cols["tick"][row] = sqrt_price, liquidity, tick
        for name, values in cols.items():
            i = e.column_names.index(name)
            e = e.set_column(i, e.schema.field(name), pa.array(values, e.schema.field(name).type))
        return e


def _post_state(fork: ForkedPool) -> tuple:
    if fork.is_v3:
        return fork.r0, fork.r1, fork.v3.sqrt_price_x96, fork.v3.liquidity, fork.v3.tick
    return fork.r0, fork.r1, None, None, None


class Walker:
    """Carries forked pools through a batch in (block, tx) order: re-executes the historical txs that touch
    them (the module docstring's rule) and executes our bundles' effects. `batch` is where a pool not forked yet
    takes its state from (and what a fork is compared with, to end it)."""

    def __init__(self, batch, history: History, slippage_bps: int, counts: dict, divergence: dict,
                 forks: dict | None = None):
        self.batch, self.h = batch, history
        self.keep_bps = 10_000 - int(slippage_bps)
        self.counts, self.divergence = counts, divergence
        self.forks: dict[int, ForkedPool] = {} if forks is None else forks
        self.view = None            # a ForkView the ordered pass screens on (kept in step with the forks)
        self.consumed: set = set()  # (key, pool) of historical swaps one of our bundles executed (its victims)
        self.outcomes: dict = {}    # tx key -> "ok" | "user" (a user's swap reverted) | "rival" (a labeled tx did)
        self.last = None            # (tx key, pools it touched, pools whose state it changed) of the last re-execution
        self.post: dict = {}        # event row -> post state (the projection's rewritten rows)

    def new_fork(self, pool: int, key: int) -> ForkedPool:
        p = self.h.pools
        return ForkedPool.at(self.batch, pool, key, int(p.fee_ppm[pool]), int(p.tick_spacing[pool]))

    def fork(self, pool: int, key: int) -> ForkedPool:
        """The pool's current state as a fork (from the batch at `key` when it is not forked yet)."""
        f = self.forks.get(pool)
        if f is None:
            f = self.forks[pool] = self.new_fork(pool, key)
            self._diverged(pool, key)
        return f

    def _set(self, pool: int, fork: ForkedPool | None, key: int) -> None:
        if fork is None:
            self.forks.pop(pool, None)
        else:
            self.forks[pool] = fork
        if self.view is not None:
            self.view.set(pool, fork, key)

    def _diverged(self, pool: int, key: int) -> None:
        d = self.divergence.setdefault(pool, [0, 0, 0.0, 0, None])  # forks, blocks forked, Σ|Δprice|, n, since
        if d[4] is None:
            d[0] += 1
            d[4] = self.batch.first_block + ((key + 1) >> KEY_TX_BITS)

    def _ended(self, pool: int, key: int) -> None:
        d = self.divergence.get(pool)
        if d is not None and d[4] is not None:
            d[1] += self.batch.first_block + ((key + 1) >> KEY_TX_BITS) - d[4]
            d[4] = None

    # -- history ------------------------------------------------------------------------------------------------
    def walk_tx(self, g: int) -> None:
        """Re-execute tx group g when it touches a forked pool."""
        lo, hi, key = self.h.tx_bounds[g]
        pools = self.h.pool_list[lo:hi]
        if self.consumed:
            pools = [p for p in pools if (key, p) not in self.consumed]
        if not any(p in self.forks for p in pools):  # (a victim's swap one of our bundles executed is not again)
            return
        self._reexecute(lo, hi, key)

    def _reexecute(self, lo: int, hi: int, key: int) -> None:
        h, c = self.h, self.h.cols
        block, tx = c["block_number"][lo], c["tx_index"][lo]
        label = h.labels.get((block, tx))
        tentative: dict[int, ForkedPool] = {}
        try:
            for r in range(lo, hi):
                p = c["pool_id"][r]
                if p not in tentative:
                    f = self.forks.get(p)
                    tentative[p] = f.copy() if f is not None else self.new_fork(p, key - 1)
        except KeyError:  # a pool created in this tx (no state before it): history stands
            return
        pre = {p: f.float_key() for p, f in tentative.items()}
        delta = defaultdict(int)   # token -> change of the sender's net receipts against history
        swaps = []                 # (hist_out, new_out, chained from the previous swap, victim limit known)
        prev = None                # (hist_out, new_out, token_out) of the tx's last swap
        reverted = False
        for r in range(lo, hi):
            p, kind = c["pool_id"][r], c["kind"][r]
            if (key, p) in self.consumed:
                continue
            s = tentative[p]
            if kind == "swap":
                net0 = c["amount0_in"][r] - c["amount0_out"][r]
                zfo = net0 > 0
                hist_in = net0 if zfo else c["amount1_in"][r] - c["amount1_out"][r]
                hist_out = (c["amount1_out"][r] - c["amount1_in"][r]) if zfo else -net0
                if hist_in <= 0 or hist_out <= 0:
                    continue  # not a plain swap (a flash swap paying back both sides): its delta stays historical
                t_in = int(h.pools.token0[p] if zfo else h.pools.token1[p])
                t_out = int(h.pools.token1[p] if zfo else h.pools.token0[p])
                victim = h.victims.get((block, tx, p))
                chained = prev is not None and prev[2] == t_in and prev[0] == hist_in
                if victim is not None and victim[0]:  # exact output: the user asks its amount, pays at most max
                    new_out = victim[2]
                    new_in = s.swap_out(zfo, new_out)
                    ok = new_in is not None and new_in <= victim[1]
                else:
                    new_in = prev[1] if chained else hist_in
                    new_out = s.swap_in(zfo, new_in)
                    ok = new_out is not None and (victim is None or new_out >= victim[2])
                if not ok:
                    reverted = True
                    break
                delta[t_in] -= new_in - hist_in
                delta[t_out] += new_out - hist_out
                swaps.append((hist_out, new_out, chained, victim is not None))
                prev = (hist_out, new_out, t_out)
            elif kind in ("mint", "burn"):
                prev = None
                if s.is_v3:
                    if c["liquidity_delta"][r] is None or s.v3_modify(c["tick_lower"][r], c["tick_upper"][r],
                                                                     int(c["liquidity_delta"][r])) is None:
                        reverted = True
                        break
                elif kind == "mint":
                    a0, a1 = c["amount0_in"][r], c["amount1_in"][r]
                    pre0, pre1 = c["reserve0"][r] - a0, c["reserve1"][r] - a1
                    if pre0 > 0 and pre1 > 0:  # the share the LP's liquidity tokens are of the pool: the lesser
                        num, den = (a0, pre0) if a0 * pre1 <= a1 * pre0 else (a1, pre1)
                        s.v2_share(num, den, add=True)
                else:
                    a0 = c["amount0_out"][r]
                    if a0 > 0:
                        s.v2_share(a0, c["reserve0"][r] + a0, add=False)
            else:  # sync, initialize: a fork keeps its own state
                prev = None
        if not reverted and swaps and label is None:
            # a user's swap (or chain of swaps) with no limit on record: the interface's default slippage
            for i, (hist_out, new_out, _, known) in enumerate(swaps):
                chain_end = i + 1 == len(swaps) or not swaps[i + 1][2]
                if chain_end and not known and new_out * 10_000 < hist_out * self.keep_bps:
                    reverted = True
                    break
        if not reverted and label is not None:
            kind, token, profit = label
            reverted = profit + delta[token] <= 0
        self.outcomes[key] = ("rival" if label is not None else "user") if reverted else "ok"
        # a reverted tx leaves its pools as they were: forked ones as forked, the others at the batch's state
        # before it (which differs from history's after it: they fork too)
        final = {p: self.forks.get(p) or self.new_fork(p, key - 1) for p in tentative} if reverted else tentative
        # what this tx did to the pools' counterfactual states: the points where paths through them are evaluated
        # (a change the float state shows, as the batch's triggers are: gpubt/market/batch.py)
        self.last = (key, set(tentative), {p for p, f in final.items() if f.float_key() != pre[p]})
        for p, f in final.items():
            self._commit(p, f, key)
        for r in range(lo, hi):  # the projected log's rows: the state after the tx (before it, if it reverted)
            self.post[r] = _post_state(final[c["pool_id"][r]])

    def _commit(self, pool: int, fork: ForkedPool, key: int) -> None:
        """Keep `fork` as the pool's state after the tx at `key`, unless it equals the batch's state there."""
        i = self.batch.log_entry(pool, key)
        if i >= 0 and fork.state_key() == self._batch_state_key(pool, i):
            if pool in self.forks:
                self._set(pool, None, key)
                self._ended(pool, key)
            return
        if pool not in self.forks:
            self._diverged(pool, key)
        self._set(pool, fork, key)
        if i >= 0:
            d = self.divergence.setdefault(pool, [1, 0, 0.0, 0, self.batch.first_block])
            reference = self._batch_price(pool, i)
            if reference > 0:
                d[2] += abs(fork.price() / reference - 1.0)
                d[3] += 1

    def _batch_state_key(self, pool: int, i: int) -> tuple:
        if self.batch.pool_is_v3[pool]:
            return self.batch.log_exact_sqrt_price[i], self.batch.log_exact_liquidity[i], int(self.batch.log_tick[i])
        exact0, exact1 = self.batch.log_exact_ints
        return exact0[i], exact1[i]

    def _batch_price(self, pool: int, i: int) -> float:
        if self.batch.pool_is_v3[pool]:
            return float(self.batch.log_sqrt_price[i]) ** 2
        r0, r1 = self.batch.log_reserve0[i], self.batch.log_reserve1[i]
        return r1 / r0 if r0 > 0 else 0.0

    # -- our bundles ----------------------------------------------------------------------------------------------
    def execute(self, ops: list, key: int) -> None:
        """Execute one of our bundles' effects at `key` (Strategy.effects); raise ExecutionMismatch when an amount
        differs from the bundle's exact pricing."""
        self.counts["bundles"] += 1
        for op in ops:
            kind = op[0]
            if kind == "route":  # ("route", pools, zero_for_one, amount_in, expected amount out)
                _, pools, zfos, amount, expected = op
                for pool, zfo in zip(pools, zfos):
                    out = self.fork(pool, key).swap_in(bool(zfo), amount)
                    if out is None:
                        raise ExecutionMismatch(f"bundle at key {key}: pool {pool} cannot take {amount}")
                    amount = out
                if expected is not None and amount != expected:
                    raise ExecutionMismatch(f"bundle at key {key} through {list(pools)}: out {amount} != priced "
                                            f"{expected}")
            elif kind == "victim":
                # ("victim", pool, victim key, zero_for_one, exact output, paid, received): a user's swap inside our
                # bundle, as the bundle was priced (paid = received = 0: it reverted there); checked on the fork
                _, pool, victim_key, zfo, exact_out, paid, received = op
                self.counts["victims_in_bundles"] += 1
                self.consumed.add((victim_key, pool))
                if paid == received == 0:
                    self.counts["reverted_victims_in_bundles"] += 1
                    continue
                fork = self.fork(pool, key)
                if not fork.is_v3 and received == 0:  # a dust input paying out nothing: the pair's reserves move
                    fork._v2_apply(bool(zfo), paid, 0)
                    continue
                got = (received, fork.swap_out(bool(zfo), received)) if exact_out else (
                    fork.swap_in(bool(zfo), paid), paid)
                if got != (received, paid):
                    raise ExecutionMismatch(f"bundle at key {key}: victim at key {victim_key} on pool {pool} "
                                            f"(received, paid) {got} != priced {(received, paid)}")
            elif kind == "modify":  # ("modify", pool, tick_lower, tick_upper, liquidity delta)
                _, pool, lower, upper, liquidity_delta = op
                if self.fork(pool, key).v3_modify(lower, upper, liquidity_delta) is None:
                    raise ExecutionMismatch(f"bundle at key {key}: pool {pool} reverts modify {op[2:]}")
            else:
                raise ValueError(f"unknown bundle op {kind!r}")
            for pool in ([op[1]] if kind != "route" else op[1]):
                self._set(pool, self.forks[pool], key)
        for victim_key, pool in [op[2:0:-1] for op in ops if op[0] == "victim"]:
            # the victims' own txs are the bundle's now: the state from theirs on is the bundle's end state
            self._set(pool, self.forks[pool], victim_key)


class Execution:
    """Per run: the execution mode, the pools forked at the current batch boundary, and the reaction's counts
    (summary.json `execution`). The loop calls `project` before the strategies screen a batch, `execute` with
    their proposals, then `advance` with the market state."""

    def __init__(self, mode: str, dataset, strategies, slippage_bps: int = 50, auction=None, closed_blocks=()):
        """`auction`: the run's gpubt.market.auction.BuilderAuction (None: every bundle sent lands); a bundle that
        loses it, or is sent in one of `closed_blocks` (builders that took no bundles), never touches the market."""
        if mode not in MODES:
            raise ValueError(f"execution={mode!r}: choose one of {', '.join(MODES)}")
        if not 0 <= int(slippage_bps) < 10_000:
            raise ValueError(f"execution.default_slippage_bps = {slippage_bps}: must be in 0..9999")
        self.mode, self.slippage_bps = mode, int(slippage_bps)
        self.auction = auction if auction is not None and auction.enabled else None
        self.closed_blocks = frozenset(int(b) for b in closed_blocks)
        self.strategies = list(strategies)
        self.pools = PoolTable(dataset.pools)
        self.forked: set[int] = set()
        self.counts = dict.fromkeys(REACTION_KEYS, 0)
        self.divergence: dict = {}  # pool -> [forks, blocks forked, Σ|Δprice|, samples, forked since block]
        self._final: dict = {}
        self._history = None
        self._projected_forks: dict = {}
        self._outcomes: dict = {}
        self.opportunities: dict = {}

    @property
    def counterfactual(self) -> bool:
        return self.mode == "counterfactual"

    def history(self, batch, events, victims, labels) -> History:
        return History(events, batch.first_block, victims, labels, self.pools)

    def project(self, batch, events: pa.Table, victims, labels) -> pa.Table:
        """Step 1: the batch's events re-executed on the pools forked at its start (`batch` is packed from the
        forked market state and the historical events); returns the events the strategies' batch is packed from."""
        self._projected_forks, self._outcomes = {}, {}
        if not self.counterfactual:
            return events
        self._history = history = self.history(batch, events, victims, labels)
        if not self.forked:
            return events
        walker = Walker(batch, history, self.slippage_bps, self.counts, self.divergence)
        for pool in sorted(self.forked):
            try:
                walker.forks[pool] = walker.new_fork(pool, -1)
            except KeyError:
                continue
        for g in range(len(history.tx_key)):
            if walker.forks:
                walker.walk_tx(g)
        self._projected_forks = walker.forks
        self._outcomes = walker.outcomes
        return history.rewritten(walker.post)

    def execute(self, batch, proposals: dict) -> dict:
        """Step 3: name -> the trades executed, from name -> the strategy's proposals (trades it would take)."""
        by_name = {s.name: s for s in self.strategies}
        if not self.counterfactual:
            for name, trades in proposals.items():
                for trade in trades:
                    self._executed(by_name[name], trade)
            self._final = {}
            return {name: [public_row(t) for t in trades] for name, trades in proposals.items()}
        history = self._history
        walker = Walker(batch, history, self.slippage_bps, self.counts, self.divergence)
        at_key = defaultdict(list)
        for name, trades in proposals.items():
            for trade in trades:
                at_key[_trade_key(trade, batch)].append((name, trade))
        rescreeners = [s for s in self.strategies if s.can_rescreen]
        screen_keys = set()
        for s in rescreeners:
            screen_keys.update(s.rescreen_keys(batch).tolist())
        triggers = defaultdict(list)  # key -> the pools whose projected state changed there
        for pool, k in zip(batch.trigger_pool.tolist(), batch.trigger_key.tolist()):
            triggers[k].append(pool)
        tx_of_key = {int(k): g for g, k in enumerate(history.tx_key.tolist())}
        keys = sorted(set(at_key) | set(tx_of_key) | screen_keys)
        executed = {name: [] for name in proposals}
        self.opportunities = {}  # name -> the OPPORTUNITIES tables `rescreen` found (the loop keeps them)
        walker.view = view = ForkView(batch)
        batch.set_overlay(walker.forks)
        try:
            for key in keys:
                g = tx_of_key.get(key)
                touched = changed = ()
                if g is not None and walker.forks:
                    walker.walk_tx(g)
                    if walker.last is not None and walker.last[0] == key:
                        _, touched, changed = walker.last
                here = at_key.get(key, [])
                if (walker.forks and key in screen_keys) or touched:
                    for s in rescreeners:
                        superseded, result = s.rescreen(batch, key, view, touched, changed, triggers.get(key, ()))
                        if result.opportunities.num_rows:
                            self.opportunities.setdefault(s.name, []).append(result.opportunities)
                        if superseded:
                            for name, trade in here:
                                if name == s.name and trade["path_id"] in superseded:
                                    s.dropped(trade)
                            here = [(n, t) for n, t in here if n != s.name or t["path_id"] not in superseded]
                        here += [(s.name, t) for t in result.trades]
                if here:
                    self._resolve(key, here, walker, by_name, executed)
        finally:
            batch.set_overlay(None)
        for s in rescreeners:  # what rescreen kept to build once (after any it returned: they were found first)
            found = s.rescreened(batch)
            if found is not None and found.num_rows:
                self.opportunities.setdefault(s.name, []).append(found)
        # a pool our bundles of this batch did not change keeps its projected state; a tx re-executed again after
        # our bundles counts once, with its final outcome
        self._final = {**self._projected_forks, **walker.forks}
        outcomes = list({**self._outcomes, **walker.outcomes}.values())
        self.counts["reexecuted_txs"] += len(outcomes)
        self.counts["reverted_user_swaps"] += outcomes.count("user")
        self.counts["preempted_rivals"] += outcomes.count("rival")
        return executed

    def _resolve(self, key: int, here: list, walker: Walker, by_name: dict, executed: dict) -> None:
        """Choose the bundles sent at one point: best first across strategies (by the figure each decides on).
        One claiming a victim a bundle chosen before claimed is dropped; one touching a pool a bundle changed
        (at this point or before) is priced again on the pool's current state (`_reprice`), kept when it was
        priced on that state (`_current`: found by `rescreen` at this point, and no bundle here changed its
        pools since), or dropped."""
        here.sort(key=lambda nt: -_decision(nt[1]))
        used_pools, used_victims = set(), set()
        for name, trade in here:
            s, proposal = by_name[name], trade
            pools = set(trade["pools"])
            victims = set(trade.get("_victims", ()))
            if not used_victims.isdisjoint(victims) or (not used_pools.isdisjoint(pools) and "_reprice" not in trade):
                self.counts["conflicts"] += 1
                s.dropped(trade)
                continue
            if not pools.isdisjoint(walker.forks) and "_reprice" not in trade and not trade.get("_current"):
                self.counts["stale_dropped"] += 1  # priced on a state our bundles changed, and no way to re-price
                s.dropped(trade)
                continue
            if not pools.isdisjoint(walker.forks) and "_reprice" in trade:
                self.counts["repriced"] += 1
                priced, decision = trade["_reprice"]()
                if priced is None or not s.takes(priced, trade["screen_net_profit_wei"], decision, count=False):
                    self.counts["repriced_dropped"] += 1
                    s.dropped(trade)
                    continue
                for k in ("_reprice", "_victims"):
                    if k in trade:
                        priced.setdefault(k, trade[k])
                trade = priced
                pools = set(trade["pools"])
                victims = set(trade.get("_victims", ()))
            if self.auction is not None and not self.auction.lands(trade, self.closed_blocks):
                # the builder took a rival's bundle (history's): ours is sent, loses, and leaves the market alone
                self.counts["lost_bundles"] += 1
                s.dropped(proposal)  # as proposed: a re-priced trade carries the proposal's price, not its state
            else:
                walker.execute(s.effects(trade, walker.batch), key)
            used_pools |= pools
            used_victims |= victims
            self._executed(s, trade)
            executed[name].append(public_row(trade))

    def _executed(self, strategy, trade: dict) -> None:
        strategy.executed(trade)
        net = int(trade["net_profit_wei"])
        self.counts["executed_trades"] += 1
        self.counts["executed_net_wei"] += net
        self.counts["executed_wins"] += net > 0

    def advance(self, state) -> None:
        """Step 4: the market state at the batch end takes the forks' states (after `state.advance`)."""
        if not self.counterfactual:
            return
        for pool, fork in self._final.items():
            if fork.is_v3:
                v3 = state.v3.get(pool)
                if v3 is not None:
                    v3.sqrt_price_x96, v3.liquidity, v3.tick = (fork.v3.sqrt_price_x96, fork.v3.liquidity,
                                                                fork.v3.tick)
            else:
                state.reserve0[pool], state.reserve1[pool] = fork.r0, fork.r1
        self.forked = set(self._final)
        self._final = {}

    # -- checkpoints and shards ----------------------------------------------------------------------------------
    def carried(self, state) -> dict:
        """The forked pools and their V3 states (V2 reserves travel in the market state), JSON-safe."""
        v3 = {str(p): [str(state.v3[p].sqrt_price_x96), str(state.v3[p].liquidity), int(state.v3[p].tick)]
              for p in sorted(self.forked) if self.pools.is_v3[p] and p in state.v3}
        v2 = {str(p): [str(state.reserve0[p]), str(state.reserve1[p])]
              for p in sorted(self.forked) if not self.pools.is_v3[p]}
        return {"forked": sorted(self.forked), "v2": v2, "v3": v3, "counts": dict(self.counts),
                "divergence": {str(p): d for p, d in self.divergence.items()}}

    def restore(self, carried: dict, state) -> None:
        """Continue from `carried` (a checkpoint's or the previous shard's): the forked pools' states are put
        into `state` (V3 ones when the state loads its V3 pools: MarketState.v3_overrides)."""
        self.forked = {int(p) for p in carried["forked"]}
        for p, (r0, r1) in carried["v2"].items():
            state.reserve0[int(p)], state.reserve1[int(p)] = int(r0), int(r1)
        state.v3_overrides = {int(p): (int(s), int(liq), int(t)) for p, (s, liq, t) in carried["v3"].items()}
        for k, v in carried.get("counts", {}).items():
            self.counts[k] = v
        self.divergence = {int(p): d for p, d in carried.get("divergence", {}).items()}

    def summary(self, last_block: int) -> dict:
        """summary.json `execution`: the mode and what the market's reaction did."""
        out = {"mode": self.mode, "default_slippage_bps": self.slippage_bps, **self.counts,
               "executed_net_eth": self.counts["executed_net_wei"] / WEI_PER_ETH,
               "executed_win_rate": (self.counts["executed_wins"] / self.counts["executed_trades"]
                                     if self.counts["executed_trades"] else None)}
        if not self.counterfactual:
            return out
        d = self.divergence
        blocks = [v[1] + (last_block + 1 - v[4] if v[4] is not None else 0) for v in d.values()]
        samples = sum(v[3] for v in d.values())
        out["diverged_pools"] = len(d)
        out["forked_at_end"] = len(self.forked)
        out["fork_episodes"] = int(sum(v[0] for v in d.values()))
        out["mean_blocks_diverged"] = sum(blocks) / len(blocks) if blocks else 0.0
        # fsum: the same figure whatever order the pools come in (a resumed run's come from JSON)
        out["mean_abs_price_divergence"] = math.fsum(v[2] for v in d.values()) / samples if samples else 0.0
        return out


def summed_summaries(summaries: list) -> dict:
    """One `Execution.summary` of a replay run from its shards' (executor=dask: each task counted its own)."""
    out = dict(summaries[0]) if summaries else {}
    for key in REACTION_KEYS:
        out[key] = sum(s.get(key, 0) for s in summaries)
    if out:
        out["executed_net_eth"] = out["executed_net_wei"] / WEI_PER_ETH
        out["executed_win_rate"] = out["executed_wins"] / out["executed_trades"] if out["executed_trades"] else None
    return out


def public_row(trade: dict) -> dict:
    """The TRADES row without the ordered pass's private keys."""
    return {k: v for k, v in trade.items() if not k.startswith("_")}


def _trade_key(trade: dict, batch) -> int:
    """The point key a trade is sent at (its block's offset in the batch, its tx index: −1 = top of block)."""
    return int(point_key(trade["block_number"] - batch.first_block, trade["tx_index"]))


def _decision(trade: dict) -> float:
    return float(trade.get("_decision_wei", trade["net_profit_wei"]))
