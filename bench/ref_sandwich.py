"""NumPy reference and gather-only roofline of the sandwich screening kernel (kernels/sandwich.py: screen_sandwich).

The bundle model it restates: the front-run, then each victim on the state the front-run and the earlier victims
left, then the back-run. An exact-input victim sells amount_in and needs >= min_out; an exact-output victim
(victim_exact_output) buys min_out exactly for the least input (V2 getAmountIn, V3 an exact-output tick walk) and
needs that input <= amount_in. A victim whose limit fails reverts (the pool unchanged); the first victim bounds the
front-run (a_first), later ones may revert beyond the largest front-run where all execute (a_all).

Covers every scenario: a_first (V2: the closed form on the first victim; V3: bisection on "the first victim
executes"), a_all (groups of several victims: bisection on "every victim executes"), the golden section for the
profit maximum on [0, min(a_all, capital)] with its endpoint, then min(a_first, capital) as one more candidate.
Each bundle evaluation is a masked lock-step over the items, and a V3 swap (exact input or exact output) a tick
walk compacted to the still-walking swaps each step. Scenarios without pool state (or with an unusable V3 state)
screen as zeros, as in the kernel.
"""
from __future__ import annotations

import numpy as np

from common import (  # bench/common.py
    LOG_SQRT_TICK, MAX_SQRT_PRICE, MAX_TICK, MIN_SQRT_PRICE, MIN_TICK, numba_lookups, subset_args)
from common import search_right as _search_right

COVERS = ("every scenario: V2 closed form / V2-V3 bisections + golden section + first victim's bound, V3 tick walks "
          "(exact input and output)")

# kernels/sandwich.py constants, restated (the reference imports nothing from kernels/; amm_v3's: bench/common.py)
SANDWICH_BISECTIONS = 64
GOLDEN_ITERATIONS = 60
INV_PHI = 0.6180339887498949
V3_OK, V3_MAX_STEPS, V3_LIMIT = 0, 1, 2  # kernels/amm_v3.py's swap status

# np.log differs from libm's log (the kernel's math.log) by 1 ulp on ~1e-4 of arguments; a check may swap in a
# log that calls math.log to compare bit for bit
_log = np.log
_OUTS = ("out_amount_in", "out_max_frontrun", "out_gross_raw", "out_net_wei", "out_crossed")
_gather_kernel = None  # the gather-only numba kernel, compiled at the first gather_only call


def _per_item(names: list[str]) -> set[str]:
    """Names of the per-item input arrays (one entry per scenario; scen_victims is a table sliced by scen_start)."""
    return {n for n in names if n.startswith("scen_") and n != "scen_victims"}


def covered(names, args) -> np.ndarray:
    """Every scenario (see the module docstring)."""
    a = dict(zip(names, args))
    return np.arange(a["scen_pool"].shape[0], dtype=np.int64)


def subset(names, args, items) -> tuple:
    """The kernel's arguments restricted to `items`: per-scenario arrays sliced, tables and scalars unchanged,
    every out_* array fresh zeros of len(items)."""
    return subset_args(names, args, items, _per_item(names))


def _v2_out(amount_in, reserve_in, reserve_out, gamma):
    """kernels/amm_v2.v2_amount_out, elementwise (same operation order)."""
    x = amount_in * gamma
    return x * reserve_out / (reserve_in + x)


def _victims(a: dict, start: np.ndarray, count: np.ndarray):
    """(amount_in, min_out, exact output, slot used) of each scenario's victims as (n, widest group) matrices,
    zero-padded. Slot 0 is always read (the kernel reads the first victim before looking at the count)."""
    width = max(int(count.max(initial=0)), 1)
    slot = np.arange(width)
    used = slot[None, :] < count[:, None]
    table = a["scen_victims"]
    pos = np.where(used | (slot[None, :] == 0), start[:, None] + slot[None, :], 0)
    v = table.take(np.minimum(pos, max(table.shape[0] - 1, 0))) if table.shape[0] else np.zeros(pos.shape, np.int64)
    v = np.where(used | (slot[None, :] == 0), v, 0)
    if not a["victim_amount_in"].shape[0]:
        z = np.zeros(v.shape)
        return z, z, np.zeros(v.shape, bool), used
    return (a["victim_amount_in"].take(v), a["victim_min_out"].take(v),
            np.asarray(a["victim_exact_output"]).astype(bool).take(v), used)


