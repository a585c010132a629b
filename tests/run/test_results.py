"""Result parts: a run spilled to disk reads back as the in-memory run, and the post-run files stream from it."""
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt import schema
from gpubt.data.store import Dataset, write_stream_atomic
from gpubt.run.checkpoint import Checkpointer
from gpubt.run.loop import Backtest
from gpubt.run.results import ROW, ResultParts
from gpubt.analysis.validate import ESTIMATE_COLUMNS, with_estimates

from ..market import GAS, arbitrage


def _backtest(ds, parts=None, checkpointer=None):
    strategy = arbitrage(ds)
    return Backtest(ds, strategy.backend, [strategy], GAS, 1, progress=False, checkpointer=checkpointer,
                    parts=parts).run()


def test_spilled_run_reads_back_as_the_in_memory_run(hand_dataset, tmp_path):
    ds = Dataset(hand_dataset)
    held = _backtest(ds)
    parts = ResultParts(tmp_path / "work")
    # a checkpoint every 2 blocks spills a part each time, then the partition's end spills the rest
    spilled = _backtest(ds, parts, Checkpointer(tmp_path / "work", 2, {}))
    assert parts.count >= 3
    assert sorted(Path(tmp_path / "work").glob("trades-*.parquet"))[-1].name == f"trades-{parts.count - 1:05d}.parquet"
    assert spilled._trade_tables == [] and spilled._opportunity_tables == []  # nothing held after the run
    assert held.trades().num_rows > 0
    assert spilled.trades().equals(held.trades())
    assert spilled.opportunities().equals(held.opportunities())
    assert (spilled.n_trades, spilled.n_opportunities) == (held.n_trades, held.n_opportunities)
    with pytest.raises(ValueError, match="checkpointer needs result parts"):
        _backtest(ds, None, Checkpointer(tmp_path / "other", 2, {}))


def test_core_and_streamed_files(hand_dataset, tmp_path):
    ds = Dataset(hand_dataset)
    parts = ResultParts(tmp_path)
    bt = _backtest(ds, parts, Checkpointer(tmp_path, 2, {}))
    full = bt.trades()
    core = parts.core(with_estimates=with_estimates)
    assert "detail" not in core.column_names
    assert core.column(ROW).to_pylist() == list(range(full.num_rows))
    for name in full.column_names:
        if name != "detail":
            assert core.column(name).equals(full.column(name)), name
    assert core.select(list(ESTIMATE_COLUMNS)).equals(with_estimates(full).select(list(ESTIMATE_COLUMNS)))

    # keep every other trade and append a column: the streamed file is exactly those rows with that column
    kept = core.filter(pa.array(np.arange(core.num_rows) % 2 == 1))
    kept = kept.append_column("won", pa.array(np.arange(kept.num_rows) % 3 == 0))
    write_stream_atomic(tmp_path / "trades.parquet", pa.schema([*schema.TRADES, kept.schema.field("won")]),
                        parts.trade_pieces(kept, ("won",)))
    want = full.take(pa.array(np.arange(1, full.num_rows, 2))).append_column("won", kept.column("won"))
    assert pq.read_table(tmp_path / "trades.parquet").equals(want)

    counts = parts.write_opportunities(tmp_path / "opportunities.parquet")
    opps = pq.read_table(tmp_path / "opportunities.parquet")
    assert opps.equals(bt.opportunities())
    assert counts == {"arbitrage": opps.num_rows}

    parts.remove()
    assert not list(tmp_path.glob("*-0000*.parquet"))


def test_with_estimates_reprices_cexdex_trades_in_the_labels_terms():
    row = {name: None for name in schema.TRADES.names}
    row.update(block_number=1, tx_index=0, path_id=0, start_token=0, pools=[3], zero_for_one=[True],
               gross_profit_raw=7, net_profit_wei=5)
    detail = {"reference_price_raw": 2.0, "zero_for_one": False, "amount_in": 1000, "amount_out": 700,
              "token_out": 4}
    trades = pa.Table.from_pylist([dict(row, strategy="arbitrage"),
                                   dict(row, strategy="cexdex", detail=json.dumps(detail))], schema=schema.TRADES)
    est = with_estimates(trades)
    # arbitrage: gross_profit_raw in start_token; CEX-DEX: 700 − 1000 × (1 / 2.0) in token_out
    assert [int(v) for v in est.column(ESTIMATE_COLUMNS[0]).to_pylist()] == [7, 200]
    assert est.column(ESTIMATE_COLUMNS[1]).to_pylist() == [0, 4]
    assert with_estimates(est) is est  # computed once (the core carries them without `detail`)
    assert pc.all(pc.equal(with_estimates(trades.drop_columns(["detail"])).column(ESTIMATE_COLUMNS[0]),
                           trades.column("gross_profit_raw"))).as_py()
