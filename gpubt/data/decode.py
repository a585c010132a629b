"""Uniswap logs and router calldata → gpubt tables (decoded with eth-abi / web3 from the contracts' ABIs).

Both chain sources feed this module the same raw rows (`RawLog`, `RawBlock`, `RawTx`): gpubt/data/rpc.py from a
JSON-RPC node, gpubt/data/cryo.py from cryo's parquet. `ChainReplay` turns one partition of them into the
EVENTS / SNAPSHOTS / TICKS / BLOCKS / VICTIMS tables, carrying pool state across partitions:

- V2: a pair emits Sync(reserves after) right before its Swap / Mint / Burn in the same tx; the Swap/Mint/Burn row
  takes those reserves, a Sync alone becomes a "sync" row.
- V3: Initialize / Mint / Burn / Swap are replayed through gpubt.exact.v3.V3Pool; after each Swap the replayed
  (sqrtPriceX96, liquidity, tick) must equal the log's (a mismatch is counted in `stats` and the log wins).
  Collect / CollectProtocol / Flash only move the pool's token balances: they become "sync" rows.
- Router swaps (Uniswap V2 Router02 swap*, V3 SwapRouter exactInput*/exactOutput*, also inside multicall) of txs
  that swapped in a tracked pool: one VICTIMS row each (the pool where the user's input enters, the user's
  limit as (amount_in, amount_out_min, exact_output): exact-in (amountIn, amountOutMin, False), exact-out
  (amountInMax, amountOut, True): swapTokensForExactTokens/ETH, swapETHForExactTokens, exactOutput(Single)),
  and the full decoded call in a ROUTER_CALLS row (method, amounts, path, fees, deadline).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import eth_abi
import pyarrow as pa
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector

from gpubt import schema
from gpubt.exact import v3

# ------------------------------------------------------------------------------------------------------ the ABIs
def _ev(name, *inputs):
    return {"type": "event", "name": name, "anonymous": False,
            "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs]}


def _fn(name, *inputs, payable=False):
    def one(n, t):
        if isinstance(t, list):  # a struct: (name, type) pairs
            return {"name": n, "type": "tuple", "components": [one(cn, ct) for cn, ct in t]}
        return {"name": n, "type": t}
    return {"type": "function", "name": name, "inputs": [one(n, t) for n, t in inputs], "outputs": [],
            "stateMutability": "payable" if payable else "nonpayable"}


V2_PAIR_EVENTS = [
    _ev("Sync", ("reserve0", "uint112", False), ("reserve1", "uint112", False)),
    _ev("Swap", ("sender", "address", True), ("amount0In", "uint256", False), ("amount1In", "uint256", False),
        ("amount0Out", "uint256", False), ("amount1Out", "uint256", False), ("to", "address", True)),
    _ev("Mint", ("sender", "address", True), ("amount0", "uint256", False), ("amount1", "uint256", False)),
    _ev("Burn", ("sender", "address", True), ("amount0", "uint256", False), ("amount1", "uint256", False),
        ("to", "address", True)),
]
V3_POOL_EVENTS = [
    _ev("Initialize", ("sqrtPriceX96", "uint160", False), ("tick", "int24", False)),
    _ev("Swap", ("sender", "address", True), ("recipient", "address", True), ("amount0", "int256", False),
        ("amount1", "int256", False), ("sqrtPriceX96", "uint160", False), ("liquidity", "uint128", False),
        ("tick", "int24", False)),
    _ev("Mint", ("sender", "address", False), ("owner", "address", True), ("tickLower", "int24", True),
        ("tickUpper", "int24", True), ("amount", "uint128", False), ("amount0", "uint256", False),
        ("amount1", "uint256", False)),
    _ev("Burn", ("owner", "address", True), ("tickLower", "int24", True), ("tickUpper", "int24", True),
        ("amount", "uint128", False), ("amount0", "uint256", False), ("amount1", "uint256", False)),
    _ev("Collect", ("owner", "address", True), ("recipient", "address", False), ("tickLower", "int24", True),
        ("tickUpper", "int24", True), ("amount0", "uint128", False), ("amount1", "uint128", False)),
    _ev("CollectProtocol", ("sender", "address", True), ("recipient", "address", True),
        ("amount0", "uint128", False), ("amount1", "uint128", False)),
    _ev("Flash", ("sender", "address", True), ("recipient", "address", True), ("amount0", "uint256", False),
        ("amount1", "uint256", False), ("paid0", "uint256", False), ("paid1", "uint256", False)),
]
FACTORY_EVENTS = [
    _ev("PairCreated", ("token0", "address", True), ("token1", "address", True), ("pair", "address", False),
        ("allPairsLength", "uint256", False)),
    _ev("PoolCreated", ("token0", "address", True), ("token1", "address", True), ("fee", "uint24", True),
        ("tickSpacing", "int24", False), ("pool", "address", False)),
]
_PATH = ("path", "address[]")
V2_ROUTER_FUNCTIONS = [
    _fn("swapExactTokensForTokens", ("amountIn", "uint256"), ("amountOutMin", "uint256"), _PATH,
        ("to", "address"), ("deadline", "uint256")),
    _fn("swapTokensForExactTokens", ("amountOut", "uint256"), ("amountInMax", "uint256"), _PATH,
        ("to", "address"), ("deadline", "uint256")),
    _fn("swapExactETHForTokens", ("amountOutMin", "uint256"), _PATH, ("to", "address"), ("deadline", "uint256"),
        payable=True),
    _fn("swapTokensForExactETH", ("amountOut", "uint256"), ("amountInMax", "uint256"), _PATH,
        ("to", "address"), ("deadline", "uint256")),
    _fn("swapExactTokensForETH", ("amountIn", "uint256"), ("amountOutMin", "uint256"), _PATH,
        ("to", "address"), ("deadline", "uint256")),
    _fn("swapETHForExactTokens", ("amountOut", "uint256"), _PATH, ("to", "address"), ("deadline", "uint256"),
        payable=True),
    _fn("swapExactTokensForTokensSupportingFeeOnTransferTokens", ("amountIn", "uint256"),
        ("amountOutMin", "uint256"), _PATH, ("to", "address"), ("deadline", "uint256")),
    _fn("swapExactETHForTokensSupportingFeeOnTransferTokens", ("amountOutMin", "uint256"), _PATH,
        ("to", "address"), ("deadline", "uint256"), payable=True),
    _fn("swapExactTokensForETHSupportingFeeOnTransferTokens", ("amountIn", "uint256"), ("amountOutMin", "uint256"),
        _PATH, ("to", "address"), ("deadline", "uint256")),
]
_SINGLE = [("tokenIn", "address"), ("tokenOut", "address"), ("fee", "uint24"), ("recipient", "address"),
           ("deadline", "uint256")]
V3_ROUTER_FUNCTIONS = [
    _fn("exactInputSingle", ("params", _SINGLE + [("amountIn", "uint256"), ("amountOutMinimum", "uint256"),
                                                   ("sqrtPriceLimitX96", "uint160")]), payable=True),
    _fn("exactOutputSingle", ("params", _SINGLE + [("amountOut", "uint256"), ("amountInMaximum", "uint256"),
                                                    ("sqrtPriceLimitX96", "uint160")]), payable=True),
    _fn("exactInput", ("params", [("path", "bytes"), ("recipient", "address"), ("deadline", "uint256"),
                                  ("amountIn", "uint256"), ("amountOutMinimum", "uint256")]), payable=True),
    _fn("exactOutput", ("params", [("path", "bytes"), ("recipient", "address"), ("deadline", "uint256"),
                                   ("amountOut", "uint256"), ("amountInMaximum", "uint256")]), payable=True),
    _fn("multicall", ("data", "bytes[]"), payable=True),
]
# view functions the RPC source calls (token metadata, pool identity, state at a block)
VIEW_FUNCTIONS = {
    "token0": ("address",), "token1": ("address",), "fee": ("uint24",), "tickSpacing": ("int24",),
    "factory": ("address",), "getReserves": ("uint112", "uint112", "uint32"),
    "slot0": ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"), "liquidity": ("uint128",),
    "decimals": ("uint8",), "symbol": ("string",),
}


def selector(name: str, arg_types: tuple = ()) -> str:
    """0x-hex 4-byte selector of a call with no or simple arguments."""
    abi = {"type": "function", "name": name, "inputs": [{"name": f"a{i}", "type": t}
                                                         for i, t in enumerate(arg_types)]}
    return "0x" + function_abi_to_4byte_selector(abi).hex()


def encode_call(name: str, arg_types: tuple = (), args: tuple = ()) -> str:
    return selector(name, arg_types) + eth_abi.encode(list(arg_types), list(args)).hex()


def decode_result(name: str, data: bytes):
    return eth_abi.decode(list(VIEW_FUNCTIONS[name]), data)


def decode_symbol(data: bytes) -> str:
    """ERC20 symbol(): a string, or (MKR, SAI, ...) a bytes32."""
    try:
        return eth_abi.decode(["string"], data)[0]
    except Exception:  # noqa: BLE001 - non-standard tokens
        if len(data) == 32:
            return data.rstrip(b"\0").decode("utf-8", "replace")
        return ""


class _EventCodec(NamedTuple):
    protocol: str
    name: str
    indexed: list      # (name, type)
    plain: list        # (name, type)


def _codecs(events, protocol):
    out = {}
    for ev in events:
        topic = "0x" + event_abi_to_log_topic(ev).hex()
        out[topic] = _EventCodec(protocol, ev["name"],
                                 [(i["name"], i["type"]) for i in ev["inputs"] if i["indexed"]],
                                 [(i["name"], i["type"]) for i in ev["inputs"] if not i["indexed"]])
    return out


V2_TOPICS = _codecs(V2_PAIR_EVENTS, "v2")
V3_TOPICS = _codecs(V3_POOL_EVENTS, "v3")
FACTORY_TOPICS = _codecs(FACTORY_EVENTS, "factory")
TOPIC = {f"{c.protocol}:{c.name}": t for codecs in (V2_TOPICS, V3_TOPICS, FACTORY_TOPICS) for t, c in codecs.items()}
POOL_TOPICS = sorted(set(V2_TOPICS) | set(V3_TOPICS))


def decode_event(codec: _EventCodec, topics, data: bytes) -> dict:
    """Named arguments of one log (indexed ones from topics[1:], the rest ABI-decoded from data)."""
    out = {}
    for (name, typ), topic in zip(codec.indexed, topics[1:]):
        out[name] = eth_abi.decode([typ], bytes.fromhex(topic[2:]))[0]
    if codec.plain:
        values = eth_abi.decode([t for _, t in codec.plain], data)
        out.update({name: v for (name, _), v in zip(codec.plain, values)})
    return out


# ------------------------------------------------------------------------------------------------- raw rows
class RawLog(NamedTuple):
    block_number: int
    tx_index: int
    log_index: int
    tx_hash: str      # 0x-hex, lower case
    address: str      # 0x-hex, lower case
    topics: tuple     # 0x-hex strings
    data: bytes


class RawBlock(NamedTuple):
    block_number: int
    block_hash: str
    parent_hash: str
    timestamp: int
    base_fee_wei: int
    gas_used: int
    gas_limit: int


class RawTx(NamedTuple):
    tx_hash: str
    block_number: int
    tx_index: int
    sender: str
    to: str
    value: int
    input: bytes


@dataclass
class PoolInfo:
    pool_id: int
    address: str
    protocol: str        # "v2" | "v3"
    token0: str
    token1: str
    fee_ppm: int
    tick_spacing: int
    created_block: int
    venue: str


AMOUNT_MAX = 10**38 - 1  # the largest decimal128(38, 0)


class ReplayError(ValueError):
    """The logs cannot be replayed into a consistent pool state (names the pool, block and log)."""


# --------------------------------------------------------------------------------------- router calldata
ROUTER_CALLS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("tx_hash", pa.string()),
    ("router", pa.string()),         # the tx's `to`
    ("protocol", pa.string()),       # "v2" | "v3"
    ("method", pa.string()),
    ("exact_input", pa.bool_()),
    ("amount_in", schema.BIG),       # exact-in: amountIn (ETH variants: tx value); exact-out: null
    ("amount_out_min", schema.BIG),  # exact-in only
    ("amount_out", schema.BIG),      # exact-out only
    ("amount_in_max", schema.BIG),   # exact-out only (swapETHForExactTokens: tx value)
    ("path", pa.list_(pa.string())), # token addresses in swap order (input first)
    ("fees", pa.list_(pa.int32())),  # V3 fee of each hop (empty for V2)
    ("pools", pa.list_(pa.int32())), # pool_id of each hop (-1: not a tracked pool)
    ("deadline", schema.BIG),
    ("recipient", pa.string()),
])

_V2_FN = {"0x" + function_abi_to_4byte_selector(f).hex(): f for f in V2_ROUTER_FUNCTIONS}
_V3_FN = {"0x" + function_abi_to_4byte_selector(f).hex(): f for f in V3_ROUTER_FUNCTIONS}


def _fn_types(fn):
    def t(i):
        if i["type"] == "tuple":
            return "(" + ",".join(t(c) for c in i["components"]) + ")"
        return i["type"]
    return [t(i) for i in fn["inputs"]]


def _v3_path(path: bytes):
    """V3 packed path token(20) fee(3) token(20) ... → (tokens, fees)."""
    tokens, fees, i = ["0x" + path[:20].hex()], [], 20
    while i + 23 <= len(path):
        fees.append(int.from_bytes(path[i:i + 3], "big"))
        tokens.append("0x" + path[i + 3:i + 23].hex())
        i += 23
    return tokens, fees


def decode_router_call(data: bytes, value: int, depth: int = 0) -> list[dict]:
    """Every swap in a router call's calldata (several for a multicall); [] when it is not a known router swap."""
    sel = "0x" + data[:4].hex()
    if sel in _V2_FN:
        fn = _V2_FN[sel]
        names = [i["name"] for i in fn["inputs"]]
        args = dict(zip(names, eth_abi.decode(_fn_types(fn), data[4:])))
        name = fn["name"]
        exact_in = name.startswith("swapExact")
        call = {"protocol": "v2", "method": name, "exact_input": exact_in,
                "path": [a.lower() for a in args["path"]], "fees": [], "deadline": args["deadline"],
                "recipient": args["to"].lower(), "amount_in": None, "amount_out_min": None, "amount_out": None,
                "amount_in_max": None}
        if exact_in:
            call["amount_in"] = args.get("amountIn", value)
            call["amount_out_min"] = args["amountOutMin"]
        else:
            call["amount_out"] = args["amountOut"]
            call["amount_in_max"] = args.get("amountInMax", value)
        return [call]
    if sel in _V3_FN:
        fn = _V3_FN[sel]
        (params,) = eth_abi.decode(_fn_types(fn), data[4:])
        name = fn["name"]
        if name == "multicall":
            if depth:
                return []
            return [c for inner in params for c in decode_router_call(inner, value, depth + 1)]
        names = [c["name"] for c in fn["inputs"][0]["components"]]
        p = dict(zip(names, params))
        base = {"protocol": "v3", "method": name, "deadline": p["deadline"], "recipient": p["recipient"].lower(),
                "amount_in": None, "amount_out_min": None, "amount_out": None, "amount_in_max": None}
        if name.endswith("Single"):
            base["path"], base["fees"] = [p["tokenIn"].lower(), p["tokenOut"].lower()], [p["fee"]]
        else:
            tokens, fees = _v3_path(p["path"])
            if name == "exactOutput":  # encoded output first
                tokens, fees = tokens[::-1], fees[::-1]
            base["path"], base["fees"] = tokens, fees
        if name.startswith("exactInput"):
            base.update(exact_input=True, amount_in=p["amountIn"], amount_out_min=p["amountOutMinimum"])
        else:
            base.update(exact_input=False, amount_out=p["amountOut"], amount_in_max=p["amountInMaximum"])
        return [base]
    return []


