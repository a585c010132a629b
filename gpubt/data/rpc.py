"""`gpubt ingest`: a JSON-RPC node (an archive node for history) → a gpubt dataset (gpubt/data/store.py).

Per partition of `partition_blocks` blocks: block headers (batched), the tracked pools' logs (eth_getLogs over
chunks of `chunk_size` blocks, split in halves whenever the node refuses a range as too large), and the txs that
swapped in a tracked pool (for router calldata → VICTIMS); then gpubt/data/decode.py replays them into tables and
the partition is written atomically (tables and side files first, the manifest last).

Robustness:
- every request retries with exponential backoff on timeouts, dropped connections, HTTP 429 (Retry-After) and 5xx,
  one log line an attempt, at most `max_retries` times and `max_retry_seconds` in all (each attempt waits at most
  `timeout_s` for the answer); a node that refuses the connection (nothing listening), cannot be resolved, or answers
  something other than JSON before it ever answered fails at once; at most `concurrency` requests are in flight;
- resume: the manifest lists the complete partitions and `ingest_state/<partition>.parquet.json` holds the pool
  state at each partition's end, so a killed ingest continues after its last complete partition; files of a
  partition the manifest does not list are rewritten; re-running a finished ingest changes nothing;
- reorgs: only blocks at least `confirmations` deep are read; each partition's first parent hash and last hash
  are kept in the manifest (params.hashes), every block's parentHash must chain, every log's blockHash must be its
  block's, and a resumed or extended ingest re-checks the stored hashes against the node: a mismatch stops with
  a ReorgError and leaves the dataset untouched.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from tqdm.auto import tqdm

from gpubt import schema
from gpubt.data import decode
from gpubt.data.store import PARTITIONED, DatasetWriter, partition_name, write_json_atomic, \
    write_table_atomic
from gpubt.data.labeler import label_mev

log = logging.getLogger(__name__)

FAILPOINT_ENV = "GPUBT_FAILPOINT"  # "ingest-after-partition:N" / "ingest-before-write:N": SIGKILL there (tests)
SOURCE = "rpc"
MAINNET_WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
SIDE_TABLES = ("router_calls",)
STATE_DIR = "ingest_state"


class IngestError(ValueError):
    """Bad input or an unusable node; the message names the problem and the fix."""


class ChainMismatch(IngestError):
    pass


class ReorgError(IngestError):
    pass


class RpcUnavailable(IngestError):
    pass


class RpcError(Exception):
    """A JSON-RPC error object returned by the node."""

    def __init__(self, method: str, error: dict):
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        super().__init__(f"{method}: node error {self.code}: {self.message}")


class TooManyResults(RpcError):
    pass


# the wordings of "this eth_getLogs range is too large" of geth, erigon, nethermind, alchemy, infura, quicknode, ...
_TOO_MANY = re.compile(r"more than \d+ results|too many|response size|block range|range.*(too|exceed|large|max)|"
                       r"limit exceeded|exceeds? (the )?(max|limit)|query timeout|returned more", re.I)


def _failpoint(stage: str, n: int) -> None:
    if os.environ.get(FAILPOINT_ENV) == f"{stage}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class RpcClient:
    """JSON-RPC over HTTP with retries; thread-safe (one keep-alive session per thread)."""

    url: str
    timeout_s: float = 10.0          # one attempt's wait for the answer
    max_retries: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    max_retry_seconds: float = 30.0  # one request's attempts and waits together
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._id = 0
        self._answered = False  # the node answered once: a refused connection is then a restart, worth retrying

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _post(self, payload, what: str):
        """POST with retries on transport faults (one log line each); returns the decoded JSON body."""
        attempts = self.max_retries + 1
        t0 = time.monotonic()
        deadline = t0 + self.max_retry_seconds
        delay = self.backoff_s
        for attempt in range(1, attempts + 1):
            reason, wait = None, None
            timeout = max(0.05, min(self.timeout_s, deadline - time.monotonic()))
            try:
                resp = self._session().post(self.url, json=payload, timeout=timeout)
                if resp.status_code == 429:
                    reason, detail = "http_429", "HTTP 429 Too Many Requests"
                    wait = _retry_after(resp.headers.get("Retry-After"))
                elif resp.status_code >= 500:
                    reason, detail = "http_5xx", f"HTTP {resp.status_code} {_shown(resp.text, 80)}"
                elif resp.status_code != 200:
                    raise RpcUnavailable(f"{self.url}: HTTP {resp.status_code} on {what} ({_shown(resp.text)}); is "
                                         "rpc_url the node's JSON-RPC endpoint?")
                else:
                    try:
                        body = resp.json()
                        self._answered = True
                        return body
                    except ValueError:
                        reason, detail = "bad_json", f"not JSON: {_shown(resp.text, 80)}"
                        if not self._answered:
                            raise RpcUnavailable(f"{self.url}: the answer to {what} is not JSON "
                                                 f"({_shown(resp.text)}): is rpc_url a JSON-RPC endpoint?") from None
            except requests.Timeout:
                reason, detail = "timeout", f"no answer within {timeout:.1f} s"
            except requests.ConnectionError as exc:
                reason, detail = "connection", f"connection failed: {_root_cause(exc)}"
                self._local.session = None  # a dropped keep-alive connection: start a fresh one
                if not self._answered and _caused_by(exc, (ConnectionRefusedError, socket.gaierror)):
                    raise RpcUnavailable(f"{self.url}: {what}: {_root_cause(exc)}: no node is listening there; "
                                         "start the node, or fix rpc_url") from None
            self._count(f"retry_{reason}")
            left = deadline - time.monotonic()
            if attempt == attempts or left <= 0:
                raise RpcUnavailable(
                    f"{self.url}: {what} failed {attempt} times in {time.monotonic() - t0:.1f} s (last: {detail}); is "
                    f"the node up and rpc_url right? For a slow or busy node raise timeout_s={self.timeout_s:g} (one "
                    f"attempt), max_retry_seconds={self.max_retry_seconds:g} (all attempts) or max_retries="
                    f"{self.max_retries}, or lower concurrency")
            sleep = min(wait if wait is not None else delay * (0.5 + random.random()), self.max_backoff_s, left)
            log.warning("%s: %s attempt %d/%d failed (%s); retrying in %.1f s", self.url, what, attempt, attempts,
                        detail, sleep)
            time.sleep(sleep)
            delay = min(delay * 2, self.max_backoff_s)
        raise AssertionError("unreachable")

    def _next_id(self) -> int:
        with self._lock:
            self._id += 1
            return self._id

    def call(self, method: str, params: list):
        self._count("requests")
        body = self._post({"jsonrpc": "2.0", "id": self._next_id(), "method": method, "params": params}, method)
        if not isinstance(body, dict) or ("result" not in body and not body.get("error")):
            raise RpcUnavailable(f"{self.url}: the node's answer to {method} is not a JSON-RPC response (no result, "
                                 f"no error): {_shown(body)}; is rpc_url a JSON-RPC endpoint?")
        if "error" in body and body["error"]:
            err = body["error"]
            cls = TooManyResults if method == "eth_getLogs" and _TOO_MANY.search(str(err.get("message"))) else RpcError
            raise cls(method, err)
        return body.get("result")

    def batch(self, calls: list[tuple[str, list]], what: str = "batch") -> list:
        """Results of several calls in one request, in order; an item error raises RpcError."""
        if not calls:
            return []
        self._count("requests")
        for attempt in range(self.max_retries + 1):
            payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
            body = self._post(payload, what)
            if isinstance(body, list) and len(body) == len(calls):
                by_id = {item.get("id"): item for item in body}
                if len(by_id) == len(calls):
                    out = []
                    for i, (m, _) in enumerate(calls):
                        item = by_id.get(i, {})
                        if item.get("error"):
                            raise RpcError(m, item["error"])
                        out.append(item.get("result"))
                    return out
            if isinstance(body, dict) and body.get("error"):
                err = body["error"]
                if attempt < self.max_retries and ("rate" in str(err.get("message", "")).lower()):
                    self._count("retry_rate_limited")
                    time.sleep(self.backoff_s * (attempt + 1))
                    continue
                raise RpcError(what, err)
            self._count("retry_bad_batch")
            log.warning("%s: %s attempt %d/%d: not a JSON-RPC batch response (%s); retrying", self.url, what,
                        attempt + 1, self.max_retries + 1, _shown(body, 80))
            time.sleep(self.backoff_s)
        raise RpcUnavailable(f"{self.url}: {what}: no well-formed batch response after {self.max_retries + 1} tries "
                             f"(last: {_shown(body)}); does the node accept JSON-RPC batches?")


def _shown(body, limit: int = 200) -> str:
    """A node's answer for an error message: JSON (or text), truncated to `limit` characters."""
    text = body if isinstance(body, str) else json.dumps(body)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _causes(exc: BaseException):
    """exc and what it wraps (requests -> urllib3 -> socket errors), without repeats."""
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]


