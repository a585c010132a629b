"""`gpubt ingest` from a real node: every block's replayed pool state equals the contracts' own view at that block
(eth_call getReserves / slot0 / liquidity / balanceOf), and every decoded router call is the tx that was sent."""
from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpubt.data import decode
from gpubt.data.rpc import RpcClient, ingest
from gpubt.data.store import Dataset

from ..cli import gpubt, run_inprocess
from .conftest import ingest_config
from .helpers import assert_same_dataset

pytestmark = pytest.mark.slow  # a ganache node with the Uniswap contracts and a scripted history (conftest.py)


def _node_states(market, pools: list, blocks: range) -> dict:
    """(block, pool_id) → the node's state: V2 (reserve0, reserve1); V3 (balance0, balance1, sqrtP, liquidity, tick)."""
    client = RpcClient(market.node.url)
    calls, keys = [], []
    for b in blocks:
        for p in pools:
            if p["protocol"] == "v2":
                calls.append(("eth_call", [{"to": p["address"], "data": decode.selector("getReserves")}, hex(b)]))
            else:
                for tok in (p["token0_addr"], p["token1_addr"]):
                    calls.append(("eth_call", [{"to": tok, "data": decode.encode_call(
                        "balanceOf", ("address",), (p["address"],))}, hex(b)]))
                calls.append(("eth_call", [{"to": p["address"], "data": decode.selector("slot0")}, hex(b)]))
                calls.append(("eth_call", [{"to": p["address"], "data": decode.selector("liquidity")}, hex(b)]))
            keys.append((b, p))
    results = []
    for i in range(0, len(calls), 200):
        results += client.batch(calls[i:i + 200])
    out, it = {}, iter(results)
    for b, p in keys:
        if p["protocol"] == "v2":
            r = next(it)
            if r in ("0x", None):  # not deployed yet
                out[(b, p["pool_id"])] = (0, 0)
                continue
            r0, r1, _ = decode.decode_result("getReserves", bytes.fromhex(r[2:]))
            out[(b, p["pool_id"])] = (r0, r1)
        else:
            b0, b1, slot0, liq = next(it), next(it), next(it), next(it)
            if slot0 in ("0x", None):
                out[(b, p["pool_id"])] = (0, 0)
                continue
            sqrt_price, tick = decode.decode_result("slot0", bytes.fromhex(slot0[2:]))[:2]
            liq = decode.decode_result("liquidity", bytes.fromhex(liq[2:]))[0]
            out[(b, p["pool_id"])] = (int(b0, 16), int(b1, 16), sqrt_price, liq, tick)
    return out


def _dataset_states(path) -> dict:
    """(block, pool_id) → the dataset's state at the end of every block, from snapshots + events."""
    ds = Dataset(path)
    state = {}
    out = {}
    protocol = dict(zip(ds.pools.column("pool_id").to_pylist(), ds.pools.column("protocol").to_pylist()))
    for part in ds.partitions:
        for row in ds.read_partition("snapshots", part).to_pylist():
            st = (int(row["reserve0"]), int(row["reserve1"]))
            if protocol[row["pool_id"]] == "v3":
                st += (int(row["sqrt_price_x96"]), int(row["liquidity"]), int(row["tick"]))
            assert state.get(row["pool_id"], st) == st, f"snapshot of pool {row['pool_id']} at {part[0]} disagrees"
            state[row["pool_id"]] = st
        events = ds.read_partition("events", part).to_pylist()
        i = 0
        for b in range(part[0], part[1] + 1):
            while i < len(events) and events[i]["block_number"] == b:
                e = events[i]
                st = (int(e["reserve0"]), int(e["reserve1"]))
                if protocol[e["pool_id"]] == "v3":
                    st += (int(e["sqrt_price_x96"]), int(e["liquidity"]), int(e["tick"]))
                state[e["pool_id"]] = st
                i += 1
            for pid, st in state.items():
                out[(b, pid)] = st
    return out


