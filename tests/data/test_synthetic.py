"""The synthetic market: determinism, schema validity, and exact consistency of every event, label and victim."""
import json

import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.data import synthetic
from gpubt.data.store import PARTITIONED, Dataset
from gpubt.exact import v3 as exact_v3
from gpubt.exact.v2 import get_amount_in, get_amount_out

TABLES = PARTITIONED + ("tokens", "pools")


def _read_all(path) -> dict:
    ds = Dataset(path)
    tables = {name: ds.read(name) for name in PARTITIONED}
    tables["tokens"], tables["pools"] = ds.tokens, ds.pools
    return tables


@pytest.fixture(scope="module")
def tiny(tiny_cache):
    """The shared tiny market (seed 0, tests/conftest.py): (path, its tables)."""
    from ..conftest import TINY

    return tiny_cache / TINY, _read_all(tiny_cache / TINY)


def _replay_v3_row(i, row, pool, balances):
    """Check one V3 row against an exact V3Pool (updated): amounts, balances and the state after the event."""
    a0i, a1i = int(row["amount0_in"]), int(row["amount1_in"])
    a0o, a1o = int(row["amount0_out"]), int(row["amount1_out"])
    if row["kind"] == "swap":
        assert (a0i > 0) != (a1i > 0), f"row {i}: a swap pays in exactly one token"
        zfo = a0i > 0
        limit = exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1
        amount0, amount1 = pool.swap(zfo, a0i or a1i, limit)
        assert (amount0, amount1) == ((a0i, -a1o) if zfo else (-a0o, a1i)), f"row {i}"
    elif row["kind"] == "mint":
        assert int(row["liquidity_delta"]) > 0
        assert pool.mint(row["tick_lower"], row["tick_upper"], int(row["liquidity_delta"])) == (a0i, a1i), f"row {i}"
    elif row["kind"] == "burn":
        assert int(row["liquidity_delta"]) < 0
        assert pool.burn(row["tick_lower"], row["tick_upper"], -int(row["liquidity_delta"])) == (a0o, a1o), f"row {i}"
    after = (balances[0] + a0i - a0o, balances[1] + a1i - a1o)
    assert after == (int(row["reserve0"]), int(row["reserve1"])) and min(after) >= 0, f"row {i}: balances"
    assert (pool.sqrt_price_x96, pool.liquidity, pool.tick) == (
        int(row["sqrt_price_x96"]), int(row["liquidity"]), row["tick"]), f"row {i}: V3 state after the event"
    return after


def _replay(events, pools, v3_pools=None, every_pool=True):
    """Walk the events in order from the sync (V2) and initialize (V3) rows; yields (row index, row) and checks
    every row: V2 by getAmountOut (exact-output swaps: getAmountIn), V3 through an exact V3Pool (kept in `v3_pools`
    if given)."""
    reserves = {}
    protocol = {p["pool_id"]: p for p in pools.to_pylist()}
    v3_pools = {} if v3_pools is None else v3_pools
    for i, row in enumerate(events.to_pylist()):
        p = row["pool_id"]
        if protocol[p]["protocol"] == "v3":
            if row["kind"] == "initialize":
                assert p not in v3_pools, f"row {i}: second initialize of pool {p}"
                v3_pools[p] = exact_v3.V3Pool(fee=protocol[p]["fee_ppm"], tick_spacing=protocol[p]["tick_spacing"])
                v3_pools[p].initialize(int(row["sqrt_price_x96"]))
                reserves[p] = (0, 0)
            reserves[p] = _replay_v3_row(i, row, v3_pools[p], reserves[p])
            yield i, row
            continue
        after = (int(row["reserve0"]), int(row["reserve1"]))
        a0i, a1i = int(row["amount0_in"]), int(row["amount1_in"])
        a0o, a1o = int(row["amount0_out"]), int(row["amount1_out"])
        if row["kind"] == "sync":
            assert p not in reserves, f"row {i}: second sync of pool {p}"
            reserves[p] = after
            continue
        r0, r1 = reserves[p]
        if row["kind"] == "swap":
            assert (a0i > 0) != (a1i > 0), f"row {i}: a swap pays in exactly one token"
            # exact input: out = getAmountOut(in); exact output (a router's swapTokensForExactTokens, whose
            # amountOut was quoted on another state when the victim was sandwiched): in = getAmountIn(out)
            if a0i:
                assert a0o == 0 and (a1o == get_amount_out(a0i, r0, r1, 3000)
                                     or a0i == get_amount_in(a1o, r0, r1, 3000)), f"row {i}"
            else:
                assert a1o == 0 and (a0o == get_amount_out(a1i, r1, r0, 3000)
                                     or a1i == get_amount_in(a0o, r1, r0, 3000)), f"row {i}"
        expected = (r0 + a0i - a0o, r1 + a1i - a1o)
        assert after == expected, f"row {i}: reserves {after} after the event, replay gives {expected}"
        assert after[0] > 0 and after[1] > 0
        reserves[p] = after
        yield i, row
    if every_pool:
        assert set(reserves) == set(pools.column("pool_id").to_pylist())