def _caused_by(exc: BaseException, types: tuple) -> bool:
    return any(isinstance(e, types) for e in _causes(exc))


def _root_cause(exc: BaseException) -> str:
    """The OS-level reason of a connection error ('[Errno 111] Connection refused'), else its innermost message."""
    causes = list(_causes(exc))
    for e in causes:
        if isinstance(e, OSError) and e.errno is not None:
            return str(e)
    return str(causes[-1]) or type(causes[-1]).__name__


def _retry_after(value) -> float | None:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _int(x) -> int:
    return int(x, 16) if isinstance(x, str) else int(x or 0)


# --------------------------------------------------------------------------------------------------- fetching
def raw_block(b: dict) -> decode.RawBlock:
    return decode.RawBlock(_int(b["number"]), b["hash"].lower(), b["parentHash"].lower(), _int(b["timestamp"]),
                           _int(b.get("baseFeePerGas") or 0), _int(b["gasUsed"]), _int(b["gasLimit"]))


def raw_log(g: dict) -> decode.RawLog:
    return decode.RawLog(_int(g["blockNumber"]), _int(g["transactionIndex"]), _int(g["logIndex"]),
                         g["transactionHash"].lower(), g["address"].lower(), tuple(t.lower() for t in g["topics"]),
                         bytes.fromhex(g["data"][2:]))


