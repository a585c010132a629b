"""Arbitrage's exact side: pick non-conflicting candidates per evaluation point, re-price them exactly.

V2-only cycles: exact V2 math and the proven level search of gpubt.exact.v2.optimal_input_search, run for all the
cycles of a call at once by the exact engine (gpubt.strategies.exact_engine: kernels/exact_search.py, or the oracle).
Cycles with a V3 hop: each V3 hop is an exact V3Pool rebuilt at the point's exact state (sqrt price, liquidity,
tick and initialized-tick table from the batch's versioned log) and quoted with swap_outcome(commit=False);
the integer input is the float optimum moved to the start of its rounding plateau (`refine_mixed_input`). The
profit reported is exact to the wei for the input chosen; that input is a best effort (see refine_mixed_input),
not a proven maximum as the V2 search's is.
"""
from __future__ import annotations

import numpy as np

from gpubt.strategies import exact_engine
from gpubt.exact.gas import GasModel
from gpubt.exact.hops import V3Hop, mixed_profit, v2_hop, v3_hop, v3_quote_pool
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.batch import WETH, Batch
from gpubt.strategies.arbitrage.paths import Paths
from gpubt.strategies.base import DETAIL_JSON, trade_row


def select(pair_key: np.ndarray, pair_path: np.ndarray, net_wei: np.ndarray, paths: Paths) -> np.ndarray:
    """Indices of the candidates a searcher sends: at each point, best first, skipping paths that share a pool
    with one already chosen at that point (taking one changes the others' reserves)."""
    order = np.lexsort((-net_wei, pair_key))
    chosen = []
    current_key, used = None, set()
    for i in order.tolist():
        if pair_key[i] != current_key:
            current_key, used = pair_key[i], set()
        pools = paths.pools[pair_path[i], :paths.hops[pair_path[i]]].tolist()
        if used.isdisjoint(pools):
            used.update(pools)
            chosen.append(i)
    return np.asarray(chosen, np.int64)


def refine_mixed_input(x_float: float, hops) -> tuple[int, int]:
    """(amount_in, exact profit) near the float optimum x_float: its integer part, moved to the start of its plateau
    (`_plateau_start`: the least input with the same coarsest intermediate amount, so the same output for less
    input). When x_float cannot be swapped through every hop, the input halves until it can.

    Why no search around x_float: the float optimum is within ~1e-10 relative of the real one (tests/kernels/
    test_amm_v3.py) and the profit is flat there (a 1e-8 relative step costs ~1e-16·x), so what an integer search
    can still gain is the rounding plateau, which the trim takes. Measured on 3,877 mixed trades of mainnet-month's
    first 300 blocks against the 18-step golden section over x·(1 ± 1e-8) this replaced: the same profit at the
    median, at most 7.9e8 wei (1.2e-7 of the profit) apart either way, with 10 exact hop quotes instead of 96."""
    x0 = max(1, int(x_float))
    p0 = mixed_profit(x0, hops)
    while p0 is None and x0 > 1:
        x0 //= 2
        p0 = mixed_profit(x0, hops)
    if p0 is None:
        return x0, -x0  # nothing goes through: the whole input is at risk (never screened profitable)
    x_trim = _plateau_start(x0, hops)
    if x_trim < x0:
        p_trim = mixed_profit(x_trim, hops)
        if p_trim is not None and p_trim >= p0:
            return x_trim, p_trim
    return x0, p0


def _plateau_start(x: int, hops) -> int:
    """The least input whose coarsest intermediate output equals x's: every later hop sees the same amount, so the
    cycle's output is the same and the profit larger by the input saved. The coarsest hop is the one whose raw
    unit is worth most start-token units at x (a WBTC unit is ~1e11 wei: a golden-section input wastes up to that
    much). A guess from the hops' inverses (getAmountIn, V3 exact-output quotes) is checked and corrected by a
    galloping then binary search on the hops up to it (their outputs never fall as the input grows)."""
    amounts, amount = [], x
    for hop in hops[:-1]:
        amount = hop(amount) if amount and amount > 0 else None
        if amount is None:
            return x
        amounts.append(amount)
    if not amounts:
        return x
    c = max(range(len(amounts)), key=lambda h: x / amounts[h])
    if x / amounts[c] <= 1.0:
        return x  # every intermediate is finer than the start token
    target = amounts[c]

    def reaches(y: int) -> bool:
        a = y
        for hop in hops[:c + 1]:
            if a is None or a <= 0:
                return False
            a = hop(a)
        return a is not None and a >= target

    guess = target
    for hop in reversed(hops[:c + 1]):
        guess = hop.least_input(guess) if guess is not None else None
    guess = x if guess is None or not 0 < guess <= x else guess
    step = 1
    if reaches(guess):  # gallop down to an input that does not reach the level
        hi, lo = guess, guess - 1
        while lo > 0 and reaches(lo):
            hi, lo, step = lo, max(0, guess - 2 * step), 2 * step
    else:               # gallop up to one that does (x does)
        lo, hi = guess, min(x, guess + 1)
        while hi < x and not reaches(hi):
            lo, hi, step = hi, min(x, guess + 2 * step), 2 * step
    while hi - lo > 1:  # reaches(hi), not reaches(lo)
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _ticks_crossed(hops, amount_in: int) -> int:
    """Initialized ticks the exact V3 hops cross when the cycle runs with `amount_in` (for their gas)."""
    crossed = 0
    amount = amount_in
    for hop in hops:
        if amount <= 0:
            break
        if isinstance(hop, V3Hop):
            crossed += hop.ticks_crossed(amount)
        amount = hop(amount)
    return crossed


