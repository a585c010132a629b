"""Incremental screening: a safe upper bound on each (point, path) pair's screened net profit, kept per pool as the
batch's state changes, so a pair that cannot pass the screen is never evaluated by the kernel (issue 27, part 2).

Per state-log entry, once per batch (vectorized): the log of the pool's marginal rate at zero input, token0 → token1
(ln(r1/r0) on V2, 2·ln s on V3; the other direction is its negative), and its input depth per direction (V2: the
input reserve; V3: unbounded). The walk (`_walk`, numba, in parallel chunks) visits the pairs in key order and
advances a pointer over the log in key order, so each pool's current entry is an array lookup: a pair's bound costs
its hops' lookups, no search, where the kernel's evaluation costs a binary search per hop and, with a V3 hop, a
bisection over ticks.

The bound (docs/strategies.md, "Incremental screening"):
- ρ = Σ_h (ln γ_h + ln rate_h), the cycle's log marginal rate at zero input. Every hop's output is concave in its
  input (V2; V3 too: the price only moves against the swap, whatever ticks it crosses), so the cycle's profit
  x·(rate − 1) can only be positive when ρ > 0. With ρ ≤ −ε the kernel's own float Möbius map has k ≤ m and it
  returns (0, 0) (ε = 1e-9 is ~10⁴× the float error of ρ and of the kernel's k/m over a path's few hops).
- A path with ρ > −ε is bounded by amount: with each V3 hop replaced by the linear map rate·y (above its concave
  output) the cycle is a Möbius map with the same ρ, whose profit is (m/n)·(e^{ρ/2} − 1)², and
  m/n = 1/Σ_{V2 hops} γ_h·e^{ρ_<h}/r_in_h ≤ D = min over the V2 hops of r_in_h / (γ_h·e^{ρ_<h}) (ρ_<h: the log rate
  of the hops before h). The bound takes D·(e^{(ρ+ε)/2} − 1)²·(1 + 10⁻⁹) + 2·10⁻⁹·D·(e^{ρ+ε} − 1): the shift by ε
  outweighs the kernel's cancellation error in √k − √m, which grows as 1/ρ; the last term its float error on the
  cycle's output at any input it can return (below the bounding map's break-even input D·(e^{ρ} − 1)). A path of
  V3 hops only has no depth bound: it is evaluated whenever ρ > −ε.
A pair is kept when its bounded net profit, gross·(wei per raw unit) − gas, clears the screen's floor for that gross
(strategies/base.screen_floor, decreasing in the gross): every pair the kernel would pass is kept.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from gpubt.kernels.compile import cached_njit
from gpubt.kernels.cycles import find_state
from gpubt.strategies.base import SCREEN_MARGIN_REL, SCREEN_MARGIN_WEI

RHO_EPS = 1e-9     # ≫ the float error of ρ (a few ulps of terms up to ~70) and of the kernel's k/m
GROSS_REL = 1e-9   # ≫ the kernel's relative float error in m/n
FLOAT_REL = 2e-9   # ≫ the relative float error of the kernel's cycle output (V3: ≤ 64 tick steps of a few ulps)

_find_state = cached_njit(find_state)


@cached_njit
def _rate(is_v3, r0, r1, sqrt_price, liquidity, sell1):
    """(log marginal rate at zero input, input depth) of one pool state in one direction (sell1: token1 in): V2
    ln(r_out/r_in) and r_in; V3 ±2·ln s and no depth (inf). A degenerate state (an empty reserve; V3: no in-range
    liquidity) has rate NaN: its pairs are kept, the kernel decides them."""
    if is_v3:
        if liquidity <= 0.0 or sqrt_price <= 0.0:
            return np.nan, np.inf
        rate = 2.0 * np.log(sqrt_price)
        return (-rate if sell1 else rate), np.inf
    if r0 <= 0.0 or r1 <= 0.0:
        return np.nan, np.inf
    rate = np.log(r1) - np.log(r0)
    return (-rate if sell1 else rate), (r1 if sell1 else r0)


@cached_njit
def _keep(rate, depth, log_gamma, hops, gas_cost_wei, wei_per_raw, min_profit_wei):
    """Whether a pair whose hops (in order) have log marginal rates `rate`, input depths `depth` and fees ln γ
    `log_gamma` can clear the screen floor: its bounded net profit (the module docstring) against the floor."""
    rho = 0.0
    for h in range(hops):
        rho += log_gamma[h] + rate[h]
    if rho <= -RHO_EPS:  # the cycle cannot pay: the kernel's gross is 0, its net −gas
        return -gas_cost_wei > min_profit_wei - SCREEN_MARGIN_WEI  # (a threshold below −margin: it may)
    if rho != rho:  # a degenerate state: the kernel decides
        return True
    least = np.inf
    prefix = 0.0
    for h in range(hops):  # the depth bound over the V2 hops (rare: most cycles do not pay)
        d = depth[h] / np.exp(log_gamma[h] + prefix)
        if d < least:
            least = d
        prefix += log_gamma[h] + rate[h]
    if least == np.inf:  # every hop is V3: no amount bound
        return True
    g = np.exp(0.5 * (rho + RHO_EPS)) - 1.0
    x_max = least * (np.exp(rho + RHO_EPS) - 1.0)  # no input beyond pays, even on the bounding map
    gross_wei = (least * g * g * (1.0 + GROSS_REL) + FLOAT_REL * x_max) * wei_per_raw
    return gross_wei - gas_cost_wei > min_profit_wei - (SCREEN_MARGIN_REL * abs(gross_wei) + SCREEN_MARGIN_WEI)


@cached_njit
def _entry_rates(pool, pool_is_v3, r0, r1, sqrt_price, liquidity):
    """_rate of every log entry, both directions: (rate (n, 2), depth (n, 2))."""
    n = pool.shape[0]
    rate = np.empty((n, 2))
    depth = np.empty((n, 2))
    for e in range(n):
        v3 = pool_is_v3[pool[e]]
        s = sqrt_price[e] if v3 else 1.0
        liq = liquidity[e] if v3 else 1.0
        for d in range(2):
            rate[e, d], depth[e, d] = _rate(v3, r0[e], r1[e], s, liq, d == 1)
    return rate, depth


@cached_njit(parallel=True)
def _walk(pair_key, pair_path, pair_block, path_hop, path_log_gamma, path_gas_units, path_start_slot, order,
          sorted_key, log_pool, rate, depth, wei_per_raw, gas_price_wei, min_profit_wei, n_pools, chunks, keep):
    """keep[i] = pair i can clear the screen floor (pairs sorted by key). The pairs are cut into `chunks` runs
    walked in parallel, each starting from the pools' entries at its first key. path_hop[p, h] = 2·pool + (0
    selling token0, 1 selling token1), −1 past the path's end; rate / depth[e, 0 | 1]: _entry_rates."""
    n = pair_key.shape[0]
    hops_max = path_hop.shape[1]
    for c in prange(chunks):
        lo, hi = c * n // chunks, (c + 1) * n // chunks
        if lo >= hi:
            continue
        cur = np.full(n_pools, -1, np.int64)
        hop_rate, hop_depth = np.empty(hops_max), np.empty(hops_max)
        j = 0
        for i in range(lo, hi):
            key = pair_key[i]
            while j < order.shape[0] and sorted_key[j] <= key:
                cur[log_pool[order[j]]] = order[j]
                j += 1
            path = pair_path[i]
            hops = 0
            missing = False
            for h in range(hops_max):
                code = path_hop[path, h]
                if code < 0:
                    break
                e = cur[code >> 1]
                if e < 0:  # no state yet (with_state drops those pairs): the kernel decides
                    missing = True
                    break
                hop_rate[h], hop_depth[h] = rate[e, code & 1], depth[e, code & 1]
                hops += 1
            b = pair_block[i]
            keep[i] = missing or _keep(hop_rate, hop_depth, path_log_gamma[path], hops,
                                       path_gas_units[path] * gas_price_wei[b], wei_per_raw[b, path_start_slot[path]],
                                       min_profit_wei)
    return keep


