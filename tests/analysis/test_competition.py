"""gpubt/analysis/competition.py: the seeded searcher population, `apply` on trades (exact realized outcomes,
summary, survival rate through summarize_trades), cpu == cudasim, and the competition config group."""
import numpy as np
import pyarrow as pa
import pytest
from gpubt.kernels import auction as ka
from omegaconf import OmegaConf

from gpubt import schema
from gpubt.analysis import competition
from gpubt.analysis.metrics import summarize_trades

from ..cli import compose
from ..conftest import LANDING_BID

E18 = 10**18


def _cfg(**overrides):
    """The competition=default config group (composed through Hydra as the lead will wire it) plus overrides."""
    cfg = compose("competition=default").competition
    OmegaConf.set_struct(cfg, False)  # overrides may add keys (a user would write +competition.x=...)
    return OmegaConf.merge(cfg, overrides)


def trades_table(n=60, seed=0):
    """TRADES rows with exact net profits around 0.01 ETH (a few tiny ones)."""
    rng = np.random.default_rng(seed)
    net = [int(v) for v in rng.lognormal(np.log(1e16), 1.0, n)]
    net[:3] = [1, 2, 10**9]
    gas = [21_000 * 30 * 10**9] * n
    rows = [{"block_number": 18_000_000 + i // 3, "tx_index": i % 3, "path_id": i % 7, "start_token": 0,
             "pools": [0, 1], "zero_for_one": [True, False], "amount_in": E18, "amount_out": E18 + net[i] + gas[i],
             "gross_profit_raw": net[i] + gas[i], "gross_profit_wei": net[i] + gas[i], "gas_units": 21_000,
             "gas_price_wei": 30 * 10**9, "gas_cost_wei": gas[i], "net_profit_wei": net[i],
             "net_profit_usd": net[i] / E18 * 2000.0, "screen_net_profit_wei": float(net[i])} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=schema.TRADES)


def test_config_group_composes_and_none_disables():
    cfg = _cfg()
    assert cfg.enabled and cfg.searchers.count > 0 and cfg.ours.policy == "fixed"
    none = compose("competition=none").competition
    assert not competition.enabled(none)
    params = competition.auction_params(cfg)
    assert params.shape == (ka.N_PARAMS,) and params[ka.P_OUR_BID_FRACTION] == cfg.ours.bid_fraction


