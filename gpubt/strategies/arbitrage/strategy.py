"""Cyclic arbitrage: every simple cycle of min_hops..max_hops pools through a start token, evaluated after every
tx that changes one of its pools (and at the top of the run's first block).

Screen: every (point, path) pair on the backend (kernels/cycles.py: the float optimum input and profit of the
cycle at the point's state); keep the pairs that pass the margin rule; select per point, best first, paths that
share no pool (pricing.select); re-price them exactly (pricing.reprice); take those whose exact net profit clears
the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.backend import Backend
from gpubt.kernels.cycles import KEY_TX_BITS, V3_MAX_STEPS
from gpubt.market.batch import WETH
from gpubt.strategies.arbitrage.paths import enumerate_cycles, evaluation_pairs, resolve_tokens, with_state
from gpubt.strategies.arbitrage.pricing import reprice, select
from gpubt.strategies.base import Strategy, StrategyResult


@dataclass
class DevicePaths:
    """The path arrays on the backend (uploaded once per run) and each path's start-token slot on the host."""

    pools: object
    zero_for_one: object
    gamma: object
    is_v3: object
    gas_units: object
    start_slot: object
    start_slot_host: np.ndarray


class Arbitrage(Strategy):
    name = "arbitrage"

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        self.start_tokens = resolve_tokens(dataset, list(cfg["start_tokens"]))
        self.paths = paths = enumerate_cycles(dataset.pools, self.start_tokens, int(cfg["max_hops"]),
                                              int(cfg["min_hops"]))
        tokens = dataset.tokens
        self.decimals = np.zeros(int(tokens.column("token_id").to_numpy().max()) + 1, np.int64)
        self.decimals[tokens.column("token_id").to_numpy()] = tokens.column("decimals").to_numpy()
        slot_of = {int(t): i for i, t in enumerate(self.start_tokens.tolist())}
        start_slot = np.asarray([slot_of[int(t)] for t in paths.start_token.tolist()], np.int32)
        gas_units = gas.units(paths.hops, paths.is_v3.sum(axis=1)).astype(np.float64)  # ticks: exact re-pricing
        up = backend.to_device
        self.device = DevicePaths(up(paths.pools), up(paths.zero_for_one), up(paths.gamma), up(paths.is_v3),
                                  up(gas_units), up(start_slot), start_slot)
        self._pairs = (None, None)  # (batch, its evaluation pairs): device_bytes and evaluate share them
        self._evaluated = None      # (batch, pair keys, paths, blocks, wei_per_raw) of the last evaluate: rescreen
        self._host = None           # the CPU backend `rescreen` screens on (the ordered pass runs on the host)
        self._gas_units = gas_units

    def describe(self) -> dict:
        return {"paths": len(self.paths), "start_tokens": self.start_tokens.tolist()}

    def idle_reason(self, first_block: int, last_block: int) -> str | None:
        if len(self.paths):
            return None
        return f"no {self.cfg['min_hops']}..{self.cfg['max_hops']}-hop cycles through the start tokens in this dataset"

    def pairs(self, batch):
        """(pair_key, pair_path, pair_block) of `batch`: the paths through each pool a tx changed, at that tx (and
        every path at the top of the run's first block), where every pool of the path has a state."""
        if self._pairs[0] is not batch:
            key, path = evaluation_pairs(batch.trigger_pool, batch.trigger_key, self.paths, batch.evaluate_top)
            key, path = with_state(key, path, self.paths, batch.log_offsets, batch.log_key)
            block = ((key + 1) >> KEY_TX_BITS).astype(np.int32)  # the top of block o is (o << 20) − 1: o too
            self._pairs = (batch, (key.astype(np.int64), path, block))
        return self._pairs[1]

    def device_bytes(self, batch) -> int:
        return len(self.pairs(batch)[0]) * (8 + 4 + 4 + 3 * 8)  # key, path, block; three float outputs

    def wei_per_raw(self, batch) -> np.ndarray:
        """(n_blocks, n_start_tokens): the value of one raw unit of each start token in wei (WETH: exactly 1)."""
        scale = 10.0 ** (18 - self.decimals[self.start_tokens].astype(np.float64))
        out = batch.price_usd[:, self.start_tokens] / batch.eth_usd[:, None] * scale[None, :]
        out[:, self.start_tokens == WETH] = 1.0
        return out

    def evaluate(self, batch, tables=None) -> StrategyResult:
        key, path, block = self.pairs(batch)
        self._pairs = (None, None)
        n = len(key)
        self.stats["screened"] += n
        if n == 0:
            self._evaluated = None
            return StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        be, dp = self.backend, self.device
        wei_per_raw = self.wei_per_raw(batch)
        self._evaluated = (batch, key, path, block, wei_per_raw)
        with self.timed("screen"):
            ctx = batch.context(be)
            outs = (ctx.get("out_amount_in", n, np.float64), ctx.get("out_gross_raw", n, np.float64),
                    ctx.get("out_net_wei", n, np.float64))
            args = (ctx.upload("pair_key", key), ctx.upload("pair_path", path), ctx.upload("pair_block", block),
                    dp.pools, dp.zero_for_one, dp.gamma, dp.is_v3, dp.gas_units, dp.start_slot,
                    *batch.device_state(be), V3_MAX_STEPS, be.to_device(wei_per_raw),
                    be.to_device(batch.gas_price_wei), *outs)
            self.launch("cycles", "screen_pairs", n, args)
            x_all, gross_all, net = (be.to_host(o) for o in outs)
            gross_wei = gross_all * wei_per_raw[block, dp.start_slot_host[path]]
            candidates = np.flatnonzero(self.passes_screen(net, gross_wei))
            x, gross, net = x_all[candidates], gross_all[candidates], net[candidates]
        if len(candidates) == 0:
            return StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        with self.timed("exact"):
            key, path = key[candidates], path[candidates]
            opportunities = self.opportunities(batch, key, path, x, gross, net)
            chosen = select(key, path, net, self.paths)
            trades = reprice(batch, self.paths, path[chosen], key[chosen], x[chosen], self.gas, wei_per_raw,
                             dp.start_slot_host)
            taken = []
            for trade, screened in zip(trades, net[chosen].tolist()):
                if self.takes(trade, screened):
                    taken.append(trade)
        return StrategyResult(opportunities, taken)

    def opportunities(self, batch, key, path, x, gross, net) -> pa.Table:
        """The OPPORTUNITIES rows of the candidates (key, path) with their screened figures."""
        block_offset = (key + 1) >> KEY_TX_BITS
        return pa.Table.from_arrays([
            pa.array(["arbitrage"] * len(key), pa.string()), batch.first_block + block_offset,
            (key - (block_offset << KEY_TX_BITS)).astype(np.int32), path.astype(np.int32),
            self.paths.start_token[path].astype(np.int32), self.paths.hops[path].astype(np.int32), x, gross, net,
        ], schema=schema.OPPORTUNITIES)

    # -- the ordered exact pass: pairs through a pool our bundles changed are screened again ----------------------
    can_rescreen = True

    def rescreen_keys(self, batch) -> np.ndarray:
        if self._evaluated is None or self._evaluated[0] is not batch:
            return np.zeros(0, np.int64)
        keys = self._evaluated[1]
        return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys

    def rescreen(self, batch, key: int, view) -> tuple[set, StrategyResult]:
        """The pairs of point `key` whose path goes through a forked pool, screened again by the same kernel on
        the current state (`view`: gpubt.market.fork.ForkView), then selected and priced exactly as `evaluate`
        does. Their earlier proposals are superseded: what the changed state made profitable is found here, and what
        it closed is gone. Returns (the paths screened again, their opportunities and proposals)."""
        _, keys, paths, blocks, wei_per_raw = self._evaluated
        lo, hi = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
        nothing = StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        if lo == hi:
            return set(), nothing
        path = paths[lo:hi]
        hop_pools = self.paths.pools[path]
        touch = view.forked[hop_pools].any(axis=1)
        if not touch.any():
            return set(), nothing
        path, hop_pools = path[touch], hop_pools[touch]
        n = len(path)
        self.stats["screened"] += n
        with self.timed("screen"):
            outs = (np.zeros(n), np.zeros(n), np.zeros(n))
            block = blocks[lo:hi][touch]
            if self._host is None:
                self._host = Backend("cpu")
            self._host.launch("cycles", "screen_pairs_serial", n, (
                np.full(n, key, np.int64), path, block, self.paths.pools, self.paths.zero_for_one, self.paths.gamma,
                self.paths.is_v3, self._gas_units, self.device.start_slot_host, *view.kernel_state(), V3_MAX_STEPS, wei_per_raw, batch.gas_price_wei, *outs))
            x, gross, net = outs
            gross_wei = gross * wei_per_raw[block, self.device.start_slot_host[path]]
            cand = np.flatnonzero(self.passes_screen(net, gross_wei))
        superseded = set(path.tolist())
        if len(cand) == 0:
            return superseded, nothing
        with self.timed("exact"):
            point = np.full(len(cand), key, np.int64)
            opportunities = self.opportunities(batch, point, path[cand], x[cand], gross[cand], net[cand])
            chosen = select(point, path[cand], net[cand], self.paths)
            trades = reprice(batch, self.paths, path[cand][chosen], point[chosen], x[cand][chosen], self.gas,
                             wei_per_raw, self.device.start_slot_host)
            taken = [t for t, screened in zip(trades, net[cand][chosen].tolist()) if self.takes(t, screened)]
        for trade in taken:
            trade["_current"] = True  # priced on the forks' current states (run/execution.py)
        return superseded, StrategyResult(opportunities, taken)

