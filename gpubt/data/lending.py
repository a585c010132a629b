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


def validate_positions(table: pa.Table, tokens: pa.Table, source: str = FILE_NAME) -> pa.Table:
    """Select and cast `table` to POSITIONS and check it; a broken row raises SchemaError naming it."""
    missing = [f.name for f in POSITIONS if f.name not in table.column_names]
    if missing:
        raise schema.SchemaError(f"{source}: missing column(s) {', '.join(missing)} "
                                 f"(a positions table needs {', '.join(POSITIONS.names)})")
    columns = []
    for field in POSITIONS:
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise schema.SchemaError(f"{source}: column {field.name} has type {col.type}, "
                                         f"expected {field.type} ({exc})") from None
        if col.null_count:
            row = int(pc.index(pc.is_null(col), True).as_py())
            raise schema.SchemaError(f"{source} row {row}: {field.name} is null (every column is required)")
        columns.append(col)
    table = pa.Table.from_arrays(columns, schema=POSITIONS)

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


def load_positions(path, tokens: pa.Table) -> pa.Table:
    """A user-supplied positions table (.parquet or .csv, POSITIONS columns), validated."""
    path = Path(path)
    if not path.is_file():
        raise schema.SchemaError(f"{path}: positions file not found (a {FILE_NAME} in the POSITIONS schema: "
                                 f"{', '.join(POSITIONS.names)})")
    try:
        if path.suffix == ".csv":
            from pyarrow import csv

            types = {f.name: (pa.string() if f.type == schema.AMOUNT else f.type) for f in POSITIONS}
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=types))
        else:
            table = read_parquet(path)  # page CRCs and strings checked
    except (pa.ArrowInvalid, OSError) as exc:
        raise schema.SchemaError(f"{path}: unreadable positions table ({exc})") from None
    return validate_positions(table, tokens, str(path))


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


def generate_positions(dataset, n_positions: int = 500, seed: int = 0, collateral_median_usd: float = 20_000.0,
                       collateral_sigma: float = 1.2, max_pool_share: float = 0.05,
                       hf_spread: tuple = (0.3, 4.0), borrow_apr: tuple = (0.02, 0.08)) -> pa.Table:
    """A seeded book of positions opened at the dataset's first block.

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
