"""Rival liquidators in the synthetic market: the history of liquidations of a dataset's lending book.

After a synthetic dataset and its book (positions.parquet) are written, `plant_liquidations` walks the blocks with
the oracle the liquidation strategy reads (the dataset's PRICES, forward-filled per block), each position's debt
growth (lending.debt_growth_wad) and Aave's integer liquidation terms (lending.liquidation_terms, the strategy's
own). A position whose health factor is < 1 in a block that takes bundles (BLOCKS takes_bundles), and whose
liquidation pays a liquidator (the seized collateral's value at the oracle − the repaid debt, in wei, − gas at the
block's base fee > 0), is offered to the searcher population's auction (gpubt/market/searchers.py; the model of
synthetic.py's `_auction_nb`, kind "liquidation"). The winner liquidates close factor × the debt at that block:

- a LIQUIDATIONS row (lending.py; liquidations.parquet, what an Aave LiquidationCall log gives);
- a LABELS row: kind "liquidation", searcher `searcher_<j>`, no pools, profit_token = the debt token,
  profit_raw = the seized collateral valued at the oracle in raw debt-token units (floor) − the repaid debt, exact;
  gas_used = lending.RIVAL_GAS_UNITS; position_id = the position; bribe_wei = the winner's bid (its gas is paid
  at the base fee, no priority fee). Its tx is a new one after the block's last tx
  (EVENTS, LABELS, VICTIMS), one per liquidation, in position order.

A position still under water is offered again in later blocks. Simplifications: the rival keeps the seized
collateral (no sale on the DEX), so EVENTS and the pools' states are untouched and stay consistent; the rival's
gas is not added to the block's gas_used (the base-fee path stays the simulated one); the auction's draws come from
a generator seeded by (seed, position, block), not from the float pass's stream.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.data import lending
from gpubt.data.store import read_parquet, write_table_atomic
from gpubt.market.prices import price_matrix, prices_at
from gpubt.market.auction import bidders

WETH = 0
SCREEN_MARGIN = 1e-4   # float health factors below 1 + this are checked exactly (oracle rounding, float growth)


def auction(rng: np.random.Generator, value_wei: float, kind: int, see, share, sigma,
            capital_wei) -> tuple[int, float]:
    """(winner, its bid in wei) of an opportunity worth `value_wei` (after gas), (−1, 0) when nobody saw it: each
    searcher sees it with probability see[j, kind] and bids share_j · its lognormal perceived value, capped by its
    capital (synthetic._auction_nb's model)."""
    if len(share) == 0:
        return -1, 0.0
    seen = rng.random(len(share)) < see[:, kind]
    bids = np.minimum(share * value_wei * np.exp(sigma * rng.standard_normal(len(share)) - 0.5 * sigma * sigma),
                      capital_wei)
    if not seen.any():
        return -1, 0.0
    j = int(np.flatnonzero(seen)[np.argmax(bids[seen])])
    return j, float(max(bids[j], 0.0))


def _tx_hash(seed: int, block: int, tx: int) -> str:
    return "0x" + hashlib.sha256(f"gpubt-rival:{seed}:{block}:{tx}".encode()).hexdigest()


def simulate(dataset, positions: pa.Table, competition: dict, seed: int) -> tuple[pa.Table, dict]:
    """(LIQUIDATIONS table, {partition: LABELS rows (schema.SCHEMAS["labels"])}) of the rivals' liquidations of
    `positions` over `dataset` (module docstring)."""
    tokens = dataset.tokens
    n_tokens = int(tokens.column("token_id").to_numpy().max()) + 1
    decimals = np.zeros(n_tokens, np.int64)
    decimals[tokens.column("token_id").to_numpy()] = tokens.column("decimals").to_numpy()
    sample_blocks, dense = price_matrix(dataset.read("prices"), n_tokens)
    pop, see, share, sigma = bidders(competition)
    kind = pop.kind_id("liquidation")
    cols = {c: positions.column(c).to_pylist() for c in positions.column_names}
    n = positions.num_rows
    collateral = [int(v) for v in cols["collateral_amount"]]
    debt = [int(v) for v in cols["debt_amount"]]
    ref_block = [int(v) for v in cols["opened_block"]]
    history, labels = [], {}
    for part in dataset.partitions:
        first, last = part
        blocks = dataset.read_partition("blocks", part)
        block_numbers = blocks.column("block_number").to_numpy()
        base_fee = blocks.column("base_fee_wei").to_numpy().astype(np.float64)
        takes = blocks.column("takes_bundles").to_numpy(zero_copy_only=False).astype(bool)
        price = prices_at(sample_blocks, dense, block_numbers)
        rows = []
        for p in range(n):
            c, d = int(cols["collateral_token"][p]), int(cols["debt_token"][p])
            unit_c, unit_d = 10 ** int(decimals[c]), 10 ** int(decimals[d])
            lt, bonus, cf = (int(cols["liquidation_threshold_bps"][p]), int(cols["liquidation_bonus_bps"][p]),
                             int(cols["close_factor_bps"][p]))
            rate = float(cols["borrow_rate_per_block"][p])
            start = max(first, int(cols["opened_block"][p]))
            while start <= last and collateral[p] > 0 and debt[p] > 0:
                at = np.arange(start - first, last - first + 1)
                growth = np.exp((block_numbers[at] - ref_block[p]) * math.log1p(rate))
                health = (collateral[p] / unit_c * price[at, c] * lt / 1e4
                          / (debt[p] * growth / unit_d * price[at, d]))
                near = at[(np.nan_to_num(health, nan=np.inf) < 1.0 + SCREEN_MARGIN) & takes[at]]
                done = None
                for b in near.tolist():
                    block = first + b
                    pc_e8, pd_e8 = lending.oracle_e8(price[b, c]), lending.oracle_e8(price[b, d])
                    if pd_e8 <= 0:
                        continue
                    owed = debt[p] * lending.debt_growth_wad(rate, block - ref_block[p]) // lending.WAD
                    ok, repay, seized, _ = lending.liquidation_terms(collateral[p], owed, pc_e8, pd_e8, unit_c,
                                                                     unit_d, lt, bonus, cf)
                    if not ok:
                        continue
                    profit = lending.seized_value(seized, pc_e8, pd_e8, unit_c, unit_d) - repay
                    value_wei = (profit / unit_d * price[b, d] / price[b, WETH] * 1e18
                                 - lending.RIVAL_GAS_UNITS * base_fee[b])
                    if not value_wei > 0:
                        continue
                    rng = np.random.default_rng([seed, 0x11D, int(cols["position_id"][p]), block])
                    winner, bid = auction(rng, value_wei, kind, see, share, sigma, pop.capital_wei)
                    if winner < 0:
                        continue
                    collateral[p] -= seized
                    debt[p] = owed - repay
                    ref_block[p] = block
                    rows.append((block, int(cols["position_id"][p]), repay, seized, f"searcher_{winner}", d, profit,
                                 int(round(bid))))
                    done = block
                    break
                start = last + 1 if done is None else done + 1
        rows.sort(key=lambda r: (r[0], r[1]))
        if rows:
            last_tx = _last_tx(dataset, part)
            tx, rank, prev = [], 0, None
            for r in rows:
                rank = rank + 1 if r[0] == prev else 1
                prev = r[0]
                tx.append(last_tx.get(r[0], -1) + rank)
            history += [(r[0], t, r[1], r[2], r[3], r[4]) for r, t in zip(rows, tx)]
            labels[part] = pa.Table.from_pydict({
                "block_number": [r[0] for r in rows], "tx_index": tx,
                "tx_hash": [_tx_hash(seed, r[0], t) for r, t in zip(rows, tx)],
                "kind": ["liquidation"] * len(rows), "searcher": [r[4] for r in rows],
                "pools": [[] for _ in rows], "profit_token": [r[5] for r in rows],
                "profit_raw": pa.array([r[6] for r in rows], schema.AMOUNT),
                "gas_used": [lending.RIVAL_GAS_UNITS] * len(rows), "position_id": [r[1] for r in rows],
                "bribe_wei": pa.array([r[7] for r in rows], schema.AMOUNT),
            }, schema=schema.SCHEMAS["labels"])
    table = pa.Table.from_pydict({
        "block_number": [h[0] for h in history], "tx_index": [h[1] for h in history],
        "position_id": [h[2] for h in history], "debt_repaid": pa.array([h[3] for h in history], schema.AMOUNT),
        "collateral_seized": pa.array([h[4] for h in history], schema.AMOUNT),
        "liquidator": [h[5] for h in history]}, schema=lending.LIQUIDATIONS)
    return table, labels


def _last_tx(dataset, part) -> dict:
    """Per block of the partition, its last tx index (EVENTS, LABELS, VICTIMS)."""
    out: dict = {}
    for name in ("events", "labels", "victims"):
        path = dataset.path(name, part)
        if not path.is_file():
            continue
        t = read_parquet(path, ["block_number", "tx_index"])
        if not t.num_rows:
            continue
        grouped = t.group_by("block_number").aggregate([("tx_index", "max")])
        for b, x in zip(grouped.column("block_number").to_pylist(), grouped.column("tx_index_max").to_pylist()):
            out[b] = max(out.get(b, -1), x)
    return out


def plant_liquidations(root, competition: dict, seed: int) -> int:
    """Plant the rivals' liquidations of the dataset at `root` (its positions.parquet): liquidations.parquet
    (tagged with the book's `gpubt_generate`) and their LABELS rows merged into the labels partitions. Returns
    the number of liquidations."""
    from gpubt.data.store import Dataset

    root = Path(root)
    dataset = Dataset(root)
    own = root / lending.FILE_NAME
    positions = lending.load_positions(own, dataset.tokens)
    table, labels = simulate(dataset, positions, competition, seed)
    for part, rows in labels.items():
        path = dataset.path("labels", part)
        old = schema.conform(read_parquet(path), "labels", str(path))
        merged = pa.concat_tables([old, rows])
        order = pc.sort_indices(merged, sort_keys=[("block_number", "ascending"), ("tx_index", "ascending")])
        write_table_atomic(merged.take(order), path)
    meta = (pq.read_schema(own).metadata or {}).get(b"gpubt_generate")
    table = table.replace_schema_metadata({"gpubt_generate": meta.decode()} if meta is not None else None)
    out = root / lending.LIQUIDATIONS_FILE
    tmp = out.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, write_page_checksum=True)
    tmp.replace(out)
    return table.num_rows

