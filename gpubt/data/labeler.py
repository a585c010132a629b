"""Finds executed MEV in ingested logs: sandwiches, cyclic arbitrages and JIT liquidity sandwiches.

The rules are those of mev-inspect-js (Destiner/mev-inspect-js, MIT), checked against its mainnet fixtures
(tests/data/test_labeler.py):

- **sandwich**: in one block, a front swap F on a pool (its recipient, the *sandwicher*, is not a known router),
  then, on the same pool and in other transactions than F's, at least one victim (a swap in F's direction whose
  sender is not the sandwicher, or a deposit that adds only F's input token), then a back swap B in the opposite
  direction whose sender is the sandwicher. The first such B closes the sandwich. Every swap is tried as F.
  Profit, in F's input token: of the back-run valued at the front-run's price and the front-run valued at the
  back-run's price, the one smaller in magnitude (mev-inspect-js `getProfit`, exact integers, may be negative).
- **arbitrage**: within one transaction, a route of swaps s0 → … → sk (k ≥ 1) where each swap's output token is
  the next one's input token, the amounts agree within 1 %, the legs are linked (out.recipient == in.sender, or
  out.recipient == in.pool, or out.pool == in.sender), sk ends in s0's input token, and s0's sender (not a pool of
  the transaction) is sk's recipient; the shortest route from each start wins, a swap is used once, and a route
  counts only when it gains: profit = sk.amount_out − s0.amount_in > 0, in s0's input token (a route that does
  not gain leaves its swaps to other starts: mev-inspect-js's "2-swap internal arbitrage" fixture needs this).
- **jit**: on a V3 pool, a mint and a later burn in the same block by the same owner over the same ticks, in
  other transactions than at least one swap of the pool between them whose sender and recipient are not the
  owner (and whose tick after the swap, where known, lies in [tick_lower, tick_upper]). Profit per token =
  burned − minted; the label carries token0's, the attacks table both.

Work is vectorized: the tables become int32 codes and float64 screening values once; numba scans the
(block, pool) runs for sandwiches and the transactions for arbitrage routes; only transactions whose swaps are
not one simple cycle (rare) take mev-inspect-js's route search in Python, and every profit is exact (ints).
"""
from __future__ import annotations

import itertools

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema

KINDS = ("sandwich", "arbitrage", "jit")

# Routers and aggregators that receive swap output on a user's behalf: never a sandwicher (mev-inspect-js keeps
# the same kind of list). Lower-case addresses.
KNOWN_ROUTERS = frozenset({
    "0x7a250d5630b4cf539739df2c5dacb4c659f2488d",  # Uniswap V2 Router02
    "0xf164fc0ec4e93095b804a4795bbe1e041497b92a",  # Uniswap V2 Router01
    "0xe592427a0aece92de3edee1f18e0157c05861564",  # Uniswap V3 SwapRouter
    "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45",  # Uniswap SwapRouter02
    "0xef1c6e67703c7bd7107eed8303fbe6ec2554bf6b",  # Uniswap Universal Router
    "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad",  # Uniswap Universal Router 2
    "0xd9e1ce17f2641f24ae83637ab66a2cca9c378b9f",  # SushiSwap Router
    "0x11111112542d85b3ef69ae05771c2dccff4faa26",  # 1inch V3
    "0x1111111254fb6c44bac0bed2854e76f90643097d",  # 1inch V4
    "0x1111111254eeb25477b68fb85ed929f73a960582",  # 1inch V5
    "0x111111125421ca6dc452d289314280a0f8842a65",  # 1inch V6
    "0xdef1c0ded9bec7f1a1670819833240f027b25eff",  # 0x Exchange Proxy
    "0xdef171fe48cf0115b1d80b88dc8eab59176fee57",  # ParaSwap V5 Augustus
    "0x881d40237659c251811cec9c364ef91dc08d300c",  # MetaMask Swap Router
})

# One row per label row (same order): what LABELS cannot hold. Victims of a sandwich are `victim_tx_hashes`.
ATTACKS = pa.schema([
    ("label_index", pa.int32()),               # row of the labels table
    ("kind", pa.string()),
    ("block_number", pa.int64()),
    ("tx_hashes", pa.list_(pa.string())),      # the attacker's txs: sandwich [front, back], arbitrage [tx], jit [mint, burn]
    ("victim_tx_hashes", pa.list_(pa.string())),
    ("event_rows", pa.list_(pa.int64())),      # rows of the input events: sandwich [front, back], arbitrage the route, jit [mint, burn]
    ("victim_event_rows", pa.list_(pa.int64())),
    ("beneficiary", pa.string()),              # front swap's recipient / route start's sender / mint owner
    ("tx_from", pa.string()),                  # EOA of the attacker's last tx, when per-tx metadata was given
    ("other_token", pa.int32()),               # jit: token1 (the label carries token0's delta); null otherwise
    ("other_profit_raw", schema.AMOUNT),
])