# ------------------------------------------------------------------------------------------------- the replay
@dataclass
class _V2State:
    reserve0: int = 0
    reserve1: int = 0


@dataclass
class _V3State:
    pool: v3.V3Pool
    balance0: int = 0
    balance1: int = 0

    @property
    def initialized(self) -> bool:
        return self.pool.sqrt_price_x96 != 0


@dataclass
class ChainReplay:
    """Pool state carried across partitions; `partition(...)` → the partition's gpubt tables."""

    pools: list  # [PoolInfo], pool_id = index
    token_ids: dict  # address → token_id
    state: dict = field(default_factory=dict)  # pool_id → _V2State | _V3State
    stats: dict = field(default_factory=lambda: {"logs": 0, "v3_swaps_checked": 0, "v3_swap_mismatches": 0,
                                                 "router_calls": 0})
    # PRICES (WETH = token 0 in USD, every `price_interval` blocks and at each partition start): from the state
    # of `usd_pool` (a WETH/USD-stablecoin pool: 1 stable = 1 USD), else the constant `eth_usd`, else none
    usd_pool: str | None = None
    eth_usd: float | None = None
    price_interval: int = 100
    decimals: dict = field(default_factory=dict)  # token address → decimals (for usd_pool)

    def __post_init__(self):
        self.by_address = {p.address: p for p in self.pools}
        for p in self.pools:
            if p.pool_id not in self.state:
                self.state[p.pool_id] = (_V2State() if p.protocol == "v2" else
                                         _V3State(v3.V3Pool(p.fee_ppm, p.tick_spacing)))

    # -- state at a partition start ------------------------------------------------------------------------
    def snapshot(self, block: int) -> tuple[pa.Table, pa.Table]:
        """SNAPSHOTS and TICKS rows of every pool with state (V2 with reserves, V3 initialized) at `block`."""
        snaps, ticks = [], []
        for p in self.pools:
            st = self.state[p.pool_id]
            if p.protocol == "v2":
                if st.reserve0 > 0 and st.reserve1 > 0:
                    snaps.append({"block_number": block, "pool_id": p.pool_id, "reserve0": st.reserve0,
                                  "reserve1": st.reserve1})
            elif st.initialized:
                pool = st.pool
                snaps.append({"block_number": block, "pool_id": p.pool_id, "reserve0": st.balance0,
                              "reserve1": st.balance1, "sqrt_price_x96": pool.sqrt_price_x96,
                              "liquidity": pool.liquidity, "tick": pool.tick})
                for t in sorted(pool.ticks):
                    info = pool.ticks[t]
                    ticks.append({"block_number": block, "pool_id": p.pool_id, "tick": t,
                                  "liquidity_net": info.liquidity_net, "liquidity_gross": info.liquidity_gross})
        return (pa.Table.from_pylist(snaps, schema=schema.SNAPSHOTS),
                pa.Table.from_pylist(ticks, schema=schema.TICKS))

    def state_json(self) -> dict:
        """The full pool state (V3 ticks and positions included) as JSON-safe data: the ingest's resume point."""
        out = {}
        for p in self.pools:
            st = self.state[p.pool_id]
            if isinstance(st, _V2State):
                out[p.address] = {"reserve0": str(st.reserve0), "reserve1": str(st.reserve1)}
            else:
                pool = st.pool
                out[p.address] = {
                    "balance0": str(st.balance0), "balance1": str(st.balance1),
                    "sqrt_price_x96": str(pool.sqrt_price_x96), "tick": pool.tick, "liquidity": str(pool.liquidity),
                    "ticks": [[t, str(i.liquidity_gross), str(i.liquidity_net)] for t, i in sorted(pool.ticks.items())],
                    "positions": [[o, lo, hi, str(liq)] for (o, lo, hi), liq in sorted(pool.positions.items(),
                                                                                       key=lambda kv: str(kv[0]))],
                }
        return out

    def load_state_json(self, data: dict) -> None:
        for address, s in data.items():
            p = self.by_address[address]
            st = self.state[p.pool_id]
            if isinstance(st, _V2State):
                st.reserve0, st.reserve1 = int(s["reserve0"]), int(s["reserve1"])
                continue
            pool = st.pool
            st.balance0, st.balance1 = int(s["balance0"]), int(s["balance1"])
            pool.sqrt_price_x96, pool.tick, pool.liquidity = int(s["sqrt_price_x96"]), int(s["tick"]), int(s["liquidity"])
            pool.ticks = {int(t): v3.TickInfo(int(g), int(n)) for t, g, n in s["ticks"]}
            pool.initialized = sorted(t // pool.tick_spacing for t in pool.ticks)
            pool.positions = {(o, int(lo), int(hi)): int(liq) for o, lo, hi, liq in s["positions"]}

    # -- one partition ------------------------------------------------------------------------------------
    def partition(self, first: int, last: int, blocks: list, logs: list, txs: dict) -> dict:
        """Tables for blocks first..last. `logs`: RawLog of the tracked pools, any order; `txs`: tx_hash → RawTx
        of the txs that swapped in a tracked pool (those with router calldata become victims)."""
        snapshots, ticks = self.snapshot(first)
        blocks = sorted(blocks, key=lambda b: b.block_number)
        numbers = [b.block_number for b in blocks]
        if numbers != list(range(first, last + 1)):
            missing = sorted(set(range(first, last + 1)) - set(numbers))
            raise ReplayError(f"blocks {first}..{last}: missing block(s) {missing[:5]} (or duplicates)")
        logs = sorted(logs, key=lambda g: (g.block_number, g.log_index))
        events, prices = [], []
        swapped_txs: dict[str, list] = {}
        pending_sync: dict[int, tuple] = {}
        price_blocks = iter(sorted({first} | set(range(first - first % self.price_interval + self.price_interval,
                                                            last + 1, self.price_interval))))
        next_price = next(price_blocks, None)
        for n, log in enumerate(logs + [None]):
            while next_price is not None and (log is None or log.block_number >= next_price):
                usd = self._eth_usd()
                if usd is not None:
                    prices.append({"block_number": next_price, "token_id": 0, "price_usd": usd})
                next_price = next(price_blocks, None)
            if log is None:
                break
            pool = self.by_address.get(log.address)
            if pool is None or not log.topics:
                continue
            self.stats["logs"] += 1
            if pool.protocol == "v2":
                row = self._v2(pool, log, pending_sync, logs, n)
            else:
                row = self._v3(pool, log)
            if row is not None:
                events.append(row)
                if row["kind"] == "swap":
                    swapped_txs.setdefault(log.tx_hash, []).append(pool.pool_id)
        victims, calls = self._router_calls(swapped_txs, txs)
        return {
            "blocks": pa.Table.from_pylist([{"block_number": b.block_number, "timestamp": b.timestamp,
                                             "base_fee_wei": b.base_fee_wei, "gas_used": b.gas_used,
                                             "gas_limit": b.gas_limit} for b in blocks], schema=schema.BLOCKS),
            "events": pa.Table.from_pylist(events, schema=schema.EVENTS),
            "snapshots": snapshots, "ticks": ticks,
            "victims": pa.Table.from_pylist(victims, schema=schema.VICTIMS),
            "router_calls": pa.Table.from_pylist(calls, schema=ROUTER_CALLS),
            "labels": schema.LABELS.empty_table(), "prices": pa.Table.from_pylist(prices, schema=schema.PRICES),
        }

    def _eth_usd(self) -> float | None:
        """WETH in USD from the usd_pool's current state (a stablecoin = 1 USD), else the constant eth_usd."""
        pool = self.by_address.get(self.usd_pool) if self.usd_pool else None
        if pool is not None:
            weth = next(a for a, i in self.token_ids.items() if i == 0)
            st = self.state[pool.pool_id]
            if pool.protocol == "v2":
                r0, r1 = st.reserve0, st.reserve1
                ratio = r1 / r0 if r0 and r1 else None  # token1 per token0, raw
            else:
                ratio = (st.pool.sqrt_price_x96 / 2**96) ** 2 if st.initialized else None
            if ratio:
                d0, d1 = self.decimals.get(pool.token0, 18), self.decimals.get(pool.token1, 18)
                human = ratio * 10.0 ** (d0 - d1)  # token1 per token0
                return human if pool.token0 == weth else 1.0 / human
        return None if self.eth_usd is None else float(self.eth_usd)

    @staticmethod
    def _row(pool, log, kind, **kw) -> dict:
        row = {"block_number": log.block_number, "tx_index": log.tx_index, "log_index": log.log_index,
               "pool_id": pool.pool_id, "kind": kind, "amount0_in": 0, "amount1_in": 0, "amount0_out": 0,
               "amount1_out": 0, "tx_hash": log.tx_hash, "sender": None}
        row.update(kw)
        return row

    def _v2(self, pool, log, pending_sync, logs, n):
        codec = V2_TOPICS.get(log.topics[0])
        if codec is None:
            return None
        args = decode_event(codec, log.topics, log.data)
        st = self.state[pool.pool_id]
        if codec.name == "Sync":
            st.reserve0, st.reserve1 = args["reserve0"], args["reserve1"]
            nxt = logs[n + 1] if n + 1 < len(logs) else None
            if (nxt is not None and nxt.address == log.address and nxt.tx_hash == log.tx_hash
                    and nxt.topics and V2_TOPICS.get(nxt.topics[0]) is not None
                    and V2_TOPICS[nxt.topics[0]].name in ("Swap", "Mint", "Burn")):
                return None  # the next log of this pair carries these reserves
            return self._row(pool, log, "sync", reserve0=st.reserve0, reserve1=st.reserve1)
        common = dict(reserve0=st.reserve0, reserve1=st.reserve1, sender=args["sender"].lower())
        if codec.name == "Swap":
            return self._row(pool, log, "swap", amount0_in=args["amount0In"], amount1_in=args["amount1In"],
                             amount0_out=args["amount0Out"], amount1_out=args["amount1Out"], **common)
        if codec.name == "Mint":
            return self._row(pool, log, "mint", amount0_in=args["amount0"], amount1_in=args["amount1"], **common)
        return self._row(pool, log, "burn", amount0_out=args["amount0"], amount1_out=args["amount1"], **common)

    def _where(self, pool, log) -> str:
        return f"pool {pool.address} (pool_id {pool.pool_id}) block {log.block_number} log {log.log_index}"

    def _v3(self, pool, log):
        codec = V3_TOPICS.get(log.topics[0])
        if codec is None:
            return None
        args = decode_event(codec, log.topics, log.data)
        st = self.state[pool.pool_id]
        p = st.pool
        name = codec.name
        if name != "Initialize" and not st.initialized:
            raise ReplayError(f"{self._where(pool, log)}: {name} before the pool's Initialize (its history starts "
                              "before the data: start the range at or before the pool's creation block)")
        try:
            if name == "Initialize":
                p.initialize(args["sqrtPriceX96"])
                if p.tick != args["tick"]:
                    raise ReplayError(f"{self._where(pool, log)}: Initialize tick {args['tick']} != replayed {p.tick}")
                kw = {}
            elif name == "Mint":
                a0, a1 = p.mint(args["tickLower"], args["tickUpper"], args["amount"], args["owner"].lower())
                if (a0, a1) != (args["amount0"], args["amount1"]):
                    raise ReplayError(f"{self._where(pool, log)}: Mint amounts {args['amount0']}, {args['amount1']} "
                                      f"!= replayed {a0}, {a1}")
                st.balance0 += a0
                st.balance1 += a1
                kw = dict(amount0_in=a0, amount1_in=a1, tick_lower=args["tickLower"], tick_upper=args["tickUpper"],
                          liquidity_delta=args["amount"], sender=args["sender"].lower())
            elif name == "Burn":
                a0, a1 = p.burn(args["tickLower"], args["tickUpper"], args["amount"], args["owner"].lower())
                if (a0, a1) != (args["amount0"], args["amount1"]):
                    raise ReplayError(f"{self._where(pool, log)}: Burn amounts {args['amount0']}, {args['amount1']} "
                                      f"!= replayed {a0}, {a1}")
                kw = dict(amount0_out=a0, amount1_out=a1, tick_lower=args["tickLower"], tick_upper=args["tickUpper"],
                          liquidity_delta=-args["amount"], sender=args["owner"].lower())
            elif name == "Swap":
                a0, a1 = args["amount0"], args["amount1"]
                self._v3_swap(pool, log, p, a0, a1, args["sqrtPriceX96"], args["liquidity"], args["tick"])
                st.balance0 += a0
                st.balance1 += a1
                kw = dict(amount0_in=max(a0, 0), amount1_in=max(a1, 0), amount0_out=max(-a0, 0),
                          amount1_out=max(-a1, 0), sender=args["sender"].lower())
            else:  # Collect, CollectProtocol, Flash: balances only
                if name == "Flash":
                    st.balance0 += args["paid0"]
                    st.balance1 += args["paid1"]
                else:
                    st.balance0 -= args["amount0"]
                    st.balance1 -= args["amount1"]
                return self._row(pool, log, "sync", reserve0=st.balance0, reserve1=st.balance1,
                                 sqrt_price_x96=p.sqrt_price_x96, liquidity=p.liquidity, tick=p.tick)
        except v3.V3Revert as exc:
            raise ReplayError(f"{self._where(pool, log)}: replaying {name} reverts in the exact V3 pool ({exc})") \
                from None
        return self._row(pool, log, "initialize" if name == "Initialize" else name.lower(),
                         reserve0=st.balance0, reserve1=st.balance1, sqrt_price_x96=p.sqrt_price_x96,
                         liquidity=p.liquidity, tick=p.tick, **kw)

    def _v3_swap(self, pool, log, p: v3.V3Pool, a0, a1, sqrt_after, liquidity_after, tick_after) -> None:
        """Replay a Swap log (its exact-in or exact-out amount, the pool's own limit) and check the log's state."""
        self.stats["v3_swaps_checked"] += 1
        target = (sqrt_after, liquidity_after, tick_after)
        if sqrt_after == p.sqrt_price_x96 or (a0 == 0 and a1 == 0):
            ok = (p.sqrt_price_x96, p.liquidity, p.tick) == target
        else:
            zero_for_one = sqrt_after < p.sqrt_price_x96
            limit = v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1
            amount_in, amount_out = (a0, -a1) if zero_for_one else (a1, -a0)
            ok = False
            # the router's swaps: exact input or exact output with no price limit; else stop at the log's price
            for specified, lim in ((amount_in, limit), (-amount_out, limit), (amount_in, sqrt_after)):
                if specified == 0:
                    continue
                saved = (p.sqrt_price_x96, p.tick, p.liquidity)
                try:
                    out = p.swap_outcome(zero_for_one, specified, lim)
                except v3.V3Revert:
                    continue
                if (p.sqrt_price_x96, p.liquidity, p.tick) == target and (
                        lim == sqrt_after or (out.amount0, out.amount1) == (a0, a1)):
                    ok = True
                    break
                p.sqrt_price_x96, p.tick, p.liquidity = saved
        if not ok:
            self.stats["v3_swap_mismatches"] += 1
            p.sqrt_price_x96, p.liquidity, p.tick = target

    def _router_calls(self, swapped_txs: dict, txs: dict):
        victims, calls = [], []
        v2_by_pair: dict = {}
        v3_by_pair: dict = {}
        for p in self.pools:
            key = frozenset((p.token0, p.token1))
            (v2_by_pair if p.protocol == "v2" else v3_by_pair).setdefault(key, []).append(p)
        for tx_hash in sorted(swapped_txs, key=lambda h: (txs[h].block_number, txs[h].tx_index) if h in txs else
                              (1 << 62, 0)):
            tx = txs.get(tx_hash)
            if tx is None or not tx.input:
                continue
            touched = set(swapped_txs[tx_hash])
            try:
                decoded = decode_router_call(tx.input, tx.value)
            except Exception:  # noqa: BLE001 - calldata that does not decode is not a router swap
                continue
            for call in decoded:
                hops = list(zip(call["path"][:-1], call["path"][1:]))
                pools = []
                for h, (a, b) in enumerate(hops):
                    if call["protocol"] == "v2":
                        cands = v2_by_pair.get(frozenset((a, b)), [])
                    else:
                        cands = [c for c in v3_by_pair.get(frozenset((a, b)), []) if c.fee_ppm == call["fees"][h]]
                    hit = [c for c in cands if c.pool_id in touched] or cands
                    pools.append(hit[0].pool_id if hit else -1)
                if not any(pid in touched for pid in pools):
                    continue
                self.stats["router_calls"] += 1
                calls.append({"block_number": tx.block_number, "tx_index": tx.tx_index, "tx_hash": tx_hash,
                              "router": tx.to, "pools": pools, **call})
                first_pool = pools[0]
                if first_pool < 0:
                    continue
                info = self.pools[first_pool]
                exact_in = call["exact_input"]
                victims.append({  # decimal128(38) holds any real amount; a uint256 "no limit" is clamped
                    "block_number": tx.block_number, "tx_index": tx.tx_index, "tx_hash": tx_hash,
                    "pool_id": first_pool, "zero_for_one": call["path"][0] == info.token0,
                    "amount_in": min(call["amount_in"] if exact_in else call["amount_in_max"], AMOUNT_MAX),
                    "amount_out_min": min(call["amount_out_min"] if exact_in else call["amount_out"], AMOUNT_MAX),
                    "exact_output": not exact_in,
                })
        return victims, calls
