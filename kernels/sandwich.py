"""Sandwich screening (V2 and V3 pools), float64: one thread per scenario = one victim, or one multi-victim group
(several pending swaps on one pool in one block, same direction, in block order). Exact re-pricing:
gpubt/strategies/sandwich.py.

Bundle model. The attacker's bundle [front-run, victim_1, ..., victim_k, back-run] executes on the pool's state
just before the first victim (key (o << 20) + tx_1 − 1): the front-run sells `a` of the victims' input token, each
victim swaps its amount_in and must still receive >= its amount_out_min given the front-run and the earlier victims'
executions, and the back-run sells everything the front-run bought back into the input token.
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

Largest front-run, V3 or several victims: every victim's output is non-increasing in a (a larger front-run leaves
each later same-direction swap a worse price), so the feasible set is an interval [0, a_max]: bisection on
"every victim gets its minimum", SANDWICH_BISECTIONS fixed steps in [0, capital] (capital: config capital_eth in
raw input-token units).

Optimal front-run. The profit P(a) is not monotone on [0, a_max]: the front-run pays the fee twice and its own
price impact on the back-run grows with a, so for a victim that moves the price little P peaks inside (and
P'(0) < 0 when the victim cannot pay for two fees: no sandwich). P is unimodal on [0, a_hi], a_hi = min(a_max,
capital) (measured: tests/kernels/test_sandwich.py scans it); a golden-section search with GOLDEN_ITERATIONS fixed
steps finds its maximum, and the endpoint a_hi is compared too (the common case: P still rising at the slippage
bound). Work per thread is bounded, as the GPU wants.
"""
import math

from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from . import amm_v2, amm_v3, cycles
from .amm_v2 import v2_amount_out  # noqa: F401  (rebound per target)
from .amm_v3 import V3_OK, v3_swap_exact_in  # noqa: F401
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


