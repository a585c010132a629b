"""JIT-liquidity screening (V3 pools), float64: one thread per victim, a small grid of positions per thread.
Exact re-pricing: gpubt/strategies/jit.py.

Scenario. Just before a victim's swap on a V3 pool the attacker mints liquidity ΔL on [tick_lower, tick_upper)
around the current tick; the victim swaps through the pool *with* that liquidity (so it gets a better price: the
victim's execution is re-run, not taken from the log); then the attacker burns ΔL and collects its fees.

Range grid: base = floor(tick / spacing)·spacing; for k in range_spacings, [base − (k−1)·spacing, base + k·spacing)
(k = 1: the current spacing). Size grid: ΔL such that the minted tokens are worth fraction f of the capital
(capital_wei · f / value of the tokens one unit of liquidity needs at the pre-swap price, valued at the tokens'
reference prices).

Profit (raw units of the victim's input token, where the fees accrue):
    fees  = Σ over swap steps inside the range of (step input incl. fee) · fee · ΔL / (L + ΔL)   (pro rata)
    Δin   = burned_in − minted_in,  Δout = burned_out − minted_out  (the position's inventory change)
    gross = fees + Δin + Δout · (price of the output token in input-token units after the swap, the pool's s'²)
    net_wei = gross · wei per raw of the input token − (mint gas + burn gas) · gas price.
Δin + Δout·p' is the position's loss against holding (it sold output token along the victim's price move): the
"inventory cost" of the position.
"""
import math

from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from . import amm_v3, cycles
from .amm_v3 import MAX_SQRT_PRICE, MAX_TICK, MIN_SQRT_PRICE, MIN_TICK, V3_LIMIT, V3_MAX_STEPS, V3_OK  # noqa: F401
from .amm_v3 import v3_next_tick_position  # noqa: F401  (rebound per target)
from .cycles import find_state  # noqa: F401

LOG_SQRT_TICK = 0.5 * math.log(1.0001)


def tick_to_sqrt_price(tick):
    """sqrt(1.0001^tick) as a float (TickMath's ratio / 2**96 up to float rounding)."""
    return math.exp(tick * LOG_SQRT_TICK)


def position_amounts(position_liquidity, sqrt_price, sqrt_lower, sqrt_upper):
    """(token0, token1) raw amounts held by liquidity ΔL on [s_lower, s_upper) at price s (SqrtPriceMath, float)."""
    s = sqrt_price
    if s <= sqrt_lower:
        return position_liquidity * (sqrt_upper - sqrt_lower) / (sqrt_lower * sqrt_upper), 0.0
    if s >= sqrt_upper:
        return 0.0, position_liquidity * (sqrt_upper - sqrt_lower)
    return position_liquidity * (sqrt_upper - s) / (s * sqrt_upper), position_liquidity * (s - sqrt_lower)


