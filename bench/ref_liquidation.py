"""NumPy reference and gather-only roofline of the liquidation screening kernel (kernels/liquidation.py).

Covers every (position, block) pair: the health / repay / seized terms are elementwise; the routes of the
liquidatable pairs are one flat batch of (pair, route) rows, their hops are evaluated hop by hop (V2 closed form,
V3 as a fixed-count masked tick walk of at most max_steps + 1 steps, compacted to the still-walking rows), and the
best route is a segmented first-argmax, the kernel's strict `net > best` scan.
"""
from __future__ import annotations

import numpy as np

from common import MAX_SQRT_PRICE, MIN_SQRT_PRICE, numba_lookups, subset_args  # bench/common.py
from common import segment_search_right as _search_right

COVERS = "every pair: V2 and V3 routes (tick walk)"

# kernels/cycles.py constant, restated (the reference imports nothing from kernels/; amm_v3's: bench/common.py)
KEY_TX_BITS = 20

# np.exp differs from libm's exp (the kernel's math.exp) by 1 ulp on a few % of arguments; a check may swap in
# an exp that calls math.exp to compare bit for bit
_exp = np.exp
_gather_kernel = None  # the gather-only numba kernel, compiled at the first gather_only call
PER_ITEM = ("pair_position", "pair_block")


def _v3_out(zfo: bool, amount, gamma, s, liq, pos, lo, hi, max_steps, tick_sqrt_price, tick_liquidity_net):
    """kernels/amm_v3.v3_swap_exact_in for a batch of one direction: (amount out, status == V3_OK); the amount is
    0 where the status is not (the route then has none). Same branch order and operation order as the kernel."""
    m = amount.shape[0]
    res = np.zeros(m)
    early = (amount <= 0.0) | (s <= 0.0)  # the kernel returns (0, ..., V3_OK) before walking
    ok = early.copy()
    idx = np.flatnonzero(~early)
    remaining = amount[idx] * gamma[idx]
    s, liq, pos, lo, hi = s[idx], liq[idx], pos[idx], lo[idx], hi[idx]
    out = np.zeros(idx.shape[0])
    # every step ends the walk or crosses a tick, and the step after max_steps crossings ends it: max_steps + 1
    # steps finish every walk (NaN amounts included: they cross until the range's end or max_steps)
    for crossed in range(max_steps + 1):  # every row still walking has crossed one tick per round
        if idx.shape[0] == 0:
            break
        tsp = tick_sqrt_price.take(pos, mode="clip")
        if zfo:
            s_next = np.where(pos >= lo, tsp, MIN_SQRT_PRICE)
            need = liq * (s - s_next) / (s * s_next)
        else:
            s_next = np.where(pos < hi, tsp, MAX_SQRT_PRICE)
            need = liq * (s_next - s)
        fin = remaining < need  # the swap ends inside this range
        f = np.flatnonzero(fin)
        if f.shape[0]:
            r, lf, sf = remaining[f], liq[f], s[f]
            if zfo:
                res[idx[f]] = out[f] + lf * r * sf * sf / (lf + r * sf)
            else:
                res[idx[f]] = out[f] + r / (sf * (sf + r / lf))
            ok[idx[f]] = True
        remaining = remaining - need
        if zfo:
            out = out + liq * (s - s_next)
            limit = pos < lo
        else:
            out = out + liq * (s_next - s) / (s * s_next)
            limit = pos >= hi
        s = s_next
        stop = fin | limit | (crossed >= max_steps)  # V3_LIMIT / V3_MAX_STEPS leave ok False
        tln = tick_liquidity_net.take(pos, mode="clip")
        if zfo:
            liq = liq - tln
            pos = pos - 1
        else:
            liq = liq + tln
            pos = pos + 1
        liq = np.where(liq < 0.0, 0.0, liq)
        spent = ~stop & (remaining <= 0.0)
        e = np.flatnonzero(spent)
        if e.shape[0]:
            res[idx[e]] = out[e]
            ok[idx[e]] = True
        keep = np.flatnonzero(~(stop | spent))
        if keep.shape[0] < idx.shape[0]:
            idx, remaining, out = idx[keep], remaining[keep], out[keep]
            s, liq, pos, lo, hi = s[keep], liq[keep], pos[keep], lo[keep], hi[keep]
    return res, ok  # a row still walking here cannot exist (see the loop's count); it would be left not ok