def test_same_seed_same_tables_other_seed_other_events(tmp_path, tiny):
    path, tables = tiny
    again = _read_all(synthetic.generate(tmp_path / "again", preset="tiny", seed=0, progress=False))
    for name in TABLES:
        assert tables[name].equals(again[name]), name
    other = _read_all(synthetic.generate(tmp_path / "other", preset="tiny", seed=1, progress=False))
    assert not tables["events"].equals(other["events"])


def test_schema_and_manifest(tiny):
    path, tables = tiny
    ds = Dataset(path)
    assert len(ds.partitions) == 2 and ds.first_block == 18_000_000 and ds.last_block == 18_000_199
    for name in PARTITIONED:
        for part in ds.partitions:
            ds.read_partition(name, part)     # validates
    schema.validate_events(tables["events"], tables["pools"])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["source"] == "synthetic"
    assert manifest["params"]["preset"] == "tiny" and manifest["params"]["seed"] == 0
    tokens = tables["tokens"].to_pylist()
    assert tokens[0]["symbol"] == "WETH" and tokens[0]["token_id"] == 0 and tokens[0]["decimals"] == 18
    assert all(t["address"].startswith("0x") and len(t["address"]) == 42 for t in tokens)
    blocks = tables["blocks"].to_pylist()
    assert [b["timestamp"] - blocks[0]["timestamp"] for b in blocks[:3]] == [0, 12, 24]
    for prev, cur in zip(blocks, blocks[1:]):     # EIP-1559
        target = prev["gas_limit"] // 2
        delta = prev["base_fee_wei"] * abs(prev["gas_used"] - target) // target // 8
        if prev["gas_used"] > target:
            assert cur["base_fee_wei"] == prev["base_fee_wei"] + max(delta, 1)
        else:
            assert cur["base_fee_wei"] == prev["base_fee_wei"] - delta
    prices = tables["prices"]
    for first, _ in ds.partitions:
        block_prices = prices.filter(pa.compute.equal(prices["block_number"], first))
        assert block_prices.num_rows == tables["tokens"].num_rows


def test_cross_venue_pairs_exist(tiny):
    _, tables = tiny
    pools = tables["pools"].to_pylist()
    venues = {}
    for p in pools:
        venues.setdefault(frozenset((p["token0"], p["token1"])), set()).add(p["venue"])
    both = [pair for pair, v in venues.items() if len(v) == 2]
    assert any(0 in pair for pair in both) and all(p["token0"] != p["token1"] for p in pools)


def test_events_replay_exactly(tiny):
    """Every V2 row by getAmountOut and every V3 row (swap, mint, burn, initialize) through gpubt.exact.v3's
    V3Pool: amounts, balances and the recorded sqrt price / liquidity / tick after every event."""
    _, tables = tiny
    protocol = {p["pool_id"]: p["protocol"] for p in tables["pools"].to_pylist()}
    kinds = {(protocol[row["pool_id"]], row["kind"]) for _, row in _replay(tables["events"], tables["pools"])}
    assert {("v2", "swap"), ("v3", "swap"), ("v3", "mint"), ("v3", "initialize")} <= kinds


