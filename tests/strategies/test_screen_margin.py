"""The float64 screen never drops an opportunity whose exact profit clears the threshold: one margin rule
(strategies/base.py: Strategy.passes_screen, screen_floor) for every strategy.

Per strategy, end to end on the tiny market (coarse 6- and 8-decimal tokens among its profit tokens): the trade
whose float screen most underestimates the figure its decision is made on (the exact net profit; CEX-DEX: the
exact net at the point's reference) is still taken when the threshold sits 1 wei under that figure, and is dropped
when the margin is zero (so the test sees the margin at work).

On random V2 cycles with mainnet-like reserves, coarse intermediates (6- and 8-decimal tokens) included, the
float screen's profit never underestimates the exact (integer, refined) profit by more than the screening
margin, so exact net > threshold implies float net > screen_floor(threshold): the candidate reaches exact
re-pricing. (Mixed V2/V3 cycles: tests/kernels/test_amm_v3.py bounds their float-vs-exact error.)
"""
import numpy as np
import pytest

from gpubt.backend import Backend
from gpubt.data.store import Dataset
from gpubt.run.loop import Backtest
from gpubt.run.setup import load_strategy
from gpubt.exact.v2 import refine_optimal_input
from gpubt.strategies import base
from gpubt.strategies.base import SCREEN_MARGIN_REL, SCREEN_MARGIN_WEI, screen_floor

from ..cli import compose
from ..market import GAS


def test_float_screen_never_underestimates_beyond_the_margin(cpu_kernels):
    rng = np.random.default_rng(11)
    worst = 0.0
    checked = 0
    for _ in range(400):
        hops = int(rng.integers(2, 4))
        # WETH (1e18/unit) → intermediates with 6, 8 or 18 decimals → WETH; prices around 1:2000 etc.
        decimals = rng.choice([6, 8, 18], hops - 1)
        depth_eth = 10 ** rng.uniform(1, 4.5, hops)
        price = 10 ** rng.uniform(-1, 3.5, hops - 1)              # intermediate tokens per ETH
        units = [1e18] + [10.0 ** d for d in decimals] + [1e18]
        token_per_eth = [1.0] + list(price) + [1.0]
        r_in, r_out = [], []
        for h in range(hops):
            skew = 1 + rng.normal(0, 0.01)
            r_in.append(int(depth_eth[h] * token_per_eth[h] * units[h]))
            r_out.append(int(depth_eth[h] * token_per_eth[h + 1] * units[h + 1] * skew))
        k, m, n = 1.0, 1.0, 0.0
        for a, b in zip(r_in, r_out):
            k, m, n = cpu_kernels.compose_hop(k, m, n, float(a), float(b), 0.997)
        x, float_gross = cpu_kernels.optimal_profit(k, m, n)   # what the V2 screen reports (kernels/cycles.py)
        if x <= 0:
            continue
        _, exact_gross = refine_optimal_input(x, r_in, r_out, [3000] * hops)
        if exact_gross <= 0:
            continue
        checked += 1
        shortfall = exact_gross - float_gross           # how much the float screen underestimates
        margin = SCREEN_MARGIN_REL * abs(float_gross) + SCREEN_MARGIN_WEI
        assert shortfall < margin, (r_in, r_out, exact_gross, float_gross)
        worst = max(worst, shortfall / max(exact_gross, 1))
        # the property the controller relies on, for a threshold just under the exact profit
        gas = 3e15
        threshold = exact_gross - gas - 1
        assert float_gross - gas > screen_floor(int(threshold), float_gross)
    assert checked > 100
    assert worst < SCREEN_MARGIN_REL / 3  # the margin keeps a 3x safety factor over the worst case seen


def _decisions(tiny, name: str, min_profit_wei: int) -> dict:
    """Run strategy `name` (its default config) over the tiny market at `min_profit_wei`; returns
    {(block, tx, pools): (screened net, decision figure, taken)} of every exactly priced candidate."""
    ds = Dataset(tiny)
    strategy = load_strategy(name)(compose(f"strategy={name}").strategy[name], ds, Backend("cpu"), GAS, min_profit_wei)
    seen = {}
    takes = strategy.takes

    def recording(trade, screened_wei, decision_wei=None):
        taken = takes(trade, screened_wei, decision_wei)
        if trade is not None:
            key = (trade["block_number"], trade["tx_index"], tuple(trade["pools"]))
            decision = trade["net_profit_wei"] if decision_wei is None else decision_wei
            seen[key] = (screened_wei, decision, taken)
        return taken

    strategy.takes = recording
    Backtest(ds, strategy.backend, [strategy], GAS, 50, progress=False).run()
    return seen


@pytest.fixture(scope="module")
def tiny(tiny_cache):
    from ..conftest import TINY

    return tiny_cache / TINY


@pytest.mark.parametrize("name", ["arbitrage", "sandwich", "jit", "liquidation", "cexdex"])
def test_every_strategy_keeps_what_its_exact_figure_takes(tiny, monkeypatch, name):
    loose = _decisions(tiny, name, -10**16)  # a threshold under zero: every kind has trades here
    under = {k: d - s for k, (s, d, taken) in loose.items() if taken and s is not None and d > s + 1}
    assert under, f"{name}: no trade whose float screen underestimates its exact figure on tiny"
    key = max(under, key=under.get)
    threshold = int(loose[key][1]) - 1  # the bare rule `screen > threshold` would drop it: screen <= threshold
    assert loose[key][0] <= threshold
    assert _decisions(tiny, name, threshold).get(key, (0, 0, False))[2], f"{name}: {key} dropped"
    monkeypatch.setattr(base, "SCREEN_MARGIN_REL", 0.0)
    monkeypatch.setattr(base, "SCREEN_MARGIN_WEI", 0)
    # that candidate is dropped (a liquidation may then take a larger step of the same position at the same point:
    # another candidate, with another figure)
    again = _decisions(tiny, name, threshold).get(key, (0, 0, False))
    assert not (again[2] and again[1] == loose[key][1]), again
