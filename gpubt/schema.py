"""The Arrow schema of every gpubt table, and validation of inputs at the boundary.

Token amounts and reserves are raw integer units (wei) stored as decimal128(38, 0): V2 reserves are uint112
(< 5.2e33), well inside 38 digits, and Python `int(Decimal)` is exact. Events carry the pool's reserves *after*
the event, so the state of a pool at any (block, tx index) is a lookup (see gpubt/pack.py).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

AMOUNT = pa.decimal128(38, 0)
# V3 quantities: sqrtPriceX96 is a uint160 and liquidity a uint128, beyond decimal128's 38 digits.
BIG = pa.decimal256(76, 0)

_INT64_MAX = 2**63 - 1


def block_range_mask(block_numbers, first_block: int | None = None, last_block: int | None = None) -> np.ndarray:
    """bool per row: first_block <= block_number <= last_block (None: open on that side)."""
    block_numbers = np.asarray(block_numbers)
    keep = np.ones(len(block_numbers), bool)
    if first_block is not None:
        keep &= block_numbers >= first_block
    if last_block is not None:
        keep &= block_numbers <= last_block
    return keep


def amount_sum(column) -> int:
    """Exact sum of an AMOUNT column as a Python int (0 when empty)."""
    total = pc.sum(column).as_py()
    return int(total) if total is not None else 0


def amounts_float(column) -> np.ndarray:
    """An AMOUNT column as float64, each value exactly float(int(v)) (correctly rounded): one numpy cast for the
    values that fit int64, Python ints only for the others (no per-row Python objects for a whole table)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(column):
        return np.zeros(0)
    out = pc.cast(column, pa.int64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float64)
    lo, hi = pc.min_max(column).values()
    if int(lo.as_py()) < -_INT64_MAX or int(hi.as_py()) > _INT64_MAX:
        wide = pc.or_(pc.less(column, pa.scalar(-_INT64_MAX, column.type)),
                      pc.greater(column, pa.scalar(_INT64_MAX, column.type)))
        rows = np.flatnonzero(wide.to_numpy(zero_copy_only=False))
        out[rows] = [float(int(v)) for v in column.take(pa.array(rows)).to_pylist()]
    return out