def _routes_out(a: dict, route: np.ndarray, amount: np.ndarray, point_key: np.ndarray) -> np.ndarray:
    """kernels/liquidation.route_amount_out per (route, amount, key) row: output raw, −1.0 for no route."""
    pools = a["route_pools"]
    amount = amount.copy()
    failed = np.zeros(route.shape[0], bool)
    alive = np.ones(route.shape[0], bool)  # not failed and not past the route's last hop (pool −1 breaks)
    for h in range(pools.shape[1]):
        pool = pools[route, h].astype(np.int64)
        alive &= pool >= 0
        rows = np.flatnonzero(alive)
        if rows.shape[0] == 0:
            break
        pl = pool[rows]
        start = a["log_offsets"][pl]
        k = _search_right(a["log_key"], a["log_offsets"], pl, point_key[rows]) - 1
        found = k >= start  # find_state's −1: the pool has no state yet
        failed[rows[~found]] = True
        rows, k = rows[found], k[found]
        r = route[rows]
        zfo = a["route_zero_for_one"][r, h]
        gamma = a["route_gamma"][r, h]
        v3 = a["route_is_v3"][r, h]
        x = amount[rows]
        new = np.empty(rows.shape[0])
        bad = np.zeros(rows.shape[0], bool)
        w = np.flatnonzero(~v3)
        if w.shape[0]:
            kw, zw = k[w], zfo[w]
            r0, r1 = a["log_reserve0"][kw], a["log_reserve1"][kw]
            xin = x[w] * gamma[w]
            new[w] = xin * np.where(zw, r1, r0) / (np.where(zw, r0, r1) + xin)
        w = np.flatnonzero(v3)
        if w.shape[0]:
            kw = k[w]
            s, liq = a["log_sqrt_price"][kw], a["log_liquidity"][kw]
            dead = (liq <= 0.0) | (s <= 0.0)  # no liquidity or no price: no route (NaN goes on, as in the kernel)
            new[w] = 0.0
            bad[w] = dead
            live = w[~dead]
            kl = k[live]
            v = a["log_tick_version"][kl].astype(np.int64)
            lo = a["tick_offsets"][v]  # v = −1 wraps to the table's end, as the kernel's index does
            hi = a["tick_offsets"][v + 1]
            first = _search_right(a["tick_index"], a["tick_offsets"], v, a["log_tick"][kl])
            zl = zfo[live]
            for direction in (True, False):
                d = np.flatnonzero(zl == direction)
                if d.shape[0] == 0:
                    continue
                dl = live[d]
                pos0 = first[d] - 1 if direction else first[d]
                new[dl], ok = _v3_out(direction, x[dl], gamma[dl], a["log_sqrt_price"][kl[d]],
                                      a["log_liquidity"][kl[d]], pos0, lo[d], hi[d], int(a["max_steps"]),
                                      a["tick_sqrt_price"], a["tick_liquidity_net"])
                bad[dl] = ~ok
        amount[rows] = new
        failed[rows[bad]] = True
        alive &= ~failed
    return np.where(failed, -1.0, amount)


def covered(names, args) -> np.ndarray:
    """Every item: nothing in the kernel's per-pair work lacks a vectorized form."""
    a = dict(zip(names, args))
    return np.arange(a["pair_position"].shape[0], dtype=np.int64)


def subset(names, args, items) -> tuple:
    """The kernel's arguments restricted to `items`: pair arrays sliced, tables and scalars shared, outputs fresh
    zeros."""
    return subset_args(names, args, items, PER_ITEM)