_NO_ADDRESS = -1
_SLOW_ROUTE_MAX_SWAPS = 32   # mev-inspect-js's route search is exponential in the worst case


# ---------------------------------------------------------------------------------------------------------------
# numba scans (host-side; flat arrays in, counts / indices out, no raise)

@numba.njit(cache=True)
def _sandwich_scan_nb(seg_id, is_swap, zfo, victim_side, sender, recipient, tx_id, front_ok, fill,
                      out_front, out_back, out_vic_ptr, out_vic):
    """Rows sorted by (block, pool, tx, log). With fill=False only counts: returns (n_sandwiches, victim
    buffer size); with fill=True writes fronts, backs and victims (CSR by out_vic_ptr).

    victim_side: for deposit rows, 0 = adds only token0, 1 = adds only token1, -1 = not a victim candidate.
    """
    n = seg_id.shape[0]
    n_sw = 0
    n_vic = 0
    peak = 0
    for i in range(n):
        if not front_ok[i]:
            continue
        sandwicher = recipient[i]
        front_in = 0 if zfo[i] else 1
        n_found = 0
        closed = False
        j = i + 1
        while j < n and seg_id[j] == seg_id[i]:
            if tx_id[j] != tx_id[i]:
                victim = False
                if is_swap[j]:
                    if zfo[j] == zfo[i]:
                        victim = sender[j] != sandwicher
                    elif sender[j] == sandwicher and n_found > 0:
                        closed = True
                        break
                else:
                    victim = victim_side[j] == front_in and sender[j] != sandwicher
                if victim:
                    if fill:
                        out_vic[n_vic + n_found] = j
                    n_found += 1
                    peak = max(peak, n_vic + n_found)
            j += 1
        if closed:
            if fill:
                out_front[n_sw] = i
                out_back[n_sw] = j
                out_vic_ptr[n_sw + 1] = n_vic + n_found
            n_sw += 1
            n_vic += n_found
    return n_sw, peak


@numba.njit(cache=True)
def _arbitrage_scan_nb(tx_start, tin, tout, sender, recipient, pool_addr, amount_in, amount_out, out_status):
    """Per transaction (rows sorted by block, tx, log; tx_start[t]:tx_start[t+1] are its swaps):
    status 1 = its swaps in log order are one simple cycle (mev-inspect-js finds exactly it), 2 = a start/end
    pair exists but the cycle is not simple (exact route search on the host), 0 = no arbitrage possible."""
    for t in range(tx_start.shape[0] - 1):
        a = tx_start[t]
        b = tx_start[t + 1]
        k = b - a
        out_status[t] = 0
        if k < 2:
            continue
        candidate = False
        for i in range(a, b):
            if _is_pool_of(sender[i], pool_addr, a, b):
                continue
            for j in range(a, b):
                if j != i and tin[i] == tout[j] and sender[i] == recipient[j]:
                    candidate = True
                    break
            if candidate:
                break
        if not candidate:
            continue
        simple = tin[a] == tout[b - 1] and sender[a] == recipient[b - 1] and not _is_pool_of(sender[a], pool_addr, a, b)
        for h in range(a, b):
            if not simple:
                break
            for g in range(a, h):
                if tin[g] == tin[h]:
                    simple = False
            if h + 1 < b:
                linked = (pool_addr[h] == sender[h + 1] or recipient[h] == pool_addr[h + 1]
                          or recipient[h] == sender[h + 1])
                x = amount_out[h]
                y = amount_in[h + 1]
                # clearly within mev-inspect-js's 1 % (|200 (x − y) / (x + y)| < 1); borderline → exact host check
                if not (tout[h] == tin[h + 1] and linked and 200.0 * abs(x - y) < (x + y) * (1.0 - 1e-9)):
                    simple = False
        out_status[t] = 1 if simple else 2


@numba.njit(cache=True)
def _is_pool_of(address, pool_addr, a, b):
    for i in range(a, b):
        if pool_addr[i] == address:
            return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# preparation: tables → flat arrays

def _amounts(events: pa.Table, name: str) -> np.ndarray:
    return pc.cast(events.column(name), pa.float64()).to_numpy(zero_copy_only=False)


def _exact(col, rows) -> list[int]:
    """Exact Python ints of a decimal column at `rows`."""
    return [int(v) for v in col.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()]


def _string_column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).cast(pa.string())


