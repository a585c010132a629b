"""The bundle-auction kernel (kernels/auction.py): CPU build vs CUDA simulator vs pure Python, the model's sanity
properties (no competitor: we always win and pay our bid; more or more skilled competitors: we win less). Its
sm_90 PTX: tests/kernels/test_ptx.py."""
import numpy as np
import pytest
from gpubt.kernels import auction as ka

from gpubt.analysis.competition import SearcherPopulation, kernel_searchers, run_auction
from gpubt.kernels.compile import build_kernel

from .registry_examples import BuildBackend

KINDS = ("arbitrage", "sandwich", "cexdex")


def population(n, seed=0, skill=None):
    """N random searchers (or all with one `skill`), three strategy kinds."""
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, len(KINDS), n).astype(np.int32)
    focus = np.full((n, len(KINDS)), 0.2)
    focus[np.arange(n), primary] = 1.0
    return SearcherPopulation(KINDS, rng.beta(2, 5, n) if skill is None else np.full(n, float(skill)),
                              rng.lognormal(np.log(40.0), 0.7, n), rng.lognormal(np.log(5e18), 1.0, n), primary,
                              focus)


def params(policy=ka.POLICY_FIXED, bid_fraction=0.9, failed_cost_wei=0.0):
    p = np.zeros(ka.N_PARAMS)
    p[ka.P_LATENCY_WINDOW_MS] = 100.0
    p[ka.P_VALUE_NOISE] = 0.5
    p[ka.P_MIN_BID_SHARE] = 0.5
    p[ka.P_MAX_BID_SHARE] = 0.99
    p[ka.P_POLICY] = policy
    p[ka.P_OUR_BID_FRACTION] = bid_fraction
    p[ka.P_SHADE_MARGIN] = 0.01
    p[ka.P_FAILED_COST_WEI] = failed_cost_wei
    return p


def opportunities(n, seed=0):
    """(value_wei float64, kind int32, opp_id int64) of n opportunities, ~0.01 ETH."""
    rng = np.random.default_rng(seed)
    return (rng.lognormal(np.log(1e16), 1.0, n), rng.integers(0, len(KINDS), n).astype(np.int32),
            rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64))


INTEGER_OUTPUTS = ("realized_won", "scenario_won")


def assert_same(a: dict, b: dict):
    for name in a:
        if name in INTEGER_OUTPUTS:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=0, err_msg=name)


@pytest.mark.slow  # the simulator runs every scenario thread in Python
@pytest.mark.usefixtures("simulator_threads")
@pytest.mark.parametrize("policy, failed_cost_wei", [(ka.POLICY_FIXED, 0.0), (ka.POLICY_SHADE, 1e14)])
def test_cpu_equals_simulator(policy, failed_cost_wei):
    """12 opportunities × 6 scenarios × 16 searchers (the simulator runs every thread as Python: small on purpose);
    one thread per opportunity (one block of 128, tail masked). Floats within 1e-12 relative (here they are in
    fact equal), integers exactly."""
    value, kind, ids = opportunities(12, seed=1)
    pop, p = population(16, seed=2), params(policy, failed_cost_wei=failed_cost_wei)
    cpu = run_auction(value, kind, ids, pop, p, 99, 6, "cpu", record_scenarios=4)
    sim = run_auction(value, kind, ids, pop, p, 99, 6, "cudasim", record_scenarios=4)
    assert_same(cpu, sim)
    for name in cpu:
        np.testing.assert_array_equal(cpu[name], sim[name])  # no FMA on either: bit-identical
    assert 0.0 < cpu["win_probability"].mean() < 1.0 and cpu["realized_won"].any() and not cpu["realized_won"].all()


@pytest.mark.gpu
def test_cuda_equals_cpu():
    """On a real GPU (skipped elsewhere): libdevice's exp/log/cos and FMA contraction may move a bid by an ulp,
    so floats compare with rtol 1e-9 and a win may flip only on an ulp-close tie (none expected here)."""
    value, kind, ids = opportunities(2000, seed=1)
    pop, p = population(32, seed=2), params(ka.POLICY_SHADE)
    cpu = run_auction(value, kind, ids, pop, p, 99, 256, "cpu", record_scenarios=4)
    gpu = run_auction(value, kind, ids, pop, p, 99, 256, "cuda", record_scenarios=4)
    for name in cpu:
        if name in INTEGER_OUTPUTS:
            assert (cpu[name] != gpu[name]).mean() < 1e-3, name
        else:
            np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-9, atol=1e-9 * value.max(), err_msg=name)


def test_cpu_equals_python_reference():
    value, kind, ids = opportunities(6, seed=3)
    pop, p = population(5, seed=4), params(ka.POLICY_SHADE)
    python = BuildBackend("cpu", build_kernel("auction", "python"))  # the source run as Python, launched as on cpu
    assert_same(run_auction(value, kind, ids, pop, p, 5, 10, "cpu", 10),
                run_auction(value, kind, ids, pop, p, 5, 10, python, 10))


