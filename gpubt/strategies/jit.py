"""JIT liquidity on V3 pools: mint a concentrated position just before a victim's swap, burn it just after.

Screen: kernels/jit.py (float64, one thread per victim on a V3 pool, a grid of ranges × sizes; formulas there).
Select: per (pool, block) the best victim over min_profit_wei. Verify, exactly (gpubt.exact.v3): the pool is rebuilt
at the exact state before the victim's tx (its own copy of the tick table), the position is minted (V3Pool.mint:
the tokens paid, rounded up), the victim's swap runs through exact.v3's `swap_with_fees` — the contract's swap loop
(same steps as V3Pool.swap_outcome) that also accrues fee growth like UniswapV3Pool: per step
feeGrowthGlobal += mulDiv(feeAmount, 2**128, liquidity), counted inside the position while the step's starting tick
is in [tick_lower, tick_upper) — and the position is burned (V3Pool.burn: tokens back, rounded down) and collected:
fees owed = mulDiv(fee growth inside, ΔL, 2**128), exactly as Position.update.

Exact-output victims (VICTIMS exact_output: amount_in = amountInMax, amount_out_min = amountOut) swap exact output
through the same loop (`swap_with_fees(exact_output=True)`): they buy amountOut exactly and must pay <= amountInMax.
The float screen sizes them by amountInMax (an upper bound on what they pay).

Profit, raw units of the victim's input token (the fee token): fees + Δin + Δout valued at the pool's exact price
after the swap (floor(Δout · sqrtP²/2**192), or · 2**192/sqrtP²); every amount in `detail` is exact, the
valuation of the output-token leg is the only rounding. Gas = mint_gas + burn_gas (config; measured on the real
bytecode: exact/gas.py V3_MINT_TX_GAS, V3_BURN_COLLECT_TX_GAS, docs/fidelity.md).
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.exact import gas as exact_gas
from gpubt.exact import v3 as exact_v3
from gpubt.exact.v3 import swap_with_fees
from gpubt.market.batch import WETH, point_key
from gpubt.market.pools import PoolTable
from gpubt.market.searchers import option
from gpubt.strategies.base import Strategy, StrategyResult, device_array, no_victims_reason, trade_row
from gpubt.strategies.sandwich import token_wei_per_raw

Q128 = 2**128


def exact_pool(fee_ppm: int, tick_spacing: int, sqrt_price_x96: int, liquidity: int, tick: int,
               table: tuple) -> exact_v3.V3Pool:
    """A V3Pool at the given exact state with its own tick table (mint/burn write it): table = (ticks,
    liquidity_nets, liquidity_grosses) as pack.Batch.exact_v3_state returns it."""
    pool = exact_v3.V3Pool(fee=fee_ppm, tick_spacing=tick_spacing)
    pool.sqrt_price_x96, pool.liquidity, pool.tick = sqrt_price_x96, liquidity, tick
    pool.ticks = {t: exact_v3.TickInfo(g, n) for t, n, g in zip(*table)}
    pool.initialized = sorted(t // tick_spacing for t in table[0])
    return pool


def exact_jit(pool: exact_v3.V3Pool, zero_for_one: bool, victim_in: int, tick_lower: int, tick_upper: int,
              position_liquidity: int, victim_out: int | None = None) -> dict | None:
    """mint → victim swap → burn + collect on `pool` (changed in place). Amounts are exact Python ints; None when
    the mint reverts or the swap cannot take the victim's whole input. With `victim_out` the victim is an
    exact-output swap buying exactly victim_out (victim_in is then its amountInMax: None when it would pay more,
    or when the pool cannot deliver the output)."""
    exact_output = victim_out is not None
    try:
        minted0, minted1 = pool.mint(tick_lower, tick_upper, position_liquidity, owner="jit")
        amount0, amount1, crossed, growth, fee_total = swap_with_fees(
            pool, zero_for_one, victim_out if exact_output else victim_in, tick_lower, tick_upper, exact_output)
        burned0, burned1 = pool.burn(tick_lower, tick_upper, position_liquidity, owner="jit")
    except exact_v3.V3Revert:
        return None
    paid, got = (amount0, -amount1) if zero_for_one else (amount1, -amount0)
    if (got != victim_out or paid > victim_in) if exact_output else paid != victim_in:
        return None
    fees = growth * position_liquidity // Q128  # Position.update: mulDiv(feeGrowthInside delta, liquidity, Q128)
    d_in, d_out, gross = exact_v3.jit_gross(zero_for_one, (minted0, minted1), (burned0, burned1), fees,
                                            pool.sqrt_price_x96)
    return dict(minted=(minted0, minted1), burned=(burned0, burned1), fees=fees, fee_total=fee_total,
                victim_in=paid, victim_out=got, crossed=crossed, d_in=d_in, d_out=d_out, gross=gross,
                sqrt_price_after=pool.sqrt_price_x96)


class JitStrategy(Strategy):
    name = "jit"
    capital_eth = 100.0  # default of strategy.jit.capital_eth (the class value marks a capital-bound strategy)
    needs_victims = True

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        self.meta = PoolTable(dataset.pools, dataset.tokens)
        self.capital_eth = float(option(cfg, "capital_eth", type(self).capital_eth))
        self.range_spacings = np.asarray(list(option(cfg, "range_spacings", [1, 2, 3])), np.int32)
        self.size_fractions = np.asarray(list(option(cfg, "size_fractions", [0.1, 0.25, 0.5, 1.0])), np.float64)
        self.min_victim_eth = float(option(cfg, "min_victim_eth", 1.0))
        self.mint_gas = int(option(cfg, "mint_gas", exact_gas.V3_MINT_TX_GAS))
        self.burn_gas = int(option(cfg, "burn_gas", exact_gas.V3_BURN_COLLECT_TX_GAS))
        self.max_steps = int(option(cfg, "v3_max_steps", 64))
        self.stats.update(victims=0, selected=0, exact_output_victims=0)

    def idle_reason(self, first_block: int, last_block: int) -> str | None:
        if not self.meta.is_v3.any():
            return "no V3 pools in this dataset (JIT liquidity needs concentrated-liquidity pools)"
        return no_victims_reason(self.dataset, first_block, last_block, self.meta.is_v3)

    def evaluate(self, batch, tables) -> StrategyResult:
        victims = tables.victims
        empty = StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        self.stats["victims"] += victims.num_rows
        if victims.num_rows == 0 or len(batch.log_sqrt_price) == 0:
            return empty
        pool = victims.column("pool_id").to_numpy().astype(np.int32)
        block = victims.column("block_number").to_numpy().astype(np.int64) - batch.first_block
        zfo = victims.column("zero_for_one").to_numpy(zero_copy_only=False).astype(np.bool_)
        amount_in_f = schema.amounts_to_float(victims.column("amount_in"))
        token_wei = token_wei_per_raw(batch, self.meta.decimals)
        t0, t1 = self.meta.token0[pool], self.meta.token1[pool]
        w0, w1 = token_wei[block, t0], token_wei[block, t1]
        w_in = np.where(zfo, w0, w1)
        keep = self.meta.is_v3[pool] & np.isfinite(w0) & np.isfinite(w1) & (amount_in_f * np.nan_to_num(w_in)
                                                                            >= self.min_victim_eth * 1e18)
        rows = np.flatnonzero(keep)
        self.stats["screened"] += len(rows)
        if len(rows) == 0:
            return empty
        tx = victims.column("tx_index").to_numpy().astype(np.int64)
        key = point_key(block, tx) - 1
        min_out_f = schema.amounts_to_float(victims.column("amount_out_min"))

        def screen(rows, capital_eth):
            """The screen kernel on victim rows `rows` with positions of up to `capital_eth`: (tick_lower,
            tick_upper, liquidity, fees, gross, net) per row, on the host."""
            n, be = len(rows), self.backend
            dev = functools.partial(device_array, be)
            outs = ([be.xp.zeros(n, np.int32), be.xp.zeros(n, np.int32)]
                    + [be.xp.zeros(n, np.float64) for _ in range(4)])
            st = batch.device_state(be)
            args = (dev(pool[rows]), dev(key[rows]), dev(zfo[rows]), dev(amount_in_f[rows]), dev(min_out_f[rows]),
                    dev(np.full(n, capital_eth * 1e18)), dev(w_in[rows]), dev(w0[rows]), dev(w1[rows]),
                    dev(batch.gas_price_wei[block[rows]]), dev(self.meta.gamma), dev(self.meta.tick_spacing),
                    dev(self.range_spacings), dev(self.size_fractions), st[0], st[1], *st[4:],
                    self.max_steps, float(self.mint_gas + self.burn_gas), *outs)
            self.launch("jit", "screen_jit", n, args)
            return tuple(be.to_host(o) for o in outs)

        with self.timed("screen"):
            t_lower, t_upper, liq, fees, gross, net = screen(rows, self.capital_eth)
            passed = np.flatnonzero(self.passes_screen(net, gross * np.nan_to_num(w_in[rows])) & (liq > 0))
        vr = rows[passed]
        opportunities = pa.Table.from_pydict({
            "strategy": ["jit"] * len(passed),
            "block_number": (batch.first_block + block[vr]).tolist(),
            "tx_index": (tx[vr] - 1).tolist(),
            "path_id": vr.tolist(),
            "start_token": np.where(zfo[vr], t0[vr], t1[vr]).tolist(),
            "hops": [1] * len(passed),
            "screen_amount_in": liq[passed].tolist(),   # the position's liquidity ΔL
            "screen_gross_profit_raw": gross[passed].tolist(),
            "screen_net_profit_wei": net[passed].tolist(),
        }, schema=schema.OPPORTUNITIES)

        best: dict = {}
        for j in passed[np.argsort(-net[passed], kind="stable")].tolist():
            best.setdefault((int(pool[rows[j]]), int(block[rows[j]])), j)
        self.stats["selected"] += len(best)
        amount_in = victims.column("amount_in").to_pylist()
        min_out = victims.column("amount_out_min").to_pylist()
        hashes = victims.column("tx_hash").to_pylist()
        exact_output = schema.victims_exact_output(victims)
        trades = []
        chosen = sorted(best.values())
        with self.timed("screen"):  # the positions the policy's other capitals would mint (with_capital_curve)
            tiers = {c: screen(rows[chosen], c)[:3] for c in self.capital_tiers_eth if c != self.capital_eth}
        with self.timed("exact"):
            for i, j in enumerate(chosen):
                r = int(rows[j])
                z = bool(zfo[r])
                args = (batch, r, int(pool[r]), z, int(key[r]), int(block[r]), int(tx[r]), int(t0[r] if z else t1[r]),
                        float(w_in[r]), int(amount_in[r]), int(min_out[r]), hashes[r],
                        (int(t_lower[j]), int(t_upper[j]), int(liq[j])), bool(exact_output[r]),
                        {c: (int(lo[i]), int(hi[i]), int(q[i])) for c, (lo, hi, q) in tiers.items()})
                trade = self.reprice(*args)
                if self.takes(trade, float(net[j])):
                    trade["_reprice"] = lambda args=args: (self.reprice(*args), None)
                    trade["_victims"] = [int(key[r]) + 1]
                    trades.append(trade)
        return StrategyResult(opportunities, trades)

    def effects(self, trade: dict, batch) -> list:
        """Mint the position, the victim's swap as priced, burn the position."""
        d = json.loads(trade["detail"])
        pool, liquidity = d["pool"], int(d["liquidity"])
        victim = int(point_key(trade["block_number"] - batch.first_block, d["victim"]["tx_index"]))
        v = d["victim"]
        return [("modify", pool, d["tick_lower"], d["tick_upper"], liquidity),
                ("victim", pool, victim, bool(trade["zero_for_one"][0]), v["kind"] == "exact_output",
                 int(v["amount_in"]), int(v["amount_out"])),
                ("modify", pool, d["tick_lower"], d["tick_upper"], -liquidity)]

    def reprice(self, batch, r: int, p: int, z: bool, key: int, b: int, tx: int, token_in: int, w_in: float,
                v_in: int, v_min: int, tx_hash, position: tuple, exact_output: bool = False,
                tier_positions: dict | None = None) -> dict | None:
        """The exact JIT trade around victim row r (pool p, direction z, at `key` of block offset b) with the
        screened position (tick_lower, tick_upper, liquidity); None when the victim's limit fails. An exact-output
        victim (`exact_output`: VICTIMS exact_output) buys v_min exactly and pays what the
        swap takes, at most v_in (its amountInMax). `tier_positions`: {capital_eth: the position screened with
        that capital} for the policy's other capitals (`with_capital_curve`; liquidity 0: none passes)."""
        if exact_output:
            self.stats["exact_output_victims"] += 1

        def price(at: tuple) -> dict | None:
            return (self._price(batch, r, p, z, key, b, tx, token_in, w_in, v_in, v_min, tx_hash, at, exact_output)
                    if at[2] > 0 else None)

        tiers = tier_positions or {}
        return self.with_capital_curve(price(position), lambda capital: price(tiers[capital]))

    def _price(self, batch, r: int, p: int, z: bool, key: int, b: int, tx: int, token_in: int, w_in: float,
               v_in: int, v_min: int, tx_hash, position: tuple, exact_output: bool) -> dict | None:
        t_lower, t_upper, liquidity_delta = position
        sqrt_price, liquidity, tick, table = batch.exact_v3_state(p, key)
        fee, spacing = int(self.meta.fee_ppm[p]), int(self.meta.tick_spacing[p])
        res = exact_jit(exact_pool(fee, spacing, sqrt_price, liquidity, tick, table), z, v_in, t_lower, t_upper,
                        liquidity_delta, victim_out=v_min if exact_output else None)
        plain = exact_pool(fee, spacing, sqrt_price, liquidity, tick, table)
        try:  # what the victim would get (exact input) or pay (exact output) without the JIT position
            o = plain.swap_outcome(z, -v_min if exact_output else v_in,
                                   exact_v3.MIN_SQRT_RATIO + 1 if z else exact_v3.MAX_SQRT_RATIO - 1, commit=False)
            victim_plain = (o.amount0 if z else o.amount1) if exact_output else -(o.amount1 if z else o.amount0)
        except exact_v3.V3Revert:
            victim_plain = None
        if res is None or res["victim_out"] < v_min:
            return None
        gross_raw = res["gross"]
        gross_wei = gross_raw if token_in == WETH else round(gross_raw * w_in)
        detail = {
            "pool": p, "tick_lower": t_lower, "tick_upper": t_upper, "liquidity": str(liquidity_delta),
            "minted": [str(a) for a in res["minted"]], "burned": [str(a) for a in res["burned"]],
            "fees": str(res["fees"]), "swap_fee_total": str(res["fee_total"]), "inventory_in": str(res["d_in"]),
            "inventory_out": str(res["d_out"]), "sqrt_price_after": str(res["sqrt_price_after"]),
            "victim": {"tx_index": tx, "tx_hash": tx_hash, "kind": "exact_output" if exact_output else "exact_input",
                       "amount_in": str(res["victim_in"]), "amount_out": str(res["victim_out"]),
                       **({"amount_in_max": str(v_in), "amount_out_exact": str(v_min),
                           "amount_in_without_jit": None if victim_plain is None else str(victim_plain)}
                          if exact_output else
                          {"amount_out_min": str(v_min),
                           "amount_out_without_jit": None if victim_plain is None else str(victim_plain)})},
            "gas": {"mint": self.mint_gas, "burn": self.burn_gas},
        }
        amount_in = res["minted"][0] if z else res["minted"][1]
        amount_out = res["burned"][0] + res["fees"] if z else res["burned"][1] + res["fees"]
        return trade_row(self.name, batch, b, tx - 1, r, token_in, [p], [z], amount_in, amount_out, gross_raw,
                         gross_wei, self.mint_gas + self.burn_gas, self.gas.priority_fee_wei, json.dumps(detail))
