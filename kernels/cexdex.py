"""CEX-DEX (and cross-domain) arbitrage screening: every (pool × evaluation point) pair of a batch, in float64.

The reference (CEX) prices P0, P1 (USD per raw unit of the pool's tokens) give the value of one raw unit of the
token received in units of the token paid; the hedge keeps a fraction `keep` = 1 − (CEX fee + bridge fee) of
what it sells, so with q = keep · P_out / P_in the trade "pay x on the DEX, sell the output on the CEX" earns
q · out(x) − x (input-token units). It is profitable iff the pool's marginal rate at x = 0 is above 1/q, i.e. the
pool's price is outside the band [γ·keep·p_ref, p_ref/(γ·keep)] (p_ref = P0/P1, raw token1 per raw token0,
γ = 1 − pool fee), and the optimal input moves the pool's marginal rate to exactly 1/q:

- V2 (closed form): d out/dx = γ·r_in·r_out/(r_in + γx)² = 1/q  ⇒  x* = (√(γ·r_in·r_out·q) − r_in)/γ;
- V3: the pool's marginal rate is γ·s² selling token0 (γ/s² selling token1), so the trade moves the sqrt price
  to the target s* = 1/√(γq) (resp. √(γq)); the input is summed range by range, crossing initialized ticks,
  each range in closed form (L·(s − s')/(s·s') of token0, L·(s' − s) of token1, then /γ for the fee). The target
  is known, so this walk is exact (no search); it stops after `max_steps` crossings (a smaller, still profitable
  trade: the screen then undervalues).

Profit is marked out on the reference `markout` blocks later (`mark_usd`: the hedge executes there):
gross_usd = out · M_out · keep − x · M_in − bridge_cost_usd; net_wei = gross_usd · wei_per_usd − gas · gas_price,
with gas = gas_v2, or gas_v3 + gas_per_tick · ticks crossed. The host re-prices the DEX leg exactly.
"""
import math

from numba import prange

from . import amm_v2, amm_v3, cycles
from .amm_v2 import v2_amount_out
from .amm_v3 import (
    MAX_SQRT_PRICE,
    MIN_SQRT_PRICE,
    V3_LIMIT,
    V3_MAX_STEPS,
    V3_OK,
    v3_next_tick_position,
)
from .cycles import find_state


def v2_input_to_rate(reserve_in, reserve_out, gamma, q):
    """Input x maximizing q·out(x) − x on a V2 pool: (√(γ·r_in·r_out·q) − r_in)/γ; 0 when γ·r_out·q <= r_in."""
    if gamma * reserve_out * q <= reserve_in:
        return 0.0
    # √(γq·r_in)·√r_out: the product r_in·r_out of two 1e30 reserves stays far from overflow either way
    return (math.sqrt(gamma * q * reserve_in) * math.sqrt(reserve_out) - reserve_in) / gamma


def v3_input_to_price(zero_for_one, gamma, sqrt_price, liquidity, tick, tick_index, tick_sqrt_price,
                      tick_liquidity_net, lo, hi, target_sqrt_price, max_steps):
    """Exact-input swap that moves the sqrt price to `target_sqrt_price` (below the price when selling token0,
    above when selling token1): (amount in incl. fee, amount out, initialized ticks crossed, sqrt price after,
    status V3_OK / V3_MAX_STEPS / V3_LIMIT: stopped short of the target)."""
    s = sqrt_price
    L = liquidity
    net_in = 0.0
    out = 0.0
    crossed = 0
    pos = v3_next_tick_position(tick, zero_for_one, tick_index, lo, hi)
    while True:
        if zero_for_one:
            if pos >= lo:
                s_next = tick_sqrt_price[pos]
            else:
                s_next = MIN_SQRT_PRICE
            stop = s_next
            if target_sqrt_price > s_next:
                stop = target_sqrt_price
            if L > 0.0 and stop < s:
                net_in += L * (s - stop) / (s * stop)
                out += L * (s - stop)
            s = min(s, stop)
            if target_sqrt_price >= s_next:
                return net_in / gamma, out, crossed, s, V3_OK
            if pos < lo:
                return net_in / gamma, out, crossed, s, V3_LIMIT
            if crossed >= max_steps:
                return net_in / gamma, out, crossed, s, V3_MAX_STEPS
            L -= tick_liquidity_net[pos]
            pos -= 1
        else:
            if pos < hi:
                s_next = tick_sqrt_price[pos]
            else:
                s_next = MAX_SQRT_PRICE
            stop = s_next
            if target_sqrt_price < s_next:
                stop = target_sqrt_price
            if L > 0.0 and stop > s:
                net_in += L * (stop - s)
                out += L * (stop - s) / (s * stop)
            s = max(s, stop)
            if target_sqrt_price <= s_next:
                return net_in / gamma, out, crossed, s, V3_OK
            if pos >= hi:
                return net_in / gamma, out, crossed, s, V3_LIMIT
            if crossed >= max_steps:
                return net_in / gamma, out, crossed, s, V3_MAX_STEPS
            L += tick_liquidity_net[pos]
            pos += 1
        crossed += 1
        if L < 0.0:  # float residue of an exactly-zero liquidity
            L = 0.0