def sandwich_eval(a, start, count, scen_victims, victim_amount_in, victim_min_out, zero_for_one, is_v3, gamma,
                  reserve0, reserve1, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price, tick_liquidity_net,
                  lo, hi, max_steps):
    """Run the bundle with front-run a: (gross profit raw, every victim got its minimum, ticks crossed by the
    front- and back-run, the bundle went through). Victims are scen_victims[start : start + count]."""
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
            return 0.0, False, 0, False
        crossed += c
    feasible = True
    for j in range(count):
        v = scen_victims[start + j]
        got, r0, r1, s, liq, t, c, ok = pool_swap(victim_amount_in[v], zero_for_one, is_v3, gamma, r0, r1, s, liq,
                                                  t, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi,
                                                  max_steps)
        if not ok:
            return 0.0, False, crossed, False
        if got < victim_min_out[v]:
            feasible = False
    if a <= 0.0:
        return 0.0, feasible, crossed, True
    back, r0, r1, s, liq, t, c, ok = pool_swap(bought, not zero_for_one, is_v3, gamma, r0, r1, s, liq, t,
                                               tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    crossed += c
    return back - a, feasible, crossed, ok


def sandwich_screen(start, count, scen_victims, victim_amount_in, victim_min_out, zero_for_one, is_v3, gamma,
                    capital, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                    tick_liquidity_net, lo, hi, max_steps):
    """(front-run, gross profit raw, ticks crossed, largest feasible front-run) of one scenario; front-run 0 when
    no front-run is feasible or none is profitable."""
    if count == 1 and not is_v3:
        v = scen_victims[start]
        if zero_for_one:
            a_max = sandwich_max_frontrun_v2(reserve0, reserve1, gamma, victim_amount_in[v], victim_min_out[v])
        else:
            a_max = sandwich_max_frontrun_v2(reserve1, reserve0, gamma, victim_amount_in[v], victim_min_out[v])
        if a_max <= 0.0:
            return 0.0, 0.0, 0, 0.0
    else:
        g, feasible, c, ok = sandwich_eval(0.0, start, count, scen_victims, victim_amount_in, victim_min_out,
                                           zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity,
                                           tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if not (feasible and ok):
            return 0.0, 0.0, 0, 0.0
        g, feasible, c, ok = sandwich_eval(capital, start, count, scen_victims, victim_amount_in, victim_min_out,
                                           zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity,
                                           tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        if feasible and ok:
            a_max = capital
        else:
            a_lo = 0.0
            a_hi = capital
            for _ in range(SANDWICH_BISECTIONS):
                mid = 0.5 * (a_lo + a_hi)
                g, feasible, c, ok = sandwich_eval(mid, start, count, scen_victims, victim_amount_in,
                                                   victim_min_out, zero_for_one, is_v3, gamma, reserve0, reserve1,
                                                   sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                                                   tick_liquidity_net, lo, hi, max_steps)
                if feasible and ok:
                    a_lo = mid
                else:
                    a_hi = mid
            a_max = a_lo
        if a_max <= 0.0:
            return 0.0, 0.0, 0, 0.0
    bound = a_max
    if capital < bound:
        bound = capital
    # golden section for max P on [0, bound]; the endpoint is checked after
    x_lo = 0.0
    x_hi = bound
    x1 = x_hi - INV_PHI * (x_hi - x_lo)
    x2 = x_lo + INV_PHI * (x_hi - x_lo)
    p1, f1, c1, ok1 = sandwich_eval(x1, start, count, scen_victims, victim_amount_in, victim_min_out, zero_for_one,
                                    is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                                    tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    p2, f2, c2, ok2 = sandwich_eval(x2, start, count, scen_victims, victim_amount_in, victim_min_out, zero_for_one,
                                    is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity, tick, tick_index,
                                    tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    for _ in range(GOLDEN_ITERATIONS):
        if p1 >= p2:
            x_hi = x2
            x2 = x1
            p2 = p1
            x1 = x_hi - INV_PHI * (x_hi - x_lo)
            p1, f1, c1, ok1 = sandwich_eval(x1, start, count, scen_victims, victim_amount_in, victim_min_out,
                                            zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity,
                                            tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
        else:
            x_lo = x1
            x1 = x2
            p1 = p2
            x2 = x_lo + INV_PHI * (x_hi - x_lo)
            p2, f2, c2, ok2 = sandwich_eval(x2, start, count, scen_victims, victim_amount_in, victim_min_out,
                                            zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity,
                                            tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    best_a = 0.5 * (x_lo + x_hi)
    best_p, f, best_c, ok = sandwich_eval(best_a, start, count, scen_victims, victim_amount_in, victim_min_out,
                                          zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price, liquidity,
                                          tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
    if not ok:
        best_p = 0.0
    p_end, f_end, c_end, ok_end = sandwich_eval(bound, start, count, scen_victims, victim_amount_in, victim_min_out,
                                                zero_for_one, is_v3, gamma, reserve0, reserve1, sqrt_price,
                                                liquidity, tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo,
                                                hi, max_steps)
    if ok_end and p_end >= best_p:
        best_a = bound
        best_p = p_end
        best_c = c_end
    if best_p <= 0.0:
        return 0.0, 0.0, 0, a_max
    return best_a, best_p, best_c, a_max


def screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                    scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out, pool_is_v3,
                    pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                    log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net,
                    max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in, out_max_frontrun, out_gross_raw,
                    out_net_wei, out_crossed):
    """Screen scenario i: outputs its front-run, largest feasible front-run, gross profit (raw input-token units),
    net profit in wei and ticks crossed; a pool without state at the point screens as nothing."""
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
        scen_start[i], scen_count[i], scen_victims, victim_amount_in, victim_min_out, scen_zero_for_one[i], is_v3,
        pool_gamma[pool], scen_capital[i], log_reserve0[k], log_reserve1[k], s, liq, t, tick_index,
        tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps)
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
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out, pool_is_v3,
                        pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                        log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net,
                        max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in, out_max_frontrun,
                        out_gross_raw, out_net_wei, out_crossed):
    """CPU driver: a parallel loop over scenarios."""
    for i in prange(scen_pool.shape[0]):
        screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out, pool_is_v3,
                        pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                        log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net,
                        max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in, out_max_frontrun,
                        out_gross_raw, out_net_wei, out_crossed)


def screen_sandwich_cuda(scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                         scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out,
                         pool_is_v3, pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                         log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                         tick_liquidity_net, max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in,
                         out_max_frontrun, out_gross_raw, out_net_wei, out_crossed):
    """CUDA driver: one thread per scenario (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < scen_pool.shape[0]:
        screen_sandwich(i, scen_pool, scen_key, scen_zero_for_one, scen_start, scen_count, scen_capital,
                        scen_wei_per_raw, scen_gas_price, scen_victims, victim_amount_in, victim_min_out, pool_is_v3,
                        pool_gamma, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                        log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net,
                        max_steps, v2_tx_gas, v3_tx_gas, v3_tick_gas, out_amount_in, out_max_frontrun,
                        out_gross_raw, out_net_wei, out_crossed)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_swap_exact_in,
    cycles.find_state, sandwich_max_frontrun_v2, pool_swap, sandwich_eval, sandwich_screen, screen_sandwich,
)
DRIVERS = ((screen_sandwich_cpu, screen_sandwich_cuda),)