def reprice(batch: Batch, paths: Paths, path_ids: np.ndarray, keys: np.ndarray, x_float: np.ndarray,
            gas: GasModel, wei_per_raw: np.ndarray, start_slots: np.ndarray, engine=None) -> list[dict]:
    """Trades re-priced with exact V2 / V3 math at each point's exact state; every amount a Python int.

    `wei_per_raw` (blocks × start slots): the value of one raw unit of each start token in wei.
    The exact V2 reserves of every hop of every trade are gathered in one vectorized lookup; the V2-only cycles'
    searches run as one batch on `engine` ((backend, "device" | "python") for gpubt.strategies.exact_engine; None:
    the oracle); V3 hops rebuild an exact V3Pool from the point's exact state (see the module docstring).
    """
    if len(path_ids) == 0:
        return []
    hop_pools = paths.pools[path_ids]                                      # (S, H), −1 padded
    hop_keys = np.broadcast_to(keys[:, None], hop_pools.shape)
    valid = hop_pools >= 0
    if len(path_ids) <= 16:  # the ordered pass prices a few at a point: scalar lookups beat log_index's set-up
        log_idx = np.asarray([batch.log_entry(p, k) for p, k in zip(hop_pools[valid].tolist(),
                                                                     hop_keys[valid].tolist())], np.int64)
    else:
        log_idx = batch.log_index(hop_pools[valid], hop_keys[valid]).ravel()
    r0_flat, r1_flat = batch.exact_reserves(hop_pools[valid], hop_keys[valid], log_idx)
    offsets = np.concatenate(([0], np.cumsum(valid.sum(axis=1))))
    reserves = []  # per trade: (reserves_in, reserves_out, each hop's state for `detail`)
    for t, path in enumerate(path_ids.tolist()):
        hops = int(paths.hops[path])
        zfo = paths.zero_for_one[path, :hops].tolist()
        r0, r1 = r0_flat[offsets[t]:offsets[t + 1]], r1_flat[offsets[t]:offsets[t + 1]]
        reserves.append(([a if z else b for a, b, z in zip(r0, r1, zfo)],
                         [b if z else a for a, b, z in zip(r0, r1, zfo)],
                         [[str(a), str(b)] for a, b in zip(r0, r1)]))  # `detail`: each hop's state it was priced on
    v2_only = [t for t, path in enumerate(path_ids.tolist()) if not paths.is_v3[path].any()]
    backend, name = engine if engine is not None else (None, "python")
    searched = dict(zip(v2_only, exact_engine.v2_optimal_inputs(
        backend, x_float[v2_only], [reserves[t][0] for t in v2_only], [reserves[t][1] for t in v2_only],
        [paths.fee_ppm[path_ids[t], :paths.hops[path_ids[t]]].tolist() for t in v2_only], name)))
    v3_cache: dict = {}
    trades = []
    for t, (path, key) in enumerate(zip(path_ids.tolist(), keys.tolist())):
        hops = int(paths.hops[path])
        pools = paths.pools[path, :hops].tolist()
        zfo = paths.zero_for_one[path, :hops].tolist()
        fees = paths.fee_ppm[path, :hops].tolist()
        reserves_in, reserves_out, states = reserves[t]
        if t not in searched:
            hop_fns = []
            for h, pool in enumerate(pools):
                if paths.is_v3[path, h]:
                    sqrt_price, liquidity, tick, table = batch.exact_v3_at(int(log_idx[offsets[t] + h]), pool, key)
                    states[h] = {"sqrt_price_x96": str(sqrt_price), "liquidity": str(liquidity), "tick": tick}
                    quote = v3_quote_pool(fees[h], int(paths.pool_tick_spacing[pool]), sqrt_price, liquidity, tick,
                                          table, v3_cache)
                    hop_fns.append(v3_hop(quote, zfo[h]))
                else:
                    hop_fns.append(v2_hop(reserves_in[h], reserves_out[h], fees[h]))
            amount_in, gross_raw = refine_mixed_input(float(x_float[t]), hop_fns)
        else:
            hop_fns = ()
            amount_in, gross_raw = searched[t][:2]
        block = (key + 1) >> KEY_TX_BITS
        start_token = int(paths.start_token[path])
        if start_token == WETH:
            gross_wei = gross_raw
        else:  # priced at the block's reference rate: exact in the start token, not in ETH
            gross_wei = round(gross_raw * float(wei_per_raw[block, start_slots[path]]))
        n_v3 = int(paths.is_v3[path, :hops].sum())
        ticks = _ticks_crossed(hop_fns, amount_in) if n_v3 else 0
        trades.append(trade_row("arbitrage", batch, block, int(key - (block << KEY_TX_BITS)), int(path), start_token,
                                pools, zfo, amount_in, amount_in + gross_raw, gross_raw, gross_wei,
                                int(gas.units(hops, n_v3, ticks)), gas.priority_fee_wei,
                                DETAIL_JSON({"states": states})))
    return trades