def test_v3_market_shape(tiny):
    _, tables = tiny
    v3 = [p for p in tables["pools"].to_pylist() if p["protocol"] == "v3"]
    assert len(v3) == synthetic.PRESETS["tiny"]["v3_pools"]
    assert {p["fee_ppm"] for p in v3} >= {100, 500, 3000}
    assert all(p["tick_spacing"] == exact_v3.TICK_SPACINGS[p["fee_ppm"]] for p in v3)
    assert any(0 in (p["token0"], p["token1"]) and max(p["token0"], p["token1"]) >= len(synthetic.HUBS) for p in v3)
    ids = {p["pool_id"] for p in v3}
    labels = tables["labels"].to_pylist()
    mixed = [lb for lb in labels if lb["kind"] == "arbitrage" and ids & set(lb["pools"])
             and not ids >= set(lb["pools"])]
    assert mixed, "the searchers trade mixed V2/V3 cycles"
    # several positions per pool: more initialized ticks than the full range's two
    ticks = tables["ticks"].to_pylist()
    assert all(sum(1 for t in ticks if t["pool_id"] == pid) >= 6 for pid in ids)


def test_v3_snapshots_and_ticks_equal_replayed_state(tiny):
    path, tables = tiny
    ds = Dataset(path)
    pools, events = {}, tables["events"]
    blocks = events.column("block_number").to_numpy()
    for first, last in ds.partitions:
        before = events.slice(0, int((blocks < first).sum()))
        pools.clear()
        for _row in _replay(before, tables["pools"], pools, every_pool=False):
            pass
        snaps = [s for s in ds.read_partition("snapshots", (first, last)).to_pylist()
                 if s["sqrt_price_x96"] is not None]
        ticks = ds.read_partition("ticks", (first, last)).to_pylist()
        assert {s["pool_id"]: (int(s["sqrt_price_x96"]), int(s["liquidity"]), s["tick"]) for s in snaps} == {
            p: (q.sqrt_price_x96, q.liquidity, q.tick) for p, q in pools.items()}
        assert {(t["pool_id"], t["tick"]): (int(t["liquidity_net"]), int(t["liquidity_gross"])) for t in ticks} == {
            (p, t): (info.liquidity_net, info.liquidity_gross) for p, q in pools.items() for t, info in q.ticks.items()}
        assert first == ds.first_block or len(ticks) > 0


def test_v2_only_market(tmp_path):
    path = synthetic.generate(tmp_path / "v2", preset="tiny", seed=7, progress=False, v3_pools=0, n_blocks=40,
                              partition_blocks=20)
    tables = _read_all(path)
    assert set(tables["pools"].column("protocol").to_pylist()) == {"v2"}
    assert tables["events"].column("sqrt_price_x96").null_count == tables["events"].num_rows
    assert tables["ticks"].num_rows == 0
    for _ in _replay(tables["events"], tables["pools"]):
        pass


def test_snapshots_equal_replayed_state(tiny):
    path, tables = tiny
    ds = Dataset(path)
    events, snaps = tables["events"], tables["snapshots"].to_pylist()
    state, rows = {}, events.to_pylist()
    i = 0
    for first, _ in ds.partitions:
        while i < len(rows) and rows[i]["block_number"] < first:
            state[rows[i]["pool_id"]] = (rows[i]["reserve0"], rows[i]["reserve1"])
            i += 1
        at_first = {s["pool_id"]: (s["reserve0"], s["reserve1"]) for s in snaps if s["block_number"] == first}
        if first == ds.first_block:   # before the creation syncs: the syncs' reserves
            state = {r["pool_id"]: (r["reserve0"], r["reserve1"]) for r in rows if r["kind"] == "sync"}
        assert at_first == state


