"""CEX-DEX and cross-domain arbitrage: trade each pool back to the reference price, hedge at the reference.

Reference series (`ReferencePrices`): the dataset's PRICES (synthetic: the market's own GBM reference; ingested:
a PRICES-schema table the user supplies, `prices_path`), forward-filled per block, times exp(σ·z) with
σ = `reference_noise_bps` and z a counter-based normal of (seed, block, token), so the series does not depend
on batching. Evaluation points: the top of every block for every pool whose two tokens a CEX quotes (TOKENS
`cex_listed`, null counting as quoted), and (`after_swaps`) after every event on those pools.

Screen (kernels/cexdex.py): the optimal DEX leg against the reference at the point (V2 closed form; V3 exact
range walk to the target price) and its profit at that reference, minus the CEX venue fee (cross-domain: and a
bridge fee in bps and a fixed bridge cost in USD) and gas: the decision uses only what is known at the point
(the screen passes candidates with the margin rule; the exact DEX leg valued at the point's reference decides).
A trade taken is then marked out on the reference `markout_seconds` later (cross-domain variant:
`bridge_latency_seconds` later): TRADES profits are realized P&L and can be negative (adverse selection).
Selection: one trade per pool state, at its first point whose trade is taken (after a trade the pool is assumed
back at the band edge until its next event), so a pool left off-reference for many blocks counts once.
"""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.exact import gas as exact_gas
from gpubt.exact import v2 as exact_v2
from gpubt.kernels.cycles import KEY_TX_BITS, V3_MAX_STEPS
from gpubt.market.batch import LOG_KEY_SPAN, WETH
from gpubt.market.prices import price_matrix, prices_at
from gpubt.market.pools import PoolTable
from gpubt.strategies import exact_engine
from gpubt.strategies.base import DETAIL_JSON, Strategy, StrategyResult, device_array, trade_row

BLOCK_SECONDS = 12


