"""gpubt market-stats: every figure recomputed here from the raw parquet tables (pyarrow and numpy, no gpubt code),
the table and --json through the real command line, and one-line errors."""
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt.data import synthetic
from gpubt.data.store import DatasetWriter
from gpubt.analysis.market_stats import LABEL_KINDS, PUBLISHED, format_market_stats, main, market_stats
from tests.cli import gpubt
from tests.conftest import TINY, hand_market


@pytest.fixture(scope="module")
def tiny(tiny_cache):
    return tiny_cache / TINY


@pytest.fixture(scope="module")
def rows(tiny):
    return {row["key"]: row for row in market_stats(tiny)}


def _table(root, name):
    return pq.read_table(root / name) if (root / name).is_dir() else pq.read_table(root / f"{name}.parquet")


def _floats(column) -> np.ndarray:
    return np.array([float(int(v)) if isinstance(v, Decimal) else np.nan for v in column.to_pylist()])


def _uniswap_swaps(root) -> pa.Table:
    """The swaps on Uniswap's own pools (venue uniswap_v2 or uniswap_v3), not its forks': what Chemaya counts."""
    pools, events = _table(root, "pools"), _table(root, "events")
    uniswap = [p for p, v in zip(pools.column("pool_id").to_pylist(), pools.column("venue").to_pylist())
               if v in ("uniswap_v2", "uniswap_v3")]
    return events.filter(pc.and_(pc.equal(events.column("kind"), "swap"),
                                 pc.is_in(events.column("pool_id"), pa.array(uniswap, pa.int32()))))


def _swap_usd(root) -> np.ndarray:
    """USD paid into each swap on a Uniswap pool: amount0_in and amount1_in at the latest price sample at or before
    its block."""
    tokens, pools = _table(root, "tokens"), _table(root, "pools")
    decimals = dict(zip(tokens.column("token_id").to_pylist(), tokens.column("decimals").to_pylist()))
    side_token = {p: (a, b) for p, a, b in zip(*(pools.column(c).to_pylist() for c in ("pool_id", "token0", "token1")))}
    prices = _table(root, "prices")
    samples = {}
    for token in set(prices.column("token_id").to_pylist()):
        mine = prices.filter(pc.equal(prices.column("token_id"), token))
        order = np.argsort(mine.column("block_number").to_numpy(), kind="stable")
        samples[token] = (mine.column("block_number").to_numpy()[order], mine.column("price_usd").to_numpy()[order])
    swaps = _uniswap_swaps(root)
    usd = np.zeros(swaps.num_rows)
    for side in (0, 1):
        amount = _floats(swaps.column(f"amount{side}_in"))
        for i, (pool, block) in enumerate(zip(swaps.column("pool_id").to_pylist(),
                                              swaps.column("block_number").to_pylist())):
            if amount[i] > 0:
                token = side_token[pool][side]
                blocks, price = samples.get(token, (np.zeros(0, np.int64), np.zeros(0)))
                at = np.searchsorted(blocks, block, side="right") - 1
                usd[i] += amount[i] / 10.0 ** decimals[token] * (price[at] if at >= 0 else np.nan)
    return usd


def test_labels_per_block_by_kind(tiny, rows):
    n_blocks = _table(tiny, "blocks").num_rows
    labels = _table(tiny, "labels")
    counts = {k: 0 for k in LABEL_KINDS}
    counts.update(zip(*(c.to_pylist() for c in pc.value_counts(labels.column("kind")).flatten())))
    assert sum(counts.values()) > 0  # the tiny market plants arbitrage and cexdex labels
    for kind in LABEL_KINDS:
        assert rows[f"{kind}_per_block"]["value"] == counts[kind] / n_blocks, kind
    assert rows["atomic_tx_per_block"]["value"] == (counts["arbitrage"] + counts["liquidation"]
                                                    + 2 * counts["sandwich"]) / n_blocks
    with_mev = len(set(labels.column("block_number").to_pylist()))
    assert rows["blocks_without_mev"]["value"] == pytest.approx(1 - with_mev / n_blocks, abs=1e-15)


def test_swaps_per_block_and_median_swap_usd(tiny, rows):
    n_blocks = _table(tiny, "blocks").num_rows
    events = _table(tiny, "events")
    n_all = pc.sum(pc.equal(events.column("kind"), "swap")).as_py()
    n_swaps = _uniswap_swaps(tiny).num_rows
    assert 0 < n_swaps < n_all  # tiny's sushiswap pools trade too; the published count is Uniswap's
    assert rows["swaps_per_block"]["value"] == n_swaps / n_blocks
    assert rows["swaps_per_block"]["detail"].endswith(f"({n_all:,} on every venue)")
    usd = _swap_usd(tiny)
    assert np.isfinite(usd).all() and len(usd) == n_swaps
    assert rows["swap_usd_median"]["value"] == pytest.approx(float(np.median(usd)), rel=1e-12)


