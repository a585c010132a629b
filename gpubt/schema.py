"""The Arrow schema of every gpubt table, and validation of inputs at the boundary.

Token amounts and reserves are raw integer units (wei) stored as decimal128(38, 0): V2 reserves are uint112
(< 5.2e33), well inside 38 digits, and Python `int(Decimal)` is exact. Events carry the pool's reserves *after*
the event, so the state of a pool at any (block, tx index) is a lookup (see gpubt/market/batch.py).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt.exact.v3 import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, TICK_SPACINGS as V3_FEE_TIERS

WEI_PER_ETH = 10**18     # amounts are raw integer units (wei for ETH); ETH only where a figure is shown
GWEI = 10**9
AMOUNT = pa.decimal128(38, 0)
# V3 quantities: sqrtPriceX96 is a uint160 and liquidity a uint128, beyond decimal128's 38 digits.
BIG = pa.decimal256(76, 0)

_INT64_MAX = 2**63 - 1
MAX_ID = 1 << 24          # token and pool ids index dense per-id arrays: 16M slots at most
MAX_DECIMALS = 36         # a whole token (10**decimals raw units) fits the 38 digits of AMOUNT
MAX_TX_INDEX = (1 << 20) - 1  # kernels/cycles.py KEY_TX_BITS: a point key holds the tx index in 20 bits
PROTOCOLS = ("v2", "v3")
MAX_TIMESTAMP = 1 << 35   # seconds since 1970: year 3058 (a day axis of a run stays small)


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
    ("cex_listed", pa.bool_()),      # a CEX quotes it (CEX-DEX arbitrage can hedge it); null: not known
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

# takes_bundles: whether the block's builder included searchers' bundles (False: a locally built or vanilla block,
# where no bundle, ours included, can land; null: unknown, taken as True).
BLOCKS = pa.schema([
    ("block_number", pa.int64()),
    ("timestamp", pa.int64()),
    ("base_fee_wei", pa.int64()),
    ("gas_used", pa.int64()),
    ("gas_limit", pa.int64()),
    ("takes_bundles", pa.bool_()),
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

# Pending user swaps (a router call's limit): the sandwich and JIT strategies' victims. exact_output = False
# (exact-input: swapExact*, exactInput*): amount_in is the exact input, amount_out_min the amountOutMin.
# exact_output = True (swap*ForExact*, exactOutput*): amount_in is amountInMax (the most the user pays),
# amount_out_min the amountOut the user receives exactly; the swap pays getAmountIn(amountOut) on the state it
# meets (V3: the exact-output quote) and reverts when that exceeds amountInMax. Optional (older datasets: False).
VICTIMS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("tx_hash", pa.string()),
    ("pool_id", pa.int32()),
    ("zero_for_one", pa.bool_()),
    ("amount_in", AMOUNT),
    ("amount_out_min", AMOUNT),
    ("exact_output", pa.bool_()),
])

def victims_exact_output(victims: pa.Table) -> np.ndarray:
    """A VICTIMS table's exact_output flags as bools (False where null or where the column is absent)."""
    if "exact_output" not in victims.column_names:
        return np.zeros(victims.num_rows, np.bool_)
    return victims.column("exact_output").fill_null(False).to_numpy(zero_copy_only=False).astype(np.bool_)


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
# What a dataset's labels partition holds: LABELS (what every producer writes) plus the lending position a
# "liquidation" label liquidated (null for the other kinds), which validation matches our liquidations of the same
# position by, and what the searcher paid the block's builder (its bid plus its priority fee, wei; null where the
# producer does not know it, as the labeler of ingested blocks), which market-stats measures bribes by; both are
# filled with nulls where a table omits them (OPTIONAL).
LABELS_STORED = pa.schema(list(LABELS) + [pa.field("position_id", pa.int32()), pa.field("bribe_wei", AMOUNT)])

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
    ("detail", pa.string()),         # JSON: what a reader needs to re-check the trade (arbitrage: each hop's state)
])

