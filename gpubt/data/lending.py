"""An Aave-like lending market for a dataset: the borrow positions the liquidation strategy hunts.

A position holds `collateral_amount` raw units of one token against `debt_amount` raw units of another, owed at
`opened_block` and growing by `borrow_rate_per_block` (compounded per block). With oracle prices P (USD per whole
token; gpubt uses the dataset's reference PRICES) its health factor is

    HF = collateral · P_c / 10^dec_c · LT / (debt · P_d / 10^dec_d),     LT = liquidation_threshold_bps / 1e4,

and below 1 anyone may repay up to close_factor_bps / 1e4 of the debt and seize that debt's value in collateral
plus liquidation_bonus_bps / 1e4 (Aave v2/v3 LiquidationLogic; the v3 "100 % when HF < 0.95" rule is not modelled:
the close factor is the position's).

Synthetic datasets get a seeded book (`generate_positions`), written as `positions.parquet` in the dataset folder;
ingested data brings its own table in the POSITIONS schema (`load_positions`, validated with errors that name the
file, column and row). POSITIONS lives here until the lead moves it into gpubt/schema.py.

The book's history, LIQUIDATIONS (`liquidations.parquet`, optional: the rivals' liquidations; planted by
gpubt/data/rivals.py for synthetic data), is validated the same way (`load_liquidations`, `open_liquidations`).
`liquidation_terms` is Aave's integer liquidation that the strategy and the rivals share.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.data.store import read_parquet
from gpubt.market.prices import price_matrix

POSITIONS = pa.schema([
    ("position_id", pa.int32()),
    ("owner", pa.string()),
    ("collateral_token", pa.int32()),
    ("collateral_amount", schema.AMOUNT),     # raw units
    ("debt_token", pa.int32()),
    ("debt_amount", schema.AMOUNT),           # raw units owed at opened_block
    ("liquidation_threshold_bps", pa.int32()),  # 8250 = 82.5 %
    ("liquidation_bonus_bps", pa.int32()),      # 500 = the liquidator gets 105 % of the repaid value
    ("close_factor_bps", pa.int32()),           # 5000 = half the debt per liquidation
    ("opened_block", pa.int64()),
    ("borrow_rate_per_block", pa.float64()),    # debt grows × (1 + rate) per block; 0 for none
])
FILE_NAME = "positions.parquet"
# The history of liquidations (an Aave LiquidationCall log): who repaid how much of which position's debt and seized
# how much collateral, in which tx. Optional: no file, no rival liquidations. Synthetic datasets plant one
# (gpubt/data/rivals.py); ingested data may bring its own (`liquidations_path`), validated like positions.
LIQUIDATIONS = pa.schema([
    ("block_number", pa.int64()),
    ("tx_index", pa.int32()),
    ("position_id", pa.int32()),
    ("debt_repaid", schema.AMOUNT),           # raw units of the position's debt token
    ("collateral_seized", schema.AMOUNT),     # raw units of its collateral token
    ("liquidator", pa.string()),
])
LIQUIDATIONS_FILE = "liquidations.parquet"
RIVAL_GAS_UNITS = 300_000   # a rival's liquidationCall (gas of its label; no swap: it keeps the collateral)
BLOCKS_PER_YEAR = 365 * 86_400 // 12
WAD = 10**18

# Aave v3 Ethereum market parameters (rounded) by collateral class: (threshold bps, bonus bps)
RISK_PARAMS = {"weth": (8250, 500), "wbtc": (7800, 500), "stable": (8700, 450), "tail": (6500, 1000)}
STABLE_SYMBOLS = ("USDC", "USDT", "DAI")


def debt_growth_wad(rate_per_block: float, blocks: int) -> int:
    """(1 + rate)^blocks as an integer WAD (1e18 = 1): the exact debt after `blocks` is debt · growth // WAD.
    Defined through float64 exp/log1p, so the screen (float) and the exact re-pricing use the same factor."""
    if blocks <= 0 or rate_per_block == 0.0:
        return WAD
    return int(round(math.exp(blocks * math.log1p(rate_per_block)) * WAD))


def liquidation_terms(collateral: int, debt: int, pc_e8: int, pd_e8: int, unit_c: int, unit_d: int, lt_bps: int,
                      bonus_bps: int, cf_bps: int, max_repay: int | None = None):
    """Aave's integer liquidation of a position holding `collateral` against `debt` (raw units, the debt grown to
    the block) at oracle prices pc_e8, pd_e8 (USD × 1e8; unit_* = 10**decimals): (liquidatable, repay, seized,
    health factor as a float). Liquidatable when HF < 1 (exactly: collateral·P_c·unit_d·LT < debt·P_d·unit_c·1e4);
    repay = close factor × debt (at most `max_repay`), seized = repay's value × (1 + bonus), capped at the
    collateral (then repay is what that collateral covers)."""
    lhs, rhs = collateral * pc_e8 * unit_d * lt_bps, debt * pd_e8 * unit_c * 10_000
    health = lhs / rhs if rhs else float("inf")
    if debt <= 0 or pc_e8 <= 0 or lhs >= rhs:
        return False, 0, 0, health
    repay = debt * cf_bps // 10_000
    if max_repay is not None:
        repay = min(repay, max_repay)
    seized = repay * pd_e8 * unit_c * (10_000 + bonus_bps) // (pc_e8 * unit_d * 10_000)
    if seized > collateral:
        seized = collateral
        repay = collateral * pc_e8 * unit_d * 10_000 // (pd_e8 * unit_c * (10_000 + bonus_bps))
    return repay > 0 and seized > 0, repay, seized, health


def oracle_e8(price_usd: float) -> int:
    """An oracle price as Aave reads it: USD × 1e8, rounded."""
    return int(round(price_usd * 1e8))


def seized_value(seized: int, pc_e8: int, pd_e8: int, unit_c: int, unit_d: int) -> int:
    """The seized collateral's value at the oracle in raw units of the debt token (floor): a rival who keeps the
    collateral earns this − repay (its label's profit_raw)."""
    return seized * pc_e8 * unit_d // (pd_e8 * unit_c)


def validate_positions(table: pa.Table, tokens: pa.Table, source: str = FILE_NAME) -> pa.Table:
    """Select and cast `table` to POSITIONS and check it; a broken row raises SchemaError naming it."""
    table = schema.cast_to(table, POSITIONS, source, "positions", nullable=())

    def fail_where(mask, message):
        if pc.any(mask).as_py():
            row = int(pc.index(mask, True).as_py())
            raise schema.SchemaError(f"{source} row {row}: {message(row)}")

    ids = table.column("position_id").to_numpy()
    fail_where(pc.less(table.column("position_id"), 0), lambda r: f"position_id = {ids[r]} (ids are >= 0)")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        rows = np.flatnonzero(ids == uniq[counts > 1][0])
        raise schema.SchemaError(f"{source} row {rows[1]}: duplicate position_id = {ids[rows[1]]} "
                                 f"(first at row {rows[0]})")
    token_ids = tokens.column("token_id")
    for side in ("collateral_token", "debt_token"):
        col = table.column(side)
        fail_where(pc.invert(pc.is_in(col, value_set=token_ids)),
                   lambda r, c=col, s=side: f"{s} = {c[r]} is not a token_id of the tokens table")
    fail_where(pc.equal(table.column("collateral_token"), table.column("debt_token")),
               lambda r: "collateral_token == debt_token (a position borrows one token against another)")
    zero = pa.scalar(0, schema.AMOUNT)
    for name in ("collateral_amount", "debt_amount"):
        col = table.column(name)
        fail_where(pc.less_equal(col, zero), lambda r, c=col, n=name: f"{n} = {c[r]} (must be > 0 raw units)")
    lt = table.column("liquidation_threshold_bps")
    fail_where(pc.or_(pc.less_equal(lt, 0), pc.greater(lt, 10_000)),
               lambda r: f"liquidation_threshold_bps = {lt[r]} (must be in (0, 10000])")
    bonus = table.column("liquidation_bonus_bps")
    fail_where(pc.or_(pc.less(bonus, 0), pc.greater_equal(bonus, 10_000)),
               lambda r: f"liquidation_bonus_bps = {bonus[r]} (must be in [0, 10000))")
    # Aave's reserve-config rule: a liquidation at HF = 1 must not seize more than the collateral
    lt_np, bonus_np = lt.to_numpy().astype(np.int64), bonus.to_numpy().astype(np.int64)
    bad = np.flatnonzero(lt_np * (10_000 + bonus_np) > 10_000 * 10_000)
    if len(bad):
        r = int(bad[0])
        raise schema.SchemaError(f"{source} row {r}: liquidation_threshold_bps × (1 + bonus) = "
                                 f"{lt_np[r] * (10_000 + bonus_np[r]) / 1e8:.4f} > 1 (a liquidation would seize "
                                 "more than the collateral; lower the threshold or the bonus)")
    cf = table.column("close_factor_bps")
    fail_where(pc.or_(pc.less_equal(cf, 0), pc.greater(cf, 10_000)),
               lambda r: f"close_factor_bps = {cf[r]} (must be in (0, 10000])")
    rate = table.column("borrow_rate_per_block")
    fail_where(pc.invert(pc.and_(pc.greater_equal(rate, 0.0), pc.less(rate, 1e-3))),
               lambda r: f"borrow_rate_per_block = {rate[r]} (must be in [0, 0.001): a per-block rate)")
    return table


def _read_table(path, table_schema: pa.Schema, what: str, file_name: str) -> pa.Table:
    """A user-supplied .parquet or .csv table (raw amounts as decimal strings in a CSV), unvalidated."""
    path = Path(path)
    if not path.is_file():
        raise schema.SchemaError(f"{path}: {what} file not found (a {file_name} in the {what.upper()} schema: "
                                 f"{', '.join(table_schema.names)})")
    try:
        if path.suffix == ".csv":
            from pyarrow import csv

            types = {f.name: (pa.string() if f.type == schema.AMOUNT else f.type) for f in table_schema}
            return csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=types))
        return read_parquet(path)  # page CRCs and strings checked
    except (pa.ArrowInvalid, OSError) as exc:
        raise schema.SchemaError(f"{path}: unreadable {what} table ({exc})") from None


