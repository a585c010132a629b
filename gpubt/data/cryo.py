"""cryo parquet (https://github.com/paradigmxyz/cryo) → a gpubt dataset, through the same replay as `gpubt ingest`.

Reads, from one folder (searched recursively), cryo's datasets by their file names `*__logs__*.parquet`,
`*__blocks__*.parquet`, `*__transactions__*.parquet` and, if present, `*__erc20_metadata__*.parquet`, in cryo's
column names, with binary columns either raw bytes (cryo's default) or 0x-hex strings (`cryo --hex`):

    logs          block_number, transaction_index, log_index, transaction_hash, address, topic0..topic3, data
    blocks        block_number, block_hash, timestamp, base_fee_per_gas, gas_used; parent_hash and gas_limit
                  when extracted (`--include-columns parent_hash`; cryo 0.3 has no gas_limit: `gas_limit` config)
    transactions  block_number, transaction_index, transaction_hash, from_address, to_address, input,
                  value (value_binary | value_string | value)
    erc20_metadata erc20, symbol, decimals (else a token's symbol is its address prefix and decimals 18)

Pools come from the factories' PairCreated / PoolCreated logs in the logs dataset (so extract logs from the pools'
creation blocks: V3 state is replayed from Initialize); `pools` optionally keeps only some of them.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.data import decode
from gpubt.data.labeler import label_mev
from gpubt.data.rpc import KNOWN_VENUES, MAINNET_WETH, _addr, _pools_table, _tokens_table
from gpubt.data.store import PARTITIONED, Dataset, DatasetWriter, partition_name, write_table_atomic

log = logging.getLogger(__name__)

SOURCE = "cryo"
MAINNET_FACTORIES = ("0x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f", "0x1f98431c8ad98523631ae4a59f267346ea31f984")


class CryoError(schema.SchemaError):
    """cryo input that cannot be read or converted; names the file / column and the fix."""


def _files(root: Path, dataset: str) -> list[Path]:
    return sorted(p for p in root.rglob(f"*__{dataset}__*.parquet") if not p.name.startswith("."))


def _read(root: Path, dataset: str, required: bool = True) -> pa.Table | None:
    files = _files(root, dataset)
    if not files:
        if required:
            raise CryoError(f"{root}: no cryo `{dataset}` parquet (files named *__{dataset}__*.parquet); extract it "
                            f"with `cryo {dataset} ...`")
        return None
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f))
        except (pa.ArrowInvalid, OSError) as exc:
            raise CryoError(f"{f}: unreadable parquet ({exc})") from None
    try:
        return pa.concat_tables(tables, promote_options="default")
    except pa.ArrowInvalid as exc:
        raise CryoError(f"{root}: the `{dataset}` files have incompatible schemas ({exc})") from None


def _col(table: pa.Table, name: str, dataset: str, alternatives=()):
    for n in (name, *alternatives):
        if n in table.column_names:
            return table.column(n).to_pylist()
    raise CryoError(f"cryo {dataset}: missing column {name} (has {', '.join(table.column_names)})")


def _hex(v) -> str | None:
    """A cryo binary value (bytes or a 0x-hex string) → lower-case 0x-hex; None stays None."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    return str(v).lower() if str(v).startswith("0x") else "0x" + str(v).lower()


def _bytes(v) -> bytes:
    if v is None:
        return b""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    s = str(v)
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def _uint(v) -> int:
    if v is None:
        return 0
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        return int(v, 16) if v.startswith("0x") else int(v)
    return int(v)


def read_logs(table: pa.Table) -> list[decode.RawLog]:
    cols = {n: _col(table, n, "logs") for n in ("block_number", "transaction_index", "log_index",
                                                 "transaction_hash", "address", "data")}
    topics = [table.column(f"topic{i}").to_pylist() if f"topic{i}" in table.column_names else [None] * table.num_rows
              for i in range(4)]
    out = []
    for i in range(table.num_rows):
        ts = tuple(_hex(t[i]) for t in topics if t[i] is not None)
        out.append(decode.RawLog(int(cols["block_number"][i]), int(cols["transaction_index"][i]),
                                 int(cols["log_index"][i]), _hex(cols["transaction_hash"][i]),
                                 _hex(cols["address"][i]), ts, _bytes(cols["data"][i])))
    out.sort(key=lambda g: (g.block_number, g.log_index))
    for a, b in zip(out, out[1:]):
        if (a.block_number, a.log_index) == (b.block_number, b.log_index):
            raise CryoError(f"cryo logs: duplicate log (block {a.block_number}, log {a.log_index}): overlapping "
                            "cryo files in the folder?")
    return out


