"""Cyclic-arbitrage screening: every (evaluation point × candidate path) pair of a batch, in float64.

State log, point keys and the optimal input (V2 closed form, V3 bisection): docs/strategies.md#cyclic-arbitrage.
"""
from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from . import amm_v2, amm_v3
from .amm_v2 import compose_hop, optimal_profit, v2_amount_out  # noqa: F401  (rebound per target)
from .amm_v3 import V3_OK, v3_marginal_rate, v3_swap_exact_in, v3_virtual_reserves  # noqa: F401

KEY_TX_BITS = 20  # tx_index < 2**20 (a block holds at most ~1,500 txs at 30M gas)
V3_BISECTIONS = 64   # upper bound on bisection steps of a cycle with a V3 hop
V3_BRACKET_DOUBLINGS = 64
V3_REL_TOL = 1e-10   # bisection stops when the bracket is this small relative to its upper end
V3_MAX_STEPS = 64    # initialized ticks one V3 hop may cross (the backend passes it; kept here as the default)


def find_state(log_offsets, log_key, pool, point_key):
    """Index of the last log entry of `pool` with key <= point_key, or -1 if the pool has no state yet."""
    lo = log_offsets[pool]
    hi = log_offsets[pool + 1]
    # invariant: entries [lo0, lo) are <= point_key, entries [hi, hi0) are > point_key
    while lo < hi:
        mid = (lo + hi) // 2
        if log_key[mid] <= point_key:
            lo = mid + 1
        else:
            hi = mid
    if lo == log_offsets[pool]:
        return -1
    return lo - 1


def cycle_eval(x, path, point_key, path_pools, path_zero_for_one, path_gamma, path_is_v3, log_offsets, log_key,
               log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version,
               tick_offsets, tick_index, tick_sqrt_price, tick_liquidity_net, max_steps):
    """(amount out, d out/dx, initialized ticks crossed) of the cycle for input x, hop by hop (V2 and V3).

    A V3 hop that stops early (max_steps or the price range's end) makes the rate 0 and the crossings count
    max_steps + 1: the cycle's output does not grow past that input."""
    amount = x
    rate = 1.0
    crossed = 0
    for h in range(path_pools.shape[1]):
        pool = path_pools[path, h]
        if pool < 0:
            break
        i = find_state(log_offsets, log_key, pool, point_key)
        gamma = path_gamma[path, h]
        zfo = path_zero_for_one[path, h]
        if path_is_v3[path, h]:
            v = log_tick_version[i]
            out, s, liq, t, c, status = v3_swap_exact_in(
                amount, zfo, gamma, log_sqrt_price[i], log_liquidity[i], log_tick[i], tick_index, tick_sqrt_price,
                tick_liquidity_net, tick_offsets[v], tick_offsets[v + 1], max_steps)
            if status == V3_OK:
                crossed += c
                rate *= v3_marginal_rate(zfo, gamma, s)
            else:
                crossed += max_steps + 1
                rate = 0.0
        else:
            if zfo:
                r_in = log_reserve0[i]
                r_out = log_reserve1[i]
            else:
                r_in = log_reserve1[i]
                r_out = log_reserve0[i]
            out = v2_amount_out(amount, r_in, r_out, gamma)
            d = r_in + gamma * amount
            rate *= gamma * r_in * r_out / (d * d)
        amount = out
    return amount, rate, crossed