def v3_swap_with_position(amount_in, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                          tick_liquidity_net, lo, hi, max_steps, sqrt_lower, sqrt_upper, position_liquidity):
    """kernels/amm_v3.v3_swap_exact_in with an extra position ΔL on [sqrt_lower, sqrt_upper): its bounds are
    boundaries of the walk and it adds ΔL while the price is inside. Returns (amount out, sqrt price after,
    the position's fees in input-token raw units, ticks crossed, status)."""
    s = sqrt_price
    L = liquidity
    out = 0.0
    fees = 0.0
    crossed = 0
    if amount_in <= 0.0 or s <= 0.0:
        return 0.0, s, 0.0, 0, V3_OK
    remaining = amount_in * gamma
    fee_per_net = (1.0 - gamma) / gamma  # fee per unit of input net of fee
    pos = v3_next_tick_position(tick, zero_for_one, tick_index, lo, hi)
    while True:
        if zero_for_one:
            inside = sqrt_lower < s and s <= sqrt_upper
            if pos >= lo:
                s_tick = tick_sqrt_price[pos]
            else:
                s_tick = MIN_SQRT_PRICE
            s_bound = 0.0
            if inside:
                s_bound = sqrt_lower
            elif s > sqrt_upper:
                s_bound = sqrt_upper
            s_next = s_tick
            if s_bound > s_next:
                s_next = s_bound
        else:
            inside = sqrt_lower <= s and s < sqrt_upper
            if pos < hi:
                s_tick = tick_sqrt_price[pos]
            else:
                s_tick = MAX_SQRT_PRICE
            s_bound = 1e300
            if inside:
                s_bound = sqrt_upper
            elif s < sqrt_lower:
                s_bound = sqrt_lower
            s_next = s_tick
            if s_bound < s_next:
                s_next = s_bound
        l_eff = L
        share = 0.0
        if inside:
            l_eff = L + position_liquidity
            if l_eff > 0.0:
                share = position_liquidity / l_eff
        if zero_for_one:
            need = l_eff * (s - s_next) / (s * s_next)
            if remaining < need:
                d = l_eff + remaining * s
                out += l_eff * remaining * s * s / d
                fees += remaining * fee_per_net * share
                return out, l_eff * s / d, fees, crossed, V3_OK
            out += l_eff * (s - s_next)
        else:
            need = l_eff * (s_next - s)
            if remaining < need:
                s_new = s + remaining / l_eff
                out += remaining / (s * s_new)
                fees += remaining * fee_per_net * share
                return out, s_new, fees, crossed, V3_OK
            out += l_eff * (s_next - s) / (s * s_next)
        remaining -= need
        fees += need * fee_per_net * share
        s = s_next
        if s_next == s_tick:  # an initialized tick (possibly also a bound of the position)
            if zero_for_one:
                if pos < lo:
                    return out, s, fees, crossed, V3_LIMIT
                if crossed >= max_steps:
                    return out, s, fees, crossed, V3_MAX_STEPS
                L -= tick_liquidity_net[pos]
                pos -= 1
            else:
                if pos >= hi:
                    return out, s, fees, crossed, V3_LIMIT
                if crossed >= max_steps:
                    return out, s, fees, crossed, V3_MAX_STEPS
                L += tick_liquidity_net[pos]
                pos += 1
            crossed += 1
            if L < 0.0:
                L = 0.0
        if remaining <= 0.0:
            return out, s, fees, crossed, V3_OK


def jit_eval(victim_in, zero_for_one, gamma, tick_lower, tick_upper, position_liquidity, sqrt_price, liquidity,
             tick, tick_index, tick_sqrt_price, tick_liquidity_net, lo, hi, max_steps):
    """(gross profit in raw input-token units, fees, victim's output, ok) of one JIT position around one swap."""
    s_lower = tick_to_sqrt_price(tick_lower)
    s_upper = tick_to_sqrt_price(tick_upper)
    m0, m1 = position_amounts(position_liquidity, sqrt_price, s_lower, s_upper)
    out, s_after, fees, crossed, status = v3_swap_with_position(
        victim_in, zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price, tick_liquidity_net,
        lo, hi, max_steps, s_lower, s_upper, position_liquidity)
    if status != V3_OK:
        return 0.0, 0.0, out, False
    b0, b1 = position_amounts(position_liquidity, s_after, s_lower, s_upper)
    p_after = s_after * s_after  # token1 per token0
    if zero_for_one:  # input token0: value token1 at 1/p'
        gross = fees + (b0 - m0) + (b1 - m1) / p_after
    else:
        gross = fees + (b1 - m1) + (b0 - m0) * p_after
    return gross, fees, out, True