def read_blocks(table: pa.Table, gas_limit: int) -> list[decode.RawBlock]:
    n = table.num_rows
    number = _col(table, "block_number", "blocks")
    block_hash = _col(table, "block_hash", "blocks")
    parent = table.column("parent_hash").to_pylist() if "parent_hash" in table.column_names else [None] * n
    limit = table.column("gas_limit").to_pylist() if "gas_limit" in table.column_names else [gas_limit] * n
    ts, fee, used = (_col(table, c, "blocks") for c in ("timestamp", "base_fee_per_gas", "gas_used"))
    out = sorted((decode.RawBlock(int(number[i]), _hex(block_hash[i]), _hex(parent[i]) or "", int(ts[i]),
                                  _uint(fee[i]), int(used[i]), int(limit[i] or gas_limit)) for i in range(n)),
                 key=lambda b: b.block_number)
    for a, b in zip(out, out[1:]):
        if b.block_number != a.block_number + 1:
            raise CryoError(f"cryo blocks: block {a.block_number} is followed by {b.block_number} (the blocks must be "
                            "contiguous: extract the whole range)")
        if b.parent_hash and b.parent_hash != a.block_hash:
            raise CryoError(f"cryo blocks: block {b.block_number}'s parent hash {b.parent_hash} is not block "
                            f"{a.block_number}'s hash {a.block_hash}: the files mix forks")
    return out


def read_transactions(table: pa.Table | None, wanted: set) -> dict:
    if table is None:
        return {}
    hashes = [_hex(h) for h in _col(table, "transaction_hash", "transactions")]
    keep = [i for i, h in enumerate(hashes) if h in wanted]
    if not keep:
        return {}
    sub = table.take(pa.array(keep))
    number, index, sender, to, data = (_col(sub, c, "transactions") for c in (
        "block_number", "transaction_index", "from_address", "to_address", "input"))
    if "value_binary" in sub.column_names:
        value = [_uint(v) for v in sub.column("value_binary").to_pylist()]
    elif "value_string" in sub.column_names:
        value = [int(v or 0) for v in sub.column("value_string").to_pylist()]
    else:
        value = [_uint(v) for v in _col(sub, "value", "transactions")]
    return {hashes[i]: decode.RawTx(hashes[i], int(number[j]), int(index[j]), _hex(sender[j]), _hex(to[j]) or "",
                                    value[j], _bytes(data[j])) for j, i in enumerate(keep)}