SCHEMAS = {
    "tokens": TOKENS, "pools": POOLS, "blocks": BLOCKS, "events": EVENTS, "snapshots": SNAPSHOTS,
    "ticks": TICKS, "victims": VICTIMS,
    "labels": LABELS_STORED, "prices": PRICES, "opportunities": OPPORTUNITIES, "trades": TRADES,
}


class SchemaError(ValueError):
    """An input table breaks the contract; the message names the file, column and row and the fix. One line:
    the text of an error it quotes (Arrow's span lines) is joined."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


# Columns a producer may omit (V2-only data, older tables): they are filled with nulls (tick_spacing with 0,
# exact_output with False, strategy with "arbitrage", takes_bundles with True).
OPTIONAL = {
    "tokens": ("cex_listed",),
    "pools": ("tick_spacing",),
    "events": ("sqrt_price_x96", "liquidity", "tick", "tick_lower", "tick_upper", "liquidity_delta"),
    "snapshots": ("sqrt_price_x96", "liquidity", "tick"),
    "opportunities": ("strategy",),
    "trades": ("strategy", "detail"),
    "victims": ("exact_output",),
    "blocks": ("takes_bundles",),
    "labels": ("position_id", "bribe_wei"),
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
            elif col == "exact_output":
                fill = pa.array([False] * table.num_rows, field.type)  # victims written before exact-output kinds
            elif col == "strategy":
                fill = pa.array(["arbitrage"] * table.num_rows, field.type)  # tables written before strategies
            elif col == "takes_bundles":
                fill = pa.array([True] * table.num_rows, field.type)  # no builder data: bundles could land
            else:
                fill = pa.nulls(table.num_rows, field.type)
            table = table.append_column(col, fill)
    return cast_to(table, schema, source, name)


def cast_to(table: pa.Table, schema: pa.Schema, source: str, name: str, nullable=None) -> pa.Table:
    """`table`'s columns of `schema`, cast to it; a missing column, an impossible cast or (when `nullable` is given:
    the names that may hold nulls) a null raises SchemaError naming `source` (and the row)."""
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
        if nullable is not None and col.null_count and field.name not in nullable:
            row = int(pc.index(pc.is_null(col), True).as_py())
            may = f"only {', '.join(nullable)} may be" if nullable else "every column is required"
            raise SchemaError(f"{source} row {row}: {field.name} is null ({may})")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _first_row(mask) -> int:
    """Index of the first true value of a boolean Arrow array (callers know there is one)."""
    return int(pc.index(mask, True).as_py())


def _fail_where(mask, source: str, message) -> None:
    if pc.any(mask).as_py():
        row = _first_row(mask)
        raise SchemaError(f"{source} row {row}: {message(row)}")


def _no_nulls(table: pa.Table, columns, source: str, why: str = "required") -> None:
    for name in columns:
        col = table.column(name)
        if col.null_count:
            _fail_where(pc.is_null(col), source, lambda r, n=name: f"{n} is null ({why})")


def _check_ids(ids, source: str, name: str) -> None:
    """Ids index dense arrays (one slot per id up to the largest): 0 <= id < MAX_ID."""
    _fail_where(pc.or_(pc.less(ids, 0), pc.greater_equal(ids, MAX_ID)), source,
                lambda r: f"{name} = {ids[r]} (ids are in [0, {MAX_ID}): they index arrays, keep them dense)")


def _check_known(col, known, source: str, name: str, what: str) -> None:
    """Every non-null value of `col` is in `known`; `what` says what they must be ("a pool_id of the pools
    table")."""
    unknown = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=known)))
    _fail_where(unknown, source, lambda r: f"{name} = {col[r]} is not {what}")


