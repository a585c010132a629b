"""Cyclic-arbitrage screening: every (evaluation point × candidate path) pair of a batch, in float64.

State is versioned (ARCHITECTURE principle 4): each pool's states in the batch form a sorted log
(`log_key`, `log_reserve0`, `log_reserve1`, sliced per pool by `log_offsets`); the state at an evaluation point
is the last entry whose key is <= the point's key, found by binary search. So every pair is independent.

Keys: block_offset · 2**20 + tx_index, block_offset relative to the batch's first block; a point's key means
"after every tx with a key <= it" (top of a block = key of its previous block's tx 2**20 − 1).
"""
from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from .amm_v2 import compose_hop, cycle_out, optimal_input  # noqa: F401  (rebound per target)

KEY_TX_BITS = 20  # tx_index < 2**20 (a block holds at most ~1,500 txs at 30M gas)


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


def screen_cycle(path, point_key, path_pools, path_zero_for_one, path_gamma,
                 log_offsets, log_key, log_reserve0, log_reserve1):
    """(optimal input, gross profit) of one cycle at one point, raw units of its start token; (0, 0) if none."""
    k = 1.0
    m = 1.0
    n = 0.0
    for h in range(path_pools.shape[1]):
        pool = path_pools[path, h]
        if pool < 0:
            break
        i = find_state(log_offsets, log_key, pool, point_key)
        if i < 0:
            return 0.0, 0.0
        if path_zero_for_one[path, h]:
            k, m, n = compose_hop(k, m, n, log_reserve0[i], log_reserve1[i], path_gamma[path, h])
        else:
            k, m, n = compose_hop(k, m, n, log_reserve1[i], log_reserve0[i], path_gamma[path, h])
    x = optimal_input(k, m, n)
    if x <= 0.0:
        return 0.0, 0.0
    return x, cycle_out(x, k, m, n) - x


def screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei,
                out_amount_in, out_gross_raw, out_net_wei):
    """Screen pair i; net profit in wei = gross · (wei per raw unit of the start token) − gas units · gas price."""
    path = pair_path[i]
    x, gross = screen_cycle(path, pair_key[i], path_pools, path_zero_for_one, path_gamma,
                            log_offsets, log_key, log_reserve0, log_reserve1)
    b = pair_block[i]
    out_amount_in[i] = x
    out_gross_raw[i] = gross
    out_net_wei[i] = gross * wei_per_raw[b, path_start_slot[path]] - path_gas_units[path] * gas_price_wei[b]


def screen_pairs_cpu(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                     path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei,
                     out_amount_in, out_gross_raw, out_net_wei):
    """CPU driver: a parallel loop over pairs."""
    for i in prange(pair_key.shape[0]):
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                    path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)


def screen_pairs_cuda(pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                      path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei,
                      out_amount_in, out_gross_raw, out_net_wei):
    """CUDA driver: one thread per pair (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < pair_key.shape[0]:
        screen_pair(i, pair_key, pair_path, pair_block, path_pools, path_zero_for_one, path_gamma, path_gas_units,
                    path_start_slot, log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei,
                    out_amount_in, out_gross_raw, out_net_wei)