def raw_tx(t: dict) -> decode.RawTx:
    return decode.RawTx(t["hash"].lower(), _int(t["blockNumber"]), _int(t["transactionIndex"]), t["from"].lower(),
                        (t.get("to") or "").lower(), _int(t.get("value") or 0), bytes.fromhex(t["input"][2:]))


def get_logs(client: RpcClient, addresses: list, topics: list, lo: int, hi: int, stats: dict) -> list[dict]:
    """eth_getLogs over lo..hi, halving the range whenever the node says it is too large."""
    try:
        result = client.call("eth_getLogs", [{"fromBlock": hex(lo), "toBlock": hex(hi), "address": addresses,
                                              "topics": [topics] if topics else []}])
    except TooManyResults:
        if lo == hi:
            raise RpcUnavailable(f"eth_getLogs: the node refuses even the single block {lo} as too large; "
                                 "track fewer pools per request") from None
        stats["range_splits"] = stats.get("range_splits", 0) + 1
        mid = (lo + hi) // 2
        return get_logs(client, addresses, topics, lo, mid, stats) + get_logs(client, addresses, topics, mid + 1,
                                                                              hi, stats)
    if not isinstance(result, list):
        raise RpcUnavailable(f"eth_getLogs {lo}..{hi}: unexpected result {str(result)[:200]}")
    for g in result:
        if g.get("removed"):
            raise ReorgError(f"eth_getLogs {lo}..{hi}: the node returned a removed log (block {g.get('blockNumber')}):"
                             " the range is being reorganized; raise ingest.confirmations")
    return result


def _chunks(lo: int, hi: int, size: int):
    for a in range(lo, hi + 1, size):
        yield a, min(a + size - 1, hi)


@dataclass
class Fetcher:
    client: RpcClient
    concurrency: int = 4
    chunk_size: int = 1000
    batch_size: int = 100
    address_chunk: int = 500
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(self.concurrency)))

    def close(self):
        self.pool.shutdown(wait=True)

    def blocks(self, lo: int, hi: int) -> list[decode.RawBlock]:
        def one(a_b):
            a, b = a_b
            res = self.client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(a, b + 1)],
                                    f"eth_getBlockByNumber {a}..{b}")
            for n, r in zip(range(a, b + 1), res):
                if r is None:
                    raise IngestError(f"block {n}: the node does not have it (is last_block past the head, or is "
                                      "this not an archive node?)")
            return [raw_block(r) for r in res]
        return [b for part in self.pool.map(one, list(_chunks(lo, hi, self.batch_size))) for b in part]

    def logs(self, addresses: list, topics: list, lo: int, hi: int, block_hashes: dict | None = None
             ) -> list[decode.RawLog]:
        """Logs of `addresses` with topic0 in `topics`, sorted; with `block_hashes` each log's blockHash must match
        (a log of another fork means the range reorganized while it was read)."""
        jobs = [(a, b, addresses[i:i + self.address_chunk]) for a, b in _chunks(lo, hi, self.chunk_size)
                for i in range(0, len(addresses), self.address_chunk)]
        results = self.pool.map(lambda j: get_logs(self.client, j[2], topics, j[0], j[1], self.stats), jobs)
        out = []
        for part in results:
            for g in part:
                rl = raw_log(g)
                if block_hashes is not None:
                    want = block_hashes.get(rl.block_number)
                    if want is None:
                        raise IngestError(f"eth_getLogs {lo}..{hi}: a log of block {rl.block_number}, outside the range")
                    if str(g.get("blockHash", "")).lower() != want:
                        raise ReorgError(f"block {rl.block_number}: a log's blockHash {g.get('blockHash')} is not the "
                                         f"block's hash {want} (the chain reorganized while blocks {lo}..{hi} were "
                                         "read); nothing was written for them: re-run with more ingest.confirmations")
                out.append(rl)
        out.sort(key=lambda g: (g.block_number, g.log_index))
        return out

    def txs(self, hashes: list) -> dict:
        hashes = sorted(hashes)
        groups = [hashes[i:i + self.batch_size] for i in range(0, len(hashes), self.batch_size)]

        def one(group):
            res = self.client.batch([("eth_getTransactionByHash", [h]) for h in group], "eth_getTransactionByHash")
            missing = [h for h, r in zip(group, res) if r is None]
            if missing:
                raise IngestError(f"transaction {missing[0]}: the node does not have it")
            return [raw_tx(r) for r in res]
        return {t.tx_hash: t for part in self.pool.map(one, groups) for t in part}

    def calls(self, calls: list[tuple[str, str, int]]) -> list:
        """eth_call (to, data, block) each → bytes, or None where the call reverts / the address has no code."""
        def one(group):
            try:
                res = self.client.batch([("eth_call", [{"to": to, "data": data}, hex(block)])
                                         for to, data, block in group], "eth_call")
                return [bytes.fromhex(r[2:]) if isinstance(r, str) else None for r in res]
            except RpcError:  # one reverted: retry one by one to tell which
                out = []
                for to, data, block in group:
                    try:
                        r = self.client.call("eth_call", [{"to": to, "data": data}, hex(block)])
                        out.append(bytes.fromhex(r[2:]) if isinstance(r, str) else None)
                    except RpcError:
                        out.append(None)
                return out
        groups = [calls[i:i + self.batch_size] for i in range(0, len(calls), self.batch_size)]
        return [r for part in self.pool.map(one, groups) for r in part]


