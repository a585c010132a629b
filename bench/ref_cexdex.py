"""NumPy reference and gather-only roofline of the cexdex screening kernel (kernels/cexdex.py), for
bench/strategy_kernels.py.

The reference covers every (pool, point) item: V2 pools in closed form, V3 pools by the same exact range walk to the
known target sqrt price, vectorized as a masked loop over tick crossings (at most max_steps + 1 steps, over the
items still walking). `find_state` and the next-initialized-tick lookup are one np.searchsorted each on a combined
(segment, key) order.
"""
from __future__ import annotations

import numpy as np

from common import (  # bench/common.py
    MAX_SQRT_PRICE, MIN_SQRT_PRICE, numba_lookups, segment_search_right, subset_args)

COVERS = "all items: V2 closed form, V3 tick walks"

_OUTS = ("out_zero_for_one", "out_amount_in", "out_amount_out", "out_crossed", "out_gross_usd", "out_net_wei")


def covered(names, args) -> np.ndarray:
    """Every item: the reference handles V2 and V3 pools alike."""
    a = dict(zip(names, args))
    return np.arange(len(a["pair_pool"]), dtype=np.int64)


def subset(names, args, items) -> tuple:
    """The kernel's arguments restricted to `items`: pair_* arrays sliced, tables and scalars shared, out_* fresh."""
    return subset_args(names, args, items, {n for n in names if n.startswith("pair_")})


def _v3_walk(zero_for_one, gamma, s, L, pos, lo, hi, target, tick_sqrt_price, tick_liquidity_net, max_steps):
    """Exact-input swap of each item to its target sqrt price (all in one direction), range by range across
    initialized ticks: (amount in incl. fee, amount out, ticks crossed). A masked step loop over the items still
    walking; an item leaves at its target, at the price range's end, or after max_steps crossings."""
    m = len(s)
    net_res = np.zeros(m)
    out_res = np.zeros(m)
    crossed_res = np.zeros(m, np.int64)
    idx = np.arange(m)
    net_in = np.zeros(m)
    out = np.zeros(m)
    last = max(len(tick_sqrt_price) - 1, 0)
    tsp = tick_sqrt_price if len(tick_sqrt_price) else np.zeros(1)
    tln = tick_liquidity_net if len(tick_liquidity_net) else np.zeros(1)
    for crossed in range(max(max_steps, 0) + 1):  # the kernel returns at crossed >= max_steps at the latest
        if not len(idx):
            break
        safe = np.clip(pos, 0, last)  # gathers at out-of-segment positions are masked off below
        if zero_for_one:
            inside = pos >= lo
            s_next = np.where(inside, tsp[safe], MIN_SQRT_PRICE)
            stop = np.where(target > s_next, target, s_next)
            move = (L > 0.0) & (stop < s)
            net_in = np.where(move, net_in + L * (s - stop) / (s * stop), net_in)
            out = np.where(move, out + L * (s - stop), out)
            s = np.where(stop < s, stop, s)  # min(s, stop)
            reached = target >= s_next
        else:
            inside = pos < hi
            s_next = np.where(inside, tsp[safe], MAX_SQRT_PRICE)
            stop = np.where(target < s_next, target, s_next)
            move = (L > 0.0) & (stop > s)
            net_in = np.where(move, net_in + L * (stop - s), net_in)
            out = np.where(move, out + L * (stop - s) / (s * stop), out)
            s = np.where(stop > s, stop, s)  # max(s, stop)
            reached = target <= s_next
        done = reached | ~inside | (crossed >= max_steps)
        if done.any():
            d = idx[done]
            net_res[d] = net_in[done]
            out_res[d] = out[done]
            crossed_res[d] = crossed
            keep_walking = ~done
            idx, s, L, pos, lo, hi, target, net_in, out, safe = (
                v[keep_walking] for v in (idx, s, L, pos, lo, hi, target, net_in, out, safe))
        if zero_for_one:
            L = L - tln[safe]
            pos = pos - 1
        else:
            L = L + tln[safe]
            pos = pos + 1
        L = np.where(L < 0.0, 0.0, L)  # float residue of an exactly-zero liquidity
    return net_res / gamma, out_res, crossed_res