def amounts_int(column) -> list:
    """An AMOUNT column as exact Python ints (None where null), from the decimal128's two 64-bit words
    (little-endian two's complement; scale 0 makes the unscaled integer the value): ~10x faster than int(Decimal)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.type != AMOUNT:
        raise ValueError(f"amounts_int: a {AMOUNT} column, not {column.type}")
    words = np.frombuffer(column.buffers()[1], np.uint64, 2 * len(column), 16 * column.offset).reshape(-1, 2)
    out = ((words[:, 1].view(np.int64).astype(object) << 64) | words[:, 0].astype(object)).tolist()
    if column.null_count:  # a null slot's words are undefined
        for i in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist():
            out[i] = None
    return out


TOKENS = pa.schema([
    ("token_id", pa.int32()),
    ("address", pa.string()),
    ("symbol", pa.string()),
    ("decimals", pa.int32()),
    ("is_hub", pa.bool_()),
])

POOLS = pa.schema([
    ("pool_id", pa.int32()),
    ("address", pa.string()),
    ("venue", pa.string()),          # "uniswap_v2", "sushiswap", ...
    ("protocol", pa.string()),       # "v2" (V3 arrives with issue 3)
    ("token0", pa.int32()),
    ("token1", pa.int32()),
    ("fee_ppm", pa.int32()),         # fee in millionths: 3000 = 0.30 % (V3: the pool's fee in pips)
    ("created_block", pa.int64()),
    ("tick_spacing", pa.int32()),    # V3 only (0 for V2)
])

BLOCKS = pa.schema([
    ("block_number", pa.int64()),
    ("timestamp", pa.int64()),
    ("base_fee_wei", pa.int64()),
    ("gas_used", pa.int64()),
    ("gas_limit", pa.int64()),
])

# kind: "sync" (a state snapshot, e.g. pool creation or a partition boundary), "swap", "mint", "burn", and for
# V3 "initialize". swap: amount*_in/out as in the V2 Swap log (V3: the signed amounts split into in/out);
# mint: amount*_in deposited; burn: amount*_out withdrawn. V2 rows carry reserves after the event; V3 rows
# carry the pool's token balances there, and its state after the event in sqrt_price_x96 / liquidity / tick,
# with tick_lower / tick_upper / liquidity_delta (signed) on mint and burn rows.
EVENTS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("log_index", pa.int32()),
    ("pool_id", pa.int32()),
    ("kind", pa.string()),
    ("amount0_in", AMOUNT),
    ("amount1_in", AMOUNT),
    ("amount0_out", AMOUNT),
    ("amount1_out", AMOUNT),
    ("reserve0", AMOUNT),
    ("reserve1", AMOUNT),
    ("tx_hash", pa.string()),
    ("sender", pa.string()),
    ("sqrt_price_x96", BIG),
    ("liquidity", BIG),
    ("tick", pa.int32()),
    ("tick_lower", pa.int32()),
    ("tick_upper", pa.int32()),
    ("liquidity_delta", BIG),
])
EVENT_KINDS = ("sync", "swap", "mint", "burn", "initialize")

# Pool state at the first block of a partition (before its events), so a run can start at any partition.
SNAPSHOTS = pa.schema([
    ("block_number", pa.int64()),
    ("pool_id", pa.int32()),
    ("reserve0", AMOUNT),
    ("reserve1", AMOUNT),
    ("sqrt_price_x96", BIG),         # V3 only, as in EVENTS
    ("liquidity", BIG),
    ("tick", pa.int32()),
])

# The initialized ticks of every V3 pool at the first block of a partition (with SNAPSHOTS: its full state).
TICKS = pa.schema([
    ("block_number", pa.int64()),
    ("pool_id", pa.int32()),
    ("tick", pa.int32()),
    ("liquidity_net", BIG),          # signed
    ("liquidity_gross", BIG),
])

# Pending user swaps (a router call's amountIn / amountOutMin): the sandwich strategy's victims.
VICTIMS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("tx_hash", pa.string()),
    ("pool_id", pa.int32()),
    ("zero_for_one", pa.bool_()),
    ("amount_in", AMOUNT),
    ("amount_out_min", AMOUNT),
])

# Executed MEV (planted by the synthetic market's searchers, or found by the labeler in ingested logs).
LABELS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("tx_hash", pa.string()),
    ("kind", pa.string()),           # "arbitrage", "sandwich", "jit", "cexdex", "liquidation"
    ("searcher", pa.string()),
    ("pools", pa.list_(pa.int32())),
    ("profit_token", pa.int32()),
    ("profit_raw", AMOUNT),          # may be negative: a searcher can lose
    ("gas_used", pa.int64()),
])

# Reference (off-chain) USD prices, sampled every `price_interval` blocks; used for USD at reporting only.
PRICES = pa.schema([
    ("block_number", pa.int64()),
    ("token_id", pa.int32()),
    ("price_usd", pa.float64()),
])

# Every (evaluation point, path) whose float64 screen passed the threshold.
OPPORTUNITIES = pa.schema([
    ("strategy", pa.string()),       # "arbitrage", "sandwich", "jit", "liquidation", "cexdex"
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),        # the state is after this tx; -1 = top of block
    ("path_id", pa.int32()),
    ("start_token", pa.int32()),
    ("hops", pa.int32()),
    ("screen_amount_in", pa.float64()),
    ("screen_gross_profit_raw", pa.float64()),
    ("screen_net_profit_wei", pa.float64()),
])

# Opportunities re-priced with exact integer Uniswap math and taken. gross_profit_wei is exact when the start
# token is WETH; otherwise it is gross_profit_raw converted at the block's reference price (float, rounded).
TRADES = pa.schema([
    ("strategy", pa.string()),
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("path_id", pa.int32()),
    ("start_token", pa.int32()),
    ("pools", pa.list_(pa.int32())),
    ("zero_for_one", pa.list_(pa.bool_())),
    ("amount_in", AMOUNT),
    ("amount_out", AMOUNT),
    ("gross_profit_raw", AMOUNT),
    ("gross_profit_wei", AMOUNT),
    ("gas_units", pa.int64()),
    ("gas_price_wei", pa.int64()),
    ("gas_cost_wei", AMOUNT),
    ("net_profit_wei", AMOUNT),
    ("net_profit_usd", pa.float64()),
    ("screen_net_profit_wei", pa.float64()),
    ("detail", pa.string()),         # JSON: what a reader needs to re-check a non-arbitrage trade
])

SCHEMAS = {
    "tokens": TOKENS, "pools": POOLS, "blocks": BLOCKS, "events": EVENTS, "snapshots": SNAPSHOTS,
    "ticks": TICKS, "victims": VICTIMS,
    "labels": LABELS, "prices": PRICES, "opportunities": OPPORTUNITIES, "trades": TRADES,
}


class SchemaError(ValueError):
    """An input table breaks the contract; the message names the file, column and row and the fix."""


# Columns a producer may omit (V2-only data): they are filled with nulls (tick_spacing with 0).
OPTIONAL = {
    "pools": ("tick_spacing",),
    "events": ("sqrt_price_x96", "liquidity", "tick", "tick_lower", "tick_upper", "liquidity_delta"),
    "snapshots": ("sqrt_price_x96", "liquidity", "tick"),
    "opportunities": ("strategy",),
    "trades": ("strategy", "detail"),
}


def required_names(name: str) -> list[str]:
    """Column names of the `name` schema without its optional (V3-only) columns."""
    return [n for n in SCHEMAS[name].names if n not in OPTIONAL.get(name, ())]


def conform(table: pa.Table, name: str, source: str) -> pa.Table:
    """Select and cast `table` to the `name` schema; missing columns or impossible casts raise SchemaError."""
    schema = SCHEMAS[name]
    for col in OPTIONAL.get(name, ()):
        if col not in table.column_names:
            field = schema.field(col)
            if col == "tick_spacing":
                fill = pa.array([0] * table.num_rows, field.type)
            elif col == "strategy":
                fill = pa.array(["arbitrage"] * table.num_rows, field.type)  # tables written before strategies
            else:
                fill = pa.nulls(table.num_rows, field.type)
            table = table.append_column(col, fill)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {', '.join(missing)} "
                          f"(a {name} table needs {', '.join(schema.names)})")
    columns = []
    for field in schema:
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"{source}: column {field.name} has type {col.type}, "
                                  f"expected {field.type} ({exc})") from None
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _first_row(mask) -> int:
    """Index of the first true value of a boolean Arrow array (callers know there is one)."""
    return int(pc.index(mask, True).as_py())


def _fail_where(mask, source: str, message) -> None:
    if pc.any(mask).as_py():
        row = _first_row(mask)
        raise SchemaError(f"{source} row {row}: {message(row)}")


def validate_tokens(tokens: pa.Table, source: str = "tokens") -> pa.Table:
    tokens = conform(tokens, "tokens", source)
    ids = tokens.column("token_id")
    _fail_where(pc.less(ids, 0), source, lambda r: f"token_id = {ids[r]} (ids are >= 0)")
    _check_unique(ids, source, "token_id")
    return tokens


def validate_pools(pools: pa.Table, tokens: pa.Table, source: str = "pools") -> pa.Table:
    pools = conform(pools, "pools", source)
    _check_unique(pools.column("pool_id"), source, "pool_id")
    token_ids = tokens.column("token_id")
    for side in ("token0", "token1"):
        col = pools.column(side)
        unknown = pc.invert(pc.is_in(col, value_set=token_ids))
        _fail_where(unknown, source, lambda r, c=col, s=side: f"{s} = {c[r]} is not a token_id of the tokens table")
    same = pc.equal(pools.column("token0"), pools.column("token1"))
    _fail_where(same, source, lambda r: "token0 == token1 (a pool joins two different tokens)")
    fee = pools.column("fee_ppm")
    bad_fee = pc.or_(pc.less(fee, 0), pc.greater_equal(fee, 1_000_000))
    _fail_where(bad_fee, source, lambda r: f"fee_ppm = {fee[r]} (must be in [0, 1000000))")
    return pools


def validate_blocks(blocks: pa.Table, source: str = "blocks") -> pa.Table:
    blocks = conform(blocks, "blocks", source)
    num = blocks.column("block_number").to_numpy()
    if len(num) > 1:
        bad = np.flatnonzero(np.diff(num) <= 0)
        if len(bad):
            r = int(bad[0]) + 1
            raise SchemaError(f"{source} row {r}: block_number {num[r]} after {num[r - 1]} "
                              "(blocks must be strictly increasing)")
    fee = blocks.column("base_fee_wei")
    _fail_where(pc.less(fee, 0), source, lambda r: f"base_fee_wei = {fee[r]} (must be >= 0)")
    return blocks


def validate_events(events: pa.Table, pools: pa.Table, source: str = "events") -> pa.Table:
    """Checks kinds, known pools, positive reserves, and strict (block, tx, log) order (no duplicates)."""
    events = conform(events, "events", source)
    kind = events.column("kind")
    bad_kind = pc.invert(pc.is_in(kind, value_set=pa.array(EVENT_KINDS)))
    _fail_where(bad_kind, source, lambda r: f"kind = {kind[r]!r} (expected one of {', '.join(EVENT_KINDS)})")
    pool_id = events.column("pool_id")
    unknown = pc.invert(pc.is_in(pool_id, value_set=pools.column("pool_id")))
    _fail_where(unknown, source, lambda r: f"pool_id = {pool_id[r]} is not in the pools table")
    validate_events_like_reserves(events, source)
    for col_name in ("amount0_in", "amount1_in", "amount0_out", "amount1_out"):
        col = events.column(col_name)
        _fail_where(pc.less(col, pa.scalar(0, AMOUNT)), source,
                    lambda r, c=col, n=col_name: f"{n} = {c[r]} (amounts are unsigned)")
    if events.num_rows > 1:
        b = events.column("block_number").to_numpy()
        t = events.column("tx_index").to_numpy().astype(np.int64)
        g = events.column("log_index").to_numpy().astype(np.int64)
        db, dt, dg = np.diff(b), np.diff(t), np.diff(g)
        order = np.where(db != 0, np.sign(db), np.where(dt != 0, np.sign(dt), np.sign(dg)))
        bad = np.flatnonzero(order <= 0)
        if len(bad):
            r = int(bad[0]) + 1
            what = "duplicate event" if order[r - 1] == 0 else "events out of order"
            raise SchemaError(f"{source} row {r}: {what} at (block {b[r]}, tx {t[r]}, log {g[r]}) after "
                              f"(block {b[r - 1]}, tx {t[r - 1]}, log {g[r - 1]}); events must be sorted by "
                              "(block_number, tx_index, log_index) without repeats")
    return events


def validate_events_like_reserves(table: pa.Table, source: str) -> None:
    """V2 reserves (rows without sqrt_price_x96) must be > 0; V3 balances >= 0."""
    is_v3 = pc.is_valid(table.column("sqrt_price_x96"))
    for col_name in ("reserve0", "reserve1"):
        col = table.column(col_name)
        bad_v2 = pc.and_(pc.invert(is_v3), pc.less_equal(col, pa.scalar(0, AMOUNT)))
        _fail_where(bad_v2, source,
                    lambda r, c=col, n=col_name: f"{n} = {c[r]} (a pool must have liquidity: reserves > 0)")
        _fail_where(pc.and_(is_v3, pc.less(col, pa.scalar(0, AMOUNT))), source,
                    lambda r, c=col, n=col_name: f"{n} = {c[r]} (a V3 pool's token balance cannot be negative)")


def _check_unique(col, source: str, name: str) -> None:
    values = col.to_numpy()
    uniq, first, counts = np.unique(values, return_index=True, return_counts=True)
    if len(uniq) != len(values):
        dup = uniq[counts > 1][0]
        rows = np.flatnonzero(values == dup)
        raise SchemaError(f"{source} row {rows[1]}: duplicate {name} = {dup} (first at row {rows[0]})")


def amounts_to_float(col) -> np.ndarray:
    """decimal128 raw amounts → float64 numpy (screening precision)."""
    return pc.cast(col, pa.float64()).to_numpy()