def validate_tokens(tokens: pa.Table, source: str = "tokens") -> pa.Table:
    """Unique ids in [0, MAX_ID), decimals in 0..MAX_DECIMALS."""
    tokens = conform(tokens, "tokens", source)
    _no_nulls(tokens, ("token_id", "decimals"), source)
    ids = tokens.column("token_id")
    _check_ids(ids, source, "token_id")
    _check_unique(ids, source, "token_id")
    decimals = tokens.column("decimals")
    symbol = tokens.column("symbol")
    _fail_where(pc.or_(pc.less(decimals, 0), pc.greater(decimals, MAX_DECIMALS)), source,
                lambda r: f"token {ids[r]} ({symbol[r]}) decimals = {decimals[r]} (ERC-20 decimals are 0.."
                          f"{MAX_DECIMALS} here: raw amounts are stored in 38 digits)")
    return tokens


def validate_pools(pools: pa.Table, tokens: pa.Table, source: str = "pools") -> pa.Table:
    """Unique ids, known tokens, fee and protocol; a V3 pool needs a tick spacing (or a standard fee tier)."""
    pools = conform(pools, "pools", source)
    _no_nulls(pools, ("pool_id", "protocol", "token0", "token1", "fee_ppm"), source)
    i = pools.schema.get_field_index("tick_spacing")
    pools = pools.set_column(i, pools.schema.field(i), pc.fill_null(pools.column(i), 0))  # V2 pools: none
    _check_ids(pools.column("pool_id"), source, "pool_id")
    _check_unique(pools.column("pool_id"), source, "pool_id")
    protocol = pools.column("protocol")
    _fail_where(pc.invert(pc.is_in(protocol, value_set=pa.array(PROTOCOLS))), source,
                lambda r: f"protocol = {protocol[r]} (supported: {', '.join(PROTOCOLS)})")
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
    spacing = pools.column("tick_spacing")
    _fail_where(pc.less(spacing, 0), source, lambda r: f"tick_spacing = {spacing[r]} (must be >= 0)")
    no_spacing = pc.and_(pc.and_(pc.equal(protocol, "v3"), pc.equal(spacing, 0)),
                         pc.invert(pc.is_in(fee, value_set=pa.array(list(V3_FEE_TIERS), pa.int32()))))
    _fail_where(no_spacing, source, lambda r: f"a v3 pool with fee_ppm = {fee[r]} needs its tick_spacing (> 0; "
                                              f"only the fee tiers {sorted(V3_FEE_TIERS)} imply one)")
    return pools


def validate_blocks(blocks: pa.Table, source: str = "blocks") -> pa.Table:
    """Strictly increasing block numbers, non-decreasing timestamps (seconds since 1970, < MAX_TIMESTAMP), base fee
    >= 0, gas_used and gas_limit >= 0."""
    blocks = conform(blocks, "blocks", source)
    _no_nulls(blocks, ("block_number", "timestamp", "base_fee_wei", "gas_used", "gas_limit"), source)
    num = blocks.column("block_number").to_numpy()
    if len(num) > 1:
        bad = np.flatnonzero(np.diff(num) <= 0)
        if len(bad):
            r = int(bad[0]) + 1
            raise SchemaError(f"{source} row {r}: block_number {num[r]} after {num[r - 1]} "
                              "(blocks must be strictly increasing)")
    fee = blocks.column("base_fee_wei")
    _fail_where(pc.less(fee, 0), source, lambda r: f"base_fee_wei = {fee[r]} (must be >= 0)")
    ts = blocks.column("timestamp")
    _fail_where(pc.or_(pc.less(ts, 0), pc.greater_equal(ts, MAX_TIMESTAMP)), source,
                lambda r: f"timestamp = {ts[r]} (seconds since 1970: 0..{MAX_TIMESTAMP - 1})")
    ts_np = ts.to_numpy()
    back = np.flatnonzero(np.diff(ts_np) < 0)
    if len(back):
        r = int(back[0]) + 1
        raise SchemaError(f"{source} row {r}: timestamp {ts_np[r]} before the previous block's {ts_np[r - 1]} "
                          "(block timestamps never decrease)")
    # gas_used may exceed gas_limit: a producer without the column fills in a fixed limit (cryo 0.3: 30M)
    for name in ("gas_used", "gas_limit"):
        col = blocks.column(name)
        _fail_where(pc.less(col, 0), source, lambda r, c=col, n=name: f"{n} = {c[r]} (must be >= 0)")
    return blocks