def numpy_reference(names, args) -> dict:
    """The kernel's outputs for every item of `args`, vectorized (see the module docstring)."""
    a = dict(zip(names, args))
    pool = a["pair_pool"].astype(np.int64)
    b = a["pair_block"].astype(np.int64)
    n = len(pool)
    zfo_o = np.zeros(n, np.bool_)
    x_o = np.zeros(n)
    out_o = np.zeros(n)
    crossed_o = np.zeros(n, np.int64)
    gross_o = np.zeros(n)
    net_o = np.full(n, -np.inf)
    result = dict(zip(_OUTS, (zfo_o, x_o, out_o, crossed_o, gross_o, net_o)))
    if not n:
        return result
    log_offsets = a["log_offsets"]
    keep = a["keep"]
    with np.errstate(all="ignore"):  # NaN / inf / sqrt(<0) take the kernel's paths through the comparisons
        j = segment_search_right(a["log_key"], log_offsets, pool, a["pair_key"]) - 1
        t0 = a["pool_token0"][pool]
        t1 = a["pool_token1"][pool]
        scale = a["token_scale"]
        price0 = a["ref_usd"][b, t0] / scale[t0]
        price1 = a["ref_usd"][b, t1] / scale[t1]
        # state found (j in the pool's range) and a reference for both tokens (NaN fails the comparisons)
        ok = (j >= log_offsets[pool]) & (price0 > 0.0) & (price1 > 0.0)
        is_v3 = a["pool_is_v3"][pool]
        gamma = a["pool_gamma"][pool]
        q01 = keep * price1 / price0
        q10 = keep * price0 / price1
        zfo = np.zeros(n, np.bool_)
        x = np.zeros(n)
        out = np.zeros(n)
        crossed = np.zeros(n, np.int64)

        # V2: closed form, token0 in first, token1 in only when selling token0 gives no positive input
        v2 = np.flatnonzero(ok & ~is_v3)
        jj = j[v2]
        r0 = a["log_reserve0"][jj]
        r1 = a["log_reserve1"][jj]
        g = gamma[v2]
        qa = q01[v2]
        qb = q10[v2]
        x01 = np.where(g * r1 * qa <= r0, 0.0, (np.sqrt(g * qa * r0) * np.sqrt(r1) - r0) / g)
        x10 = np.where(g * r0 * qb <= r1, 0.0, (np.sqrt(g * qb * r1) * np.sqrt(r0) - r1) / g)
        first = x01 > 0.0
        xv = np.where(first, x01, np.where(x10 > 0.0, x10, 0.0))
        r_in = np.where(first, r0, r1)
        r_out = np.where(first, r1, r0)
        xg = xv * g
        zfo[v2] = first
        x[v2] = xv
        out[v2] = np.where(xv > 0.0, xg * r_out / (r_in + xg), 0.0)

        # V3: the side of the band the pool's price is on gives the direction and the target sqrt price
        v3 = np.flatnonzero(ok & is_v3)
        jj = j[v3]
        s = a["log_sqrt_price"][jj]
        L = a["log_liquidity"][jj]
        g = gamma[v3]
        qa = q01[v3]
        qb = q10[v3]
        live = ~((s <= 0.0) | (L <= 0.0))
        down = live & (g * s * s * qa > 1.0)
        up = live & ~down & (g * qb > s * s)
        version = a["log_tick_version"][jj].astype(np.int64)
        tick_offsets = a["tick_offsets"]
        for side, sel in ((True, down), (False, up)):
            k = np.flatnonzero(sel)
            if not len(k):
                continue
            v = version[k]
            lo = tick_offsets[v].astype(np.int64)
            hi = tick_offsets[v + 1].astype(np.int64)
            # next initialized tick: the last with index <= tick when selling token0, else the first above
            pos = segment_search_right(a["tick_index"], tick_offsets, v, a["log_tick"][jj[k]])
            if side:
                pos = pos - 1
                target = 1.0 / np.sqrt(g[k] * qa[k])
            else:
                target = np.sqrt(g[k] * qb[k])
            xs, outs, cs = _v3_walk(side, g[k], s[k], L[k], pos, lo, hi, target, a["tick_sqrt_price"],
                                    a["tick_liquidity_net"], int(a["max_steps"]))
            items = v3[k]
            zfo[items] = side
            x[items] = xs
            out[items] = outs
            crossed[items] = cs

        # markout and gas of the items with a trade
        t = np.flatnonzero(ok & (x > 0.0))
        tz = zfo[t]
        tin = np.where(tz, t0[t], t1[t])
        tout = np.where(tz, t1[t], t0[t])
        bt = b[t]
        mark_in = a["mark_usd"][bt, tin] / scale[tin]
        mark_out = a["mark_usd"][bt, tout] / scale[tout]
        gas = np.where(is_v3[t], a["gas_v3"] + a["gas_per_tick"] * crossed[t], a["gas_v2"])
        gross = out[t] * mark_out * keep - x[t] * mark_in - a["bridge_cost_usd"]
        zfo_o[t] = tz
        x_o[t] = x[t]
        out_o[t] = out[t]
        crossed_o[t] = crossed[t]
        gross_o[t] = gross
        net_o[t] = gross * a["wei_per_usd"][bt] - gas * a["gas_price_wei"][bt]
    return result