def load_positions(path, tokens: pa.Table) -> pa.Table:
    """A user-supplied positions table (.parquet or .csv, POSITIONS columns), validated."""
    return validate_positions(_read_table(path, POSITIONS, "positions", FILE_NAME), tokens, str(path))


def validate_liquidations(table: pa.Table, positions: pa.Table, source: str = LIQUIDATIONS_FILE) -> pa.Table:
    """Select and cast `table` to LIQUIDATIONS and check it (known positions, amounts > 0, rows sorted by
    (block_number, tx_index)); a broken row raises SchemaError naming it."""
    table = schema.cast_to(table, LIQUIDATIONS, source, "liquidations", nullable=("liquidator",))

    def fail_where(mask, message):
        if len(mask) and pc.any(mask).as_py():
            row = int(pc.index(mask, True).as_py())
            raise schema.SchemaError(f"{source} row {row}: {message(row)}")

    ids = table.column("position_id")
    fail_where(pc.invert(pc.is_in(ids, value_set=positions.column("position_id"))),
               lambda r: f"position_id = {ids[r]} is not a position_id of the positions table")
    zero = pa.scalar(0, schema.AMOUNT)
    for name in ("debt_repaid", "collateral_seized"):
        col = table.column(name)
        fail_where(pc.less_equal(col, zero), lambda r, c=col, n=name: f"{n} = {c[r]} (must be > 0 raw units)")
    tx = table.column("tx_index")
    fail_where(pc.less(tx, 0), lambda r: f"tx_index = {tx[r]} (must be >= 0)")
    key = (table.column("block_number").to_numpy().astype(np.int64) << 32) + tx.to_numpy().astype(np.int64)
    down = np.flatnonzero(np.diff(key) < 0)
    if len(down):
        r = int(down[0]) + 1
        raise schema.SchemaError(f"{source} row {r}: (block_number, tx_index) = ({table.column('block_number')[r]}, "
                                 f"{tx[r]}) after ({table.column('block_number')[r - 1]}, {tx[r - 1]}) (rows are "
                                 "sorted by block_number, tx_index)")
    return table


