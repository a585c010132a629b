"""CEX-DEX strategy: the reference series, exact re-pricing of the DEX leg (V2 and V3), one trade per pool state,
the cross-domain variant's costs, and end to end on a tiny synthetic market with identical trades on cpu and
cudasim."""
import json

import numpy as np
import pyarrow as pa
import pytest

from gpubt import schema
from gpubt.exact import v2 as exact_v2
from gpubt.exact import v3 as exact_v3
from gpubt.strategies.cexdex import CexDexStrategy, ReferencePrices

from .test_liquidation import run_strategy, tiny_dataset  # noqa: F401  (the session fixture)

CFG = {"markout_seconds": 12, "cex_fee_bps": 5.0}


def test_reference_series_is_deterministic_and_batch_free():
    prices = pa.Table.from_pylist([{"block_number": b, "token_id": t, "price_usd": p}
                                   for b in (10, 20) for t, p in ((0, 2000.0 + b), (1, 1.0))], schema=schema.PRICES)
    plain = ReferencePrices(prices, 3)
    got = plain.at([9, 10, 15, 20, 99])
    assert np.isnan(got[0]).all() and np.isnan(got[:, 2]).all()
    np.testing.assert_array_equal(got[1:, 0], [2010.0, 2010.0, 2020.0, 2020.0])
    noisy = ReferencePrices(prices, 3, noise_bps=10.0, seed=4)
    blocks = np.arange(20, 4020)
    whole = noisy.at(blocks)
    np.testing.assert_array_equal(whole, np.concatenate([noisy.at(blocks[:7]), noisy.at(blocks[7:])]))
    z = np.log(whole[:, 0] / 2020.0) / 1e-3
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1  # N(0, 1) per (block, token)
    assert not np.array_equal(whole, ReferencePrices(prices, 3, noise_bps=10.0, seed=5).at(blocks))


def test_end_to_end_cpu_equals_cudasim_and_exact(tiny_dataset):  # noqa: F811
    ds = tiny_dataset
    first, last = ds.first_block, ds.first_block + 39
    now = dict(CFG, markout_seconds=0)  # marked at the decision's reference: exact vs screen comparable
    cpu, opps_cpu, trades_cpu = run_strategy(CexDexStrategy, now, ds, "cpu", first, last)
    _, opps_sim, trades_sim = run_strategy(CexDexStrategy, now, ds, "cudasim", first, last)
    assert trades_cpu == trades_sim and opps_cpu == opps_sim and len(trades_cpu) >= 3
    pa.Table.from_pylist(trades_cpu, schema=schema.TRADES)
    states = set()
    for t in trades_cpu:
        d = json.loads(t["detail"])
        pool, zfo, amount_in = t["pools"][0], t["zero_for_one"][0], t["amount_in"]
        fee = d["fee_ppm"]
        # the exact DEX leg, re-derived from the state in `detail`
        if d["protocol"] == "v2":
            r0, r1 = int(d["state"]["reserve0"]), int(d["state"]["reserve1"])
            out = exact_v2.get_amount_out(amount_in, r0 if zfo else r1, r1 if zfo else r0, fee)
            assert out == t["amount_out"]
            states.add((pool, r0, r1))
        else:
            states.add((pool, d["state"]["sqrt_price_x96"], d["state"]["liquidity"]))
        assert t["gas_units"] == (87_984 if d["protocol"] == "v2" else 99_427 + 23_703 * d["ticks_crossed"])
        # the screen and the exact leg agree: float vs exact differ by ~1e-9 of the notional (V3 walk), a larger
        # share of a thin profit, or by the floor of the input or of the output: one raw unit of a low-decimal
        # token (WBTC's 1e-8 is ~1e11 wei)
        notional_wei = t["amount_in"] * t["gross_profit_wei"] / t["gross_profit_raw"]
        one_unit_wei = max(notional_wei / t["amount_out"], notional_wei / t["amount_in"])
        assert t["net_profit_wei"] == pytest.approx(t["screen_net_profit_wei"], rel=1e-4,
                                                    abs=max(1e9, 2 * one_unit_wei))
        # the pool was outside the band: its price vs the reference, net of fee and CEX fee
        assert t["gross_profit_raw"] > 0
    assert len(states) == len(trades_cpu)  # one trade per pool state


def test_v3_leg_is_exact(tiny_dataset):  # noqa: F811
    """Every V3 trade's output is the exact V3Pool swap of its input at the batch's exact state."""
    from gpubt.exact.hops import v3_quote_pool

    ds = tiny_dataset
    strategy, _, trades = run_strategy(CexDexStrategy, dict(CFG, reference_noise_bps=30.0), ds, "cpu",
                                       ds.first_block, ds.first_block + 59, batch_blocks=60)
    v3 = [t for t in trades if json.loads(t["detail"])["protocol"] == "v3"]
    assert v3, "no V3 trade in the first 60 blocks"
    from .test_liquidation import batches

    batch = next(batches(ds, ds.first_block, ds.first_block + 59, 60))
    for t in v3:
        pool, zfo = t["pools"][0], t["zero_for_one"][0]
        key = ((t["block_number"] - batch.first_block) << 20) + t["tx_index"]
        sqrt_price, liquidity, tick, table = batch.exact_v3_state(pool, key)
        quote = v3_quote_pool(int(strategy.pools.fee_ppm[pool]), int(strategy.pools.tick_spacing[pool]), sqrt_price,
                              liquidity, tick, table)
        o = quote.swap_outcome(zfo, t["amount_in"], exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1,
                               commit=False)
        assert (-o.amount1 if zfo else -o.amount0) == t["amount_out"]


