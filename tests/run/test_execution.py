"""The ordered exact pass (gpubt/run/execution.py): our trades fork the pools they touch, history re-executes on the
forks, conflicts across strategies are resolved. Each check recomputes the market independently of the loop, with
gpubt.exact.v2's integer math on hand-built markets."""
from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.data.store import Dataset
from gpubt.exact.v2 import _mobius, get_amount_out, path_amount_out
from gpubt.kernels.cycles import KEY_TX_BITS
from gpubt.market.auction import BuilderAuction
from gpubt.market.fork import ForkedPool
from gpubt.run.execution import Execution, Walker
from gpubt.run.loop import Backtest
from tests.conftest import E18, write_market
from tests.market import GAS, arbitrage, pack

# WETH/USDC, USDC/LINK, WETH/LINK: the cycle WETH → USDC → LINK → WETH (and back)
TOKENS = [(0, "WETH", 18), (1, "USDC", 6), (2, "LINK", 18)]
POOLS = [(0, 0, 1), (1, 1, 2), (2, 0, 2)]
FIRST = 100
BASE_FEE = 20 * 10**9
MIN_PROFIT = 10**15  # 0.001 ETH


def market(initial: dict, n_blocks: int, txs: list, victims=(), labels=()) -> dict:
    """Tables of a V2 market; txs: (block offset, tx, [(pool, zero_for_one, amount_in or None: the previous
    swap's output)]) executed with getAmountOut; victims: (block offset, tx, pool, zfo, amount_in, amount_out_min);
    labels: (block offset, tx, pools, profit_raw) labeled arbitrages in WETH."""
    tokens = pa.Table.from_pylist([{"token_id": i, "address": f"0x{i:040x}", "symbol": s, "decimals": d,
                                    "is_hub": i < 2} for i, s, d in TOKENS], schema=schema.TOKENS)
    pools = pa.Table.from_pylist([{"pool_id": p, "address": f"0x{p + 100:040x}", "venue": "uniswap_v2",
                                   "protocol": "v2", "token0": a, "token1": b, "fee_ppm": 3000,
                                   "created_block": FIRST} for p, a, b in POOLS], schema=schema.POOLS)
    reserves = {p: list(r) for p, r in initial.items()}
    events, blocks, prices, log = [], [], [], 0
    for b in range(n_blocks):
        block = FIRST + b
        blocks.append({"block_number": block, "timestamp": 1_700_000_000 + 12 * b, "base_fee_wei": BASE_FEE,
                       "gas_used": 15_000_000, "gas_limit": 30_000_000})
        prices += [{"block_number": block, "token_id": t, "price_usd": usd}
                   for t, usd in ((0, 2000.0), (1, 1.0), (2, 13.0))]
        for off, tx, swaps in txs:
            if off != b:
                continue
            out = None
            for pool, zfo, amount_in in swaps:
                amount_in = out if amount_in is None else amount_in
                out = apply_swaps(reserves, [(pool, zfo, amount_in)])
                events.append({"block_number": block, "tx_index": tx, "log_index": log, "pool_id": pool,
                               "kind": "swap", "amount0_in": amount_in if zfo else 0,
                               "amount1_in": 0 if zfo else amount_in, "amount0_out": 0 if zfo else out,
                               "amount1_out": out if zfo else 0, "reserve0": reserves[pool][0],
                               "reserve1": reserves[pool][1], "tx_hash": f"0x{block:032x}{tx:032x}",
                               "sender": "0x" + "ab" * 20})
                log += 1
    return {
        "tokens": tokens, "pools": pools,
        "blocks": pa.Table.from_pylist(blocks, schema=schema.BLOCKS),
        "events": pa.Table.from_pylist(events, schema=schema.EVENTS),
        "snapshots": pa.Table.from_pylist([{"block_number": FIRST, "pool_id": p, "reserve0": r[0], "reserve1": r[1]}
                                           for p, r in initial.items()], schema=schema.SNAPSHOTS),
        "prices": pa.Table.from_pylist(prices, schema=schema.PRICES),
        "victims": pa.Table.from_pylist([
            {"block_number": FIRST + b, "tx_index": tx, "tx_hash": f"0x{FIRST + b:032x}{tx:032x}", "pool_id": p,
             "zero_for_one": z, "amount_in": a, "amount_out_min": m, "exact_output": False}
            for b, tx, p, z, a, m in victims], schema=schema.VICTIMS),
        "labels": pa.Table.from_pylist([
            {"block_number": FIRST + b, "tx_index": tx, "tx_hash": f"0x{FIRST + b:032x}{tx:032x}",
             "kind": "arbitrage", "searcher": "rival", "pools": pools_, "profit_token": 0, "profit_raw": profit,
             "gas_used": 200_000} for b, tx, pools_, profit in labels], schema=schema.LABELS),
    }


def run(ds, mode: str, batch_blocks: int = 10, **execution):
    strategy = arbitrage(ds, min_profit_wei=MIN_PROFIT)
    bt = Backtest(ds, strategy.backend, [strategy], GAS, batch_blocks, progress=False,
                  execution=Execution(mode, ds, [strategy], **execution)).run()
    return bt, bt.trades().to_pylist()


# ------------------------------------------------------------------------------------- a mispricing nobody closes
PLANTED = {0: (1_000 * E18, 2_100_000 * 10**6),        # WETH at 2,100 USDC here, 2,000 elsewhere
           1: (600_000 * 10**6, 46_153 * E18), 2: (300 * E18, 46_153 * E18)}