def validate_events(events: pa.Table, pools: pa.Table, source: str = "events") -> pa.Table:
    """Checks kinds, known pools, positive reserves, and strict (block, tx, log) order (no duplicates)."""
    events = conform(events, "events", source)
    _no_nulls(events, ("block_number", "tx_index", "log_index", "pool_id", "kind"), source)
    kind = events.column("kind")
    bad_kind = pc.invert(pc.is_in(kind, value_set=pa.array(EVENT_KINDS)))
    _fail_where(bad_kind, source, lambda r: f"kind = {kind[r]!r} (expected one of {', '.join(EVENT_KINDS)})")
    pool_id = events.column("pool_id")
    unknown = pc.invert(pc.is_in(pool_id, value_set=pools.column("pool_id")))
    _fail_where(unknown, source, lambda r: f"pool_id = {pool_id[r]} is not in the pools table")
    _check_tx_index(events, source)
    log_index = events.column("log_index")
    _fail_where(pc.less(log_index, 0), source, lambda r: f"log_index = {log_index[r]} (must be >= 0)")
    validate_events_like_reserves(events, source, pools)
    is_v3 = _is_v3_row(events, pools)
    lp = pc.and_(is_v3, pc.is_in(kind, value_set=pa.array(["mint", "burn"])))
    for col_name in ("tick_lower", "tick_upper", "liquidity_delta"):
        col = events.column(col_name)
        _fail_where(pc.and_(lp, pc.is_null(col)), source,
                    lambda r, n=col_name: f"{n} is null (a V3 {kind[r]} row carries its range and liquidity_delta)")
    bad_range = pc.and_(lp, pc.greater_equal(events.column("tick_lower"), events.column("tick_upper")))
    _fail_where(bad_range, source, lambda r: f"tick_lower = {events.column('tick_lower')[r]} >= tick_upper = "
                                             f"{events.column('tick_upper')[r]} (a position's range is lower < upper)")
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


def _is_v3_row(table: pa.Table, pools: pa.Table | None):
    """bool per row: the row's pool is V3 (from the pools table; without it, rows that carry sqrt_price_x96)."""
    if pools is None:
        return pc.is_valid(table.column("sqrt_price_x96"))
    v3_ids = pools.filter(pc.equal(pools.column("protocol"), "v3")).column("pool_id")
    return pc.fill_null(pc.is_in(table.column("pool_id"), value_set=v3_ids), False)


def _check_tx_index(table: pa.Table, source: str) -> None:
    tx = table.column("tx_index")
    _fail_where(pc.or_(pc.less(tx, 0), pc.greater(tx, MAX_TX_INDEX)), source,
                lambda r: f"tx_index = {tx[r]} (a transaction's index in its block: 0..{MAX_TX_INDEX})")