class _V2Bundle:
    """The bundle on V2 pools, oriented (reserve in, reserve out) by each scenario's direction: the kernel's
    zero_for_one / one_for_zero branches are the same formulas with the reserves swapped, so this is bit-exact."""

    def __init__(self, x, y, gamma, vin, vmin, vexact, used):
        self.x, self.y, self.gamma, self.vin, self.vmin, self.vexact, self.used = x, y, gamma, vin, vmin, vexact, used

    def take(self, sel):
        return _V2Bundle(self.x[sel], self.y[sel], self.gamma[sel], self.vin[sel], self.vmin[sel], self.vexact[sel],
                         self.used[sel])

    def first_only(self):
        """The bundle around the first victim alone (kernels/sandwich.sandwich_bound with count 1)."""
        return _V2Bundle(self.x, self.y, self.gamma, self.vin[:, :1], self.vmin[:, :1], self.vexact[:, :1],
                         np.ones((self.x.shape[0], 1), bool))

    def eval(self, a):
        """kernels/sandwich.sandwich_eval: (gross profit, first victim executed, every victim executed, ticks
        crossed, ok); a V2 bundle crosses nothing and always goes through."""
        g = self.gamma
        n = a.shape[0]
        front = a > 0.0
        bought = np.where(front, _v2_out(a, self.x, self.y, g), 0.0)
        r_in = np.where(front, self.x + a, self.x)
        r_out = np.where(front, self.y - bought, self.y)
        first = np.ones(n, bool)
        every = np.ones(n, bool)
        for j in range(self.vin.shape[1]):
            v, m, ex, used = self.vin[:, j], self.vmin[:, j], self.vexact[:, j], self.used[:, j]
            # exact input: pool_swap (a non-positive input swaps nothing and gets 0), then got >= min_out
            skip = v <= 0.0
            got = np.where(skip, 0.0, _v2_out(v, r_in, r_out, g))
            in_done = ~(got < m)
            in_r_in = np.where(skip, r_in, r_in + v)
            in_r_out = np.where(skip, r_out, r_out - got)
            # exact output: buys m for getAmountIn(m) = m·r_in / ((r_out − m)·γ), needs it <= amount_in (amountInMax);
            # nothing to buy: executes, pool unchanged; m >= r_out: the pool cannot deliver, reverts
            paid = m * r_in / ((r_out - m) * g)
            free = m <= 0.0
            out_done = free | (~(m >= r_out) & ~(paid > v))
            out_r_in = np.where(free, r_in, r_in + paid)
            out_r_out = np.where(free, r_out, r_out - m)
            done = np.where(ex, out_done, in_done)
            swap = used & done  # a reverted victim leaves the pool as it found it
            r_in = np.where(swap, np.where(ex, out_r_in, in_r_in), r_in)
            r_out = np.where(swap, np.where(ex, out_r_out, in_r_out), r_out)
            every &= done | ~used
            if j == 0:
                first = done | ~used
        back = np.where(bought <= 0.0, 0.0, _v2_out(bought, r_out, r_in, g))
        return np.where(a <= 0.0, 0.0, back - a), first, every, np.zeros(n, np.int64), np.ones(n, bool)


def _put(results, rows, values) -> None:
    """results[j][rows] = values[j] for each value given (the swap's result arrays, in their order)."""
    for r, v in zip(results, values):
        r[rows] = v


