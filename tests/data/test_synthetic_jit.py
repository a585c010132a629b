"""The synthetic market's JIT-liquidity labels (`small`, seed 0): each label's exact profit recomputed from its own
three EVENTS rows (mint, victim swap, burn) on its V3 pool rebuilt from the events, their rate against the published
one (market_stats' table), and the JIT strategy validated against them end to end."""
import copy
import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt.analysis.market_stats import PUBLISHED_BY_KEY
from gpubt.data import synthetic
from gpubt.data.store import Dataset
from gpubt.exact import gas as exact_gas
from gpubt.exact import v3 as exact_v3
from tests.cli import run_inprocess


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The seeded `small` market: (path, its Dataset, its JIT labels as dicts)."""
    path = synthetic.generate(tmp_path_factory.mktemp("jit") / "small", preset="small", seed=0, progress=False)
    ds = Dataset(path)
    labels = ds.read("labels")
    return path, ds, labels.filter(pc.equal(labels.column("kind"), "jit")).to_pylist()


def _apply(pool: exact_v3.V3Pool, row: dict) -> None:
    """One V3 EVENTS row on an exact pool (every position under one owner: burns only subtract liquidity)."""
    if row["kind"] == "initialize":
        pool.initialize(int(row["sqrt_price_x96"]))
    elif row["kind"] == "mint":
        pool.mint(row["tick_lower"], row["tick_upper"], int(row["liquidity_delta"]))
    elif row["kind"] == "burn":
        pool.burn(row["tick_lower"], row["tick_upper"], -int(row["liquidity_delta"]))
    else:
        zfo = int(row["amount0_in"]) > 0
        pool.swap(zfo, int(row["amount0_in"] if zfo else row["amount1_in"]),
                  exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1)


def _check_jit(lb: dict, pool: exact_v3.V3Pool, mint: dict, victim: dict, burn: dict, meta: dict, victim_row: dict):
    """One JIT label against its rows, on `pool` (the exact state before the mint; not changed)."""
    assert [r["kind"] for r in (mint, victim, burn)] == ["mint", "swap", "burn"]
    assert {r["block_number"] for r in (mint, victim, burn)} == {lb["block_number"]}
    assert [r["tx_index"] for r in (mint, victim, burn)] == [lb["tx_index"] + k for k in range(3)]
    assert lb["tx_hash"] == mint["tx_hash"] and mint["sender"] == burn["sender"] != victim["sender"]
    lower, upper, dl = mint["tick_lower"], mint["tick_upper"], int(mint["liquidity_delta"])
    assert (burn["tick_lower"], burn["tick_upper"], int(burn["liquidity_delta"])) == (lower, upper, -dl)
    spacing = meta["tick_spacing"]
    assert lower <= pool.tick < upper and (upper - lower) // spacing in synthetic.JIT_RANGE_SPACINGS
    zfo = int(victim["amount0_in"]) > 0
    amount_in = int(victim["amount0_in"] if zfo else victim["amount1_in"])
    limit = exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1
    plain = pool.swap_outcome(zfo, amount_in, limit, commit=False)   # the victim's quote, before the mint
    assert int(victim_row["amount_out_min"]) <= -(plain.amount1 if zfo else plain.amount0)

    work = copy.deepcopy(pool)
    minted = work.mint(lower, upper, dl, owner="jit")
    assert minted == (int(mint["amount0_in"]), int(mint["amount1_in"]))
    in_range_liquidity = work.liquidity
    amount0, amount1, crossed, growth, fee_total = exact_v3.swap_with_fees(work, zfo, amount_in, lower, upper)
    got = -(amount1 if zfo else amount0)
    assert (amount0, amount1) == ((amount_in, -int(victim["amount1_out"])) if zfo
                                  else (-int(victim["amount0_out"]), amount_in))
    assert (work.sqrt_price_x96, work.liquidity, work.tick) == (
        int(victim["sqrt_price_x96"]), int(victim["liquidity"]), victim["tick"])
    burned = work.burn(lower, upper, dl, owner="jit")
    assert burned == (int(burn["amount0_out"]), int(burn["amount1_out"]))
    fees = growth * dl // 2**128          # Position.update: mulDiv(feeGrowthInside, liquidity, 2**128)
    assert 0 < fees <= fee_total and got > 0
    if crossed == 0 and lower <= work.tick < upper:   # never left the range: the pro-rata share of the whole fee
        assert abs(fees - fee_total * dl // in_range_liquidity) <= 2
    s2 = work.sqrt_price_x96 ** 2         # the output token's leg valued at the pool's price after the swap
    if zfo:
        profit = burned[0] + fees - minted[0] + (burned[1] - minted[1]) * 2**192 // s2
    else:
        profit = burned[1] + fees - minted[1] + (burned[0] - minted[0]) * s2 // 2**192
    assert int(lb["profit_raw"]) == profit
    assert lb["profit_token"] == (meta["token0"] if zfo else meta["token1"])
    assert lb["pools"] == [meta["pool_id"]] and lb["searcher"].startswith("searcher_")
    assert lb["gas_used"] == exact_gas.V3_MINT_TX_GAS + exact_gas.V3_BURN_COLLECT_TX_GAS


def test_jit_label_profits_are_exact_from_their_events(small):
    """Each JIT label: mint at its tx, the victim's swap the next tx, the burn of the whole position after it, on
    the pool rebuilt from its EVENTS rows; profit = fees (the victim's swap through exact.v3.swap_with_fees, which
    matches the recorded swap) + Δ input token + Δ output token at the price after, as the JIT strategy prices it."""
    _, ds, jits = small
    assert jits
    events = ds.read("events")
    victims = {(v["block_number"], v["tx_index"]): v for v in ds.read("victims").to_pylist()}
    meta = {p["pool_id"]: p for p in ds.pools.to_pylist()}
    checked = 0
    for pid in sorted({lb["pools"][0] for lb in jits}):
        assert meta[pid]["protocol"] == "v3"
        rows = events.filter(pc.equal(events.column("pool_id"), pid)).to_pylist()   # in (block, tx, log) order
        mine = {(lb["block_number"], lb["tx_index"]): lb for lb in jits if lb["pools"] == [pid]}
        pool = exact_v3.V3Pool(fee=meta[pid]["fee_ppm"], tick_spacing=meta[pid]["tick_spacing"])
        for i, row in enumerate(rows):
            lb = mine.get((row["block_number"], row["tx_index"]))
            if lb is not None:
                _check_jit(lb, pool, *rows[i:i + 3], meta[pid], victims[(lb["block_number"], lb["tx_index"] + 1)])
                checked += 1
            _apply(pool, row)
    assert checked == len(jits)


def test_jit_labels_per_block_inside_the_published_range(small):
    _, ds, jits = small
    published = PUBLISHED_BY_KEY["jit_per_block"]
    rate = len(jits) / ds.read("blocks").num_rows
    assert published.low <= rate <= published.high, (rate, published.low, published.high)


@pytest.mark.slow  # a backtest of the small market
def test_jit_strategy_is_validated_against_the_jit_labels(small, tmp_path):
    """`gpubt run strategy=jit` on the market: validation scores JIT against its labels, and our JIT trade around a
    labeled victim is the label's point (our tx_index is the victim's − 1: the label's mint)."""
    path, _, jits = small
    result = run_inprocess("backend=cpu", "data=parquet", f"data.path={path}", "strategy=jit", "progress=false",
                           "report.enabled=false", f"out_dir={tmp_path / 'out'}")
    scores = json.loads((result.out_dir / "summary.json").read_text())["validation"]["kinds"]["jit"]
    assert scores["labels"] == len(jits) > 0 and scores["ours"] > 0 and scores["matched"] >= 1, scores
    assert scores["precision"] > 0 and scores["recall"] > 0
    line = next(s for s in result.console.splitlines() if s.startswith("jit ") and " labels " in s)
    assert "precision n/a" not in line and "recall n/a" not in line
    matches = pq.read_table(result.out_dir / "validation_matches.parquet").to_pylist()
    jit_matches = [m for m in matches if m["kind"] == "jit"]
    assert jit_matches and all(m["our_tx_index"] == m["label_tx_index"] for m in jit_matches)