def cexdex_trade(pool, i, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_reserve0, log_reserve1,
                 log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                 tick_liquidity_net, max_steps, price0, price1, keep):
    """The optimal DEX leg against reference prices price0 / price1 (USD per raw unit) at log entry i:
    (zero_for_one, amount in, amount out, ticks crossed); amount in 0 when the pool is inside the band."""
    gamma = pool_gamma[pool]
    q01 = keep * price1 / price0  # selling token0: value of one raw token1 in raw token0, after the hedge's fees
    q10 = keep * price0 / price1
    if pool_is_v3[pool]:
        s = log_sqrt_price[i]
        L = log_liquidity[i]
        if s <= 0.0 or L <= 0.0:
            return False, 0.0, 0.0, 0
        v = log_tick_version[i]
        if gamma * s * s * q01 > 1.0:
            zfo = True
            target = 1.0 / math.sqrt(gamma * q01)
        elif gamma * q10 > s * s:
            zfo = False
            target = math.sqrt(gamma * q10)
        else:
            return False, 0.0, 0.0, 0
        x, out, crossed, s_after, status = v3_input_to_price(
            zfo, gamma, s, L, log_tick[i], tick_index, tick_sqrt_price, tick_liquidity_net, tick_offsets[v],
            tick_offsets[v + 1], target, max_steps)
        return zfo, x, out, crossed
    r0 = log_reserve0[i]
    r1 = log_reserve1[i]
    x = v2_input_to_rate(r0, r1, gamma, q01)
    if x > 0.0:
        return True, x, v2_amount_out(x, r0, r1, gamma), 0
    x = v2_input_to_rate(r1, r0, gamma, q10)
    if x > 0.0:
        return False, x, v2_amount_out(x, r1, r0, gamma), 0
    return False, 0.0, 0.0, 0


def cexdex_pair(i, pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_offsets,
                log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
                tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, ref_usd, mark_usd,
                token_scale, wei_per_usd, gas_price_wei, keep, bridge_cost_usd, gas_v2, gas_v3, gas_per_tick,
                out_zero_for_one, out_amount_in, out_amount_out, out_crossed, out_gross_usd, out_net_wei):
    """Screen pair i = (pool, point key, block offset): the optimal trade back to the reference and its
    marked-out profit (see the module docstring); amount in 0 and net −inf when there is none."""
    pool = pair_pool[i]
    b = pair_block[i]
    out_zero_for_one[i] = False
    out_amount_in[i] = 0.0
    out_amount_out[i] = 0.0
    out_crossed[i] = 0
    out_gross_usd[i] = 0.0
    out_net_wei[i] = -math.inf
    j = find_state(log_offsets, log_key, pool, pair_key[i])
    if j < 0:
        return
    t0 = pool_token0[pool]
    t1 = pool_token1[pool]
    price0 = ref_usd[b, t0] / token_scale[t0]
    price1 = ref_usd[b, t1] / token_scale[t1]
    if not (price0 > 0.0 and price1 > 0.0):  # no reference (NaN) for a token
        return
    zfo, x, out, crossed = cexdex_trade(pool, j, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_reserve0,
                                        log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
                                        tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps,
                                        price0, price1, keep)
    if x <= 0.0:
        return
    if zfo:
        mark_in = mark_usd[b, t0] / token_scale[t0]
        mark_out = mark_usd[b, t1] / token_scale[t1]
    else:
        mark_in = mark_usd[b, t1] / token_scale[t1]
        mark_out = mark_usd[b, t0] / token_scale[t0]
    gas = gas_v2
    if pool_is_v3[pool]:
        gas = gas_v3 + gas_per_tick * crossed
    gross_usd = out * mark_out * keep - x * mark_in - bridge_cost_usd
    out_zero_for_one[i] = zfo
    out_amount_in[i] = x
    out_amount_out[i] = out
    out_crossed[i] = crossed
    out_gross_usd[i] = gross_usd
    out_net_wei[i] = gross_usd * wei_per_usd[b] - gas * gas_price_wei[b]


def cexdex_pairs_cpu(pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_offsets,
                     log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
                     tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, ref_usd, mark_usd,
                     token_scale, wei_per_usd, gas_price_wei, keep, bridge_cost_usd, gas_v2, gas_v3, gas_per_tick,
                     out_zero_for_one, out_amount_in, out_amount_out, out_crossed, out_gross_usd, out_net_wei):
    """CPU driver: a parallel loop over (pool, point) pairs."""
    for i in prange(pair_pool.shape[0]):
        cexdex_pair(i, pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3,
                    log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick,
                    log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps,
                    ref_usd, mark_usd, token_scale, wei_per_usd, gas_price_wei, keep, bridge_cost_usd, gas_v2,
                    gas_v3, gas_per_tick, out_zero_for_one, out_amount_in, out_amount_out, out_crossed,
                    out_gross_usd, out_net_wei)


def cexdex_pairs_cuda(pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3, log_offsets,
                      log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
                      tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, ref_usd, mark_usd,
                      token_scale, wei_per_usd, gas_price_wei, keep, bridge_cost_usd, gas_v2, gas_v3, gas_per_tick,
                      out_zero_for_one, out_amount_in, out_amount_out, out_crossed, out_gross_usd, out_net_wei):
    """CUDA driver: one thread per (pool, point) pair (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < pair_pool.shape[0]:
        cexdex_pair(i, pair_pool, pair_key, pair_block, pool_token0, pool_token1, pool_gamma, pool_is_v3,
                    log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick,
                    log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps,
                    ref_usd, mark_usd, token_scale, wei_per_usd, gas_price_wei, keep, bridge_cost_usd, gas_v2,
                    gas_v3, gas_per_tick, out_zero_for_one, out_amount_in, out_amount_out, out_crossed,
                    out_gross_usd, out_net_wei)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v3.v3_next_tick_position, cycles.find_state, v2_input_to_rate, v3_input_to_price,
    cexdex_trade, cexdex_pair,
)
DRIVERS = ((cexdex_pairs_cpu, cexdex_pairs_cuda),)