class _V3Bundle:
    """The bundle on V3 pools: every swap a vectorized kernels/amm_v3.v3_swap_exact_in / v3_swap_exact_out (same
    walk, same operation order, per-scenario direction selected elementwise)."""

    def __init__(self, t: dict, zfo, gamma, s, liq, tick, lo, hi, vin, vmin, vexact, count):
        self.t, self.zfo, self.gamma, self.s, self.liq, self.tick = t, zfo, gamma, s, liq, tick
        self.lo, self.hi, self.vin, self.vmin, self.vexact, self.count = lo, hi, vin, vmin, vexact, count

    def take(self, sel):
        return _V3Bundle(self.t, self.zfo[sel], self.gamma[sel], self.s[sel], self.liq[sel], self.tick[sel],
                         self.lo[sel], self.hi[sel], self.vin[sel], self.vmin[sel], self.vexact[sel], self.count[sel])

    def first_only(self):
        """The bundle around the first victim alone (kernels/sandwich.sandwich_bound with count 1)."""
        return _V3Bundle(self.t, self.zfo, self.gamma, self.s, self.liq, self.tick, self.lo, self.hi,
                         self.vin[:, :1], self.vmin[:, :1], self.vexact[:, :1], np.ones(self.count.shape, np.int64))

    def swap(self, amount, zfo, gamma, s, liq, tick, lo, hi, exact_out=False):
        """One V3 swap per element: exact input (`amount` sold, returns the output; v3_swap_exact_in) or exact
        output (`amount` bought, returns the input paid, fee included; v3_swap_exact_out). Returns (amount, s, L,
        tick, crossed, status) per element, status V3_OK / V3_MAX_STEPS / V3_LIMIT."""
        t = self.t
        tick_index, tick_sqrt_price = t["tick_index"], t["tick_sqrt_price"]
        tick_liquidity_net, max_steps = t["tick_liquidity_net"], t["max_steps"]
        m = amount.shape[0]
        r_amt = np.zeros(m)
        r_s = s.copy()
        r_liq = liq.copy()
        r_tick = tick.copy()
        r_crossed = np.zeros(m, np.int64)
        r_status = np.full(m, V3_OK, np.int64)
        results = (r_amt, r_s, r_liq, r_tick, r_crossed, r_status)
        idx = np.flatnonzero(~((amount <= 0.0) | (s <= 0.0)))  # nothing to swap: state unchanged, V3_OK
        if not idx.size:
            return results
        z = zfo[idx]
        lo = lo[idx]
        hi = hi[idx]
        ss = s[idx]
        ll = liq[idx]
        tt = tick[idx]
        g = gamma[idx]
        # what is left to swap: the input after the fee (exact input), the output still to buy (exact output)
        rem = amount[idx] if exact_out else amount[idx] * g
        first = _search_right(tick_index, lo, hi, tt)  # v3_next_tick_position
        pos = np.where(z, first - 1, first)
        acc = np.zeros(idx.shape[0])  # exact input: output so far; exact output: input so far, before the fee
        crossed = np.zeros(idx.shape[0], np.int64)
        last = max(tick_index.shape[0] - 1, 0)
        has_ticks = tick_index.shape[0] > 0

        def result(acc, g):
            return acc / g if exact_out else acc

        while idx.size:  # at most max_steps + 1 rounds: each round crosses a tick or ends the swap
            inside = np.where(z, pos >= lo, pos < hi)
            p = np.minimum(np.maximum(pos, 0), last)  # a clamped read where `inside` is False, discarded
            if has_ticks:
                s_next = np.where(inside, tick_sqrt_price.take(p), np.where(z, MIN_SQRT_PRICE, MAX_SQRT_PRICE))
                t_next = np.where(inside, tick_index.take(p), np.where(z, MIN_TICK, MAX_TICK)).astype(np.int64)
            else:
                s_next = np.where(z, MIN_SQRT_PRICE, MAX_SQRT_PRICE)
                t_next = np.where(z, MIN_TICK, MAX_TICK).astype(np.int64)
            # moving the price to s_next: tok_a = L·|Δs| (token1: the input selling token1, the output selling
            # token0), tok_b = L·|Δs|/(s·s_next) (token0)
            tok_a = ll * np.where(z, ss - s_next, s_next - ss)
            tok_b = tok_a / (ss * s_next)
            in_b = z if not exact_out else ~z  # the limiting amount (input, or output when exact_out) is token0
            need = np.where(in_b, tok_b, tok_a)
            gain = np.where(in_b, tok_a, tok_b)
            fin = rem < need
            if fin.any():  # the swap ends inside this range
                f = np.flatnonzero(fin)
                zf, lf, rf, sf, af, tf, nf, gf = z[f], ll[f], rem[f], ss[f], acc[f], tt[f], t_next[f], g[f]
                if exact_out:
                    s0 = sf - rf / lf                      # selling token0, buying rf of token1
                    a0 = af + rf / (sf * s0)
                    s1 = sf * lf / (lf - rf * sf)          # selling token1, buying rf of token0
                    a1 = af + rf * sf * s1
                else:
                    d = lf + rf * sf
                    s0 = lf * sf / d
                    a0 = af + lf * rf * sf * sf / d
                    s1 = sf + rf / lf
                    a1 = af + rf / (sf * s1)
                s_new = np.where(zf, s0, s1)
                floor_t = np.where(zf, nf, tf)
                ceil_t = np.where(zf, tf, nf - 1)
                tk = np.floor(_log(s_new) / LOG_SQRT_TICK).astype(np.int64)  # v3_tick_at_sqrt_price
                tk = np.where(tk < floor_t, floor_t, np.where(tk > ceil_t, ceil_t, tk))
                _put(results, idx[f], (result(np.where(zf, a0, a1), gf), s_new, lf, tk, crossed[f]))
                keep = ~fin
                z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx, inside, s_next, t_next, need, gain, p = (
                    v[keep] for v in (z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx, inside, s_next, t_next,
                                      need, gain, p))
                if not idx.size:
                    break
            rem = rem - need
            acc = acc + gain
            ss = s_next
            stop = ~inside | (crossed >= max_steps)  # V3_LIMIT (price range's end) or V3_MAX_STEPS
            if stop.any():
                f = np.flatnonzero(stop)
                tick_f = np.where(inside[f], tt[f], np.where(z[f], MIN_TICK, MAX_TICK))
                status = np.where(inside[f], V3_MAX_STEPS, V3_LIMIT)
                _put(results, idx[f], (result(acc[f], g[f]), ss[f], ll[f], tick_f, crossed[f], status))
                keep = ~stop
                z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx, s_next, t_next, p = (v[keep] for v in (
                    z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx, s_next, t_next, p))
                if not idx.size:
                    break
            net = tick_liquidity_net.take(p)
            ll = np.where(z, ll - net, ll + net)
            tt = np.where(z, t_next - 1, t_next)
            pos = np.where(z, pos - 1, pos + 1)
            crossed = crossed + 1
            ll = np.where(ll < 0.0, 0.0, ll)  # float residue of an exactly-zero liquidity
            done = rem <= 0.0
            if done.any():
                f = np.flatnonzero(done)
                _put(results, idx[f], (result(acc[f], g[f]), ss[f], ll[f], tt[f], crossed[f]))
                keep = ~done
                z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx = (v[keep] for v in (
                    z, lo, hi, ss, ll, tt, g, rem, acc, crossed, pos, idx))
        return results

    def _swap_at(self, sel, amount, zfo, s, liq, tick, exact_out=False):
        """swap() on the scenarios `sel` (indices), state arrays indexed like the bundle."""
        return self.swap(amount, zfo, self.gamma[sel], s[sel], liq[sel], tick[sel], self.lo[sel], self.hi[sel],
                         exact_out)

    def eval(self, a):
        """kernels/sandwich.sandwich_eval: (gross profit, first victim executed, every victim executed, ticks
        crossed by front- and back-run, ok). A swap that stops early (ok False) ends the bundle: profit 0, no victim
        counted as executed, the front-run's crossings kept (none if the front-run itself stopped)."""
        n = a.shape[0]
        s, liq, tick = self.s.copy(), self.liq.copy(), self.tick.copy()
        crossed = np.zeros(n, np.int64)
        bought = np.zeros(n)
        alive = np.ones(n, bool)   # no swap of the bundle has stopped early
        first = np.ones(n, bool)
        every = np.ones(n, bool)
        sel = np.flatnonzero(a > 0.0)
        if sel.size:
            o, s1, l1, t1, c1, st = self._swap_at(sel, a[sel], self.zfo[sel], s, liq, tick)
            ok1 = st == V3_OK
            s[sel], liq[sel], tick[sel] = s1, l1, t1
            bought[sel] = o
            crossed[sel] = np.where(ok1, c1, 0)  # a failed front-run returns 0 crossings
            alive[sel] = ok1
        for j in range(self.vin.shape[1]):
            sel = np.flatnonzero(alive & (j < self.count))
            if not sel.size:
                continue
            v, m, ex = self.vin[sel, j], self.vmin[sel, j], self.vexact[sel, j]
            done = np.ones(sel.size, bool)
            fail = np.zeros(sel.size, bool)
            ns, nl, nt = s[sel], liq[sel], tick[sel]  # fancy indexing: copies
            k = np.flatnonzero(~ex)  # exact input: sells v, needs >= m
            if k.size:
                o, s1, l1, t1, _, st = self._swap_at(sel[k], v[k], self.zfo[sel[k]], s, liq, tick)
                fail[k] = st != V3_OK
                done[k] = ~(o < m[k])
                ns[k], nl[k], nt[k] = s1, l1, t1
            k = np.flatnonzero(ex & ~(m <= 0.0))  # exact output (nothing to buy: executes, pool unchanged)
            if k.size:
                paid, s1, l1, t1, _, st = self._swap_at(sel[k], m[k], self.zfo[sel[k]], s, liq, tick, True)
                fail[k] = (st != V3_OK) & (st != V3_LIMIT)  # V3_LIMIT: the pool cannot deliver, the swap reverts
                done[k] = (st == V3_OK) & ~(paid > v[k])
                ns[k], nl[k], nt[k] = s1, l1, t1
            swap = done & ~fail  # a reverted victim leaves the pool as it found it
            s[sel] = np.where(swap, ns, s[sel])
            liq[sel] = np.where(swap, nl, liq[sel])
            tick[sel] = np.where(swap, nt, tick[sel])
            every[sel] &= done
            if j == 0:
                first[sel] = done
            alive[sel[fail]] = False
        first &= alive
        every &= alive
        profit = np.zeros(n)
        ok = alive.copy()
        sel = np.flatnonzero(alive & ~(a <= 0.0))
        if sel.size:
            o, s1, l1, t1, c1, st = self._swap_at(sel, bought[sel], ~self.zfo[sel], s, liq, tick)
            crossed[sel] += c1
            profit[sel] = o - a[sel]
            ok[sel] = st == V3_OK
        return profit, first, every, crossed, ok


