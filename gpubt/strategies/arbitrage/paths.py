"""Arbitrage's candidates: simple cycles through the start tokens (`Paths`, enumerated once per run) and, per
batch, the (point, path) evaluation pairs the market's state changes trigger."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.kernels.compile import cached_njit


@dataclass(frozen=True)
class Paths:
    """P cycles of at most H hops; ragged paths are padded with pool -1.

    pools[p, h]        pool_id of hop h
    zero_for_one[p, h] hop h sells token0 for token1
    gamma[p, h]        kept fraction of the input (1 − fee_ppm/1e6, V2 and V3 alike)
    fee_ppm[p, h]      the hop's pool fee in millionths (V3: pips)
    is_v3[p, h]        hop h is a Uniswap V3 pool (protocol "v3")
    hops[p]            number of hops; start_token[p] the token the cycle starts and ends in
    pool_offsets / pool_paths: CSR index pool_id → ids of the paths through it
    pool_is_v3 / pool_tick_spacing / pool_fee_ppm: per pool_id (n_pools)
    """

    pools: np.ndarray
    zero_for_one: np.ndarray
    gamma: np.ndarray
    fee_ppm: np.ndarray
    hops: np.ndarray
    start_token: np.ndarray
    pool_offsets: np.ndarray
    pool_paths: np.ndarray
    is_v3: np.ndarray
    pool_is_v3: np.ndarray
    pool_tick_spacing: np.ndarray
    pool_fee_ppm: np.ndarray

    @property
    def has_v3(self) -> bool:
        """Some pool of the market is V3 (its state log then carries V3 entries)."""
        return bool(self.pool_is_v3.any())

    def __len__(self) -> int:
        return self.pools.shape[0]

    def through(self, pool_ids: np.ndarray) -> np.ndarray:
        """Concatenated ids of the paths through each of `pool_ids` (with repeats, one run per pool)."""
        starts = self.pool_offsets[pool_ids]
        counts = self.pool_offsets[pool_ids + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, np.int32)
        # ranges [start, start+count) concatenated, without a Python loop
        run_starts = np.repeat(starts - np.cumsum(counts) + counts, counts)
        return self.pool_paths[np.arange(total) + run_starts]


def enumerate_cycles(pools: pa.Table, start_tokens, max_hops: int = 3, min_hops: int = 2) -> Paths:
    """Every simple cycle of min_hops..max_hops pools that starts and ends in one of `start_tokens`.

    A cycle never reuses a pool and visits each intermediate token once; both directions of a cycle are kept
    (at most one of them can be profitable at a time). V2 and V3 pools (the `protocol` column) mix freely.
    """
    if max_hops < 2:
        raise ValueError(f"max_hops = {max_hops}: a cycle needs at least 2 hops")
    pool_id = pools.column("pool_id").to_numpy()
    token0 = pools.column("token0").to_numpy()
    token1 = pools.column("token1").to_numpy()
    fee_ppm = pools.column("fee_ppm").to_numpy()
    protocol = np.asarray(pools.column("protocol").to_pylist(), dtype=object)
    unknown = sorted(set(protocol.tolist()) - {"v2", "v3"})
    if unknown:
        raise ValueError(f"pools: protocol {unknown[0]!r} is not supported (v2 or v3)")
    n_pools = int(pool_id.max()) + 1 if len(pool_id) else 0

    adjacency: dict[int, list[tuple[int, int, bool]]] = {}
    for pid, t0, t1 in zip(pool_id.tolist(), token0.tolist(), token1.tolist()):
        adjacency.setdefault(t0, []).append((pid, t1, True))
        adjacency.setdefault(t1, []).append((pid, t0, False))

    found: list[tuple[int, list[int], list[bool]]] = []

    def extend(start, token, used_pools, used_tokens, hops_pools, hops_dir):
        for pid, nxt, zfo in adjacency.get(token, ()):
            if pid in used_pools:
                continue
            if nxt == start:
                if len(hops_pools) + 1 >= min_hops:
                    found.append((start, hops_pools + [pid], hops_dir + [zfo]))
                continue
            if nxt in used_tokens or len(hops_pools) + 1 >= max_hops:
                continue
            used_pools.add(pid)
            used_tokens.add(nxt)
            extend(start, nxt, used_pools, used_tokens, hops_pools + [pid], hops_dir + [zfo])
            used_pools.discard(pid)
            used_tokens.discard(nxt)

    for start in start_tokens:
        extend(int(start), int(start), set(), {int(start)}, [], [])

    n = len(found)
    out_pools = np.full((n, max_hops), -1, np.int32)
    out_zfo = np.zeros((n, max_hops), np.bool_)
    out_fee = np.zeros((n, max_hops), np.int32)
    hops = np.zeros(n, np.int32)
    start_token = np.zeros(n, np.int32)
    fee_by_pool = np.zeros(n_pools, np.int32)
    fee_by_pool[pool_id] = fee_ppm
    pool_is_v3 = np.zeros(n_pools, np.bool_)
    pool_is_v3[pool_id] = protocol == "v3"
    pool_tick_spacing = np.zeros(n_pools, np.int32)
    if "tick_spacing" in pools.column_names:
        pool_tick_spacing[pool_id] = pools.column("tick_spacing").fill_null(0).to_numpy()
    for p, (start, hop_pools, hop_dir) in enumerate(found):
        h = len(hop_pools)
        out_pools[p, :h] = hop_pools
        out_zfo[p, :h] = hop_dir
        out_fee[p, :h] = fee_by_pool[hop_pools]
        hops[p] = h
        start_token[p] = start
    gamma = np.where(out_pools >= 0, 1.0 - out_fee / 1e6, 0.0)
    is_v3 = (out_pools >= 0) & pool_is_v3[np.maximum(out_pools, 0)]

    flat_pool = out_pools.ravel()
    flat_path = np.repeat(np.arange(n, dtype=np.int32), max_hops)
    keep = flat_pool >= 0
    order = np.argsort(flat_pool[keep], kind="stable")
    pool_paths = flat_path[keep][order].astype(np.int32)
    counts = np.bincount(flat_pool[keep], minlength=n_pools)
    pool_offsets = np.zeros(n_pools + 1, np.int64)
    np.cumsum(counts, out=pool_offsets[1:])
    return Paths(out_pools, out_zfo, gamma, out_fee, hops, start_token, pool_offsets, pool_paths, is_v3, pool_is_v3,
                 pool_tick_spacing, fee_by_pool)


def resolve_tokens(dataset, names) -> np.ndarray:
    """Token ids for a list of symbols or ids; an unknown or ambiguous name raises naming the tokens file."""
    symbols = dataset.tokens.column("symbol").to_pylist()
    ids = dataset.tokens.column("token_id").to_pylist()
    hubs = [s for s, hub in zip(symbols, dataset.tokens.column("is_hub").to_pylist()) if hub and s]
    where = dataset.root / "tokens.parquet"
    out = []
    for name in names:
        if isinstance(name, int) or str(name).isdigit():
            if int(name) not in ids:
                raise schema.SchemaError(f"strategy.arbitrage.start_tokens: token id {name} is not in {where}")
            out.append(int(name))
            continue
        matches = [i for s, i in zip(symbols, ids) if s == name]
        if not matches:
            raise schema.SchemaError(f"strategy.arbitrage.start_tokens: no token {name!r} in {where} (its hubs: "
                                     f"{', '.join(hubs[:8]) or 'none'}; a token id works too)")
        if len(matches) > 1:
            raise schema.SchemaError(f"strategy.arbitrage.start_tokens: {len(matches)} tokens of {where} are "
                                     f"{name!r} (ids {', '.join(map(str, matches[:5]))}): name it by its token id")
        out.append(matches[0])
    return np.asarray(out, np.int32)


def evaluation_pairs(trig_pool: np.ndarray, trig_key: np.ndarray, paths: Paths, evaluate_top: bool):
    """(pair_key, pair_path) sorted by (key, path), each once: the paths through each triggering (pool, key), and
    with `evaluate_top` every path at key −1.

    Triggers are put in key order, so the pairs come out grouped by key with each pool's paths ascending
    (`Paths.pool_paths` is sorted per pool). Only a key with several triggers (a tx touching several pools) can
    list a path twice or out of order, so only its pairs are sorted and deduplicated, then merged back. Sorting
    every pair took ~6 % of the loop on mainnet-month (~10,000 pairs a block)."""
    if len(paths) == 0:  # no cycles (a run of other strategies only)
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    by_key = np.argsort(trig_key, kind="stable")
    trig_pool, trig_key = trig_pool[by_key], trig_key[by_key]
    counts = paths.pool_offsets[trig_pool + 1] - paths.pool_offsets[trig_pool]
    n = max(len(paths), 1)
    code = (np.repeat(trig_key, counts) + 1) * n + paths.through(trig_pool)
    same = trig_key[1:] == trig_key[:-1]
    shared = np.zeros(len(trig_key), np.bool_)
    shared[1:] |= same
    shared[:-1] |= same
    if shared.any():
        in_shared = np.repeat(shared, counts)
        merged = np.sort(code[in_shared])
        merged = merged[np.concatenate(([True], merged[1:] != merged[:-1]))]
        rest = code[~in_shared]  # sorted: one trigger per key, its pool's paths ascending
        code = np.insert(rest, np.searchsorted(rest, merged), merged)  # keys differ: no code is in both
    if evaluate_top and len(paths):
        code = np.concatenate([np.arange(len(paths), dtype=np.int64), code])  # key −1: (−1 + 1)·n + path
    return code // n - 1, (code % n).astype(np.int32)


def with_state(pair_key: np.ndarray, pair_path: np.ndarray, paths: Paths, log_offsets: np.ndarray,
                log_key: np.ndarray):
    """The pairs whose every pool has a state at the pair's key. A pool created inside the range has none before
    its first event: the screen would price a path through it at 0 (a candidate once the threshold is <= −gas)
    and exact re-pricing would have no reserves to price it with."""
    if not len(pair_key):
        return pair_key, pair_path
    has_state = log_offsets[1:] > log_offsets[:-1]
    first_key = np.full(len(has_state), np.iinfo(np.int64).max, np.int64)
    first_key[has_state] = log_key[log_offsets[:-1][has_state]]  # a pool's log is sorted by key
    hop_ready = np.where(paths.pools >= 0, first_key[np.maximum(paths.pools, 0)], -1)
    path_ready = hop_ready.max(axis=1)  # the first key at which every pool of the path has a state
    if (path_ready <= -1).all():  # every path has its state at the batch's top: nothing to drop
        return pair_key, pair_path
    keep = pair_key >= path_ready[pair_path]
    return pair_key[keep], pair_path[keep]


@cached_njit
def point_pairs(key, relevant, pair_key, pair_path, cand_key, cand_path, points, path_pools, pool_offsets,
                pool_paths, first_key, seen):
    """The ordered pass's pair lists at one point (`Arbitrage.rescreen`), in one call: its many small NumPy steps
    cost ~40 µs a point in dispatch alone, over the ~10^5 points of a mainnet-month partition.

    `relevant` (n_pools + 1; the last entry is the −1 padding's): pools forked or touched here. Returns (lo, hi):
    the point's range of the sorted evaluated pairs `pair_key`; the number of them through a relevant pool; (c_lo,
    c_hi) and a mask `touching` of the point's candidates (`cand_key` sorted) through a relevant pool; and the
    sorted ids of the distinct paths through any of `points` that go through a relevant pool and whose every pool
    has a state at `key` (`first_key` <= key). `seen` (n_paths, False) is scratch, left False."""
    hops = path_pools.shape[1]
    lo = np.searchsorted(pair_key, key, "left")
    hi = np.searchsorted(pair_key, key, "right")
    stale_pairs = 0
    for i in range(lo, hi):
        for h in range(hops):
            if relevant[path_pools[pair_path[i], h]]:
                stale_pairs += 1
                break
    c_lo = np.searchsorted(cand_key, key, "left")
    c_hi = np.searchsorted(cand_key, key, "right")
    touching = np.zeros(c_hi - c_lo, np.bool_)
    for i in range(c_lo, c_hi):
        for h in range(hops):
            if relevant[path_pools[cand_path[i], h]]:
                touching[i - c_lo] = True
                break
    total = 0
    for pool in points:
        total += pool_offsets[pool + 1] - pool_offsets[pool]
    found = np.empty(total, pool_paths.dtype)
    n = 0
    for pool in points:
        for j in range(pool_offsets[pool], pool_offsets[pool + 1]):
            path = pool_paths[j]
            if not seen[path]:
                seen[path] = True
                found[n] = path
                n += 1
    for i in range(n):
        seen[found[i]] = False
    found = np.sort(found[:n])
    m = 0
    for i in range(n):
        path = found[i]
        any_relevant, all_state = False, True
        for h in range(hops):
            pool = path_pools[path, h]
            any_relevant = any_relevant or relevant[pool]
            all_state = all_state and first_key[pool] <= key
        if any_relevant and all_state:
            found[m] = path
            m += 1
    return lo, hi, stale_pairs, c_lo, c_hi, touching, found[:m]
