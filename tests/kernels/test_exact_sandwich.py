"""kernels/exact_sandwich.py against its oracle, gpubt.strategies.sandwich.price_sandwich: on seeded random V2 and V3
scenarios (one to four victims, exact input and exact output, slippage limits from tight to loose, the screen's
hints too low, too high and right, capitals that bind and that do not) the same front-run, bound and bundle (each
victim's amounts or its revert, the ticks crossed, the gross profit) or the same "no sandwich", nothing handed back;
on the CPU build (GPUBT_U256_CASES // 10 scenarios, default 2,000) and under numba's CUDA simulator (200). Its
driver's sm_90 PTX: tests/kernels/test_ptx.py (on the example launch of tests/kernels/registry_examples.py, assembled
by ptxas there)."""
from __future__ import annotations

import random
import warnings

import pytest

from gpubt.backend import Backend
from gpubt.exact import v3
from gpubt.exact.hops import v3_quote_pool
from gpubt.strategies import exact_engine
from gpubt.strategies.sandwich import ExactPool, V2PoolFactory, price_sandwich

from .test_exact_uniswap import random_v3_pool
from .test_u256 import TARGET_CASES


def _log_uniform(rng, lo: float, hi: float) -> int:
    return int(10 ** rng.uniform(lo, hi))


def _pool_spec(rng):
    """A V2 pool of mainnet-sized reserves, or a random V3 pool of test_exact_uniswap.py (its tick table)."""
    if rng.random() < 0.6:
        return ("v2", rng.choice([3000, 3000, 500, 10000, 0]), _log_uniform(rng, 15, 25), _log_uniform(rng, 15, 25))
    pool = random_v3_pool(rng)
    ticks = [c * pool.tick_spacing for c in pool.initialized]
    table = (ticks, [pool.ticks[t].liquidity_net for t in ticks], [pool.ticks[t].liquidity_gross for t in ticks])
    return ("v3", pool.fee, pool.tick_spacing, pool.sqrt_price_x96, pool.liquidity, pool.tick, table)


def _make_pool(spec):
    if spec[0] == "v2":
        return V2PoolFactory(spec[1], (spec[2], spec[3]))
    return lambda: ExactPool(True, spec[1], v3_pool=v3_quote_pool(spec[1], spec[2], *spec[3:7]))


def _scenario(rng):
    """(pool spec, zero_for_one, victims, x_float, a_max_float, capital_raw)."""
    spec = _pool_spec(rng)
    zfo = rng.random() < 0.5
    pool = _make_pool(spec)()
    size = rng.choice([(12, 17), (15, 20), (17, 22)])
    victims = []
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        slip = rng.choice([0.0, 0.001, 0.005, 0.02, 0.1, 0.5])
        if rng.random() < 0.7:
            amount = _log_uniform(rng, *size)
            q = pool.quote(zfo, amount)
            out = q[1] if q is not None else 0
            victims.append((amount, int(out * (1 - slip)), False))
        else:
            want = _log_uniform(rng, size[0] - 2, size[1] - 2)
            q = pool.quote(zfo, -want)
            paid = q[0] if q is not None else _log_uniform(rng, *size)
            victims.append((int(paid * (1 + slip)) + rng.randint(0, 3), want, True))
    first = victims[0][0]
    x_float = first * 10 ** rng.uniform(-3, 1)
    a_max_float = x_float * 10 ** rng.uniform(0, 1.5) if rng.random() < 0.9 else 0.0
    capital = float(_log_uniform(rng, 14, 26)) if rng.random() < 0.95 else rng.choice([0.0, 0.5, 1.0])
    return spec, zfo, victims, x_float, a_max_float, capital


def _oracle(scenarios, steps: list | None = None):
    """price_sandwich of each scenario; the V3 swap loop's iterations each took appended to `steps`."""
    if steps is None:
        return [price_sandwich(_make_pool(s[0]), s[1], s[2], s[3], s[4], s[5]) for s in scenarios]
    swap_outcome = v3.V3Pool.swap_outcome
    counted = [0]

    def counting(pool, *args, **kwargs):
        o = swap_outcome(pool, *args, **kwargs)
        counted[0] += o.steps
        return o

    out = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(v3.V3Pool, "swap_outcome", counting)
        for s in scenarios:
            counted[0] = 0
            out.append(price_sandwich(_make_pool(s[0]), s[1], s[2], s[3], s[4], s[5]))
            steps.append(counted[0])
    return out


def _comparable(result):
    if result is None:
        return None
    a, a_max, r = result
    return (a, a_max, r["front_out"], r["back_out"], r["victim_in"], r["victim_out"], r["reverted"], r["crossed"],
            r["gross"])


@pytest.mark.parametrize("target", ["cpu", pytest.param("cudasim", marks=pytest.mark.slow)])
def test_sandwich_prices_equal_the_oracle(target):
    rng = random.Random(f"sandwich:{target}")
    n = TARGET_CASES[target] // 10 if target == "cpu" else 200
    scenarios = [_scenario(rng) for _ in range(n if target == "cpu" else 3 * n)]
    steps = []
    expected = _oracle(scenarios, steps)
    if target == "cudasim":   # the simulator runs ~1,000× slower: scenarios of up to 300 V3 swap steps in all
        keep = [t for t, k in enumerate(steps) if k <= 300][:n]
        scenarios, expected = [scenarios[t] for t in keep], [expected[t] for t in keep]
    assert len(scenarios) == n
    handed_back = []
    exact_engine.stats.clear()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        got = exact_engine.sandwich_prices(Backend(target), scenarios, lambda t: handed_back.append(t) or
                                           expected[t])
    assert not handed_back, f"{len(handed_back)} scenarios handed back to the oracle, first {handed_back[:3]}"
    differ = [(t, _comparable(g), _comparable(e)) for t, (g, e) in enumerate(zip(got, expected))
              if _comparable(g) != _comparable(e)]
    assert not differ, f"{len(differ)} of {n} differ, first: {differ[:2]}"
    done = [e for e in expected if e is not None]
    # the cases cover what they claim to: sandwiches and none, V3 ones, several victims with a revert among them,
    # exact-output victims, capital binding (the front-run at the capital)
    assert len(done) > n // 4 and len(done) < n
    assert sum(s[0][0] == "v3" for s, e in zip(scenarios, expected) if e is not None) > n // 40
    assert any(any(e[2]["reverted"][1:]) for e in done)
    assert sum(any(v[2] for v in s[2]) for s, e in zip(scenarios, expected) if e is not None) > n // 20
    assert any(e[0] == int(s[5]) for s, e in zip(scenarios, expected) if e is not None)