def load_liquidations(path, positions: pa.Table) -> pa.Table:
    """A liquidations history (.parquet or .csv, LIQUIDATIONS columns), validated; reads, never writes."""
    return validate_liquidations(_read_table(path, LIQUIDATIONS, "liquidations", LIQUIDATIONS_FILE), positions,
                                 str(path))


def open_liquidations(dataset, cfg, positions: pa.Table) -> pa.Table:
    """The rival liquidations a run's book meets: `cfg.liquidations_path` when set; else the dataset's
    liquidations.parquet: an untagged one (ingested: the market's LiquidationCall log) always, one planted by
    synthetic.generate (tagged `gpubt_generate`) only when the run's book is the one it was planted against (the
    same tag: not with `positions_path`, nor another `generate`); else none (an empty table)."""
    get = cfg.get if cfg is not None and hasattr(cfg, "get") else (lambda k, d=None: d)
    if positions.num_rows == 0:   # no book (the strategy idles): nothing the history could apply to
        return LIQUIDATIONS.empty_table()
    path = get("liquidations_path")
    if path:
        return load_liquidations(path, positions)
    own = Path(dataset.root) / LIQUIDATIONS_FILE
    if not own.is_file():
        return LIQUIDATIONS.empty_table()
    meta = (pq.read_schema(own).metadata or {}).get(b"gpubt_generate")
    if get("positions_path"):
        return LIQUIDATIONS.empty_table() if meta is not None else load_liquidations(own, positions)
    if meta is not None:
        book = Path(dataset.root) / FILE_NAME
        book_meta = (pq.read_schema(book).metadata or {}).get(b"gpubt_generate") if book.is_file() else None
        if meta.decode() != book_key(**_generate_of(cfg)) or (book_meta is not None and book_meta != meta):
            return LIQUIDATIONS.empty_table()   # planted against another book than the run's
    return load_liquidations(own, positions)