def _check_arbitrage_labels(tables) -> list:
    """Each arbitrage label is its tx's swaps: a connected cycle from its profit token (WETH, or a stablecoin on a
    WETH cycle) back to it, each hop spending the previous hop's output, profit = last output − first input.
    Returns the labels."""
    pools = {p["pool_id"]: p for p in tables["pools"].to_pylist()}
    stable = {t["token_id"] for t in tables["tokens"].to_pylist() if t["symbol"] in ("USDC", "USDT", "DAI")}
    by_tx = {}
    for row in tables["events"].to_pylist():
        by_tx.setdefault(row["tx_hash"], []).append(row)
    arbs = [lb for lb in tables["labels"].to_pylist() if lb["kind"] == "arbitrage"]
    for lb in arbs:
        hops = by_tx[lb["tx_hash"]]
        assert [h["pool_id"] for h in hops] == lb["pools"] and all(h["kind"] == "swap" for h in hops)
        start = lb["profit_token"]
        assert (start == 0 or start in stable) and lb["gas_used"] > 0
        token = start
        for h in hops:      # the path is a connected cycle WETH → ... → WETH (or from a stablecoin on it)
            pool = pools[h["pool_id"]]
            zero_for_one = h["amount0_in"] > 0
            assert token == (pool["token0"] if zero_for_one else pool["token1"])
            token = pool["token1"] if zero_for_one else pool["token0"]
        assert token == start and (start == 0 or 0 in {pools[h["pool_id"]]["token0"] for h in hops}
                                   | {pools[h["pool_id"]]["token1"] for h in hops})
        first, last = hops[0], hops[-1]
        start_in = first["amount0_in"] if pools[first["pool_id"]]["token0"] == start else first["amount1_in"]
        start_out = last["amount0_out"] if pools[last["pool_id"]]["token0"] == start else last["amount1_out"]
        assert lb["profit_raw"] == start_out - start_in
        for a, b in zip(hops, hops[1:]):    # each hop spends exactly the previous hop's output
            assert max(a["amount0_out"], a["amount1_out"]) == max(b["amount0_in"], b["amount1_in"])
    return arbs


def test_arbitrage_labels_match_their_swaps(tiny):
    _, tables = tiny
    pools = {p["pool_id"]: p for p in tables["pools"].to_pylist()}
    assert _check_arbitrage_labels(tables)
    by_tx = {}
    for row in tables["events"].to_pylist():
        by_tx.setdefault(row["tx_hash"], []).append(row)
    labels = tables["labels"].to_pylist()
    assert any(lb["kind"] == "cexdex" for lb in labels)
    for lb in labels:
        if lb["kind"] == "cexdex":
            (swap,) = by_tx[lb["tx_hash"]]
            pool = pools[swap["pool_id"]]
            assert lb["profit_token"] == (pool["token1"] if swap["amount0_in"] > 0 else pool["token0"])


def test_searchers_who_keep_books_in_a_stablecoin_start_there(tmp_path):
    """With every back-run by such a searcher, each cycle through a stablecoin starts (and profits) there."""
    path = synthetic.generate(tmp_path / "stable", preset="tiny", progress=False, stable_start_share=1.0)
    arbs = _check_arbitrage_labels(_read_all(path))
    assert sum(lb["profit_token"] != 0 for lb in arbs) > len(arbs) / 4, [lb["profit_token"] for lb in arbs]


def test_victims_min_out_at_most_actual_out(tiny):
    _, tables = tiny
    swaps = {(r["block_number"], r["tx_index"]): r for r in tables["events"].to_pylist() if r["kind"] == "swap"}
    victims = tables["victims"].to_pylist()
    assert victims
    for v in victims:
        s = swaps[(v["block_number"], v["tx_index"])]
        assert s["tx_hash"] == v["tx_hash"] and s["pool_id"] == v["pool_id"]
        paid = s["amount0_in"] if v["zero_for_one"] else s["amount1_in"]
        out = s["amount1_out"] if v["zero_for_one"] else s["amount0_out"]
        if v["exact_output"]:  # amountInMax, amountOut (tests/strategies/test_exact_output_victims.py: getAmountIn)
            assert paid <= v["amount_in"] and v["amount_out_min"] == out
        else:
            assert v["amount_in"] == paid
            assert 0 <= v["amount_out_min"] <= out
    assert any(v["exact_output"] for v in victims) and not all(v["exact_output"] for v in victims)


