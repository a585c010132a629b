"""NumPy reference and gather-only roofline of the JIT-liquidity screening kernel (kernels/jit.py: screen_jit).

Covers every item: each victim's (range × size) grid is one flat batch of grid points and the V3 walk with the
position's bounds is a fixed-count masked loop over steps (at most max_steps + 1 tick hits + 2 position bounds),
compacted to the still-walking points after each step. Edge cases follow the kernel (no state, NaN price, tick
spacing 0, which its error_model="numpy" divides to 0, V3_LIMIT / V3_MAX_STEPS grid points skipped, ...).
"""
from __future__ import annotations

import numpy as np

from common import (  # bench/common.py
    LOG_SQRT_TICK, MAX_SQRT_PRICE, MAX_TICK, MIN_SQRT_PRICE, MIN_TICK, numba_lookups, subset_args)
from common import search_right as _search_right

COVERS = "every victim: V3 tick walk, (range x size) grid"

# np.exp differs from libm's exp (the kernel's math.exp) by 1 ulp on ~5 % of arguments; a check may swap in an
# exp that calls math.exp to compare bit for bit
_exp = np.exp
_gather_kernel = None  # the gather-only numba kernel, compiled at the first gather_only call


def _per_item(names: list[str]) -> set[str]:
    """Names of the per-item input arrays (one entry per victim)."""
    return {n for n in names if n.startswith("victim_")}


def _amounts(liq, s, s_lower, s_upper):
    """kernels/jit.position_amounts, elementwise (same branch order and operation order)."""
    below = s <= s_lower
    above = s >= s_upper
    a0 = np.where(below, liq * (s_upper - s_lower) / (s_lower * s_upper),
                  np.where(above, 0.0, liq * (s_upper - s) / (s * s_upper)))
    a1 = np.where(below, 0.0, np.where(above, liq * (s_upper - s_lower), liq * (s - s_lower)))
    return a0, a1


def _walk(zfo: bool, amount, gamma, s0, liq0, pos0, lo, hi, s_lower, s_upper, dl, max_steps, tick_sqrt_price,
          tick_liquidity_net):
    """kernels/jit.v3_swap_with_position for a batch of grid points of one direction: (sqrt price after, the
    position's fees, status == V3_OK). The victim's output is not computed: screen_jit never reads it."""
    m = amount.shape[0]
    s_after = s0.copy()
    fees_after = np.zeros(m)
    ok = (amount <= 0.0) | (s0 <= 0.0)  # the kernel returns (0, s, 0, 0, OK) before walking
    idx = np.flatnonzero(~ok)
    g = gamma[idx]
    remaining = amount[idx] * g
    fee_per_net = (1.0 - g) / g
    s, liq, pos = s0[idx], liq0[idx], pos0[idx]
    lo, hi, sl, su, dl = lo[idx], hi[idx], s_lower[idx], s_upper[idx], dl[idx]
    fees = np.zeros(idx.shape[0])
    crossed = np.zeros(idx.shape[0], np.int64)
    # every step either ends the walk, crosses a tick (at most max_steps do, the next hit ends it) or stops at one
    # of the position's two bounds, so max_steps + 3 steps finish every finite walk
    for _ in range(max(max_steps, 0) + 3):
        if idx.shape[0] == 0:
            break
        if zfo:
            inside = (sl < s) & (s <= su)
            s_tick = np.where(pos >= lo, tick_sqrt_price.take(pos, mode="clip"), MIN_SQRT_PRICE)
            s_bound = np.where(inside, sl, np.where(s > su, su, 0.0))
            s_next = np.where(s_bound > s_tick, s_bound, s_tick)
        else:
            inside = (sl <= s) & (s < su)
            s_tick = np.where(pos < hi, tick_sqrt_price.take(pos, mode="clip"), MAX_SQRT_PRICE)
            s_bound = np.where(inside, su, np.where(s < sl, sl, 1e300))
            s_next = np.where(s_bound < s_tick, s_bound, s_tick)
        l_eff = np.where(inside, liq + dl, liq)
        share = np.where(inside & (l_eff > 0.0), dl / l_eff, 0.0)
        if zfo:
            need = l_eff * (s - s_next) / (s * s_next)
        else:
            need = l_eff * (s_next - s)
        fin = remaining < need  # the step ends inside this range
        f = np.flatnonzero(fin)
        if f.shape[0]:
            r, le, sf = remaining[f], l_eff[f], s[f]
            if zfo:
                s_after[idx[f]] = le * sf / (le + r * sf)
            else:
                s_after[idx[f]] = sf + r / le
            fees_after[idx[f]] = fees[f] + r * fee_per_net[f] * share[f]
            ok[idx[f]] = True
        remaining = remaining - need
        fees = fees + need * fee_per_net * share
        s = s_next
        hit = ~fin & (s_next == s_tick)  # an initialized tick (possibly also a bound of the position)
        limit = hit & ((pos < lo) if zfo else (pos >= hi))
        maxed = hit & ~limit & (crossed >= max_steps)
        cross = hit & ~limit & ~maxed
        tln = tick_liquidity_net.take(pos, mode="clip")
        liq = np.where(cross, (liq - tln) if zfo else (liq + tln), liq)
        liq = np.where(cross & (liq < 0.0), 0.0, liq)
        pos = pos + (np.where(cross, -1, 0) if zfo else cross)
        crossed = crossed + cross
        spent = ~fin & ~limit & ~maxed & (remaining <= 0.0)
        e = np.flatnonzero(spent)
        if e.shape[0]:
            s_after[idx[e]] = s[e]
            fees_after[idx[e]] = fees[e]
            ok[idx[e]] = True
        keep = np.flatnonzero(~(fin | limit | maxed | spent))  # V3_LIMIT / V3_MAX_STEPS leave ok False
        if keep.shape[0] < idx.shape[0]:
            idx, remaining, fee_per_net, fees, crossed = idx[keep], remaining[keep], fee_per_net[keep], fees[keep], \
                crossed[keep]
            s, liq, pos, lo, hi, sl, su, dl = s[keep], liq[keep], pos[keep], lo[keep], hi[keep], sl[keep], su[keep], \
                dl[keep]
    # anything still walking here has NaN tick data (the kernel would never return): left not ok
    return s_after, fees_after, ok