# ------------------------------------------------------------------------------------------------- pools, tokens
def _addr(a: str) -> str:
    a = str(a).strip().lower()
    if not re.fullmatch(r"0x[0-9a-f]{40}", a):
        raise IngestError(f"{a!r} is not an address (0x + 40 hex digits)")
    return a


def _word_address(data: bytes | None) -> str | None:
    if not data or len(data) < 32:
        return None
    return "0x" + data[12:32].hex()


def identify_pools(fetch: Fetcher, addresses: list[str], block: int) -> list[dict]:
    """Protocol, tokens and fee of explicit pool addresses (state at `block`); a non-pool address raises."""
    calls = []
    for a in addresses:
        for name in ("token0", "token1", "fee", "tickSpacing", "getReserves", "factory"):
            calls.append((a, decode.selector(name), block))
    res = fetch.calls(calls)
    out = []
    for i, a in enumerate(addresses):
        t0, t1, fee, spacing, reserves, factory = res[6 * i:6 * i + 6]
        token0, token1 = _word_address(t0), _word_address(t1)
        if token0 is None or token1 is None or token0 == token1:
            raise IngestError(f"pool {a}: not a Uniswap V2 pair or V3 pool at block {block} (token0()/token1() "
                              "revert or the address has no code); check ingest.pools")
        if fee is not None and len(fee) == 32 and spacing is not None:
            out.append({"address": a, "protocol": "v3", "token0": token0, "token1": token1,
                        "fee_ppm": decode.decode_result("fee", fee)[0],
                        "tick_spacing": decode.decode_result("tickSpacing", spacing)[0], "created_block": None,
                        "factory": _word_address(factory)})
        elif reserves is not None and len(reserves) == 96:
            out.append({"address": a, "protocol": "v2", "token0": token0, "token1": token1, "fee_ppm": 3000,
                        "tick_spacing": 0, "created_block": None, "factory": _word_address(factory)})
        else:
            raise IngestError(f"pool {a}: has token0()/token1() but neither getReserves() (V2) nor fee()/"
                              "tickSpacing() (V3): not a Uniswap pool")
    return out


def discover_pools(fetch: Fetcher, factories: list[str], lo: int, hi: int) -> list[dict]:
    """Pools created by `factories` (PairCreated / PoolCreated) in blocks lo..hi, in creation order."""
    topics = [decode.TOPIC["factory:PairCreated"], decode.TOPIC["factory:PoolCreated"]]
    out = []
    for g in fetch.logs(factories, topics, lo, hi):
        codec = decode.FACTORY_TOPICS[g.topics[0]]
        args = decode.decode_event(codec, g.topics, g.data)
        if codec.name == "PairCreated":
            out.append({"address": args["pair"].lower(), "protocol": "v2", "token0": args["token0"].lower(),
                        "token1": args["token1"].lower(), "fee_ppm": 3000, "tick_spacing": 0,
                        "created_block": g.block_number, "factory": g.address})
        else:
            out.append({"address": args["pool"].lower(), "protocol": "v3", "token0": args["token0"].lower(),
                        "token1": args["token1"].lower(), "fee_ppm": args["fee"], "tick_spacing": args["tickSpacing"],
                        "created_block": g.block_number, "factory": g.address})
    return out


KNOWN_VENUES = {"0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f": "uniswap_v2",
                "0xc0aee478e3658e2610c5f7a4a2e1777ce9e4f2ac": "sushiswap",
                "0x1f98431c8ad98523631ae4a59f267346ea31f984": "uniswap_v3"}


def token_metadata(fetch: Fetcher, addresses: list[str], block: int) -> dict:
    calls = [(a, decode.selector(n), block) for a in addresses for n in ("decimals", "symbol")]
    res = fetch.calls(calls)
    out = {}
    for i, a in enumerate(addresses):
        dec, sym = res[2 * i], res[2 * i + 1]
        decimals = decode.decode_result("decimals", dec)[0] if dec and len(dec) >= 32 else 18
        symbol = decode.decode_symbol(sym) if sym else ""
        out[a] = (symbol or a[:8], int(decimals))
    return out