def test_unknown_override_and_existing_dataset(tmp_path):
    with pytest.raises(ValueError, match="swaps_per_blok"):
        synthetic.generate(tmp_path / "x", preset="tiny", progress=False, swaps_per_blok=3)
    with pytest.raises(ValueError, match="preset"):
        synthetic.generate(tmp_path / "x", preset="huge", progress=False)
    assert not (tmp_path / "x").exists()
    out = synthetic.generate(tmp_path / "ow", preset="tiny", progress=False, n_blocks=50, partition_blocks=20)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synthetic.generate(out, preset="tiny", progress=False, n_blocks=30, partition_blocks=30)
    assert Dataset(out).partitions == [(18_000_000, 18_000_019), (18_000_020, 18_000_039), (18_000_040, 18_000_049)]
    (out / "notes.txt").write_text("keep me")
    synthetic.generate(out, preset="tiny", progress=False, n_blocks=30, partition_blocks=30, overwrite=True)
    ds = Dataset(out)
    assert ds.partitions == [(18_000_000, 18_000_029)] and (out / "notes.txt").exists()
    assert len(list((out / "events").iterdir())) == 1


def test_sandwich_labels_wrap_a_victim_exactly(tiny):
    """A planted sandwich is front-run (tx t), the victim (t+1, a VICTIMS row whose limit was quoted before the
    front-run), back-run (t+2) selling exactly the front-run's output, both by the label's searcher. Exact-input
    and exact-output victims are both sandwiched; an exact-output one pays getAmountIn(amountOut) on the state the
    front-run left, more than before it and no more than its amountInMax."""
    _, tables = tiny
    pools = {p["pool_id"]: p for p in tables["pools"].to_pylist()}
    swaps = {(r["block_number"], r["tx_index"]): r for r in tables["events"].to_pylist() if r["kind"] == "swap"}
    victims = {(v["block_number"], v["tx_index"]): v for v in tables["victims"].to_pylist()}
    sandwiches = [lb for lb in tables["labels"].to_pylist() if lb["kind"] == "sandwich"]
    kinds = set()
    for lb in sandwiches:
        b, t = lb["block_number"], lb["tx_index"]
        front, back, victim = swaps[(b, t)], swaps[(b, t + 2)], victims[(b, t + 1)]
        (pool,) = lb["pools"]
        assert front["pool_id"] == back["pool_id"] == victim["pool_id"] == pool
        assert front["tx_hash"] == lb["tx_hash"] and front["sender"] == back["sender"] != swaps[(b, t + 1)]["sender"]
        zfo = front["amount0_in"] > 0
        assert victim["zero_for_one"] == zfo and (back["amount0_in"] > 0) != zfo
        f_in, f_out = (front["amount0_in"], front["amount1_out"]) if zfo else (front["amount1_in"], front["amount0_out"])
        b_in, b_out = (back["amount1_in"], back["amount0_out"]) if zfo else (back["amount0_in"], back["amount1_out"])
        assert b_in == f_out and lb["profit_raw"] == b_out - f_in
        assert lb["profit_token"] == (pools[pool]["token0"] if zfo else pools[pool]["token1"])
        # the victim's router quoted on the state before the front-run: its limit binds below that quote, and
        # the front-run left it less than the quote but still within the limit
        pre = (int(front["reserve0"]) - f_in, int(front["reserve1"]) + f_out) if zfo else \
            (int(front["reserve0"]) + f_out, int(front["reserve1"]) - f_in)
        post = (int(front["reserve0"]), int(front["reserve1"]))
        swap = swaps[(b, t + 1)]
        got = swap["amount1_out" if zfo else "amount0_out"]
        paid = swap["amount0_in" if zfo else "amount1_in"]
        kinds.add(victim["exact_output"])
        if victim["exact_output"]:
            assert got == victim["amount_out_min"]
            assert paid == get_amount_in(got, *(post if zfo else post[::-1]), 3000)
            assert get_amount_in(got, *(pre if zfo else pre[::-1]), 3000) < paid <= victim["amount_in"]
            # amountOut is the quote of the drawn input before the front-run; amountInMax = drawn × (1 + slippage)
            drawn = {victim["amount_in"] * 10_000 // (10_000 + bps) + d for bps in synthetic.SLIPPAGES_BPS
                     for d in (0, 1)}
            assert any(get_amount_out(x, *(pre if zfo else pre[::-1]), 3000) == got for x in drawn)
        else:
            quote = get_amount_out(victim["amount_in"], *(pre if zfo else pre[::-1]), 3000)
            assert victim["amount_out_min"] <= got < quote
            assert any(victim["amount_out_min"] == quote * (10_000 - bps) // 10_000 for bps in synthetic.SLIPPAGES_BPS)
    assert kinds == {False, True}


def test_labels_are_landed_by_the_competition_population(tiny):
    """Every label's searcher is one of configs/competition/default.yaml's population (the one our trades are
    auctioned against), and the auction picks them: the busiest searchers are among its most skilled."""
    from gpubt.market.searchers import default_config, draw_population

    _, tables = tiny
    population = draw_population(default_config())
    names = tables["labels"].column("searcher").to_pylist()
    index = [int(n.removeprefix("searcher_")) for n in names]
    assert all(n.startswith("searcher_") for n in names) and max(index) < population.size
    counts = {}
    for j in index:
        counts[j] = counts.get(j, 0) + 1
    busiest = sorted(counts, key=counts.get, reverse=True)[:3]
    top_decile = sorted(population.skill)[int(0.9 * population.size)]
    assert all(population.skill[j] >= top_decile for j in busiest), (busiest, population.skill[busiest])


def test_unlisted_tokens_carry_no_cex_dex_and_are_marked_at_their_weth_pool(tiny_unlisted):
    """A tail token no CEX lists (cex_listed_share < 1: the shallowest ones) gets no CEX-DEX label, and its
    reference is a DEX mark: its deepest WETH pool's price at the top of each block, times ETH's."""
    from ..conftest import UNLISTED_SHARE

    t = _read_all(tiny_unlisted)
    listed = dict(zip(t["tokens"].column("token_id").to_pylist(), t["tokens"].column("cex_listed").to_pylist()))
    hubs = set(range(len(synthetic.HUBS)))
    n_tail = len(listed) - len(hubs)
    unlisted = {k for k, v in listed.items() if not v}
    assert all(listed[h] for h in hubs) and len(unlisted) == n_tail - round(UNLISTED_SHARE * n_tail)
    pools = t["pools"].to_pydict()
    tokens_of = {p: (a, b) for p, a, b in zip(pools["pool_id"], pools["token0"], pools["token1"])}
    cexdex = [lb for lb in t["labels"].to_pylist() if lb["kind"] == "cexdex"]
    assert cexdex and not [lb for lb in cexdex if set(tokens_of[lb["pools"][0]]) & unlisted]

    # every WETH pool's price (token1 raw per token0 raw) at the top of each block after the first
    scale = {k: 10 ** d for k, d in zip(t["tokens"].column("token_id").to_pylist(),
                                       t["tokens"].column("decimals").to_pylist())}
    weth_pools = {p for p, ab in tokens_of.items() if synthetic.WETH in ab}
    price = {}
    for b, k, usd in zip(*(t["prices"].column(c).to_pylist() for c in ("block_number", "token_id", "price_usd"))):
        price.setdefault(b, {})[k] = usd
    ev = t["events"].sort_by([("block_number", "ascending"), ("tx_index", "ascending"), ("log_index", "ascending")])
    state, tops = {}, {}
    for row in ev.select(["block_number", "pool_id", "reserve0", "reserve1", "sqrt_price_x96"]).to_pylist():
        b = row["block_number"]
        if b not in tops and b > t["blocks"].column("block_number")[0].as_py():
            tops[b] = dict(state)
        if row["pool_id"] in weth_pools:
            s = row["sqrt_price_x96"]
            state[row["pool_id"]] = (int(s) ** 2 / 2 ** 192 if s is not None
                                     else int(row["reserve1"]) / int(row["reserve0"]))

    def mark(pool, tok, b):   # the pool's price of `tok` in USD at the top of block b
        raw1_per_raw0 = tops[b][pool]
        weth_per_raw = raw1_per_raw0 if tokens_of[pool][0] == tok else 1 / raw1_per_raw0
        return weth_per_raw / scale[synthetic.WETH] * scale[tok] * price[b][synthetic.WETH]

    for tok in set(listed) - hubs:   # an unlisted tail follows one of its WETH pools; a listed one none
        own = [p for p in weth_pools if tok in tokens_of[p]]
        followed = [p for p in own if all(mark(p, tok, b) == pytest.approx(price[b][tok], rel=1e-6) for b in tops)]
        assert bool(followed) == (tok in unlisted), (tok, own, followed)
    # the marks move with their pools (the test is not one of constant prices)
    assert all(len({price[b][tok] for b in tops}) > len(tops) // 2 for tok in unlisted)