def validate_events_like_reserves(table: pa.Table, source: str, pools: pa.Table | None = None,
                                  v3_state_required: bool = True) -> None:
    """V2 reserves must be > 0; a V3 row carries sqrt_price_x96 in the valid range, liquidity >= 0, a tick, and
    token balances >= 0 (without `v3_state_required`, snapshots, a null or 0 sqrt_price_x96 means "not
    initialized yet"). With `pools` a row is V3 when its pool is; else when it carries sqrt_price_x96."""
    is_v3 = _is_v3_row(table, pools)
    is_v2 = pc.invert(is_v3)
    for col_name in ("reserve0", "reserve1"):
        col = table.column(col_name)
        _fail_where(pc.and_(is_v2, pc.is_null(col)), source,
                    lambda r, n=col_name: f"{n} is null (a V2 row carries the pool's reserves)")
        bad_v2 = pc.and_(is_v2, pc.less_equal(col, pa.scalar(0, AMOUNT)))
        _fail_where(bad_v2, source,
                    lambda r, c=col, n=col_name: f"{n} = {c[r]} (a pool must have liquidity: reserves > 0)")
        _fail_where(pc.and_(is_v3, pc.less(col, pa.scalar(0, AMOUNT))), source,
                    lambda r, c=col, n=col_name: f"{n} = {c[r]} (a V3 pool's token balance cannot be negative)")
    if pools is None:
        return
    sqrt_price = table.column("sqrt_price_x96")
    if not v3_state_required:  # only rows with a price carry a state
        is_v3 = pc.and_(is_v3, pc.fill_null(pc.greater(sqrt_price, pa.scalar(0, BIG)), False))
    for col_name in ("sqrt_price_x96", "liquidity", "tick"):
        _fail_where(pc.and_(is_v3, pc.is_null(table.column(col_name))), source,
                    lambda r, n=col_name: f"{n} is null (a V3 pool's row carries sqrt_price_x96, liquidity, tick)")
    bad_price = pc.and_(is_v3, pc.or_(pc.less(sqrt_price, pa.scalar(MIN_SQRT_RATIO, BIG)),
                                      pc.greater_equal(sqrt_price, pa.scalar(MAX_SQRT_RATIO, BIG))))
    _fail_where(bad_price, source, lambda r: f"sqrt_price_x96 = {sqrt_price[r]} (outside Uniswap V3's "
                                             f"[{MIN_SQRT_RATIO}, {MAX_SQRT_RATIO}))")
    liquidity = table.column("liquidity")
    _fail_where(pc.and_(is_v3, pc.less(liquidity, pa.scalar(0, BIG))), source,
                lambda r: f"liquidity = {liquidity[r]} (must be >= 0)")
    tick = table.column("tick")
    _fail_where(pc.and_(is_v3, pc.or_(pc.less(tick, MIN_TICK), pc.greater(tick, MAX_TICK))), source,
                lambda r: f"tick = {tick[r]} (outside Uniswap V3's [{MIN_TICK}, {MAX_TICK}])")


def validate_snapshots(snapshots: pa.Table, pools: pa.Table, source: str = "snapshots") -> pa.Table:
    """Known pools, one row per pool, reserves as in events."""
    snapshots = conform(snapshots, "snapshots", source)
    _no_nulls(snapshots, ("block_number", "pool_id"), source)
    pool_id = snapshots.column("pool_id")
    _check_known(pool_id, pools.column("pool_id"), source, "pool_id", "a pool_id of the pools table")
    _check_unique(pool_id, source, "pool_id")
    validate_events_like_reserves(snapshots, source, pools, v3_state_required=False)
    return snapshots


def validate_ticks(ticks: pa.Table, pools: pa.Table, source: str = "ticks") -> pa.Table:
    """Initialized ticks of known V3 pools."""
    ticks = conform(ticks, "ticks", source)
    _no_nulls(ticks, ticks.column_names, source)
    v3_ids = pools.filter(pc.equal(pools.column("protocol"), "v3")).column("pool_id")
    _check_known(ticks.column("pool_id"), v3_ids, source, "pool_id", "a v3 pool_id of the pools table")
    tick = ticks.column("tick")
    _fail_where(pc.or_(pc.less(tick, MIN_TICK), pc.greater(tick, MAX_TICK)), source,
                lambda r: f"tick = {tick[r]} (outside Uniswap V3's [{MIN_TICK}, {MAX_TICK}])")
    gross = ticks.column("liquidity_gross")
    _fail_where(pc.less_equal(gross, pa.scalar(0, BIG)), source,
                lambda r: f"liquidity_gross = {gross[r]} (an initialized tick has liquidity_gross > 0)")
    return ticks


