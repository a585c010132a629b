"""Sandwich screening (V2 and V3 pools), float64: one thread per scenario = one victim, or one multi-victim group
(several pending swaps on one pool in one block, same direction, in block order). Exact re-pricing:
gpubt/strategies/sandwich.py.

Bundle model. The attacker's bundle [front-run, victim_1, ..., victim_k, back-run] executes on the pool's state
just before the first victim (key (o << 20) + tx_1 − 1): the front-run sells `a` of the victims' input token, then
each victim swaps on the state the front-run and the earlier victims left. An exact-input victim sells amount_in
and needs >= amount_out_min; an exact-output victim (victim_exact_output) buys amount_out_min exactly and pays the
least input for it, needing that input <= amount_in (amountInMax). A victim whose limit fails reverts: the pool
stays as it found it. The first victim (the tx the bundle is built around) must execute; later ones may revert.
The back-run sells everything the front-run bought back into the input token.
Gross profit (input-token raw units) = back-run output − a; net = gross × wei per raw − gas × gas price, with gas =
2 swap transactions (V2: 2 × V2_SWAP_TX_GAS; V3: 2 × V3_SWAP_TX_BASE_GAS + V3_SWAP_TX_GAS_PER_TICK per initialized
tick the front- and back-run cross).

Largest front-run, V2, one victim (closed form). Reserves (x in, y out), kept fraction γ, victim input v, minimum m.
After a front-run a the pool holds x + a and y − γ·a·y/(x + γ·a) = x·y/(x + γ·a), so the victim receives
γ·v·x·y / ((x + γ·a)·(x + a + γ·v)), and "receives >= m" is
    (x + γ·a)·(x + a + γ·v) <= C,   C = γ·v·x·y / m,
i.e. the quadratic  γ·a² + b·a + c <= 0  with  b = (1 + γ)·x + γ²·v,  c = x·(x + γ·v) − C.
At a = 0 this is the victim's own (unsandwiched) constraint; when it holds (c <= 0) the roots have opposite signs
and the feasible front-runs are [0, a_max] with
    a_max = (−b + √(b² − 4·γ·c)) / (2·γ) = −2·c / (b + √(b² − 4·γ·c))     (the second form: no cancellation).

An exact-output victim (amountInMax M, amountOut w) after front-run a pays w·X/(γ·(Y − w)) with X = x + a,
Y = x·y/(x + γ·a); "pays <= M" expands to the same quadratic with (v, m) = (M, w): in real arithmetic "the least
input for w is <= M" is "M buys >= w" (V3 likewise, the exact-output swap being the exact-input one's inverse).

Largest front-run, V3 or several victims: every victim's output is non-increasing in a (a larger front-run leaves
each later same-direction swap a worse price, and an exact-output victim pays more), so the set where every victim
executes is an interval [0, a_all]: bisection on "every victim executes", SANDWICH_BISECTIONS fixed steps in
[0, capital] (capital: config capital_eth in raw input-token units); the first victim's own bound a_first >= a_all
bounds the bundle (V2: closed form, V3: bisection). Beyond a_all a later victim reverts, which changes the profit
by a jump: P is searched on [0, a_all] (below), and a_first is compared as one more candidate.

Optimal front-run. The profit P(a) is not monotone on [0, a_max]: the front-run pays the fee twice and its own
price impact on the back-run grows with a, so for a victim that moves the price little P peaks inside (and
P'(0) < 0 when the victim cannot pay for two fees: no sandwich). P is unimodal on [0, a_hi], a_hi = min(a_all,
capital) (measured: tests/kernels/test_sandwich.py scans it); a golden-section search with GOLDEN_ITERATIONS fixed
steps finds its maximum, and the endpoint a_hi is compared too (the common case: P still rising at the slippage
bound). Work per thread is bounded, as the GPU wants.
"""
import math

from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from . import amm_v2, amm_v3, cycles
from .amm_v2 import v2_amount_out  # noqa: F401  (rebound per target)
from .amm_v3 import V3_LIMIT, V3_OK, v3_swap_exact_in, v3_swap_exact_out  # noqa: F401
from .cycles import find_state  # noqa: F401