def _pool_rows(path):
    ds = Dataset(path)
    addr = ds.tokens.column("address").to_pylist()
    rows = ds.pools.to_pylist()
    for r in rows:
        r["token0_addr"], r["token1_addr"] = addr[r["token0"]], addr[r["token1"]]
    return rows


def test_ingest_counts(market, reference):
    path, result = reference
    ds = Dataset(path)
    assert ds.complete and ds.first_block == 1 and ds.last_block == market.last_block
    assert result.blocks == market.last_block
    assert result.logs > 1000
    assert result.replay_stats["v3_swaps_checked"] > 100
    assert result.replay_stats["v3_swap_mismatches"] == 0
    kinds = set(ds.read("events").column("kind").to_pylist())
    assert kinds == {"sync", "swap", "mint", "burn", "initialize"}
    assert sorted(ds.pools.column("protocol").to_pylist()) == ["v2"] * 5 + ["v3"] * 2
    assert ds.tokens.column("symbol").to_pylist()[0] == "WETH"
    print(f"\ningest: {result.blocks} blocks, {result.logs} logs in {result.seconds:.2f} s "
          f"({result.blocks / result.seconds:.0f} blocks/s, {result.logs / result.seconds:.0f} logs/s); "
          f"history scripted in {market.history_seconds:.1f} s; {len(market.sent)} router swaps sent")


def test_every_block_state_equals_the_node(market, reference):
    path, _ = reference
    pools = _pool_rows(path)
    blocks = range(1, market.last_block + 1)
    node = _node_states(market, pools, blocks)
    ours = _dataset_states(path)
    checked = 0
    for (b, pid), want in node.items():
        if len(want) == 2 and want == (0, 0):  # not created / no liquidity yet
            assert (b, pid) not in ours
            continue
        assert ours.get((b, pid)) == want, f"block {b} pool {pid}: dataset {ours.get((b, pid))} != node {want}"
        checked += 1
    assert checked > 1000


def test_mid_range_start_bootstraps_from_the_node(market, reference, tmp_path):
    """Starting after the pools' creation: V2 reserves and V3 price/liquidity/ticks/positions come from eth_call
    and earlier Mint/Burn logs; the replay from there still matches the node at every block."""
    first = market.first_trade_block + 60
    out = tmp_path / "mid"
    res = ingest(ingest_config(market, out, first_block=first, factories=[], pools=market.pool_addresses()))
    assert res.replay_stats["v3_swap_mismatches"] == 0
    node = _node_states(market, _pool_rows(out), range(first, market.last_block + 1))
    ours = _dataset_states(out)
    assert all(ours[k] == v for k, v in node.items()), "mid-range ingest disagrees with the node"
    # and the ticks at a shared partition start equal the full ingest's
    ref = Dataset(reference[0])
    mid = Dataset(out)
    shared = [p for p in mid.partitions if p[0] in {q[0] for q in ref.partitions}]
    if shared:
        a = mid.read_partition("ticks", shared[0]).to_pylist()
        addr_mid = mid.pools.column("address").to_pylist()
        addr_ref = ref.pools.column("address").to_pylist()
        b = ref.read_partition("ticks", next(q for q in ref.partitions if q[0] == shared[0][0])).to_pylist()
        norm = lambda rows, addr: sorted((addr[r["pool_id"]], r["tick"], r["liquidity_net"], r["liquidity_gross"])
                                         for r in rows)
        assert norm(a, addr_mid) == norm(b, addr_ref)