def numpy_reference(names, args) -> dict:
    """liquidation_pairs over every item, vectorized: {out name: values}."""
    a = dict(zip(names, args))
    p = a["pair_position"].astype(np.int64)
    b = a["pair_block"].astype(np.int64)
    n = p.shape[0]
    res = {"out_health": np.full(n, np.inf), "out_repay_raw": np.zeros(n), "out_seized_raw": np.zeros(n),
           "out_route": np.full(n, -1, np.int64), "out_amount_out": np.zeros(n), "out_net_wei": np.full(n, -np.inf)}
    with np.errstate(all="ignore"):  # the kernel's float edge cases (inf, NaN, 0/0) are masked, as it tests them
        ref = a["pos_ref_offset"][p]
        ct = a["pos_collateral_token"][p]
        dt = a["pos_debt_token"][p]
        price_c = a["price_usd"][b, ct] / a["token_scale"][ct]
        price_d = a["price_usd"][b, dt] / a["token_scale"][dt]
        # not open yet, or no oracle price (NaN): health +inf; so is a debt worth <= 0 (liquidation_terms)
        debt = a["pos_debt_raw"][p] * _exp(a["pos_log_growth"][p] * (b - ref))
        debt_usd = debt * price_d
        ok = (b >= ref) & (price_c > 0.0) & (price_d > 0.0) & ~(debt_usd <= 0.0)
        coll = a["pos_collateral_raw"][p]
        bonus1 = 1.0 + a["pos_bonus"][p]
        health = coll * price_c * a["pos_threshold"][p] / debt_usd
        repay = a["pos_close_factor"][p] * debt
        seized = repay * price_d / price_c * bonus1
        capped = seized > coll  # not enough collateral for the close factor: seize it all
        repay = np.where(capped, coll * price_c / (price_d * bonus1), repay)
        seized = np.where(capped, coll, seized)
        res["out_health"] = np.where(ok, health, np.inf)
        liq = np.flatnonzero(ok & ~(health >= 1.0) & ~(seized <= 0.0))  # NaN health goes on, as in the kernel
        if liq.shape[0] == 0:
            return res
        repay, seized = repay[liq], seized[liq]
        res["out_repay_raw"][liq] = repay
        res["out_seized_raw"][liq] = seized
        pl, bl = p[liq], b[liq]

        # (pair, route) rows, pair-major and routes ascending: the kernel's scan order
        r0 = a["pos_route_offsets"][pl]
        cnt = a["pos_route_offsets"][pl + 1] - r0
        has = cnt > 0
        liq, repay, seized, pl, bl, r0, cnt = liq[has], repay[has], seized[has], pl[has], bl[has], r0[has], cnt[has]
        if liq.shape[0] == 0:
            return res
        starts = np.zeros(cnt.shape[0], np.int64)
        np.cumsum(cnt[:-1], out=starts[1:])
        row_pair = np.repeat(np.arange(cnt.shape[0]), cnt)
        route = np.arange(row_pair.shape[0], dtype=np.int64) - starts[row_pair] + r0[row_pair]
        point_key = (bl << KEY_TX_BITS) - 1  # top of block b
        out = _routes_out(a, route, seized[row_pair], point_key[row_pair])

        value_wei = (price_d[liq] * a["wei_per_usd"][bl])[row_pair]
        owed = (repay * (1.0 + a["flash_fee"]))[row_pair]
        net = (out - owed) * value_wei - a["route_gas_units"][route] * a["gas_price_wei"][bl][row_pair]
        # `if out < 0: continue`, then `net > best` from −inf: NaN and −inf never win, the first maximum does
        score = np.where(~(out < 0.0) & (net > -np.inf), net, -np.inf)
        best = np.maximum.reduceat(score, starts)
        is_best = (score == best[row_pair]) & (best[row_pair] > -np.inf)
        first = np.minimum.reduceat(np.where(is_best, np.arange(score.shape[0]), score.shape[0]), starts)
        won = first < score.shape[0]
        w, rows = liq[won], first[won]
        res["out_route"][w] = route[rows]
        res["out_amount_out"][w] = out[rows]
        res["out_net_wei"][w] = net[rows]
    return res


def assert_agrees(ref: dict, outs: dict) -> None:
    """The reference agrees with the kernel's outputs (see the tolerances' comments)."""
    # health = collateral·P·LT / (debt·exp(g·Δb)·P): a few roundings, ~1e-15 relative
    np.testing.assert_allclose(ref["out_health"], outs["out_health"], rtol=1e-12, atol=0,
                               err_msg="liquidation: out_health")
    # The route can differ only through the 1-ulp exp difference (np.exp vs libm's exp in the kernel): a pair
    # whose health is within 1e-12 of 1 may be liquidatable on one side only, and two routes whose nets tie (to
    # out_net_wei's tolerance) may swap; any other difference (or more than one such pair per 10,000) fails.
    differ = ref["out_route"] != outs["out_route"]
    both = differ & (ref["out_route"] >= 0) & (outs["out_route"] >= 0)
    at_one = differ & ~both & (np.abs(outs["out_health"] - 1.0) <= 1e-12)
    tie = both & np.isclose(ref["out_net_wei"], outs["out_net_wei"], rtol=1e-8, atol=0)
    unexplained = int(np.count_nonzero(differ & ~at_one & ~tie))
    assert unexplained == 0, f"liquidation: {unexplained} items chose other routes (not a health-1 or tie flip)"
    flips = int(np.count_nonzero(differ))
    assert flips <= len(differ) // 10_000, f"liquidation: {flips} of {len(differ)} items flipped routes"
    same = ~differ
    # repay / seized: products and quotients of the same inputs (and one exp), ~1e-15 relative
    for name in ("out_repay_raw", "out_seized_raw"):
        np.testing.assert_allclose(ref[name][same | tie], outs[name][same | tie], rtol=1e-12, atol=0,
                                   err_msg=f"liquidation: {name}")
    # route output: two hops, a V3 crossing step cancels up to ~4.3 digits of a ~1e-15 input difference: 1e-10
    np.testing.assert_allclose(ref["out_amount_out"][same], outs["out_amount_out"][same], rtol=1e-10, atol=0,
                               err_msg="liquidation: out_amount_out")
    # net = (out − repay·(1+fee))·value − gas cancels out against repay (the bonus is a few %): 1e-8 relative
    np.testing.assert_allclose(ref["out_net_wei"][same], outs["out_net_wei"][same], rtol=1e-8, atol=0,
                               err_msg="liquidation: out_net_wei")