@pytest.mark.parametrize("policy", [ka.POLICY_FIXED, ka.POLICY_SHADE])
def test_the_realized_outcome_alone_equals_the_full_auctions(policy):
    """The ordered pass decides a bundle's fate with the `realized` driver; the post-run reports the full kernel's
    outcome: bid and realized won are the same numbers (its CUDA build against this: tests/kernels/test_cudasim.py)."""
    from gpubt.backend import cpu_backend

    value, kind, ids = opportunities(40, seed=11)
    pop, p = population(12, seed=12), params(policy)
    full = run_auction(value, kind, ids, pop, p, 7, 8, "cpu")
    bid, won = np.zeros(40), np.zeros(40, np.bool_)
    cpu_backend().launch("auction", "realized", 40, (7, 8, ids, value, kind, *kernel_searchers(pop, p), p, bid,
                                                      won))
    np.testing.assert_array_equal(bid, full["our_bid_wei"])
    np.testing.assert_array_equal(won, full["realized_won"])
    assert won.any() and not won.all()


def test_draws_do_not_depend_on_batch_or_order():
    """A trade's scenarios are a function of (seed, its id): a subset, reversed, gets the same outputs."""
    value, kind, ids = opportunities(30, seed=5)
    pop, p = population(10, seed=6), params()
    whole = run_auction(value, kind, ids, pop, p, 1, 50, "cpu")
    part = run_auction(value[::-3], kind[::-3], ids[::-3], pop, p, 1, 50, "cpu")
    for name in ("win_probability", "expected_payoff_wei", "realized_won"):
        np.testing.assert_array_equal(whole[name][::-3], part[name])


def test_scenario_record_agrees_with_summary():
    value, kind, ids = opportunities(20, seed=7)
    out = run_auction(value, kind, ids, population(15, seed=8), params(), 3, 64, "cpu", record_scenarios=64)
    np.testing.assert_allclose(out["scenario_won"].mean(axis=1), out["win_probability"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(out["scenario_max_bid_wei"].mean(axis=1), out["mean_max_bid_wei"], rtol=1e-12)
    bid = out["our_bid_wei"]
    np.testing.assert_allclose(out["expected_payoff_wei"], out["win_probability"] * (value - bid), rtol=1e-9)


@pytest.mark.parametrize("policy", [ka.POLICY_FIXED, ka.POLICY_SHADE])
def test_no_competitor_we_always_win_and_pay_our_bid(policy):
    value, kind, ids = opportunities(50, seed=9)
    out = run_auction(value, kind, ids, population(0), params(policy, bid_fraction=0.8), 0, 100, "cpu")
    expected_bid = 0.8 * value if policy == ka.POLICY_FIXED else np.zeros_like(value)  # shade: E[max bid] = 0
    np.testing.assert_array_equal(out["our_bid_wei"], expected_bid)
    assert (out["win_probability"] == 1.0).all() and out["realized_won"].all()
    np.testing.assert_allclose(out["expected_payoff_wei"], value - expected_bid, rtol=1e-12)  # a sum of S terms / S
    assert (out["mean_winning_bid_wei"] == 0).all() and (out["mean_bidders"] == 0).all()


def test_broke_or_blind_competitors_never_win():
    value, kind, ids = opportunities(30, seed=10)
    pop = population(20, seed=11)
    broke = SearcherPopulation(KINDS, pop.skill, pop.latency_ms, np.full(20, 1.0), pop.primary_kind, pop.focus)
    blind = SearcherPopulation(KINDS, pop.skill, pop.latency_ms, pop.capital_wei, pop.primary_kind,
                               np.zeros_like(pop.focus))
    for other in (broke, blind):
        assert (run_auction(value, kind, ids, other, params(), 0, 50, "cpu")["win_probability"] == 1.0).all()


def test_more_competitors_lower_our_win_probability():
    """Nested populations (the first N of one population): per scenario the competing bids only grow with N, so
    the win probability falls monotonically, exactly; fresh populations: it falls on average (fixed seed)."""
    value, kind, ids = opportunities(100, seed=12)
    big = population(64, seed=13)
    probs = []
    for n in (0, 2, 4, 8, 16, 32, 64):
        sub = SearcherPopulation(KINDS, big.skill[:n], big.latency_ms[:n], big.capital_wei[:n],
                                 big.primary_kind[:n], big.focus[:n])
        probs.append(run_auction(value, kind, ids, sub, params(), 4, 200, "cpu")["win_probability"])
    probs = np.array(probs)
    assert (np.diff(probs, axis=0) <= 0).all()            # per opportunity, exactly
    means = probs.mean(axis=1)
    assert means[0] == 1.0 and (np.diff(means) < 0).all() and means[-1] < 0.2
    fresh = [run_auction(value, kind, ids, population(n, seed=100 + n), params(), 4, 200, "cpu")["win_probability"]
             .mean() for n in (4, 16, 64)]
    assert fresh[0] > fresh[1] > fresh[2]


def test_more_skilled_competitors_lower_our_win_probability():
    value, kind, ids = opportunities(100, seed=14)
    means = [run_auction(value, kind, ids, population(12, seed=15, skill=s), params(), 6, 200, "cpu")
             ["win_probability"].mean() for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert (np.diff(means) < 0).all(), means


def test_a_higher_bid_wins_more_and_keeps_less():
    value, kind, ids = opportunities(100, seed=16)
    pop = population(12, seed=17)
    outs = [run_auction(value, kind, ids, pop, params(bid_fraction=f), 8, 200, "cpu") for f in (0.6, 0.8, 0.95)]
    wins = [o["win_probability"] for o in outs]
    assert (wins[0] <= wins[1]).all() and (wins[1] <= wins[2]).all()  # same scenarios: exact per opportunity
    kept = [((value - o["our_bid_wei"]) / value) for o in outs]
    assert (kept[0] > kept[1]).all() and (kept[1] > kept[2]).all()