class _Prepared:
    """The events as flat arrays: kinds, tokens, directions, address codes, transaction ids."""

    def __init__(self, events: pa.Table, pools: pa.Table, txs: pa.Table | None):
        n = events.num_rows
        block = events.column("block_number").to_numpy().astype(np.int64)
        tx = events.column("tx_index").to_numpy().astype(np.int64)
        log = events.column("log_index").to_numpy().astype(np.int64)
        if n > 1:
            db, dt, dl = np.diff(block), np.diff(tx), np.diff(log)
            in_order = bool(np.all((db > 0) | ((db == 0) & ((dt > 0) | ((dt == 0) & (dl >= 0))))))
        else:
            in_order = True
        self.order = np.arange(n) if in_order else np.lexsort((log, tx, block))
        o = self.order
        self.events = events
        self.block, self.tx, self.log = block[o], tx[o], log[o]
        self.pool = events.column("pool_id").to_numpy().astype(np.int64)[o]
        kind = _string_column(events, "kind")
        self.is_swap = pc.equal(kind, "swap").to_numpy(zero_copy_only=False)[o]
        self.is_mint = pc.equal(kind, "mint").to_numpy(zero_copy_only=False)[o]
        self.is_burn = pc.equal(kind, "burn").to_numpy(zero_copy_only=False)[o]
        self.a0_in, self.a1_in = _amounts(events, "amount0_in")[o], _amounts(events, "amount1_in")[o]
        self.a0_out, self.a1_out = _amounts(events, "amount0_out")[o], _amounts(events, "amount1_out")[o]

        pool_ids = pools.column("pool_id").to_numpy()
        size = int(max(pool_ids.max(initial=-1), self.pool.max(initial=-1))) + 1
        token0 = np.full(size, -1, np.int64)
        token1 = np.full(size, -1, np.int64)
        is_v3 = np.zeros(size, bool)
        token0[pool_ids] = pools.column("token0").to_numpy()
        token1[pool_ids] = pools.column("token1").to_numpy()
        is_v3[pool_ids] = pc.equal(_string_column(pools, "protocol"), "v3").to_numpy(zero_copy_only=False)
        self.token0, self.token1, self.pool_is_v3 = token0[self.pool], token1[self.pool], is_v3[self.pool]

        # a swap's direction: token0 in (zero_for_one) when it pays out only token1
        self.zfo = (self.a1_out > 0) & (self.a0_out == 0)
        self.tin = np.where(self.zfo, self.token0, self.token1)
        self.tout = np.where(self.zfo, self.token1, self.token0)
        self.amount_in = np.where(self.zfo, self.a0_in, self.a1_in)
        self.amount_out = np.where(self.zfo, self.a1_out, self.a0_out)

        # one address code space for swap senders, recipients, pool addresses and routers
        sender = _string_column(events, "sender")
        recipient = _string_column(events, "recipient") if "recipient" in events.column_names else sender
        pool_address = pools.column("address").cast(pa.string())
        all_addresses = pa.concat_arrays([pc.utf8_lower(sender), pc.utf8_lower(recipient),
                                          pc.utf8_lower(pool_address).combine_chunks()
                                          if isinstance(pool_address, pa.ChunkedArray) else pc.utf8_lower(pool_address)])
        encoded = all_addresses.dictionary_encode()
        codes = pc.fill_null(encoded.indices, _NO_ADDRESS).to_numpy(zero_copy_only=False).astype(np.int64)
        self.address_names = encoded.dictionary
        self.sender = codes[:n][o]
        self.recipient = codes[n:2 * n][o]
        pool_addr_of = np.full(size, _NO_ADDRESS - 1, np.int64)   # never equal to an unknown address
        pool_addr_of[pool_ids] = codes[2 * n:]
        self.pool_addr = pool_addr_of[self.pool]
        router_code = pc.index_in(pa.array(sorted(KNOWN_ROUTERS)), value_set=self.address_names).to_numpy(
            zero_copy_only=False)
        self.is_router_address = np.zeros(len(self.address_names) + 1, bool)
        self.is_router_address[router_code[router_code >= 0].astype(np.int64)] = True

        # transactions: consecutive (block, tx_index) runs
        new_tx = np.ones(n, bool)
        if n > 1:
            new_tx[1:] = (np.diff(self.block) != 0) | (np.diff(self.tx) != 0)
        self.tx_id = np.cumsum(new_tx) - 1
        self.tx_hash = _string_column(events, "tx_hash").take(pa.array(o))

        self.tx_from = self.gas_used = None
        if txs is not None and txs.num_rows:
            at = pc.index_in(self.tx_hash, value_set=_string_column(txs, "tx_hash"))
            self.tx_from = pc.take(_string_column(txs, "tx_from"), at)
            self.gas_used = pc.fill_null(pc.take(txs.column("gas_used"), at), 0).to_numpy(
                zero_copy_only=False).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# detectors: each returns a list of label dicts (with their attack columns)