def _fingerprint(root: Path, params: dict) -> str:
    files = [(str(p.relative_to(root)), p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(root.rglob("*.parquet"))
             if "__" in p.name]
    blob = json.dumps({"files": files, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def convert(cryo_dir, out, factories=MAINNET_FACTORIES, pools=(), weth: str = MAINNET_WETH, hub_tokens=(),
            partition_blocks: int = 1000, gas_limit: int = 30_000_000, usd_pool: str | None = None,
            eth_usd: float | None = None, price_interval: int = 100, fingerprint: str | None = None) -> Path:
    """Convert the cryo datasets in `cryo_dir` into a complete gpubt dataset at `out` (written from scratch)."""
    root, out = Path(cryo_dir), Path(out)
    if not root.is_dir():
        raise CryoError(f"data.path={root}: not a folder of cryo parquet files")
    factories = [_addr(f) for f in factories]
    wanted = {_addr(p) for p in pools}
    weth = _addr(weth)
    blocks = read_blocks(_read(root, "blocks"), int(gas_limit))
    if not blocks:
        raise CryoError(f"{root}: the cryo blocks dataset is empty")
    first, last = blocks[0].block_number, blocks[-1].block_number
    logs = [g for g in read_logs(_read(root, "logs")) if first <= g.block_number <= last]

    # pools from the factories' creation logs (in log order), tokens: WETH first, then in order of first use
    found = []
    creation = {decode.TOPIC["factory:PairCreated"], decode.TOPIC["factory:PoolCreated"]}
    for g in logs:
        if g.topics and g.topics[0] in creation and (not factories or g.address in factories):
            codec = decode.FACTORY_TOPICS[g.topics[0]]
            a = decode.decode_event(codec, g.topics, g.data)
            if codec.name == "PairCreated":
                p = dict(address=a["pair"].lower(), protocol="v2", fee_ppm=3000, tick_spacing=0)
            else:
                p = dict(address=a["pool"].lower(), protocol="v3", fee_ppm=a["fee"], tick_spacing=a["tickSpacing"])
            p.update(token0=a["token0"].lower(), token1=a["token1"].lower(), created_block=g.block_number,
                     venue=KNOWN_VENUES.get(g.address, f"uniswap_{p['protocol']}"))
            if not wanted or p["address"] in wanted:
                found.append(p)
    if wanted - {p["address"] for p in found}:
        missing = sorted(wanted - {p["address"] for p in found})
        raise CryoError(f"{root}: no PairCreated/PoolCreated log of pool(s) {', '.join(missing[:3])} from factories "
                        f"{', '.join(factories)} in blocks {first}..{last}: extract the logs from the pools' creation")
    if not found:
        raise CryoError(f"{root}: the logs hold no PairCreated/PoolCreated of factories {', '.join(factories)} in "
                        f"blocks {first}..{last} (set data.factories, or extract from the pools' creation blocks)")
    meta = {}
    md = _read(root, "erc20_metadata", required=False)
    if md is not None:
        for addr, sym, dec in zip(_col(md, "erc20", "erc20_metadata"), _col(md, "symbol", "erc20_metadata"),
                                  _col(md, "decimals", "erc20_metadata")):
            meta[_hex(addr)] = (sym or "", 18 if dec is None else int(dec))
    tokens, token_ids = [], {}
    hubs = {_addr(h) for h in hub_tokens} | {weth}
    for a in [weth] + [t for p in found for t in (p["token0"], p["token1"])]:
        if a not in token_ids:
            symbol, decimals = meta.get(a, ("", 18))
            token_ids[a] = len(tokens)
            tokens.append({"token_id": len(tokens), "address": a, "symbol": symbol or a[:8], "decimals": decimals,
                           "is_hub": a in hubs})
    missing_meta = [t["address"] for t in tokens if t["address"] not in meta]
    if missing_meta:
        log.warning("cryo: no erc20_metadata for %d token(s) (e.g. %s): decimals 18 assumed", len(missing_meta),
                    missing_meta[0])
    infos = [decode.PoolInfo(i, p["address"], p["protocol"], p["token0"], p["token1"], int(p["fee_ppm"]),
                             int(p["tick_spacing"]), int(p["created_block"]), p["venue"]) for i, p in enumerate(found)]
    replay = decode.ChainReplay(infos, token_ids, usd_pool=_addr(usd_pool) if usd_pool else None, eth_usd=eth_usd,
                                price_interval=int(price_interval),
                                decimals={t["address"]: t["decimals"] for t in tokens})
    addresses = {p.address for p in infos}
    pool_logs = [g for g in logs if g.address in addresses]
    swap_topics = {decode.TOPIC["v2:Swap"], decode.TOPIC["v3:Swap"]}
    txs = read_transactions(_read(root, "transactions", required=False),
                            {g.tx_hash for g in pool_logs if g.topics and g.topics[0] in swap_topics})

    if out.exists() and any(out.iterdir()):
        existing = out / "manifest.json"
        if not existing.is_file() or json.loads(existing.read_text()).get("source") != SOURCE:
            raise CryoError(f"{out}: exists and is not a cryo conversion; choose another output folder")
    params = {"cryo_dir": str(root), "factories": factories, "pools": sorted(wanted), "weth": weth,
              "partition_blocks": int(partition_blocks), "gas_limit": int(gas_limit), "usd_pool": usd_pool,
              "eth_usd": eth_usd, "price_interval": int(price_interval), "hashes": {},
              "fingerprint": fingerprint}
    writer = DatasetWriter(out, SOURCE, params)
    pools_table = _pools_table(infos, token_ids)
    writer.write_static(_tokens_table(tokens), pools_table)
    by_block: dict[int, list] = {}
    for g in pool_logs:
        by_block.setdefault(g.block_number, []).append(g)
    lo = first
    while lo <= last:
        hi = min(first + ((lo - first) // partition_blocks + 1) * partition_blocks - 1, last)
        part_blocks = blocks[lo - first:hi - first + 1]
        part_logs = [g for b in range(lo, hi + 1) for g in by_block.get(b, ())]
        try:
            tables = replay.partition(lo, hi, part_blocks, part_logs, txs)
        except decode.ReplayError as exc:
            raise CryoError(f"{root}: {exc}") from None
        tables["labels"] = label_mev(tables["events"], pools_table)[0]  # executed MEV, for validation
        write_table_atomic(tables.pop("router_calls"), out / "router_calls" / partition_name(lo, hi))
        writer.params["hashes"][f"{lo}-{hi}"] = [part_blocks[0].parent_hash, part_blocks[-1].block_hash]
        writer.write_partition(lo, hi, tables)
        lo = hi + 1
    writer.finish()
    if replay.stats["v3_swap_mismatches"]:
        log.warning("cryo: %d V3 swaps replayed to another state than their log (the log's state was kept)",
                    replay.stats["v3_swap_mismatches"])
    return out


def open_cached(data_cfg) -> Dataset:
    """`data=cryo`: convert data.path once into data.out (default cache_dir/cryo-<name>-<fingerprint>), reuse it."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(data_cfg, resolve=True)
    if not c.get("path"):
        raise CryoError("data=cryo needs data.path=<folder of cryo parquet: logs, blocks, transactions>")
    root = Path(c["path"])
    if not root.is_dir():
        raise CryoError(f"data.path={root}: not a folder of cryo parquet files")

    def as_list(v):
        return [] if v is None else ([s for s in str(v).replace(",", " ").split()] if isinstance(v, str) else list(v))
    params = dict(factories=as_list(c.get("factories")) or list(MAINNET_FACTORIES), pools=as_list(c.get("pools")),
                  weth=c.get("weth") or MAINNET_WETH, hub_tokens=as_list(c.get("hub_tokens")),
                  partition_blocks=int(c.get("partition_blocks") or 1000),
                  gas_limit=int(c.get("gas_limit") or 30_000_000), usd_pool=c.get("usd_pool") or None,
                  eth_usd=None if c.get("eth_usd") is None else float(c["eth_usd"]),
                  price_interval=int(c.get("price_interval") or 100))
    key = _fingerprint(root, params)
    out = Path(c.get("out") or Path(c.get("cache_dir") or "data_cache") / f"cryo-{root.resolve().name}-{key}")
    if (out / "manifest.json").is_file():
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("complete") and manifest.get("params", {}).get("fingerprint") == key:
            return Dataset(out)
        if manifest.get("source") == SOURCE:  # stale or interrupted conversion of ours: redo it from scratch
            _remove_conversion(out)
    convert(root, out, fingerprint=key, **params)
    return Dataset(out)


CONVERSION_ENTRIES = {"manifest.json", "tokens.parquet", "pools.parquet", "router_calls", *PARTITIONED}


def _remove_conversion(out: Path) -> None:
    """Delete a stale conversion of ours, entry by entry: only what a conversion writes. Anything else in the
    folder is the user's (data.out may name any folder), so then nothing is deleted and the run is refused."""
    import shutil

    others = sorted(p.name for p in out.iterdir() if p.name not in CONVERSION_ENTRIES and not p.name.endswith(".tmp"))
    if others:
        raise CryoError(f"data.out={out}: holds an outdated cryo conversion and files gpubt did not write "
                        f"({', '.join(others[:5])}); choose another data.out, or move those files out")
    for entry in out.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


