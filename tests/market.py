"""Test helpers: pack a dataset's block range as the loop does, and build the arbitrage strategy without Hydra."""
from __future__ import annotations

from gpubt.backend import Backend
from gpubt.exact.gas import GasModel
from gpubt.market.batch import pack_batch
from gpubt.market.pools import PoolTable
from gpubt.market.state import MarketState
from gpubt.run.execution import public_row
from gpubt.strategies.arbitrage import Arbitrage

GAS = GasModel(50_000, 60_000, 10**9)


def rows(trades: list) -> list:
    """A strategy's proposals as TRADES rows (without what the ordered exact pass reads: `_reprice`, ...)."""
    return [public_row(t) for t in trades]


def fresh_state(ds) -> MarketState:
    """The market at the dataset's first snapshot."""
    state = MarketState(int(ds.pools.column("pool_id").to_numpy().max()) + 1,
                        int(ds.tokens.column("token_id").to_numpy().max()) + 1)
    state.load_snapshot(ds.read("snapshots"))
    return state


def pack(ds, first: int, last: int, state: MarketState | None = None, evaluate_top=None, priority_fee_wei=10**9):
    """One Batch of blocks first..last (state: the market at `first`, default the first snapshot's)."""
    state = state or fresh_state(ds)
    sel = lambda t: t.filter((t["block_number"].to_numpy() >= first) & (t["block_number"].to_numpy() <= last))  # noqa
    top = first == ds.first_block if evaluate_top is None else evaluate_top
    return pack_batch(first, last, sel(ds.read("blocks")), sel(ds.read("events")), sel(ds.read("prices")), state,
                      PoolTable(ds.pools).is_v3, priority_fee_wei, evaluate_top=top, dataset=ds)


def arbitrage(ds, backend="cpu", gas: GasModel = GAS, min_profit_wei: int = 0, start_tokens=(0,), max_hops: int = 3,
              min_hops: int = 2) -> Arbitrage:
    """The arbitrage strategy as a run with these options would build it."""
    backend = Backend(backend) if isinstance(backend, str) else backend
    cfg = {"start_tokens": list(start_tokens), "max_hops": max_hops, "min_hops": min_hops}
    return Arbitrage(cfg, ds, backend, gas, min_profit_wei)

