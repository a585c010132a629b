"""Liquidation screening kernel: CPU build vs pure Python, the health-factor / profit math vs a hand computation
(CPU vs CUDA simulator: tests/kernels/test_cudasim.py; sm_90 PTX: tests/kernels/test_ptx.py)."""
import math

import numpy as np
import pytest
from gpubt.backend import Backend
from gpubt.kernels.compile import build_kernel

from . import v3_market


@pytest.fixture(scope="module")
def ref():
    return build_kernel("liquidation", "python")


@pytest.fixture(scope="module")
def cpu():
    return Backend("cpu").compiled("liquidation")  # as the backtester


def outputs(n):
    return (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n), np.zeros(n))


def random_args(seed=0, n_positions=40, n_blocks=5, v3_share=0.5):
    """Kernel args (without outputs): positions over 4 tokens on a random mixed V2/V3 state log, 1–3 random
    routes of 1–2 hops each, health factors around 1, every (position, block) pair."""
    args, _, meta = v3_market.random_batch(seed, n_pools=12, n_pairs=10, n_blocks=n_blocks, v3_share=v3_share)
    state, max_steps = args[9:21], args[21]
    rng = np.random.default_rng(seed + 7)
    n_tokens = 4
    scale = np.array([1e18, 1e6, 1e18, 1e8])
    price = np.array([2000.0, 1.0, 15.0, 30000.0])[None, :] * np.exp(rng.normal(0, 0.05, (n_blocks, n_tokens)))
    price[0, 2] = np.nan  # no oracle price yet: not liquidatable
    ct = rng.integers(0, n_tokens, n_positions).astype(np.int32)
    dt = ((ct + rng.integers(1, n_tokens, n_positions)) % n_tokens).astype(np.int32)
    threshold, bonus, close = np.full(n_positions, 0.8), np.full(n_positions, 0.06), np.full(n_positions, 0.5)
    collateral_usd = rng.uniform(1e3, 1e5, n_positions)
    collateral = collateral_usd / price[1, ct] * scale[ct]
    debt = collateral_usd * threshold / rng.uniform(0.9, 1.1, n_positions) / price[1, dt] * scale[dt]
    debt[:3] = collateral_usd[:3] * 5 / price[1, dt[:3]] * scale[dt[:3]]  # deep bad debt: seize everything
    n_routes = rng.integers(0, 4, n_positions)
    route_offsets = np.zeros(n_positions + 1, np.int64)
    np.cumsum(n_routes, out=route_offsets[1:])
    r = int(route_offsets[-1])
    hops = rng.integers(1, 3, r)
    route_pools = np.full((r, 2), -1, np.int32)
    for k, h in enumerate(hops):
        route_pools[k, :h] = rng.choice(len(meta["fee"]), h, replace=False)
    route_zfo = rng.random((r, 2)) < 0.5
    route_is_v3 = (route_pools >= 0) & meta["is_v3_pool"][np.maximum(route_pools, 0)]
    route_gamma = np.where(route_pools >= 0, 1 - meta["fee"][np.maximum(route_pools, 0)] / 1e6, 0.0)
    route_gas = 300_000 + 60_000.0 * hops
    pair_position = np.repeat(np.arange(n_positions), n_blocks).astype(np.int32)
    pair_block = np.tile(np.arange(n_blocks), n_positions).astype(np.int32)
    ref_offset = rng.integers(-50, 2, n_positions).astype(np.int64)
    log_growth = np.log1p(rng.uniform(0, 2e-6, n_positions))
    return (pair_position, pair_block, ct, dt, collateral, debt, ref_offset, log_growth, threshold, bonus, close,
            route_offsets, route_pools, route_zfo, route_gamma, route_is_v3, route_gas, *state, max_steps, price,
            scale, 1e18 / price[:, 0], rng.uniform(1e9, 5e10, n_blocks), 5e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_equals_python_reference(ref, cpu, seed):
    args = random_args(seed)
    n = len(args[0])
    out_cpu, out_ref = outputs(n), outputs(n)
    cpu.liquidation_pairs_cpu(*args, *out_cpu)
    for i in range(n):
        ref.liquidation_pair(i, *args, *out_ref)
    for a, b in zip(out_cpu, out_ref):
        np.testing.assert_array_equal(a, b)
    health, route = out_cpu[0], out_cpu[3]
    assert (health < 1).any() and (health >= 1).any() and (route >= 0).any() and np.isinf(health).any()


def _one_pool_args(collateral_raw, debt_raw, rate=0.0, blocks_since=0):
    """10 WETH-ish collateral (token 0, 2,000 USD) against USDC debt (token 1), one V2 WETH/USDC pool:
    1,000 WETH / 2,000,000 USDC; LT 82.5 %, bonus 5 %, close factor 50 %, flash fee 5 bps, 30 gwei."""
    state = (np.array([0, 1], np.int64), np.array([-1], np.int64), np.array([1000e18]), np.array([2e12]),
             np.empty(0), np.empty(0), np.empty(0, np.int32), np.empty(0, np.int32), np.zeros(1, np.int64),
             np.empty(0, np.int32), np.empty(0), np.empty(0))
    return (np.array([0], np.int32), np.array([0], np.int32), np.array([0], np.int32), np.array([1], np.int32),
            np.array([collateral_raw]), np.array([debt_raw]), np.array([-blocks_since], np.int64),
            np.array([math.log1p(rate)]), np.array([0.825]), np.array([0.05]), np.array([0.5]),
            np.array([0, 1], np.int64), np.array([[0, -1]], np.int32), np.array([[True, False]]),
            np.array([[0.997, 0.0]]), np.array([[False, False]]), np.array([351_557.0]), *state, 64,
            np.array([[2000.0, 1.0]]), np.array([1e18, 1e6]), np.array([1e18 / 2000.0]), np.array([30e9]), 5e-4)


def test_health_and_profit_match_hand_computation(ref, cpu):
    args = _one_pool_args(10e18, 17_000e6)
    out = outputs(1)
    cpu.liquidation_pairs_cpu(*args, *out)
    health, repay, seized, route, amount_out, net = (o[0] for o in out)
    assert health == pytest.approx(10 * 2000 * 0.825 / 17_000, rel=1e-15)          # 0.970588...
    assert repay == pytest.approx(8_500e6, rel=1e-15)
    assert seized == pytest.approx(8_500 / 2000 * 1.05 * 1e18, rel=1e-15)           # 4.4625 WETH
    x = 0.997 * 4.4625e18
    want_out = x * 2e12 / (1000e18 + x)
    assert route == 0 and amount_out == pytest.approx(want_out, rel=1e-14)
    want_net = (want_out - 8_500e6 * 1.0005) / 1e6 * (1e18 / 2000) - 351_557 * 30e9
    assert net == pytest.approx(want_net, rel=1e-12)
    assert net > 0  # 5 % bonus beats 0.3 % fee + ~0.45 % impact + 5 bps + gas


def test_bad_debt_seizes_all_collateral_and_interest_accrues(cpu):
    out = outputs(1)
    cpu.liquidation_pairs_cpu(*_one_pool_args(4e18, 17_000e6), *out)
    assert out[2][0] == 4e18                                                        # all the collateral
    assert out[1][0] == pytest.approx(4 * 2000 / 1.05 * 1e6, rel=1e-14)            # the debt it covers
    out = outputs(1)
    cpu.liquidation_pairs_cpu(*_one_pool_args(10e18, 16_000e6, rate=2e-6, blocks_since=30_000), *out)
    debt = 16_000 * math.exp(30_000 * math.log1p(2e-6))                             # 16,000 → ~16,970 USDC
    assert out[0][0] == pytest.approx(10 * 2000 * 0.825 / debt, rel=1e-12) and out[0][0] < 1
    out = outputs(1)
    cpu.liquidation_pairs_cpu(*_one_pool_args(10e18, 16_000e6), *out)
    assert out[0][0] > 1 and out[3][0] == -1 and np.isneginf(out[5][0])           # healthy: nothing to do