def validate_victims(victims: pa.Table, pools: pa.Table, source: str = "victims") -> pa.Table:
    """Pending swaps on known pools, amounts >= 0; a null exact_output is an exact-input swap (False)."""
    victims = conform(victims, "victims", source)
    i = victims.schema.get_field_index("exact_output")
    victims = victims.set_column(i, victims.schema.field(i), pc.fill_null(victims.column(i), False))
    _no_nulls(victims, ("block_number", "tx_index", "pool_id", "zero_for_one", "amount_in", "amount_out_min"),
              source)
    _check_known(victims.column("pool_id"), pools.column("pool_id"), source, "pool_id",
                 "a pool_id of the pools table")
    _check_tx_index(victims, source)
    for name in ("amount_in", "amount_out_min"):
        col = victims.column(name)
        _fail_where(pc.less(col, pa.scalar(0, AMOUNT)), source,
                    lambda r, c=col, n=name: f"{n} = {c[r]} (amounts are unsigned)")
    return victims


def validate_labels(labels: pa.Table, pools: pa.Table, tokens: pa.Table, source: str = "labels") -> pa.Table:
    """Executed MEV on known pools, a known profit token."""
    labels = conform(labels, "labels", source)
    _no_nulls(labels, ("block_number", "tx_index", "kind"), source)
    _check_tx_index(labels, source)
    flat = pc.list_flatten(labels.column("pools"))
    unknown = pc.and_(pc.is_valid(flat), pc.invert(pc.is_in(flat, value_set=pools.column("pool_id"))))
    if pc.any(unknown).as_py():
        parents = pc.list_parent_indices(labels.column("pools"))
        at = _first_row(unknown)
        row = int(parents[at].as_py())
        raise SchemaError(f"{source} row {row}: pools holds {flat[at]}, not a pool_id of the pools table")
    _check_known(labels.column("profit_token"), tokens.column("token_id"), source, "profit_token",
                 "a token_id of the tokens table")
    return labels


def validate_prices(prices: pa.Table, tokens: pa.Table, source: str = "prices") -> pa.Table:
    """Known tokens, prices finite and > 0 USD."""
    prices = conform(prices, "prices", source)
    _no_nulls(prices, prices.column_names, source)
    token = prices.column("token_id")
    _check_known(token, tokens.column("token_id"), source, "token_id", "a token_id of the tokens table")
    price = prices.column("price_usd")
    bad = pc.invert(pc.and_(pc.is_finite(price), pc.greater(price, 0.0)))  # NaN compares false: bad
    _fail_where(bad, source, lambda r: f"price_usd = {price[r]} for token {token[r]} (prices are finite and "
                                       "> 0 USD per whole token)")
    return prices


def check_partition_rows(table: pa.Table, first: int, last: int, source: str, consecutive: bool = False) -> None:
    """Every row of a partition's table has first <= block_number <= last, in non-decreasing order; with
    `consecutive` (blocks) there is one row per block first..last."""
    blocks = table.column("block_number").to_numpy(zero_copy_only=False)
    outside = np.flatnonzero((blocks < first) | (blocks > last))
    if len(outside):
        r = int(outside[0])
        raise SchemaError(f"{source} row {r}: block_number {blocks[r]} is outside the partition {first}..{last} "
                          "(the manifest's partitions must match the files' blocks)")
    down = np.flatnonzero(np.diff(blocks) < 0)
    if len(down):
        r = int(down[0]) + 1
        raise SchemaError(f"{source} row {r}: block_number {blocks[r]} after {blocks[r - 1]} (rows are sorted by "
                          "block_number)")
    if consecutive and len(blocks) != last - first + 1:
        have = set(blocks.tolist())
        missing = next(b for b in range(first, last + 1) if b not in have)
        raise SchemaError(f"{source}: {len(blocks)} blocks for the partition {first}..{last} (block {missing} is "
                          "missing: the manifest's partitions must match the files' blocks)")


# a pool's two sides hold equal value at its price; this far apart (a wrong decimals is a power of ten, and a
# mistaken 18 for 6 is 1e12), a token's decimals or price is wrong
PRICE_MISMATCH = 10.0
PRICE_CHECK_MIN_USD = 1e3  # pools holding less (on their larger side) are not checked: dust can be at any price