SANDWICH_BISECTIONS = 64   # steps of the bisection for the largest front-run (V3, multi-victim): 2**-64 of capital
GOLDEN_ITERATIONS = 60     # golden-section steps for the profit maximum: 0.618**60 ≈ 3e-13 of the bracket
INV_PHI = 0.6180339887498949


def sandwich_max_frontrun_v2(reserve_in, reserve_out, gamma, victim_in, victim_min_out):
    """Largest front-run a (raw input-token units) after which the victim still gets victim_min_out on a V2 pool
    (closed form, see the module docstring); −1 when the victim fails even unsandwiched."""
    x = reserve_in
    if victim_min_out <= 0.0:
        return 1e300  # no slippage bound: any front-run (capital decides)
    big_c = gamma * victim_in * x * reserve_out / victim_min_out
    b = (1.0 + gamma) * x + gamma * gamma * victim_in
    c = x * (x + gamma * victim_in) - big_c
    if c > 0.0:
        return -1.0
    return -2.0 * c / (b + math.sqrt(b * b - 4.0 * gamma * c))


def pool_swap(amount_in, zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
              tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """One exact-input swap on a V2 (reserves) or V3 (price, liquidity, tick, tick slice [lo, hi)) pool state.
    Returns (amount out, reserve0, reserve1, sqrt price, liquidity, tick after, ticks crossed, ok); ok is False
    when a V3 swap stops with input left (too few ticks, or the price range's end)."""
    if amount_in <= 0.0:
        return 0.0, reserve0, reserve1, sqrt_price, liquidity, tick, 0, True
    if is_v3:
        out, s, liq, t, crossed, status = v3_swap_exact_in(
            amount_in, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
            tick_liquidity_net, lo, hi, max_steps)
        return out, reserve0, reserve1, s, liq, t, crossed, status == V3_OK
    if zero_for_one:
        out = v2_amount_out(amount_in, reserve0, reserve1, gamma)
        return out, reserve0 + amount_in, reserve1 - out, sqrt_price, liquidity, tick, 0, True
    out = v2_amount_out(amount_in, reserve1, reserve0, gamma)
    return out, reserve0 - out, reserve1 + amount_in, sqrt_price, liquidity, tick, 0, True


def victim_swap(amount_in, min_out, exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price,
                liquidity, tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """A victim's swap with its limit. Exact input: sells amount_in, needs >= min_out. Exact output
    (exact_output): buys min_out (amountOut) for the least input (V2 getAmountIn closed form, V3
    v3_swap_exact_out), needs that input <= amount_in (amountInMax). Returns (executed, reserve0, reserve1, sqrt
    price, liquidity, tick, ok): a victim whose limit fails reverts (the state returned unchanged); ok is False
    when a V3 walk stops early (the screen cannot say)."""
    if exact_output:
        if min_out <= 0.0:
            return True, reserve0, reserve1, sqrt_price, liquidity, tick, True
        if is_v3:
            paid, s, liq, t, c, status = v3_swap_exact_out(
                min_out, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                tick_liquidity_net, lo, hi, max_steps)
            if status == V3_LIMIT:  # the pool cannot deliver the output at any price: the swap reverts
                return False, reserve0, reserve1, sqrt_price, liquidity, tick, True
            if status != V3_OK:
                return False, reserve0, reserve1, sqrt_price, liquidity, tick, False
            if paid > amount_in:
                return False, reserve0, reserve1, sqrt_price, liquidity, tick, True
            return True, reserve0, reserve1, s, liq, t, True
        r_in = reserve0 if zero_for_one else reserve1
        r_out = reserve1 if zero_for_one else reserve0
        if min_out >= r_out:
            return False, reserve0, reserve1, sqrt_price, liquidity, tick, True
        paid = min_out * r_in / ((r_out - min_out) * gamma)
        if paid > amount_in:
            return False, reserve0, reserve1, sqrt_price, liquidity, tick, True
        if zero_for_one:
            return True, reserve0 + paid, reserve1 - min_out, sqrt_price, liquidity, tick, True
        return True, reserve0 - min_out, reserve1 + paid, sqrt_price, liquidity, tick, True
    got, r0, r1, s, liq, t, c, ok = pool_swap(amount_in, zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price,
                                              liquidity, tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo,
                                              hi, max_steps)
    if not ok:
        return False, reserve0, reserve1, sqrt_price, liquidity, tick, False
    if got < min_out:
        return False, reserve0, reserve1, sqrt_price, liquidity, tick, True
    return True, r0, r1, s, liq, t, True


def sandwich_eval(a, start, count, scen_victims, victim_amount_in, victim_min_out, victim_exact_output,
                  zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                  tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """Run the bundle with front-run a: (gross profit raw, the first victim executed, every victim executed, ticks
    crossed by the front- and back-run, the bundle went through). Victims are scen_victims[start : start + count];
    a later victim whose limit fails reverts and leaves the pool as it found it."""
    r0 = reserve0
    r1 = reserve1
    s = sqrt_price
    liq = liquidity
    t = tick
    bought = 0.0
    crossed = 0
    if a > 0.0:
        bought, r0, r1, s, liq, t, c, ok = pool_swap(a, zero_for_one, is_v3, gamma, r0, r1, s, liq, t, tick_index,
                                                     tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if not ok:
            return 0.0, False, False, 0, False
        crossed += c
    first = True
    every = True
    for j in range(count):
        v = scen_victims[start + j]
        done, r0, r1, s, liq, t, ok = victim_swap(victim_amount_in[v], victim_min_out[v], victim_exact_output[v],
                                                  zero_for_one, is_v3, gamma, r0, r1, s, liq, t, tick_index,
                                                  tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if not ok:
            return 0.0, False, False, crossed, False
        if not done:
            every = False
            if j == 0:
                first = False
    if a <= 0.0:
        return 0.0, first, every, crossed, True
    back, r0, r1, s, liq, t, c, ok = pool_swap(bought, not zero_for_one, is_v3, gamma, r0, r1, s, liq, t,
                                               tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    crossed += c
    return back - a, first, every, crossed, ok


def sandwich_bound(count, start, scen_victims, victim_amount_in, victim_min_out, victim_exact_output, zero_for_one,
                   is_v3, gamma, capital, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                   tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """Largest front-run in [0, capital] after which the first `count` victims all execute (none reverts), by
    bisection (each victim's slack falls as the front-run grows); −1 when they do not all execute even at 0."""
    g, first, every, c, ok = sandwich_eval(0.0, start, count, scen_victims, victim_amount_in, victim_min_out,
                                           victim_exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                           sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                           tick_liquidity_net, lo, hi, max_steps)
    if not (every and ok):
        return -1.0
    g, first, every, c, ok = sandwich_eval(capital, start, count, scen_victims, victim_amount_in, victim_min_out,
                                           victim_exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                           sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                           tick_liquidity_net, lo, hi, max_steps)
    if every and ok:
        return capital
    a_lo = 0.0
    a_hi = capital
    for _ in range(SANDWICH_BISECTIONS):
        mid = 0.5 * (a_lo + a_hi)
        g, first, every, c, ok = sandwich_eval(mid, start, count, scen_victims, victim_amount_in, victim_min_out,
                                               victim_exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                               sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                               tick_liquidity_net, lo, hi, max_steps)
        if every and ok:
            a_lo = mid
        else:
            a_hi = mid
    return a_lo


def sandwich_screen(start, count, scen_victims, victim_amount_in, victim_min_out, victim_exact_output, zero_for_one,
                    is_v3, gamma, capital, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                    tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """(front-run, gross profit raw, ticks crossed, largest front-run the first victim allows) of one scenario;
    front-run 0 when no front-run is feasible or none is profitable. The candidates (the exact re-pricing tries
    the same ones): the profit maximum on [0, a_all] (a_all: every victim executes), a_all, and a_first (the first
    victim's bound: later victims may revert there)."""
    v = scen_victims[start]
    if not is_v3:  # exact output: "pays getAmountIn(amountOut) <= amountInMax" is "getAmountOut(amountInMax) >=
        # amountOut" in real arithmetic, the same quadratic with (v, m) = (amountInMax, amountOut)
        if zero_for_one:
            a_first = sandwich_max_frontrun_v2(reserve0, reserve1, gamma, victim_amount_in[v], victim_min_out[v])
        else:
            a_first = sandwich_max_frontrun_v2(reserve1, reserve0, gamma, victim_amount_in[v], victim_min_out[v])
    else:
        a_first = sandwich_bound(1, start, scen_victims, victim_amount_in, victim_min_out, victim_exact_output,
                                 zero_for_one, is_v3, gamma, capital, reserve0, reserve1, sqrt_price, liquidity,
                                 tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    if a_first <= 0.0:
        return 0.0, 0.0, 0, 0.0
    a_all = a_first
    if count > 1:
        a_all = sandwich_bound(count, start, scen_victims, victim_amount_in, victim_min_out, victim_exact_output,
                               zero_for_one, is_v3, gamma, capital, reserve0, reserve1, sqrt_price, liquidity, tick,
                               tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if a_all > a_first:
            a_all = a_first
    bound = a_all
    if capital < bound:
        bound = capital
    best_a = 0.0
    best_p = 0.0
    best_c = 0
    if bound > 0.0:
        # golden section for max P on [0, bound] (every victim executes there); the endpoint is checked after
        x_lo = 0.0
        x_hi = bound
        x1 = x_hi - INV_PHI * (x_hi - x_lo)
        x2 = x_lo + INV_PHI * (x_hi - x_lo)
        p1, f1, e1, c1, ok1 = sandwich_eval(x1, start, count, scen_victims, victim_amount_in, victim_min_out,
                                            victim_exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                            sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                            tick_liquidity_net, lo, hi, max_steps)
        p2, f2, e2, c2, ok2 = sandwich_eval(x2, start, count, scen_victims, victim_amount_in, victim_min_out,
                                            victim_exact_output, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                            sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                            tick_liquidity_net, lo, hi, max_steps)
        for _ in range(GOLDEN_ITERATIONS):
            if p1 >= p2:
                x_hi = x2
                x2 = x1
                p2 = p1
                x1 = x_hi - INV_PHI * (x_hi - x_lo)
                p1, f1, e1, c1, ok1 = sandwich_eval(x1, start, count, scen_victims, victim_amount_in,
                                                    victim_min_out, victim_exact_output, zero_for_one, is_v3, gamma,
                                                    reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                                                    tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
            else:
                x_lo = x1
                x1 = x2
                p1 = p2
                x2 = x_lo + INV_PHI * (x_hi - x_lo)
                p2, f2, e2, c2, ok2 = sandwich_eval(x2, start, count, scen_victims, victim_amount_in,
                                                    victim_min_out, victim_exact_output, zero_for_one, is_v3, gamma,
                                                    reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                                                    tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        best_a = 0.5 * (x_lo + x_hi)
        best_p, f, e, best_c, ok = sandwich_eval(best_a, start, count, scen_victims, victim_amount_in,
                                                 victim_min_out, victim_exact_output, zero_for_one, is_v3, gamma,
                                                 reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                                                 tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if not ok:
            best_p = 0.0
        p_end, f_end, e_end, c_end, ok_end = sandwich_eval(bound, start, count, scen_victims, victim_amount_in,
                                                           victim_min_out, victim_exact_output, zero_for_one, is_v3,
                                                           gamma, reserve0, reserve1, sqrt_price, liquidity, tick,
                                                           tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi,
                                                           max_steps)
        if ok_end and p_end >= best_p:
            best_a = bound
            best_p = p_end
            best_c = c_end
    top = a_first
    if capital < top:
        top = capital
    # the points searched are <= a_first by construction: their first-victim flag is not re-checked (at the
    # closed-form bound itself float rounding may flip it)
    if top > bound:  # the first victim's bound: later victims revert there
        p_top, f_top, e_top, c_top, ok_top = sandwich_eval(top, start, count, scen_victims, victim_amount_in,
                                                           victim_min_out, victim_exact_output, zero_for_one, is_v3,
                                                           gamma, reserve0, reserve1, sqrt_price, liquidity, tick,
                                                           tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi,
                                                           max_steps)
        if ok_top and p_top > best_p:
            best_a = top
            best_p = p_top
            best_c = c_top
    if best_p <= 0.0:
        return 0.0, 0.0, 0, a_first
    return best_a, best_p, best_c, a_first


def screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                    scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                    victim_exact_output, pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1,
                    log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                    tick_sqrt_price, tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in,
                    out_max_frontrun, out_gross_raw, out_net_wei, out_crossed):
    """Screen scenario i: outputs its front-run, the largest front-run its first victim allows, gross profit (raw
    input-token units), net profit in wei and ticks crossed; a pool without state at the point screens as nothing.
    victim_exact_output[v]: victim v buys victim_min_out[v] exactly, paying at most victim_amount_in[v]."""
    pool = scen_pool[i]
    out_amount_in[i] = 0.0
    out_max_frontrun[i] = 0.0
    out_gross_raw[i] = 0.0
    out_net_wei[i] = 0.0
    out_crossed[i] = 0
    k = find_state(log_offsets, log_key, pool, scen_key[i])
    if k < 0:
        return
    is_v3 = pool_is_v3[pool]
    lo = 0
    hi = 0
    s = 0.0
    liq = 0.0
    t = 0
    if is_v3:  # the V3 columns of the log are empty when the batch has no V3 entry: read them only here
        v = log_tick_version[k]
        s = log_sqrt_price[k]
        liq = log_liquidity[k]
        t = log_tick[k]
        if v < 0 or liq <= 0.0 or s <= 0.0:
            return
        lo = tick_offsets[v]
        hi = tick_offsets[v + 1]
    a, gross, crossed, a_max = sandwich_screen(
        scen_start[i], scen_count[i], scen_victims, victim_amount_in, victim_min_out, victim_exact_output,
        scen_zero_for_one[i], is_v3, pool_gamma[pool], scen_capital[i], log_reserve0[k], log_reserve1[k], s, liq, t,
        tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    if is_v3:
        gas = 2.0 * v3_tx_gas + v3_tick_gas * crossed
    else:
        gas = 2.0 * v2_tx_gas
    out_amount_in[i] = a
    out_max_frontrun[i] = a_max
    out_gross_raw[i] = gross
    out_crossed[i] = crossed
    out_net_wei[i] = gross * scen_wei_per_raw[i] - gas * scen_gas_price[i]


def screen_sandwich_cpu(scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                        victim_exact_output, pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1,
                        log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                        tick_sqrt_price, tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas,
                        out_amount_in, out_max_frontrun, out_gross_raw, out_net_wei, out_crossed):
    """CPU driver: a parallel loop over scenarios."""
    for i in prange(scen_pool.shape[0]):
        screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                        victim_exact_output, pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1,
                        log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                        tick_sqrt_price, tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas,
                        out_amount_in, out_max_frontrun, out_gross_raw, out_net_wei, out_crossed)


def screen_sandwich_cuda(scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                         scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                         victim_exact_output, pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0,
                         log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                         tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas,
                         out_amount_in, out_max_frontrun, out_gross_raw, out_net_wei, out_crossed):
    """CUDA driver: one thread per scenario (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < scen_pool.shape[0]:
        screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                        victim_exact_output, pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1,
                        log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                        tick_sqrt_price, tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas,
                        out_amount_in, out_max_frontrun, out_gross_raw, out_net_wei, out_crossed)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_range_end,
    amm_v3.v3_cross, amm_v3.v3_swap_exact_in, amm_v3.v3_swap_exact_out, cycles.find_state, sandwich_max_frontrun_v2, pool_swap, victim_swap, sandwich_eval,
    sandwich_bound, sandwich_screen, screen_sandwich,
)
DRIVERS = ((screen_sandwich_cpu, screen_sandwich_cuda),)
