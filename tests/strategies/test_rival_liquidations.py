"""Rival liquidators: the synthetic history of liquidations (gpubt/data/rivals.py: LIQUIDATIONS rows and
"liquidation" labels), the liquidation strategy's book reacting to it (a rival's liquidation re-executes against the
book as our trades left it: it proceeds, shrunk to what is left, or reverts), validation by position, and a broken
liquidations table. Expected amounts are recomputed here from Aave's formulas with Python ints."""
import json
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt import schema
from gpubt.analysis.validate import validate
from gpubt.backend import Backend
from gpubt.data import lending, rivals
from gpubt.data.store import Dataset
from gpubt.exact.gas import GasModel
from gpubt.market.batch import iter_batches
from gpubt.strategies.liquidation import LiquidationStrategy
from tests.conftest import hand_market, write_market
from tests.market import rows

GAS = GasModel(32_952, 51_557, 10**9)
E18, E6 = 10**18, 10**6
# every searcher specializes in liquidations and sees every one (latency ≈ 0): the rival takes the first block it can
SURE = {"seed": 0, "searchers": {"count": 4, "specialization": {"liquidation": 1.0}, "off_kind_interest": 0.0,
                                 "latency_ms": {"median": 1e-9, "sigma": 0.0}},
        "bidding": {"latency_window_ms": 100.0}}
BOOK = {"position_id": 0, "owner": "0x" + "11" * 20, "collateral_token": 0, "collateral_amount": 10 * E18,
        "debt_token": 1, "debt_amount": 15_000 * E6, "liquidation_threshold_bps": 8250, "liquidation_bonus_bps": 500,
        "close_factor_bps": 5000, "opened_block": 100, "borrow_rate_per_block": 0.0}


def market(root, weth_usd: float, bundles_at_102: bool = True):
    """The hand market (blocks 100-105) with WETH at 2,000 USD up to block 101 and `weth_usd` from block 102, one
    position (10 WETH against 15,000 USDC: HF 1.1 at 2,000) in its positions.parquet, the rivals planted."""
    tables = hand_market()
    prices = tables["prices"].to_pylist()
    for row in prices:
        if row["token_id"] == 0 and row["block_number"] >= 102:
            row["price_usd"] = weth_usd
    tables["prices"] = pa.Table.from_pylist(prices, schema=schema.PRICES)
    blocks = tables["blocks"].to_pylist()
    for row in blocks:
        row["takes_bundles"] = bundles_at_102 or row["block_number"] != 102
    tables["blocks"] = pa.Table.from_pylist(blocks, schema=schema.BLOCKS)
    root = write_market(root, tables)
    pq.write_table(pa.Table.from_pylist([BOOK], schema=lending.POSITIONS), root / lending.FILE_NAME)
    rivals.plant_liquidations(root, SURE, seed=0)
    return root


def aave(collateral, debt, price_c, price_d=1.0, dec_c=18, dec_d=6, lt=8250, bonus=500, cf=5000, max_repay=None):
    """Aave's liquidation by hand: (liquidatable, repay, seized)."""
    pc_e8, pd_e8 = round(price_c * 1e8), round(price_d * 1e8)
    if collateral * pc_e8 * 10**dec_d * lt >= debt * pd_e8 * 10**dec_c * 10_000:
        return False, 0, 0
    repay = debt * cf // 10_000 if max_repay is None else min(debt * cf // 10_000, max_repay)
    seized = repay * pd_e8 * 10**dec_c * (10_000 + bonus) // (pc_e8 * 10**dec_d * 10_000)
    assert seized <= collateral
    return True, repay, seized


def run(root, last, min_profit_wei=0):
    ds = Dataset(root)
    strategy = LiquidationStrategy({}, ds, Backend("cpu"), GAS, min_profit_wei)
    trades = [t for b in iter_batches(ds, 100, last, 3, GAS.priority_fee_wei)
              for t in rows(strategy.evaluate(b).trades)]
    return strategy, trades


@pytest.mark.parametrize("bundles_at_102", [True, False])
def test_the_rival_liquidates_in_history_with_aaves_amounts(tmp_path, bundles_at_102):
    """WETH falls to 1,800 at block 102 (HF 0.99): the rival repays half the debt and seizes its value + 5 % in
    WETH, in the first block that takes bundles; one history row and one label, its profit the seized WETH at the
    oracle in USDC units − the repaid USDC. A tx of its own after the block's last one."""
    root = market(tmp_path / "m", 1800.0, bundles_at_102)
    history = pq.read_table(root / lending.LIQUIDATIONS_FILE)
    block = 102 if bundles_at_102 else 103
    ok, repay, seized = aave(10 * E18, 15_000 * E6, 1800.0)
    assert ok and repay == 7_500 * E6 and seized == 4_375 * E18 // 1000
    last_tx = max(e["tx_index"] for e in Dataset(root).read("events").to_pylist() if e["block_number"] == block)
    (h,) = history.to_pylist()
    assert (h["block_number"], h["tx_index"], h["position_id"]) == (block, last_tx + 1, 0)
    assert (int(h["debt_repaid"]), int(h["collateral_seized"])) == (repay, seized)
    labels = Dataset(root).read("labels")
    (label,) = labels.to_pylist()
    profit = seized * 1800 * 10**8 * E6 // (1 * 10**8 * E18) - repay   # the seized WETH at the oracle, in USDC units
    assert profit == 375 * E6
    assert (label["kind"], label["block_number"], label["tx_index"], label["position_id"]) == (
        "liquidation", block, last_tx + 1, 0)
    assert (label["profit_token"], int(label["profit_raw"]), label["pools"]) == (1, profit, [])
    assert label["searcher"] == h["liquidator"] and label["searcher"].startswith("searcher_")
    assert label["gas_used"] == lending.RIVAL_GAS_UNITS
    # HF after: (10 − 4.375) · 1,800 · 0.825 / 7,500 = 1.11: no second liquidation
    assert history.num_rows == 1