NOISE_BLOCKS = 50


def planted_market(noise: float = 0.005) -> dict:
    """50 blocks in which nobody closes pool 0's mispricing while a user trades the cycle's other pools every
    block (`noise` of the pool's input reserve, alternating directions: each swap moves the cycle's price a
    little, so it re-creates a small opportunity or none)."""
    txs = []
    for b in range(1, NOISE_BLOCKS + 1):
        pool = 1 if b % 2 else 2
        zfo = (b // 2) % 2 == 0
        amount = int((PLANTED[pool][0] if zfo else PLANTED[pool][1]) * noise)
        txs.append((b, 0, [(pool, zfo, amount)]))
    # the users' limits are on record and loose: every swap re-executes (reverts have their own test)
    victims = [(b, tx, p, z, a, 1) for b, tx, ((p, z, a),) in txs]
    return market(PLANTED, NOISE_BLOCKS + 1, txs, victims)


def best_cycle(reserves: dict):
    """Independently of gpubt's search: (gross, amount_in) of the best integer input of either direction of the
    cycle, searched around the real-number optimum of the Möbius composition, and the real-number bound on the
    gross profit no integer input can beat."""
    best, bound = (0, 0), 0
    for pools, zfos in (([0, 1, 2], [True, True, False]), ([2, 1, 0], [True, False, False])):
        r_in = [reserves[p][0] if z else reserves[p][1] for p, z in zip(pools, zfos)]
        r_out = [reserves[p][1] if z else reserves[p][0] for p, z in zip(pools, zfos)]
        k, m, n = _mobius(r_in, r_out, [3000] * 3)
        if k <= m:
            continue  # no profit at any input
        x_star = (math.isqrt(k * m) - m) // n
        # the real-number maximum of K·x / (M + N·x) − x is (√K − √M)² / N; isqrt rounds √(KM) down: an upper bound
        bound = max(bound, (k + m - 2 * math.isqrt(k * m)) // n + 1)
        step = max(1, x_star // 10**9)
        for x in range(max(1, x_star - 200 * step), x_star + 200 * step, step):
            gross = path_amount_out(x, r_in, r_out, [3000] * 3) - x
            best = max(best, (gross, x))
    return best, bound


def apply_swaps(reserves: dict, swaps) -> int:
    out = None
    for pool, zfo, amount in swaps:
        amount = out if amount is None else amount
        r0, r1 = reserves[pool]
        out = get_amount_out(amount, r0 if zfo else r1, r1 if zfo else r0)
        reserves[pool] = [r0 + amount, r1 - out] if zfo else [r0 - out, r1 + amount]
    return out


@pytest.mark.parametrize("noise", [0.005, 0.01])
def test_a_persistent_mispricing_is_captured_once(noise, tmp_path):
    """Counterfactual takes the planted mispricing once, then at each later point exactly what the noise
    re-created on the state our trades left (0.5 % noise: nothing worth the gas; 1 %: small re-creations);
    replay sells the planted mispricing again at every point."""
    ds = Dataset(write_market(tmp_path / "planted", planted_market(noise), FIRST, NOISE_BLOCKS + 1))
    _, replay = run(ds, "replay")
    bt, ours = run(ds, "counterfactual")
    gas_wei = int(GAS.units(3, 0)) * (BASE_FEE + GAS.priority_fee_wei)
    first_gross = int(replay[0]["gross_profit_wei"])
    if noise == 0.005:  # replay sells the same mispricing at every point that re-evaluates the cycle
        assert len(replay) == NOISE_BLOCKS + 1 and len(ours) == 1
        assert all(int(t["gross_profit_wei"]) > first_gross // 5 for t in replay)
    else:
        assert 10 < len(ours) < len(replay)

    # counterfactual: the market walked independently, our trades applied where they were sent
    reserves = {p: list(r) for p, r in PLANTED.items()}
    events = ds.read("events").to_pylist()
    by_point = {}
    for t in ours:
        by_point.setdefault((t["block_number"], t["tx_index"]), []).append(t)
    points = [(FIRST, -1)] + [(e["block_number"], e["tx_index"]) for e in events]
    for block, tx in points:
        if tx >= 0:
            e = next(e for e in events if (e["block_number"], e["tx_index"]) == (block, tx))
            zfo = int(e["amount0_in"]) > 0
            apply_swaps(reserves, [(e["pool_id"], zfo, int(e["amount0_in"] if zfo else e["amount1_in"]))])
        (gross, x), bound = best_cycle(reserves)
        sent = by_point.pop((block, tx), [])
        assert len(sent) <= 1
        if not sent:  # nothing left worth the gas and the threshold
            assert gross - gas_wei <= MIN_PROFIT, (block, tx, gross)
            continue
        t = sent[0]
        assert int(t["gross_profit_wei"]) >= gross  # gpubt's proven maximum is at least the independent search's
        assert int(t["gross_profit_wei"]) <= bound  # and no more than the real-number optimum of *this* state
        pools, zfos = t["pools"], t["zero_for_one"]
        out = apply_swaps(reserves, [(pools[0], zfos[0], int(t["amount_in"])), (pools[1], zfos[1], None),
                                     (pools[2], zfos[2], None)])
        assert out == int(t["amount_out"])
    assert not by_point
    assert int(ours[0]["gross_profit_wei"]) == first_gross  # the top of the run: the same trade either way
    e = bt.execution.summary(bt.last_block)
    assert e["reexecuted_txs"] == NOISE_BLOCKS and e["reverted_user_swaps"] == 0
    assert e["executed_trades"] == len(ours) and e["diverged_pools"] == 3


def test_replay_keeps_todays_semantics(tmp_path):
    """execution=replay: every point sees history; nothing forks, nothing re-executes."""
    ds = Dataset(write_market(tmp_path / "planted", planted_market(), FIRST, NOISE_BLOCKS + 1))
    bt, trades = run(ds, "replay")
    plain = Backtest(ds, bt.backend, [arbitrage(ds, min_profit_wei=MIN_PROFIT)], GAS, 10, progress=False).run()
    assert trades == plain.trades().to_pylist()  # a Backtest built without an execution replays
    e = bt.execution.summary(bt.last_block)
    assert e["reexecuted_txs"] == e["bundles"] == 0 and "diverged_pools" not in e


def test_results_do_not_depend_on_batch_size(tmp_path):
    """Forks carried across batches (the projection) and inside one (the ordered pass) give the same trades."""
    ds = Dataset(write_market(tmp_path / "planted", planted_market(0.01), FIRST, NOISE_BLOCKS + 1))
    _, one = run(ds, "counterfactual", batch_blocks=NOISE_BLOCKS + 1)
    _, many = run(ds, "counterfactual", batch_blocks=7)
    assert one == many and len(one) > 1


CLOSED = 10   # the first blocks' builders take no bundles


@pytest.mark.parametrize("closed", [True, False])
def test_a_bundle_that_loses_the_auction_leaves_the_market_alone(closed, tmp_path):
    """A bundle that loses the builder's auction (here: sent in a block whose builder takes no bundles; no rival
    bids, so elsewhere it wins) is attempted and changes nothing: the mispricing stays, so every point of those
    blocks attempts it again on history's state (replay's trades, to the wei), and the first open block captures
    it once. Without the auction the first point captures it at once."""
    ds = Dataset(write_market(tmp_path / "planted", planted_market(), FIRST, NOISE_BLOCKS + 1))
    _, replay = run(ds, "replay")
    auction = BuilderAuction({"enabled": True, "scenarios": 4, "searchers": {"count": 0}})
    shut = range(FIRST, FIRST + CLOSED) if closed else ()
    bt, ours = run(ds, "counterfactual", auction=auction, closed_blocks=shut)
    e = bt.execution.summary(bt.last_block)
    # the top of the first block, then after each block's noise swap
    assert sum(t["block_number"] < FIRST + CLOSED for t in replay) == CLOSED
    attempts = CLOSED if closed else 0
    assert ours[:attempts + 1] == replay[:attempts + 1]
    assert e["lost_bundles"] == attempts and e["executed_trades"] == len(ours)
    assert [auction.lands(t, frozenset(shut)) for t in ours] == [False] * attempts + [True] * (len(ours) - attempts)
    # after the capture only what the noise re-created on our state: less than replay sells again at that point
    history = {(t["block_number"], t["tx_index"]): int(t["gross_profit_wei"]) for t in replay}
    later = ours[attempts + 1:]
    assert len(later) < len(replay) - attempts - 1
    assert all(int(t["gross_profit_wei"]) < history[t["block_number"], t["tx_index"]] for t in later)


# ------------------------------------------------------------------------------------- a rival's bundle pre-empted
BALANCED = {0: (1_000 * E18, 2_000_000 * 10**6), 1: (600_000 * 10**6, 46_153 * E18),
            2: (300 * E18, 46_153 * E18)}


def rival_market(rival_in: int):
    """Block 100: tx 0 a user's big WETH → USDC swap on pool 0 (limit on record); tx 1 a labeled rival
    arbitrage closing it (WETH → LINK → USDC → WETH, chained, `rival_in` WETH); then quiet blocks."""
    reserves = {p: list(r) for p, r in BALANCED.items()}
    apply_swaps(reserves, [(0, True, 80 * E18)])
    user_out = get_amount_out(80 * E18, BALANCED[0][0], BALANCED[0][1])
    rival = [(2, True, rival_in), (1, False, None), (0, False, None)]
    profit = apply_swaps(reserves, rival) - rival_in
    assert profit > 0
    txs = [(0, 0, [(0, True, 80 * E18)]), (0, 1, rival)]
    return market(BALANCED, 4, txs, victims=[(0, 0, 0, True, 80 * E18, user_out)],
                  labels=[(0, 1, [2, 1, 0], profit)])


def test_our_back_run_pre_empts_the_labeled_rival(tmp_path):
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    bt, ours = run(ds, "counterfactual")
    assert len(ours) == 1 and (ours[0]["block_number"], ours[0]["tx_index"]) == (FIRST, 0)
    e = bt.execution.summary(bt.last_block)
    assert e["preempted_rivals"] == 1 and e["reexecuted_txs"] == 1
    # the state after the rival's (reverted) tx is ours: the user's swap, then our trade, nothing else
    reserves = {p: list(r) for p, r in BALANCED.items()}
    apply_swaps(reserves, [(0, True, 80 * E18)])
    t = ours[0]
    apply_swaps(reserves, [(p, z, int(t["amount_in"]) if h == 0 else None)
                           for h, (p, z) in enumerate(zip(t["pools"], t["zero_for_one"]))])
    for pool, (r0, r1) in reserves.items():
        assert (bt.state.reserve0[pool], bt.state.reserve1[pool]) == (r0, r1)
    assert bt.execution.forked == {0, 1, 2}
    # the rival's label still validates our trade (same block, the next tx, sharing its pools)
    from gpubt.analysis.validate import Validator
    trades = bt.trades()
    matches, *_ = Validator(min_gap=1, max_gap=1).add(trades, ds.read("labels"), ds.read("events"), final=True)
    assert matches.num_rows == 1
    # replay: the rival still lands (history), and we are credited with the same trade
    bt_replay, replay = run(ds, "replay")
    assert replay[0]["net_profit_wei"] == ours[0]["net_profit_wei"]
    assert bt_replay.execution.summary(bt.last_block)["preempted_rivals"] == 0


def walker_for(ds, victims=True, labels=True, slippage_bps=50):
    batch = pack(ds, FIRST, FIRST + 3)
    history = Execution("counterfactual", ds, []).history(
        batch, ds.read("events"), ds.read("victims") if victims else None, ds.read("labels") if labels else None)
    walker = Walker(batch, history, slippage_bps, {}, {})
    return batch, walker, walker.outcomes


def test_a_rival_that_still_pays_lands_on_our_state(tmp_path):
    """A labeled rival whose bundle still pays on the forked state re-executes with its historical input, each hop
    taking the previous hop's new output: the state after it is the fork's plus its swaps."""
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    batch, walker, counts = walker_for(ds)
    fork = ForkedPool.at(batch, 1, 0, 3000, 0)  # the rival's middle pool (USDC/LINK) at key 0: after tx 0
    fork.swap_in(True, 20_000 * 10**6)          # someone bought LINK there: its LINK → USDC hop pays more
    walker.forks[1] = fork
    expected = {p: list(ForkedPool.at(batch, p, 0, 3000, 0).reserves()) for p in (0, 2)}
    expected[1] = list(fork.reserves())
    walker.walk_tx(1)  # tx group 1: the rival's three swaps
    rival_in = int(ds.read("events").to_pylist()[1]["amount0_in"])
    # each hop takes the previous hop's new output (a chain), the first its historical input
    apply_swaps(expected, [(2, True, rival_in), (1, False, None), (0, False, None)])
    assert counts == {1: "ok"}
    for pool in (0, 1):
        assert walker.forks[pool].reserves() == tuple(expected[pool])
    # its first hop met history's state: the same output as history, no fork
    assert 2 not in walker.forks and ForkedPool.at(batch, 2, 1, 3000, 0).reserves() == tuple(expected[2])


# ------------------------------------------------------------------------------------------ user limits
def test_a_user_swap_reverts_when_its_limit_fails_and_leaves_the_pool(tmp_path):
    ds = Dataset(write_market(tmp_path / "m", rival_market(15 * E18), FIRST, 4))
    batch, walker, counts = walker_for(ds)
    fork = ForkedPool.at(batch, 0, -1, 3000, 0)
    assert fork.swap_in(True, E18) is not None  # someone sold 1 WETH first: the user's exact limit now fails
    walker.forks[0] = fork
    walker.walk_tx(0)
    assert counts == {0: "user"}
    assert walker.forks[0].reserves() == fork.reserves()  # the reverted swap left the pool alone


def test_default_slippage_applies_to_swaps_without_a_limit_on_record(tmp_path):
    tables = rival_market(15 * E18)
    tables["victims"] = schema.VICTIMS.empty_table()
    ds = Dataset(write_market(tmp_path / "m", tables, FIRST, 4))
    hist_out = int(ds.read("events").to_pylist()[0]["amount1_out"])
    for moved, slippage_bps, reverts in ((E18 // 10, 50, False), (30 * E18, 50, True), (30 * E18, 9_000, False)):
        batch, walker, counts = walker_for(ds, victims=False, labels=False, slippage_bps=slippage_bps)
        fork = ForkedPool.at(batch, 0, -1, 3000, 0)
        fork.swap_in(True, moved)
        walker.forks[0] = fork
        walker.walk_tx(0)
        assert counts == {0: "user" if reverts else "ok"}, (moved, slippage_bps)
        out = get_amount_out(80 * E18, *fork.reserves())
        assert (out * 10_000 < hist_out * (10_000 - slippage_bps)) == reverts
        if not reverts:  # re-executed with its historical input on the fork
            assert walker.forks[0].reserves() == (fork.r0 + 80 * E18, fork.r1 - out)


# ------------------------------------------------------------------------------------------ the fork's exact math
def test_forked_pool_matches_the_exact_math():
    rng = random.Random(3)
    for _ in range(300):
        r0, r1 = rng.randrange(10**6, 10**30), rng.randrange(10**6, 10**30)
        fork = ForkedPool(0, False, 3000, r0, r1)
        zfo = rng.random() < 0.5
        amount = rng.randrange(1, (r0 if zfo else r1) // 10)
        r_in, r_out = (r0, r1) if zfo else (r1, r0)
        out = fork.swap_in(zfo, amount)
        assert out == get_amount_out(amount, r_in, r_out)
        back = ForkedPool(0, False, 3000, r0, r1)
        if out > 0:
            from gpubt.exact.v2 import get_amount_in
            paid = back.swap_out(zfo, out)
            assert paid == get_amount_in(out, r_in, r_out) and paid <= amount
    # a swap the pool cannot take leaves it alone
    fork = ForkedPool(0, False, 3000, 10**18, 10**18)
    assert fork.swap_out(True, 10**18) is None and fork.reserves() == (10**18, 10**18)
    # V2 mints and burns move the same share of the pool
    fork = ForkedPool(0, False, 3000, 10**18, 4 * 10**18)
    assert fork.v2_share(1, 10, add=True) == (10**17, 4 * 10**17) and fork.reserves() == (11 * 10**17, 44 * 10**17)
    assert fork.v2_share(1, 11, add=False) == (10**17, 4 * 10**17) and fork.reserves() == (10**18, 4 * 10**18)


def test_keys_and_tx_groups_follow_the_events(tmp_path):
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    batch = pack(ds, FIRST, FIRST + 3)
    history = Execution("counterfactual", ds, []).history(batch, ds.read("events"), None, None)
    assert history.tx_key.tolist() == [0, 1]  # block offset 0, txs 0 and 1
    assert history.tx_start.tolist() == [0, 1, 4]  # the rival's tx holds three swaps
    assert (history.tx_key >> KEY_TX_BITS).tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["counterfactual", "replay"])
def test_execution_modes_are_checked(mode, tmp_path):
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    Execution(mode, ds, [])
    with pytest.raises(ValueError, match="execution='both'"):
        Execution("both", ds, [])
    with pytest.raises(ValueError, match="default_slippage_bps"):
        Execution(mode, ds, [], slippage_bps=10_000)


# ------------------------------------------------------------------------------------------ victims in our bundles
def victim_market(v2_limit_bps: int, exact_out: bool = False):
    """Block 100: two users sell WETH on pool 0 (tx 0: 20 WETH, 1 % slippage; tx 1: 10 WETH, `v2_limit_bps`
    slippage, or with `exact_out` an exact-output swap for 15,000 USDC paying at most 2 % more than it did)."""
    r0, r1 = BALANCED[0]
    out1 = get_amount_out(20 * E18, r0, r1)
    r0, r1 = r0 + 20 * E18, r1 - out1
    if exact_out:
        from gpubt.exact.v2 import get_amount_in

        paid = get_amount_in(15_000 * 10**6, r0, r1)
        second = (0, 1, 0, True, paid * 102 // 100, 15_000 * 10**6, True)
        swaps = [(0, True, paid)]
    else:
        out2 = get_amount_out(10 * E18, r0, r1)
        second = (0, 1, 0, True, 10 * E18, out2 * (10_000 - v2_limit_bps) // 10_000, False)
        swaps = [(0, True, 10 * E18)]
    tables = market(BALANCED, 3, [(0, 0, [(0, True, 20 * E18)]), (0, 1, swaps)])
    tables["victims"] = pa.Table.from_pylist([
        {"block_number": FIRST + b, "tx_index": tx, "tx_hash": f"0x{FIRST + b:032x}{tx:032x}", "pool_id": p,
         "zero_for_one": z, "amount_in": a, "amount_out_min": m, "exact_output": eo}
        for b, tx, p, z, a, m, eo in [(0, 0, 0, True, 20 * E18, out1 * 99 // 100, False), second]],
        schema=schema.VICTIMS)
    return tables


def test_a_victim_whose_limit_fails_inside_our_bundle_reverts(tmp_path):
    """Our bundle [front-run, victim 1, victim 2, back-run] where the front-run pushes victim 2 past its limit (the
    strategy priced it reverted: paid and received 0): the fork executes victim 1 as priced and checks it, leaves
    the pool alone for victim 2, and the back-run's output is the one computed with victim 2 skipped; a victim that
    does not get what the bundle was priced with raises ExecutionMismatch."""
    ds = Dataset(write_market(tmp_path / "v", victim_market(v2_limit_bps=1), FIRST, 3))
    batch = pack(ds, FIRST, FIRST + 2)
    history = Execution("counterfactual", ds, []).history(batch, ds.read("events"), ds.read("victims"), None)
    counts = dict.fromkeys(("bundles", "victims_in_bundles", "reverted_victims_in_bundles"), 0)
    walker = Walker(batch, history, 50, counts, {})
    front = 5 * E18
    r0, r1 = BALANCED[0]
    reserves = {0: [r0, r1]}
    front_out = apply_swaps(reserves, [(0, True, front)])
    v1_out = apply_swaps(reserves, [(0, True, 20 * E18)])   # victim 1 still gets > 99 % of its quote
    back_out = apply_swaps(reserves, [(0, False, front_out)])  # victim 2 (0.01 % slippage) is skipped
    walker.execute([("route", [0], [True], front, front_out), ("victim", 0, 0, True, False, 20 * E18, v1_out),
                    ("victim", 0, 1, True, False, 0, 0), ("route", [0], [False], front_out, back_out)], key=-1)
    assert counts == {"bundles": 1, "victims_in_bundles": 2, "reverted_victims_in_bundles": 1}
    assert walker.forks[0].reserves() == tuple(reserves[0])
    assert walker.consumed == {(0, 0), (1, 0)}  # history's rows of both victims are the bundle's now
    walker.walk_tx(1)  # the victim's own row is not executed again
    assert walker.forks[0].reserves() == tuple(reserves[0])
    from gpubt.run.execution import ExecutionMismatch
    with pytest.raises(ExecutionMismatch, match="victim"):
        walker.execute([("victim", 0, 0, True, False, 20 * E18, v1_out)], key=-1)  # a state it was not priced on


@pytest.mark.parametrize("exact_out", [False, True])
def test_sandwiches_execute_as_priced(exact_out, tmp_path):
    """The sandwich strategy under counterfactual: every bundle it sends re-executes to the wei on the fork (a
    mismatch raises ExecutionMismatch), an exact-output victim pays getAmountIn(amountOut) on the state after our
    front-run, and the market state at the end is the one walked independently here."""
    from gpubt.exact.v2 import get_amount_in
    from gpubt.strategies.sandwich import SandwichStrategy

    ds = Dataset(write_market(tmp_path / "v", victim_market(v2_limit_bps=100, exact_out=exact_out), FIRST, 3))
    strategy = SandwichStrategy({"capital_eth": 100.0}, ds, arbitrage(ds).backend, GAS, 0)
    bt = Backtest(ds, strategy.backend, [strategy], GAS, 3, progress=False,
                  execution=Execution("counterfactual", ds, [strategy])).run()
    trades = bt.trades().to_pylist()
    assert len(trades) == 1
    d = __import__("json").loads(trades[0]["detail"])
    reserves = {0: list(BALANCED[0])}
    front_out = apply_swaps(reserves, [(0, True, int(d["front_run_in"]))])
    assert front_out == int(d["front_run_out"])
    victims = ds.read("victims").to_pylist()
    in_bundle = {v["tx_index"] for v in d["victims"]}
    assert in_bundle == {0, 1}  # both users, one bundle (loose limits)
    for v, row in zip(victims, ds.read("events").to_pylist()):
        if v["tx_index"] not in in_bundle:
            continue
        detail = next(x for x in d["victims"] if x["tx_index"] == v["tx_index"])
        r0, r1 = reserves[0]
        if v["exact_output"]:
            paid = get_amount_in(int(v["amount_out_min"]), r0, r1)
            assert not detail["reverted"] and int(detail["amount_in"]) == paid <= int(v["amount_in"])
            reserves[0] = [r0 + paid, r1 - int(v["amount_out_min"])]
        else:
            out = get_amount_out(int(v["amount_in"]), r0, r1)
            assert detail["reverted"] == (out < int(v["amount_out_min"]))
            if not detail["reverted"]:
                reserves[0] = [r0 + int(v["amount_in"]), r1 - out]
    assert apply_swaps(reserves, [(0, False, front_out)]) == int(d["back_run_out"])
    assert (bt.state.reserve0[0], bt.state.reserve1[0]) == tuple(reserves[0])  # the pool as our bundle left it
    e = bt.execution.summary(bt.last_block)
    assert e["victims_in_bundles"] == 2 and e["reexecuted_txs"] == 0  # the victims' own txs are the bundle's
    assert int(trades[0]["gross_profit_raw"]) == int(d["back_run_out"]) - int(d["front_run_in"])


# ------------------------------------------------------------------------------------------ conflicts at a point
class Proposer:
    """A strategy stand-in: proposes hand-made trades (one route each) and records what the pass did."""

    can_rescreen = False

    def __init__(self, name: str):
        from gpubt.strategies.base import STAT_KEYS, Strategy

        self.name, self.stats, self.min_profit_wei = name, dict.fromkeys(STAT_KEYS, 0), 0
        self.effects = lambda trade, batch: Strategy.effects(self, trade, batch)
        self.takes = lambda trade, screened, decision=None, count=True: Strategy.takes(self, trade, screened,
                                                                                       decision, count)
        self.sent, self.dropped_ = [], []

    def executed(self, trade):
        self.sent.append(trade)

    def dropped(self, trade):
        self.dropped_.append(trade)


def proposal(batch, pool: int, zfo: bool, amount: int, net: int, victims=(), reprice=None) -> dict:
    r0, r1 = batch.exact_reserve(pool, 0)
    out = get_amount_out(amount, r0 if zfo else r1, r1 if zfo else r0)
    trade = {"block_number": FIRST, "tx_index": 0, "path_id": pool, "pools": [pool], "zero_for_one": [zfo],
             "amount_in": amount, "amount_out": out, "net_profit_wei": net, "screen_net_profit_wei": float(net),
             "_victims": list(victims)}
    if reprice is not None:
        trade["_reprice"] = reprice
    return trade


def test_one_bundle_per_victim_and_pool_state_at_a_point(tmp_path):
    """At one point the bundles are sent best first across strategies: one claiming a victim already claimed is
    dropped; one touching a pool a bundle changed is priced again on the changed state (or dropped when it has
    no way to be)."""
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    batch = pack(ds, FIRST, FIRST + 3)
    a, b, c = Proposer("a"), Proposer("b"), Proposer("c")
    seen = []

    def reprice():  # priced on the state the batch shows now: pool 0 after the better bundle's swap
        r0, r1 = batch.exact_reserve(0, 0)
        seen.append((r0, r1))
        return proposal(batch, 0, False, 10**9, 7), None

    proposals = {
        "a": [proposal(batch, 2, True, E18, 10, victims=[1]), proposal(batch, 0, True, E18, 30)],
        "b": [proposal(batch, 1, True, 10**9, 20, victims=[1]), proposal(batch, 0, True, 2 * E18, 5)],
        "c": [proposal(batch, 0, False, 10**9, 4, reprice=reprice)],
    }
    execution = Execution("counterfactual", ds, [a, b, c])
    execution.project(batch, ds.read("events").slice(0, 0), None, None)
    sent = execution.execute(batch, proposals)
    assert [t["net_profit_wei"] for t in sent["a"]] == [30]      # a's pool-0 bundle (best); its victim-1 one lost
    assert [t["net_profit_wei"] for t in sent["b"]] == [20]      # b's victim-1 bundle (better than a's)
    assert [t["net_profit_wei"] for t in a.dropped_] == [10]     # the same victim, worse
    assert [t["net_profit_wei"] for t in b.dropped_] == [5]      # pool 0 changed at this point, no way to re-price
    assert [t["net_profit_wei"] for t in sent["c"]] == [7] and not c.dropped_  # re-priced on the changed pool
    r0, r1 = BALANCED[0][0] + 80 * E18, BALANCED[0][1] - get_amount_out(80 * E18, *BALANCED[0])  # after tx 0
    assert seen == [(r0 + E18, r1 - get_amount_out(E18, r0, r1))]
    counts = execution.counts
    assert counts["conflicts"] == 2 and counts["repriced"] == 1 and counts["bundles"] == 3


def test_replay_sends_every_proposal(tmp_path):
    ds = Dataset(write_market(tmp_path / "rival", rival_market(15 * E18), FIRST, 4))
    batch = pack(ds, FIRST, FIRST + 3)
    a, b = Proposer("a"), Proposer("b")
    proposals = {"a": [proposal(batch, 0, True, E18, 30, victims=[1])],
                 "b": [proposal(batch, 0, True, E18, 20, victims=[1])]}
    execution = Execution("replay", ds, [a, b])
    execution.project(batch, ds.read("events"), None, None)
    sent = execution.execute(batch, proposals)
    assert len(sent["a"]) == len(sent["b"]) == 1 and "_victims" not in sent["a"][0]


def test_a_forked_v3_pool_is_the_exact_v3_pool():
    """A V3 fork swaps, mints and burns with gpubt.exact.v3.V3Pool (itself checked against the bytecode in
    tests/evm/test_v3_pool.py); a copy shares the tick table until it mints or burns (the original is unchanged)."""
    from gpubt.exact import v3 as exact_v3

    pool = exact_v3.V3Pool(fee=3000)
    pool.initialize(exact_v3.get_sqrt_ratio_at_tick(600))
    pool.mint(-1200, 1200, 10**21)
    pool.mint(0, 3000, 4 * 10**20)
    reference = exact_v3.V3Pool(fee=3000)
    reference.initialize(exact_v3.get_sqrt_ratio_at_tick(600))
    reference.mint(-1200, 1200, 10**21)
    reference.mint(0, 3000, 4 * 10**20)
    fork = ForkedPool(0, True, 3000, 0, 0, pool)
    twin = fork.copy()
    for zfo, amount in ((True, 3 * 10**19), (False, 10**20), (True, 7 * 10**19)):
        o = reference.swap_outcome(zfo, amount, exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1)
        assert fork.swap_in(zfo, amount) == -(o.amount1 if zfo else o.amount0)
        assert fork.state_key() == (reference.sqrt_price_x96, reference.liquidity, reference.tick)
    o = reference.swap_outcome(False, -5 * 10**19, exact_v3.MAX_SQRT_RATIO - 1)
    assert fork.swap_out(False, 5 * 10**19) == o.amount1
    assert fork.v3_modify(-600, 600, 10**20) == reference.mint(-600, 600, 10**20)
    assert fork.v3_modify(-600, 600, -10**20) == reference.burn(-600, 600, 10**20)  # owed back
    assert fork.state_key() == (reference.sqrt_price_x96, reference.liquidity, reference.tick)
    assert -600 not in twin.v3.ticks and fork.edits == 2 and twin.edits == 0  # the copy kept its own table
    assert fork.swap_in(True, 10**40) is None and fork.state_key() == (reference.sqrt_price_x96,
                                                                     reference.liquidity, reference.tick)


# ------------------------------------------------------------------------------------------ repeated captures
def test_a_re_trade_earns_what_history_re_created_since_our_trade(tiny_cache):
    """On the tiny market (counterfactual): for each arbitrage trade re-taking a cycle we traded, with no labeled
    arbitrage on its pools in between (a repeated capture), the state it was priced on is recomputed here from our
    first trade's (its `detail`), that trade's swaps, and the historical events between the two on the cycle's
    pools, re-executed with their limits independently of the loop: it is the state the second trade saw, and its
    profit is that state's."""
    import json
    from collections import defaultdict

    from gpubt.analysis.repeats import repeated_captures
    from gpubt.exact.v2 import get_amount_in
    from tests.conftest import TINY

    ds = Dataset(tiny_cache / TINY)
    strategy = arbitrage(ds, min_profit_wei=0)  # every re-creation worth its gas: many repeated captures
    bt = Backtest(ds, strategy.backend, [strategy], GAS, 50, progress=False,
                  execution=Execution("counterfactual", ds, [strategy])).run()
    trades = bt.trades().to_pylist()
    labels = ds.read("labels")
    assert repeated_captures(bt.trades(), labels)["trades"] > 0
    key = lambda b, t: (b << KEY_TX_BITS) + t  # noqa: E731
    events = ds.read("events").to_pylist()
    by_tx = defaultdict(list)
    for e in events:
        by_tx[(e["block_number"], e["tx_index"])].append(e)
    victims = {(v["block_number"], v["tx_index"], v["pool_id"]): v for v in ds.read("victims").to_pylist()}
    label_at = {(lb["block_number"], lb["tx_index"]): lb for lb in labels.to_pylist()}
    pools_info = {p["pool_id"]: p for p in ds.pools.to_pylist()}
    checked = 0
    last = {}
    for b in trades:
        a = last.get(b["path_id"])
        last[b["path_id"]] = b
        if a is None:
            continue
        ka, kb, cycle = key(a["block_number"], a["tx_index"]), key(b["block_number"], b["tx_index"]), set(a["pools"])
        between = [t for (blk, tx), t in sorted(by_tx.items()) if ka < key(blk, tx) <= kb
                   and cycle & {e["pool_id"] for e in t}]
        closers = [lb for lb in labels.to_pylist() if lb["kind"] == "arbitrage" and ka < key(lb["block_number"],
                   lb["tx_index"]) <= kb and cycle & set(lb["pools"])]
        i_a, i_b = next(i for i, t in enumerate(trades) if t is a), next(i for i, t in enumerate(trades) if t is b)
        ours = [t for t in trades[i_a + 1:i_b] if cycle & set(t["pools"])]  # our trades between, in sent order
        v2 = lambda t: all(pools_info[p]["protocol"] == "v2" for p in t["pools"])  # noqa: E731
        if (closers or not v2(a) or not all(v2(t) for t in ours)
                or any(len({e["pool_id"] for e in t}) > 1 for t in between)):
            continue  # not a repeated capture, or one this file's simple re-execution does not cover
        reserves = {p: [int(s[0]), int(s[1])] for p, s in zip(a["pools"], json.loads(a["detail"])["states"])}
        out = apply_swaps(reserves, [(p, z, int(a["amount_in"]) if h == 0 else None)
                                     for h, (p, z) in enumerate(zip(a["pools"], a["zero_for_one"]))])
        assert out == int(a["amount_out"])
        steps = sorted([(key(t[0]["block_number"], t[0]["tx_index"]), 0, n, t) for n, t in enumerate(between)]
                       + [(key(t["block_number"], t["tx_index"]), 1, n, t) for n, t in enumerate(ours)])
        for _, is_ours, _, tx in steps:
            if is_ours:  # another of our trades through the cycle's pools: its states here are ours, then it swaps
                states = json.loads(tx["detail"])["states"]
                for p, s in zip(tx["pools"], states):
                    if p in reserves:
                        assert reserves[p] == [int(s[0]), int(s[1])]
                    else:
                        reserves[p] = [int(s[0]), int(s[1])]
                out = apply_swaps(reserves, [(p, z, int(tx["amount_in"]) if h == 0 else None)
                                             for h, (p, z) in enumerate(zip(tx["pools"], tx["zero_for_one"]))])
                assert out == int(tx["amount_out"])
                for p in set(tx["pools"]) - cycle:
                    del reserves[p]
                continue
            (e,) = tx
            p, r0, r1 = e["pool_id"], *reserves[e["pool_id"]]
            if e["kind"] == "swap":
                zfo = int(e["amount0_in"]) > 0
                r_in, r_out = (r0, r1) if zfo else (r1, r0)
                v = victims.get((e["block_number"], e["tx_index"], p))
                hist_out = int(e["amount1_out"] if zfo else e["amount0_out"])
                if v is not None and v["exact_output"]:
                    got, paid = int(v["amount_out_min"]), get_amount_in(int(v["amount_out_min"]), r_in, r_out)
                    ok = paid <= int(v["amount_in"])
                else:
                    paid = int(e["amount0_in"] if zfo else e["amount1_in"])
                    got = get_amount_out(paid, r_in, r_out)
                    label = label_at.get((e["block_number"], e["tx_index"]))
                    if v is not None:
                        ok = got >= int(v["amount_out_min"])
                    elif label is not None:  # a labeled searcher: its profit plus the change in its profit token
                        t_out = pools_info[p]["token1" if zfo else "token0"]   # (the input is historical)
                        ok = int(label["profit_raw"]) + (got - hist_out if label["profit_token"] == t_out else 0) > 0
                    else:
                        ok = got * 10_000 >= hist_out * 9_950
                if ok:
                    reserves[p] = [r0 + paid, r1 - got] if zfo else [r0 - got, r1 + paid]
            elif e["kind"] in ("mint", "burn"):
                a0, a1 = (int(e["amount0_in"]), int(e["amount1_in"])) if e["kind"] == "mint" else (0, 0)
                if e["kind"] == "mint":
                    pre0, pre1 = int(e["reserve0"]) - a0, int(e["reserve1"]) - a1
                    num, den = (a0, pre0) if a0 * pre1 <= a1 * pre0 else (a1, pre1)
                    reserves[p] = [r0 + r0 * num // den, r1 + r1 * num // den]
                else:
                    out0 = int(e["amount0_out"])
                    den = int(e["reserve0"]) + out0
                    reserves[p] = [r0 - min(r0 * out0 // den, r0 - 1), r1 - min(r1 * out0 // den, r1 - 1)]
        seen = [[int(x) for x in s] for s in json.loads(b["detail"])["states"]]
        assert seen == [reserves[p] for p in b["pools"]], (a["block_number"], b["block_number"], b["path_id"])
        out = apply_swaps(reserves, [(p, z, int(b["amount_in"]) if h == 0 else None)
                                     for h, (p, z) in enumerate(zip(b["pools"], b["zero_for_one"]))])
        assert out - int(b["amount_in"]) == int(b["gross_profit_raw"])
        checked += 1
    assert checked >= 3, checked  # (3 on tiny: the others cross V3 pools or multi-pool txs)