def assert_agrees(ref: dict, outs: dict) -> None:
    """Raise AssertionError where the reference and the kernel's outputs differ beyond float rounding."""
    # same branch decisions on the same float64 operations (no fastmath in the kernel): exact equality
    np.testing.assert_array_equal(ref["out_zero_for_one"], outs["out_zero_for_one"], err_msg="out_zero_for_one")
    np.testing.assert_array_equal(ref["out_crossed"], outs["out_crossed"], err_msg="out_crossed")
    # amounts: same formulas in the same order, so equal in practice; 1e-12 leaves room for a reassociated sum
    for name in ("out_amount_in", "out_amount_out"):
        np.testing.assert_allclose(ref[name], outs[name], rtol=1e-12, atol=0.0, err_msg=name)
    # USD / wei: differences of products of the amounts, rounding can cancel: 1e-9 relative, 1e-9 USD / 1 wei floor
    np.testing.assert_allclose(ref["out_gross_usd"], outs["out_gross_usd"], rtol=1e-9, atol=1e-9,
                               err_msg="out_gross_usd")
    np.testing.assert_allclose(ref["out_net_wei"], outs["out_net_wei"], rtol=1e-9, atol=1.0, err_msg="out_net_wei")


_GATHER = None


def _gather_kernel():
    """The roofline kernel, compiled at first use."""
    import numba
    from numba import prange

    find_state, v3_next_tick_position = numba_lookups()

    @numba.njit(parallel=True, fastmath=False, error_model="numpy")
    def gather(pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_offsets,
               log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
               tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, ref_usd, mark_usd, token_scale,
               wei_per_usd, gas_price_wei, out_zero_for_one, out_amount_in, out_amount_out, out_crossed,
               out_gross_usd, out_net_wei):
        for i in prange(pair_pool.shape[0]):
            pool = pair_pool[i]
            b = pair_block[i]
            key = pair_key[i]
            j = find_state(log_offsets, log_key, pool, key)  # the real kernel's first gather
            if j < 0:
                out_zero_for_one[i] = False
                out_crossed[i] = -1
                continue
            t0 = pool_token0[pool]
            t1 = pool_token1[pool]
            prices = ref_usd[b, t0] + ref_usd[b, t1] + mark_usd[b, t0] + mark_usd[b, t1] + token_scale[t0] \
                + token_scale[t1]
            v3 = pool_is_v3[pool]
            a_in = pool_gamma[pool]
            a_out = 0.0
            pos = j
            if v3:
                # the state entry and the first initialized tick the walk reads (its position by binary search)
                a_in += log_sqrt_price[j]
                a_out += log_liquidity[j]
                tick = log_tick[j]
                v = log_tick_version[j]
                tlo = tick_offsets[v]
                thi = tick_offsets[v + 1]
                pos = v3_next_tick_position(tick, False, tick_index, tlo, thi)  # the first tick above
                if tlo < thi:
                    k = min(max(pos, tlo), thi - 1)
                    a_out += tick_sqrt_price[k] + tick_liquidity_net[k]
            else:
                a_in += log_reserve0[j]
                a_out += log_reserve1[j]
            out_zero_for_one[i] = v3
            out_amount_in[i] = a_in
            out_amount_out[i] = a_out
            out_crossed[i] = pos
            out_gross_usd[i] = prices
            out_net_wei[i] = wei_per_usd[b] + gas_price_wei[b]

    return gather


def gather_only(names, args) -> None:
    """Read what the kernel reads per item (state by binary search, pool / price tables, the first tick of a V3
    walk) and write sums of it to the out_* arrays: no AMM math. The memory roofline."""
    global _GATHER
    if _GATHER is None:
        _GATHER = _gather_kernel()
    a = dict(zip(names, args))
    _GATHER(*(a[k] for k in (
        "pair_pool", "pair_key", "pair_block", "pool_token0", "pool_token1", "pool_gamma", "pool_is_v3",
        "log_offsets", "log_key", "log_reserve0", "log_reserve1", "log_sqrt_price", "log_liquidity", "log_tick",
        "log_tick_version", "tick_offsets", "tick_index", "tick_sqrt_price", "tick_liquidity_net", "ref_usd",
        "mark_usd", "token_scale", "wei_per_usd", "gas_price_wei", *_OUTS)))