def test_every_victim_is_the_sent_router_call(market, reference):
    path, _ = reference
    calls = pq.read_table(path / "router_calls").to_pylist()
    victims = Dataset(path).read("victims").to_pylist()
    # only router swaps of the traded blocks were sent as recorded; every one of them executed
    assert {c["tx_hash"] for c in calls} == set(market.sent)
    assert len(victims) == len(calls)
    pools = Dataset(path).pools.to_pylist()
    for c, v in zip(calls, victims):
        sent = market.sent[c["tx_hash"]]
        for key in ("protocol", "method", "exact_input", "path", "fees", "deadline", "recipient", "amount_in",
                    "amount_out_min", "amount_out", "amount_in_max"):
            got = c[key]
            got = int(got) if key.startswith("amount") and got is not None or key == "deadline" else got
            assert got == sent[key], f"{c['tx_hash']} {key}: decoded {got!r} != sent {sent[key]!r}"
        assert all(p >= 0 for p in c["pools"])
        assert v["tx_hash"] == c["tx_hash"] and v["pool_id"] == c["pools"][0]
        first = pools[c["pools"][0]]
        tokens = Dataset(path).tokens.column("address").to_pylist()
        assert v["zero_for_one"] == (tokens[first["token0"]] == sent["path"][0])
        limit_in = sent["amount_in"] if sent["exact_input"] else sent["amount_in_max"]
        limit_out = sent["amount_out_min"] if sent["exact_input"] else sent["amount_out"]
        assert (int(v["amount_in"]), int(v["amount_out_min"])) == (limit_in, limit_out)


def test_cli_ingest_then_backtest(market, reference, tmp_path):
    """`gpubt ingest` as a user types it, then a backtest of what it wrote (V2 and V3 pools in the dataset)."""
    out = tmp_path / "cli"
    args = ("ingest", f"rpc_url={market.node.url}", "chain_id=1337", "first_block=1",
            f"last_block={market.last_block}", f"factories=[{','.join(market.factories())}]",
            f"weth={market.c['weth'].address}", f"out={out}", "partition_blocks=50", "confirmations=0", "eth_usd=2000",
            "progress=false")
    proc = gpubt(*args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ingested blocks" in proc.stdout
    assert_same_dataset(out, reference[0])
    again = gpubt(*args, timeout=300)  # idempotent
    assert again.returncode == 0 and "nothing to do" in again.stdout
    res = run_inprocess("data=parquet", f"data.path={out}", "backend=cpu", f"out_dir={tmp_path / 'run'}",
                        "progress=false").out_dir
    summary = json.loads((res / "summary.json").read_text())
    assert (summary["run"]["first_block"], summary["run"]["last_block"]) == (1, market.last_block)
    trades = pq.read_table(res / "trades.parquet")   # every attempt; the metrics count those that won the auction
    assert summary["competition"]["attempted"] == trades.num_rows > 0
    assert summary["metrics"]["trades"] == pc.sum(trades.column("won")).as_py()


def test_mev_strategies_run_on_the_ingested_dataset(market, reference, tmp_path):
    """The MEV suite is fed by ingested data too: sandwich/JIT screen the decoded router victims, CEX-DEX the V2/V3
    pools against the ingested WETH price, on cpu; exact trades or none, never a crash."""
    res = run_inprocess("data=parquet", f"data.path={reference[0]}", "backend=cpu", f"out_dir={tmp_path / 'mev'}",
                        "progress=false", "report.enabled=false", "strategy=[arbitrage,sandwich,jit,cexdex]",
                        "thresholds.min_profit_eth=0").out_dir
    summary = json.loads((res / "summary.json").read_text())
    assert summary["run"]["strategies"] == ["arbitrage", "sandwich", "jit", "cexdex"]
    trades = pq.read_table(res / "trades.parquet").to_pylist()
    # threshold 0: only exact winners are taken (CEX-DEX is marked out later on the reference and may lose)
    assert all(int(t["net_profit_wei"]) > 0 for t in trades if t["strategy"] in ("arbitrage", "sandwich"))
    assert summary["competition"]["attempted"] == len(trades)    # every attempt; the metrics count the won ones
    assert summary["metrics"]["trades"] == sum(t["won"] for t in trades)