# ------------------------------------------------------------------------------------------------- the ingest
@dataclass
class IngestConfig:
    rpc_url: str
    out: str
    first_block: int
    last_block: int | None = None
    pools: list = field(default_factory=list)
    factories: list = field(default_factory=list)
    factories_from_block: int = 0
    chain_id: int | None = None
    weth: str = MAINNET_WETH
    hub_tokens: list = field(default_factory=list)
    usd_pool: str | None = None   # a WETH/USD-stablecoin pool among the pools: WETH's USD price (PRICES)
    eth_usd: float | None = None  # else a constant WETH price in USD
    price_interval: int = 100
    partition_blocks: int = 1000
    chunk_size: int = 1000
    batch_size: int = 100
    concurrency: int = 4
    confirmations: int = 12
    timeout_s: float = 10.0
    max_retries: int = 8
    backoff_s: float = 0.5
    max_retry_seconds: float = 30.0
    progress: bool = True

    def fingerprint(self) -> dict:
        """What must match for a resume or an extension of an existing dataset."""
        return {"chain_id": self.chain_id, "pools": sorted(_addr(p) for p in self.pools),
                "factories": sorted(_addr(f) for f in self.factories),
                "factories_from_block": int(self.factories_from_block), "first_block": int(self.first_block),
                "partition_blocks": int(self.partition_blocks), "weth": _addr(self.weth),
                "usd_pool": self.usd_pool and _addr(self.usd_pool), "eth_usd": self.eth_usd,
                "price_interval": int(self.price_interval)}


@dataclass
class IngestResult:
    path: Path
    first_block: int
    last_block: int
    blocks: int = 0
    logs: int = 0
    partitions_written: int = 0
    seconds: float = 0.0
    rpc_stats: dict = field(default_factory=dict)
    replay_stats: dict = field(default_factory=dict)
    up_to_date: bool = False