def test_base_fee_and_gas(tiny, rows):
    blocks = _table(tiny, "blocks").sort_by("block_number")
    fee = [int(v) for v in blocks.column("base_fee_wei").to_pylist()]
    used, limit = blocks.column("gas_used").to_pylist(), blocks.column("gas_limit").to_pylist()
    steps = [abs(fee[i + 1] / fee[i] - 1.0) for i in range(len(fee) - 1)]
    assert rows["base_fee_step_max"]["value"] == pytest.approx(max(steps), rel=1e-12)

    def eip1559(base, gas_used, gas_limit):
        target = gas_limit // 2
        change = base * abs(gas_used - target) // target // 8
        return base + max(change, 1) if gas_used > target else base - change
    exact = sum(eip1559(fee[i], used[i], limit[i]) == fee[i + 1] for i in range(len(fee) - 1))
    assert rows["base_fee_eip1559_exact"]["value"] == exact / (len(fee) - 1)
    assert rows["base_fee_eip1559_exact"]["detail"].endswith(f"of {len(fee) - 1:,} steps")  # across partitions too
    assert rows["gas_used_ratio"]["value"] == pytest.approx(np.mean(np.array(used) / np.array(limit)), rel=1e-12)
    assert rows["gas_limit"]["value"] == np.mean(limit)


def test_label_profits_and_searchers(tiny, rows):
    labels = _table(tiny, "labels")
    tokens = _table(tiny, "tokens")
    weth = tokens.column("symbol").to_pylist().index("WETH")
    arb = labels.filter(pc.equal(labels.column("kind"), "arbitrage"))
    token = np.array(arb.column("profit_token").to_pylist())
    # the synthetic searchers take profit in WETH, a tenth of them (stable_start_share) in a stablecoin
    assert weth in set(token) and set(token) <= {weth, *synthetic.STABLES}
    decimals = dict(zip(tokens.column("token_id").to_pylist(), tokens.column("decimals").to_pylist()))
    prices = _table(tiny, "prices")
    profit_usd = []
    for t, block, raw in zip(token, arb.column("block_number").to_pylist(), _floats(arb.column("profit_raw"))):
        mine = prices.filter(pc.and_(pc.equal(prices.column("token_id"), int(t)),
                                     pc.less_equal(prices.column("block_number"), block)))
        latest = mine.column("price_usd").to_numpy()[np.argmax(mine.column("block_number").to_numpy())]
        profit_usd.append(raw / 10.0 ** decimals[int(t)] * latest)
    assert rows["arbitrage_profit_usd"]["value"] == pytest.approx(np.mean(profit_usd), rel=1e-12)
    n_pools = np.array([len(p) for p in arb.column("pools").to_pylist()])
    assert rows["arbitrage_2_3_pools"]["value"] == np.mean((n_pools >= 2) & (n_pools <= 3))
    assert rows["arbitrage_profit_weth"]["value"] == np.mean(token == weth)

    atomic = labels.filter(pc.is_in(labels.column("kind"), pa.array(["arbitrage", "sandwich", "liquidation"])))
    counts = sorted(pc.value_counts(atomic.column("searcher")).field("counts").to_pylist(), reverse=True)
    assert rows["top1_searcher_share"]["value"] == counts[0] / sum(counts)
    assert rows["top5_searcher_share"]["value"] == sum(counts[:5]) / sum(counts)
    assert rows["searchers_14d"]["value"] is None and "14 days" in rows["searchers_14d"]["detail"]

    pools = _table(tiny, "pools")
    assert rows["v3_pool_share"]["value"] == pc.sum(pc.equal(pools.column("protocol"), "v3")).as_py() / pools.num_rows
    assert rows["v3_pool_share"]["in_range"] is None  # no published figure: shown, not compared