def _largest_frontrun_v2(x, y, gamma, v, m):
    """kernels/sandwich.sandwich_max_frontrun_v2, elementwise: the closed form, −1 when the victim fails alone,
    1e300 without a slippage bound. For an exact-output victim (v, m) = (amountInMax, amountOut): "getAmountIn(m)
    <= v" is "getAmountOut(v) >= m" in real arithmetic, the same quadratic."""
    big_c = gamma * v * x * y / m
    b = (1.0 + gamma) * x + gamma * gamma * v
    c = x * (x + gamma * v) - big_c
    a_max = -2.0 * c / (b + np.sqrt(b * b - 4.0 * gamma * c))
    return np.where(m <= 0.0, 1e300, np.where(c > 0.0, -1.0, a_max))


def _bisect_largest(bundle, capital):
    """kernels/sandwich.sandwich_bound, vectorized: the largest front-run in [0, capital] after which every victim
    of `bundle` executes (and every swap goes through): −1 when they do not even unsandwiched, capital when it
    works, else SANDWICH_BISECTIONS bisection steps on [0, capital]."""
    n = capital.shape[0]

    def executes(x, b=bundle):
        _, _, every, _, ok = b.eval(x)
        return every & ok

    alive = executes(np.zeros(n))
    at_cap = executes(capital)
    a_max = np.where(alive, np.where(at_cap, capital, 0.0), -1.0)
    sel = np.flatnonzero(alive & ~at_cap)
    if sel.size:
        sub = bundle.take(sel)
        a_lo = np.zeros(sel.size)
        a_hi = capital[sel]
        for _ in range(SANDWICH_BISECTIONS):
            mid = 0.5 * (a_lo + a_hi)
            good = executes(mid, sub)
            a_lo = np.where(good, mid, a_lo)
            a_hi = np.where(good, a_hi, mid)
        a_max[sel] = a_lo
    return a_max


