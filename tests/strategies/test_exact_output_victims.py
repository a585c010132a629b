"""Exact-output victims are what they are (issue 24): decode records the kind of a router call's limit, the
synthetic market plants exact-output swaps consistent with their events, the sandwich's exact bundle makes an
exact-output victim pay getAmountIn(amountOut) on the state it meets and bounds the front-run by amountInMax, a
later victim whose limit fails reverts (the profit is the bundle's with it skipped), and the float V3 exact-output
swap the screen uses matches the exact quote."""
import numpy as np
import pytest

from gpubt.data import decode
from gpubt.exact import v2 as exact_v2
from gpubt.exact.hops import V3Hop
from gpubt.kernels.compile import build_kernel
from gpubt.strategies.sandwich import (ExactPool, V2PoolFactory, exact_bundle, exact_max_frontrun,
                                       victim_detail)

from ..kernels import v3_market

E18 = 10**18
FEE = 3000
R0, R1 = 1_000 * E18, 2_000_000 * 10**6  # WETH / USDC


def _v2_after(r_in, r_out, amount_in):
    out = exact_v2.get_amount_out(amount_in, r_in, r_out, FEE)
    return r_in + amount_in, r_out - out, out


# -- the sandwich's exact bundle -------------------------------------------------------------------------------
@pytest.mark.parametrize("zfo", [True, False])
def test_exact_output_victim_pays_get_amount_in_after_the_front_run(zfo):
    r_in, r_out = (R0, R1) if zfo else (R1, R0)
    want = exact_v2.get_amount_out(r_in // 50, r_in, r_out, FEE)     # amountOut: 2 % of the pool's input side
    victim = (r_in // 40, want, True)                                  # amountInMax: generous
    make = V2PoolFactory(FEE, (R0, R1))
    for a in (0, r_in // 10**5, r_in // 1000, r_in // 200):
        r = exact_bundle(make, zfo, a, [victim])
        x_in, x_out = r_in, r_out
        if a:
            x_in, x_out, bought = _v2_after(r_in, r_out, a)
            assert r["front_out"] == bought
        paid = exact_v2.get_amount_in(want, x_in, x_out, FEE)         # on the state after the front-run
        assert r["victim_in"] == [paid] and r["victim_out"] == [want] and r["reverted"] == [False]
        # the back-run sells on the state the victim left: input + paid, output − amountOut
        if a:
            back = exact_v2.get_amount_out(bought, x_out - want, x_in + paid, FEE)
            assert r["back_out"] == back and r["gross"] == back - a
        d = victim_detail(7, "0xab", victim, r["victim_in"][0], r["victim_out"][0], r["reverted"][0])
        assert d["kind"] == "exact_output" and d["amount_in"] == str(paid) and d["amount_out"] == str(want)
        assert d["amount_in_max"] == str(victim[0]) and d["amount_out_exact"] == str(want)


def test_exact_output_max_front_run_is_the_last_one_paying_at_most_amount_in_max():
    rng = np.random.default_rng(3)
    for _ in range(30):
        zfo = bool(rng.integers(2))
        r0, r1 = int(10 ** rng.uniform(20, 24)), int(10 ** rng.uniform(8, 24))
        r_in, r_out = (r0, r1) if zfo else (r1, r0)
        x = int(r_in * 10 ** rng.uniform(-4, -1.5))
        want = exact_v2.get_amount_out(x, r_in, r_out, FEE)
        amount_in_max = x * (10_000 + int(rng.choice([10, 50, 100, 300]))) // 10_000

        def paid(a):
            if a == 0:
                return exact_v2.get_amount_in(want, r_in, r_out, FEE)
            x_in, x_out, _ = _v2_after(r_in, r_out, a)
            return exact_v2.get_amount_in(want, x_in, x_out, FEE) if want < x_out else None

        victim = [(amount_in_max, want, True)]
        for make in (V2PoolFactory(FEE, (r0, r1)), lambda: ExactPool(False, FEE, reserves=(r0, r1))):
            a = exact_max_frontrun(make, zfo, victim, float(x) * 0.1, 10**40)
            assert a > 0
            assert paid(a) <= amount_in_max
            over = paid(a + 1)
            assert over is None or over > amount_in_max
            r = exact_bundle(make, zfo, a + 1, victim)
            assert r["reverted"] == [True] and not r["feasible"]


def test_exact_output_victim_on_v3_pays_the_exact_output_quote():
    _, _, info = v3_market.random_batch(0, n_pools=6, n_blocks=2, v3_share=1.0)
    checked = 0
    for kind in info["exact"]:
        if kind[0] != "v3" or kind[1].liquidity <= 0:
            continue
        base = kind[1]
        for zfo in (True, False):
            probe = V3Hop(v3_market.copy_pool(base), zfo)
            x = 10**6
            while probe(x * 10) is not None and x < 10**30 and probe(x * 10) < (10**40):
                x *= 10
                if x > 10**15:
                    break
            want = probe(x)
            if not want:
                continue
            a = x // 3
            make = lambda: ExactPool(True, base.fee, v3_pool=v3_market.copy_pool(base))  # noqa: E731
            r = exact_bundle(make, zfo, a, [(2 * x, want, True)])
            if r is None:
                continue
            after = v3_market.copy_pool(base)
            lim = 4295128739 + 1 if zfo else 1461446703485210103287273052203988822378723970342 - 1
            after.swap_outcome(zfo, a, lim, commit=True)
            assert r["victim_in"] == [V3Hop(after, zfo).least_input(want)] and r["victim_out"] == [want]
            checked += 1
    assert checked >= 3


def test_a_later_victim_past_its_limit_reverts_and_the_profit_skips_it():
    """Three victims selling WETH: the second's limit is tight, so the front-run pushes it past its limit; it
    reverts (the pool as it found it) and the bundle's profit equals the bundle with it left out, recomputed here
    with getAmountOut / getAmountIn alone."""
    make = V2PoolFactory(FEE, (R0, R1))
    v1 = (20 * E18, 1, False)                                          # exact input, no real limit
    out2 = exact_v2.get_amount_out(5 * E18, *_v2_after(R0, R1, v1[0])[:2], FEE)
    v2 = (5 * E18, out2 - out2 // 10_000, False)                       # 1 bp: fails after any real front-run
    want3 = 10_000 * 10**6
    v3 = (10 * E18, want3, True)                                       # exact output, generous amountInMax
    a = 10 * E18
    r = exact_bundle(make, True, a, [v1, v2, v3])
    assert r["feasible"] and r["reverted"] == [False, True, False]
    assert r["victim_in"][1] == 0 and r["victim_out"][1] == 0
    # independently: front-run, victim 1, (victim 2 reverted: nothing), victim 3, back-run
    x_in, x_out, bought = _v2_after(R0, R1, a)
    x_in, x_out, got1 = _v2_after(x_in, x_out, v1[0])
    assert exact_v2.get_amount_out(v2[0], x_in, x_out, FEE) < v2[1]    # victim 2 would miss its minimum here
    paid3 = exact_v2.get_amount_in(want3, x_in, x_out, FEE)
    x_in, x_out = x_in + paid3, x_out - want3
    back = exact_v2.get_amount_out(bought, x_out, x_in, FEE)
    assert r["victim_out"][0] == got1 and r["victim_in"][2] == paid3
    assert r["gross"] == back - a
    assert r["gross"] == exact_bundle(make, True, a, [v1, v3])["gross"]
    # the first victim bounds the bundle: past its own limit the bundle is not feasible at all
    alone = exact_v2.get_amount_out(v2[0], R0, R1, FEE)
    tight_first = (v2[0], alone - alone // 10_000, False)
    assert not exact_bundle(make, True, a, [tight_first, v1])["feasible"]


def test_sandwich_reprice_takes_the_first_victims_bound_with_later_reverts():
    """reprice's candidates: the bound of the first victim alone, where a later tight victim reverts; the trade's
    detail records the revert and the kinds, and its profit is the exact bundle's."""
    import json
    from types import SimpleNamespace

    from gpubt.strategies.sandwich import SandwichStrategy

    strat = SandwichStrategy.__new__(SandwichStrategy)
    strat.name = "sandwich"
    strat.meta = SimpleNamespace(is_v3=np.array([False]), fee_ppm=np.array([FEE]))
    strat.gas = SimpleNamespace(priority_fee_wei=10**9)
    strat.make_pool_factory = lambda batch, pool, key, cache: V2PoolFactory(FEE, (R0, R1))
    strat._priced = {}   # nothing priced ahead by the exact engine: reprice runs the oracle
    want = 5_000 * 10**6
    first = (40 * E18, exact_v2.get_amount_out(40 * E18, R0, R1, FEE) * 97 // 100, False)   # 3 % slippage
    # exact output, amountInMax 0.1 % over its price behind the first victim: priced out by a large front-run
    second = (exact_v2.get_amount_in(want, *_v2_after(R0, R1, first[0])[:2], FEE) * 1001 // 1000, want, True)
    v = dict(pool=np.array([0, 0]), zfo=np.array([True, True]), tx=np.array([3, 4]), tx_hash=["0x1", "0x2"],
             amount_in=[first[0], second[0]], min_out=[first[1], second[1]], exact_output=np.array([False, True]))
    batch = SimpleNamespace(first_block=100, n_blocks=1, gas_price_wei=np.array([2 * 10**10]),
                            price_usd=np.ones((1, 1)))
    import gpubt.strategies.sandwich as sw
    rows = {}
    orig = sw.trade_row
    sw.trade_row = lambda *args: rows.setdefault("args", args) and {"detail": args[-1]}
    try:
        trade = strat.reprice(batch, v, [0, 1], (100 << 20) + 2, 1.0, 1e30, 1e30, 0, 1.0, {})
    finally:
        sw.trade_row = orig
    detail = json.loads(trade["detail"])
    a = detail["front_run_in"]
    first_max = exact_max_frontrun(V2PoolFactory(FEE, (R0, R1)), True, [first], 1e20, 10**40)
    assert detail["max_front_run"] == first_max
    r = exact_bundle(V2PoolFactory(FEE, (R0, R1)), True, a, [first, second])
    assert [x["reverted"] for x in detail["victims"]] == r["reverted"]
    assert [x["kind"] for x in detail["victims"]] == ["exact_input", "exact_output"]
    assert rows["args"][10] == r["gross"]  # gross_raw passed to trade_row
    # at the first victim's bound the exact-output victim is priced out, and that bundle pays best here
    assert a == first_max and r["reverted"] == [False, True]


# -- decode ------------------------------------------------------------------------------------------------------
TOK_A, TOK_B, WETH_ADDR = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
TO = "0x" + "11" * 20
SINGLE = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
PATHED = "(bytes,address,uint256,uint256,uint256)"


def _v3_path(tokens, fees):
    out = bytes.fromhex(tokens[0][2:])
    for fee, tok in zip(fees, tokens[1:]):
        out += fee.to_bytes(3, "big") + bytes.fromhex(tok[2:])
    return out


def _calls():
    """(calldata, tx value, exact_output, (amount_in column, amount_out_min column)) per router call kind."""
    v2 = ("uint256", "uint256", "address[]", "address", "uint256")
    return [
        (decode.encode_call("swapTokensForExactTokens", v2, (7_000, 9_000, [TOK_A, TOK_B], TO, 1)), 0, True,
         (9_000, 7_000)),
        (decode.encode_call("swapTokensForExactETH", v2, (7_001, 9_001, [TOK_A, WETH_ADDR], TO, 1)), 0, True,
         (9_001, 7_001)),
        (decode.encode_call("swapETHForExactTokens", ("uint256", "address[]", "address", "uint256"),
                            (7_002, [WETH_ADDR, TOK_A], TO, 1)), 9_002, True, (9_002, 7_002)),
        (decode.encode_call("swapExactTokensForTokens", v2, (9_003, 7_003, [TOK_A, TOK_B], TO, 1)), 0, False,
         (9_003, 7_003)),
        (decode.encode_call("exactOutputSingle", (SINGLE,), ((TOK_A, TOK_B, 3000, TO, 1, 7_004, 9_004, 0),)), 0,
         True, (9_004, 7_004)),
        # exactOutput's path is encoded output first: B ← A
        (decode.encode_call("exactOutput", (PATHED,), ((_v3_path([TOK_B, TOK_A], [3000]), TO, 1, 7_005, 9_005),)),
         0, True, (9_005, 7_005)),
        (decode.encode_call("exactInputSingle", (SINGLE,), ((TOK_A, TOK_B, 3000, TO, 1, 9_006, 7_006, 0),)), 0,
         False, (9_006, 7_006)),
    ]


def _replay():
    pools = [decode.PoolInfo(0, "0x" + "01" * 20, "v2", TOK_A, TOK_B, 3000, 0, 0, "uniswap_v2"),
             decode.PoolInfo(1, "0x" + "02" * 20, "v2", TOK_A, WETH_ADDR, 3000, 0, 0, "uniswap_v2"),
             decode.PoolInfo(2, "0x" + "03" * 20, "v3", TOK_A, TOK_B, 3000, 60, 0, "uniswap_v3")]
    return decode.ChainReplay(pools=pools, token_ids={TOK_A: 1, TOK_B: 2, WETH_ADDR: 0})


@pytest.mark.parametrize("case", range(7))
def test_decode_maps_each_router_call_to_its_victim_kind(case):
    data, value, exact_output, (col_in, col_out) = _calls()[case]
    (call,) = decode.decode_router_call(bytes.fromhex(data[2:]), value)
    assert call["exact_input"] is (not exact_output)
    txs = {"0xt": decode.RawTx("0xt", 100, 5, TO, "0x" + "99" * 20, value, bytes.fromhex(data[2:]))}
    victims, calls = _replay()._router_calls({"0xt": [0, 1, 2]}, txs)
    (row,) = victims
    assert row["exact_output"] is exact_output
    assert (row["amount_in"], row["amount_out_min"]) == (col_in, col_out)


def test_decode_maps_exact_output_inside_a_multicall():
    inner = [bytes.fromhex(_calls()[4][0][2:]), bytes.fromhex(_calls()[6][0][2:])]
    data = decode.encode_call("multicall", ("bytes[]",), (inner,))
    txs = {"0xm": decode.RawTx("0xm", 100, 2, TO, "0x" + "99" * 20, 0, bytes.fromhex(data[2:]))}
    victims, _ = _replay()._router_calls({"0xm": [2]}, txs)
    assert [(v["exact_output"], v["amount_in"], v["amount_out_min"]) for v in victims] == [
        (True, 9_004, 7_004), (False, 9_006, 7_006)]


# -- the synthetic market ---------------------------------------------------------------------------------------
def test_synthetic_exact_output_victims_match_their_events(tiny_cache):
    from gpubt.data.store import Dataset

    from ..conftest import TINY

    ds = Dataset(tiny_cache / TINY)
    events = ds.read("events").to_pylist()
    victims = [v for v in ds.read("victims").to_pylist() if v["exact_output"]]
    assert len(victims) > 20
    swap_at = {(e["block_number"], e["tx_index"], e["pool_id"]): e for e in events if e["kind"] == "swap"}
    protocol = {p["pool_id"]: p["protocol"] for p in ds.pools.to_pylist()}
    for v in victims:
        assert protocol[v["pool_id"]] == "v2"
        e = swap_at[(v["block_number"], v["tx_index"], v["pool_id"])]
        a0i, a1i, a0o, a1o = (int(e[k]) for k in ("amount0_in", "amount1_in", "amount0_out", "amount1_out"))
        pre0, pre1 = int(e["reserve0"]) - a0i + a0o, int(e["reserve1"]) - a1i + a1o   # the pool's pre-state
        want = int(v["amount_out_min"])
        if v["zero_for_one"]:
            paid, got, need = a0i, a1o, exact_v2.get_amount_in(want, pre0, pre1, FEE)
        else:
            paid, got, need = a1i, a0o, exact_v2.get_amount_in(want, pre1, pre0, FEE)
        assert got == want and paid == need, v
        assert paid <= int(v["amount_in"])                              # within amountInMax


# -- the float V3 exact-output swap (the screen's) ----------------------------------------------------------------
def test_float_v3_exact_output_matches_the_exact_quote():
    py = build_kernel("sandwich", "python")
    args, _, info = v3_market.random_batch(1, n_pools=8, n_blocks=2, v3_share=1.0)
    state = args[9:21]
    checked = 0
    for j, kind in enumerate(info["exact"]):
        if kind[0] != "v3" or kind[1].liquidity <= 0:
            continue
        p = next(q for q in range(len(state[0]) - 1) if state[0][q] <= j < state[0][q + 1])
        gamma = 1 - info["fee"][p] / 1e6
        v = state[7][j]
        lo, hi = state[8][v], state[8][v + 1]
        for zfo in (True, False):
            for frac in (1e-4, 1e-2, 0.3):
                reserve_out = kind[1].liquidity * (state[4][j] if zfo else 1 / state[4][j])
                want = int(reserve_out * frac)
                if want < 10**6:
                    continue
                exact_in = V3Hop(v3_market.copy_pool(kind[1]), zfo).least_input(want)
                paid, s, L, t, c, status = py.v3_swap_exact_out(float(want), zfo, gamma, state[4][j], state[5][j],
                                                                state[6][j], state[9], state[10], state[11], lo, hi,
                                                                1000)
                if exact_in is None:
                    continue
                assert status == 0 and paid == pytest.approx(exact_in, rel=1e-9)
                # the inverse of the exact-input swap: selling `paid` buys `want` again
                out = py.v3_swap_exact_in(paid, zfo, gamma, state[4][j], state[5][j], state[6][j], state[9],
                                          state[10], state[11], lo, hi, 1000)[0]
                assert out == pytest.approx(want, rel=1e-9)
                checked += 1
    assert checked >= 6