def screen_cycle(path, point_key, path_pools, path_zero_for_one, path_gamma, path_is_v3, log_offsets, log_key,
                 log_reserve0, log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                 tick_index, tick_sqrt_price, tick_liquidity_net, max_steps):
    """(optimal input, gross profit) of one cycle at one point, raw units of its start token; (0, 0) if none."""
    k = 1.0
    m = 1.0
    n = 0.0
    any_v3 = False
    for h in range(path_pools.shape[1]):
        pool = path_pools[path, h]
        if pool < 0:
            break
        i = find_state(log_offsets, log_key, pool, point_key)
        if i < 0:
            return 0.0, 0.0
        zfo = path_zero_for_one[path, h]
        if path_is_v3[path, h]:
            if log_liquidity[i] <= 0.0 or log_sqrt_price[i] <= 0.0:
                return 0.0, 0.0  # no in-range liquidity: screened as unprofitable (conservative)
            r_in, r_out = v3_virtual_reserves(zfo, log_sqrt_price[i], log_liquidity[i])
            any_v3 = True
        else:
            # both reserves loaded, then selected (no branch): the direction is a coin flip across pairs, and a
            # branch on it mispredicts about half the time
            r0 = log_reserve0[i]
            r1 = log_reserve1[i]
            r_in = r0 if zfo else r1
            r_out = r1 if zfo else r0
        k, m, n = compose_hop(k, m, n, r_in, r_out, path_gamma[path, h])
    x, gross = optimal_profit(k, m, n)
    if not any_v3:
        return x, gross
    if x <= 0.0:
        return 0.0, 0.0
    out, rate, crossed = cycle_eval(x, path, point_key, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                                    log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                                    log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                                    tick_liquidity_net, max_steps)
    if crossed > 0:
        lo = 0.0
        hi = x
        for _ in range(V3_BRACKET_DOUBLINGS):  # grow until the marginal rate at hi is < 1
            if rate <= 1.0:
                break
            lo = hi
            hi = 2.0 * hi
            out, rate, crossed = cycle_eval(hi, path, point_key, path_pools, path_zero_for_one, path_gamma,
                                            path_is_v3, log_offsets, log_key, log_reserve0, log_reserve1,
                                            log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                                            tick_index, tick_sqrt_price, tick_liquidity_net, max_steps)
        for _ in range(V3_BISECTIONS):
            if hi - lo <= V3_REL_TOL * hi:
                break
            mid = 0.5 * (lo + hi)
            out, rate, crossed = cycle_eval(mid, path, point_key, path_pools, path_zero_for_one, path_gamma,
                                            path_is_v3, log_offsets, log_key, log_reserve0, log_reserve1,
                                            log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                                            tick_index, tick_sqrt_price, tick_liquidity_net, max_steps)
            if rate > 1.0:
                lo = mid
            else:
                hi = mid
        x = 0.5 * (lo + hi)
        out, rate, crossed = cycle_eval(x, path, point_key, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                                        log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                                        log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                                        tick_sqrt_price, tick_liquidity_net, max_steps)
    if out <= x:
        return 0.0, 0.0
    return x, out - x


def screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price,
                log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei, out_amount_in, out_gross_raw, out_net_wei):
    """Screen pair i; net profit in wei = gross · (wei per raw unit of the start token) − gas units · gas price."""
    path = pair_path[i]
    x, gross = screen_cycle(path, pair_key[i], path_pools, path_zero_for_one, path_gamma, path_is_v3,
                            log_offsets, log_key, log_reserve0, log_reserve1, log_sqrt_price, log_liquidity,
                            log_tick, log_tick_version, tick_offsets, tick_index, tick_sqrt_price,
                            tick_liquidity_net, max_steps)
    b = pair_block[i]
    out_amount_in[i] = x
    out_gross_raw[i] = gross
    out_net_wei[i] = gross * wei_per_raw[b, path_start_slot[path]] - path_gas_units[path] * gas_price_wei[b]


def screen_pairs_cpu(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                     path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                     log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                     tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                     out_amount_in, out_gross_raw, out_net_wei):
    """CPU driver: a parallel loop over pairs."""
    for i in prange(pair_key.shape[0]):
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                    path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                    log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                    tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)


def screen_pairs_cuda(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                      path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                      log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                      tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                      out_amount_in, out_gross_raw, out_net_wei):
    """CUDA driver: one thread per pair (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < pair_key.shape[0]:
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                    path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                    log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                    tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)


def screen_pairs_serial_cpu(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma,
                            path_is_v3, path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0,
                            log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                            tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                            out_amount_in, out_gross_raw, out_net_wei):
    """CPU driver on one thread: the ordered exact pass screens a few pairs per point again (run/execution.py),
    and starting a parallel region costs more than they do (~200 µs against ~0.1 µs a pair)."""
    for i in range(pair_key.shape[0]):
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                    path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                    log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                    tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)


def screen_pairs_serial_cuda(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma,
                             path_is_v3, path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0,
                             log_reserve1, log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets,
                             tick_index, tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                             out_amount_in, out_gross_raw, out_net_wei):
    """CUDA twin of screen_pairs_serial_cpu (one thread per pair, as screen_pairs_cuda)."""
    i = cuda.grid(1)  # noqa: F821
    if i < pair_key.shape[0]:
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_is_v3,
                    path_gas_units, path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1,
                    log_sqrt_price, log_liquidity, log_tick, log_tick_version, tick_offsets, tick_index,
                    tick_sqrt_price, tick_liquidity_net, max_steps, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order, (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = (
    amm_v2.v2_amount_out, amm_v2.compose_hop, amm_v2.cycle_out, amm_v2.optimal_profit, amm_v2.optimal_input,
    amm_v3.v3_next_tick_position, amm_v3.v3_tick_at_sqrt_price, amm_v3.v3_range_end, amm_v3.v3_cross,
    amm_v3.v3_swap_exact_in, amm_v3.v3_marginal_rate,
    amm_v3.v3_virtual_reserves,
    find_state, cycle_eval, screen_cycle, screen_pair,
)
DRIVERS = ((screen_pairs_cpu, screen_pairs_cuda), (screen_pairs_serial_cpu, screen_pairs_serial_cuda))
