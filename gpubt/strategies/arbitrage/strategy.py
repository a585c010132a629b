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
from gpubt.kernels.cycles import KEY_TX_BITS, V3_MAX_STEPS
from gpubt.market.batch import WETH
from gpubt.strategies.arbitrage.bound import ScreenBound
from gpubt.strategies.arbitrage.paths import (enumerate_cycles, evaluation_pairs, point_pairs, resolve_tokens,
                                              with_state)
from gpubt.strategies.arbitrage.pricing import reprice, select
from gpubt.backend import cpu_backend
from gpubt.strategies.base import Strategy, StrategyResult


NO_OPPORTUNITIES = schema.OPPORTUNITIES.empty_table()  # (building an empty table costs ~30 µs: the ordered pass asks often)


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


def screen_bound(cfg, backend) -> bool:
    """strategy.arbitrage.screen_bound: true, false, or auto (on unless the screen runs on a CUDA device, where
    every pair is evaluated in parallel and the bound's serial walk on the host is unmeasured)."""
    value = cfg.get("screen_bound", "auto")
    if value == "auto":
        return backend.name != "cuda"
    if isinstance(value, bool):
        return value
    raise schema.SchemaError(f"strategy.arbitrage.screen_bound={value!r}: use true, false or auto")


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
        self._evaluated = None      # (batch, pair keys, paths, blocks, wei_per_raw, first state key per pool): rescreen
        self._candidates = None     # its candidates (key, path, x, net) and their exact pricing {(key, path): trade}
        self._priced: dict = {}
        self._host = None           # the CPU backend `rescreen` screens on (the ordered pass runs on the host)
        self._seen = None           # point_pairs' scratch mask over the paths
        self._found: list = []      # (key, paths, x, gross, net) `rescreen` found this batch (`rescreened`)
        self._gas_units = gas_units
        self.bound = ScreenBound(paths, gas_units, start_slot) if screen_bound(cfg, backend) else None
        self.stats["evaluated"] = 0  # pairs the screen kernel evaluated (the others: the bound showed they cannot pass)
        self.stats["rescreened"] = 0  # pairs screened again by the ordered pass on forked pools (`rescreen`)

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
        self._found = []
        n = len(key)
        self.stats["screened"] += n
        if n == 0:
            self._evaluated = None
            return StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        be, dp = self.backend, self.device
        wei_per_raw = self.wei_per_raw(batch)
        has_state = batch.log_offsets[1:] > batch.log_offsets[:-1]
        first_key = np.full(len(has_state) + 1, np.iinfo(np.int64).max, np.int64)  # + 1: −1 padding reads it
        first_key[:-1][has_state] = batch.log_key[batch.log_offsets[:-1][has_state]]
        first_key[-1] = np.iinfo(np.int64).min
        self._evaluated = (batch, key, path, block, wei_per_raw, first_key)
        with self.timed("screen"):
            if self.bound is not None:  # the pairs that can pass the screen: the kernel evaluates those only
                evaluated = np.flatnonzero(self.bound.keep(batch, key, path, block, wei_per_raw, self.min_profit_wei))
                key, path, block = key[evaluated], path[evaluated], block[evaluated]
            m = len(key)
            self.stats["evaluated"] += m
            ctx = batch.context(be)
            outs = (ctx.get("out_amount_in", m, np.float64), ctx.get("out_gross_raw", m, np.float64),
                    ctx.get("out_net_wei", m, np.float64))
            args = (ctx.upload("pair_key", key), ctx.upload("pair_path", path), ctx.upload("pair_block", block),
                    dp.pools, dp.zero_for_one, dp.gamma, dp.is_v3, dp.gas_units, dp.start_slot,
                    *batch.device_state(be), V3_MAX_STEPS, be.to_device(wei_per_raw),
                    be.to_device(batch.gas_price_wei), *outs)
            if m:
                self.launch("cycles", "screen_pairs", m, args)
            x_all, gross_all, net = (be.to_host(o) for o in outs)
            gross_wei = gross_all * wei_per_raw[block, dp.start_slot_host[path]]
            candidates = np.flatnonzero(self.passes_screen(net, gross_wei))
            x, gross, net = x_all[candidates], gross_all[candidates], net[candidates]
        self._candidates = (key[candidates], path[candidates], x, net)
        self._priced = {}
        if len(candidates) == 0:
            return StrategyResult(schema.OPPORTUNITIES.empty_table(), [])
        with self.timed("exact"):
            key, path = key[candidates], path[candidates]
            opportunities = self.opportunities(batch, key, path, x, gross, net)
            chosen = select(key, path, net, self.paths)
            trades = reprice(batch, self.paths, path[chosen], key[chosen], x[chosen], self.gas, wei_per_raw,
                             dp.start_slot_host, self.exact())
            taken = []
            for k, p, trade, screened in zip(key[chosen].tolist(), path[chosen].tolist(), trades,
                                             net[chosen].tolist()):
                ok = self.takes(trade, screened)
                self._priced[(k, p)] = (trade if ok else None, screened)  # rescreen may choose it again
                if ok:
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

    def rescreen(self, batch, key: int, view, touched, changed, triggers) -> tuple[set, StrategyResult]:
        """At point `key` of the ordered pass, where our bundles forked pools: the paths through a pool whose state
        changed here (the projected batch's triggers, less the pools the re-executed tx touched, plus those it
        changed on the forks) that go through a forked or touched pool are screened again by the same kernel on
        the current state (`view`). If any changed the point's picture, the point's selection is made again, as
        `evaluate` makes it, from those and the projected candidates that touch no such pool, and priced exactly
        (reusing the projected pricing where the states are the same): what the changed state made profitable is
        found, and what it closed is gone. Returns (the paths of the point's earlier proposals, now superseded;
        the point's proposals), or (empty, nothing) when the earlier ones stand; the new opportunities are kept
        for `rescreened`, which the pass asks once the batch is walked."""
        nothing = StrategyResult(NO_OPPORTUNITIES, [])
        _, keys, paths, _, wei_per_raw, first_key = self._evaluated
        relevant = view.forked
        if touched:
            relevant = relevant.copy()
            relevant[list(touched)] = True
        ck, cp, cx, cn = self._candidates
        points = np.asarray(sorted((set(triggers) - set(touched)) | set(changed)), np.int32)
        if self._seen is None or len(self._seen) != len(self.paths):
            self._seen = np.zeros(len(self.paths), np.bool_)
        # the point's evaluated pairs through a relevant pool (stale), its candidates through one (touching), and
        # the paths through a pool whose state changed here that go through a relevant pool and whose every pool
        # has a state here (first_key)
        lo, hi, stale_pairs, c_lo, c_hi, touching, path = point_pairs(
            key, relevant, keys, paths, ck, cp, points, self.paths.pools, self.paths.pool_offsets,
            self.paths.pool_paths, first_key, self._seen)
        stale = stale_pairs > 0
        if stale:  # what evaluate counted of them was counted on a state that is gone
            self._uncount(key, stale_pairs, cp[c_lo:c_hi][touching])
        n = len(path)
        if n == 0 and not stale:
            return set(), nothing
        x = gross = net = np.zeros(0)
        if n:
            self.stats["screened"] += n
            self.stats["rescreened"] += n
            b = (key + 1) >> KEY_TX_BITS
            with self.timed("screen"):
                if self.bound is not None:  # the paths that can pass the screen on the forked state
                    path = path[self.bound.keep_at(key, path, view.kernel_state(), batch.gas_price_wei[b],
                                                   wei_per_raw[b], self.min_profit_wei)]
                m = len(path)
                self.stats["evaluated"] += m
                outs = (np.empty(m), np.empty(m), np.empty(m))  # the kernel writes every entry
                if self._host is None:
                    self._host = cpu_backend()
                if m:
                    self._host.launch("cycles", "screen_pairs_serial", m, (
                        np.full(m, key, np.int64), path, np.full(m, b, np.int32), self.paths.pools,
                        self.paths.zero_for_one, self.paths.gamma, self.paths.is_v3, self._gas_units,
                        self.device.start_slot_host, *view.kernel_state(), V3_MAX_STEPS, wei_per_raw,
                        batch.gas_price_wei, *outs))
                x, gross, net = outs
                cand = np.flatnonzero(self.passes_screen(
                    net, gross * wei_per_raw[b][self.device.start_slot_host[path]]))  # one block: a row
            path, x, gross, net = path[cand], x[cand], gross[cand], net[cand]
        if len(path) == 0 and not stale:
            return set(), nothing
        # the point's selection again: the new candidates and the projected ones through no changed pool
        kept = np.arange(c_lo, c_hi)[~touching]
        all_path = np.concatenate([cp[kept], path]).astype(np.int32)
        all_x, all_net = np.concatenate([cx[kept], x]), np.concatenate([cn[kept], net])
        projected = np.zeros(len(all_path), np.bool_)
        projected[:len(kept)] = True
        point = np.full(len(all_path), key, np.int64)
        with self.timed("exact"):
            if len(path):  # its opportunities: one table a batch (`rescreened`)
                self._found.append((key, path, x, gross, net))
            chosen = select(point, all_path, all_net, self.paths)
            taken, fresh = [], [i for i in chosen.tolist() if not (projected[i] and (key, int(all_path[i])) in self._priced)]
            trades = dict(zip(fresh, reprice(batch, self.paths, all_path[fresh], point[fresh], all_x[fresh], self.gas,
                                             wei_per_raw, self.device.start_slot_host,
                                             self.exact(on_host=True)))) if fresh else {}
            for i in chosen.tolist():
                if i in trades:
                    trade = trades[i] if self.takes(trades[i], float(all_net[i])) else None
                else:  # priced in `evaluate` on the same states (its pools are not forked)
                    trade = self._priced[(key, int(all_path[i]))][0]
                if trade is not None:
                    trade["_current"] = True  # priced on the forks' current states (run/execution.py)
                    taken.append(trade)
            for i in sorted(set(range(len(kept))) - set(chosen.tolist())):  # priced before, not chosen now
                self._uncount_pricing(key, int(all_path[i]))
        return set(paths[lo:hi].tolist()), StrategyResult(NO_OPPORTUNITIES, taken)

    def rescreened(self, batch) -> pa.Table | None:
        """The opportunities `rescreen` found in this batch, in the order it found them (then forgotten)."""
        found, self._found = self._found, []
        if not found:
            return None
        path = np.concatenate([f[1] for f in found])
        with self.timed("exact"):
            key = np.repeat(np.asarray([f[0] for f in found], np.int64), [len(f[1]) for f in found])
            return self.opportunities(batch, key, path, *(np.concatenate([f[j] for f in found]) for j in (2, 3, 4)))

    def _uncount(self, key: int, pairs: int, candidates: np.ndarray) -> None:
        """Take back what `evaluate` counted of a point's pairs through a pool forked there: they were screened
        and priced on the projected state, which the ordered pass found gone (`rescreen` counts them again where
        they are evaluated on the real one); their opportunities are dropped from the table (`stale`)."""
        self.stats["screened"] -= pairs
        self.stats["candidates"] -= len(candidates)
        for path in candidates.tolist():
            self.stale.append((key, path))
            self._uncount_pricing(key, path)

    def _uncount_pricing(self, key: int, path: int) -> None:
        priced = self._priced.pop((key, path), None)
        if priced is not None:
            trade, screened = priced
            self.stats["exact_priced"] -= 1
            self.stats["exact_priced_screen_wei"] -= screened
            if trade is None:
                self.stats["exact_rejected"] -= 1
            else:
                self.stats["trades"] -= 1
                self.stats["trades_net_wei"] -= int(trade["net_profit_wei"])