def _golden(bundle, bound):
    """The golden section for the profit maximum on [0, bound] (every victim executes there), the midpoint and the
    endpoint compared. Returns (front-run, gross profit, ticks crossed) per scenario, before the "no profit" test."""
    x_lo = np.zeros(bound.shape[0])
    x_hi = bound
    x1 = x_hi - INV_PHI * (x_hi - x_lo)
    x2 = x_lo + INV_PHI * (x_hi - x_lo)
    p1 = bundle.eval(x1)[0]
    p2 = bundle.eval(x2)[0]
    for _ in range(GOLDEN_ITERATIONS):
        left = p1 >= p2  # keep [x_lo, x2] (False also for a NaN, as in the kernel)
        new_hi = np.where(left, x2, x_hi)
        new_lo = np.where(left, x_lo, x1)
        x_new = np.where(left, new_hi - INV_PHI * (new_hi - new_lo), new_lo + INV_PHI * (new_hi - new_lo))
        p_new = bundle.eval(x_new)[0]
        x1, x2 = np.where(left, x_new, x2), np.where(left, x1, x_new)
        p1, p2 = np.where(left, p_new, p2), np.where(left, p1, p_new)
        x_lo, x_hi = new_lo, new_hi
    best_a = 0.5 * (x_lo + x_hi)
    best_p, _, _, best_c, ok = bundle.eval(best_a)
    best_p = np.where(ok, best_p, 0.0)
    p_end, _, _, c_end, ok_end = bundle.eval(bound)
    end = ok_end & (p_end >= best_p)
    return np.where(end, bound, best_a), np.where(end, p_end, best_p), np.where(end, c_end, best_c)


