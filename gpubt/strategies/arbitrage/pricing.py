"""Arbitrage's exact side: pick non-conflicting candidates per evaluation point, re-price them exactly.

V2-only cycles: exact V2 math and the proven level search of gpubt.exact.v2.optimal_input_search, run for all the
cycles of a call at once by the exact engine (gpubt.strategies.exact_engine: kernels/exact_search.py, or the oracle).
Cycles with a V3 hop: each hop at the point's exact state (V3: sqrt price, liquidity, tick and initialized-tick
table from the batch's versioned log); the integer input is the float optimum moved to the start of its rounding
plateau (gpubt.exact.hops.refine_mixed_input), run for all the cycles of a call at once by the exact engine too
(kernels/exact_search.py mixed_input, or the oracle). The profit reported is exact to the wei for the input chosen;
that input is a best effort (see refine_mixed_input), not a proven maximum as the V2 search's is.
"""
from __future__ import annotations

import numpy as np

from gpubt.strategies import exact_engine
from gpubt.exact.gas import GasModel
from gpubt.kernels.compile import cached_njit
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.batch import WETH, Batch
from gpubt.strategies.arbitrage.paths import Paths
from gpubt.strategies.base import DETAIL_JSON, trade_row


def select(pair_key: np.ndarray, pair_path: np.ndarray, net_wei: np.ndarray, paths: Paths) -> np.ndarray:
    """Indices of the candidates a searcher sends: at each point, best first, skipping paths that share a pool
    with one already chosen at that point (taking one changes the others' reserves)."""
    order = np.lexsort((-np.asarray(net_wei), pair_key))
    return _greedy(order, np.asarray(pair_key), np.asarray(pair_path), paths.pools, paths.hops,
                   np.zeros(len(paths.pool_is_v3) + 1, np.int64))


@cached_njit
def _greedy(order, pair_key, pair_path, path_pools, hops, stamp):
    """`select`'s walk in `order` (the ordered pass calls it at ~10^4 points a partition: in Python ~20 µs a
    point). `stamp[pool]` is the number of the point that used the pool (points numbered from 1)."""
    chosen = np.empty(len(order), np.int64)
    n = 0
    point = 0
    for j in range(len(order)):
        i = order[j]
        if j == 0 or pair_key[i] != pair_key[order[j - 1]]:
            point += 1
        path = pair_path[i]
        free = True
        for h in range(hops[path]):
            if stamp[path_pools[path, h]] == point:
                free = False
                break
        if free:
            for h in range(hops[path]):
                stamp[path_pools[path, h]] = point
            chosen[n] = i
            n += 1
    return chosen[:n]


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
    mixed = [t for t in range(len(path_ids)) if t not in searched]
    specs = []   # per mixed cycle, its hops for the engine: ("v2", in, out, fee) or ("v3", state..., table)
    for t in mixed:
        path, key = int(path_ids[t]), int(keys[t])
        hops = int(paths.hops[path])
        reserves_in, reserves_out, states = reserves[t]
        spec = []
        for h in range(hops):
            pool, fee, zfo = int(paths.pools[path, h]), int(paths.fee_ppm[path, h]), bool(paths.zero_for_one[path, h])
            if paths.is_v3[path, h]:
                sqrt_price, liquidity, tick, table = batch.exact_v3_at(int(log_idx[offsets[t] + h]), pool, key)
                states[h] = {"sqrt_price_x96": str(sqrt_price), "liquidity": str(liquidity), "tick": tick}
                spec.append(("v3", sqrt_price, liquidity, tick, int(paths.pool_tick_spacing[pool]), fee, zfo, table))
            else:
                spec.append(("v2", reserves_in[h], reserves_out[h], fee))
        specs.append(spec)
    refined = dict(zip(mixed, exact_engine.mixed_inputs(backend, x_float[mixed], specs, name)))
    trades = []
    for t, (path, key) in enumerate(zip(path_ids.tolist(), keys.tolist())):
        hops = int(paths.hops[path])
        pools = paths.pools[path, :hops].tolist()
        zfo = paths.zero_for_one[path, :hops].tolist()
        states = reserves[t][2]
        amount_in, gross_raw, ticks = refined[t] if t in refined else (*searched[t][:2], 0)
        block = (key + 1) >> KEY_TX_BITS
        start_token = int(paths.start_token[path])
        if start_token == WETH:
            gross_wei = gross_raw
        else:  # priced at the block's reference rate: exact in the start token, not in ETH
            gross_wei = round(gross_raw * float(wei_per_raw[block, start_slots[path]]))
        n_v3 = int(paths.is_v3[path, :hops].sum())
        trades.append(trade_row("arbitrage", batch, block, int(key - (block << KEY_TX_BITS)), int(path), start_token,
                                pools, zfo, amount_in, amount_in + gross_raw, gross_raw, gross_wei,
                                int(gas.units(hops, n_v3, ticks)), gas.priority_fee_wei,
                                DETAIL_JSON({"states": states})))
    return trades