@cached_njit
def _at_point(key, paths, path_pools, path_zfo, path_log_gamma, pool_is_v3, log_offsets, log_key, r0, r1, sqrt_price,
              liquidity, gas_units, gas_price_wei, wei_per_raw, start_slot, min_profit_wei):
    """keep per path of `paths` at one point `key` of (possibly forked) state arrays: the ordered pass's rescreen.
    Each hop's state by binary search (find_state), its rate computed from it (a fork rewrote it)."""
    hops_max = path_pools.shape[1]
    hop_rate, hop_depth = np.empty(hops_max), np.empty(hops_max)
    keep = np.zeros(paths.shape[0], np.bool_)
    has_v3 = sqrt_price.shape[0] > 0
    for i in range(paths.shape[0]):
        path = paths[i]
        hops = 0
        missing = False
        for h in range(hops_max):
            pool = path_pools[path, h]
            if pool < 0:
                break
            e = _find_state(log_offsets, log_key, pool, key)
            if e < 0:
                missing = True
                break
            v3 = has_v3 and pool_is_v3[pool]
            hop_rate[h], hop_depth[h] = _rate(v3, r0[e], r1[e], sqrt_price[e] if v3 else 1.0,
                                              liquidity[e] if v3 else 1.0, not path_zfo[path, h])
            hops += 1
        keep[i] = missing or _keep(hop_rate, hop_depth, path_log_gamma[path], hops, gas_units[path] * gas_price_wei,
                                   wei_per_raw[start_slot[path]], min_profit_wei)
    return keep