def _screen(bundle, count, capital, a_first, out_a, out_amax, out_gross, out_crossed, rows):
    """kernels/sandwich.sandwich_screen after the first victim's bound a_first: a_all (bisection, groups of several
    victims), the golden section on [0, min(a_all, capital)], then min(a_first, capital) as one more candidate
    (later victims may revert there); results written at `rows`."""
    n = capital.shape[0]
    live = ~(a_first <= 0.0)  # the first victim fails unsandwiched: nothing (a NaN bound goes on, as in the kernel)
    out_amax[rows] = np.where(live, a_first, 0.0)
    a_all = a_first.copy()
    sel = np.flatnonzero(live & (count > 1))
    if sel.size:
        a_all[sel] = _bisect_largest(bundle.take(sel), capital[sel])
    a_all = np.where(a_all > a_first, a_first, a_all)
    bound = np.where(capital < a_all, capital, a_all)
    best_a = np.zeros(n)
    best_p = np.zeros(n)
    best_c = np.zeros(n, np.int64)
    sel = np.flatnonzero(live & (bound > 0.0))
    if sel.size:
        best_a[sel], best_p[sel], best_c[sel] = _golden(bundle.take(sel), bound[sel])
    top = np.where(capital < a_first, capital, a_first)
    sel = np.flatnonzero(live & (top > bound))
    if sel.size:
        p_top, _, _, c_top, ok_top = bundle.take(sel).eval(top[sel])
        better = ok_top & (p_top > best_p[sel])
        best_a[sel] = np.where(better, top[sel], best_a[sel])
        best_p[sel] = np.where(better, p_top, best_p[sel])
        best_c[sel] = np.where(better, c_top, best_c[sel])
    none = best_p <= 0.0
    out_a[rows] = np.where(none, 0.0, best_a)
    out_gross[rows] = np.where(none, 0.0, best_p)
    out_crossed[rows] = np.where(none, 0, best_c)


