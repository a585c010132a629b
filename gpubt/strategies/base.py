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

import functools
import importlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpubt.backend import THREADS_PER_BLOCK
from gpubt.exact import v3 as exact_v3

# a trade's `detail` as json.dumps(detail, sort_keys=True) gives it, with one encoder for every trade (dumps with
# options builds a new encoder per call: ~20 % of the call)
DETAIL_JSON = json.JSONEncoder(sort_keys=True).encode


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

    def idle_reason(self, first_block: int, last_block: int) -> str | None:
        """Why this strategy could find nothing in blocks first..last of its dataset (one line), or None when the
        data gave it something to look at; asked after a run in which it found no opportunity."""
        return None

    def carried(self) -> dict | None:
        """What the strategy carries from batch to batch because of its own trades (JSON-safe; checkpoints hold
        it, so a resumed run continues from it); None: nothing, every batch stands alone."""
        return None

    def restore(self, carried: dict) -> None:
        """Continue from what `carried()` returned at a checkpoint."""
        raise ValueError(f"strategy {self.name} carries no state, yet the checkpoint holds some for it")


def no_victims_reason(dataset, first_block: int, last_block: int, pool_ok=None) -> str | None:
    """'no pending victim swaps ...' when blocks first..last hold no victim (on a pool where pool_ok[pool_id])."""
    pools = dataset.read_range("victims", first_block, last_block, ["block_number", "pool_id"]).column("pool_id")
    pools = pools.to_numpy()
    if pool_ok is not None:
        pools = pools[pool_ok[pools]]
    return None if len(pools) else "no pending victim swaps (victims table) in these blocks"


@functools.cache
def kernels_for(module: str, target: str):
    """The compiled kernels of kernels/<module>.py for a backend name (cpu | cuda | cudasim), built once."""
    return importlib.import_module(f"gpubt.kernels.{module}").build(target, cache=target == "cpu")


def launch(backend, module: str, driver: str, n: int, args: tuple) -> None:
    """Run `<driver>_cpu` (prange) or `<driver>_cuda` (one thread per item) of kernels/<module>.py on `backend`."""
    if n == 0:
        return
    kernels = kernels_for(module, backend.name)
    if backend.name == "cpu":
        getattr(kernels, f"{driver}_cpu")(*args)
        return
    blocks = (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
    getattr(kernels, f"{driver}_cuda")[blocks, THREADS_PER_BLOCK](*args)
    if backend.name == "cuda":
        backend.xp.cuda.runtime.deviceSynchronize()


def device_array(backend, array):
    """`array` on the backend, C-contiguous and writable (the simulator copies every argument back after a
    launch, and Arrow-backed arrays are read-only)."""
    return backend.to_device(np.require(array, requirements=("C", "W")))


class PoolTable:
    """Per pool_id arrays of a dataset's pools table (token0/1, fee_ppm, gamma = kept fraction, is_v3,
    tick_spacing: a V3 pool without one gets its fee tier's), and the tokens' decimals when given."""

    def __init__(self, pools: pa.Table, tokens: pa.Table | None = None):
        ids = pools.column("pool_id").to_numpy()
        self.n = n = int(ids.max()) + 1 if len(ids) else 0
        self.token0 = np.zeros(n, np.int32)
        self.token1 = np.zeros(n, np.int32)
        self.fee_ppm = np.zeros(n, np.int32)
        self.is_v3 = np.zeros(n, np.bool_)
        self.tick_spacing = np.zeros(n, np.int32)
        self.token0[ids] = pools.column("token0").to_numpy()
        self.token1[ids] = pools.column("token1").to_numpy()
        self.fee_ppm[ids] = pools.column("fee_ppm").to_numpy()
        self.is_v3[ids] = np.asarray(pools.column("protocol").to_pylist(), dtype=object) == "v3"
        if "tick_spacing" in pools.column_names:
            self.tick_spacing[ids] = pools.column("tick_spacing").fill_null(0).to_numpy()
        for p in np.flatnonzero(self.is_v3 & (self.tick_spacing == 0)).tolist():
            self.tick_spacing[p] = exact_v3.TICK_SPACINGS.get(int(self.fee_ppm[p]), 1)
        self.gamma = 1.0 - self.fee_ppm.astype(np.float64) / 1e6
        if tokens is not None:
            tid = tokens.column("token_id").to_numpy()
            self.decimals = np.zeros(int(tid.max()) + 1 if len(tid) else 0, np.int64)
            self.decimals[tid] = tokens.column("decimals").to_numpy()