def check_files(root: Path, parts: list) -> None:
    """Every listed partition's files exist and are readable parquet (footer); raise naming the first bad one."""
    for part in parts:
        for name in (*PARTITIONED, *SIDE_TABLES):
            path = root / name / partition_name(*part)
            try:
                pq.read_metadata(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise IngestError(f"{path}: corrupted or missing ({exc}); the dataset was left as it is: restore "
                                  f"the file, or delete partitions from {part[0]} on (and their manifest entries) "
                                  "and re-run, or ingest into a new out path") from None
        state = root / STATE_DIR / (partition_name(*part) + ".json")
        try:
            json.loads(state.read_text())
        except (OSError, ValueError) as exc:
            raise IngestError(f"{state}: corrupted or missing ({exc}); the dataset was left as it is") from None


def ingest(cfg: IngestConfig) -> IngestResult:
    """Ingest cfg.first_block..cfg.last_block into cfg.out (resuming or extending what is there)."""
    t_start = time.perf_counter()
    root = Path(cfg.out)
    if cfg.partition_blocks < 1 or cfg.chunk_size < 1 or cfg.concurrency < 1:
        raise IngestError("ingest.partition_blocks, chunk_size and concurrency must be >= 1")
    client = RpcClient(cfg.rpc_url, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, backoff_s=cfg.backoff_s,
                       max_retry_seconds=cfg.max_retry_seconds)
    fetch = Fetcher(client, concurrency=cfg.concurrency, chunk_size=cfg.chunk_size, batch_size=cfg.batch_size)
    try:
        return _ingest(cfg, root, client, fetch, t_start)
    finally:
        fetch.close()


def _ingest(cfg: IngestConfig, root: Path, client: RpcClient, fetch: Fetcher, t_start: float) -> IngestResult:
    if not cfg.pools and not cfg.factories:
        raise IngestError("nothing to ingest: give ingest.pools=[0x...] and/or ingest.factories=[0x...]")
    chain_id = _int(client.call("eth_chainId", []))
    if cfg.chain_id is not None and chain_id != int(cfg.chain_id):
        raise ChainMismatch(f"{cfg.rpc_url}: the node's chain id is {chain_id}, expected chain_id={cfg.chain_id}; "
                            "point rpc_url at the right network or set chain_id")
    cfg.chain_id = chain_id
    head = _int(client.call("eth_blockNumber", []))
    safe = head - int(cfg.confirmations)
    last = safe if cfg.last_block is None else int(cfg.last_block)
    first = int(cfg.first_block)
    if last > safe:
        raise IngestError(f"last_block {last} is not {cfg.confirmations} confirmations deep (head {head}): "
                          f"use last_block <= {safe}, or lower ingest.confirmations")
    if first < 0 or first > last:
        raise IngestError(f"block range {first}..{last} is empty")
    fingerprint = cfg.fingerprint()

    existing = None
    if (root / "manifest.json").is_file():
        existing = json.loads((root / "manifest.json").read_text())
        if existing.get("source") != SOURCE:
            raise IngestError(f"{root}: holds a {existing.get('source')!r} dataset, not an ingest; choose another "
                              "out path")
        old = existing["params"].get("fingerprint")
        if old != fingerprint:
            diff = sorted(k for k in fingerprint if (old or {}).get(k) != fingerprint[k])
            raise IngestError(f"{root}: was ingested with other settings ({', '.join(diff)} differ); refusing to mix "
                              "them: use another out path")
    elif root.exists() and any(root.iterdir()):
        raise IngestError(f"{root}: exists and is not a gpubt ingest (no manifest.json); choose an empty out path")

    parts = [tuple(p) for p in existing["partitions"]] if existing else []
    params = existing["params"] if existing else {"fingerprint": fingerprint, "hashes": {}}
    if parts:
        check_files(root, parts)
        _check_hashes(fetch, parts, params["hashes"])
    done_to = parts[-1][1] if parts else first - 1
    result = IngestResult(root, first, last, rpc_stats=client.stats)
    if done_to >= last:
        if existing and not existing.get("complete"):
            writer = DatasetWriter(root, SOURCE, params, [list(p) for p in parts])
            writer.finish()
        result.up_to_date = True
        result.last_block = done_to
        result.seconds = time.perf_counter() - t_start
        return result

    # pools (discovered up to `last`) and tokens; ids are stable: new ones are appended
    pools, tokens = _pools_and_tokens(cfg, fetch, root, params, existing, first, last)
    token_ids = {t["address"]: t["token_id"] for t in tokens}
    replay = decode.ChainReplay(pools, token_ids, usd_pool=_addr(cfg.usd_pool) if cfg.usd_pool else None,
                                eth_usd=cfg.eth_usd, price_interval=int(cfg.price_interval),
                                decimals={t["address"]: t["decimals"] for t in tokens})
    if parts:
        replay.load_state_json(json.loads((root / STATE_DIR / (partition_name(*parts[-1]) + ".json")).read_text()))
    else:
        _bootstrap(cfg, fetch, replay, first)
    writer = DatasetWriter(root, SOURCE, params, [list(p) for p in parts])
    pools_table = _pools_table(pools, token_ids)
    writer.write_static(_tokens_table(tokens), pools_table)
    writer.params["discovered_to"] = max(int(writer.params.get("discovered_to", -1)), last)

    addresses = [p.address for p in pools]
    swap_topics = {decode.TOPIC["v2:Swap"], decode.TOPIC["v3:Swap"]}
    prev_hash = params["hashes"][_key(parts[-1])][1] if parts else None
    start = done_to + 1
    bar = tqdm(total=last - start + 1, unit="blk", desc="ingest", disable=not cfg.progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    n_written = 0
    try:
        lo = start
        while lo <= last:
            aligned_end = first + ((lo - first) // cfg.partition_blocks + 1) * cfg.partition_blocks - 1
            hi = min(aligned_end, last)
            blocks = fetch.blocks(lo, hi)
            hashes = _check_chain(blocks, prev_hash, lo)
            logs = fetch.logs(addresses, decode.POOL_TOPICS, lo, hi, hashes)
            tx_hashes = {g.tx_hash for g in logs if g.topics and g.topics[0] in swap_topics}
            txs = fetch.txs(list(tx_hashes))
            tables = replay.partition(lo, hi, blocks, logs, txs)
            tables["labels"] = label_mev(tables["events"], pools_table)[0]  # executed MEV, for validation
            _failpoint("ingest-before-write", n_written + 1)
            name = partition_name(lo, hi)
            write_table_atomic(tables.pop("router_calls"), root / "router_calls" / name)
            (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
            write_json_atomic(replay.state_json(), root / STATE_DIR / (name + ".json"))
            writer.params["hashes"][_key((lo, hi))] = [blocks[0].parent_hash, blocks[-1].block_hash]
            writer.write_partition(lo, hi, tables)
            n_written += 1
            _failpoint("ingest-after-partition", n_written)
            prev_hash = blocks[-1].block_hash
            result.blocks += hi - lo + 1
            result.logs += len(logs)
            bar.update(hi - lo + 1)
            dt = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix({"blocks/s": f"{result.blocks / dt:.0f}", "logs/s": f"{result.logs / dt:.0f}"})
            lo = hi + 1
    finally:
        bar.close()
    writer.finish()
    result.partitions_written = n_written
    result.replay_stats = dict(replay.stats)
    result.rpc_stats = {**client.stats, **fetch.stats}
    result.seconds = time.perf_counter() - t_start
    if replay.stats["v3_swap_mismatches"]:
        log.warning("%d V3 swaps replayed to a different state than their log (the log's state was kept)",
                    replay.stats["v3_swap_mismatches"])
    return result


def _key(part) -> str:
    return f"{part[0]}-{part[1]}"


def _check_chain(blocks: list, prev_hash: str | None, lo: int) -> dict:
    """Parent hashes chain inside the partition and onto the previous partition's last block."""
    for b in blocks:
        if prev_hash is not None and b.parent_hash != prev_hash:
            raise ReorgError(f"block {b.block_number}: parent hash {b.parent_hash} is not the hash {prev_hash} of "
                             f"block {b.block_number - 1} {'in the dataset' if b.block_number == lo else 'just read'}:"
                             " the chain reorganized between reads; nothing was written for this partition. Re-run"
                             " (with more ingest.confirmations) or, if the dataset's blocks are no longer canonical,"
                             " ingest into a new out path")
        prev_hash = b.block_hash
    return {b.block_number: b.block_hash for b in blocks}


def _check_hashes(fetch: Fetcher, parts: list, hashes: dict) -> None:
    """The node's hash of every stored partition's last block equals the dataset's (else: a reorg, or another chain)."""
    calls = [("eth_getBlockByNumber", [hex(p[1]), False]) for p in parts]
    res = []
    for i in range(0, len(calls), fetch.batch_size):
        res += fetch.client.batch(calls[i:i + fetch.batch_size], "eth_getBlockByNumber")
    for part, r in zip(parts, res):
        stored = hashes.get(_key(part))
        if stored is None:
            raise IngestError(f"manifest: no block hashes for partition {_key(part)}")
        node_hash = r["hash"].lower() if r else None
        if node_hash != stored[1]:
            raise ReorgError(f"block {part[1]}: the node's hash {node_hash} differs from the dataset's {stored[1]} "
                             f"(partition {_key(part)}): the chain reorganized since it was ingested, or the node is "
                             "on another fork; refusing to mix forks. The dataset was left unchanged: ingest into a "
                             f"new out path, or delete partitions from {part[0]} on")


def _pools_and_tokens(cfg, fetch, root, params, existing, first, last):
    old_pools = pa.Table.to_pylist(pq.read_table(root / "pools.parquet")) if existing else []
    old_tokens = pa.Table.to_pylist(pq.read_table(root / "tokens.parquet")) if existing else []
    known = {p["address"] for p in old_pools}
    found = []
    explicit = [_addr(p) for p in cfg.pools]
    new_explicit = [a for a in explicit if a not in known]
    if new_explicit:
        found += identify_pools(fetch, new_explicit, last)
    if cfg.factories:
        lo = max(int(cfg.factories_from_block), int(params.get("discovered_to", -1)) + 1)
        if lo <= last:
            found += [p for p in discover_pools(fetch, [_addr(f) for f in cfg.factories], lo, last)
                      if p["address"] not in known and p["address"] not in explicit]
    # tokens: WETH is token 0 (profits are measured in it), then in order of first use
    tokens = list(old_tokens)
    by_addr = {t["address"]: t for t in tokens}
    weth = _addr(cfg.weth)
    needed = [weth] + [a for p in found for a in (p["token0"], p["token1"])]
    new_tokens = list(dict.fromkeys(a for a in needed if a not in by_addr))
    if new_tokens:
        meta = token_metadata(fetch, new_tokens, last)
        hubs = {_addr(h) for h in cfg.hub_tokens} | {weth}
        for a in new_tokens:
            symbol, decimals = meta[a]
            t = {"token_id": len(tokens), "address": a, "symbol": symbol, "decimals": decimals, "is_hub": a in hubs}
            tokens.append(t)
            by_addr[a] = t
    if not tokens or tokens[0]["address"] != weth:
        raise IngestError(f"{root}: token 0 is not WETH {weth}")
    pools = [decode.PoolInfo(p["pool_id"], p["address"], p["protocol"], _token_addr(old_tokens, p["token0"]),
                             _token_addr(old_tokens, p["token1"]), p["fee_ppm"], p["tick_spacing"],
                             p["created_block"], p["venue"]) for p in old_pools]
    for p in found:
        venue = KNOWN_VENUES.get(p.get("factory") or "", f"uniswap_{p['protocol']}")
        created = p["created_block"] if p["created_block"] is not None else first
        pools.append(decode.PoolInfo(len(pools), p["address"], p["protocol"], p["token0"], p["token1"],
                                     int(p["fee_ppm"]), int(p["tick_spacing"]), int(created), venue))
    if not pools:
        raise IngestError(f"no pools: the factories {cfg.factories} created none in blocks "
                          f"{cfg.factories_from_block}..{last} and ingest.pools is empty")
    return pools, tokens


def _token_addr(tokens: list, token_id: int) -> str:
    return tokens[token_id]["address"]


def _tokens_table(tokens: list) -> pa.Table:
    return pa.Table.from_pylist(tokens, schema=schema.TOKENS)


def _pools_table(pools: list, token_ids: dict) -> pa.Table:
    rows = []
    for p in pools:
        rows.append({"pool_id": p.pool_id, "address": p.address, "venue": p.venue, "protocol": p.protocol,
                     "token0": token_ids[p.token0], "token1": token_ids[p.token1], "fee_ppm": p.fee_ppm, "created_block": p.created_block,
                     "tick_spacing": p.tick_spacing})
    return pa.Table.from_pylist(rows)


def _bootstrap(cfg: IngestConfig, fetch: Fetcher, replay: decode.ChainReplay, first: int) -> None:
    """State at first_block - 1 of pools that existed then: V2 getReserves(); V3 slot0(), liquidity(), token
    balances, and its ticks and positions from every Mint/Burn before first_block."""
    block = first - 1
    if block < 0:
        return
    explicit = {_addr(a) for a in cfg.pools}
    pools = [p for p in replay.pools if p.created_block < first or p.address in explicit]
    if not pools:
        return
    calls = []
    for p in pools:
        if p.protocol == "v2":
            calls.append((p.address, decode.selector("getReserves"), block))
        else:
            calls += [(p.address, decode.selector("slot0"), block), (p.address, decode.selector("liquidity"), block),
                      (p.token0, decode.encode_call("balanceOf", ("address",), (p.address,)), block),
                      (p.token1, decode.encode_call("balanceOf", ("address",), (p.address,)), block)]
    res = iter(fetch.calls(calls))
    v3_live = []
    for p in pools:
        st = replay.state[p.pool_id]
        if p.protocol == "v2":
            r = next(res)
            if r and len(r) == 96:
                st.reserve0, st.reserve1, _ = decode.decode_result("getReserves", r)
            continue
        slot0, liq, b0, b1 = next(res), next(res), next(res), next(res)
        if not slot0 or len(slot0) < 64:
            continue
        sqrt_price, tick = decode.decode_result("slot0", slot0)[:2]
        if sqrt_price == 0:
            continue
        v3_live.append((p, sqrt_price, tick, decode.decode_result("liquidity", liq)[0],
                        int.from_bytes(b0[:32], "big") if b0 else 0, int.from_bytes(b1[:32], "big") if b1 else 0))
    if not v3_live:
        return
    # created_block of an explicit pool is unknown: its history is read from factories_from_block
    lo = min(int(cfg.factories_from_block) if p.address in explicit else p.created_block for p, *_ in v3_live)
    history = fetch.logs([p.address for p, *_ in v3_live], [decode.TOPIC["v3:Mint"], decode.TOPIC["v3:Burn"]],
                         max(min(lo, block), 0), block)
    for p, sqrt_price, tick, liquidity, bal0, bal1 in v3_live:
        st = replay.state[p.pool_id]
        st.pool.initialize(sqrt_price)
        for g in history:
            if g.address != p.address:
                continue
            codec = decode.V3_TOPICS[g.topics[0]]
            args = decode.decode_event(codec, g.topics, g.data)
            if codec.name == "Mint":
                st.pool.mint(args["tickLower"], args["tickUpper"], args["amount"], args["owner"].lower())
            elif args["amount"]:
                st.pool.burn(args["tickLower"], args["tickUpper"], args["amount"], args["owner"].lower())
        st.pool.sqrt_price_x96, st.pool.tick, st.pool.liquidity = sqrt_price, tick, liquidity
        st.balance0, st.balance1 = bal0, bal1


def config_from_hydra(cfg) -> IngestConfig:
    """IngestConfig from the `gpubt ingest` Hydra config (configs/ingest.yaml)."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    if not c.get("rpc_url"):
        raise IngestError("gpubt ingest needs rpc_url=<http(s)://node> (an archive node for old blocks)")
    if not c.get("out"):
        raise IngestError("gpubt ingest needs out=<dataset folder>")
    if c.get("first_block") is None:
        raise IngestError("gpubt ingest needs first_block=<block number>")

    def as_list(v):
        if v is None:
            return []
        if isinstance(v, str):
            return [s for s in re.split(r"[,\s]+", v) if s]
        return list(v)
    return IngestConfig(
        rpc_url=c["rpc_url"], out=c["out"], first_block=int(c["first_block"]),
        last_block=None if c.get("last_block") is None else int(c["last_block"]),
        pools=as_list(c.get("pools")), factories=as_list(c.get("factories")),
        factories_from_block=int(c.get("factories_from_block") or 0),
        chain_id=None if c.get("chain_id") is None else int(c["chain_id"]),
        weth=c.get("weth") or MAINNET_WETH, hub_tokens=as_list(c.get("hub_tokens")),
        usd_pool=c.get("usd_pool") or None, eth_usd=None if c.get("eth_usd") is None else float(c["eth_usd"]),
        price_interval=int(c.get("price_interval") or 100),
        partition_blocks=int(c.get("partition_blocks", 1000)), chunk_size=int(c.get("chunk_size", 1000)),
        batch_size=int(c.get("batch_size", 100)), concurrency=int(c.get("concurrency", 4)),
        confirmations=int(c.get("confirmations", 12)), timeout_s=_positive(c, "timeout_s", 10.0),
        max_retries=int(c.get("max_retries", 8)), backoff_s=float(c.get("backoff_s", 0.5)),
        max_retry_seconds=_positive(c, "max_retry_seconds", 30.0), progress=bool(c.get("progress", True)))


def _positive(c: dict, key: str, default: float) -> float:
    value = c.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise IngestError(f"{key}={value}: must be a number of seconds > 0")
    return float(value)


def run_from_hydra(cfg) -> IngestResult:
    res = ingest(config_from_hydra(cfg))
    if res.up_to_date:
        print(f"gpubt: {res.path} already holds blocks {res.first_block}..{res.last_block}: nothing to do")
    else:
        rate = res.blocks / res.seconds if res.seconds else 0.0
        print(f"gpubt: ingested blocks {res.first_block}..{res.last_block} into {res.path}: {res.blocks} blocks, "
              f"{res.logs} logs in {res.seconds:.1f} s ({rate:.0f} blocks/s); "
              f"V3 swaps checked {res.replay_stats.get('v3_swaps_checked', 0)}, mismatches "
              f"{res.replay_stats.get('v3_swap_mismatches', 0)}; router swaps {res.replay_stats.get('router_calls', 0)}")
    return res
