"""Sandwich attacks on pending victim swaps (VICTIMS rows) on V2 and V3 pools.

Screen: kernels/sandwich.py (float64, one thread per scenario: every victim alone, and with `multi_victim` every
(pool, block, direction) group of >= 2 victims, first `max_victims_per_group` in block order, as one bundle).
Select: per (pool, block) the best scenario that passes the screen (one sandwich per pool per block: a second
one would run on a state the first changed). Verify: the bundle is re-run with exact integer math (gpubt.exact.v2
getAmountOut / getAmountIn, gpubt.exact.v3 V3Pool swaps) on the exact pre-state.

Victims. An exact-input victim (VICTIMS exact_output False) sells amount_in and needs >= amount_out_min; an
exact-output one (swap*ForExact*, exactOutput*) buys amount_out_min exactly and pays getAmountIn(amountOut) on the
state it meets (V3: the pool's exact-output swap), needing that <= amount_in (amountInMax). A victim whose limit
fails reverts and leaves the pool as it was, except the first (the tx the bundle is built around), which must
execute: the front-run is bounded by the first victim alone (`exact_max_frontrun` on victims[:1], exact and
monotone). Later victims may revert; the exact profit is that of the bundle as it executes, reverts included.
Candidates: the screen's optimum, that bound, and (several victims) the largest front-run with no victim reverting
(a second exact search, where the profit drops by a jump); the exact best is taken, the kernel screens the same
three (kernels/sandwich.py). The trade's detail lists each victim's kind, limit, amounts paid and received and
whether it reverted. A trade is kept only if its exact net profit is > min_profit_wei.

Gross profit is exact in raw units of the front-run's input token; gross_profit_wei is that amount when the token
is WETH, else it converted at the block's reference price (rounded), as for arbitrage trades.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.exact import gas as exact_gas
from gpubt.exact import v2 as exact_v2
from gpubt.exact import v3 as exact_v3
from gpubt.exact.hops import v3_quote_pool
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.batch import WETH, point_key
from gpubt.market.pools import PoolTable
from gpubt.market.searchers import option
from gpubt.strategies import exact_engine
from gpubt.strategies.base import Strategy, StrategyResult, device_array, no_victims_reason, trade_row


def token_wei_per_raw(batch, decimals: np.ndarray) -> np.ndarray:
    """(n_blocks, n_tokens) float64: wei value of one raw unit of each token at each block of the batch (the
    batch's reference prices; WETH exactly 1; NaN where a token has no price yet)."""
    out = batch.price_usd[:, :len(decimals)]
    if out.shape[1] < len(decimals):
        out = np.concatenate([out, np.full((batch.n_blocks, len(decimals) - out.shape[1]), np.nan)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / out[:, WETH:WETH + 1] * 10.0 ** (18 - decimals.astype(np.float64))[None, :]
    out[:, WETH] = 1.0
    return out


def victim_terms(victim) -> tuple[int, int, bool]:
    """(amount_in, amount_out_min, exact_output) of a victim tuple; a 2-tuple is an exact-input victim.
    Exact output: (amountInMax, amountOut, True)."""
    return (victim[0], victim[1], bool(victim[2])) if len(victim) > 2 else (victim[0], victim[1], False)


class ExactPool:
    """An exact pool state that executes swaps in order: V2 reserves or a V3Pool (quote copy)."""

    def __init__(self, is_v3: bool, fee_ppm: int, reserves=None, v3_pool=None):
        self.is_v3, self.fee_ppm = is_v3, fee_ppm
        if is_v3:
            self.pool = v3_pool
        else:
            self.r0, self.r1 = reserves

    def swap(self, zero_for_one: bool, amount_in: int):
        """(amount out, initialized ticks crossed) of an exact-input swap (committed), or None when the pool cannot
        take the whole input."""
        if amount_in <= 0:
            return 0, 0
        q = self.quote(zero_for_one, amount_in)
        if q is None or q[0] != amount_in:
            return None
        self.commit(zero_for_one, amount_in, q)
        return q[1], q[2]

    def quote(self, zero_for_one: bool, amount_specified: int):
        """(amount paid, amount out, initialized ticks crossed) of a swap of `amount_specified` (> 0: exact input;
        < 0: exact output of −amount_specified), state unchanged; None when it reverts. V2: getAmountOut /
        getAmountIn; V3: the pool's own swap with no price limit (exact output: may deliver less, then the caller
        treats it as a revert)."""
        if self.is_v3:
            limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
            try:
                o = self.pool.swap_outcome(zero_for_one, amount_specified, limit, commit=False)
            except exact_v3.V3Revert:
                return None
            paid, got = (o.amount0, -o.amount1) if zero_for_one else (o.amount1, -o.amount0)
            return paid, got, o.ticks_crossed
        r_in, r_out = (self.r0, self.r1) if zero_for_one else (self.r1, self.r0)
        try:
            if amount_specified > 0:
                return amount_specified, exact_v2.get_amount_out(amount_specified, r_in, r_out, self.fee_ppm), 0
            return exact_v2.get_amount_in(-amount_specified, r_in, r_out, self.fee_ppm), -amount_specified, 0
        except ValueError:
            return None

    def commit(self, zero_for_one: bool, amount_specified: int, q) -> None:
        """Apply the swap `quote(zero_for_one, amount_specified)` returned as `q`."""
        if self.is_v3:
            limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
            self.pool.swap_outcome(zero_for_one, amount_specified, limit, commit=True)
        elif zero_for_one:
            self.r0, self.r1 = self.r0 + q[0], self.r1 - q[1]
        else:
            self.r0, self.r1 = self.r0 - q[1], self.r1 + q[0]

    def victim(self, zero_for_one: bool, victim):
        """A victim's swap with its limit (`victim_terms`): (slack, paid, received, ticks crossed). slack = received −
        amount_out_min (exact input) or amountInMax − paid (exact output), None when the swap cannot go through;
        the swap is committed only when slack >= 0 (else it reverts: the pool is left as it was)."""
        amount_in, limit, exact_output = victim_terms(victim)
        if exact_output:
            if limit <= 0:  # nothing to buy: no swap
                return amount_in, 0, 0, 0
            q = self.quote(zero_for_one, -limit)
            if q is None or q[1] < limit:  # the pool cannot deliver the output: the router reverts
                return None, 0, 0, 0
            slack = amount_in - q[0]
            spec = -limit
        else:
            if amount_in <= 0:  # no input, no swap
                return -limit, 0, 0, 0
            q = self.quote(zero_for_one, amount_in)
            if q is None or q[0] != amount_in:
                return None, 0, 0, 0
            slack = q[1] - limit
            spec = amount_in
        if slack < 0:
            return slack, 0, 0, 0
        self.commit(zero_for_one, spec, q)
        return slack, q[0], q[1], q[2]


def exact_bundle(make_pool, zero_for_one: bool, front_in: int, victims, back_run: bool = True) -> dict | None:
    """Run [front-run, victims..., back-run] exactly on a fresh pool from `make_pool()`; victims = [(amount_in,
    amount_out_min[, exact_output])] (`victim_terms`). A victim whose limit fails (or whose swap cannot go through)
    reverts and leaves the pool unchanged; the bundle is `feasible` only when the first victim executes. None when
    the front- or back-run cannot go through. `slack`: min over victims of ExactPool.victim's slack (None when one
    cannot go through): >= 0 exactly when every victim executes. `back_run=False` stops after the victims (all their
    limits depend on; back_out is then 0 and gross None)."""
    pool = make_pool()
    crossed = 0
    bought = 0
    if front_in > 0:
        r = pool.swap(zero_for_one, front_in)
        if r is None:
            return None
        bought, c = r
        crossed += c
    paid, outs, reverted, least = [], [], [], 0
    for i, victim in enumerate(victims):
        slack, p, o, _ = pool.victim(zero_for_one, victim)
        executed = slack is not None and slack >= 0
        paid.append(p), outs.append(o), reverted.append(not executed)
        if least is not None:
            least = None if slack is None else (slack if i == 0 else min(least, slack))
    back = 0
    if bought > 0 and back_run:
        r = pool.swap(not zero_for_one, bought)
        if r is None:
            return None
        back, c = r
        crossed += c
    return dict(front_out=bought, back_out=back, victim_in=paid, victim_out=outs, reverted=reverted,
                feasible=bool(victims) and not reverted[0], slack=least if victims else None, crossed=crossed,
                gross=back - front_in if back_run else None)


class V2PoolFactory:
    """make_pool for a V2 state: a fresh ExactPool per call; `v2_state` = (fee_ppm, reserve0, reserve1) lets
    exact_max_frontrun take its lean integer path (`v2_victim_slack`)."""

    def __init__(self, fee_ppm: int, reserves: tuple[int, int]):
        self.v2_state = (fee_ppm, *reserves)

    def __call__(self) -> ExactPool:
        return ExactPool(False, self.v2_state[0], reserves=self.v2_state[1:])


def v2_victim_slack(fee_ppm: int, reserve0: int, reserve1: int, zero_for_one: bool, victims):
    """slack(a) of exact_max_frontrun on a V2 pool: exact_bundle(back_run=False)'s `slack` after a front-run of a
    (min over victims of received − minimum, or amountInMax − paid for an exact-output victim; a victim whose slack
    is < 0 reverts), None when a swap cannot go through. The same integers as exact_bundle on ExactPool(False,
    fee_ppm, (reserve0, reserve1)), without a pool object and a result dict per call (99 % of mainnet-month's
    sandwiches are V2, and the search calls this ~5-25 times each)."""
    if not victims:
        raise ValueError("v2_victim_slack: no victims")
    in0, out0 = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
    terms = [victim_terms(v) for v in victims]

    def slack(a: int):
        r_in, r_out, least = in0, out0, None
        try:
            if a > 0:  # as ExactPool.swap: no input, no swap
                out = exact_v2.get_amount_out(a, r_in, r_out, fee_ppm)
                r_in, r_out = r_in + a, r_out - out
            for amount, limit, exact_output in terms:
                if exact_output:
                    if limit <= 0:
                        s, paid, out = amount, 0, 0
                    elif limit >= r_out:  # getAmountIn reverts: the pool cannot deliver
                        return None
                    else:
                        paid, out = exact_v2.get_amount_in(limit, r_in, r_out, fee_ppm), limit
                        s = amount - paid
                else:
                    paid, out = amount, 0
                    if amount > 0:
                        out = exact_v2.get_amount_out(amount, r_in, r_out, fee_ppm)
                    s = out - limit
                if s >= 0:  # executes; else it reverts and the reserves stay
                    r_in, r_out = r_in + paid, r_out - out
                if least is None or s < least:
                    least = s
        except ValueError:  # getAmountOut reverts (an empty reserve): the bundle cannot go through
            return None
        return least

    return slack


def exact_max_frontrun(make_pool, zero_for_one: bool, victims, hint: float, cap: int) -> int:
    """The largest integer front-run <= cap after which every victim in `victims` still executes (exact math: an
    exact-input victim gets its minimum, an exact-output one pays at most its amountInMax); −1 if even 0 fails.
    The constraint is monotone (a larger front-run gives each later same-direction swap a worse price), so the
    answer is bracketed around the float `hint` and the bracket closed by regula falsi on the victims' exact slack
    (min over victims, `exact_bundle`), Illinois-style, falling back to bisection where the slack says nothing
    (a coarse output token's last plateau of slack 0) or progress stalls. On 2,965 sandwiches of mainnet-month's
    first 300 blocks: the same answers as plain bisection with 25 exact bundles per search instead of 45 (fine
    tokens take ~5, coarse ones still bisect). The sandwich bounds the bundle by its first victim alone
    (victims[:1]) and finds the no-revert bound of all victims with a second search."""
    if isinstance(make_pool, V2PoolFactory):
        slack = v2_victim_slack(*make_pool.v2_state, zero_for_one, victims)
    else:
        def slack(a):
            r = exact_bundle(make_pool, zero_for_one, a, victims, back_run=False)
            return None if r is None else r["slack"]

    def ok(s):
        return s is not None and s >= 0

    if not ok(slack(0)):
        return -1
    lo = max(0, min(cap, int(hint * (1 - 1e-6))))
    s_lo = slack(lo)
    if not ok(s_lo):
        lo, s_lo = 0, slack(0)
    hi = min(cap, int(hint * (1 + 1e-6)) + 2)
    s_hi = slack(hi)
    while hi < cap and ok(s_hi):  # the float hint was low: widen
        lo, s_lo = hi, s_hi
        hi = min(cap, 2 * hi + 1)
        s_hi = slack(hi)
    if ok(s_hi):
        return hi
    w_lo, w_hi, side = float(s_lo), None if s_hi is None else float(s_hi), 0
    widths = [hi - lo]
    while hi - lo > 1:  # invariant: ok(lo), not ok(hi); w_* are the (Illinois-scaled) slacks at the ends
        if w_hi is not None and w_lo > 0 and (len(widths) < 4 or 2 * (hi - lo) <= widths[-4]):
            mid = min(max(lo + int((hi - lo) * (w_lo / (w_lo - w_hi))), lo + 1), hi - 1)
        else:  # no slack to interpolate (a swap reverts at hi, or lo sits on the last plateau of a coarse output
            # token: slack 0 for many inputs), or 3 steps did not halve the bracket: bisect
            mid = (lo + hi) // 2
        s_mid = slack(mid)
        if ok(s_mid):
            lo, w_lo = mid, float(s_mid)
            if side == 1 and w_hi is not None:
                w_hi /= 2  # Illinois: the same end moved twice in a row, pull the other end's weight in
            side = 1
        else:
            hi, w_hi = mid, None if s_mid is None else float(s_mid)
            if side == -1:
                w_lo /= 2
            side = -1
        widths.append(hi - lo)
    return lo


def price_sandwich(make_pool, zero_for_one: bool, victims, x_float: float, a_max_float: float, capital_raw: float):
    """The exact sandwich of one scenario: (front-run, its bound, exact_bundle's result) or None when no exact
    front-run works. The bound: the largest front-run (at most the capital) after which the first victim still
    executes, from the screen's bound; with several victims also the largest after which all do; the bundle at the
    best of those and the screen's front-run (most gross profit; the smaller on a tie). The oracle of
    kernels/exact_sandwich.py (exact.engine=device)."""
    cap = int(capital_raw)
    a_max = exact_max_frontrun(make_pool, zero_for_one, victims[:1], min(a_max_float, capital_raw), cap)
    if a_max <= 0:
        return None
    candidates = {min(max(1, int(x_float)), a_max), a_max}
    if len(victims) > 1:
        a_all = exact_max_frontrun(make_pool, zero_for_one, victims, min(x_float, a_max_float, capital_raw), a_max)
        if a_all > 0:
            candidates.add(a_all)
    best = None
    for a in sorted(candidates):
        r = exact_bundle(make_pool, zero_for_one, a, victims)
        if r is None or not r["feasible"]:
            continue
        if best is None or r["gross"] > best[1]["gross"]:
            best = (a, r)
    return None if best is None else (best[0], a_max, best[1])


def victim_detail(tx_index, tx_hash, victim, paid: int, received: int, reverted: bool) -> dict:
    """A victim in a sandwich trade's detail: its kind and limit, what it paid and received in the bundle (0 and 0
    when it reverted)."""
    amount_in, limit, exact_output = victim_terms(victim)
    out = {"tx_index": int(tx_index), "tx_hash": tx_hash, "kind": "exact_output" if exact_output else "exact_input"}
    if exact_output:
        out.update(amount_in_max=str(amount_in), amount_out_exact=str(limit))
    else:
        out.update(amount_out_min=str(limit))
    out.update(amount_in=str(paid), amount_out=str(received), reverted=bool(reverted))
    return out


_UNPRICED = object()   # a scenario the exact engine did not price beforehand (SandwichStrategy._priced)


class SandwichStrategy(Strategy):
    name = "sandwich"
    capital_eth = 100.0  # default of strategy.sandwich.capital_eth (the class value marks a capital-bound strategy)
    needs_victims = True

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        self.meta = PoolTable(dataset.pools, dataset.tokens)
        self.capital_eth = float(option(cfg, "capital_eth", type(self).capital_eth))
        self.multi_victim = bool(option(cfg, "multi_victim", True))
        self.max_group = int(option(cfg, "max_victims_per_group", 8))
        self.max_steps = int(option(cfg, "v3_max_steps", 64))
        self.stats.update(victims=0, selected=0)
        self._priced: dict = {}   # (first victim, key, capital) -> price_sandwich's result, from the exact engine

    # -- scenarios --------------------------------------------------------------------------------------------
    def scenarios(self, batch, victims: pa.Table):
        """(victim columns, scenario arrays): singles first, then multi-victim groups."""
        n = victims.num_rows
        block = victims.column("block_number").to_numpy().astype(np.int64) - batch.first_block
        tx = victims.column("tx_index").to_numpy().astype(np.int64)
        pool = victims.column("pool_id").to_numpy().astype(np.int32)
        zfo = victims.column("zero_for_one").to_numpy(zero_copy_only=False).astype(np.bool_)
        amount_in = [int(v) for v in victims.column("amount_in").to_pylist()]
        min_out = [int(v) for v in victims.column("amount_out_min").to_pylist()]
        exact_output = schema.victims_exact_output(victims)
        v = dict(block=block, tx=tx, pool=pool, zfo=zfo, amount_in=amount_in, min_out=min_out,
                 exact_output=exact_output,
                 amount_in_f=schema.amounts_to_float(victims.column("amount_in")),
                 min_out_f=schema.amounts_to_float(victims.column("amount_out_min")),
                 tx_hash=victims.column("tx_hash").to_pylist())
        self._victim_exact_output = exact_output  # the screen's victim_exact_output (see `launch`)
        members = [[i] for i in range(n)]
        if self.multi_victim and n:
            order = np.lexsort((tx, zfo, block, pool))
            groups: dict = {}
            for i in order.tolist():
                groups.setdefault((int(pool[i]), int(block[i]), bool(zfo[i])), []).append(i)
            members += [g[:self.max_group] for g in groups.values() if len(g) >= 2]
        return v, members

    # -- evaluate ---------------------------------------------------------------------------------------------
    def idle_reason(self, first_block: int, last_block: int) -> str | None:
        return no_victims_reason(self.dataset, first_block, last_block)

    def evaluate(self, batch, tables) -> StrategyResult:
        victims = tables.victims
        empty = StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        if victims.num_rows == 0:
            return empty
        v, members = self.scenarios(batch, victims)
        self.stats["victims"] += victims.num_rows
        n_s = len(members)
        self.stats["screened"] += n_s
        first = np.array([m[0] for m in members], np.int64)
        s_pool = v["pool"][first]
        s_block = v["block"][first]
        s_zfo = v["zfo"][first]
        s_key = point_key(s_block, v["tx"][first]) - 1
        s_count = np.array([len(m) for m in members], np.int32)
        s_start = np.zeros(n_s, np.int64)
        np.cumsum(s_count[:-1], out=s_start[1:])
        s_victims = np.array([i for m in members for i in m], np.int32)
        token_wei = token_wei_per_raw(batch, self.meta.decimals)
        token_in = np.where(s_zfo, self.meta.token0[s_pool], self.meta.token1[s_pool])
        s_wei = token_wei[s_block, token_in]
        s_capital = np.where(np.isfinite(s_wei) & (s_wei > 0), self.capital_eth * 1e18 / np.where(s_wei > 0, s_wei, 1),
                             0.0)
        s_wei = np.nan_to_num(s_wei, nan=0.0)
        s_gas_price = batch.gas_price_wei[s_block]

        be = self.backend
        dev = functools.partial(device_array, be)
        with self.timed("screen"):
            outs = [be.xp.zeros(n_s, np.float64) for _ in range(4)] + [be.xp.zeros(n_s, np.int64)]
            args = (dev(s_pool), dev(s_key), dev(s_zfo), dev(s_start), dev(s_count), dev(s_capital), dev(s_wei),
                    dev(s_gas_price), dev(s_victims), dev(v["amount_in_f"]), dev(v["min_out_f"]), dev(v["exact_output"]),
                    dev(self.meta.is_v3), dev(self.meta.gamma), *batch.device_state(be), self.max_steps,
                    float(exact_gas.V2_SWAP_TX_GAS), float(exact_gas.V3_SWAP_TX_BASE_GAS),
                    float(exact_gas.V3_SWAP_TX_GAS_PER_TICK), *outs)
            self.launch("sandwich", "screen_sandwich", n_s, args)
            x, a_max, gross, net, crossed = (be.to_host(o) for o in outs)
            passed = np.flatnonzero(self.passes_screen(net, gross * s_wei) & (x > 0))
        opportunities = pa.Table.from_pydict({
            "strategy": ["sandwich"] * len(passed),
            "block_number": (batch.first_block + s_block[passed]).tolist(),
            "tx_index": (v["tx"][first[passed]] - 1).tolist(),
            "path_id": first[passed].tolist(),
            "start_token": token_in[passed].tolist(),
            "hops": [2] * len(passed),
            "screen_amount_in": x[passed].tolist(),
            "screen_gross_profit_raw": gross[passed].tolist(),
            "screen_net_profit_wei": net[passed].tolist(),
        }, schema=schema.OPPORTUNITIES)

        # one sandwich per (pool, block): the best screened scenario
        best: dict = {}
        for i in passed[np.argsort(-net[passed], kind="stable")].tolist():
            best.setdefault((int(s_pool[i]), int(s_block[i])), i)
        self.stats["selected"] += len(best)
        trades = []
        cache: dict = {}
        with self.timed("exact"):
            order = sorted(best.values())
            self.price_ahead(batch, v, members, order, s_key, x, a_max, s_capital, s_wei, cache)
            for i in order:
                args = (batch, v, members[i], int(s_key[i]), float(x[i]), float(a_max[i]), float(s_capital[i]),
                        int(token_in[i]), float(s_wei[i]), cache)
                trade = self.reprice(*args)
                if self.takes(trade, float(net[i])):
                    trade["_reprice"] = lambda args=args: (self.reprice(*args), None)
                    trade["_victims"] = [int(point_key(s_block[i], v["tx"][j])) for j in members[i]]
                    trades.append(trade)
            self._priced.clear()   # what it did not use: a later re-pricing sees the pass's forked pools
        return StrategyResult(opportunities, trades)

    @staticmethod
    def victims(v, member: list) -> list:
        """The scenario's victims as price_sandwich takes them: (amount_in, amount_out_min or amountOut, exact
        output)."""
        exact_output = v.get("exact_output")
        return [(v["amount_in"][j], v["min_out"][j], bool(exact_output[j]) if exact_output is not None else False)
                for j in member]

    def price_ahead(self, batch, v, members, order, s_key, x, a_max, s_capital, s_wei, cache) -> None:
        """Price the selected scenarios in one call of the exact engine at their capital, then in a second the
        policy's capitals `reprice` will ask for (those below the victims' bound), into `_priced` for `_price` to
        take (exact.engine=device: kernels/exact_sandwich.py)."""
        backend, engine = self.exact()
        if engine != "device":
            return
        scenario = {}
        for i in order:
            member, key = members[i], int(s_key[i])
            pool, zfo = int(v["pool"][member[0]]), bool(v["zfo"][member[0]])
            fee = int(self.meta.fee_ppm[pool])
            if self.meta.is_v3[pool]:
                sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
                spec = ("v3", fee, int(self.meta.tick_spacing[pool]), sqrt_price, liquidity, tick, table)
            else:
                spec = ("v2", fee, *batch.exact_reserve(pool, key))
            scenario[i] = (pool, key, spec, zfo, self.victims(v, member), float(x[i]), float(a_max[i]))

        def price(asks: list) -> None:   # asks: (scenario index, capital)
            def oracle(t: int):
                pool, key, _, zfo, victims, x_float, a_max_float = scenario[asks[t][0]]
                return price_sandwich(self.make_pool_factory(batch, pool, key, cache), zfo, victims, x_float,
                                      a_max_float, asks[t][1])

            got = exact_engine.sandwich_prices(backend, [(*scenario[i][2:], capital) for i, capital in asks], oracle,
                                               engine)
            for (i, capital), result in zip(asks, got):
                self._priced[(members[i][0], int(s_key[i]), capital)] = result

        price([(i, float(s_capital[i])) for i in order])
        asks = []
        for i in order:   # the tiers `reprice.at` prices (the others take the trade at the capital)
            main = self._priced[(members[i][0], int(s_key[i]), float(s_capital[i]))]
            bound = main[1] if main is not None else 0
            wei = float(s_wei[i])
            for capital_eth in self.capital_tiers_eth:
                capital = capital_eth * 1e18 / wei if wei > 0 else 0.0
                if main is not None and not (bound < int(float(s_capital[i])) and int(capital) >= bound):
                    asks.append((i, capital))
        price(list(dict.fromkeys(asks)))

    def effects(self, trade: dict, batch) -> list:
        """Front-run, the victims as priced (each executed, or reverted when its limit failed), back-run."""
        d = json.loads(trade["detail"])
        pool, zfo = d["pool"], bool(trade["zero_for_one"][0])
        block = trade["block_number"] - batch.first_block
        return ([("route", [pool], [zfo], int(d["front_run_in"]), int(d["front_run_out"]))]
                + [("victim", pool, int(point_key(block, v["tx_index"])), zfo, v["kind"] == "exact_output",
                    0 if v["reverted"] else int(v["amount_in"]), 0 if v["reverted"] else int(v["amount_out"]))
                   for v in d["victims"]]
                + [("route", [pool], [not zfo], int(d["back_run_in"]), int(d["back_run_out"]))])

    def make_pool_factory(self, batch, pool: int, key: int, cache: dict):
        """A function returning a fresh ExactPool at (pool, key)."""
        fee = int(self.meta.fee_ppm[pool])
        if self.meta.is_v3[pool]:
            sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
            spacing = int(self.meta.tick_spacing[pool])
            return lambda: ExactPool(True, fee, v3_pool=v3_quote_pool(fee, spacing, sqrt_price, liquidity, tick,
                                                                      table, cache))
        return V2PoolFactory(fee, batch.exact_reserve(pool, key))

    def reprice(self, batch, v, member: list, key: int, x_float: float, a_max_float: float, capital_raw: float,
                token_in: int, wei_per_raw: float, cache: dict) -> dict | None:
        """The exact trade of one scenario (see the module docstring), or None when no exact front-run works; with
        its net profit at the policy's other capitals (`with_capital_curve`: the front-run capped there)."""
        def price(capital: float) -> dict | None:
            return self._price(batch, v, member, key, x_float, a_max_float, capital, token_in, wei_per_raw, cache)

        trade = price(capital_raw)
        bound = json.loads(trade["detail"])["max_front_run"] if trade is not None and self.capital_tiers_eth else 0

        def at(capital_eth: float) -> dict | None:
            capital = capital_eth * 1e18 / wei_per_raw if wei_per_raw > 0 else 0.0
            # the victims bound the front-run below the capital (exact_max_frontrun is exact whatever its start):
            # any capital from that bound up prices the same bundle
            if bound < int(capital_raw) and int(capital) >= bound:
                return trade
            return price(capital)

        return self.with_capital_curve(trade, at)

    def _price(self, batch, v, member: list, key: int, x_float: float, a_max_float: float, capital_raw: float,
               token_in: int, wei_per_raw: float, cache: dict) -> dict | None:
        pool = int(v["pool"][member[0]])
        zfo = bool(v["zfo"][member[0]])
        victims = self.victims(v, member)
        priced = self._priced.pop((member[0], key, capital_raw), _UNPRICED)
        if priced is _UNPRICED:
            priced = price_sandwich(self.make_pool_factory(batch, pool, key, cache), zfo, victims, x_float,
                                    a_max_float, capital_raw)
        if priced is None:
            return None
        a, a_max, r = priced
        block = (key + 1) >> KEY_TX_BITS
        gross_raw = r["gross"]
        gross_wei = gross_raw if token_in == WETH else round(gross_raw * wei_per_raw)
        if self.meta.is_v3[pool]:
            gas_units = 2 * exact_gas.V3_SWAP_TX_BASE_GAS + exact_gas.V3_SWAP_TX_GAS_PER_TICK * r["crossed"]
        else:
            gas_units = 2 * exact_gas.V2_SWAP_TX_GAS
        detail = {
            "kind": "v3" if self.meta.is_v3[pool] else "v2",
            "pool": pool,
            "front_run_in": a, "front_run_out": r["front_out"], "back_run_in": r["front_out"],
            "back_run_out": r["back_out"], "max_front_run": a_max, "ticks_crossed": r["crossed"],
            "victims": [victim_detail(v["tx"][j], v["tx_hash"][j], victim, paid, got, reverted)
                        for j, victim, paid, got, reverted in zip(member, victims, r["victim_in"], r["victim_out"],
                                                                  r["reverted"])],
        }
        return trade_row(self.name, batch, block, int(v["tx"][member[0]]) - 1, int(member[0]), token_in,
                         [pool, pool], [zfo, not zfo], a, r["back_out"], gross_raw, gross_wei, gas_units,
                         self.gas.priority_fee_wei, json.dumps(detail))
