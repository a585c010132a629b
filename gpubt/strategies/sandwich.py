"""Sandwich attacks on pending victim swaps (VICTIMS rows) on V2 and V3 pools.

Screen: kernels/sandwich.py (float64, one thread per scenario: every victim alone, and with `multi_victim` every
(pool, block, direction) group of >= 2 victims, first `max_victims_per_group` in block order, as one bundle).
Select: per (pool, block) the best scenario that passes the screen (one sandwich per pool per block: a second
one would run on a state the first changed). Verify: the bundle is re-run with exact integer math (gpubt.exact.v2
getAmountOut / gpubt.exact.v3 V3Pool swaps) on the exact pre-state; the largest front-run is found exactly
(integer bisection on "every victim's exact output >= amount_out_min", monotone in the front-run); the front-run
taken is the better (exact profit) of the screen's optimum and that exact maximum. A trade is kept only if every
victim's exact output is >= its amount_out_min and the exact net profit is > min_profit_wei.

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
from gpubt.strategies.base import Strategy, StrategyResult, device_array, no_victims_reason, trade_row


def option(cfg, name: str, default):
    """cfg.name (OmegaConf node, dict or None), `default` when absent."""
    if cfg is None:
        return default
    value = cfg.get(name, None) if hasattr(cfg, "get") else getattr(cfg, name, None)
    return default if value is None else value


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


class ExactPool:
    """An exact pool state that executes exact-input swaps in order: V2 reserves or a V3Pool (quote copy)."""

    def __init__(self, is_v3: bool, fee_ppm: int, reserves=None, v3_pool=None):
        self.is_v3, self.fee_ppm = is_v3, fee_ppm
        if is_v3:
            self.pool = v3_pool
        else:
            self.r0, self.r1 = reserves

    def swap(self, zero_for_one: bool, amount_in: int):
        """(amount out, initialized ticks crossed), or None when the pool cannot take the whole input."""
        if amount_in <= 0:
            return 0, 0
        if self.is_v3:
            limit = exact_v3.MIN_SQRT_RATIO + 1 if zero_for_one else exact_v3.MAX_SQRT_RATIO - 1
            try:
                o = self.pool.swap_outcome(zero_for_one, amount_in, limit, commit=False)
            except exact_v3.V3Revert:
                return None
            paid, got = (o.amount0, -o.amount1) if zero_for_one else (o.amount1, -o.amount0)
            if paid != amount_in:
                return None
            self.pool.swap_outcome(zero_for_one, amount_in, limit, commit=True)
            return got, o.ticks_crossed
        try:
            if zero_for_one:
                out = exact_v2.get_amount_out(amount_in, self.r0, self.r1, self.fee_ppm)
                self.r0, self.r1 = self.r0 + amount_in, self.r1 - out
            else:
                out = exact_v2.get_amount_out(amount_in, self.r1, self.r0, self.fee_ppm)
                self.r0, self.r1 = self.r0 - out, self.r1 + amount_in
        except ValueError:
            return None
        return out, 0


def exact_bundle(make_pool, zero_for_one: bool, front_in: int, victims, back_run: bool = True) -> dict | None:
    """Run [front-run, victims..., back-run] exactly on a fresh pool from `make_pool()`; victims = [(amount_in,
    amount_out_min)]. None when a swap cannot go through. `back_run=False` stops after the victims (all that
    their slippage checks depend on; back_out is then 0 and gross None)."""
    pool = make_pool()
    crossed = 0
    bought = 0
    if front_in > 0:
        r = pool.swap(zero_for_one, front_in)
        if r is None:
            return None
        bought, c = r
        crossed += c
    outs = []
    for amount_in, _ in victims:
        r = pool.swap(zero_for_one, amount_in)
        if r is None:
            return None
        outs.append(r[0])
    back = 0
    if bought > 0 and back_run:
        r = pool.swap(not zero_for_one, bought)
        if r is None:
            return None
        back, c = r
        crossed += c
    feasible = all(o >= m for o, (_, m) in zip(outs, victims))
    return dict(front_out=bought, back_out=back, victim_out=outs, feasible=feasible, crossed=crossed,
                gross=back - front_in if back_run else None)


class V2PoolFactory:
    """make_pool for a V2 state: a fresh ExactPool per call; `v2_state` = (fee_ppm, reserve0, reserve1) lets
    exact_max_frontrun take its lean integer path (`v2_victim_slack`)."""

    def __init__(self, fee_ppm: int, reserves: tuple[int, int]):
        self.v2_state = (fee_ppm, *reserves)

    def __call__(self) -> ExactPool:
        return ExactPool(False, self.v2_state[0], reserves=self.v2_state[1:])


def v2_victim_slack(fee_ppm: int, reserve0: int, reserve1: int, zero_for_one: bool, victims):
    """slack(a) of exact_max_frontrun on a V2 pool: min over victims of (exact output − minimum) after a front-run
    of a, or None when a swap cannot go through. The same integers as exact_bundle(back_run=False) on
    ExactPool(False, fee_ppm, (reserve0, reserve1)), without a pool object and a result dict per call (99 % of
    mainnet-month's sandwiches are V2, and the search calls this ~5-25 times each)."""
    if not victims:
        raise ValueError("v2_victim_slack: no victims")
    in0, out0 = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)

    def slack(a: int):
        r_in, r_out, least = in0, out0, None
        try:
            for amount, minimum in ((a, None), *victims):  # the front-run, then each victim (no minimum of ours)
                out = 0
                if amount > 0:  # as ExactPool.swap: no input, no swap
                    out = exact_v2.get_amount_out(amount, r_in, r_out, fee_ppm)
                    r_in, r_out = r_in + amount, r_out - out
                if minimum is not None and (least is None or out - minimum < least):
                    least = out - minimum
        except ValueError:  # getAmountOut reverts (an empty reserve): the bundle cannot go through
            return None
        return least

    return slack