def test_cross_domain_costs_and_latency(tiny_dataset):  # noqa: F811
    ds = tiny_dataset
    span = (ds.first_block, ds.first_block + 39)
    _, _, cex = run_strategy(CexDexStrategy, CFG, ds, "cpu", *span)
    cross_cfg = dict(CFG, variant="cross_domain", bridge_latency_seconds=120, bridge_fee_bps=5.0, bridge_cost_usd=5.0)
    strategy, _, cross = run_strategy(CexDexStrategy, cross_cfg, ds, "cpu", *span)
    assert strategy.markout_blocks == 10 and strategy.keep == pytest.approx(1 - 10e-4)
    assert len(cross) <= len(cex)
    for t in cross:
        d = json.loads(t["detail"])
        assert d["variant"] == "cross_domain" and d["bridge_cost_usd"] == 5.0
        assert d["markout_block"] == min(t["block_number"] + 10, ds.last_block)
    with pytest.raises(ValueError, match="variant"):
        run_strategy(CexDexStrategy, dict(CFG, variant="bridge"), ds, "cpu", *span)


def test_reference_age_and_next_sample():
    prices = pa.Table.from_pylist([{"block_number": b, "token_id": t, "price_usd": 1.0}
                                   for b, t in ((10, 0), (10, 1), (20, 0))], schema=schema.PRICES)
    ref = ReferencePrices(prices, 3, ages=True)
    age = ref.age([9, 10, 15, 20, 99])
    np.testing.assert_array_equal(age[:, 0], [np.inf, 0, 5, 0, 79])
    np.testing.assert_array_equal(age[:, 1], [np.inf, 0, 5, 10, 89])   # token 1 was last sampled at 10
    assert np.isinf(age[:, 2]).all()
    np.testing.assert_array_equal(ref.next_sample([0, 10, 11, 20, 21]), [10, 10, 20, 20, 20])


def test_a_sparse_reference_is_traded_at_its_samples_and_marked_at_the_next(tmp_path):
    """Reference prices sampled every 10 blocks (as mainnet-month's): by default CEX-DEX decides only on a fresh
    sample, and marks the hedge at the first sample from the markout block on, never at a forward-filled copy of
    the decision's own price; with `max_reference_age_blocks: null` it trades between samples too."""
    from gpubt.data import synthetic
    from gpubt.data.store import Dataset

    ds = Dataset(synthetic.generate(tmp_path / "sparse", preset="tiny", seed=0, progress=False, price_interval=10))
    span = (ds.first_block, ds.first_block + 99)
    sampled = set(ds.read("prices").column("block_number").to_pylist())
    _, _, fresh = run_strategy(CexDexStrategy, CFG, ds, "cpu", *span)
    _, _, stale = run_strategy(CexDexStrategy, dict(CFG, max_reference_age_blocks=None), ds, "cpu", *span)
    assert fresh and {t["block_number"] for t in fresh} <= sampled
    assert {t["block_number"] for t in stale} - sampled   # the rule is what keeps them out
    for t in fresh:
        d = json.loads(t["detail"])
        assert d["markout_block"] in sampled and d["markout_block"] > t["block_number"]


def test_only_pools_whose_tokens_a_cex_lists_are_traded(tmp_path, tiny_unlisted):
    """TOKENS.cex_listed false (synthetic: the shallowest tails at cex_listed_share 0.3): no CEX-DEX trade on a pool
    of that token, however far its pools sit from the token's DEX mark; null (not known, e.g. an ingested dataset
    written without the column) counts as listed, and then those pools are traded."""
    import shutil

    import pyarrow.parquet as pq

    from gpubt.data.store import Dataset

    ds = Dataset(tiny_unlisted)
    unlisted = {k for k, v in zip(ds.tokens.column("token_id").to_pylist(),
                                  ds.tokens.column("cex_listed").to_pylist()) if not v}
    pools = ds.pools.to_pydict()

    def touches_unlisted(trade):
        p = trade["pools"][0]
        return bool({pools["token0"][p], pools["token1"][p]} & unlisted)

    span = (ds.first_block, ds.last_block)
    _, _, trades = run_strategy(CexDexStrategy, CFG, ds, "cpu", *span)
    assert trades and not [t for t in trades if touches_unlisted(t)]
    unknown = tmp_path / "unknown"
    shutil.copytree(tiny_unlisted, unknown)
    pq.write_table(ds.tokens.drop_columns(["cex_listed"]), unknown / "tokens.parquet")
    _, _, trades = run_strategy(CexDexStrategy, CFG, Dataset(unknown), "cpu", *span)
    assert [t for t in trades if touches_unlisted(t)]