def _label(p: _Prepared, kind, i, pools, profit_token, profit_raw, gas, tx_rows, victim_rows, event_rows,
           beneficiary_code, other_token=-1, other_profit=None) -> tuple:
    """One label in sorted-row space (ints only; `_assemble` turns them into the output tables)."""
    return (KINDS.index(kind), int(i), [int(q) for q in pools], int(profit_token), int(profit_raw), int(gas),
            [int(r) for r in tx_rows], [int(r) for r in victim_rows], [int(r) for r in event_rows],
            int(beneficiary_code), int(other_token), other_profit)


def _list_column(lists: list[list[int]], values) -> pa.ListArray:
    """ListArray of values(flat int64 indices) with the shape of `lists`."""
    offsets = np.zeros(len(lists) + 1, np.int32)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    flat = np.fromiter(itertools.chain.from_iterable(lists), np.int64, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), values(flat))


def _assemble(p: _Prepared, found: list[tuple]) -> tuple[pa.Table, pa.Table]:
    kind = np.array([f[0] for f in found], np.int64)
    first = np.array([f[1] for f in found], np.int64)
    order = np.lexsort((kind, p.tx[first], p.block[first])) if len(found) else np.zeros(0, np.int64)
    found = [found[k] for k in order]
    kind, first = kind[order], first[order]
    first_arr = pa.array(first)
    # a victim tx with several swaps on the pool is one victim tx
    victim_tx_rows = []
    for f in found:
        seen, rows = set(), []
        for r in f[7]:
            if p.tx_id[r] not in seen:
                seen.add(p.tx_id[r])
                rows.append(r)
        victim_tx_rows.append(rows)
    beneficiary = np.array([f[9] for f in found], np.int64)
    names = p.address_names.take(pa.array(np.maximum(beneficiary, 0), mask=beneficiary < 0))
    other_token = np.array([f[10] for f in found], np.int64)
    labels = pa.Table.from_arrays([
        pa.array(p.block[first], pa.int64()), pa.array(p.tx[first], pa.int32()), p.tx_hash.take(first_arr),
        pa.array(KINDS, pa.string()).take(pa.array(kind)), names,
        _list_column([f[2] for f in found], lambda v: pa.array(v, pa.int32())),
        pa.array([f[3] for f in found], pa.int32()), pa.array([f[4] for f in found], schema.AMOUNT),
        pa.array([f[5] for f in found], pa.int64()),
    ], schema=schema.LABELS)
    last_tx_row = pa.array([f[6][-1] for f in found], pa.int64())
    attacks = pa.Table.from_arrays([
        pa.array(np.arange(len(found)), pa.int32()), labels.column("kind"), labels.column("block_number"),
        _list_column([f[6] for f in found], lambda v: p.tx_hash.take(pa.array(v))),
        _list_column(victim_tx_rows, lambda v: p.tx_hash.take(pa.array(v))),
        _list_column([f[8] for f in found], lambda v: pa.array(p.order[v], pa.int64())),
        _list_column([f[7] for f in found], lambda v: pa.array(p.order[v], pa.int64())),
        names,
        pa.nulls(len(found), pa.string()) if p.tx_from is None else p.tx_from.take(last_tx_row),
        pa.array(np.maximum(other_token, 0), pa.int32(), mask=other_token < 0),
        pa.array([f[11] for f in found], schema.AMOUNT),
    ], schema=ATTACKS)
    return labels, attacks