def test_the_strategy_sees_the_book_the_rival_left(tmp_path):
    """With no trade of ours (a threshold nothing clears), the book after block 102 is the rival's: history
    re-executes exactly."""
    root = market(tmp_path / "m", 1800.0)
    strategy, trades = run(root, 105, min_profit_wei=10**30)
    _, repay, seized = aave(10 * E18, 15_000 * E6, 1800.0)
    assert trades == []
    assert (strategy.collateral[0], strategy.debt[0]) == (10 * E18 - seized, 15_000 * E6 - repay)
    assert strategy.ref_block[0] == 102
    assert (strategy.stats["rival_liquidations"], strategy.stats["rivals_preempted"]) == (1, 0)


def test_our_liquidation_first_and_the_rival_reverts(tmp_path):
    """We liquidate at the top of block 102; the rival's tx later in that block finds the position healthy (HF
    1.11) and reverts: the book is ours alone. Validation matches our trade to the label by position."""
    root = market(tmp_path / "m", 1800.0)
    strategy, trades = run(root, 105)
    _, repay, seized = aave(10 * E18, 15_000 * E6, 1800.0)
    assert [(t["block_number"], t["path_id"]) for t in trades] == [(102, 0)]
    detail = json.loads(trades[0]["detail"])
    assert (int(detail["debt_repaid"]), int(detail["collateral_seized"])) == (repay, seized)
    assert (strategy.collateral[0], strategy.debt[0]) == (10 * E18 - seized, 15_000 * E6 - repay)
    assert (strategy.stats["rival_liquidations"], strategy.stats["rivals_preempted"]) == (0, 1)

    labels = Dataset(root).read("labels")
    result = validate(pa.Table.from_pylist(trades, schema=schema.TRADES), labels)
    scores = result.scores["kinds"]["liquidation"]
    assert (scores["labels"], scores["ours"], scores["matched"]) == (1, 1, 1)
    assert result.matches.column("path_id").to_pylist() == [0]
    # a label of another position in that block is not ours
    other = labels.set_column(labels.schema.get_field_index("position_id"), "position_id", pa.array([7], pa.int32()))
    assert validate(pa.Table.from_pylist(trades, schema=schema.TRADES), other).scores["kinds"]["liquidation"][
        "matched"] == 0


def test_our_liquidation_first_and_the_rival_proceeds_on_the_remainder(tmp_path):
    """WETH at 1,500 (HF 0.825): after ours the position is still under water (HF 0.78), so the rival's
    re-execution proceeds, repaying min(its historical 7,500 USDC, half of the 7,500 left) = 3,750 USDC."""
    root = market(tmp_path / "m", 1500.0)
    (h, *_) = pq.read_table(root / lending.LIQUIDATIONS_FILE).to_pylist()
    _, hist_repay, hist_seized = aave(10 * E18, 15_000 * E6, 1500.0)
    assert (h["block_number"], int(h["debt_repaid"]), int(h["collateral_seized"])) == (102, hist_repay, hist_seized)
    strategy, trades = run(root, 102)
    _, repay, seized = aave(10 * E18, 15_000 * E6, 1500.0)   # ours, at the top of block 102
    ok, rival_repay, rival_seized = aave(10 * E18 - seized, 15_000 * E6 - repay, 1500.0, max_repay=hist_repay)
    assert ok and rival_repay == 3_750 * E6 < hist_repay
    assert [(t["block_number"], int(json.loads(t["detail"])["debt_repaid"])) for t in trades] == [(102, repay)]
    assert strategy.collateral[0] == 10 * E18 - seized - rival_seized
    assert strategy.debt[0] == 15_000 * E6 - repay - rival_repay
    assert (strategy.stats["rival_liquidations"], strategy.stats["rivals_shrunk"],
            strategy.stats["rivals_preempted"]) == (1, 1, 0)