def exact_max_frontrun(make_pool, zero_for_one: bool, victims, hint: float, cap: int) -> int:
    """The largest integer front-run <= cap after which every victim still gets its minimum (exact math); −1 if
    even 0 fails. The constraint is monotone, so the answer is bracketed around the float `hint` and the bracket
    closed by regula falsi on the victims' exact slack (min over victims of output − minimum), Illinois-style,
    falling back to bisection where the slack says nothing (a coarse output token's last plateau of slack 0) or
    progress stalls. On 2,965 sandwiches of mainnet-month's first 300 blocks: the same answers as plain bisection
    with 25 exact bundles per search instead of 45 (fine tokens take ~5, coarse ones still bisect)."""
    if isinstance(make_pool, V2PoolFactory):
        slack = v2_victim_slack(*make_pool.v2_state, zero_for_one, victims)
    else:
        def slack(a):
            r = exact_bundle(make_pool, zero_for_one, a, victims, back_run=False)
            if r is None:
                return None
            return min(o - m for o, (_, m) in zip(r["victim_out"], victims))

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


class SandwichStrategy(Strategy):
    name = "sandwich"
    needs_victims = True

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        self.meta = PoolTable(dataset.pools, dataset.tokens)
        self.capital_eth = float(option(cfg, "capital_eth", 100.0))
        self.multi_victim = bool(option(cfg, "multi_victim", True))
        self.max_group = int(option(cfg, "max_victims_per_group", 8))
        self.max_steps = int(option(cfg, "v3_max_steps", 64))
        self.stats.update(victims=0, selected=0)

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
        v = dict(block=block, tx=tx, pool=pool, zfo=zfo, amount_in=amount_in, min_out=min_out,
                 amount_in_f=schema.amounts_to_float(victims.column("amount_in")),
                 min_out_f=schema.amounts_to_float(victims.column("amount_out_min")),
                 tx_hash=victims.column("tx_hash").to_pylist())
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
                    dev(s_gas_price), dev(s_victims), dev(v["amount_in_f"]), dev(v["min_out_f"]),
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
            for i in sorted(best.values()):
                trade = self.reprice(batch, v, members[i], int(s_key[i]), float(x[i]), float(a_max[i]),
                                     float(s_capital[i]), int(token_in[i]), float(s_wei[i]), cache)
                if self.takes(trade, float(net[i])):
                    trades.append(trade)
        return StrategyResult(opportunities, trades)

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
        """The exact trade of one scenario (see the module docstring), or None when no exact front-run works."""
        pool = int(v["pool"][member[0]])
        zfo = bool(v["zfo"][member[0]])
        victims = [(v["amount_in"][j], v["min_out"][j]) for j in member]
        make_pool = self.make_pool_factory(batch, pool, key, cache)
        cap = int(capital_raw)
        a_max = exact_max_frontrun(make_pool, zfo, victims, min(a_max_float, capital_raw), cap)
        if a_max <= 0:
            return None
        best = None
        for a in sorted({min(max(1, int(x_float)), a_max), a_max}):
            r = exact_bundle(make_pool, zfo, a, victims)
            if r is None or not r["feasible"]:
                continue
            if best is None or r["gross"] > best[1]["gross"]:
                best = (a, r)
        if best is None:
            return None
        a, r = best
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
            "victims": [{"tx_index": int(v["tx"][j]), "tx_hash": v["tx_hash"][j], "amount_in": str(v["amount_in"][j]),
                         "amount_out_min": str(v["min_out"][j]), "amount_out": str(o)}
                        for j, o in zip(member, r["victim_out"])],
        }
        return trade_row(self.name, batch, block, int(v["tx"][member[0]]) - 1, int(member[0]), token_in,
                         [pool, pool], [zfo, not zfo], a, r["back_out"], gross_raw, gross_wei, gas_units,
                         self.gas.priority_fee_wei, json.dumps(detail))
