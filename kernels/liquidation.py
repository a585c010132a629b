"""Liquidation screening: every (lending position × block) pair of a batch, in float64.

At the top of block b (state key (b << 20) − 1, before any of its txs) with oracle prices P (USD per raw unit):

    debt(b)   = debt_ref · exp(log_growth · (b − ref_block))          (per-block borrow interest)
    health    = collateral · P_c · LT / (debt(b) · P_d)               (Aave's health factor; < 1: liquidatable)
    repay     = close_factor · debt(b)                                 (debt token raw, paid by the liquidator)
    seized    = repay · P_d / P_c · (1 + bonus)                        (collateral raw; capped at the collateral,
                                                                        then repay = collateral·P_c/(P_d·(1+bonus)))
    out_r     = seized swapped to the debt token through route r (a direct pool or 2 hops via WETH; V2 and V3)
    net_wei   = max_r [(out_r − repay · (1 + flash_fee)) · P_d · wei_per_usd − gas_r · gas_price]

so the profit is the liquidation bonus minus what the swap back costs (fees, price impact), the flash-loan fee
and gas. The host (gpubt/strategies/liquidation.py) re-prices the pairs it takes with exact integer math.
"""
import math

from numba import prange

from . import amm_v2, amm_v3, cycles
from .amm_v2 import v2_amount_out
from .amm_v3 import V3_OK, v3_swap_exact_in
from .cycles import KEY_TX_BITS, find_state

NO_ROUTE = -1


def route_amount_out(route, amount_in, point_key, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                     log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick,
                     log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps):
    """Output (raw) of swapping `amount_in` through route `route` (hops padded with pool −1) at `point_key`;
    −1.0 when a pool has no state yet or a V3 hop cannot take the whole input (no route then)."""
    amount = amount_in
    for h in range(route_pools.shape[1]):
        pool = route_pools[route, h]
        if pool < 0:
            break
        i = find_state(log_offsets, log_key, pool, point_key)
        if i < 0:
            return -1.0
        zfo = route_zero_for_one[route, h]
        gamma = route_gamma[route, h]
        if route_is_v3[route, h]:
            if log_liquidity[i] <= 0.0 or log_sqrt_price[i] <= 0.0:
                return -1.0
            v = log_tick_version[i]
            out, s, liq, t, crossed, status = v3_swap_exact_in(
                amount, zfo, gamma, log_sqrt_price[i], log_liquidity[i], log_tick[i], tick_index, tick_sqrt_price,
                tick_liquidity_net, tick_offsets[v], tick_offsets[v + 1], max_steps)
            if status != V3_OK:
                return -1.0
        else:
            if zfo:
                r_in = log_reserve0[i]
                r_out = log_reserve1[i]
            else:
                r_in = log_reserve1[i]
                r_out = log_reserve0[i]
            out = v2_amount_out(amount, r_in, r_out, gamma)
        amount = out
    return amount


def liquidation_terms(collateral_raw, debt_raw, price_collateral, price_debt, threshold, bonus, close_factor):
    """(health factor, repay raw, seized raw) of a position; prices in USD per raw unit, threshold / bonus /
    close_factor as fractions (0.825, 0.05, 0.5). Health is +inf without debt."""
    debt_usd = debt_raw * price_debt
    if debt_usd <= 0.0 or price_collateral <= 0.0:
        return math.inf, 0.0, 0.0
    health = collateral_raw * price_collateral * threshold / debt_usd
    repay = close_factor * debt_raw
    seized = repay * price_debt / price_collateral * (1.0 + bonus)
    if seized > collateral_raw:  # not enough collateral for the close factor: seize it all, repay what it covers
        seized = collateral_raw
        repay = collateral_raw * price_collateral / (price_debt * (1.0 + bonus))
    return health, repay, seized