def _sandwich_profit(f_in, f_out, b_in, b_out) -> int:
    """mev-inspect-js getProfit: the smaller in magnitude of the two one-sided valuations (bigint math)."""
    m = 10**36
    if f_out == 0 or b_in == 0:
        return b_out - f_in
    profit_front = f_out * ((m * b_out) // b_in) // m - f_in
    profit_back = b_out - b_in * ((m * f_in) // f_out) // m
    return profit_front if abs(profit_front) <= abs(profit_back) else profit_back


def _sandwiches(p: _Prepared, known_routers_mask: np.ndarray) -> list[tuple]:
    rows = np.flatnonzero(p.is_swap | p.is_mint)
    if len(rows) == 0:
        return []
    rows = rows[np.lexsort((p.pool[rows], p.block[rows]))]   # stable: (block, pool, tx, log)
    blk, pool = p.block[rows], p.pool[rows]
    new_seg = np.ones(len(rows), bool)
    new_seg[1:] = (np.diff(blk) != 0) | (np.diff(pool) != 0)
    seg_id = np.cumsum(new_seg)
    is_swap = p.is_swap[rows]
    # deposits as victims: only where they move the price like a swap (one-sided adds; not V3, whose one-sided
    # mints are out of range)
    only0 = (p.a0_in[rows] > 0) & (p.a1_in[rows] == 0)
    only1 = (p.a1_in[rows] > 0) & (p.a0_in[rows] == 0)
    victim_side = np.where(~is_swap & ~p.pool_is_v3[rows] & only0, 0,
                           np.where(~is_swap & ~p.pool_is_v3[rows] & only1, 1, -1)).astype(np.int64)
    recipient = p.recipient[rows]
    front_ok = is_swap & (recipient >= 0) & ~known_routers_mask[np.maximum(recipient, 0)] & (p.tin[rows] >= 0)
    args = (seg_id, is_swap, p.zfo[rows], victim_side, p.sender[rows], recipient, p.tx_id[rows], front_ok)
    empty = np.zeros(1, np.int64)
    n_sw, n_vic = _sandwich_scan_nb(*args, False, empty, empty, empty, empty)
    front = np.zeros(n_sw, np.int64)
    back = np.zeros(n_sw, np.int64)
    vic_ptr = np.zeros(n_sw + 1, np.int64)
    vic = np.zeros(max(n_vic, 1), np.int64)
    _sandwich_scan_nb(*args, True, front, back, vic_ptr, vic)
    if n_sw == 0:
        return []
    f, b = rows[front], rows[back]
    ev = p.events
    cols = {c: ev.column(c) for c in ("amount0_in", "amount1_in", "amount0_out", "amount1_out")}
    orig_f, orig_b = p.order[f], p.order[b]
    a0i_f, a1i_f, a0o_f, a1o_f = (_exact(cols[c], orig_f) for c in cols)
    a0i_b, a1i_b, a0o_b, a1o_b = (_exact(cols[c], orig_b) for c in cols)
    out = []
    for s in range(n_sw):
        fi, bi = int(f[s]), int(b[s])
        if p.zfo[fi]:
            f_in, f_out, b_in, b_out = a0i_f[s], a1o_f[s], a1i_b[s], a0o_b[s]
        else:
            f_in, f_out, b_in, b_out = a1i_f[s], a0o_f[s], a0i_b[s], a1o_b[s]
        victims = rows[vic[vic_ptr[s]:vic_ptr[s + 1]]].tolist()
        gas = 0 if p.gas_used is None else int(p.gas_used[fi] + p.gas_used[bi])
        out.append(_label(p, "sandwich", fi, [p.pool[fi]], p.tin[fi], _sandwich_profit(f_in, f_out, b_in, b_out),
                          gas, [fi, bi], victims, [fi, bi], p.recipient[fi]))
    return out


def _equal_within_percent(x: int, y: int) -> bool:
    """mev-inspect-js equalWithPercent(x, y, 1): BigInt 200 (x − y) / (x + y), truncated, strictly inside ±1."""
    if x + y == 0:
        return False
    diff = abs(200 * (x - y)) // (x + y)
    return diff < 1


def _route_search(legs: list[dict]) -> list[list[int]]:
    """mev-inspect-js getTransactionArbitrages over one transaction's swaps (dicts in log order): routes of
    indices into `legs` that end with more of the start token than they began with."""
    pools = {leg["pool_addr"] for leg in legs}

    def outs_match_ins(o, i):
        a, b = legs[o], legs[i]
        return (a["tout"] == b["tin"]
                and (a["pool_addr"] == b["sender"] or a["recipient"] == b["pool_addr"] or a["recipient"] == b["sender"])
                and _equal_within_percent(a["amount_out"], b["amount_in"]))

    def shortest(start, ends, candidates, max_len):
        # JS semantics kept: a max_len of 0 / None means "no limit"
        if not ends:
            return []
        if max_len and max_len < 2:
            return []
        for end in ends:
            if outs_match_ins(start, end):
                return [start, end]
        if max_len and max_len == 2:
            return []
        others = [s for s in candidates if s != start and s not in ends]
        if not others:
            return []
        best: list[int] = []
        remaining = max_len - 1 if max_len else None
        for nxt in others:
            if outs_match_ins(start, nxt):
                sub = shortest(nxt, ends, others, remaining)
                if sub and (not best or len(sub) < len(best)):
                    best = sub
                    remaining = len(sub) - 1
        return [start, *best] if best else []

    start_ends = []
    for s, leg in enumerate(legs):
        ends = [e for e, other in enumerate(legs) if e != s and leg["tin"] == other["tout"]
                and leg["sender"] == other["recipient"] and leg["sender"] not in pools]
        if ends:
            start_ends.append((s, ends))
    used: set[int] = set()
    routes = []
    for s, ends in start_ends:
        if s in used:
            continue
        route = shortest(s, [e for e in ends if e not in used], list(range(len(legs))), None)
        if route and legs[route[-1]]["amount_out"] > legs[route[0]]["amount_in"]:
            routes.append(route)
            used.update(route)
    return routes


def _tx_legs(p: _Prepared, legs_rows: np.ndarray) -> list[tuple]:
    orig = p.order[legs_rows]
    a = {c: _exact(p.events.column(c), orig) for c in ("amount0_in", "amount1_in", "amount0_out", "amount1_out")}
    return [{"tin": int(p.tin[r]), "tout": int(p.tout[r]), "sender": int(p.sender[r]),
             "recipient": int(p.recipient[r]), "pool_addr": int(p.pool_addr[r]),
             "amount_in": a["amount0_in"][k] if p.zfo[r] else a["amount1_in"][k],
             "amount_out": a["amount1_out"][k] if p.zfo[r] else a["amount0_out"][k]}
            for k, r in enumerate(legs_rows)]


def _route_profits(p: _Prepared, routes: list[np.ndarray]) -> list[int]:
    """Exact amount_out of each route's last swap − amount_in of its first."""
    first = np.array([r[0] for r in routes], np.int64)
    last = np.array([r[-1] for r in routes], np.int64)
    ev = p.events
    in0, in1 = _exact(ev.column("amount0_in"), p.order[first]), _exact(ev.column("amount1_in"), p.order[first])
    out0, out1 = _exact(ev.column("amount0_out"), p.order[last]), _exact(ev.column("amount1_out"), p.order[last])
    zf, zl = p.zfo[first], p.zfo[last]
    return [(out1[k] if zl[k] else out0[k]) - (in0[k] if zf[k] else in1[k]) for k in range(len(routes))]


def _arbitrages(p: _Prepared) -> list[tuple]:
    rows = np.flatnonzero(p.is_swap & (p.tin >= 0))
    if len(rows) == 0:
        return []
    tx_id = p.tx_id[rows]
    tx_start = np.flatnonzero(np.r_[True, tx_id[1:] != tx_id[:-1], True]).astype(np.int64)
    status = np.zeros(len(tx_start) - 1, np.int8)
    _arbitrage_scan_nb(tx_start, p.tin[rows], p.tout[rows], p.sender[rows], p.recipient[rows], p.pool_addr[rows],
                       p.amount_in[rows], p.amount_out[rows], status)
    simple = np.flatnonzero(status == 1)
    routes = [rows[tx_start[t]:tx_start[t + 1]] for t in simple]
    profits = _route_profits(p, routes) if routes else []
    keep = [k for k, v in enumerate(profits) if v > 0]
    # a simple cycle that does not gain: mev-inspect-js then tries the other starts (the exact search does)
    slow = sorted(set(np.flatnonzero(status == 2).tolist()) | {int(simple[k]) for k, v in enumerate(profits) if v <= 0})
    routes, profits = [routes[k] for k in keep], [profits[k] for k in keep]
    slow_routes = []
    for t in slow:
        legs_rows = rows[tx_start[t]:tx_start[t + 1]]
        if len(legs_rows) <= _SLOW_ROUTE_MAX_SWAPS:
            slow_routes.extend(legs_rows[np.array(route)] for route in _route_search(_tx_legs(p, legs_rows)))
    if slow_routes:
        routes += slow_routes
        profits += _route_profits(p, slow_routes)
    out = []
    for route, profit in zip(routes, profits):
        fi = int(route[0])
        gas = 0 if p.gas_used is None else int(p.gas_used[fi])
        out.append(_label(p, "arbitrage", fi, p.pool[route], p.tin[fi], profit, gas, [fi], [], route.tolist(),
                          p.sender[fi]))
    return out


def _jits(p: _Prepared) -> list[tuple]:
    ev = p.events
    tick_lower = pc.fill_null(ev.column("tick_lower"), np.iinfo(np.int32).min).to_numpy(
        zero_copy_only=False).astype(np.int64)[p.order]
    tick_upper = pc.fill_null(ev.column("tick_upper"), np.iinfo(np.int32).min).to_numpy(
        zero_copy_only=False).astype(np.int64)[p.order]
    has_ticks = pc.is_valid(ev.column("tick_lower")).to_numpy(zero_copy_only=False)[p.order]
    mints = np.flatnonzero(p.is_mint & has_ticks)
    burns = np.flatnonzero(p.is_burn & has_ticks)
    if len(mints) == 0 or len(burns) == 0:
        return []
    # candidate (mint, burn) pairs: same block, pool, owner and ticks (a join on one int key per row)
    def key(r):
        return np.stack([p.block[r], p.pool[r], p.sender[r], tick_lower[r], tick_upper[r]], axis=1)
    _, inverse = np.unique(np.concatenate([key(mints), key(burns)]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    mk, bk = inverse[:len(mints)], inverse[len(mints):]
    burns_of_key: dict[int, list[int]] = {}
    for r, k in zip(burns[::-1].tolist(), bk[::-1].tolist()):   # latest burn first, as mev-inspect-js
        burns_of_key.setdefault(k, []).append(r)
    swaps = np.flatnonzero(p.is_swap)
    swaps = swaps[np.lexsort((swaps, p.pool[swaps], p.block[swaps]))]
    swap_seg = np.stack([p.block[swaps], p.pool[swaps]], axis=1)
    tick = ev.column("tick")
    swap_tick_valid = pc.is_valid(tick).to_numpy(zero_copy_only=False)[p.order]
    swap_tick = pc.fill_null(tick, 0).to_numpy(zero_copy_only=False).astype(np.int64)[p.order]
    out = []
    for m, k in zip(mints.tolist(), mk.tolist()):
        candidates = burns_of_key.get(k)
        if not candidates or len(swaps) == 0:
            continue
        # swaps of this (block, pool), by position
        seg_lo = _search_rows(swap_seg, p.block[m], p.pool[m], "left")
        seg_hi = _search_rows(swap_seg, p.block[m], p.pool[m], "right")
        seg = swaps[seg_lo:seg_hi]
        owner = p.sender[m]
        for burn in candidates:
            if burn < m or p.tx_id[burn] == p.tx_id[m]:
                continue
            between = seg[(seg > m) & (seg < burn)]
            ok = ((p.sender[between] != owner) & (p.recipient[between] != owner)
                  & (p.tx_id[between] != p.tx_id[m]) & (p.tx_id[between] != p.tx_id[burn])
                  & (~swap_tick_valid[between] | ((swap_tick[between] >= tick_lower[m])
                                                  & (swap_tick[between] <= tick_upper[m]))))
            victims = between[ok]
            if len(victims) == 0:
                continue
            om, ob = int(p.order[m]), int(p.order[burn])
            d0 = _exact(ev.column("amount0_out"), [ob])[0] - _exact(ev.column("amount0_in"), [om])[0]
            d1 = _exact(ev.column("amount1_out"), [ob])[0] - _exact(ev.column("amount1_in"), [om])[0]
            gas = 0 if p.gas_used is None else int(p.gas_used[m] + p.gas_used[burn])
            out.append(_label(p, "jit", m, [p.pool[m]], p.token0[m], d0, gas, [m, burn], victims.tolist(),
                              [m, burn], owner, other_token=int(p.token1[m]), other_profit=d1))
            break
    return out


def _search_rows(sorted_pairs: np.ndarray, a: int, b: int, side: str) -> int:
    """searchsorted of (a, b) in rows sorted by (col0, col1)."""
    lo = np.searchsorted(sorted_pairs[:, 0], a, side="left")
    hi = np.searchsorted(sorted_pairs[:, 0], a, side="right")
    return int(lo + np.searchsorted(sorted_pairs[lo:hi, 1], b, side=side))


# ---------------------------------------------------------------------------------------------------------------
# API

def label_mev(events: pa.Table, pools: pa.Table, txs: pa.Table | None = None, *, kinds=KINDS,
              known_routers=KNOWN_ROUTERS) -> tuple[pa.Table, pa.Table]:
    """Executed MEV in `events` → (labels: LABELS schema, attacks: ATTACKS schema, one row per label row).

    events: EVENTS columns (any row order; swaps, mints, burns are used); an optional `recipient` column is
    the swap's `to` (default: `sender`, as gpubt's decoders keep only the log's sender). pools: POOLS.
    txs: optional per-tx metadata with columns tx_hash, tx_from, gas_used (gas then fills labels.gas_used).
    Labels are sorted by (block, tx_index); `searcher` is the beneficiary address (see ATTACKS).
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds: unknown {unknown} (choose among {', '.join(KINDS)})")
    p = _Prepared(events, pools, txs)
    mask = p.is_router_address
    if known_routers is not KNOWN_ROUTERS:
        codes = pc.index_in(pa.array(sorted(a.lower() for a in known_routers), pa.string()),
                            value_set=p.address_names).to_numpy(zero_copy_only=False)
        mask = np.zeros(len(p.address_names) + 1, bool)
        mask[codes[codes >= 0].astype(np.int64)] = True
    found: list[tuple] = []
    if "sandwich" in kinds:
        found += _sandwiches(p, mask)
    if "arbitrage" in kinds:
        found += _arbitrages(p)
    if "jit" in kinds:
        found += _jits(p)
    return _assemble(p, found)


def victims_of(attacks: pa.Table, labels: pa.Table) -> pa.Table:
    """One row per (sandwich or jit label, victim tx): label_index, tx_hash of the attack, victim_tx_hash."""
    lengths = pc.list_value_length(attacks.column("victim_tx_hashes")).to_numpy(zero_copy_only=False)
    parent = np.repeat(attacks.column("label_index").to_numpy(), np.nan_to_num(lengths).astype(np.int64))
    return pa.table({
        "label_index": pa.array(parent, pa.int32()),
        "tx_hash": labels.column("tx_hash").take(pa.array(parent, pa.int64())),
        "victim_tx_hash": pc.list_flatten(attacks.column("victim_tx_hashes")),
    })


# ---------------------------------------------------------------------------------------------------------------
# adapter: mev-inspect-js decoded swaps → gpubt tables

def events_from_mev_inspect(swaps, deposits=(), withdrawals=()) -> dict[str, pa.Table]:
    """mev-inspect-js Swap / LiquidityDeposit / LiquidityWithdrawal dicts → gpubt tables.

    Returns tokens, pools, events (EVENTS columns plus `recipient`, the swap's `to`) and txs (tx_hash, tx_from,
    gas_used). A pool is one (contract, token pair): multi-asset pools (Curve, Balancer) become one pool per
    traded pair; a deposit or withdrawal of such a pool lands on each of its pools whose two tokens it holds.
    Token ids follow first appearance; token0 is the lower address, as in Uniswap. Amounts are raw integers.
    """
    tokens: dict[str, int] = {}
    pools: dict[tuple[str, str, str], dict] = {}
    pools_of_contract: dict[str, list[tuple[str, str, str]]] = {}

    def token(address: str) -> int:
        return tokens.setdefault(address.lower(), len(tokens))

    def pool(item, a: str, b: str) -> tuple[str, str, str]:
        contract = item["contract"]["address"].lower()
        t0, t1 = sorted((a.lower(), b.lower()))
        key = (contract, t0, t1)
        if key not in pools:
            abi = item["contract"]["protocol"]["abi"]
            protocol = {"UniswapV2": "v2", "UniswapV3": "v3"}.get(abi, abi.lower())
            pools[key] = {"pool_id": len(pools), "address": contract, "venue": abi, "protocol": protocol,
                          "token0": token(t0), "token1": token(t1), "fee_ppm": 0,
                          "created_block": int(item["block"]["number"]), "tick_spacing": 0}
            pools_of_contract.setdefault(contract, []).append(key)
        return key

    rows, txs = [], {}

    def base(item, key, kind, sender, **kw):
        t = item["transaction"]
        txs.setdefault(t["hash"].lower(), {"tx_hash": t["hash"].lower(), "tx_from": t["from"].lower(),
                                            "gas_used": int(t["gasUsed"])})
        row = {"block_number": int(item["block"]["number"]), "tx_index": int(t["index"]),
               "log_index": int(item["event"]["logIndex"]), "pool_id": pools[key]["pool_id"], "kind": kind,
               "amount0_in": 0, "amount1_in": 0, "amount0_out": 0, "amount1_out": 0, "reserve0": None,
               "reserve1": None, "tx_hash": t["hash"].lower(), "sender": sender.lower(), "recipient": None,
               "sqrt_price_x96": None, "liquidity": None, "tick": item.get("metadata", {}).get("tick"),
               "tick_lower": None, "tick_upper": None, "liquidity_delta": None}
        row.update(kw)
        rows.append(row)

    for s in swaps:
        a_in, a_out = s["assetIn"]["address"].lower(), s["assetOut"]["address"].lower()
        key = pool(s, a_in, a_out)
        zfo = a_in == key[1]
        amounts = ({"amount0_in": int(s["amountIn"]), "amount1_out": int(s["amountOut"])} if zfo
                   else {"amount1_in": int(s["amountIn"]), "amount0_out": int(s["amountOut"])})
        base(s, key, "swap", s["from"], recipient=s["to"].lower(), **amounts)
    for items, kind, who, side in ((deposits, "mint", "depositor", "in"), (withdrawals, "burn", "withdrawer", "out")):
        for d in items:
            assets = [a["address"].lower() for a in d["assets"]]
            amount_of = dict(zip(assets, (int(x) for x in d["amounts"])))
            contract = d["contract"]["address"].lower()
            keys = [pool(d, *assets)] if len(assets) == 2 else [
                k for k in pools_of_contract.get(contract, []) if k[1] in amount_of and k[2] in amount_of]
            meta = d.get("metadata", {})
            for key in keys:
                base(d, key, kind, d[who], **{f"amount0_{side}": amount_of[key[1]],
                                              f"amount1_{side}": amount_of[key[2]]},
                     tick_lower=meta.get("tickLower"), tick_upper=meta.get("tickUpper"))
    rows.sort(key=lambda r: (r["block_number"], r["tx_index"], r["log_index"]))
    token_table = pa.Table.from_pylist([{"token_id": i, "address": a, "symbol": a[:8], "decimals": 18,
                                         "is_hub": False} for a, i in tokens.items()], schema=schema.TOKENS)
    pool_table = pa.Table.from_pylist(sorted(pools.values(), key=lambda q: q["pool_id"]), schema=schema.POOLS)
    event_schema = schema.EVENTS.append(pa.field("recipient", pa.string()))
    events = pa.Table.from_pylist([{k: r[k] for k in event_schema.names} for r in rows], schema=event_schema)
    tx_table = pa.Table.from_pylist(list(txs.values()), schema=pa.schema([
        ("tx_hash", pa.string()), ("tx_from", pa.string()), ("gas_used", pa.int64())]))
    return {"tokens": token_table, "pools": pool_table, "events": events, "txs": tx_table}
