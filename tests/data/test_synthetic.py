"""The synthetic market: determinism, schema validity, and exact consistency of every event, label and victim."""
import json

import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.data import synthetic
from gpubt.data.store import PARTITIONED, Dataset
from gpubt.exact.v2 import get_amount_out

TABLES = PARTITIONED + ("tokens", "pools")


def _read_all(path) -> dict:
    ds = Dataset(path)
    tables = {name: ds.read(name) for name in PARTITIONED}
    tables["tokens"], tables["pools"] = ds.tokens, ds.pools
    return tables


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = synthetic.generate(tmp_path_factory.mktemp("tiny") / "ds", preset="tiny", seed=7, progress=False)
    return path, _read_all(path)


def _replay(events, pools):
    """Walk the events in order from the sync rows; yields (row, reserves before) and checks every row."""
    reserves = {}
    for i, row in enumerate(events.to_pylist()):
        p = row["pool_id"]
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
            if a0i:
                assert a1o == get_amount_out(a0i, r0, r1, 3000) and a0o == 0, f"row {i}"
            else:
                assert a0o == get_amount_out(a1i, r1, r0, 3000) and a1o == 0, f"row {i}"
        expected = (r0 + a0i - a0o, r1 + a1i - a1o)
        assert after == expected, f"row {i}: reserves {after} after the event, replay gives {expected}"
        assert after[0] > 0 and after[1] > 0
        reserves[p] = after
        yield i, row
    assert set(reserves) == set(pools.column("pool_id").to_pylist())


def test_same_seed_same_tables_other_seed_other_events(tmp_path, tiny):
    path, tables = tiny
    again = _read_all(synthetic.generate(tmp_path / "again", preset="tiny", seed=7, progress=False))
    for name in TABLES:
        assert tables[name].equals(again[name]), name
    other = _read_all(synthetic.generate(tmp_path / "other", preset="tiny", seed=8, progress=False))
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
    assert manifest["params"]["preset"] == "tiny" and manifest["params"]["seed"] == 7
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
    _, tables = tiny
    kinds = {row["kind"] for _, row in _replay(tables["events"], tables["pools"])}
    assert {"swap"} <= kinds


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


def test_arbitrage_labels_match_their_swaps(tiny):
    _, tables = tiny
    pools = {p["pool_id"]: p for p in tables["pools"].to_pylist()}
    by_tx = {}
    for row in tables["events"].to_pylist():
        by_tx.setdefault(row["tx_hash"], []).append(row)
    labels = tables["labels"].to_pylist()
    arbs = [lb for lb in labels if lb["kind"] == "arbitrage"]
    assert arbs and any(lb["kind"] == "cexdex" for lb in labels)
    for lb in arbs:
        hops = by_tx[lb["tx_hash"]]
        assert [h["pool_id"] for h in hops] == lb["pools"] and all(h["kind"] == "swap" for h in hops)
        assert lb["profit_token"] == 0 and lb["gas_used"] > 0
        token = 0
        for h in hops:      # the path is a connected cycle WETH → ... → WETH
            pool = pools[h["pool_id"]]
            zero_for_one = h["amount0_in"] > 0
            assert token == (pool["token0"] if zero_for_one else pool["token1"])
            token = pool["token1"] if zero_for_one else pool["token0"]
        assert token == 0
        first, last = hops[0], hops[-1]
        weth_in = first["amount0_in"] if pools[first["pool_id"]]["token0"] == 0 else first["amount1_in"]
        weth_out = last["amount0_out"] if pools[last["pool_id"]]["token0"] == 0 else last["amount1_out"]
        assert lb["profit_raw"] == weth_out - weth_in
        for a, b in zip(hops, hops[1:]):    # each hop spends exactly the previous hop's output
            assert max(a["amount0_out"], a["amount1_out"]) == max(b["amount0_in"], b["amount1_in"])
    for lb in labels:
        if lb["kind"] == "cexdex":
            (swap,) = by_tx[lb["tx_hash"]]
            pool = pools[swap["pool_id"]]
            assert lb["profit_token"] == (pool["token1"] if swap["amount0_in"] > 0 else pool["token0"])


def test_victims_min_out_at_most_actual_out(tiny):
    _, tables = tiny
    swaps = {(r["block_number"], r["tx_index"]): r for r in tables["events"].to_pylist() if r["kind"] == "swap"}
    victims = tables["victims"].to_pylist()
    assert victims
    for v in victims:
        s = swaps[(v["block_number"], v["tx_index"])]
        assert s["tx_hash"] == v["tx_hash"] and s["pool_id"] == v["pool_id"]
        assert v["amount_in"] == (s["amount0_in"] if v["zero_for_one"] else s["amount1_in"])
        out = s["amount1_out"] if v["zero_for_one"] else s["amount0_out"]
        assert 0 <= v["amount_out_min"] <= out


def test_unknown_override_and_existing_dataset(tmp_path, tiny):
    with pytest.raises(ValueError, match="swaps_per_blok"):
        synthetic.generate(tmp_path / "x", preset="tiny", progress=False, swaps_per_blok=3)
    with pytest.raises(ValueError, match="preset"):
        synthetic.generate(tmp_path / "x", preset="huge", progress=False)
    path, _ = tiny
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synthetic.generate(path, preset="tiny", progress=False)
    out = synthetic.generate(tmp_path / "ow", preset="tiny", progress=False, n_blocks=50, partition_blocks=20)
    (out / "notes.txt").write_text("keep me")
    synthetic.generate(out, preset="tiny", progress=False, n_blocks=30, partition_blocks=30, overwrite=True)
    ds = Dataset(out)
    assert ds.partitions == [(18_000_000, 18_000_029)] and (out / "notes.txt").exists()
    assert len(list((out / "events").iterdir())) == 1
