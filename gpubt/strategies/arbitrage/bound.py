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
from gpubt.strategies.base import SCREEN_MARGIN_REL, SCREEN_MARGIN_WEI

RHO_EPS = 1e-9     # ≫ the float error of ρ (a few ulps of terms up to ~70) and of the kernel's k/m
GROSS_REL = 1e-9   # ≫ the kernel's relative float error in m/n
FLOAT_REL = 2e-9   # ≫ the relative float error of the kernel's cycle output (V3: ≤ 64 tick steps of a few ulps)


def entry_rates(batch, pool_is_v3: np.ndarray):
    """Per log entry of `batch`: (pool, ln marginal rate and input reserve selling token0 and selling token1, each
    (n, 2); V3 paths are bounded by the rate alone). A degenerate state (an empty reserve; V3: no in-range
    liquidity) has rate NaN: its pairs are kept, the kernel decides them."""
    pool = np.repeat(np.arange(len(batch.log_offsets) - 1, dtype=np.int64), np.diff(batch.log_offsets))
    r0, r1 = batch.log_reserve0, batch.log_reserve1
    v3 = pool_is_v3[pool]
    s, liq = batch.log_sqrt_price, batch.log_liquidity
    if not len(s):  # a market without V3 pools has no V3 columns in its log
        s = liq = np.ones(len(r0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(v3, 2.0 * np.log(s), np.log(r1) - np.log(r0))
    dead = np.where(v3, (liq <= 0.0) | (s <= 0.0), (r0 <= 0.0) | (r1 <= 0.0)) | ~np.isfinite(rate)
    rate[dead] = np.nan
    reserve = np.where(v3[:, None], np.inf, np.stack([r0, r1], axis=1))  # a V3 hop is bounded by its rate alone
    return pool, np.stack([rate, -rate], axis=1), reserve


@cached_njit(parallel=True)
def _walk(pair_key, pair_path, pair_block, path_hop, path_log_gamma, path_gamma_sum, path_gas_units,
          path_start_slot, order, sorted_key, log_pool, rate, depth, wei_per_raw, gas_price_wei, min_profit_wei,
          n_pools, chunks, keep):
    """keep[i] = pair i's bounded net profit clears the screen floor (pairs sorted by key). The pairs are cut into
    `chunks` runs walked in parallel, each starting from the pools' entries at its first key.
    path_hop[p, h] = 2·pool + (0 selling token0, 1 selling token1), −1 past the path's end; rate[e, 0 | 1] = the
    entry's log marginal rate in that direction; path_gamma_sum[p] = Σ_h ln γ_h."""
    n = pair_key.shape[0]
    zero_gross_floor = min_profit_wei - SCREEN_MARGIN_WEI  # the floor a pair bounded at gross 0 must clear
    for c in prange(chunks):
        lo, hi = c * n // chunks, (c + 1) * n // chunks
        if lo >= hi:
            continue
        cur = np.full(n_pools, -1, np.int64)
        j = 0
        for i in range(lo, hi):
            key = pair_key[i]
            while j < order.shape[0] and sorted_key[j] <= key:
                cur[log_pool[order[j]]] = order[j]
                j += 1
            path = pair_path[i]
            rho = path_gamma_sum[path]
            missing = False
            for h in range(path_hop.shape[1]):
                code = path_hop[path, h]
                if code < 0:
                    break
                e = cur[code >> 1]
                if e < 0:  # no state yet (with_state drops those pairs): the kernel decides
                    missing = True
                    break
                rho += rate[e, code & 1]
            if rho <= -RHO_EPS:  # the cycle cannot pay: the kernel's gross is 0, its net −gas
                if zero_gross_floor < 0.0:  # a threshold below −margin: −gas may still clear it
                    b = pair_block[i]
                    keep[i] = -(path_gas_units[path] * gas_price_wei[b]) > zero_gross_floor
                else:
                    keep[i] = False
                continue
            # NaN: a degenerate state (an empty reserve, a V3 range without liquidity): the kernel decides
            if missing or rho != rho:
                keep[i] = True
                continue
            # a V2 path that may pay (rare: most cycles do not): its depth bound
            least = np.inf
            prefix = 0.0
            for h in range(path_hop.shape[1]):
                code = path_hop[path, h]
                if code < 0:
                    break
                e = cur[code >> 1]
                d = depth[e, code & 1] / np.exp(path_log_gamma[path, h] + prefix)
                if d < least:
                    least = d
                prefix += path_log_gamma[path, h] + rate[e, code & 1]
            if least == np.inf:  # every hop is V3: no amount bound
                keep[i] = True
                continue
            g = np.exp(0.5 * (rho + RHO_EPS)) - 1.0
            x_max = least * (np.exp(rho + RHO_EPS) - 1.0)  # no input beyond pays, even on the bounding map
            gross = least * g * g * (1.0 + GROSS_REL) + FLOAT_REL * x_max
            b = pair_block[i]
            gross_wei = gross * wei_per_raw[b, path_start_slot[path]]
            net = gross_wei - path_gas_units[path] * gas_price_wei[b]
            keep[i] = net > min_profit_wei - (SCREEN_MARGIN_REL * abs(gross_wei) + SCREEN_MARGIN_WEI)
    return keep


class ScreenBound:
    """The bound's per-path arrays (built once per run) and `keep`, the mask of a batch's pairs it lets through."""

    def __init__(self, paths, gas_units: np.ndarray, start_slot: np.ndarray):
        self.paths, self.gas_units, self.start_slot = paths, gas_units, start_slot
        self.log_gamma = np.log(np.where(paths.pools >= 0, paths.gamma, 1.0))
        self.gamma_sum = self.log_gamma.sum(axis=1)
        self.hop = np.where(paths.pools >= 0, 2 * paths.pools + ~paths.zero_for_one, -1).astype(np.int32)

    def keep(self, batch, pair_key, pair_path, pair_block, wei_per_raw, min_profit_wei: int) -> np.ndarray:
        """Mask of the pairs (sorted by key) whose bound clears the screen: the others cannot pass it."""
        keep = np.zeros(len(pair_key), np.bool_)
        if not len(pair_key):
            return keep
        pool, rate, depth = entry_rates(batch, self.paths.pool_is_v3)
        order = np.argsort(batch.log_key, kind="stable")
        chunks = 4 * numba.get_num_threads() if len(pair_key) > 100_000 else 1
        return _walk(pair_key, pair_path, pair_block, self.hop, self.log_gamma, self.gamma_sum,
                     self.gas_units, self.start_slot, order, batch.log_key[order], pool, rate, depth, wei_per_raw,
                     batch.gas_price_wei, float(min_profit_wei), len(batch.log_offsets) - 1, chunks, keep)