def test_population_is_seeded_and_shaped():
    cfg = _cfg(searchers={"count": 200})
    a, b = competition.draw_population(cfg), competition.draw_population(cfg)
    for name in ("skill", "latency_ms", "capital_wei", "primary_kind", "focus"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = competition.draw_population(_cfg(searchers={"count": 200}, seed=1))
    assert not np.array_equal(a.skill, c.skill)
    assert a.size == 200 and a.focus.shape == (200, len(a.kinds))
    assert ((a.skill > 0) & (a.skill < 1)).all() and (a.latency_ms > 0).all() and (a.capital_wei > 0).all()
    assert (a.focus.max(axis=1) == 1.0).all() and (a.focus[np.arange(200), a.primary_kind] == 1.0).all()
    skill = cfg.searchers.skill
    assert abs(a.skill.mean() - skill.a / (skill.a + skill.b)) < 0.01   # Beta(a, b) quantiles: the mean is tight
    assert np.allclose(np.sort(a.skill), np.sort(c.skill), rtol=0.05, atol=1e-3)  # ... whatever the seed
    lat = cfg.searchers.latency_ms
    assert lat.median / 1.5 < np.median(a.latency_ms) < lat.median * 1.5      # lognormal around its median
    share = np.bincount(a.primary_kind, minlength=len(a.kinds)) / 200
    assert abs(share[a.kinds.index("arbitrage")] - 0.5) < 0.1      # specialization weights
    assert a.describe()["count"] == 200


@pytest.mark.parametrize("bad, match", [
    ({"searchers": {"count": -1}}, "count"),
    ({"searchers": {"specialization": {"nft": 1.0}}}, "specialization"),
    ({"ours": {"policy": "greedy"}}, "policy"),
    ({"ours": {"bid_fraction": 1.5}}, "bid_fraction"),
    ({"bidding": {"latency_window_ms": 0}}, "latency_window_ms"),
])
def test_bad_config_names_the_option(bad, match):
    with pytest.raises(ValueError, match=match):
        cfg = _cfg(**bad)
        competition.draw_population(cfg)
        competition.auction_params(cfg)


def test_apply_realized_outcomes_are_exact_and_summarized():
    trades = trades_table()
    cfg = _cfg(scenarios=200, ours={"failed_cost_eth": 0.0001})
    out, summary = competition.apply(trades, cfg, "cpu")
    assert out.num_rows == trades.num_rows and set(competition.COLUMNS) <= set(out.column_names)
    assert out.schema.field("bid_wei").type == schema.AMOUNT and out.schema.field("won").type == pa.bool_()
    net = [int(v) for v in out.column("net_profit_wei").to_pylist()]
    bid = [int(v) for v in out.column("bid_wei").to_pylist()]
    after = [int(v) for v in out.column("net_after_bid_wei").to_pylist()]
    won = out.column("won").to_pylist()
    for v, b, a, w in zip(net, bid, after, won):
        assert 0 <= b <= v and abs(b - 0.9 * v) <= 1        # fixed policy: floor(0.9 of the value)
        assert a == (v - b if w else -10**14)
    p = out.column("win_probability").to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and 0 < p.mean() < 1
    assert summary["attempted"] == 60 and summary["won"] == sum(won)
    assert summary["net_after_bid_wei"] == str(sum(after))
    assert summary["failed_cost_wei"] == str(10**14 * (60 - sum(won)))
    shares = [b / v for b, v, w in zip(bid, net, won) if w]
    assert summary["mean_bid_share"] == pytest.approx(np.mean(shares), rel=1e-12)
    assert abs(summary["mean_bid_share"] - 0.9) < 0.05              # tiny (1-wei) trades round down
    assert abs(sum(won) / 60 - p.mean()) < 0.2                      # realized ≈ expected (60 Bernoullis)
    landed = competition.landed(out)
    metrics = summarize_trades(landed, 60, 60, 20, attempted=summary["attempted"], bootstrap_samples=10)
    assert metrics["trades"] == summary["won"] and metrics["survival_rate"] == summary["survival_rate"]
    assert metrics["net_profit_wei"] == str(sum(a for a, w in zip(after, won) if w))
    # deterministic: a second run (and the trades in another order) draws the same outcomes
    again, _ = competition.apply(trades.take(np.arange(59, -1, -1)), cfg, "cpu")
    assert again.column("won").to_pylist()[::-1] == won


def test_a_cexdex_trade_is_bid_on_what_was_known_and_can_lose():
    """CEX-DEX: the bid is a share of the decision value (the hedge at the reference when deciding, in the detail),
    not of the realized net after the markout; a trade whose markout went against it lands at a loss."""
    import json

    trades = trades_table(12)
    net = [int(v) for v in trades.column("net_profit_wei").to_pylist()]
    decision = [v * 3 if i % 2 else v for i, v in enumerate(net)]   # odd rows: the markout took 2/3 of the value
    trades = trades.set_column(trades.column_names.index("detail"), "detail",
                               pa.array([json.dumps({"decision_net_wei": str(d)}) for d in decision]))
    trades = trades.set_column(trades.column_names.index("strategy"), "strategy", pa.array(["cexdex"] * 12))
    out, summary = competition.apply(trades, _cfg(scenarios=50), "cpu")
    bid = [int(v) for v in out.column("bid_wei").to_pylist()]
    after = [int(v) for v in out.column("net_after_bid_wei").to_pylist()]
    won = out.column("won").to_pylist()
    for i, (v, d, b, a, w) in enumerate(zip(net, decision, bid, after, won)):
        assert abs(b - 0.9 * d) <= 1 and (a == v - b if w else a == 0)
    assert any(w and a < 0 for a, w in zip(after[3:], won[3:]))
    # the bid share is of the value bid on, not of the realized net (which made it 2.7 on the odd rows)
    shares = [b / d for b, d, w in zip(bid, decision, won) if w and d > 0]
    assert summary["mean_bid_share"] == pytest.approx(np.mean(shares), rel=1e-12) and summary["mean_bid_share"] < 1


def test_a_cexdex_run_bids_on_the_decision_value(tiny_cache, tmp_path):
    """End to end (the post-run reads trades without their detail): every landed CEX-DEX trade's bid is the fixed
    share of its decision value, recorded in its detail, not of its marked-out net."""
    import json

    import pyarrow.parquet as pq

    from ..cli import run_inprocess

    out = run_inprocess("backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", "strategy=cexdex",
                        "progress=false", "report.enabled=false", f"out_dir={tmp_path / 'cx'}").out_dir
    trades = pq.read_table(out / "trades.parquet").to_pylist()
    assert "bid_basis_wei" not in pq.read_schema(out / "trades.parquet").names
    won = [t for t in trades if t["won"]]
    differ = 0
    for t in won:
        decision = int(json.loads(t["detail"])["decision_net_wei"])
        assert abs(int(t["bid_wei"]) - 0.9 * max(decision, 0)) <= 1, (t["bid_wei"], decision, t["net_profit_wei"])
        assert int(t["net_after_bid_wei"]) == int(t["net_profit_wei"]) - int(t["bid_wei"])
        differ += decision != int(t["net_profit_wei"])
    assert won and differ > 0   # the markout moved some of them (the reference is sampled every 10 blocks)


def test_no_trade_lands_in_a_block_whose_builder_took_no_bundles():
    trades = trades_table(30)                          # blocks 18,000,000 .. 18,000,009, three trades each
    closed = np.array([18_000_002, 18_000_005])
    auctions = competition.Auctions(_cfg(scenarios=50, ours={"bid_fraction": LANDING_BID}), "cpu")  # some land
    out = auctions.add(trades, closed)
    shut = np.isin(out.column("block_number").to_numpy(), closed)
    won, p = out.column("won").to_numpy(zero_copy_only=False), out.column("win_probability").to_numpy()
    assert not won[shut].any() and (p[shut] == 0).all() and won[~shut].any()
    assert auctions.summary()["in_closed_blocks"] == 6
    again = competition.Auctions(_cfg(scenarios=50, ours={"bid_fraction": LANDING_BID}), "cpu").add(trades)  # same
    assert (again.column("won").to_numpy(zero_copy_only=False)[~shut] == won[~shut]).all()


def test_apply_disabled_keeps_every_trade():
    trades = trades_table(10)
    out, summary = competition.apply(trades, OmegaConf.create({"enabled": False}), "cpu")
    assert out.column("won").to_pylist() == [True] * 10 and summary == {"enabled": False, "attempted": 10,
                                                                          "won": 10, "survival_rate": 1.0}
    assert out.column("net_after_bid_wei").to_pylist() == out.column("net_profit_wei").to_pylist()
    assert competition.landed(out).column("net_profit_wei").to_pylist() == trades.column("net_profit_wei").to_pylist()


def test_apply_without_trades():
    out, summary = competition.apply(schema.TRADES.empty_table(), _cfg(), "cpu")
    assert out.num_rows == 0 and summary["attempted"] == 0 and summary["survival_rate"] is None


@pytest.mark.slow  # the auction kernel under the simulator
@pytest.mark.usefixtures("simulator_threads")
def test_cpu_equals_cudasim():
    trades = trades_table(10, seed=3)  # the simulator runs each thread as Python: small on purpose
    cfg = _cfg(scenarios=6, searchers={"count": 8}, ours={"policy": "shade"})
    cpu, s_cpu = competition.apply(trades, cfg, "cpu")
    sim, s_sim = competition.apply(trades, cfg, "cudasim")
    for name in competition.COLUMNS:
        assert cpu.column(name).to_pylist() == sim.column(name).to_pylist(), name
    s_sim["backend"] = "cpu"
    assert s_cpu == s_sim


def test_opportunity_ids_are_stable_and_distinct():
    blocks = np.repeat(np.arange(18_000_000, 18_000_100), 30)
    tx = np.tile(np.arange(-1, 29), 100)
    ids = competition.opportunity_ids(blocks, tx, tx % 5)
    assert ids.dtype == np.int64 and len(np.unique(ids)) == len(ids)
    np.testing.assert_array_equal(ids[:5], competition.opportunity_ids(blocks[:5], tx[:5], tx[:5] % 5))


def test_a_bundle_sent_alone_lands_as_the_batched_auction_realizes_it():
    """BuilderAuction.lands (the ordered pass: one bundle, its id in Python ints, its kind id cached) gives each
    trade the realized outcome the batched kernel gives it, for every kind; ids equal."""
    from gpubt.market.auction import BuilderAuction, opportunity_id

    blocks = np.array([0, 1, 18_000_000, 2**40 + 3])
    tx = np.array([-1, 0, 17, 2**20])
    path = np.array([0, 5, 2**31 - 1, 123_456])
    assert [opportunity_id(b, t, q) for b, t, q in zip(blocks.tolist(), tx.tolist(), path.tolist())] == \
        competition.opportunity_ids(blocks, tx, path).tolist()
    trades = trades_table(n=90)
    kinds = ["arbitrage", "sandwich", "cexdex"]
    trades = trades.set_column(trades.schema.get_field_index("strategy"), "strategy",
                               pa.array([kinds[i % 3] for i in range(90)]))
    cfg = _cfg(scenarios=50, ours={"bid_fraction": LANDING_BID})
    out, _ = competition.apply(trades, cfg, "cpu")
    auction = BuilderAuction(cfg)
    lands = [auction.lands(row) for row in trades.to_pylist()]
    assert lands == out.column("won").to_pylist() and 0 < sum(lands) < 90


def test_a_competition_config_leaving_keys_out_gets_the_default_yamls():
    """`scenarios` and the bidding keys a user's competition config leaves out take configs/competition/default.yaml's
    values (not constants of their own that would drift from the calibrated file)."""
    from gpubt.market.auction import BuilderAuction
    from gpubt.market.searchers import default_config

    full = _cfg()
    sparse = OmegaConf.create({k: v for k, v in OmegaConf.to_container(full).items()
                               if k not in ("scenarios", "bidding")})
    assert BuilderAuction(sparse).n_scenarios == default_config()["scenarios"] == BuilderAuction(full).n_scenarios
    np.testing.assert_array_equal(competition.auction_params(sparse), competition.auction_params(full))


def test_each_trade_meets_the_searchers_of_its_own_strategy():
    """A sandwich is auctioned against the sandwich specialists, not as an arbitrage (the `strategy` column)."""
    trades = trades_table(n=30)
    cfg = _cfg(scenarios=400, searchers={"specialization": {"arbitrage": 1.0, "sandwich": 0.0, "liquidation": 0.0,
                                                           "jit": 0.0, "cexdex": 0.0}})
    as_arb, _ = competition.apply(trades.set_column(trades.schema.get_field_index("strategy"), "strategy",
                                                    pa.array(["arbitrage"] * 30)), cfg, "cpu")
    as_sandwich, _ = competition.apply(trades.set_column(trades.schema.get_field_index("strategy"), "strategy",
                                                         pa.array(["sandwich"] * 30)), cfg, "cpu")
    p_arb = as_arb.column("win_probability").to_numpy()
    p_sandwich = as_sandwich.column("win_probability").to_numpy()
    # every rival's primary kind is arbitrage: a sandwich meets only their off-kind interest, so it wins more often
    assert p_sandwich.mean() > p_arb.mean() + 0.1
    unknown, _ = competition.apply(trades.set_column(trades.schema.get_field_index("strategy"), "strategy",
                                                     pa.array(["toy"] * 30)), cfg, "cpu")
    assert unknown.column("win_probability").to_numpy().tolist() == p_arb.tolist()  # no kind of its own: ours.kind