def test_the_book_carried_across_batches_and_a_checkpoint_equals_one_pass(tmp_path):
    """The history pointer travels with the book (Strategy.carried / restore: checkpoints, executor=dask's chain):
    a strategy restored mid-run ends where the uninterrupted one does."""
    root = market(tmp_path / "m", 1500.0)
    ds = Dataset(root)
    whole, _ = run(root, 105)
    first = LiquidationStrategy({}, ds, Backend("cpu"), GAS, 0)
    second = LiquidationStrategy({}, ds, Backend("cpu"), GAS, 0)
    batches = list(iter_batches(ds, 100, 105, 2, GAS.priority_fee_wei))
    for b in batches[:2]:   # blocks 100-103: ours and the rival's at 102 are in the book
        first.evaluate(b)
    second.restore(json.loads(json.dumps(first.carried())))
    for b in batches[2:]:
        second.evaluate(b)
    assert (second.collateral, second.debt) == (whole.collateral, whole.debt)
    assert second.hist_next.tolist() == whole.hist_next.tolist()
    for key in ("rival_liquidations", "rivals_preempted", "rivals_shrunk"):   # a checkpoint's counters add up
        assert first.stats[key] + second.stats[key] == whole.stats[key], key
    assert (whole.stats["rival_liquidations"], whole.stats["rivals_preempted"]) == (2, 2)


def test_a_broken_liquidations_table_is_one_clear_error_and_deletes_nothing(tmp_path):
    root = market(tmp_path / "m", 1800.0)
    path = root / lending.LIQUIDATIONS_FILE
    table = pq.read_table(path)
    bad = table.set_column(table.schema.get_field_index("position_id"), "position_id", pa.array([9], pa.int32()))
    pq.write_table(bad, path)
    before = sorted((p.relative_to(root), p.stat().st_size) for p in root.rglob("*"))
    with pytest.raises(schema.SchemaError, match=r"liquidations.parquet row 0: position_id = 9 is not a position_id"):
        LiquidationStrategy({}, Dataset(root), Backend("cpu"), GAS, 0)
    pq.write_table(table.drop(["debt_repaid"]), path)
    with pytest.raises(schema.SchemaError, match=r"liquidations.parquet: missing column\(s\) debt_repaid"):
        LiquidationStrategy({}, Dataset(root), Backend("cpu"), GAS, 0)
    two = pa.concat_tables([table, table.set_column(0, "block_number", pa.array([101], pa.int64()))])
    pq.write_table(two, path)
    with pytest.raises(schema.SchemaError, match=r"liquidations.parquet row 1: \(block_number, tx_index\) = \(101"):
        LiquidationStrategy({}, Dataset(root), Backend("cpu"), GAS, 0)
    assert {p.relative_to(root) for p in root.rglob("*")} == {p for p, _ in before}


def test_no_history_without_the_file_and_none_for_another_book(tmp_path):
    """Ingested data without liquidations.parquet: no rival. A planted history tagged with a book the run does
    not use (another `generate`) is left out rather than applied to other positions."""
    root = market(tmp_path / "m", 1800.0)
    ds = Dataset(root)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / lending.LIQUIDATIONS_FILE).unlink()
    assert lending.open_liquidations(Dataset(copy), {}, lending.open_positions(Dataset(copy), {})).num_rows == 0
    tagged = pq.read_table(root / lending.LIQUIDATIONS_FILE).replace_schema_metadata(
        {"gpubt_generate": lending.book_key()})
    pq.write_table(tagged, copy / lending.LIQUIDATIONS_FILE)
    book = lending.open_positions(ds, {})
    assert lending.open_liquidations(Dataset(copy), {"generate": {"n_positions": 7}}, book).num_rows == 0
    assert lending.open_liquidations(Dataset(copy), {}, book).num_rows == 1
    assert pc.sum(pq.read_table(root / lending.LIQUIDATIONS_FILE).column("position_id")).as_py() == 0


def test_a_dropped_liquidation_gives_the_rival_back_its_history(tmp_path):
    """The ordered pass drops our liquidation at block 102 (Strategy.dropped): the book is as if we had not traded,
    so the rival's liquidation there re-executes on the whole position again, with its historical amounts."""
    root = market(tmp_path / "m", 1500.0)
    ds = Dataset(root)
    strategy = LiquidationStrategy({}, ds, Backend("cpu"), GAS, 0)
    (batch,) = iter_batches(ds, 100, 102, 3, GAS.priority_fee_wei)
    (ours,) = strategy.evaluate(batch).trades
    assert (strategy.stats["rival_liquidations"], strategy.stats["rivals_shrunk"]) == (1, 1)
    strategy.dropped(ours)
    _, repay, seized = aave(10 * E18, 15_000 * E6, 1500.0)   # the rival's, on the book history had
    assert (strategy.collateral[0], strategy.debt[0]) == (10 * E18 - seized, 15_000 * E6 - repay)
    assert (strategy.stats["rival_liquidations"], strategy.stats["rivals_shrunk"],
            strategy.stats["rivals_preempted"]) == (1, 0, 0)


def test_the_configured_book_is_the_planted_one():
    """configs/strategy/liquidation.yaml `generate:` equals generate_positions' defaults: a default run's book is
    the one synthetic.generate wrote and planted the rivals against (else open_liquidations leaves them out)."""
    from omegaconf import OmegaConf

    from tests.conftest import REPO

    generate = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "strategy" / "liquidation.yaml").generate)
    assert lending.book_key(**{k: tuple(v) if isinstance(v, list) else v for k, v in generate.items()}) == \
        lending.book_key()