def test_bribes_and_what_they_take_of_revenue(tiny, rows):
    """bribe_wei (what a label's searcher paid the builder: the synthetic auction's winning bid plus its 1 gwei
    priority fee on the gas) per atomic transaction, and as a share of revenue for sandwiches (with the gas at the
    base fee) and CEX-DEX, recomputed from the parquet tables."""
    labels, tokens = _table(tiny, "labels"), _table(tiny, "tokens")
    blocks, prices = _table(tiny, "blocks"), _table(tiny, "prices")
    weth = tokens.column("symbol").to_pylist().index("WETH")
    decimals = dict(zip(tokens.column("token_id").to_pylist(), tokens.column("decimals").to_pylist()))
    base_fee = dict(zip(blocks.column("block_number").to_pylist(), map(int, blocks.column("base_fee_wei").to_pylist())))

    def usd(token, block):
        mine = prices.filter(pc.and_(pc.equal(prices.column("token_id"), token),
                                     pc.less_equal(prices.column("block_number"), block)))
        return mine.column("price_usd").to_numpy()[np.argmax(mine.column("block_number").to_numpy())]

    rows_by_kind = {}
    for lb in labels.to_pylist():
        rows_by_kind.setdefault(lb["kind"], []).append(lb)
    assert all(lb["bribe_wei"] is not None for lb in labels.to_pylist())   # the synthetic auction says
    for kind in ("arbitrage", "sandwich", "cexdex"):
        assert rows_by_kind[kind] and all(int(lb["bribe_wei"]) >= 10**9 * lb["gas_used"] for lb in rows_by_kind[kind])
    paid = sum(int(lb["bribe_wei"]) for k in ("arbitrage", "sandwich", "liquidation") for lb in rows_by_kind.get(k, []))
    txs = sum(len(rows_by_kind.get(k, [])) * (2 if k == "sandwich" else 1) for k in ("arbitrage", "sandwich",
                                                                                     "liquidation"))
    assert rows["bribe_per_tx_eth"]["value"] == pytest.approx(paid / 1e18 / txs, rel=1e-9)
    for kind, key, gas in (("sandwich", "sandwich_cost_share", True), ("cexdex", "cexdex_builder_share", False)):
        cost = revenue = 0.0
        for lb in rows_by_kind[kind]:
            b, t = lb["block_number"], lb["profit_token"]
            cost += (int(lb["bribe_wei"]) + gas * lb["gas_used"] * base_fee[b]) / 1e18 * usd(weth, b)
            revenue += int(lb["profit_raw"]) / 10.0 ** decimals[t] * usd(t, b)
        assert rows[key]["value"] == pytest.approx(cost / revenue, rel=1e-9), key


def test_rows_match_the_published_table(rows):
    assert list(rows) == [p.key for p in PUBLISHED]
    for pub in PUBLISHED:
        row = rows[pub.key]
        assert row["statistic"] == pub.statistic and row["unit"] == pub.unit and row["source"] == "; ".join(pub.sources)
        if row["value"] is None:
            assert row["in_range"] is None and row["detail"].startswith("n/a (")
        elif pub.low is not None:
            assert row["published_range"] == [pub.low, pub.high]
            assert row["in_range"] == (pub.low <= row["value"] <= pub.high)
    # the synthetic market plants arbitrage, sandwich, CEX-DEX and (its rival liquidators: gpubt/data/rivals.py)
    # liquidation labels
    assert rows["liquidation_per_block"]["value"] > 0 and rows["liquidation_profit_usd"]["value"] > 0
    assert rows["jit_per_block"]["value"] == 0 and rows["jit_per_block"]["in_range"] is False
    assert rows["sandwich_per_block"]["value"] > 0 and rows["sandwich_profit_usd"]["value"] > 0


def test_prices_carry_across_partitions_and_missing_data_is_na(tmp_path):
    """A hand market (written as an ingested dataset) split in two partitions with prices only at its first
    block: the second partition's swaps are valued at the carried prices; it has no labels, so the label figures
    are n/a, and kinds the labeler does not look for are n/a rather than zero."""
    tables = hand_market()
    tables["prices"] = tables["prices"].filter(pc.equal(tables["prices"].column("block_number"), 100))
    writer = DatasetWriter(tmp_path / "hand", source="rpc")
    writer.write_static(tables["tokens"], tables["pools"])
    for first, last in ((100, 102), (103, 105)):
        part = {}
        for name in ("blocks", "events", "victims", "labels", "prices"):
            b = tables[name].column("block_number")
            part[name] = tables[name].filter(pc.and_(pc.greater_equal(b, first), pc.less_equal(b, last)))
        snapshots = tables["snapshots"]
        part["snapshots"] = snapshots.set_column(0, "block_number", pa.array([first] * snapshots.num_rows, pa.int64()))
        writer.write_partition(first, last, part)
    writer.finish()
    got = {row["key"]: row for row in market_stats(tmp_path / "hand")}
    usd = _swap_usd(tmp_path / "hand")
    assert len(usd) == 6 and np.isfinite(usd).all()   # 7 swaps, one on the sushiswap pool
    assert got["swap_usd_median"]["value"] == pytest.approx(float(np.median(usd)), rel=1e-12)
    assert got["swaps_per_block"]["value"] == 6 / 6
    assert got["arbitrage_per_block"]["value"] == 0.0 and got["blocks_without_mev"]["value"] == 1.0
    for key in ("arbitrage_profit_usd", "top1_searcher_share", "bribe_per_tx_eth", "sandwich_cost_share",
                "cexdex_builder_share", "searchers_14d"):
        assert got[key]["value"] is None and got[key]["detail"].startswith("n/a ("), key
    for kind in ("cexdex", "liquidation"):
        assert got[f"{kind}_per_block"]["value"] is None and "labeler" in got[f"{kind}_per_block"]["detail"]
    table = format_market_stats(list(got.values()))
    assert "n/a (no arbitrage labels)" in table and "out of range" in table


