"""Liquidation hunting on an Aave-like lending market (positions: gpubt/data/lending.py; oracle: the reference
PRICES of the dataset, forward-filled per block).

Per batch, the kernel (kernels/liquidation.py) screens every (open position × block) pair at the top of the
block: health factor, repay = close factor × debt, seized collateral = repay's value × (1 + bonus), and the best
swap of the seized collateral back into the debt token (a direct pool, or two hops via WETH; V2 and V3), so

    net = swap output − repay − flash-loan fee − gas · gas price          (debt token, then wei)

The host takes, per position, the first block whose screen clears `min_profit_wei`, re-prices it exactly
(Aave's integer liquidation amounts with 8-decimal oracle prices, the swap with exact V2 / V3 math), and if the
exact net still clears the threshold liquidates it: collateral and debt shrink, the position's next step can come
no earlier than the next block. Positions touched are screened again from there (a few rounds per batch), so
each position is liquidated at most once per close-factor step and the book is carried across batches.

Rival liquidators (the dataset's liquidations.parquet, LIQUIDATIONS in gpubt/data/lending.py; optional): the book
at a block reflects every historical liquidation before it. A historical liquidation at block h (a tx inside h, so
after our top-of-block point there) re-executes against the book as our trades left it: it proceeds, repaying
min(its historical repay, close factor × the current debt) and seizing by the same Aave terms, if the position is
still liquidatable at h; otherwise it reverts (we pre-empted it: stats `rivals_preempted`). Without any trade of
ours the re-execution reproduces history exactly. The book is the strategy's own state under both execution modes
(as before: `execution=replay` does not undo our liquidations), so this rule is the same in both. Each position's
screen stops at the block of its next historical liquidation, which is applied before the screen goes on.

Gas: `gas_units` (default 300,000: Aave v2/v3 liquidationCall with a flash loan, publicly ~250–400k) plus, per
swap hop, gas.per_hop_units for a V2 hop (51,557: gpubt/exact/gas.py V2_HOP_GAS) or V3_SWAP_BASE_GAS (76,952)
for a V3 hop; V3 tick crossings are not charged. Flash-loan fee: `flash_loan_fee_bps` of the repaid debt
(Aave v3: 5 bps; v2: 9), charged when `flash_loan` is true.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.data import lending
from gpubt.exact import gas as exact_gas
from gpubt.exact.hops import v2_hop, v3_hop, v3_quote_pool
from gpubt.kernels.cycles import KEY_TX_BITS, V3_MAX_STEPS
from gpubt.market.prices import WETH
from gpubt.market.pools import PoolTable
from gpubt.strategies import exact_engine
from gpubt.strategies.base import DETAIL_JSON, Strategy, StrategyResult, device_array, trade_row
from gpubt.strategies.cexdex import ReferencePrices, _big, opportunities_table, token_scale

ROUTE_HOPS = 2
# what a historical liquidation's re-execution did (apply_rivals), as the stats count it
OUTCOMES = {1: ("rival_liquidations",), 2: ("rival_liquidations", "rivals_shrunk"), 3: ("rivals_preempted",)}


def build_routes(pools: PoolTable, collateral: int, debt: int, max_routes: int):
    """Candidate routes collateral → debt: every direct pool, then every pool pair via WETH; list of
    [(pool, zero_for_one), ...] (at most `max_routes`)."""
    def joining(a, b):
        return [p for p in range(pools.n) if {int(pools.token0[p]), int(pools.token1[p])} == {a, b}]

    routes = [[(p, int(pools.token0[p]) == collateral)] for p in joining(collateral, debt)]
    if WETH not in (collateral, debt):
        for p1 in joining(collateral, WETH):
            for p2 in joining(WETH, debt):
                routes.append([(p1, int(pools.token0[p1]) == collateral), (p2, int(pools.token0[p2]) == WETH)])
    return routes[:max_routes]


class LiquidationStrategy(Strategy):
    """See the module docstring. Config: configs/strategy/liquidation.yaml."""

    name = "liquidation"

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        get = (cfg or {}).get
        self.positions = lending.open_positions(dataset, cfg)
        self.pools = PoolTable(dataset.pools)
        self.scale = token_scale(dataset)
        self.decimals = np.round(np.log10(self.scale)).astype(np.int64)
        self.oracle = ReferencePrices(dataset.read("prices"), len(self.scale))
        self.gas_units = int(get("gas_units", 300_000))
        self.flash_fee_bps = float(get("flash_loan_fee_bps", 5.0)) if bool(get("flash_loan", True)) else 0.0
        self.flash_fee_ppm = int(round(self.flash_fee_bps * 100))
        self.max_rounds = int(get("max_rounds", 16))
        cols = {c: self.positions.column(c).to_pylist() for c in self.positions.column_names}
        self.ids = np.asarray(cols["position_id"], np.int64)
        self.owner = cols["owner"]
        self.collateral_token = np.asarray(cols["collateral_token"], np.int32)
        self.debt_token = np.asarray(cols["debt_token"], np.int32)
        self.threshold_bps = np.asarray(cols["liquidation_threshold_bps"], np.int64)
        self.bonus_bps = np.asarray(cols["liquidation_bonus_bps"], np.int64)
        self.close_factor_bps = np.asarray(cols["close_factor_bps"], np.int64)
        self.rate = np.asarray(cols["borrow_rate_per_block"], np.float64)
        # the book, carried across batches: exact amounts and the block the debt is measured at
        self.collateral = [int(v) for v in cols["collateral_amount"]]
        self.debt = [int(v) for v in cols["debt_amount"]]
        self.ref_block = np.asarray(cols["opened_block"], np.int64)
        self.next_block = self.ref_block.copy()
        self.liquidations = np.zeros(len(self.ids), np.int64)
        # the rivals' history, per position (CSR over the history's rows, in (block, tx) order), and each position's
        # next row to apply (carried)
        history = lending.open_liquidations(dataset, cfg, self.positions)
        index = {int(pid): k for k, pid in enumerate(self.ids.tolist())}
        h_pos = np.asarray([index[int(v)] for v in history.column("position_id").to_pylist()], np.int64)
        order = np.argsort(h_pos, kind="stable")
        self.hist_block = history.column("block_number").to_numpy().astype(np.int64)[order]
        self.hist_repay = [int(v) for v in schema.amounts_int(history.column("debt_repaid").take(pa.array(order)))]
        self.hist_offsets = np.searchsorted(h_pos[order], np.arange(len(self.ids) + 1)).astype(np.int64)
        self.hist_next = self.hist_offsets[:-1].copy()
        self.stats.update(rival_liquidations=0, rivals_preempted=0, rivals_shrunk=0)
        self.hist_outcome = np.zeros(len(self.hist_block), np.int8)  # this batch's: 0 not applied, else OUTCOMES
        # routes per position (shared by the positions of one collateral/debt pair), CSR
        max_routes = int(get("max_routes", 12))
        by_pair: dict = {}
        flat, offsets = [], [0]
        for c, d in zip(self.collateral_token.tolist(), self.debt_token.tolist()):
            if (c, d) not in by_pair:
                by_pair[(c, d)] = build_routes(self.pools, c, d, max_routes)
            flat.extend(by_pair[(c, d)])
            offsets.append(len(flat))
        self.route_offsets = np.asarray(offsets, np.int64)
        n_routes = len(flat)
        self.route_pools = np.full((max(n_routes, 1), ROUTE_HOPS), -1, np.int32)
        self.route_zfo = np.zeros((max(n_routes, 1), ROUTE_HOPS), np.bool_)
        self.route_gamma = np.zeros((max(n_routes, 1), ROUTE_HOPS))
        self.route_is_v3 = np.zeros((max(n_routes, 1), ROUTE_HOPS), np.bool_)
        self.route_gas = np.zeros(max(n_routes, 1))
        for r, route in enumerate(flat):
            gas_units = self.gas_units
            for h, (pool, zfo) in enumerate(route):
                self.route_pools[r, h], self.route_zfo[r, h] = pool, zfo
                self.route_gamma[r, h], self.route_is_v3[r, h] = self.pools.gamma[pool], self.pools.is_v3[pool]
                gas_units += exact_gas.V3_SWAP_BASE_GAS if self.pools.is_v3[pool] else gas.per_hop_units
            self.route_gas[r] = gas_units
        self.routes = flat

    def carried(self) -> dict:
        """The book after our liquidations: exact collateral and debt (decimal strings), the block each debt is
        measured at, the earliest block of each position's next step, and its steps so far."""
        return {"collateral": [str(c) for c in self.collateral], "debt": [str(d) for d in self.debt],
                "ref_block": self.ref_block.tolist(), "next_block": self.next_block.tolist(),
                "liquidations": self.liquidations.tolist(), "history_next": self.hist_next.tolist()}

    def restore(self, carried: dict) -> None:
        if len(carried["debt"]) != len(self.ids):
            raise ValueError(f"checkpoint: the liquidation book holds {len(carried['debt'])} positions, the dataset "
                             f"{len(self.ids)}")
        self.collateral = [int(c) for c in carried["collateral"]]
        self.debt = [int(d) for d in carried["debt"]]
        self.ref_block = np.asarray(carried["ref_block"], np.int64)
        self.next_block = np.asarray(carried["next_block"], np.int64)
        self.liquidations = np.asarray(carried["liquidations"], np.int64)
        self.hist_next = np.asarray(carried.get("history_next", self.hist_offsets[:-1]), np.int64)

    # -- the rivals' history --------------------------------------------------------------------------------------
    def next_rival_block(self, p: int) -> int:
        """Block of position p's next historical liquidation not yet applied (a huge number when none)."""
        k = int(self.hist_next[p])
        return int(self.hist_block[k]) if k < self.hist_offsets[p + 1] else 2**62

    def apply_rivals(self, p: int, upto_block: int, price_of) -> None:
        """Re-execute position p's historical liquidations of blocks <= upto_block against the book (module
        docstring); `price_of(block)`: the oracle row (USD per token) of an absolute block."""
        while self.next_rival_block(p) <= upto_block:
            k = int(self.hist_next[p])
            block = int(self.hist_block[k])
            ok, debt, repay, seized, _ = self.exact_terms(p, block, price_of(block), self.hist_repay[k])
            if self.hist_outcome[k]:   # applied before on a book with a trade the pass then dropped (dropped)
                for key in OUTCOMES[self.hist_outcome[k]]:
                    self.stats[key] -= 1
            if ok:
                self.collateral[p] -= seized
                self.debt[p] = debt - repay
                self.ref_block[p] = block
                self.hist_outcome[k] = 2 if repay < self.hist_repay[k] else 1  # 2: on what our liquidation left
            else:
                self.hist_outcome[k] = 3
            for key in OUTCOMES[self.hist_outcome[k]]:
                self.stats[key] += 1
            self.hist_next[p] = k + 1
            self.next_block[p] = max(int(self.next_block[p]), block + 1)

    # -- screen ---------------------------------------------------------------------------------------------------
    def screen(self, batch, positions: np.ndarray, price_usd: np.ndarray, stop: np.ndarray | None = None):
        """Kernel over `positions` × their blocks (from next_block, up to `stop`: absolute, inclusive) in the
        batch: (pair position, pair block, health, repay, seized, route, amount out, net wei), host numpy."""
        first, n_blocks = batch.first_block, batch.n_blocks
        start = np.maximum(self.next_block[positions] - first, 0)
        end = n_blocks if stop is None else np.minimum(np.asarray(stop, np.int64) - first + 1, n_blocks)
        counts = np.maximum(end - start, 0)
        pair_position = np.repeat(positions, counts).astype(np.int32)
        pair_block = (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
                      + np.repeat(start, counts)).astype(np.int32)
        n = len(pair_position)
        be = self.backend
        up = functools.partial(device_array, be)
        wei_per_usd = 1e18 / price_usd[:, WETH]
        collateral = np.asarray([float(c) for c in self.collateral])
        debt = np.asarray([float(d) for d in self.debt])
        outs = (be.xp.zeros(n), be.xp.zeros(n), be.xp.zeros(n), be.xp.zeros(n, np.int64), be.xp.zeros(n),
                be.xp.zeros(n))
        args = (up(pair_position), up(pair_block), up(self.collateral_token), up(self.debt_token), up(collateral),
                up(debt), up(self.ref_block - first), up(np.log1p(self.rate)), up(self.threshold_bps / 1e4),
                up(self.bonus_bps / 1e4), up(self.close_factor_bps / 1e4), up(self.route_offsets),
                up(self.route_pools), up(self.route_zfo), up(self.route_gamma), up(self.route_is_v3),
                up(self.route_gas), *batch.device_state(be), V3_MAX_STEPS, up(price_usd),
                up(self.scale), up(wei_per_usd), up(batch.gas_price_wei), self.flash_fee_bps / 1e4, *outs)
        self.launch("liquidation", "liquidation_pairs", n, args)
        return (pair_position, pair_block, *(be.to_host(o) for o in outs))

    # -- exact ----------------------------------------------------------------------------------------------------
    def exact_terms(self, p: int, block: int, price_usd: np.ndarray, max_repay: int | None = None):
        """Aave's integer liquidation at absolute `block` with oracle prices rounded to 8 decimals
        (lending.liquidation_terms; repay at most `max_repay`): (liquidatable, debt, repay, seized, health factor
        as a float)."""
        c, d = int(self.collateral_token[p]), int(self.debt_token[p])
        debt = self.debt[p] * lending.debt_growth_wad(float(self.rate[p]), block - int(self.ref_block[p])) // lending.WAD
        ok, repay, seized, health = lending.liquidation_terms(
            self.collateral[p], debt, lending.oracle_e8(price_usd[c]), lending.oracle_e8(price_usd[d]),
            10 ** int(self.decimals[c]), 10 ** int(self.decimals[d]), int(self.threshold_bps[p]),
            int(self.bonus_bps[p]), int(self.close_factor_bps[p]), max_repay)
        return ok, debt, repay, seized, health

    def reprice_many(self, batch, hits: list, price_usd: np.ndarray, cache: dict) -> list:
        """reprice of every (position, block offset, route) in `hits`, their seized collateral sold in one call of
        the exact engine per hop (routes_many)."""
        terms = [self.exact_terms(p, batch.first_block + b, price_usd[b]) for p, b, _ in hits]
        routed = self.routes_many(batch, [(b, r, t[3] if t[0] else 0) for (_, b, r), t in zip(hits, terms)], cache)
        return [self.reprice(batch, p, b, r, price_usd[b], cache, (legs,), t)
                for (p, b, r), legs, t in zip(hits, routed, terms)]

    def reprice(self, batch, p: int, block_offset: int, route: int, price_usd: np.ndarray, cache: dict,
                routed: tuple | None = None, terms: tuple | None = None):
        """The liquidation of position p at the top of the block with exact math: (TRADES row, repay, seized) or
        None when it is not liquidatable exactly or the route cannot take the seized collateral. `routed`: the
        route's sale found beforehand (routes_many), else it is quoted here; `terms`: exact_terms at the block, if
        already computed."""
        block = batch.first_block + block_offset
        ok, debt, repay, seized, health = terms or self.exact_terms(p, block, price_usd)
        if not ok:
            return None
        routed = routed[0] if routed is not None else self.route(batch, block_offset, route, seized, cache)
        if routed is None:
            return None
        legs, amount = routed
        flash_fee = -(-repay * self.flash_fee_ppm // 1_000_000)
        d = int(self.debt_token[p])
        gross_raw, gross_wei = self.gross(d, amount, repay, flash_fee, price_usd)
        detail = {
            "position_id": int(self.ids[p]), "owner": self.owner[p], "health_factor": health,
            "collateral_token": int(self.collateral_token[p]), "debt_token": d,
            "collateral_before": _big(self.collateral[p]), "debt_before": _big(debt),
            "debt_repaid": _big(repay), "collateral_seized": _big(seized), "flash_loan_fee": _big(flash_fee),
            "oracle_usd": {str(int(self.collateral_token[p])): float(price_usd[self.collateral_token[p]]),
                           str(d): float(price_usd[d])},
            "liquidation_threshold_bps": int(self.threshold_bps[p]), "liquidation_bonus_bps": int(self.bonus_bps[p]),
            "close_factor_bps": int(self.close_factor_bps[p]), "step": int(self.liquidations[p]) + 1, "legs": legs,
        }
        row = trade_row(self.name, batch, block_offset, -1, int(self.ids[p]), d, [leg["pool"] for leg in legs],
                        [leg["zero_for_one"] for leg in legs], repay, amount, gross_raw, gross_wei,
                        int(self.route_gas[route]), self.gas.priority_fee_wei, DETAIL_JSON(detail))
        return row, debt, repay, seized

    def route(self, batch, block_offset: int, route: int, seized: int, cache: dict):
        """(legs, amount of debt token out) of the seized collateral sold along `route` at the top of the block,
        exact; None when a pool cannot take its input."""
        key = (block_offset << KEY_TX_BITS) - 1
        legs, amount = [], seized
        for pool, zfo in self.routes[route]:
            fee = int(self.pools.fee_ppm[pool])
            if self.pools.is_v3[pool]:
                sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
                hop = v3_hop(v3_quote_pool(fee, int(self.pools.tick_spacing[pool]), sqrt_price, liquidity, tick, table,
                                           cache), zfo)
            else:
                r0, r1 = batch.exact_reserve(pool, key)
                hop = v2_hop(r0 if zfo else r1, r1 if zfo else r0, fee)
            out = hop(amount) if amount > 0 else None
            if out is None or out <= 0:
                return None
            legs.append({"pool": pool, "zero_for_one": zfo, "amount_in": _big(amount), "amount_out": _big(out)})
            amount = out
        return legs, amount

    def routes_many(self, batch, sells: list, cache: dict) -> list:
        """route for every (block offset, route, seized) of `sells` (seized 0: nothing to sell, None back), hop by
        hop: a hop's V3 swaps in one call of the exact engine (exact.engine=device: kernels/exact_uniswap.py
        v3_swaps), its V2 ones here (one getAmountOut costs less than packing it)."""
        legs = [[] for _ in sells]
        amount = [seized for _, _, seized in sells]

        def sold(t, pool, zfo, out):   # the route's rule: a hop that cannot take its input calls the sale off
            if out is None or out <= 0:
                amount[t] = 0
                return
            legs[t].append({"pool": pool, "zero_for_one": zfo, "amount_in": _big(amount[t]), "amount_out": _big(out)})
            amount[t] = out

        alive = [t for t, a in enumerate(amount) if a > 0]
        for h in range(max((len(self.routes[r]) for _, r, _ in sells), default=0)):
            at = [t for t in alive if h < len(self.routes[sells[t][1]])]
            v3_rows, v3_at = [], []
            for t in at:
                b, r, _ = sells[t]
                pool, zfo = self.routes[r][h]
                key = (b << KEY_TX_BITS) - 1
                if self.pools.is_v3[pool]:
                    v3_rows.append(exact_engine.v3_leg(batch, self.pools, pool, key, zfo, amount[t]))
                    v3_at.append(t)
                else:
                    r0, r1 = batch.exact_reserve(pool, key)
                    fee = int(self.pools.fee_ppm[pool])
                    sold(t, pool, zfo, v2_hop(r0 if zfo else r1, r1 if zfo else r0, fee)(amount[t]))
            if v3_rows:
                backend, engine = self.exact()
                for t, got in zip(v3_at, exact_engine.v3_swaps(
                        backend, v3_rows, lambda k: exact_engine.v3_swap_oracle(v3_rows[k], cache), engine)):
                    pool, zfo = self.routes[sells[t][1]][h]   # V3Hop's rule: the whole input taken, else None
                    sold(t, pool, zfo, got[1] if got is not None and got[0] == amount[t] else None)
            alive = [t for t in at if amount[t] > 0]
        return [(legs[t], amount[t]) if amount[t] > 0 and legs[t] else None for t in range(len(sells))]

    def gross(self, debt_token: int, amount_out: int, repay: int, flash_fee: int, price_usd) -> tuple[int, int]:
        """(gross profit in raw debt token, in wei at the block's oracle prices)."""
        gross_raw = amount_out - repay - flash_fee
        wei_per_raw = price_usd[debt_token] / price_usd[WETH] * 10.0 ** (18 - int(self.decimals[debt_token]))
        return gross_raw, gross_raw if debt_token == WETH else round(gross_raw * wei_per_raw)

    def rerouted(self, batch, trade: dict, block_offset: int, route: int, price_usd: np.ndarray, cache: dict):
        """The same liquidation (the same debt repaid, the same collateral seized) with its collateral sold on the
        current state of its route's pools (the ordered pass: our bundles changed one); (row or None, None)."""
        detail = json.loads(trade["detail"])
        routed = self.route(batch, block_offset, route, int(detail["collateral_seized"]), cache)
        if routed is None:
            return None, None
        detail["legs"], amount = routed
        repay, d = int(detail["debt_repaid"]), int(detail["debt_token"])
        gross_raw, gross_wei = self.gross(d, amount, repay, int(detail["flash_loan_fee"]), price_usd)
        return trade_row(self.name, batch, block_offset, -1, trade["path_id"], d, trade["pools"], trade["zero_for_one"],
                         repay, amount, gross_raw, gross_wei, int(self.route_gas[route]), self.gas.priority_fee_wei,
                         DETAIL_JSON(detail)), None

    def effects(self, trade: dict, batch) -> list:
        """The seized collateral sold along the route (the repay and the seizure touch no pool)."""
        legs = json.loads(trade["detail"])["legs"]
        return [("route", [leg["pool"] for leg in legs], [leg["zero_for_one"] for leg in legs],
                 int(legs[0]["amount_in"]), int(legs[-1]["amount_out"]))]

    def dropped(self, trade: dict) -> None:
        """The pass did not send the liquidation: the book is as it was before it, and the historical liquidations
        applied since re-execute on that book."""
        p, collateral, debt, ref_block, hist_next, price_of = trade["_undo"]
        k_now = int(self.hist_next[p])
        self.collateral[p], self.debt[p], self.ref_block[p] = collateral, debt, ref_block
        self.liquidations[p] -= 1
        if k_now > hist_next:   # their outcomes on the book with our trade are counted out as they are re-applied
            self.hist_next[p] = hist_next
            self.apply_rivals(p, int(self.hist_block[k_now - 1]), price_of)

    # -- evaluate -------------------------------------------------------------------------------------------------
    def idle_reason(self, first_block: int, last_block: int) -> str | None:
        return None if len(self.ids) else "no lending positions in this dataset (positions.parquet)"

    def evaluate(self, batch, tables=None) -> StrategyResult:
        first, last = batch.first_block, batch.first_block + batch.n_blocks - 1
        price_usd = self.oracle.at(np.arange(first, last + 1))

        def price_of(block: int) -> np.ndarray:
            return price_usd[block - first] if first <= block <= last else self.oracle.at([block])[0]

        self.hist_outcome[:] = 0
        for p in np.flatnonzero(self.hist_next < self.hist_offsets[1:]).tolist():
            if self.next_rival_block(p) < first:   # history before the run's (or shard's) start
                self.apply_rivals(p, first - 1, price_of)
        opp = {f.name: [] for f in schema.OPPORTUNITIES}
        trades = []
        cache: dict = {}

        def still_open(p) -> bool:
            return self.next_block[p] <= last and self.collateral[p] > 0 and self.debt[p] > 0

        open_ = np.asarray([c > 0 and d > 0 for c, d in zip(self.collateral, self.debt)], np.bool_)
        todo = np.flatnonzero(open_ & (self.next_block <= last))
        rounds = 0
        while len(todo) and rounds < self.max_rounds:
            stop = np.asarray([min(self.next_rival_block(p), last) for p in todo.tolist()], np.int64)
            with self.timed("screen"):
                pos, blk, health, repay, seized, route, amount_out, net = self.screen(batch, todo, price_usd, stop)
                self.stats["screened"] += len(pos)
                debt_token = self.debt_token[pos]
                wei_per_raw = price_usd[blk, debt_token] / price_usd[blk, WETH] * 1e18 / self.scale[debt_token]
                hit = np.flatnonzero(self.passes_screen(net, np.nan_to_num(amount_out * wei_per_raw)) & (route >= 0))
            # the first hit of each position (pairs are sorted by position, then block)
            hit = hit[np.concatenate(([True], pos[hit][1:] != pos[hit][:-1]))] if len(hit) else hit
            rounds += int(len(hit) > 0)  # a round without a hit only applies history: it always moves on
            again = []
            for p in sorted(set(todo.tolist()) - set(pos[hit].tolist())):  # no hit up to its stop
                if self.next_rival_block(p) <= last:
                    self.apply_rivals(p, self.next_rival_block(p), price_of)
                    if still_open(p):
                        again.append(p)
            hits = [(int(pos[i]), int(blk[i]), int(route[i])) for i in hit.tolist()]
            with self.timed("exact"):   # the round's positions (one hit each) priced together
                priced_all = self.reprice_many(batch, hits, price_usd, cache)
            for i, (p, b, r), priced in zip(hit.tolist(), hits, priced_all):
                opp["strategy"].append(self.name)
                opp["block_number"].append(first + b)
                opp["tx_index"].append(-1)
                opp["path_id"].append(int(self.ids[p]))
                opp["start_token"].append(int(self.debt_token[p]))
                opp["hops"].append(int((self.route_pools[r] >= 0).sum()))
                opp["screen_amount_in"].append(float(repay[i]))
                opp["screen_gross_profit_raw"].append(float(amount_out[i] - repay[i] * (1 + self.flash_fee_bps / 1e4)))
                opp["screen_net_profit_wei"].append(float(net[i]))
                if self.takes(priced[0] if priced is not None else None, float(net[i])):
                    row, debt, repaid, taken = priced
                    row["_undo"] = (p, self.collateral[p], self.debt[p], self.ref_block[p], int(self.hist_next[p]),
                                    price_of)
                    row["_reprice"] = functools.partial(self.rerouted, batch, row, b, r, price_usd[b], cache)
                    trades.append(row)
                    self.collateral[p] -= taken
                    self.debt[p] = debt - repaid
                    self.ref_block[p] = first + b
                    self.liquidations[p] += 1
                self.next_block[p] = first + b + 1  # the next step (or a retry) comes no earlier
                self.apply_rivals(p, first + b, price_of)  # a rival's liquidation in this block comes after ours
                if still_open(p):
                    again.append(p)
            todo = np.asarray(sorted(again), np.int64)
        for p in np.flatnonzero(self.hist_next < self.hist_offsets[1:]).tolist():  # the batch's history left
            self.apply_rivals(p, last, price_of)
        return StrategyResult(opportunities_table(opp), trades)