def _gather_source():
    """The gather-only kernel (numba, parallel): reads per pair what liquidation_pair reads, does no AMM math."""
    import numba

    find_state, v3_next_tick_position = numba_lookups()

    @numba.njit(parallel=True, cache=False)
    def gather(pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw, pos_debt_raw,
               pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor, pos_route_offsets,
               route_pools, route_zero_for_one, route_gamma, route_is_v3, route_gas_units, log_offsets, log_key,
               log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
               tick_index, tick_sqrt_price, tick_liquidity_net, price_usd, token_scale, wei_per_usd, gas_price_wei,
               flash_fee, out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out, out_net_wei):
        for i in numba.prange(pair_position.shape[0]):
            p = pair_position[i]
            b = pair_block[i]
            ct = pos_collateral_token[p]
            dt = pos_debt_token[p]
            out_route[i] = -1
            out_amount_out[i] = 0.0
            out_net_wei[i] = 0.0
            if b < pos_ref_offset[p]:
                out_health[i] = 0.0
                continue
            price_c = price_usd[b, ct] / token_scale[ct]
            price_d = price_usd[b, dt] / token_scale[dt]
            # the kernel's health test with exp(x) taken as 1 + x (no transcendental; x = interest over < 1k blocks
            # is tiny), so the same pairs go on to read their routes
            debt = pos_debt_raw[p] * (1.0 + pos_log_growth[p] * (b - pos_ref_offset[p]))
            lhs = pos_collateral_raw[p] * price_c * pos_threshold[p]
            rhs = debt * price_d
            out_health[i] = lhs - rhs
            out_repay_raw[i] = pos_close_factor[p] * debt
            out_seized_raw[i] = pos_bonus[p] + flash_fee
            if not (lhs < rhs):
                continue
            point_key = (np.int64(b) << 20) - 1
            acc = price_d * wei_per_usd[b] + gas_price_wei[b]
            last = -1
            for r in range(pos_route_offsets[p], pos_route_offsets[p + 1]):
                acc += route_gas_units[r]
                for h in range(route_pools.shape[1]):
                    pool = route_pools[r, h]
                    if pool < 0:
                        break
                    k = find_state(log_offsets, log_key, pool, point_key)  # how the kernel addresses the state log
                    if k < 0:
                        break
                    acc += route_gamma[r, h] + route_zero_for_one[r, h]
                    if route_is_v3[r, h]:
                        v = log_tick_version[k]
                        tick = log_tick[k]
                        c = tick_offsets[v + 1]
                        # the walk's first tick entry (the first above the tick)
                        a = v3_next_tick_position(tick, False, tick_index, tick_offsets[v], c)
                        acc += log_sqrt_price[k] + log_liquidity[k]
                        if a < c:
                            acc += tick_sqrt_price[a] + tick_liquidity_net[a]
                    else:
                        acc += log_reserve0[k] + log_reserve1[k]
                last = r
            out_route[i] = last
            out_amount_out[i] = acc
            out_net_wei[i] = acc * price_c

    return gather


def gather_only(names, args) -> None:
    """The memory roofline: the gather-only kernel on the launch's arguments (fills the out_* arrays). It skips
    max_steps, which only bounds the walk it does not run."""
    global _gather_kernel
    if _gather_kernel is None:
        _gather_kernel = _gather_source()
    a = dict(zip(names, args))
    _gather_kernel(*(a[name] for name in (
        "pair_position", "pair_block", "pos_collateral_token", "pos_debt_token", "pos_collateral_raw", "pos_debt_raw",
        "pos_ref_offset", "pos_log_growth", "pos_threshold", "pos_bonus", "pos_close_factor", "pos_route_offsets",
        "route_pools", "route_zero_for_one", "route_gamma", "route_is_v3", "route_gas_units", "log_offsets", "log_key",
        "log_reserve0", "log_reserve1", "log_sqrt_price", "log_liquidity", "log_tick", "log_tick_version",
        "tick_offsets", "tick_index", "tick_sqrt_price", "tick_liquidity_net", "price_usd", "token_scale",
        "wei_per_usd", "gas_price_wei", "flash_fee", "out_health", "out_repay_raw", "out_seized_raw", "out_route",
        "out_amount_out", "out_net_wei")))
