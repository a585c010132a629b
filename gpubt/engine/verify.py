"""From screened pairs to trades: pick non-conflicting candidates per evaluation point, re-price them exactly."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpubt.exact import v2 as exact_v2
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.pack import WETH, Batch
from gpubt.paths import Paths


@dataclass(frozen=True)
class GasModel:
    """gas units of a cycle = base_units + per_hop_units × hops; price = base fee + priority fee (wei/gas)."""

    base_units: int
    per_hop_units: int
    priority_fee_wei: int

    def units(self, hops):
        return self.base_units + self.per_hop_units * hops


def select(pair_key: np.ndarray, pair_path: np.ndarray, net_wei: np.ndarray, paths: Paths) -> np.ndarray:
    """Indices of the candidates a searcher sends: at each point, best first, skipping paths that share a pool
    with one already chosen at that point (taking one changes the others' reserves)."""
    order = np.lexsort((-net_wei, pair_key))
    chosen = []
    current_key, used = None, set()
    for i in order.tolist():
        if pair_key[i] != current_key:
            current_key, used = pair_key[i], set()
        pools = paths.pools[pair_path[i], :paths.hops[pair_path[i]]].tolist()
        if used.isdisjoint(pools):
            used.update(pools)
            chosen.append(i)
    return np.asarray(chosen, np.int64)


def reprice(batch: Batch, paths: Paths, path_ids: np.ndarray, keys: np.ndarray, x_float: np.ndarray,
            gas: GasModel, start_slots: np.ndarray) -> list[dict]:
    """Trades re-priced with exact V2 math at each point's exact reserves; every amount a Python int.

    The exact reserves of every hop of every trade are gathered in one vectorized lookup.
    """
    if len(path_ids) == 0:
        return []
    hop_pools = paths.pools[path_ids]                                      # (S, H), −1 padded
    hop_keys = np.broadcast_to(keys[:, None], hop_pools.shape)
    valid = hop_pools >= 0
    r0_flat, r1_flat = batch.exact_reserves(hop_pools[valid], hop_keys[valid])
    offsets = np.concatenate(([0], np.cumsum(valid.sum(axis=1))))
    trades = []
    for t, (path, key) in enumerate(zip(path_ids.tolist(), keys.tolist())):
        hops = int(paths.hops[path])
        pools = paths.pools[path, :hops].tolist()
        zfo = paths.zero_for_one[path, :hops].tolist()
        fees = paths.fee_ppm[path, :hops].tolist()
        r0, r1 = r0_flat[offsets[t]:offsets[t + 1]], r1_flat[offsets[t]:offsets[t + 1]]
        reserves_in = [a if z else b for a, b, z in zip(r0, r1, zfo)]
        reserves_out = [b if z else a for a, b, z in zip(r0, r1, zfo)]
        amount_in, gross_raw = exact_v2.refine_optimal_input(float(x_float[t]), reserves_in, reserves_out, fees)
        block = (key + 1) >> KEY_TX_BITS
        start_token = int(paths.start_token[path])
        if start_token == WETH:
            gross_wei = gross_raw
        else:  # priced at the block's reference rate: exact in the start token, not in ETH
            gross_wei = round(gross_raw * float(batch.wei_per_raw[block, start_slots[path]]))
        gas_units = int(gas.units(hops))
        gas_price_wei = int(batch.base_fee_wei[block]) + gas.priority_fee_wei
        gas_cost_wei = gas_units * gas_price_wei
        net_wei = gross_wei - gas_cost_wei
        trades.append({
            "block_number": batch.first_block + block,
            "tx_index": int(key - (block << KEY_TX_BITS)),
            "path_id": int(path),
            "start_token": start_token,
            "pools": pools,
            "zero_for_one": zfo,
            "amount_in": amount_in,
            "amount_out": amount_in + gross_raw,
            "gross_profit_raw": gross_raw,
            "gross_profit_wei": gross_wei,
            "gas_units": gas_units,
            "gas_price_wei": gas_price_wei,
            "gas_cost_wei": gas_cost_wei,
            "net_profit_wei": net_wei,
            "net_profit_usd": net_wei / 1e18 * float(batch.eth_usd[block]),
        })
    return trades