def check_pool_prices(tokens: pa.Table, pools: pa.Table, snapshots: pa.Table, prices: pa.Table,
                      tokens_source: str, prices_source: str) -> None:
    """Raise when a pool's two sides, valued at the reference prices with the tokens' decimals, differ by more
    than PRICE_MISMATCH (a wrong decimals or price: USDC at 0 decimals made its raw unit a million times dearer
    and the CEX-DEX strategy reported 1.75e13 ETH). Uses each token's first price in `prices` and the
    snapshot's state (V3: virtual reserves from sqrt price and liquidity); pools worth < PRICE_CHECK_MIN_USD on
    both sides are skipped."""
    if not snapshots.num_rows or not prices.num_rows:
        return
    n_tokens = int(pc.max(tokens.column("token_id")).as_py()) + 1
    decimals = np.zeros(n_tokens)
    decimals[tokens.column("token_id").to_numpy()] = tokens.column("decimals").to_numpy()
    symbol = dict(zip(tokens.column("token_id").to_pylist(), tokens.column("symbol").to_pylist()))
    price = np.full(n_tokens, np.nan)
    price_block = np.zeros(n_tokens, np.int64)
    order = np.argsort(prices.column("block_number").to_numpy(), kind="stable")[::-1]  # the first sample wins
    price[prices.column("token_id").to_numpy()[order]] = prices.column("price_usd").to_numpy()[order]
    price_block[prices.column("token_id").to_numpy()[order]] = prices.column("block_number").to_numpy()[order]
    pool_ids = pools.column("pool_id").to_numpy()
    n_pools = int(pool_ids.max()) + 1
    token0, token1 = np.zeros(n_pools, np.int64), np.zeros(n_pools, np.int64)
    token0[pool_ids] = pools.column("token0").to_numpy()
    token1[pool_ids] = pools.column("token1").to_numpy()
    pid = snapshots.column("pool_id").to_numpy()
    t0, t1 = token0[pid], token1[pid]
    with np.errstate(all="ignore"):
        raw0 = amounts_to_float(snapshots.column("reserve0").fill_null(0))
        raw1 = amounts_to_float(snapshots.column("reserve1").fill_null(0))
        sqrt_price = pc.cast(snapshots.column("sqrt_price_x96"), pa.float64()).to_numpy(zero_copy_only=False) / 2**96
        liquidity = pc.cast(snapshots.column("liquidity"), pa.float64()).to_numpy(zero_copy_only=False)
        v3 = np.isfinite(sqrt_price) & (sqrt_price > 0)
        raw0 = np.where(v3, liquidity / sqrt_price, raw0)  # V3: virtual reserves at the pool's price
        raw1 = np.where(v3, liquidity * sqrt_price, raw1)
        usd0 = raw0 / 10.0 ** decimals[t0] * price[t0]
        usd1 = raw1 / 10.0 ** decimals[t1] * price[t1]
        ratio = usd0 / usd1
        checked = np.isfinite(ratio) & (ratio > 0) & (np.maximum(usd0, usd1) >= PRICE_CHECK_MIN_USD)
        off = checked & ((ratio > PRICE_MISMATCH) | (ratio < 1.0 / PRICE_MISMATCH))
    if not off.any():
        return
    # blame the token in the most mismatched pools (a wrong decimals puts every pool of its token off)
    blamed = np.bincount(np.concatenate([t0[off], t1[off]]), minlength=n_tokens)
    token = int(np.argmax(blamed))
    row = int(np.flatnonzero(off & ((t0 == token) | (t1 == token)))[0])
    a, b = int(t0[row]), int(t1[row])
    factor = max(ratio[row], 1.0 / ratio[row])
    raise SchemaError(
        f"{tokens_source}: token {token} ({symbol[token]}) decimals = {int(decimals[token])} disagree with its "
        f"price in {prices_source}: at those prices pool {int(pid[row])} holds ${usd0[row]:.3g} of {symbol[a]} "
        f"and ${usd1[row]:.3g} of {symbol[b]}, {factor:.2g}x apart where a pool's two sides hold about equal value "
        f"({int(blamed[token])} pool(s) of {symbol[token]} are this far off): fix {symbol[token]}'s decimals or "
        "its prices")


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