def test_how_far_out_a_row_is_reads_right():
    """A row just outside says by how much in percent (4.98 swaps a block: 0.4 % below 5), one far out the factor,
    a share the percentage points."""
    from gpubt.analysis.market_stats import _row

    table = format_market_stats([_row("swaps_per_block", 4.98), _row("bribe_per_tx_eth", 0.025),
                                 _row("top5_searcher_share", 0.66)])
    assert "OUT: 0.4 % below" in table and "OUT: 5x above" in table and "OUT: 1.0 pp above" in table


def test_cli_prints_the_table_and_json(tiny, rows):
    done = gpubt("market-stats", tiny)
    assert done.returncode == 0, done.stderr
    assert "swaps per block" in done.stdout and "in range" in done.stdout and "OUT" in done.stdout
    assert "n/a (the dataset spans 200 blocks, the published count is over 14 days" in done.stdout
    done = gpubt("market-stats", f"data.path={tiny}", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(list(rows.values())))


def test_cli_errors_are_one_line(tmp_path, capsys):
    done = gpubt("market-stats", tmp_path / "missing")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpubt: error:") and "manifest.json: not found" in lines[0]

    assert main([]) == 2 and main([str(tmp_path), str(tmp_path)]) == 2 and main(["--csv", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("gpubt: error:") for line in err)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    assert main([str(tmp_path / "bad")]) == 2
    assert "invalid JSON" in capsys.readouterr().err


def test_an_unknown_pool_in_events_is_one_line(hand_dataset, capsys):
    """Events are read in the columns the statistics use, not validated whole: the pool ids they index are checked."""
    path = next((hand_dataset / "events").iterdir())
    events = pq.read_table(path)
    pool_id = events.column("pool_id").to_pylist()
    pool_id[3] = 99
    column = events.schema.get_field_index("pool_id")
    pq.write_table(events.set_column(column, "pool_id", pa.array(pool_id, pa.int32())), path)
    assert main([str(hand_dataset)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path} row 3: pool_id = 99 is not a pool_id of the pools table" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("preset,overrides", [("small", {}), ("mainnet-month", {"n_blocks": 7_200})],
                         ids=["small", "mainnet-month-partition-0"])
def test_presets_sit_inside_the_calibrated_ranges(tmp_path, preset, overrides):
    """The seeded `small` market (what `make run` backtests) and the first day of `mainnet-month` inside every range
    they are calibrated to (CALIBRATED, the ranges and citations in PUBLISHED), measured by market-stats on a
    freshly generated copy."""
    from gpubt.analysis.market_stats import CALIBRATED
    from gpubt.data import synthetic

    path = synthetic.generate(tmp_path / preset, preset=preset, seed=0, progress=False, **overrides)
    got = {row["key"]: row for row in market_stats(path)}
    assert set(CALIBRATED) <= {p.key for p in PUBLISHED if p.low is not None}
    off = {k: (got[k]["value"], got[k]["published_range"]) for k in CALIBRATED if not got[k]["in_range"]}
    assert not off, f"outside their published range: {off}"


def test_swap_figures_count_uniswap_pools_only(tmp_path):
    """The published swap count and size are Uniswap's: a dataset whose pools are all a fork's has them n/a,
    with its swaps counted in the detail, not compared with Uniswap's."""
    tables = hand_market()
    pools = tables["pools"]
    tables["pools"] = pools.set_column(pools.schema.get_field_index("venue"), "venue",
                                       pa.array(["sushiswap"] * pools.num_rows))
    writer = DatasetWriter(tmp_path / "fork", source="rpc")
    writer.write_static(tables["tokens"], tables["pools"])
    writer.write_partition(100, 105, {name: tables[name] for name in
                                      ("blocks", "events", "snapshots", "victims", "labels", "prices")})
    writer.finish()
    got = {row["key"]: row for row in market_stats(tmp_path / "fork")}
    for key in ("swaps_per_block", "swap_usd_median"):
        assert got[key]["value"] is None and got[key]["in_range"] is None, key
        assert got[key]["detail"].startswith("n/a (no Uniswap pool"), key
    assert "7 swaps in 6 blocks on other venues" in got["swaps_per_block"]["detail"]