def liquidation_pair(i, pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw,
                     pos_debt_raw, pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor,
                     pos_route_offsets, route_pools, route_zero_for_one, route_gamma, route_is_v3, route_gas_units,
                     log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick,
                     log_tick_version, tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps,
                     price_usd, token_scale, wei_per_usd, gas_price_wei, flash_fee,
                     out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out, out_net_wei):
    """Screen pair i = (position, block offset); outputs: health factor, repay / seized raw, best route (−1: not
    liquidatable or no route), its output (debt token raw) and net profit in wei (−inf without a route)."""
    p = pair_position[i]
    b = pair_block[i]
    out_route[i] = NO_ROUTE
    out_amount_out[i] = 0.0
    out_net_wei[i] = -math.inf
    out_repay_raw[i] = 0.0
    out_seized_raw[i] = 0.0
    ct = pos_collateral_token[p]
    dt = pos_debt_token[p]
    if b < pos_ref_offset[p]:  # not open yet (or already liquidated at a later block)
        out_health[i] = math.inf
        return
    debt = pos_debt_raw[p] * math.exp(pos_log_growth[p] * (int(b) - pos_ref_offset[p]))
    price_c = price_usd[b, ct] / token_scale[ct]
    price_d = price_usd[b, dt] / token_scale[dt]
    if not (price_c > 0.0 and price_d > 0.0):  # no oracle price (NaN) yet
        out_health[i] = math.inf
        return
    health, repay, seized = liquidation_terms(pos_collateral_raw[p], debt, price_c, price_d, pos_threshold[p],
                                              pos_bonus[p], pos_close_factor[p])
    out_health[i] = health
    if health >= 1.0 or seized <= 0.0:
        return
    out_repay_raw[i] = repay
    out_seized_raw[i] = seized
    point_key = (int(b) << KEY_TX_BITS) - 1  # top of block b (int(): an int32 offset would overflow the shift)
    value_wei = price_d * wei_per_usd[b]
    for r in range(pos_route_offsets[p], pos_route_offsets[p + 1]):
        out = route_amount_out(r, seized, point_key, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                               log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                               log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                               tick_liquidity_net, max_steps)
        if out < 0.0:
            continue
        net = (out - repay * (1.0 + flash_fee)) * value_wei - route_gas_units[r] * gas_price_wei[b]
        if net > out_net_wei[i]:
            out_net_wei[i] = net
            out_route[i] = r
            out_amount_out[i] = out


def liquidation_pairs_cpu(pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw,
                          pos_debt_raw, pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor,
                          pos_route_offsets, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                          route_gas_units, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                          log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                          tick_liquidity_net, max_steps, price_usd, token_scale, wei_per_usd, gas_price_wei, flash_fee,
                          out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out, out_net_wei):
    """CPU driver: a parallel loop over (position, block) pairs."""
    for i in prange(pair_position.shape[0]):
        liquidation_pair(i, pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw,
                         pos_debt_raw, pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor,
                         pos_route_offsets, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                         route_gas_units, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                         log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                         tick_liquidity_net, max_steps, price_usd, token_scale, wei_per_usd, gas_price_wei, flash_fee,
                         out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out, out_net_wei)


def liquidation_pairs_cuda(pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw,
                           pos_debt_raw, pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor,
                           pos_route_offsets, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                           route_gas_units, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                           log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                           tick_liquidity_net, max_steps, price_usd, token_scale, wei_per_usd, gas_price_wei,
                           flash_fee, out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out,
                           out_net_wei):
    """CUDA driver: one thread per (position, block) pair (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < pair_position.shape[0]:
        liquidation_pair(i, pair_position, pair_block, pos_collateral_token, pos_debt_token, pos_collateral_raw,
                         pos_debt_raw, pos_ref_offset, pos_log_growth, pos_threshold, pos_bonus, pos_close_factor,
                         pos_route_offsets, route_pools, route_zero_for_one, route_gamma, route_is_v3,
                         route_gas_units, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                         log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                         tick_liquidity_net, max_steps, price_usd, token_scale, wei_per_usd, gas_price_wei, flash_fee,
                         out_health, out_repay_raw, out_seized_raw, out_route, out_amount_out, out_net_wei)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_range_end,
    amm_v3.v3_cross, amm_v3.v3_swap_exact_in,
    cycles.find_state, route_amount_out, liquidation_terms, liquidation_pair,
)
DRIVERS = ((liquidation_pairs_cpu, liquidation_pairs_cuda),)