def _generate_of(cfg) -> dict:
    gen = (cfg.get("generate") if cfg is not None and hasattr(cfg, "get") else None) or {}
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(gen):
            gen = OmegaConf.to_container(gen, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    return {k: tuple(v) if isinstance(v, list) else v for k, v in dict(gen).items()}


def _pool_tvl_usd(dataset, price_usd: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """USD value of each V2 pool's reserves at the dataset's first snapshot (0 for V3 / unknown pools)."""
    n_pools = int(dataset.pools.column("pool_id").to_numpy().max()) + 1
    tvl = np.zeros(n_pools)
    snaps = dataset.read_partition("snapshots", dataset.partitions[0])
    t0 = dataset.pools.column("token0").to_numpy()
    t1 = dataset.pools.column("token1").to_numpy()
    pid = dataset.pools.column("pool_id").to_numpy()
    tok0, tok1 = np.zeros(n_pools, np.int64), np.zeros(n_pools, np.int64)
    tok0[pid], tok1[pid] = t0, t1
    for p, r0, r1 in zip(snaps.column("pool_id").to_pylist(), snaps.column("reserve0").to_pylist(),
                         snaps.column("reserve1").to_pylist()):
        if r0 is None or r1 is None:
            continue
        value = float(r0) / scale[tok0[p]] * price_usd[tok0[p]] + float(r1) / scale[tok1[p]] * price_usd[tok1[p]]
        tvl[p] = value if np.isfinite(value) else 0.0
    return tvl


def generate_positions(dataset, n_positions: int | None = None, seed: int = 0,
                       collateral_median_usd: float = 27_000.0, collateral_sigma: float = 1.2,
                       max_pool_share: float = 0.05, hf_spread: tuple = (0.3, 12.0), borrow_apr: tuple = (0.02, 0.08),
                       positions_per_day: float = 110.0) -> pa.Table:
    """A seeded book of positions opened at the dataset's first block: `n_positions` of them, or (None)
    `positions_per_day` × the dataset's days (7,200 blocks a day), at least 1.

    Calibration (docs/market.md): the health factors' spread (below) makes the share of positions that go under
    water the same whatever the run's length, so a book that grows with the run keeps the liquidations per block
    steady: hf_spread (0.3, 12) puts ~25-28 % of the positions under water once in a run (the rivals' history,
    gpubt/data/rivals.py, liquidates each about once), and 110 positions a day then give ≈ 0.004 liquidations per
    block (mainnet ≈ 28 a day = 0.0039, Qin et al. 2021); the collateral's lognormal (median $27k, σ 1.2) a mean
    rival profit of ~$1.0-1.3k (mainnet ≈ $1.26k). A short run's book is small (`small`: 31 positions), so its
    count is noisy: 3-10 liquidations in 2,000 blocks over the book seeds 0-3.

    Collateral: WETH, WBTC, stables and tail tokens that trade against WETH; debt: a stable (or WETH against a
    stable or, for 30 % of the rest, WETH). Collateral value is lognormal (median `collateral_median_usd`),
    capped at `max_pool_share` of the deepest V2 pool of the collateral token (a liquidation must be sellable).
    Health factors are spread on the scale of the pair's price move over the run: ln HF0 = σ_run · u with
    u ~ U(hf_spread) and σ_run the standard deviation of ln(P_c/P_d) over the whole run (from PRICES), so the
    share of positions that price moves push under 1 is realistic (see the report's figures) whatever the
    run's length or volatility. Risk parameters: RISK_PARAMS by collateral class, close factor 50 %.
    """
    rng = np.random.default_rng([seed, 0x1E4D])
    tokens = dataset.tokens
    n_tokens = int(tokens.column("token_id").to_numpy().max()) + 1
    symbol = dict(zip(tokens.column("token_id").to_pylist(), tokens.column("symbol").to_pylist()))
    decimals = np.zeros(n_tokens, np.int64)
    decimals[tokens.column("token_id").to_numpy()] = tokens.column("decimals").to_numpy()
    scale = 10.0 ** decimals
    sample_blocks, dense = price_matrix(dataset.read("prices"), n_tokens)
    price0 = dense[0]
    weth = 0
    stables = [t for t, s in symbol.items() if s in STABLE_SYMBOLS]
    wbtc = [t for t, s in symbol.items() if s == "WBTC"]
    t0 = dataset.pools.column("token0").to_numpy()
    t1 = dataset.pools.column("token1").to_numpy()
    with_weth = set(t1[t0 == weth].tolist()) | set(t0[t1 == weth].tolist())
    tails = sorted(t for t in with_weth if t not in stables and t not in wbtc and np.isfinite(price0[t]))
    tvl = _pool_tvl_usd(dataset, price0, scale)
    depth = np.zeros(n_tokens)
    for p, (a, b) in enumerate(zip(t0.tolist(), t1.tolist())):
        if p < len(tvl):
            depth[a], depth[b] = max(depth[a], tvl[p]), max(depth[b], tvl[p])
    if not stables:
        raise schema.SchemaError(f"{dataset.root}: no stablecoin ({'/'.join(STABLE_SYMBOLS)}) to borrow")

    if n_positions is None:
        days = (int(dataset.last_block) - int(dataset.first_block) + 1) / 7_200
        n_positions = max(1, int(round(positions_per_day * days)))
    rows = []
    for pid in range(n_positions):
        u = rng.random()
        if u < 0.40 or not tails:
            collateral, klass = weth, "weth"
        elif u < 0.55 and wbtc:
            collateral, klass = wbtc[0], "wbtc"
        elif u < 0.65:
            collateral, klass = int(rng.choice(stables)), "stable"
        else:
            collateral, klass = int(rng.choice(tails)), "tail"
        if klass == "stable" or (klass in ("wbtc", "tail") and rng.random() < 0.3):
            debt = weth
        else:
            debt = int(rng.choice(stables))
        ratio = np.log(dense[:, collateral] / dense[:, debt])
        ratio = ratio[np.isfinite(ratio)]
        sigma_run = float(np.std(ratio - ratio[0])) if len(ratio) > 1 else 0.0
        sigma_run = max(sigma_run, 0.002)  # stable/stable-like pairs: HF a little above 1
        health0 = math.exp(sigma_run * rng.uniform(*hf_spread))
        threshold, bonus = RISK_PARAMS[klass]
        threshold = int(threshold + rng.integers(-150, 151)) if klass == "tail" else threshold
        collateral_usd = float(np.exp(rng.normal(math.log(collateral_median_usd), collateral_sigma)))
        if depth[collateral] > 0:
            collateral_usd = min(collateral_usd, max_pool_share * depth[collateral])
        collateral_usd = max(collateral_usd, 100.0)
        debt_usd = collateral_usd * threshold / 1e4 / health0
        rows.append({
            "position_id": pid,
            "owner": "0x" + f"{(seed * 1_000_003 + pid) * 0x9E3779B97F4A7C15 % 2**160:040x}",
            "collateral_token": collateral,
            "collateral_amount": max(1, int(collateral_usd / price0[collateral] * scale[collateral])),
            "debt_token": debt,
            "debt_amount": max(1, int(debt_usd / price0[debt] * scale[debt])),
            "liquidation_threshold_bps": threshold,
            "liquidation_bonus_bps": bonus,
            "close_factor_bps": 5000,
            "opened_block": int(dataset.first_block),
            "borrow_rate_per_block": float(rng.uniform(*borrow_apr)) / BLOCKS_PER_YEAR,
        })
    return validate_positions(pa.Table.from_pylist(rows, schema=POSITIONS), tokens, "generated positions")


def book_key(**generate) -> str:
    """The tag of a generated book: every generate_positions parameter (defaults filled in), as stored in its
    file's metadata (`gpubt_generate`)."""
    import inspect

    params = {k: p.default for k, p in inspect.signature(generate_positions).parameters.items() if k != "dataset"}
    params.update(generate)
    return repr(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


def write_positions(dataset) -> Path:
    """Generate the default book of a synthetic dataset into its positions.parquet (synthetic.generate does, as
    part of writing the dataset; a run never writes into a dataset)."""
    own = Path(dataset.root) / FILE_NAME
    tagged = generate_positions(dataset).replace_schema_metadata({"gpubt_generate": book_key()})
    tmp = own.with_suffix(".parquet.tmp")
    pq.write_table(tagged, tmp, write_page_checksum=True)
    tmp.replace(own)
    return own


def open_positions(dataset, cfg) -> pa.Table:
    """The positions of a run: `cfg.positions_path` when set (validated); else the dataset's positions.parquet
    (when it is a generated book, only if `cfg.generate` is the one it was generated with); else, for a synthetic
    dataset, the book `cfg.generate` describes, generated in memory: a run never writes into its dataset; else an
    empty book (ingested data without positions: the strategy's idle_reason says so in the run's summary)."""
    path = cfg.get("positions_path") if cfg is not None else None
    if path:
        return load_positions(path, dataset.tokens)
    own = Path(dataset.root) / FILE_NAME
    gen = (cfg.get("generate") if cfg is not None else None) or {}
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(gen):
            gen = OmegaConf.to_container(gen, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    gen = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(gen).items()}
    if own.is_file():
        table = load_positions(own, dataset.tokens)
        meta = (pq.read_schema(own).metadata or {}).get(b"gpubt_generate")
        if meta is None or meta.decode() == book_key(**gen):
            return table
    if dataset.manifest.get("source") != "synthetic":   # nothing to hunt: the strategy says so (idle_reason)
        return POSITIONS.empty_table()
    return generate_positions(dataset, **gen)