def numpy_reference(names, args) -> dict:
    """kernels/sandwich.screen_sandwich over every scenario of `args`, vectorized: {out name: values}."""
    a = dict(zip(names, args))
    pool = a["scen_pool"].astype(np.int64)
    n = pool.shape[0]
    out_a = np.zeros(n)
    out_amax = np.zeros(n)
    out_gross = np.zeros(n)
    out_crossed = np.zeros(n, np.int64)
    offsets = a["log_offsets"]
    with np.errstate(all="ignore"):  # inf / NaN propagate as in the kernel (numpy error model)
        first = offsets.take(pool)
        k = _search_right(a["log_key"], first, offsets.take(pool + 1), a["scen_key"]) - 1
        has = k >= first
        k = np.where(has, k, 0)
        is_v3 = a["pool_is_v3"].take(pool) & has
        gamma = a["pool_gamma"].take(pool)
        capital = a["scen_capital"]
        count = a["scen_count"].astype(np.int64)
        zfo = a["scen_zero_for_one"]

        # V2: the first victim's bound in closed form
        rows = np.flatnonzero(has & ~is_v3)
        if rows.size:
            r0 = a["log_reserve0"].take(k[rows])
            r1 = a["log_reserve1"].take(k[rows])
            z = zfo[rows]
            x, y = np.where(z, r0, r1), np.where(z, r1, r0)
            vin, vmin, vexact, used = _victims(a, a["scen_start"][rows], count[rows])
            bundle = _V2Bundle(x, y, gamma[rows], vin, vmin, vexact, used)
            a_first = _largest_frontrun_v2(x, y, gamma[rows], vin[:, 0], vmin[:, 0])
            _screen(bundle, count[rows], capital[rows], a_first, out_a, out_amax, out_gross, out_crossed, rows)

        # V3: a usable state (tick table version, positive liquidity and price), the first victim's bound by
        # bisection
        screened = has & ~is_v3
        rows = np.flatnonzero(is_v3)
        if rows.size:
            kk = k[rows]
            version = a["log_tick_version"].take(kk).astype(np.int64)
            s = a["log_sqrt_price"].take(kk)
            liq = a["log_liquidity"].take(kk)
            usable = ~((version < 0) | (liq <= 0.0) | (s <= 0.0))
            rows, version, s, liq, kk = rows[usable], version[usable], s[usable], liq[usable], kk[usable]
            screened[rows] = True
        if rows.size:
            tick = a["log_tick"].take(kk).astype(np.int64)
            lo = a["tick_offsets"].take(version)
            hi = a["tick_offsets"].take(version + 1)
            vin, vmin, vexact, _ = _victims(a, a["scen_start"][rows], count[rows])
            tables = {name: a[name] for name in ("tick_index", "tick_sqrt_price", "tick_liquidity_net", "max_steps")}
            bundle = _V3Bundle(tables, zfo[rows], gamma[rows], s, liq, tick, lo, hi, vin, vmin, vexact, count[rows])
            a_first = _bisect_largest(bundle.first_only(), capital[rows])
            _screen(bundle, count[rows], capital[rows], a_first, out_a, out_amax, out_gross, out_crossed, rows)

        gas = np.where(is_v3, 2.0 * a["v3_tx_gas"] + a["v3_tick_gas"] * out_crossed, 2.0 * a["v2_tx_gas"])
        net = out_gross * a["scen_wei_per_raw"] - gas * a["scen_gas_price"]
        net[~screened] = 0.0  # the kernel returns before writing the net: no state, or an unusable V3 state
    return {"out_amount_in": out_a, "out_max_frontrun": out_amax, "out_gross_raw": out_gross, "out_net_wei": net,
            "out_crossed": out_crossed}


