"""The interface between the controller's batch loop and a strategy.

Per batch the controller packs a `gpubt.pack.Batch` (versioned pool state: V2 reserves and V3 sqrt price /
liquidity / tick / tick tables, exact and float, looked up by (pool, key) — see pack.Batch.log_index and
kernels.cycles.find_state) and hands each enabled strategy that batch plus the batch's raw Arrow tables.
A strategy screens its scenarios on the backend in float64 (its kernel in kernels/<name>.py, compiled with
kernels.compile.build), keeps those over the threshold, re-prices them with exact integer math, and returns:

- opportunities: an OPPORTUNITIES table (schema.py) with `strategy` set; path_id = the strategy's own scenario id
  (e.g. the victim's row), start_token = the profit token, hops = number of pool legs;
- trades: rows (dicts) of the TRADES schema with `strategy` set and `detail` a JSON string of what a reader needs
  to re-check the trade (amounts per leg, victims, positions, ...). Every wei figure is an exact Python int.

Keys: a point key is (block − batch.first_block) << 20 | tx_index (kernels/cycles.py: KEY_TX_BITS); "before tx t"
is key (o << 20) + t − 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class BatchTables:
    """The Arrow rows of one batch's block range (sorted as in the dataset)."""

    blocks: pa.Table
    events: pa.Table
    victims: pa.Table
    prices: pa.Table
    price_usd_start: object   # numpy float64 (n_tokens): reference prices in force at the batch's first block


@dataclass
class StrategyResult:
    opportunities: pa.Table   # OPPORTUNITIES schema
    trades: list              # TRADES rows (dicts)


class Strategy:
    """Base class: `name`, and `evaluate(batch, tables) -> StrategyResult`. Construct with
    (cfg: the strategy's config node, dataset, backend, gas: engine.verify.GasModel, min_profit_wei: int)."""

    name = "base"

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        self.cfg, self.dataset, self.backend, self.gas = cfg, dataset, backend, gas
        self.min_profit_wei = int(min_profit_wei)

    def evaluate(self, batch, tables: BatchTables) -> StrategyResult:  # pragma: no cover - interface
        raise NotImplementedError
