"""The one interface between the batch loop and a strategy (arbitrage, sandwich, JIT, liquidation, CEX-DEX, yours).

Per batch the loop packs a `gpubt.market.batch.Batch` (versioned pool state: V2 reserves and V3 sqrt price /
liquidity / tick / tick tables, exact and float, looked up by (pool, key); its state log is uploaded to the
backend once, `batch.device_state(backend)`) and calls every strategy's `evaluate(batch, tables)` in config order.
A strategy screens its scenarios on the backend in float64 (its kernel in kernels/<name>.py, launched with
`self.launch`), keeps those that pass `self.passes_screen` (the one screening-margin rule), re-prices them with exact
integer math, and returns:

- opportunities: an OPPORTUNITIES table (schema.py) with `strategy` set; path_id = the strategy's own scenario id
  (e.g. the victim's row), start_token = the profit token, hops = number of pool legs;
- trades: rows (dicts) of the TRADES schema, `detail` a JSON string of what a reader needs to re-check the trade
  (amounts per leg, victims, positions, ...). Every wei figure is an exact Python int; a trade is taken only when
  its exact net profit is > min_profit_wei (`self.takes`).

It counts its own work in `stats` (STAT_KEYS, plus any of its own); the loop puts them in summary.json (timing,
by_strategy).

Keys: a point key is (block − batch.first_block) << 20 | tx_index (kernels/cycles.py: KEY_TX_BITS); "before tx t"
is key (o << 20) + t − 1.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpubt.backend import cpu_backend


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


@dataclass
class StrategyResult:
    opportunities: pa.Table   # OPPORTUNITIES schema
    trades: list              # TRADES rows (dicts)


# The float64 screen must never drop an opportunity whose exact profit clears the threshold. Float-vs-exact error
# measured on the small preset (docs/fidelity.md): relative to profit, max 1e-8 for V2 cycles and 3.6e-5 for mixed
# V2/V3 ones (integer rounding of coarse tokens: one raw WBTC unit is ~1.1e11 wei). Every strategy's screen keeps a
# candidate when its float net profit exceeds threshold − margin; the exact net profit then decides.
SCREEN_MARGIN_REL = 1e-4      # of the screened gross profit (≈ 3× the worst error measured)
SCREEN_MARGIN_WEI = 10**12    # absolute floor, 1e-6 ETH (≈ 10 raw WBTC units)

# what every strategy counts (summary.json: timing.by_strategy)
# (exact_priced_screen_wei: Σ the screened net profit of what was exact-priced; trades_net_wei: Σ the exact net
# profit of the trades taken: the funnel's values at those stages, analysis/postrun.py)
# (trades: confirmed by the exact figure; executed: sent by the ordered exact pass, run/execution.py, after conflicts
# across strategies and re-pricing on the state our earlier bundles left; executed_net_wei: Σ their exact net)
STAT_KEYS = ("screened", "candidates", "exact_priced", "exact_rejected", "trades", "executed",
             "exact_priced_screen_wei", "trades_net_wei", "executed_net_wei", "compile_seconds", "screen_seconds",
             "exact_seconds")


def screen_floor(min_profit_wei: int, gross_wei):
    """Per candidate: the float net profit it needs to reach exact re-pricing (the margin rule above)."""
    return float(min_profit_wei) - (SCREEN_MARGIN_REL * np.abs(gross_wei) + SCREEN_MARGIN_WEI)


class Strategy:
    """Base class: `name`, and `evaluate(batch, tables) -> StrategyResult`. Construct with
    (cfg: the strategy's config node, dataset, backend, gas: exact.gas.GasModel, min_profit_wei: int)."""

    name = "base"
    needs_victims = False  # evaluate reads tables.victims (else the loop does not read the victims table)
    exact_engine = "device"  # exact.engine (gpubt.strategies.exact_engine): RunSetup.build sets it from the config
    capital_eth: float | None = None  # the capital a trade may put in (None: flash-funded, capital does not bound it)
    capital_tiers_eth: tuple = ()     # the capitals the policy may give it (RunSetup.build: policy.capital_shares)

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        self.cfg, self.dataset, self.backend, self.gas = cfg, dataset, backend, gas
        self.min_profit_wei = int(min_profit_wei)
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self._compiled: set = set()
        self.stale: list = []  # (key, path_id) of this batch's opportunities the ordered pass found stale (rescreen)

    def evaluate(self, batch, tables: BatchTables) -> StrategyResult:  # pragma: no cover - interface
        raise NotImplementedError

    # -- what every strategy shares ---------------------------------------------------------------------------
    def exact(self, on_host: bool = False):
        """(backend, engine name) for gpubt.strategies.exact_engine. The device engine runs on the run's backend when
        it is CUDA (and not `on_host`: the ordered pass), else on the CPU: numba's simulator (backend=cudasim) would
        take minutes for what the CPU build does in milliseconds (tests/kernels run the CUDA build in the simulator)."""
        if self.backend.name == "cuda" and not on_host:
            return self.backend, self.exact_engine
        return cpu_backend(), self.exact_engine

    def passes_screen(self, net_wei, gross_wei) -> np.ndarray:
        """Mask of the screened scenarios that go on to exact pricing: float net profit over the threshold less
        the margin no float error crosses (`screen_floor`, from their float gross profit in wei, which must be
        finite: a NaN gross drops its scenario). Counts them."""
        keep = np.asarray(net_wei) > screen_floor(self.min_profit_wei, np.asarray(gross_wei))
        self.stats["candidates"] += int(np.count_nonzero(keep))
        return keep

    def takes(self, trade, screened_wei: float, decision_wei: int | None = None, count: bool = True) -> bool:
        """Whether an exactly priced trade (or None: it does not execute), screened at `screened_wei`, is taken:
        its exact net profit decides (`decision_wei` when the trade's reported profit is not known at its point,
        e.g. CEX-DEX's markout). A trade taken gets its `screen_net_profit_wei`; the stats count both ways, unless
        `count` is False (the ordered pass pricing a proposal again: the funnel counts a proposal once)."""
        net = trade["net_profit_wei"] if trade is not None and decision_wei is None else decision_wei
        taken = trade is not None and net > self.min_profit_wei
        if count:
            self.stats["exact_priced"] += 1
            self.stats["exact_priced_screen_wei"] += float(screened_wei)
            self.stats["trades" if taken else "exact_rejected"] += 1
            self.stats["trades_net_wei"] += int(trade["net_profit_wei"]) if taken else 0
        if taken:
            trade["screen_net_profit_wei"] = float(screened_wei)
        return taken

    def with_capital_curve(self, trade: dict | None, price_at) -> dict | None:
        """`trade` with `capital_net_wei` in its detail: per `capital_tiers_eth`, the exact net profit (wei, str)
        of the same scenario priced by `price_at(capital_eth)` with that capital, or None where that trade would
        not be taken (no trade, or net <= the threshold). The policy's capital split reads it (analysis/policy.py).
        A tier equal to `capital_eth` is the trade itself."""
        if trade is None or not self.capital_tiers_eth:
            return trade
        curve = []
        for capital in self.capital_tiers_eth:
            at = trade if capital == self.capital_eth else price_at(capital)
            curve.append(str(at["net_profit_wei"]) if at is not None and at["net_profit_wei"] > self.min_profit_wei
                         else None)
        trade["detail"] = json.dumps({**json.loads(trade["detail"]), "capital_net_wei": curve})
        return trade

    # -- the ordered exact pass (run/execution.py) ---------------------------------------------------------------
    # A trade returned by `evaluate` is a proposal. The pass may send it, drop it (a better bundle at its point
    # shares a pool or a victim), or price it again where our earlier bundles changed a pool it touches:
    # `trade["_reprice"]()` -> (trade or None, decision figure or None) at the same point on the current state
    # (the batch's exact lookups return forked pools' states while the pass walks). `_victims`: the victims'
    # point keys a bundle claims; `_decision_wei`: the figure it is ranked by when not its net profit; `_current`:
    # priced on the forks' current states (`rescreen`). A proposal touching a changed pool with neither `_reprice`
    # nor `_current` is dropped: it was priced on a state that is gone.
    can_rescreen = False  # True: `rescreen` finds the proposals of a point again when a pool of it changed

    def effects(self, trade: dict, batch) -> list:
        """What the bundle does to the pools, in order (run/execution.py Walker.execute): by default one route,
        the trade's pools swapped in turn from its amount_in, ending with its amount_out."""
        return [("route", trade["pools"], trade["zero_for_one"], int(trade["amount_in"]), int(trade["amount_out"]))]

    def executed(self, trade: dict) -> None:
        """The pass sent `trade` (the trades table will hold it)."""
        self.stats["executed"] += 1
        self.stats["executed_net_wei"] += int(trade["net_profit_wei"])

    def dropped(self, trade: dict) -> None:
        """The pass did not send the proposal `trade` (counted as confirmed, not executed)."""

    def rescreen_keys(self, batch) -> np.ndarray:
        """The point keys `rescreen` can be asked about (sorted)."""
        return np.zeros(0, np.int64)

    def rescreen(self, batch, key: int, view, touched, changed, triggers) -> tuple[set, "StrategyResult"]:
        """At `key` of the ordered pass, where pools are forked (`view`: gpubt.market.fork.ForkView, the float
        state there), the tx there re-executed on `touched` pools and changed `changed`, and `triggers` changed in
        the projected batch: (the proposals' path ids superseded, the opportunities and proposals found again; the
        opportunities may instead be kept for `rescreened`)."""
        raise NotImplementedError(f"strategy {self.name} sets can_rescreen but has no rescreen")

    def rescreened(self, batch) -> "pa.Table | None":
        """Opportunities `rescreen` found in `batch` but did not return (kept to build one table per batch, in the
        order it found them: a table per point costs ~50 µs over ~10^5 points), or None."""
        return None

    def launch(self, module: str, driver: str, n: int, args: tuple) -> None:
        """Launch kernels/<module>.py's `driver` over n items (args[0] is the per-item array whose length is n).
        The first launch of a driver runs one item first, timed as compile_seconds, so screen_seconds measure
        throughput, not numba's compilation."""
        if n == 0:
            return
        if (module, driver) not in self._compiled:
            t0 = time.perf_counter()
            self.backend.launch(module, driver, 1, (args[0][:1], *args[1:]))
            self._compiled.add((module, driver))
            self.stats["compile_seconds"] += time.perf_counter() - t0
        self.backend.launch(module, driver, n, args)

    @contextlib.contextmanager
    def timed(self, stage: str):
        """Add the block's wall time to stats[<stage>_seconds] (screen, exact), less any compilation in it."""
        t0, compiled = time.perf_counter(), self.stats["compile_seconds"]
        try:
            yield
        finally:
            self.stats[f"{stage}_seconds"] += time.perf_counter() - t0 - (self.stats["compile_seconds"] - compiled)

    def describe(self) -> dict:
        """What the strategy built from its config and the dataset, for summary.json's run.setup (JSON-safe)."""
        return {}

    def device_bytes(self, batch) -> int:
        """Bytes the strategy's own arrays take on the backend for `batch` (the loop's memory budget adds the
        state log's): 0 unless a strategy's work grows with the batch enough to matter."""
        return 0

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


def trade_row(strategy: str, batch, block: int, tx_index: int, path_id, start_token: int, pools: list,
              zero_for_one: list, amount_in: int, amount_out: int, gross_raw: int, gross_wei: int, gas_units: int,
              priority_fee_wei: int, detail: str | None = None) -> dict:
    """A TRADES row: exact Python ints, gas at the block's base fee + the priority fee, net = gross − gas,
    net_profit_usd at the block's ETH price. `block`: the offset in the batch; `detail`: JSON."""
    gas_price_wei = int(batch.base_fee_wei[block]) + int(priority_fee_wei)
    gas_cost_wei = gas_units * gas_price_wei
    net_wei = gross_wei - gas_cost_wei
    return {"strategy": strategy, "block_number": batch.first_block + block, "tx_index": tx_index, "path_id": path_id,
            "start_token": start_token, "pools": pools, "zero_for_one": zero_for_one, "amount_in": amount_in,
            "amount_out": amount_out, "gross_profit_raw": gross_raw, "gross_profit_wei": gross_wei,
            "gas_units": gas_units, "gas_price_wei": gas_price_wei, "gas_cost_wei": gas_cost_wei,
            "net_profit_wei": net_wei, "net_profit_usd": net_wei / 1e18 * float(batch.eth_usd[block]),
            "detail": detail}


def no_victims_reason(dataset, first_block: int, last_block: int, pool_ok=None) -> str | None:
    """'no pending victim swaps ...' when blocks first..last hold no victim (on a pool where pool_ok[pool_id])."""
    pools = dataset.read_range("victims", first_block, last_block, ["block_number", "pool_id"]).column("pool_id")
    pools = pools.to_numpy()
    if pool_ok is not None:
        pools = pools[pool_ok[pools]]
    return None if len(pools) else "no pending victim swaps (victims table) in these blocks"


def device_array(backend, array):
    """`array` on the backend, C-contiguous and writable (the simulator copies every argument back after a
    launch, and Arrow-backed arrays are read-only)."""
    return backend.to_device(np.require(array, requirements=("C", "W")))