def _normal(seed: int, blocks: np.ndarray, n_tokens: int) -> np.ndarray:
    """Standard normals z(seed, block, token), (len(blocks), n_tokens): splitmix64 hashes → Box-Muller."""
    def mix(x):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    with np.errstate(over="ignore"):
        base = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                + np.asarray(blocks, np.uint64)[:, None] * np.uint64(0xD1B54A32D192ED03)
                + np.arange(n_tokens, dtype=np.uint64)[None, :] * np.uint64(0x8CB92BA72F3D8DD7))
        h1, h2 = mix(base), mix(base ^ np.uint64(0x632BE59BD9B4E019))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    u2 = ((h2 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class ReferencePrices:
    """A per-block USD reference price per token: PRICES samples forward-filled (NaN before a token's first
    sample), times exp(noise_bps/1e4 · z(seed, block, token)). Blocks past the last sample keep its prices."""

    def __init__(self, prices: pa.Table, n_tokens: int, noise_bps: float = 0.0, seed: int = 0, ages: bool = False):
        """`ages`: also keep when each price was sampled, for `age` (a matrix the size of the prices')."""
        self.sample_blocks, self.dense, *sampled_at = price_matrix(prices, n_tokens, sampled=ages)
        self._sampled_at = sampled_at[0] if ages else None
        self.n_tokens, self.noise_bps, self.seed = n_tokens, float(noise_bps), int(seed)

    def at(self, blocks) -> np.ndarray:
        """(len(blocks), n_tokens) float64 USD per whole token."""
        blocks = np.asarray(blocks, np.int64)
        out = prices_at(self.sample_blocks, self.dense, blocks)
        if self.noise_bps > 0.0:
            out = out * np.exp(self.noise_bps / 1e4 * _normal(self.seed, blocks, self.n_tokens))
        return np.ascontiguousarray(out)

    def age(self, blocks) -> np.ndarray:
        """(len(blocks), n_tokens): blocks since each token's price in force was sampled (inf before its first);
        built with `ages`."""
        blocks = np.asarray(blocks, np.int64)
        return blocks[:, None] - np.nan_to_num(prices_at(self.sample_blocks, self._sampled_at, blocks), nan=-np.inf)

    def next_sample(self, blocks) -> np.ndarray:
        """Per block, the first sample block at or after it (the last sample's block past the end): the earliest
        block whose reference is an observation rather than a forward-filled older one."""
        idx = np.searchsorted(self.sample_blocks, np.asarray(blocks, np.int64), side="left")
        if not len(self.sample_blocks):
            return np.asarray(blocks, np.int64)
        return self.sample_blocks[np.minimum(idx, len(self.sample_blocks) - 1)]


def load_reference_table(path, tokens: pa.Table) -> pa.Table:
    """A user-supplied reference price table (parquet, PRICES schema), validated (known tokens, prices finite and
    > 0) and sorted by block."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise schema.SchemaError(f"strategy.cexdex.prices_path={path}: unreadable reference prices ({exc})") from None
    table = schema.validate_prices(table, tokens, str(path))
    return table.sort_by([("block_number", "ascending"), ("token_id", "ascending")])


def token_scale(dataset) -> np.ndarray:
    """10**decimals per token_id (float64)."""
    tokens = dataset.tokens
    n = int(tokens.column("token_id").to_numpy().max()) + 1
    decimals = np.zeros(n, np.int64)
    decimals[tokens.column("token_id").to_numpy()] = tokens.column("decimals").to_numpy()
    return 10.0 ** decimals


def opportunities_table(rows: dict) -> pa.Table:
    return pa.Table.from_pydict(rows, schema=schema.OPPORTUNITIES)


def _big(value: int) -> str:
    """Raw amounts in `detail` JSON as decimal strings (readers in other languages keep every digit)."""
    return str(int(value))


# ---------------------------------------------------------------------------------------------------- the strategy
class CexDexStrategy(Strategy):
    """See the module docstring. Config: configs/strategy/cexdex.yaml."""

    name = "cexdex"

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        get = (cfg or {}).get
        self.pools = PoolTable(dataset.pools)
        self.scale = token_scale(dataset)
        self.n_tokens = len(self.scale)
        table = load_reference_table(get("prices_path"), dataset.tokens) if get("prices_path") else dataset.read("prices")
        age = get("max_reference_age_blocks", 0)
        self.max_reference_age = np.inf if age is None else int(age)
        self.reference = ReferencePrices(table, self.n_tokens, float(get("reference_noise_bps", 0.0)),
                                         int(get("seed", 0)), ages=self.max_reference_age != np.inf)
        # only pools whose two tokens a CEX quotes (TOKENS.cex_listed; null, not known: quoted): an unlisted token has
        # no hedge, and a reference series for it (a DEX mark) is no price a desk can trade at
        listed = np.ones(self.n_tokens, np.bool_)
        listed[dataset.tokens.column("token_id").to_numpy()] = \
            dataset.tokens.column("cex_listed").fill_null(True).to_numpy(zero_copy_only=False)
        self.quoted = listed[self.pools.token0] & listed[self.pools.token1]
        self.variant = str(get("variant", "cex"))
        if self.variant not in ("cex", "cross_domain"):
            raise ValueError(f"strategy.cexdex.variant = {self.variant!r} (cex or cross_domain)")
        cross = self.variant == "cross_domain"
        horizon = float(get("bridge_latency_seconds", 0.0) if cross else get("markout_seconds", 12.0))
        self.markout_blocks = int(round(horizon / BLOCK_SECONDS))
        self.cex_fee_bps = float(get("cex_fee_bps", 5.0))
        self.bridge_fee_bps = float(get("bridge_fee_bps", 0.0)) if cross else 0.0
        self.bridge_cost_usd = float(get("bridge_cost_usd", 0.0)) if cross else 0.0
        self.keep = 1.0 - (self.cex_fee_bps + self.bridge_fee_bps) / 1e4
        self.after_swaps = bool(get("after_swaps", True))
        self.gas_v2 = int(get("gas_units_v2", exact_gas.V2_SWAP_TX_GAS))
        self.gas_v3 = int(get("gas_units_v3", exact_gas.V3_SWAP_TX_BASE_GAS))
        self.gas_per_tick = int(get("gas_units_per_tick", exact_gas.V3_SWAP_TX_GAS_PER_TICK))
        self.last_block = int(dataset.last_block)
        self.arbed = np.zeros(self.pools.n, np.bool_)  # we traded on the pool's current state (no event since)

    # -- points and screen ----------------------------------------------------------------------------------------
    def points(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(pool, key) of every evaluation point: each pool with state at the top of every block, and after every
        event of the batch (`after_swaps`); sorted by pool then key, without repeats."""
        has_state = np.flatnonzero((np.diff(batch.log_offsets) > 0) & self.quoted)
        tops = (np.arange(batch.n_blocks, dtype=np.int64) << KEY_TX_BITS) - 1
        # the (pool, key) codes of pack.Batch.log_composite: tops of every block, then the log's events
        code = (has_state[:, None].astype(np.int64) * LOG_KEY_SPAN + tops[None, :] + 1).ravel()
        if self.after_swaps:
            events = batch.log_composite[batch.log_key >= 0]
            code = np.concatenate([code, events[self.quoted[events // LOG_KEY_SPAN]]])
        code = np.sort(code)
        code = code[np.r_[True, code[1:] != code[:-1]]] if len(code) else code  # unique (np.unique hashes: slower)
        return (code // LOG_KEY_SPAN).astype(np.int32), code % LOG_KEY_SPAN - 1

    def markout_block(self, blocks) -> np.ndarray:
        """Where a hedge decided at `blocks` is marked: `markout_blocks` later, at the first observed reference from
        then on (a forward-filled older sample would mark it at nearly the decision's own price)."""
        later = np.minimum(np.asarray(blocks, np.int64) + self.markout_blocks, self.last_block)
        return np.maximum(later, np.minimum(self.reference.next_sample(later), self.last_block))

    def fresh(self, batch, pair_pool, pair_key):
        """The points whose reference prices (both tokens and ETH) were sampled at most `max_reference_age_blocks`
        blocks before: a desk does not trade against a quote it has not seen for minutes (a dataset whose
        reference is sampled every N blocks is evaluated at its samples)."""
        if self.max_reference_age == np.inf:
            return pair_pool, pair_key
        age = self.reference.age(batch.first_block + np.arange(batch.n_blocks))
        block = (pair_key + 1) >> KEY_TX_BITS
        ok = ((age[block, self.pools.token0[pair_pool]] <= self.max_reference_age)
              & (age[block, self.pools.token1[pair_pool]] <= self.max_reference_age)
              & (age[block, WETH] <= self.max_reference_age))
        return pair_pool[ok], pair_key[ok]

    def screen(self, batch, pair_pool, pair_key):
        """Run the kernel (marked at the current reference); returns (zero_for_one, amount in, amount out,
        crossed, gross usd, net wei, ref, mark), mark = the reference `markout_blocks` later."""
        n = len(pair_pool)
        blocks = batch.first_block + np.arange(batch.n_blocks)
        ref = self.reference.at(blocks)
        mark = self.reference.at(self.markout_block(blocks))
        # select on what is known at the point: the screen marks at the current reference (no look-ahead);
        # the marked-out profit of a trade taken is its exact re-pricing's (reprice, with `mark`)
        wei_per_usd = 1e18 / ref[:, WETH]
        pair_block = ((pair_key + 1) >> KEY_TX_BITS).astype(np.int32)
        be = self.backend
        up = functools.partial(device_array, be)
        outs = (be.xp.zeros(n, np.bool_), be.xp.zeros(n), be.xp.zeros(n), be.xp.zeros(n, np.int64),
                be.xp.zeros(n), be.xp.zeros(n))
        p = self.pools
        args = (up(pair_pool), up(pair_key.astype(np.int64)), up(pair_block), up(p.token0), up(p.token1),
                up(p.gamma), up(p.is_v3), *batch.device_state(be), V3_MAX_STEPS, up(ref), up(ref),
                up(self.scale), up(wei_per_usd), up(batch.gas_price_wei), self.keep, self.bridge_cost_usd,
                float(self.gas_v2), float(self.gas_v3), float(self.gas_per_tick), *outs)
        self.launch("cexdex", "cexdex_pairs", n, args)
        return (*(be.to_host(o) for o in outs), ref, mark)

    # -- evaluate -------------------------------------------------------------------------------------------------
    def evaluate(self, batch, tables=None) -> StrategyResult:
        pair_pool, pair_key = self.points(batch)
        pair_pool, pair_key = self.fresh(batch, pair_pool, pair_key)
        self.stats["screened"] += len(pair_pool)
        with self.timed("screen"):
            zfo, x, out, crossed, gross_usd, net, ref, mark = self.screen(batch, pair_pool, pair_key)
            gross_wei = np.nan_to_num(gross_usd * 1e18 / ref[(pair_key + 1) >> KEY_TX_BITS, WETH])
            cand = np.flatnonzero(self.passes_screen(net, gross_wei))
        entry = batch.log_index(pair_pool[cand], pair_key[cand])
        # one trade per pool state: the first point (pairs are sorted by pool, key) of each log entry whose trade
        # is taken; a pool state we traded at a batch's end is skipped at the next batch's snapshot
        skip = (batch.log_key[entry] < 0) & self.arbed[pair_pool[cand]]
        rows, entries = cand[~skip], entry[~skip]
        traded_entry = np.zeros(len(batch.log_key) + 1, np.bool_)
        outcome: dict = {}  # row -> its trade (None: not taken)
        cache: dict = {}
        pending = np.ones(len(rows), np.bool_)
        while pending.any():  # a round: the first pending point of each state not traded yet (rejections are rare)
            idx = np.flatnonzero(pending)
            first = idx[np.concatenate(([True], entries[idx][1:] != entries[idx][:-1]))]
            points = [(int(pair_pool[i]), int(pair_key[i]), bool(zfo[i]), float(x[i])) for i in rows[first].tolist()]
            with self.timed("exact"):   # the round's DEX legs in one call of the exact engine
                legs = self.legs(batch, points, cache)
            for j, (pool, key, zero_for_one, x_float), leg in zip(first.tolist(), points, legs):
                i = int(rows[j])
                block = (key + 1) >> KEY_TX_BITS
                args = (batch, pool, key, zero_for_one, x_float, ref[block], mark[block], cache)
                with self.timed("exact"):
                    trade, net_at_point = self.reprice(*args, leg=leg)
                taken = self.takes(trade, float(net[i]), net_at_point)
                if taken:
                    trade["_reprice"] = functools.partial(self.reprice, *args)
                outcome[i] = trade if taken else None
                traded_entry[entries[j]] |= taken
            pending[first] = False
            pending &= ~traded_entry[entries]
        opp = {f.name: [] for f in schema.OPPORTUNITIES}
        trades = []
        for i in sorted(outcome):  # every point tried is an opportunity, in (pool, key) order
            pool, key = int(pair_pool[i]), int(pair_key[i])
            block = (key + 1) >> KEY_TX_BITS
            t_in = int(self.pools.token0[pool] if zfo[i] else self.pools.token1[pool])
            opp["strategy"].append(self.name)
            opp["block_number"].append(batch.first_block + block)
            opp["tx_index"].append(key - (block << KEY_TX_BITS))
            opp["path_id"].append(pool)
            opp["start_token"].append(t_in)
            opp["hops"].append(1)
            opp["screen_amount_in"].append(float(x[i]))
            opp["screen_gross_profit_raw"].append(float(gross_usd[i] / (ref[block, t_in] / self.scale[t_in])))
            opp["screen_net_profit_wei"].append(float(net[i]))
            if outcome[i] is not None:
                trades.append(outcome[i])
        # which pools end the batch on a state we traded (their last log entry)
        ends = batch.log_offsets[1:] - 1
        has = np.diff(batch.log_offsets) > 0
        no_events = np.zeros(self.pools.n, np.bool_)
        no_events[:len(has)] = has & (batch.log_key[np.maximum(ends, 0)] < 0)
        ended_on_trade = np.zeros(self.pools.n, np.bool_)
        ended_on_trade[:len(has)] = has & traded_entry[np.maximum(ends, 0)]
        self.arbed = ended_on_trade | (self.arbed & no_events)
        return StrategyResult(opportunities_table(opp), trades)

    def carried(self) -> dict:
        """The pools whose current state we traded (a new batch skips them at its snapshot until an event)."""
        return {"arbed": np.flatnonzero(self.arbed).tolist()}

    def restore(self, carried: dict) -> None:
        self.arbed = np.zeros(self.pools.n, np.bool_)
        self.arbed[np.asarray(carried["arbed"], np.int64)] = True

    def legs(self, batch, points: list, cache: dict) -> list:
        """The V3 legs of points (pool, key, zero_for_one, x_float) at integer input floor(x), swapped in one call
        of the exact engine (exact.engine=device: kernels/exact_uniswap.py v3_swaps), each with its v3_leg row;
        None for the V2 legs, which reprice quotes itself (one getAmountOut costs less than packing it)."""
        at = [t for t, (pool, _, _, x_float) in enumerate(points) if self.pools.is_v3[pool] and int(x_float) > 0]
        out: list = [None] * len(points)
        if at:
            rows = [exact_engine.v3_leg(batch, self.pools, *points[t][:3], int(points[t][3])) for t in at]
            backend, engine = self.exact()
            swapped = exact_engine.v3_swaps(backend, rows, lambda k: exact_engine.v3_swap_oracle(rows[k], cache),
                                            engine)
            for t, leg, row in zip(at, swapped, rows):
                out[t] = (leg, row)   # a tuple: a reverted leg (None) is still a leg given; its row (the state)
        return out

    def reprice(self, batch, pool: int, key: int, zero_for_one: bool, x_float: float, ref_usd: np.ndarray,
                mark_usd: np.ndarray, cache: dict, leg: tuple | None = None) -> tuple[dict | None, int]:
        """The DEX leg at integer input floor(x) with exact V2 / V3 math: (its TRADES row, marked out like the
        screen (None when the exact pool cannot take the input); its exact net profit at the point's reference,
        the figure the decision to trade is made on: no look-ahead). `leg`: the V3 leg swapped beforehand and its
        v3_leg row (legs)."""
        p = self.pools
        fee = int(p.fee_ppm[pool])
        amount_in = int(x_float)
        if amount_in <= 0:
            return None, 0
        crossed = 0
        if p.is_v3[pool]:
            if leg is not None:
                swapped, row = leg
            else:
                row = exact_engine.v3_leg(batch, p, pool, key, zero_for_one, amount_in)
                swapped = exact_engine.v3_swap_oracle(row, cache)
            if swapped is None:
                return None, 0
            paid, amount_out, crossed = swapped
            if paid != amount_in or amount_out <= 0:
                return None, 0
            gas_units = self.gas_v3 + self.gas_per_tick * crossed
            state = {"sqrt_price_x96": _big(row[0]), "liquidity": _big(row[2]), "tick": row[1]}
        else:
            r0, r1 = batch.exact_reserve(pool, key)
            r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
            amount_out = exact_v2.get_amount_out(amount_in, r_in, r_out, fee)
            gas_units = self.gas_v2
            state = {"reserve0": _big(r0), "reserve1": _big(r1)}
        block = (key + 1) >> KEY_TX_BITS
        t_in = int(p.token0[pool] if zero_for_one else p.token1[pool])
        t_out = int(p.token1[pool] if zero_for_one else p.token0[pool])
        # the hedge: amount_out sold at the markout reference, less the CEX / bridge fees, in raw input token
        def hedged(usd) -> tuple[int, int, int]:  # (hedge, gross, gross in wei) at reference prices `usd`
            r_in, r_out = usd[t_in] / self.scale[t_in], usd[t_out] / self.scale[t_out]
            hedge = round(amount_out * self.keep * r_out / r_in - self.bridge_cost_usd / r_in)
            gross = hedge - amount_in
            return hedge, gross, gross if t_in == WETH else round(gross * r_in * (1e18 / float(usd[WETH])))

        hedge_raw, gross_raw, gross_wei = hedged(mark_usd)
        t0, t1 = int(p.token0[pool]), int(p.token1[pool])
        ref_pool_price = (ref_usd[t0] / self.scale[t0]) / (ref_usd[t1] / self.scale[t1])
        detail = {
            "pool": pool, "protocol": "v3" if p.is_v3[pool] else "v2", "fee_ppm": fee, "variant": self.variant,
            "zero_for_one": zero_for_one, "token_in": t_in, "token_out": t_out,
            "amount_in": _big(amount_in), "amount_out": _big(amount_out), "ticks_crossed": crossed,
            "state": state, "reference_price_raw": float(ref_pool_price),  # raw token1 per raw token0
            "reference_usd": {str(t_in): float(ref_usd[t_in]), str(t_out): float(ref_usd[t_out])},
            "markout_block": int(self.markout_block([batch.first_block + block])[0]),
            "markout_usd": {str(t_in): float(mark_usd[t_in]), str(t_out): float(mark_usd[t_out])},
            "hedge_raw": _big(hedge_raw), "cex_fee_bps": self.cex_fee_bps, "bridge_fee_bps": self.bridge_fee_bps,
            "bridge_cost_usd": self.bridge_cost_usd,
        }
        row = trade_row(self.name, batch, block, key - (block << KEY_TX_BITS), pool, t_in, [pool], [zero_for_one],
                        amount_in, amount_out, gross_raw, gross_wei, gas_units, self.gas.priority_fee_wei,
                        DETAIL_JSON(detail))
        decision = hedged(ref_usd)[2] - row["gas_cost_wei"]
        row["_decision_wei"] = decision  # the ordered pass ranks bundles by what is known at the point
        # ... and the auction bids on it (analysis/competition.py): the markout is not known when bidding
        row["detail"] = DETAIL_JSON(dict(detail, decision_net_wei=_big(decision)))
        return row, decision
