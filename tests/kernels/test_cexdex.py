"""CEX-DEX screening kernel: CPU build vs pure Python, the closed forms (V2: the post-trade price sits at the band
edge; V3: the range walk equals the exact V3Pool swap to the target price), the real USDC/WETH V2 reserve path on
CPU and simulator (random inputs, CPU vs CUDA simulator: tests/kernels/test_cudasim.py; sm_90 PTX:
tests/kernels/test_ptx.py)."""

import numpy as np
import pytest
from gpubt.kernels import cexdex
from gpubt.kernels.compile import build_kernel

from gpubt.backend import Backend
from gpubt.exact import v2 as exact_v2

from ..conftest import SHARED_DATA
from . import v3_market

RESERVES_CSV = SHARED_DATA / "usdc-weth-v2" / "reserves.csv"
N_OUT = 6


@pytest.fixture(scope="module")
def ref():
    return build_kernel("cexdex", "python")


@pytest.fixture(scope="module")
def cpu():
    return Backend("cpu").compiled("cexdex")  # as the backtester builds it


def outputs(n):
    return (np.zeros(n, np.bool_), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n), np.zeros(n))


def random_args(seed=0, n_pairs=300, n_blocks=5, v3_share=0.5, spread=0.03):
    """Kernel args (without outputs) on a random mixed V2/V3 state log; pool p trades tokens 2p / 2p+1 (scale 1)
    whose reference prices sit around the pool's price (log-normal, `spread`), so both outcomes occur."""
    args, _, meta = v3_market.random_batch(seed, n_pools=12, n_pairs=10, n_blocks=n_blocks, v3_share=v3_share)
    state, max_steps = args[9:21], args[21]
    log_offsets, log_reserve0, log_reserve1, log_sqrt = state[0], state[2], state[3], state[4]
    rng = np.random.default_rng(seed + 100)
    n_pools = len(log_offsets) - 1
    token0 = (2 * np.arange(n_pools)).astype(np.int32)
    token1 = token0 + 1
    is_v3 = meta["is_v3_pool"]
    gamma = 1.0 - meta["fee"] / 1e6
    price = np.ones(n_pools)
    for p in range(n_pools):
        if log_offsets[p + 1] > log_offsets[p]:
            j = log_offsets[p]
            price[p] = log_sqrt[j] ** 2 if is_v3[p] else log_reserve1[j] / log_reserve0[j]
    ref_usd = np.ones((n_blocks, 2 * n_pools))
    ref_usd[:, token0] = price[None, :] * np.exp(rng.normal(0, spread, (n_blocks, n_pools)))
    mark_usd = ref_usd * np.exp(rng.normal(0, 0.002, ref_usd.shape))
    pair_block = rng.integers(0, n_blocks, n_pairs).astype(np.int32)
    pair_key = ((pair_block.astype(np.int64) << 20) + rng.integers(-1, 40, n_pairs)).astype(np.int64)
    pair_pool = rng.integers(0, n_pools, n_pairs).astype(np.int32)
    return (pair_pool, pair_key, pair_block, token0, token1, gamma, is_v3, *state, max_steps, ref_usd, mark_usd,
            np.ones(2 * n_pools), np.full(n_blocks, 1e18 / 2000.0), rng.uniform(1e9, 5e10, n_blocks), 0.9995, 0.0,
            87_984.0, 99_427.0, 23_703.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_equals_python_reference(ref, cpu, seed):
    args = random_args(seed)
    n = len(args[0])
    out_cpu, out_ref = outputs(n), outputs(n)
    cpu.cexdex_pairs_cpu(*args, *out_cpu)
    for i in range(n):
        ref.cexdex_pair(i, *args, *out_ref)
    for a, b in zip(out_cpu, out_ref):
        np.testing.assert_array_equal(a, b)
    assert (out_cpu[1] > 0).any() and (out_cpu[1] == 0).any()  # trades and in-band points
    assert (out_cpu[3] > 0).any()  # some V3 trade crosses a tick


@pytest.mark.parametrize("zero_for_one", [True, False])
def test_v2_closed_form_puts_price_at_band_edge(ref, zero_for_one):
    """x* moves the pool's price (net of its fee) to the band edge reference·γ·keep (or reference/(γ·keep)),
    maximizes q·out(x) − x, and the exact integer swap at floor(x*) lands on the same price."""
    r0, r1 = 5_000 * 10**18, 11_000_000 * 10**6        # WETH (token0) / USDC (token1): 2,200 USDC per WETH
    gamma, keep = 0.997, 1 - 5e-4
    p_pool = r1 / r0
    # selling token0 (zero_for_one) pays when the pool's token0 is dear: pool price above the reference band
    p_ref = p_pool / 1.02 if zero_for_one else p_pool * 1.02
    q = keep / p_ref if zero_for_one else keep * p_ref   # value of a raw output unit in raw input units, kept
    r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
    x = ref.v2_input_to_rate(float(r_in), float(r_out), gamma, q)
    assert x > 0
    out = ref.v2_amount_out(x, float(r_in), float(r_out), gamma)
    rate = gamma * r_in * r_out / (r_in + gamma * x) ** 2          # d out / dx at x*
    assert rate * q == pytest.approx(1.0, rel=1e-12)
    # virtual post-trade reserves (the fee kept out): their price is the band edge
    v_in, v_out = r_in + gamma * x, r_out - out
    post_price = v_out / v_in if zero_for_one else v_in / v_out   # token1 per token0
    edge = p_ref / (gamma * keep) if zero_for_one else p_ref * gamma * keep
    assert post_price == pytest.approx(edge, rel=1e-12)
    profit = lambda y: q * ref.v2_amount_out(y, float(r_in), float(r_out), gamma) - y
    assert profit(x) >= profit(x * (1 - 1e-3)) and profit(x) >= profit(x * (1 + 1e-3)) and profit(x) > 0
    # exact: the pool's reserves after the integer swap (fee accrued in r_in) sit within the fee share of x
    amount_out = exact_v2.get_amount_out(int(x), r_in, r_out)
    float_out = ref.v2_amount_out(float(int(x)), float(r_in), float(r_out), gamma)
    assert amount_out == pytest.approx(float_out, rel=1e-12, abs=1)  # the floor of the same number
    a_in, a_out = r_in + int(x), r_out - amount_out
    real_price = a_out / a_in if zero_for_one else a_in / a_out
    assert real_price == pytest.approx(edge, rel=2 * (1 - gamma) * x / r_in)
    # inside the band: no trade either way
    band = p_pool * (1 + 0.5 * (1 - gamma))
    assert ref.v2_input_to_rate(float(r0), float(r1), gamma, keep / band) == 0.0
    assert ref.v2_input_to_rate(float(r1), float(r0), gamma, keep * band) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_v3_walk_equals_exact_swap_to_target(ref, seed):
    """The range walk to a target price equals the exact V3Pool swap with that price limit: amount in (fee
    included), amount out and initialized ticks crossed; in range and across ticks."""
    from gpubt.market.batch import tick_sqrt_price

    rng = np.random.default_rng(seed)
    pool = v3_market.random_v3_pool(rng, liquidity_scale=1e21)
    (s, L, tick), (t_index, t_sqrt, t_net) = v3_market.float_state(pool)
    gamma = 1 - pool.fee / 1e6
    for move in (1e-4, 3e-3, 0.03, 0.2):
        for zfo in (True, False):
            target = s * (1 - move if zfo else 1 + move)
            x, out, crossed, s_after, status = ref.v3_input_to_price(
                zfo, gamma, s, L, tick, t_index, t_sqrt, t_net, 0, len(t_index), target, 64)
            assert status == cexdex.V3_OK and s_after == target
            limit = int(target * 2**96)
            o = pool.swap_outcome(zfo, 10**40, limit, commit=False)
            paid, got = (o.amount0, -o.amount1) if zfo else (o.amount1, -o.amount0)
            assert x == pytest.approx(paid, rel=1e-9, abs=2) and out == pytest.approx(got, rel=1e-9, abs=2)
            assert crossed == o.ticks_crossed
    assert tick_sqrt_price(0) == 1.0


def _load_reserves(limit=None):
    """(block numbers, exact reserve0s, exact reserve1s) of reserves.csv (quoted decimal strings)."""
    import csv

    with open(RESERVES_CSV, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    rows = rows[:limit] if limit else rows
    return (np.array([int(r[0]) for r in rows], np.int64), [int(r[1]) for r in rows], [int(r[2]) for r in rows])


def usdc_weth_args(blocks, r0_exact, r1_exact, markout=0, halflife=25.0, cex_fee_bps=5.0):
    """Kernel args for the real USDC/WETH pair: its state after block o is log entry o (key o << 20), evaluated
    at the top of block o + 1. Reference (a documented stand-in; no CEX series is in the repo): the pool's own
    WETH price smoothed by an EMA (half-life `halflife` blocks) and lagged one block, so a price jump leaves the
    pool off-reference until the EMA catches up, as a CEX that leads the pool would. USDC = 1 USD."""
    n = len(blocks)
    r0 = np.array([float(v) for v in r0_exact])
    r1 = np.array([float(v) for v in r1_exact])
    eth_usd = (r0 / 1e6) / (r1 / 1e18)
    alpha = 1 - 0.5 ** (1 / halflife)
    ema = np.empty(n)
    ema[0] = eth_usd[0]
    for i in range(1, n):
        ema[i] = ema[i - 1] + alpha * (eth_usd[i - 1] - ema[i - 1])
    ref_usd = np.ones((n + 1, 2))
    ref_usd[1:, 1] = ema
    ref_usd[0, 1] = ema[0]
    mark_usd = ref_usd.copy()
    if markout:
        mark_usd[:-markout] = ref_usd[markout:]
    state = (np.array([0, n], np.int64), np.arange(n, dtype=np.int64) << 20, r0, r1, np.empty(0), np.empty(0),
             np.empty(0, np.int32), np.empty(0, np.int32), np.zeros(1, np.int64), np.empty(0, np.int32),
             np.empty(0), np.empty(0))
    pair_key = ((np.arange(n, dtype=np.int64) + 1) << 20) - 1
    args = (np.zeros(n, np.int32), pair_key, np.arange(1, n + 1, dtype=np.int32), np.zeros(1, np.int32),
            np.ones(1, np.int32), np.array([0.997]), np.zeros(1, np.bool_), *state, 64, ref_usd, mark_usd,
            np.array([1e6, 1e18]), 1e18 / ref_usd[:, 1], np.full(n + 1, 20e9), 1 - cex_fee_bps / 1e4, 0.0,
            87_984.0, 99_427.0, 23_703.0)
    return args, ref_usd


def test_real_usdc_weth_reserve_path(cpu):
    """38,164 real blocks: a trade exactly where the pool is outside the fee band of the reference (none inside),
    each trade's post-trade price at the band edge, never a loss against its own reference, the exact V2
    re-pricing within 1e-9 of the float, and the simulator equal to the CPU on a slice."""
    blocks, r0_exact, r1_exact = _load_reserves()
    n = len(blocks)
    assert n > 38_000
    args, ref_usd = usdc_weth_args(blocks, r0_exact, r1_exact)
    out = outputs(n)
    cpu.cexdex_pairs_cpu(*args, *out)
    zfo, x, amount_out, crossed, gross_usd, net = out
    gamma, keep = 0.997, 1 - 5e-4
    r0, r1 = args[9], args[10]
    p_pool = r1 / r0                                       # raw WETH per raw USDC
    p_ref = (1 / 1e6) / (ref_usd[1:, 1] / 1e18)
    lo_edge, hi_edge = gamma * keep * p_ref, p_ref / (gamma * keep)
    inside = (p_pool >= lo_edge * (1 + 1e-12)) & (p_pool <= hi_edge * (1 - 1e-12))
    outside = (p_pool < lo_edge * (1 - 1e-12)) | (p_pool > hi_edge * (1 + 1e-12))
    assert not (x[inside] > 0).any(), "a trade claimed inside the fee band"
    assert np.all(np.isneginf(net[inside])) and np.all(gross_usd[inside] == 0)
    assert (x[outside] > 0).all()
    share = outside.mean()
    assert 0.01 < share < 0.9, share                         # measured: see the report
    # post-trade (virtual) price at the band edge
    t = np.flatnonzero(x > 0)
    r_in = np.where(zfo[t], r0[t], r1[t])
    r_out = np.where(zfo[t], r1[t], r0[t])
    v_in, v_out = r_in + gamma * x[t], r_out - amount_out[t]
    post = np.where(zfo[t], v_out / v_in, v_in / v_out)
    edge = np.where(zfo[t], hi_edge[t], lo_edge[t])
    np.testing.assert_allclose(post, edge, rtol=1e-9)
    assert (gross_usd[t] > 0).all()                       # markout 0: the hedge at the reference never loses
    # exact re-pricing on a sample
    for i in np.random.default_rng(0).choice(t, size=min(300, len(t)), replace=False).tolist():
        a, b = (r0_exact[i], r1_exact[i]) if zfo[i] else (r1_exact[i], r0_exact[i])
        exact_out = exact_v2.get_amount_out(int(x[i]), a, b)
        assert exact_out == pytest.approx(amount_out[i], rel=1e-9)
    # the simulator on a slice with trades
    lo = max(0, int(t[0]) - 50)
    sl, _ = usdc_weth_args(blocks[lo:lo + 150], r0_exact[lo:lo + 150], r1_exact[lo:lo + 150])
    a_cpu, a_sim = outputs(150), outputs(150)
    Backend("cpu").launch("cexdex", "cexdex_pairs", 150, (*sl, *a_cpu))
    Backend("cudasim").launch("cexdex", "cexdex_pairs", 150, (*sl, *a_sim))
    for a, b in zip(a_cpu, a_sim):
        np.testing.assert_array_equal(a, b)
    assert (a_cpu[1] > 0).any()


def test_real_path_markout_moves_profit_not_trades(cpu):
    """A markout 5 blocks later changes the profits (hedge at a later price), never which points trade."""
    blocks, r0_exact, r1_exact = _load_reserves(limit=5_000)
    now, _ = usdc_weth_args(blocks, r0_exact, r1_exact)
    later, _ = usdc_weth_args(blocks, r0_exact, r1_exact, markout=5)
    a, b = outputs(len(blocks)), outputs(len(blocks))
    cpu.cexdex_pairs_cpu(*now, *a)
    cpu.cexdex_pairs_cpu(*later, *b)
    np.testing.assert_array_equal(a[1], b[1])
    traded = a[1] > 0
    assert traded.any() and not np.array_equal(a[4][traded], b[4][traded])