def assert_agrees(ref: dict, outs: dict) -> None:
    """The reference against the kernel's outputs: equal item for item up to float rounding, except for at most
    1 in 10,000 items (at least one) that may differ in any way (see the comment below)."""
    n = outs["out_crossed"].shape[0]
    bad = np.zeros(n, bool)
    for name in _OUTS:
        got, want = np.asarray(ref[name]), np.asarray(outs[name])
        assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
        if name == "out_crossed":
            bad |= got != want
        else:
            # the same float operations in the same order, so bit-identical but for the tick below; 1e-12 relative
            # leaves room for nothing else
            bad |= ~np.isclose(got, want, rtol=1e-12, atol=0.0, equal_nan=True)
    # np.log is not libm's log (1 ulp apart on ~1e-4 of arguments): the tick after a V3 swap, floor(log(s)/c), can
    # flip where log(s)/c is within ~1e-10 of an integer, and the next swap of the bundle then starts its walk on
    # the other side of an initialized tick; so a very rare item may take another search path
    allowed = max(1, n // 10_000)
    if bad.sum() > allowed:
        i = np.flatnonzero(bad)[:5]
        detail = {name: (np.asarray(ref[name])[i].tolist(), np.asarray(outs[name])[i].tolist()) for name in _OUTS}
        raise AssertionError(f"sandwich reference vs kernel: {int(bad.sum())} of {n} items differ (allowed "
                             f"{allowed}); first items {i.tolist()}: (reference, kernel) {detail}")


def _gather_source():
    """The gather-only kernel: the real kernel's reads (scenario, binary-searched state, pool, V3 tick table at
    the binary-searched next tick, every victim), no AMM math."""
    import numba

    find_state, v3_next_tick_position = numba_lookups()

    @numba.njit(parallel=True, cache=False, fastmath=False, error_model="numpy")
    def gather(scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital, scen_wei_per_raw,
               scen_gas_price, scen_victims, victim_amount_in, victim_min_out, victim_exact_output, pool_is_v3,
               pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick,
               log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, out_amount_in,
               out_max_frontrun, out_gross_raw, out_net_wei, out_crossed):
        for i in numba.prange(scen_pool.shape[0]):
            pool = scen_pool[i]
            out_amount_in[i] = 0.0
            out_max_frontrun[i] = 0.0
            out_gross_raw[i] = 0.0
            out_net_wei[i] = 0.0
            out_crossed[i] = 0
            k = find_state(log_offsets, log_key, pool, scen_key[i])
            if k < 0:
                continue
            zfo = scen_zero_for_one[i]
            state = log_reserve0[k] + log_reserve1[k] + pool_gamma[pool]
            found = 0
            if pool_is_v3[pool]:
                v = log_tick_version[k]
                s = log_sqrt_price[k]
                liq = log_liquidity[k]
                t = log_tick[k]
                if v < 0 or liq <= 0.0 or s <= 0.0:
                    continue
                a = tick_offsets[v]
                b = tick_offsets[v + 1]
                p = v3_next_tick_position(t, zfo, tick_index, a, b)
                if a <= p < b:
                    state += tick_sqrt_price[p] + tick_liquidity_net[p]
                    found = tick_index[p]
                state += s + liq
            start = scen_start[i]
            need = 0.0
            least = 0.0
            for j in range(scen_count[i]):
                v = scen_victims[start + j]
                need += victim_amount_in[v]
                least += victim_min_out[v] + victim_exact_output[v]
            out_amount_in[i] = need + scen_capital[i]
            out_max_frontrun[i] = least
            out_gross_raw[i] = state
            out_net_wei[i] = scen_wei_per_raw[i] * scen_gas_price[i]
            out_crossed[i] = found + zfo

    return gather


def gather_only(names, args) -> None:
    """The memory roofline: reads what screen_sandwich reads and writes the out_* arrays, no AMM math."""
    global _gather_kernel
    if _gather_kernel is None:
        _gather_kernel = _gather_source()
    a = dict(zip(names, args))
    _gather_kernel(*(a[name] for name in names if name not in ("max_steps", "v2_tx_gas", "v3_tx_gas",
                                                                "v3_tick_gas")))