class ScreenBound:
    """The bound's per-path arrays (built once per run); `keep`: the mask of a batch's pairs it lets through;
    `keep_at`: of the paths the ordered pass screens again at one point."""

    def __init__(self, paths, gas_units: np.ndarray, start_slot: np.ndarray):
        self.paths, self.gas_units, self.start_slot = paths, gas_units, start_slot
        self.log_gamma = np.log(np.where(paths.pools >= 0, paths.gamma, 1.0))
        self.hop = np.where(paths.pools >= 0, 2 * paths.pools + ~paths.zero_for_one, -1).astype(np.int32)

    def keep(self, batch, pair_key, pair_path, pair_block, wei_per_raw, min_profit_wei: int) -> np.ndarray:
        """Mask of the pairs (sorted by key) whose bound clears the screen: the others cannot pass it."""
        keep = np.zeros(len(pair_key), np.bool_)
        if not len(pair_key):
            return keep
        pool = np.repeat(np.arange(len(batch.log_offsets) - 1, dtype=np.int64), np.diff(batch.log_offsets))
        rate, depth = _entry_rates(pool, self.paths.pool_is_v3, batch.log_reserve0, batch.log_reserve1,
                                   *_v3_columns(batch.log_sqrt_price, batch.log_liquidity, len(pool)))
        order = np.argsort(batch.log_key, kind="stable")
        chunks = 4 * numba.get_num_threads() if len(pair_key) > 100_000 else 1
        return _walk(pair_key, pair_path, pair_block, self.hop, self.log_gamma, self.gas_units, self.start_slot,
                     order, batch.log_key[order], pool, rate, depth, wei_per_raw, batch.gas_price_wei,
                     float(min_profit_wei), len(batch.log_offsets) - 1, chunks, keep)

    def keep_at(self, key: int, paths: np.ndarray, state: tuple, gas_price_wei: float, wei_per_raw: np.ndarray,
                min_profit_wei: int) -> np.ndarray:
        """Mask of `paths` at point `key` of the state arrays `state` (Batch.kernel_state's order, forks written
        over: ForkView.kernel_state) whose bound clears the screen; `wei_per_raw`: the point's block's row."""
        log_offsets, log_key, r0, r1, sqrt_price, liquidity = state[:6]
        return _at_point(key, paths, self.paths.pools, self.paths.zero_for_one, self.log_gamma, self.paths.pool_is_v3,
                         log_offsets, log_key, r0, r1, sqrt_price, liquidity, self.gas_units, float(gas_price_wei),
                         wei_per_raw, self.start_slot, float(min_profit_wei))


def _v3_columns(sqrt_price, liquidity, n):
    """A market without V3 pools has no V3 columns in its log."""
    return (sqrt_price, liquidity) if len(sqrt_price) else (np.ones(n), np.ones(n))