def covered(names, args) -> np.ndarray:
    """Every item (see the module docstring)."""
    return np.arange(args[list(names).index("victim_pool")].shape[0], dtype=np.int64)


def subset(names, args, items) -> tuple:
    """The kernel's arguments restricted to `items`: victim arrays sliced, tables and scalars shared, outputs
    fresh zeros."""
    return subset_args(names, args, items, _per_item(names))


def _find_state(a: dict, pool: np.ndarray) -> np.ndarray:
    """kernels/cycles.find_state per item: the last log entry of the pool with key <= the item's key, or -1."""
    start = a["log_offsets"][pool]
    r = _search_right(a["log_key"], start, a["log_offsets"][pool + 1], a["victim_key"])
    return np.where(r == start, -1, r - 1)


def numpy_reference(names, args) -> dict:
    """screen_jit over every item, vectorized: {out name: values}."""
    a = dict(zip(names, args))
    n = a["victim_pool"].shape[0]
    res = {name: np.zeros(n, arg.dtype) for name, arg in a.items() if name.startswith("out_")}
    with np.errstate(all="ignore"):  # the kernel's float edge cases (inf, NaN, 0/0) are masked, as it tests them
        pool_all = a["victim_pool"].astype(np.int64)
        k = _find_state(a, pool_all)
        kk = np.maximum(k, 0)
        v = a["log_tick_version"][kk].astype(np.int64)
        s_all = a["log_sqrt_price"][kk]
        items = np.flatnonzero((k >= 0) & ~((v < 0) | (s_all <= 0.0)))  # NaN s goes on, as in the kernel
        if items.shape[0] == 0:
            return res
        k, v, s, pool = k[items], v[items], s_all[items], pool_all[items]
        zfo = a["victim_zero_for_one"][items]
        lo = a["tick_offsets"][v]
        hi = a["tick_offsets"][v + 1]
        tick = a["log_tick"][k].astype(np.int64)
        spacing = a["pool_tick_spacing"][pool].astype(np.int64)
        base = (tick // spacing) * spacing
        first = _search_right(a["tick_index"], lo, hi, tick)
        pos0 = np.where(zfo, first - 1, first)  # kernels/amm_v3.v3_next_tick_position

        # ranges (items × A): [base − (w−1)·spacing, base + w·spacing), sized by the capital at the current price
        width = a["range_spacings"].astype(np.int64)
        t_lower = base[:, None] - (width[None, :] - 1) * spacing[:, None]
        t_upper = base[:, None] + width[None, :] * spacing[:, None]
        sl = _exp(t_lower * LOG_SQRT_TICK)
        su = _exp(t_upper * LOG_SQRT_TICK)
        u0, u1 = _amounts(1.0, s[:, None], sl, su)
        w0 = a["victim_w0"][items]
        w1 = a["victim_w1"][items]
        unit_wei = u0 * w0[:, None] + u1 * w1[:, None]
        range_ok = (t_lower >= MIN_TICK) & (t_upper <= MAX_TICK) & (unit_wei > 0.0)

        # grid (items × A × B), flattened row-major: the kernel's loop order, so argmax keeps its tie-breaking
        n_a, n_b = width.shape[0], a["size_fractions"].shape[0]
        if n_a * n_b == 0:  # an empty grid: the kernel writes zeros
            return res
        cap = a["victim_capital_wei"][items]
        dl = a["size_fractions"][None, None, :] * cap[:, None, None] / unit_wei[:, :, None]
        grid_item = np.repeat(np.arange(items.shape[0]), n_a * n_b)
        sl_g = np.repeat(sl.ravel(), n_b)
        su_g = np.repeat(su.ravel(), n_b)
        dl_g = dl.ravel()
        s_g = s[grid_item]
        m0, m1 = _amounts(dl_g, s_g, sl_g, su_g)
        s_after = np.full(grid_item.shape[0], np.nan)
        fees = np.zeros(grid_item.shape[0])
        ok = np.zeros(grid_item.shape[0], bool)
        live = np.repeat(range_ok.ravel(), n_b)
        amount = a["victim_amount_in"][items]
        gamma = a["pool_gamma"][pool]
        liq = a["log_liquidity"][k]
        for direction in (True, False):
            g = np.flatnonzero(live & (zfo[grid_item] == direction))
            if g.shape[0] == 0:
                continue
            gi = grid_item[g]
            s_after[g], fees[g], ok[g] = _walk(
                direction, amount[gi], gamma[gi], s_g[g], liq[gi], pos0[gi], lo[gi], hi[gi], sl_g[g], su_g[g],
                dl_g[g], int(a["max_steps"]), a["tick_sqrt_price"], a["tick_liquidity_net"])

        b0, b1 = _amounts(dl_g, s_after, sl_g, su_g)
        p_after = s_after * s_after
        zfo_g = zfo[grid_item]
        gross = np.where(zfo_g, fees + (b0 - m0) + (b1 - m1) / p_after, fees + (b1 - m1) + (b0 - m0) * p_after)
        net = gross * a["victim_wei_per_raw"][items][grid_item] - a["jit_gas"] * a["victim_gas_price"][items][grid_item]
        # the kernel keeps the first grid point with net > best so far (start −1e300): NaN and ≤ −1e300 never win
        score = np.where(ok & (net > -1e300), net, -np.inf).reshape(-1, n_a * n_b)
        best = score.argmax(axis=1)
        pick = np.arange(items.shape[0]) * (n_a * n_b) + best
        found = score[np.arange(items.shape[0]), best] > -np.inf
        win = found & (dl_g[pick] > 0.0)  # `if best_liq > 0.0`: a zero or NaN size writes nothing
        w, p, row = items[win], pick[win], np.flatnonzero(win)
        res["out_tick_lower"][w] = t_lower.ravel()[p // n_b]
        res["out_tick_upper"][w] = t_upper.ravel()[p // n_b]
        res["out_liquidity"][w] = dl_g[p]
        res["out_fees_raw"][w] = fees[p]
        res["out_gross_raw"][w] = gross[p]
        res["out_net_wei"][w] = score[row, best[row]]
    return res


def assert_agrees(ref: dict, outs: dict) -> None:
    """The reference agrees with the kernel's outputs. With libm's exp in place of np.exp the reference is bit
    for bit the kernel (checked on the captured launches); every tolerance below is the reach of np.exp's 1-ulp
    differences in a range's bounds s_lower / s_upper (1.1e-16 relative)."""
    # argmax over the grid can flip only between two grid points whose nets tie to ~1e-10: at most 1 per 10,000
    # items (none seen); on a flipped item the winning net must still agree
    flip = (ref["out_tick_lower"] != outs["out_tick_lower"]) | (ref["out_tick_upper"] != outs["out_tick_upper"])
    flips = int(np.count_nonzero(flip))
    assert flips <= flip.shape[0] // 10_000, f"jit: {flips} of {flip.shape[0]} items chose other ticks"
    same = ~flip
    # ΔL and fees scale with 1/(value of unit liquidity): 1 ulp of a bound over the narrowest range's width
    # (1.0001^0.5 − 1 ≈ 5e-5) is ~2e-12 relative (measured ≤ 2.9e-12)
    for name in ("out_liquidity", "out_fees_raw"):
        np.testing.assert_allclose(ref[name][same], outs[name][same], rtol=1e-10, atol=0, err_msg=f"jit: {name}")
    # gross = fees + Δin + Δout·p' cancels (the inventory loss nearly offsets the fees): measured ≤ 2.4e-10
    np.testing.assert_allclose(ref["out_gross_raw"][same], outs["out_gross_raw"][same], rtol=1e-8, atol=0,
                               err_msg="jit: out_gross_raw")
    # net = gross·wei/raw − gas·price inherits gross's error; 1e8 wei (1e-10 ETH) absolute where net ≈ 0
    np.testing.assert_allclose(ref["out_net_wei"], outs["out_net_wei"], rtol=1e-8, atol=1e8, err_msg="jit: out_net_wei")


def _gather_source():
    """The gather-only kernel (numba, parallel): reads per item what screen_jit reads, does no AMM math."""
    import numba

    find_state, v3_next_tick_position = numba_lookups()

    @numba.njit(parallel=True, cache=False)
    def gather(victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_capital_wei,
               victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma, pool_tick_spacing,
               range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price, log_liquidity, log_tick,
               log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, jit_gas,
               out_tick_lower, out_tick_upper, out_liquidity, out_fees_raw, out_gross_raw, out_net_wei):
        for i in numba.prange(victim_pool.shape[0]):
            pool = victim_pool[i]
            k = find_state(log_offsets, log_key, pool, victim_key[i])  # how the kernel addresses the state log
            if k < 0:
                out_tick_lower[i] = 0
                continue
            v = log_tick_version[k]
            if v < 0:
                out_tick_lower[i] = 0
                continue
            tick = log_tick[k]
            a = tick_offsets[v]
            b = tick_offsets[v + 1]
            # how the walk addresses the tick table
            pos = v3_next_tick_position(tick, victim_zero_for_one[i], tick_index, a, b)
            t_next = tick
            acc = log_sqrt_price[k] + log_liquidity[k]
            if pos >= a and pos < b:  # the walk's first tick entry
                t_next = tick_index[pos]
                acc += tick_sqrt_price[pos] + tick_liquidity_net[pos]
            grid = 0.0
            for r in range(range_spacings.shape[0]):  # the grid's tables, once each
                grid += range_spacings[r]
            for c in range(size_fractions.shape[0]):
                grid += size_fractions[c]
            out_tick_lower[i] = tick + pool_tick_spacing[pool]
            out_tick_upper[i] = t_next
            out_liquidity[i] = victim_capital_wei[i] + victim_w0[i] + victim_w1[i] + grid
            out_fees_raw[i] = victim_amount_in[i] + pool_gamma[pool]
            out_gross_raw[i] = acc
            out_net_wei[i] = victim_wei_per_raw[i] + jit_gas * victim_gas_price[i]

    return gather


def gather_only(names, args) -> None:
    """The memory roofline: the gather-only kernel on the launch's arguments (fills the out_* arrays). It skips
    victim_min_out and max_steps, which screen_jit does not read either."""
    global _gather_kernel
    if _gather_kernel is None:
        _gather_kernel = _gather_source()
    a = dict(zip(names, args))
    _gather_kernel(*(a[name] for name in (
        "victim_pool", "victim_key", "victim_zero_for_one", "victim_amount_in", "victim_capital_wei",
        "victim_wei_per_raw", "victim_w0", "victim_w1", "victim_gas_price", "pool_gamma", "pool_tick_spacing",
        "range_spacings", "size_fractions", "log_offsets", "log_key", "log_sqrt_price", "log_liquidity", "log_tick",
        "log_tick_version", "tick_offsets", "tick_index", "tick_sqrt_price", "tick_liquidity_net", "jit_gas",
        "out_tick_lower", "out_tick_upper", "out_liquidity", "out_fees_raw", "out_gross_raw", "out_net_wei")))