def screen_jit(i, victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_min_out, victim_capital_wei,
               victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma, pool_tick_spacing,
               range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price, log_liquidity, log_tick,
               log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, jit_gas,
               out_tick_lower, out_tick_upper, out_liquidity, out_fees_raw, out_gross_raw, out_net_wei):
    """Screen victim i over the (range × size) grid; writes the best position (ticks, ΔL), its fees, gross profit
    (raw input-token units) and net profit in wei. victim_w0/w1: wei per raw unit of the pool's token0/token1."""
    out_tick_lower[i] = 0
    out_tick_upper[i] = 0
    out_liquidity[i] = 0.0
    out_fees_raw[i] = 0.0
    out_gross_raw[i] = 0.0
    out_net_wei[i] = 0.0
    pool = victim_pool[i]
    k = find_state(log_offsets, log_key, pool, victim_key[i])
    if k < 0:
        return
    v = log_tick_version[k]
    s = log_sqrt_price[k]
    if v < 0 or s <= 0.0:
        return
    lo = tick_offsets[v]
    hi = tick_offsets[v + 1]
    tick = log_tick[k]
    spacing = pool_tick_spacing[pool]
    base = (tick // spacing) * spacing
    zfo = victim_zero_for_one[i]
    best_net = -1e300
    best_lower = 0
    best_upper = 0
    best_liq = 0.0
    best_fees = 0.0
    best_gross = 0.0
    for a in range(range_spacings.shape[0]):
        width = range_spacings[a]
        t_lower = base - (width - 1) * spacing
        t_upper = base + width * spacing
        if t_lower < MIN_TICK or t_upper > MAX_TICK:
            continue
        s_lower = tick_to_sqrt_price(t_lower)
        s_upper = tick_to_sqrt_price(t_upper)
        u0, u1 = position_amounts(1.0, s, s_lower, s_upper)
        unit_wei = u0 * victim_w0[i] + u1 * victim_w1[i]
        if not unit_wei > 0.0:
            continue
        for b in range(size_fractions.shape[0]):
            dl = size_fractions[b] * victim_capital_wei[i] / unit_wei
            gross, fees, got, ok = jit_eval(victim_amount_in[i], zfo, pool_gamma[pool], t_lower, t_upper, dl, s,
                                            log_liquidity[k], tick, tick_index, tick_sqrt_price, tick_liquidity_net,
                                            lo, hi, max_steps)
            if not ok:
                continue
            net = gross * victim_wei_per_raw[i] - jit_gas * victim_gas_price[i]
            if net > best_net:
                best_net = net
                best_lower = t_lower
                best_upper = t_upper
                best_liq = dl
                best_fees = fees
                best_gross = gross
    if best_liq > 0.0:
        out_tick_lower[i] = best_lower
        out_tick_upper[i] = best_upper
        out_liquidity[i] = best_liq
        out_fees_raw[i] = best_fees
        out_gross_raw[i] = best_gross
        out_net_wei[i] = best_net


def screen_jit_cpu(victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_min_out,
                   victim_capital_wei, victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma,
                   pool_tick_spacing, range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price,
                   log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                   tick_liquidity_net, max_steps, jit_gas, out_tick_lower, out_tick_upper, out_liquidity,
                   out_fees_raw, out_gross_raw, out_net_wei):
    """CPU driver: a parallel loop over victims."""
    for i in prange(victim_pool.shape[0]):
        screen_jit(i, victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_min_out,
                   victim_capital_wei, victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma,
                   pool_tick_spacing, range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price,
                   log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                   tick_liquidity_net, max_steps, jit_gas, out_tick_lower, out_tick_upper, out_liquidity,
                   out_fees_raw, out_gross_raw, out_net_wei)


def screen_jit_cuda(victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_min_out,
                    victim_capital_wei, victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma,
                    pool_tick_spacing, range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price,
                    log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                    tick_liquidity_net, max_steps, jit_gas, out_tick_lower, out_tick_upper, out_liquidity,
                    out_fees_raw, out_gross_raw, out_net_wei):
    """CUDA driver: one thread per victim (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < victim_pool.shape[0]:
        screen_jit(i, victim_pool, victim_key, victim_zero_for_one, victim_amount_in, victim_min_out,
                   victim_capital_wei, victim_wei_per_raw, victim_w0, victim_w1, victim_gas_price, pool_gamma,
                   pool_tick_spacing, range_spacings, size_fractions, log_offsets, log_key, log_sqrt_price,
                   log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                   tick_liquidity_net, max_steps, jit_gas, out_tick_lower, out_tick_upper, out_liquidity,
                   out_fees_raw, out_gross_raw, out_net_wei)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v3.v3_next_tick_position, cycles.find_state, tick_to_sqrt_price, position_amounts, v3_swap_with_position,
    jit_eval, screen_jit,
)
DRIVERS = ((screen_jit_cpu, screen_jit_cuda),)
