"""Liquidation strategy: the POSITIONS table (generation, validation errors), the exact liquidation against a
hand computation, and end to end on a tiny synthetic market (pack_batch → evaluate) with identical trades on
the cpu and cudasim backends."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpubt import schema
from gpubt.backend import Backend
from gpubt.data import lending
from gpubt.data.store import Dataset
from gpubt.exact.gas import GasModel
from gpubt.exact.v2 import get_amount_out
from gpubt.market.batch import iter_batches
from tests.market import rows
from gpubt.strategies.liquidation import LiquidationStrategy

GAS = GasModel(32_952, 51_557, 10**9)
E18 = 10**18


def position(**overrides):
    row = {"position_id": 0, "owner": "0x" + "11" * 20, "collateral_token": 0, "collateral_amount": 10 * E18,
           "debt_token": 1, "debt_amount": 17_000 * 10**6, "liquidation_threshold_bps": 8250,
           "liquidation_bonus_bps": 500, "close_factor_bps": 5000, "opened_block": 100, "borrow_rate_per_block": 0.0}
    row.update(overrides)
    return row


def batches(ds, first, last, batch_blocks):
    """pack_batch over first..last in batches (the controller's loop, in short)."""
    return iter_batches(ds, first, last, batch_blocks, GAS.priority_fee_wei)


# ------------------------------------------------------------------------------------------------ positions table
def test_validation_errors_name_file_column_and_row(hand_dataset):
    tokens = Dataset(hand_dataset).tokens
    good = [position(), position(position_id=1, collateral_token=2, debt_token=0, debt_amount=E18)]
    assert lending.validate_positions(pa.Table.from_pylist(good, schema=lending.POSITIONS), tokens).num_rows == 2
    cases = [
        ({"debt_token": 7}, "row 1: debt_token = 7 is not a token_id"),
        ({"debt_token": 2}, "row 1: collateral_token == debt_token"),
        ({"collateral_amount": 0}, "row 1: collateral_amount = 0"),
        ({"position_id": 0}, "row 1: duplicate position_id = 0"),
        ({"liquidation_threshold_bps": 9600}, "row 1: liquidation_threshold_bps × (1 + bonus)"),
        ({"liquidation_bonus_bps": -1}, "row 1: liquidation_bonus_bps = -1"),
        ({"close_factor_bps": 0}, "row 1: close_factor_bps = 0"),
        ({"borrow_rate_per_block": 0.5}, "row 1: borrow_rate_per_block = 0.5"),
    ]
    for change, message in cases:
        rows = [good[0], dict(good[1], **change)]
        with pytest.raises(schema.SchemaError, match=re.escape(message)) as err:
            lending.validate_positions(pa.Table.from_pylist(rows, schema=lending.POSITIONS), tokens, "book.parquet")
        assert str(err.value).startswith("book.parquet row 1:")
    with pytest.raises(schema.SchemaError, match="missing column.*close_factor_bps"):
        lending.validate_positions(pa.Table.from_pylist(good, schema=lending.POSITIONS).drop(["close_factor_bps"]),
                                   tokens)
    with pytest.raises(schema.SchemaError, match="column owner has type"):
        table = pa.Table.from_pylist(good, schema=lending.POSITIONS)
        lending.validate_positions(table.set_column(1, "owner", pa.array([[1], [2]])), tokens)


def test_load_positions_csv_and_parquet(hand_dataset, tmp_path):
    tokens = Dataset(hand_dataset).tokens
    table = pa.Table.from_pylist([position()], schema=lending.POSITIONS)
    pq.write_table(table, tmp_path / "book.parquet")
    assert lending.load_positions(tmp_path / "book.parquet", tokens).equals(table)
    header = ",".join(lending.POSITIONS.names)
    values = ",".join(str(v) for v in position().values())
    (tmp_path / "book.csv").write_text(f"{header}\n{values}\n")
    assert lending.load_positions(tmp_path / "book.csv", tokens).equals(table)
    (tmp_path / "bad.csv").write_text(f"{header}\n{values.replace(',8250,', ',0,')}\n")
    with pytest.raises(schema.SchemaError, match=r"bad.csv row 0: liquidation_threshold_bps = 0"):
        lending.load_positions(tmp_path / "bad.csv", tokens)
    with pytest.raises(schema.SchemaError, match="positions file not found"):
        lending.load_positions(tmp_path / "none.parquet", tokens)
    assert lending.open_positions(Dataset(hand_dataset), {}).num_rows == 0   # ingested, no book: nothing to hunt


def test_the_synthetic_book_is_part_of_the_dataset_and_a_run_never_writes_there(tiny_cache, tmp_path):
    """synthetic.generate writes the default book (positions.parquet, tagged with its parameters); open_positions
    reads it for the default config, and generates any other book in memory, writing nothing into the dataset."""
    from ..conftest import TINY

    ds = Dataset(tiny_cache / TINY)
    default = lending.open_positions(ds, {})
    assert default.num_rows > 0 and default.equals(lending.generate_positions(ds))
    other = lending.open_positions(ds, {"generate": {"n_positions": 7, "seed": 3}})  # tiny_cache is read-only
    assert other.num_rows == 7 and other.equals(lending.generate_positions(ds, n_positions=7, seed=3))
    copy = Path(shutil.copytree(tiny_cache / TINY, tmp_path / "ds"))
    (copy / lending.FILE_NAME).unlink()  # a dataset generated before the book was part of it
    files = sorted(p.name for p in copy.iterdir())
    assert lending.open_positions(Dataset(copy), {}).equals(default)
    assert sorted(p.name for p in copy.iterdir()) == files


# ----------------------------------------------------------------------------------------------- exact, by hand
def test_exact_liquidation_matches_hand_computation(hand_dataset, tmp_path):
    """10 WETH against 17,000 USDC at 2,000 USD/WETH: HF 0.9706; repay 8,500 USDC, seize 4.4625 WETH, sell it
    on the deeper WETH/USDC pool (1,000 WETH / 2M USDC at the top of block 100), pay the 5 bps flash fee."""
    pq.write_table(pa.Table.from_pylist([position()], schema=lending.POSITIONS), tmp_path / "book.parquet")
    ds = Dataset(hand_dataset)
    strategy = LiquidationStrategy({"positions_path": str(tmp_path / "book.parquet")}, ds, Backend("cpu"), GAS, 0)
    result = [strategy.evaluate(b) for b in batches(ds, 100, 105, 3)]
    trades = [t for r in result for t in rows(r.trades)]
    assert len(trades) == 1 and sum(r.opportunities.num_rows for r in result) == 1  # HF after: 1.075
    t = trades[0]
    repay = 8_500 * 10**6
    seized = repay * 10**8 * E18 * 10_500 // (2000 * 10**8 * 10**6 * 10_000)
    assert seized == 4_462_500_000_000_000_000
    out = get_amount_out(seized, 1_000 * E18, 2_000_000 * 10**6)
    flash = -(-repay * 500 // 1_000_000)
    gross = out - repay - flash
    gas_units, gas_price = 300_000 + 51_557, 20 * 10**9 + 10**9
    assert (t["block_number"], t["tx_index"], t["pools"], t["zero_for_one"]) == (100, -1, [0], [True])
    assert (t["amount_in"], t["amount_out"], t["gross_profit_raw"]) == (repay, out, gross)
    assert t["gross_profit_wei"] == round(gross * (1.0 / 2000.0) * 1e12)
    assert (t["gas_units"], t["gas_price_wei"]) == (gas_units, gas_price)
    assert t["net_profit_wei"] == t["gross_profit_wei"] - gas_units * gas_price
    detail = json.loads(t["detail"])
    assert detail["health_factor"] == pytest.approx(10 * 2000 * 0.825 / 17_000)
    assert int(detail["collateral_seized"]) == seized and int(detail["flash_loan_fee"]) == flash
    assert strategy.collateral[0] == 10 * E18 - seized and strategy.debt[0] == 17_000 * 10**6 - repay
    assert abs(t["net_profit_wei"] - t["screen_net_profit_wei"]) < 1e-8 * t["net_profit_wei"]  # 1 USDC unit: 5e8 wei


# ------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="session")
def tiny_dataset(tiny_cache):
    """The shared tiny market (read-only: the liquidation strategy writes nothing into its dataset)."""
    from ..conftest import TINY

    return Dataset(tiny_cache / TINY)


LIQ_CFG = {"generate": {"n_positions": 40, "seed": 1, "hf_spread": [0.0, 0.4]}}


def run_strategy(cls, cfg, ds, backend, first, last, batch_blocks=20):
    strategy = cls(cfg, ds, Backend(backend), GAS, 0)
    opps, trades = 0, []
    for batch in batches(ds, first, last, batch_blocks):
        result = strategy.evaluate(batch)
        assert result.opportunities.schema == schema.OPPORTUNITIES
        opps += result.opportunities.num_rows
        trades += rows(result.trades)
    return strategy, opps, trades


def test_generated_book_and_cpu_equals_cudasim(tiny_dataset):
    ds = tiny_dataset
    first, last = ds.first_block, ds.first_block + 39
    cpu, opps_cpu, trades_cpu = run_strategy(LiquidationStrategy, LIQ_CFG, ds, "cpu", first, last)
    book = cpu.positions  # the book LIQ_CFG generates (in memory: a run writes nothing into its dataset)
    assert book.num_rows == 40 and lending.validate_positions(book, ds.tokens).num_rows == 40
    sim, opps_sim, trades_sim = run_strategy(LiquidationStrategy, LIQ_CFG, ds, "cudasim", first, last)
    assert len(trades_cpu) >= 1 and trades_cpu == trades_sim and opps_cpu == opps_sim
    assert cpu.collateral == sim.collateral and cpu.debt == sim.debt
    pa.Table.from_pylist(trades_cpu, schema=schema.TRADES)  # the rows fit the TRADES schema
    for t in trades_cpu:
        d = json.loads(t["detail"])
        assert d["health_factor"] < 1 and t["net_profit_wei"] > 0
        assert int(d["legs"][0]["amount_in"]) == int(d["collateral_seized"])
        assert int(d["legs"][-1]["amount_out"]) == t["amount_out"]
    # each position at most once per step: the blocks of one position strictly increase, steps count up
    seen = {}
    for t in trades_cpu:
        d = json.loads(t["detail"])
        assert d["step"] == seen.get(t["path_id"], (0, 0))[0] + 1 and t["block_number"] > seen.get(t["path_id"],
                                                                                                     (0, 0))[1]
        seen[t["path_id"]] = (d["step"], t["block_number"])


@pytest.mark.parametrize("block_sorted", [True, False])
def test_price_matrix_forward_fills_like_a_row_loop(block_sorted):
    """lending.price_matrix (vectorized fill; no sort when the table is block-sorted) equals filling each sample
    row from the one before, NaN until a token's first sample; a repeated (block, token) keeps its last value."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(100, 160, 400)
    blocks = np.sort(blocks) if block_sorted else blocks
    table = pa.table({"block_number": blocks, "token_id": rng.integers(0, 7, 400).astype(np.int32),
                      "price_usd": rng.random(400)})
    sample_blocks, dense = lending.price_matrix(table, 9)
    want_blocks = sorted(set(blocks.tolist()))
    want = np.full((len(want_blocks), 9), np.nan)
    row_of = {b: i for i, b in enumerate(want_blocks)}
    for b, t, v in zip(blocks.tolist(), table.column("token_id").to_pylist(), table.column("price_usd").to_pylist()):
        want[row_of[b], t] = v
    for i in range(1, len(want)):
        want[i] = np.where(np.isnan(want[i]), want[i - 1], want[i])
    assert sample_blocks.tolist() == want_blocks
    np.testing.assert_array_equal(dense, want)       # NaNs in the same places (tokens 7, 8 never sampled)
    assert np.isnan(dense[:, 7:]).all()
