"""A seeded, mainnet-like synthetic Uniswap V2 + V3 market, written as a gpubt dataset (see gpubt/data/store.py).

What it simulates, per block of 12 s:
- reference USD prices: GBM with a calm/volatile Markov regime and a market (ETH) factor; stablecoins pinned;
- EIP-1559 base fee driven by a congestion AR(1) process;
- CEX-DEX arbitrageurs at the top of the block: pools outside the fee band of the reference are pushed back to
  its edge when that beats gas (LABELS kind "cexdex");
- noise traders (Poisson count, pools ∝ TVL^noise_tvl_exponent, lognormal USD size), each also a pending router
  swap (VICTIMS);
  on V2 pools a share `exact_output_share` of them are exact-output router calls (swapTokensForExactTokens):
  amountOut = getAmountOut(drawn input) on the state they meet, the pool takes getAmountIn(amountOut), and the
  VICTIMS row holds (amountInMax = drawn input raised by the slippage tolerance, amountOut, exact_output=True);
- cyclic-arbitrage searchers back-running noise swaps with the best 2- or 3-hop WETH cycle (LABELS "arbitrage"; a
  share `stable_start_share` of them run it from the first stablecoin on it, taking the profit there);
- sandwiches around V2 victims (LABELS "sandwich"), exact-input and exact-output: an exact-output victim buys the
  quote of its drawn input on the state before the front-run and pays getAmountIn of it after (<= amountInMax);
- JIT liquidity around large V3 noise swaps (LABELS "jit"): a searcher mints a position worth `jit_capital_eth` on
  the current tick spacing (or 2-3 spacings around it) just before the swap and burns it right after, when its fee
  share beats the inventory loss and the mint + burn gas (float screen: kernels/jit.py's jit_eval, the JIT
  strategy's own); every labeled opportunity goes to the winner of the searcher population's auction
  (gpubt/market/searchers.py), and only in blocks that take bundles;
- rival liquidators of the lending book (positions.parquet), once it is written: liquidations.parquet and LABELS
  "liquidation" (gpubt/data/rivals.py; the rival keeps the collateral, so EVENTS are untouched);
- occasional LP mints and burns: V2 proportional to the reserves; V3 new positions concentrated around the price
  (and some wide ones) and burns of existing positions (whole or in part).

V3 pools (`v3_pools` of them, 0 gives the V2-only market): fee tiers 100/500/3000/10000 pips (tick spacings
1/10/60/200) on WETH/stables, WETH/WBTC, stable/stable and WETH/tail pairs; each starts (genesis tx 0: Initialize
then Mints) with a protected full-range position, two wide ones and several concentrated around the price.
Noise traders, CEX-DEX arbitrageurs and the searchers (V3 legs in their cycles) trade them; the searchers pick
their cycle and input with the backtester's own float kernels (kernels/cycles.py: screen_cycle).

How, per partition of blocks: a numba float64 pass decides every action (`_simulate_partition_nb`), then a
Python-int pass replays the actions with Uniswap's exact integer math (`_replay_exact`: V2 getAmountOut, V3 the
exact V3Pool of gpubt.exact.v3), so every event, reserve, V3 state and profit in the dataset is exact; the float
state is re-synced from the exact one at every partition, whose SNAPSHOTS (and TICKS: the initialized ticks of
every V3 pool) it writes. Only one partition's rows are in memory at a time.

Label profits: "arbitrage" profit_raw is exact, in its start token (last hop's output − first hop's input): WETH
wei, or a stablecoin's raw units; "sandwich" the back-run's output − the front-run's input, in the front-run's input
token;
"jit" (tx_index of the mint; the victim is the next tx, the burn the one after) profit_raw is exact as
gpubt/strategies/jit.py defines its trades' profit: fees (mulDiv(fee growth inside, ΔL, 2**128), the victim's swap
run through exact.v3.swap_with_fees) + Δ of the input token + Δ of the output token valued at the pool's price after
the swap (exact.v3.jit_gross), in raw units of the victim's input token; gas_used = mint + burn gas. The burn's
EVENTS row holds the tokens the burn returns (Uniswap's Burn event); the fees it collects are no event (pool balances
keep every LP's uncollected fees);
"cexdex" profit_raw is in raw units of the token the arbitrageur received (profit_token):
amount_out − round(amount_in × reference rate of token_in in token_out at that block), i.e. the DEX leg
marked against a CEX hedge at the reference price.
"""
from __future__ import annotations

import json
import math
import pathlib
from collections import namedtuple

import numpy as np
import pyarrow as pa

from gpubt import schema
from gpubt.backend import Backend
from gpubt.data.store import PARTITIONED, DatasetWriter
from gpubt.exact import gas as exact_gas
from gpubt.exact import v3 as exact_v3
from gpubt.kernels import amm_v2, amm_v3
from gpubt.kernels.compile import cached_njit
from gpubt.market.auction import bidders
from gpubt.market.searchers import default_config

FIRST_BLOCK = 18_000_000
FIRST_TIMESTAMP = 1_693_066_895   # mainnet block 18,000,000 (2023-08-26)
BLOCK_SECONDS = 12
GAS_LIMIT = 30_000_000
FEE_PPM = 3000
GAMMA = 0.997                     # kept fraction of a V2 input at fee_ppm 3000
WETH = 0
HUBS = (("WETH", 18), ("USDC", 6), ("USDT", 6), ("DAI", 18), ("WBTC", 8))
STABLES = (1, 2, 3)
WBTC = 4
VENUES = ("uniswap_v2", "sushiswap", "uniswap_v3")
SLIPPAGES_BPS = (10, 50, 100, 300)

_COMMON = dict(
    generator=7,                  # raised when the generator's output changes: a cached market is then regenerated
    first_block=FIRST_BLOCK,
    price_interval=1,             # blocks between PRICES rows (plus the first block of every partition): the CEX
                                  # reference a CEX-DEX searcher decides on is the block's, not a stale sample
    eth_price_usd=2300.0,
    eth_vol=0.60,                 # annualised
    wbtc_vol=0.50,
    tail_vol_min=0.80, tail_vol_max=2.00,
    vol_regime_mult=3.0,          # volatility multiplier of the volatile regime
    calm_to_volatile=1 / 3000,    # per-block regime switch probabilities
    volatile_to_calm=1 / 600,
    base_fee_gwei=20.0,
    noise_median_usd=2500.0, noise_sigma=1.3,
    noise_max_tvl_frac=0.02,      # a noise swap is at most this fraction of the pool's TVL
    lp_event_share=0.03,          # share of user transactions that are LP mints/burns
    n_traders=5000,
    noise_tvl_exponent=0.6,       # a noise swap picks its pool with weight TVL**exponent (0.7 before generator 6)
    mev_block_share=0.55,         # blocks whose builder takes searchers' bundles (52 % carry no MEV payment)
    stable_start_share=0.1,       # back-runs by a searcher whose cycle starts at a stablecoin when it has one
    searcher_priority_gwei=1.0,   # searchers' priority fee (their bid to the builder is a transfer on top)
    cexdex_margin_usd=12.0,       # net of gas: the CEX leg's fixed cost and risk ...
    cexdex_fee_bps=1.0,          # ... plus its fees, per unit of the traded notional
    cex_listed_share=1.0,         # share of the tail tokens a CEX quotes (the deepest); the others are unlisted: no
                                  # CEX-DEX on their pools, their reference a DEX mark (their deepest WETH pool's)
    v3_pools=0,                   # Uniswap V3 pools on top of the n_pools V2 ones (0: the V2-only market)
    v3_hub_tvl_usd=25e6,          # median TVL of a V3 pool between two hub tokens (tail pools: $300k; $60M before
                                  # generator 6 made CEX-DEX's mean profit 2-3x the published one)
    v3_concentrated_positions=6,  # initial concentrated LP positions per V3 pool (plus 1 full-range, 2 wide)
    exact_output_share=0.2,       # share of V2 noise swaps that are exact-output router calls (0: all exact-in)
    jit_capital_eth=30.0,         # a JIT position mints tokens worth this much (ETH at the reference prices), as the
                                  # JIT strategy sizes its own (strategy.jit.capital_eth): the JIT knob, tuned to the
                                  # published rate, 18 a day = 0.0025 per block (small 0.0025, mainnet-month
                                  # partition 0.0029; more capital earns a larger fee share, so smaller swaps pay)
    # the searcher population and its bidding: configs/competition/default.yaml's (gpubt/market/searchers.py)
    competition={k: v for k, v in default_config().items() if k in ("seed", "searchers", "bidding")},
)

PRESETS: dict[str, dict] = {
    "tiny": dict(_COMMON, n_blocks=200, n_tokens=12, n_pools=30, swaps_per_block=8.0, partition_blocks=100,
                 v3_pools=8),
    "small": dict(_COMMON, n_blocks=2_000, n_tokens=60, n_pools=350, swaps_per_block=4.4, partition_blocks=500,
                  v3_pools=40, v3_hub_tvl_usd=12e6, base_fee_gwei=22.0),
    "mainnet-month": dict(_COMMON, n_blocks=216_000, n_tokens=300, n_pools=1_100, swaps_per_block=2.42,
                          partition_blocks=7_200, v3_pools=65, price_interval=10,   # 65M rows a month at 1
                          cex_listed_share=0.37, v3_hub_tvl_usd=13e6, base_fee_gwei=29.0),
}

# action kinds of the float pass (swaps first: kind <= SANDWICH is a swap); INITIALIZE only in genesis rows
NOISE, CEXDEX, ARB_HOP, SANDWICH, MINT, BURN, INITIALIZE = 0, 1, 2, 3, 4, 5, 6
_KIND_NAMES = ("swap", "swap", "swap", "swap", "mint", "burn", "initialize")
# hop of a NOISE action: how the user's router call is limited
# SANDWICHED (exact-in) and SANDWICHED_OUT (exact-out): a victim whose limit was quoted before the front-run
EXACT_IN, EXACT_OUT, SANDWICHED, SANDWICHED_OUT = 0, 1, 2, 3
# hop of a MINT/BURN action: an LP's position, or a JIT searcher's (minted the tx before a victim, burned after it)
LP_POSITION, JIT_POSITION = 0, 1
JIT_RANGE_SPACINGS = (1, 2, 3)   # JIT ranges [base − (k−1)·spacing, base + k·spacing): the JIT strategy's default
_STATUS_OK, _STATUS_FULL = 0, 1

# V3 float state of the float pass, per pool (V2 pools: version −1) and per V3 pool j in fixed-capacity rows:
# initialized ticks at [tick_offsets[2j], tick_offsets[2j+1]) of the flat tick arrays (row j starts at j·TICK_CAP,
# so version 2j is pool j's table as kernels/cycles.py reads it), LP position slots at [j·POS_CAP, (j+1)·POS_CAP).
V3Float = namedtuple("V3Float", [
    "sqrt_price", "liquidity", "tick", "version", "gamma", "spacing", "tvl_usd", "tick_offsets", "ticks",
    "tick_sqrt", "tick_net", "tick_refs", "pos_lower", "pos_upper", "pos_liq", "pos_active",
])
TICK_CAP = 64        # initialized ticks a V3 pool may hold in the float pass (a mint that would exceed it is skipped)
POS_CAP = 30         # LP position slots per V3 pool; slot 0 (full range) is never burned
SIM_MAX_STEPS = 1000 # the float pass follows a V3 swap through every tick it crosses
V3_FEE_TIERS = ((100, 1), (500, 10), (3000, 60), (10000, 200))  # (fee pips, tick spacing)

Knobs = namedtuple("Knobs", [
    "dt_years", "eth_vol", "vol_regime_mult", "calm_to_volatile", "volatile_to_calm", "base_fee_wei0",
    "swaps_per_block", "noise_log_median_usd", "noise_sigma", "noise_max_tvl_frac", "lp_event_share",
    "n_traders", "mev_block_share", "stable_start_share", "searcher_prio_wei", "cexdex_margin_usd", "cexdex_fee",
    "exact_output_share", "kind_arbitrage", "kind_sandwich", "kind_cexdex", "kind_jit", "jit_capital_wei", "jit_gas",
])


# ---------------------------------------------------------------------------------------------------------------
# float pass (numba)

_amount_out_nb = cached_njit(amm_v2.v2_amount_out)
_kernels = Backend("cpu").compiled("cycles")  # the backtester's device functions: searchers screen cycles as it does
_screen_cycle_nb = _kernels.screen_cycle
_v3_swap_nb = _kernels.v3_swap_exact_in
_v3_next_nb = _kernels.v3_next_tick_position
_max_frontrun_nb = Backend("cpu").compiled("sandwich").sandwich_max_frontrun_v2
_jit_eval_nb = Backend("cpu").compiled("jit").jit_eval
_position_amounts_nb = Backend("cpu").compiled("jit").position_amounts


@cached_njit
def _v3_swap_commit_nb(v3, p, amount_in, zfo):
    """Float V3 swap on pool p; updates its price, liquidity and tick; returns the output."""
    v = v3.version[p]
    out, s, liq, t, crossed, status = _v3_swap_nb(
        amount_in, zfo, v3.gamma[p], v3.sqrt_price[p], v3.liquidity[p], v3.tick[p], v3.ticks, v3.tick_sqrt,
        v3.tick_net, v3.tick_offsets[v], v3.tick_offsets[v + 1], SIM_MAX_STEPS)
    v3.sqrt_price[p] = s
    v3.liquidity[p] = liq
    v3.tick[p] = t
    return out


@cached_njit
def _v3_input_to_price_nb(v3, p, target_sqrt, zfo):
    """Input (after the fee) that moves V3 pool p's sqrt price to target_sqrt, walking its tick ranges."""
    v = v3.version[p]
    lo = v3.tick_offsets[v]
    hi = v3.tick_offsets[v + 1]
    s = v3.sqrt_price[p]
    liq = v3.liquidity[p]
    pos = _v3_next_nb(v3.tick[p], zfo, v3.ticks, lo, hi)
    need = 0.0
    for _ in range(hi - lo + 2):
        if zfo:
            s_next = v3.tick_sqrt[pos] if pos >= lo else amm_v3.MIN_SQRT_PRICE
            if target_sqrt >= s_next:
                return need + liq * (s - target_sqrt) / (s * target_sqrt)
            need += liq * (s - s_next) / (s * s_next)
            if pos < lo:
                return need
            liq -= v3.tick_net[pos]
            pos -= 1
        else:
            s_next = v3.tick_sqrt[pos] if pos < hi else amm_v3.MAX_SQRT_PRICE
            if target_sqrt <= s_next:
                return need + liq * (target_sqrt - s)
            need += liq * (s_next - s)
            if pos >= hi:
                return need
            liq += v3.tick_net[pos]
            pos += 1
        s = s_next
        liq = max(liq, 0.0)
    return need


@cached_njit
def _v3_tick_update_nb(v3, j, tick, net_delta, ref_delta):
    """Add net_delta to initialized tick `tick` of V3 pool j (inserting it, or removing it when its last
    position goes: ref_delta counts the live positions using the tick). False when the row is full."""
    lo = v3.tick_offsets[2 * j]
    n = v3.tick_offsets[2 * j + 1] - lo
    i = lo
    while i < lo + n and v3.ticks[i] < tick:
        i += 1
    if i < lo + n and v3.ticks[i] == tick:
        v3.tick_net[i] += net_delta
        v3.tick_refs[i] += ref_delta
        if v3.tick_refs[i] == 0:
            for k in range(i, lo + n - 1):
                v3.ticks[k] = v3.ticks[k + 1]
                v3.tick_sqrt[k] = v3.tick_sqrt[k + 1]
                v3.tick_net[k] = v3.tick_net[k + 1]
                v3.tick_refs[k] = v3.tick_refs[k + 1]
            v3.tick_offsets[2 * j + 1] -= 1
        return True
    if n >= TICK_CAP:
        return False
    for k in range(lo + n, i, -1):
        v3.ticks[k] = v3.ticks[k - 1]
        v3.tick_sqrt[k] = v3.tick_sqrt[k - 1]
        v3.tick_net[k] = v3.tick_net[k - 1]
        v3.tick_refs[k] = v3.tick_refs[k - 1]
    v3.ticks[i] = tick
    v3.tick_sqrt[i] = math.exp(tick * amm_v3.LOG_SQRT_TICK)
    v3.tick_net[i] = net_delta
    v3.tick_refs[i] = ref_delta
    v3.tick_offsets[2 * j + 1] += 1
    return True


@cached_njit
def _v3_modify_nb(v3, p, slot, lower, upper, liquidity_delta, ref_delta):
    """Float mint (delta > 0) or burn (delta < 0) of [lower, upper) on V3 pool p, position slot `slot`."""
    j = v3.version[p] // 2
    _v3_tick_update_nb(v3, j, lower, liquidity_delta, ref_delta)
    _v3_tick_update_nb(v3, j, upper, -liquidity_delta, ref_delta)
    if lower <= v3.tick[p] < upper:
        v3.liquidity[p] = max(v3.liquidity[p] + liquidity_delta, 0.0)
    k = j * POS_CAP + slot
    v3.pos_liq[k] += liquidity_delta
    if ref_delta > 0:
        v3.pos_lower[k] = lower
        v3.pos_upper[k] = upper
        v3.pos_active[k] = True
    elif ref_delta < 0:
        v3.pos_active[k] = False
        v3.pos_liq[k] = 0.0


@cached_njit
def _eip1559_next_nb(base_fee_wei, gas_used, gas_target):
    """Next block's base fee by the EIP-1559 integer rule; base × delta is split so int64 cannot overflow."""
    delta = gas_used - gas_target if gas_used >= gas_target else gas_target - gas_used
    q = base_fee_wei // gas_target
    r = base_fee_wei - q * gas_target
    change = (q * delta + (r * delta) // gas_target) // 8
    if gas_used > gas_target:
        return base_fee_wei + max(change, 1)
    return base_fee_wei - change


@cached_njit
def _v2_swap_commit_nb(rf0, rf1, p, amount_in, zfo):
    """Float V2 swap (fee 0.3 %) on pool p; updates its reserves, returns the output."""
    if zfo:
        out = _amount_out_nb(amount_in, rf0[p], rf1[p], GAMMA)
        rf0[p] += amount_in
        rf1[p] -= out
    else:
        out = _amount_out_nb(amount_in, rf1[p], rf0[p], GAMMA)
        rf1[p] += amount_in
        rf0[p] -= out
    return out


@cached_njit
def _auction_nb(value_wei, kind, pop_see, pop_share, pop_sigma, pop_capital_wei):
    """Who lands an opportunity worth `value_wei` (after gas) of strategy kind `kind`: the population's
    first-price auction as kernels/auction.py models it (a searcher sees it with probability pop_see[j, kind] and
    bids share_j · its lognormal perceived value, capped by its capital); returns (winner, bid), (-1, 0) when
    nobody saw it."""
    winner = -1
    best = -1.0
    for j in range(pop_share.shape[0]):
        if np.random.random() >= pop_see[j, kind]:
            continue
        sigma = pop_sigma[j]
        bid = min(pop_share[j] * value_wei * math.exp(sigma * np.random.standard_normal() - 0.5 * sigma * sigma),
                  pop_capital_wei[j])
        if bid > best:
            best = bid
            winner = j
    return winner, max(best, 0.0)


@cached_njit
def _push(cap, n, out_block, out_tx, out_log, out_pool, out_kind, out_zfo, out_amount, out_actor, out_aux,
          out_gas, out_hop, b, tx, log, pool, kind, zfo, amount, actor, aux, gas, hop):
    """Append one action; returns the new count (or -1 when the buffers are full)."""
    if n >= cap:
        return -1
    out_block[n] = b
    out_tx[n] = tx
    out_log[n] = log
    out_pool[n] = pool
    out_kind[n] = kind
    out_zfo[n] = zfo
    out_amount[n] = amount
    out_actor[n] = actor
    out_aux[n] = aux
    out_gas[n] = gas
    out_hop[n] = hop
    return n + 1


@cached_njit
def _v3_lp_action_nb(cap, n, b, tx, log, p, kind, frac_ppm, trader, v3, price_usd, token_scale, pool_t1,
                     a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                     a_tick_lower, a_tick_upper):
    """An LP mint (a new position around the price: 80 % concentrated over 1..20 spacings, else 50..400, worth
    frac_ppm of the pool's TVL) or burn (a random live position, whole or 1..50 %) on V3 pool p; the float state
    follows. Returns the new action count (unchanged when there is nothing to do, -1 when the buffers are full)."""
    j = v3.version[p] // 2
    base_slot = j * POS_CAP
    if kind == MINT:
        slot = -1
        for k in range(1, POS_CAP):
            if not v3.pos_active[base_slot + k]:
                slot = k
                break
        n_ticks = v3.tick_offsets[2 * j + 1] - v3.tick_offsets[2 * j]
        if slot < 0 or n_ticks + 2 > TICK_CAP:
            kind = BURN
    if kind == MINT:
        sp = v3.spacing[p]
        width = np.random.randint(1, 21) if np.random.random() < 0.8 else np.random.randint(50, 401)
        below = np.random.randint(0, width)
        centre = v3.tick[p] // sp
        lower = max((centre - below) * sp, -(amm_v3.MAX_TICK // sp) * sp)
        upper = min((centre - below + width) * sp, (amm_v3.MAX_TICK // sp) * sp)
        s = v3.sqrt_price[p]
        sa = math.exp(lower * amm_v3.LOG_SQRT_TICK)
        sb = math.exp(upper * amm_v3.LOG_SQRT_TICK)
        value1_per_liquidity = max(2.0 * s - sa - s * s / sb, 1e-300)   # token1 raw units per unit of liquidity
        usd = v3.tvl_usd[p] * frac_ppm * 1e-6
        t1 = pool_t1[p]
        liquidity = math.floor(usd / (price_usd[t1] / token_scale[t1] * value1_per_liquidity))
        if liquidity < 1.0 or liquidity > 1e30:
            return n
        n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                  b, tx, log, p, MINT, False, liquidity, trader, float(slot), 0, 0)
        if n < 0:
            return n
        a_tick_lower[n - 1] = lower
        a_tick_upper[n - 1] = upper
        _v3_modify_nb(v3, p, slot, lower, upper, liquidity, 1)
        return n
    live = 0
    for k in range(1, POS_CAP):
        if v3.pos_active[base_slot + k]:
            live += 1
    if live == 0:
        return n
    pick = np.random.randint(0, live)
    slot = 0
    for k in range(1, POS_CAP):
        if v3.pos_active[base_slot + k]:
            if pick == 0:
                slot = k
                break
            pick -= 1
    whole = np.random.random() < 0.5
    frac = 1e6 if whole else frac_ppm * 10.0
    k = base_slot + slot
    lower = v3.pos_lower[k]
    upper = v3.pos_upper[k]
    n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
              b, tx, log, p, BURN, False, frac, trader, float(slot), 0, 0)
    if n < 0:
        return n
    a_tick_lower[n - 1] = lower
    a_tick_upper[n - 1] = upper
    _v3_modify_nb(v3, p, slot, lower, upper, -v3.pos_liq[k] * frac * 1e-6, -1 if whole else 0)
    return n


@cached_njit
def _jit_screen_nb(v3, p, amount_in, zfo, wei_per_raw_in, w0, w1, gas_wei, capital_wei):
    """The best JIT position around an exact-input swap of amount_in on V3 pool p at its float state now: on each
    JIT_RANGE_SPACINGS range holding the current tick, the liquidity ΔL whose tokens are worth capital_wei (w0, w1:
    wei per raw unit of token0, token1), valued as the JIT strategy screens it (kernels/jit.py jit_eval: the fee
    share of the swap while it is in range, less the position's inventory loss at the price after, in raw
    input-token units × wei_per_raw_in), less gas_wei. Returns (net wei, tick_lower, tick_upper, ΔL); net <= 0
    when no range pays."""
    best_net = -1.0
    best_lower = 0
    best_upper = 0
    best_dl = 0.0
    v = v3.version[p]
    sp = v3.spacing[p]
    s = v3.sqrt_price[p]
    edge = (amm_v3.MAX_TICK // sp) * sp
    base = (v3.tick[p] // sp) * sp
    for k in JIT_RANGE_SPACINGS:
        lower = base - (k - 1) * sp
        upper = base + k * sp
        if lower < -edge or upper > edge:
            continue
        u0, u1 = _position_amounts_nb(1.0, s, math.exp(lower * amm_v3.LOG_SQRT_TICK),
                                      math.exp(upper * amm_v3.LOG_SQRT_TICK))
        unit_wei = u0 * w0 + u1 * w1
        if not unit_wei > 0.0:
            continue
        dl = math.floor(capital_wei / unit_wei)
        if not (1.0 <= dl <= 1e30):
            continue
        gross, _, _, ok = _jit_eval_nb(amount_in, zfo, v3.gamma[p], lower, upper, dl, s, v3.liquidity[p],
                                       v3.tick[p], v3.ticks, v3.tick_sqrt, v3.tick_net, v3.tick_offsets[v],
                                       v3.tick_offsets[v + 1], SIM_MAX_STEPS)
        net = gross * wei_per_raw_in - gas_wei
        if ok and net > best_net:
            best_net = net
            best_lower = lower
            best_upper = upper
            best_dl = dl
    return best_net, best_lower, best_upper, best_dl


@cached_njit
def _simulate_partition_nb(rng_seed, exo_u, exo_z, n_blocks, genesis, knobs,
                           log_price, regime, congestion, base_fee, rf0, rf1,
                           token_scale, token_class, token_beta, token_idio_vol, token_anchor,
                           pool_t0, pool_t1, pool_cum_weight, n_v2, v3, genesis_logs,
                           cyc_pools, cyc_zfo, cyc_len, cyc_gamma, cyc_is_v3, pool_cyc_ptr, pool_cyc_idx,
                           pop_see, pop_share, pop_sigma, pop_capital_wei,
                           out_base_fee, out_gas_used, out_takes_bundles, out_prices,
                           a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                           a_tick_lower, a_tick_upper, a_paid):
    """Decide every action of `n_blocks` blocks in float64; state arrays are updated in place.

    token_class: 0 WETH, 1 stablecoin, 2 CEX-listed tail (its own reference path), 3 unlisted tail: no CEX quotes
    it, so no CEX-DEX searcher trades its pools and its reference is a DEX mark, its anchor pool's price (token_anchor:
    its deepest WETH pool, -1 for the other classes) times ETH's. Actions (a_*): block offset, tx_index, log_index,
    pool, kind, zero_for_one, float amount_in (-1: the previous hop's output; mint/burn: fraction in ppm), actor,
    aux (noise: slippage bps; cexdex: reference rate token_in→token_out raw), gas (first action of a labeled
    tx), hop (index within its tx; noise: EXACT_IN, EXACT_OUT (V2 only), SANDWICHED or SANDWICHED_OUT; sandwich: 0
    front-run, 1 back-run, which sells the front-run's output; mint/burn: LP_POSITION or JIT_POSITION, a JIT's mint
    the tx before its victim (zero_for_one: the victim's, gas: mint + burn) and its burn of the whole position the tx
    after); paid (the first action of a searcher's tx: what it pays the builder, its winning bid plus its priority fee
    on the gas, wei; 0 elsewhere).
    Searchers (actors n_traders + j) are the population pop_*
    (gpubt/market/searchers.py): each opportunity goes to the winner of `_auction_nb`. Pools >= n_v2 are V3 (state
    in `v3`, a V3Float): their mint amount is the
    liquidity and burn amount the fraction in ppm (1e6: the whole position), aux the position slot, and
    a_tick_lower/a_tick_upper the position's ticks. Returns (status, n_actions).

    The exogenous paths come from their own stream (`exo_u` (n_blocks, 2) uniforms: regime switch, builder;
    `exo_z` (n_blocks, 2 + n_tokens) normals: market shock, congestion, each token), so how the agents act
    (`rng_seed`) does not re-roll prices, volatility regimes, gas or which blocks take bundles.
    """
    np.random.seed(rng_seed)
    cap = a_block.shape[0]
    n_tokens = log_price.shape[0]
    n_pools = rf0.shape[0]
    gas_target = GAS_LIMIT // 2
    sqrt_dt = math.sqrt(knobs.dt_years)
    slippages = np.array(SLIPPAGES_BPS)
    price_usd = np.empty(n_tokens)
    total_weight = pool_cum_weight[-1]
    state_offsets = np.arange(n_pools + 1)   # one float state per pool: a one-entry "log" for screen_cycle
    state_key = np.zeros(n_pools, np.int64)
    n = 0
    for b in range(n_blocks):
        # reference prices (the genesis block keeps the initial ones)
        if not (genesis and b == 0):
            if regime[0] == 0 and exo_u[b, 0] < knobs.calm_to_volatile:
                regime[0] = 1
            elif regime[0] == 1 and exo_u[b, 0] < knobs.volatile_to_calm:
                regime[0] = 0
            vol_mult = knobs.vol_regime_mult if regime[0] == 1 else 1.0
            eth_sigma = knobs.eth_vol * vol_mult * sqrt_dt
            market_shock = eth_sigma * exo_z[b, 0]
            for t in range(n_tokens):
                cls = token_class[t]
                if cls == 0:
                    log_price[t] += market_shock - 0.5 * eth_sigma * eth_sigma
                elif cls == 1:
                    # pinned: a fast mean-reverting wobble of ~1e-4 around $1
                    log_price[t] = 0.99 * log_price[t] + 2e-5 * exo_z[b, 2 + t]
                elif cls == 2:
                    idio = token_idio_vol[t] * vol_mult * sqrt_dt
                    log_price[t] += token_beta[t] * market_shock + idio * exo_z[b, 2 + t] \
                        - 0.5 * idio * idio
        for t in range(n_tokens):   # (WETH is token 0: its price is set before any unlisted tail's mark)
            q = token_anchor[t]
            if q < 0:
                price_usd[t] = math.exp(log_price[t])
            else:   # an unlisted tail: the DEX mark
                raw1_per_raw0 = v3.sqrt_price[q] ** 2 if q >= n_v2 else rf1[q] / rf0[q]
                weth_per_raw = raw1_per_raw0 if pool_t0[q] == t else 1.0 / raw1_per_raw0
                price_usd[t] = weth_per_raw / token_scale[WETH] * token_scale[t] * price_usd[WETH]
                log_price[t] = math.log(price_usd[t])
            out_prices[b, t] = price_usd[t]

        # gas market: congestion AR(1); demand is price-elastic so the base fee mean-reverts
        congestion[0] = 0.9 * congestion[0] + 0.08 * exo_z[b, 1]
        utilization = 0.5 + congestion[0] - 0.3 * math.log(base_fee[0] / knobs.base_fee_wei0)
        utilization = min(max(utilization, 0.05), 1.0)
        gas_used = int(utilization * GAS_LIMIT)
        out_base_fee[b] = base_fee[0]
        out_gas_used[b] = gas_used
        base_fee_wei = float(base_fee[0])
        eth_usd = price_usd[WETH]

        tx = 1 if (genesis and b == 0) else 0       # genesis tx 0 holds the pool-creation syncs
        log = genesis_logs if (genesis and b == 0) else 0

        # does this block's builder take searchers' bundles? (no: no CEX-DEX, back-run or sandwich lands in it)
        mev_ok = exo_u[b, 1] < knobs.mev_block_share
        out_takes_bundles[b] = mev_ok
        # CEX-DEX arbitrage at the top of the block: push out-of-band pools back to the band edge
        for p in range(n_pools if mev_ok else 0):
            t0 = pool_t0[p]
            t1 = pool_t1[p]
            if token_class[t0] == 3 or token_class[t1] == 3:   # no CEX quotes the token
                continue
            r0 = rf0[p]
            r1 = rf1[p]
            ref01 = price_usd[t0] / price_usd[t1] * token_scale[t1] / token_scale[t0]  # token1 raw per token0 raw
            if p >= n_v2:   # V3: the input that moves the price to the band edge, across tick ranges
                g = v3.gamma[p]
                s = v3.sqrt_price[p]
                if v3.liquidity[p] <= 0.0:
                    continue
                rho = s * s / ref01
                if rho < g:
                    zfo = False
                    x = _v3_input_to_price_nb(v3, p, math.sqrt(ref01 * g), zfo) / g
                    rate = 1.0 / ref01
                elif rho * g > 1.0:
                    zfo = True
                    x = _v3_input_to_price_nb(v3, p, math.sqrt(ref01 / g), zfo) / g
                    rate = ref01
                else:
                    continue
                vv = v3.version[p]
                out = _v3_swap_nb(x, zfo, g, s, v3.liquidity[p], v3.tick[p], v3.ticks, v3.tick_sqrt, v3.tick_net,
                                  v3.tick_offsets[vv], v3.tick_offsets[vv + 1], SIM_MAX_STEPS)[0]
                t_out = t0 if not zfo else t1
                profit_usd = (out - x * rate) / token_scale[t_out] * price_usd[t_out]
            elif r1 / (r0 * ref01) < GAMMA:      # token0 cheap on the pool: sell token1 for it
                zfo = False
                x = (math.sqrt(GAMMA * r0 * r1 * ref01) - r1) / GAMMA
                out = _amount_out_nb(x, r1, r0, GAMMA)
                rate = 1.0 / ref01
                profit_usd = (out - x * rate) / token_scale[t0] * price_usd[t0]
            elif r1 / (r0 * ref01) * GAMMA > 1.0:
                zfo = True
                x = (math.sqrt(GAMMA * r0 * r1 / ref01) - r0) / GAMMA
                out = _amount_out_nb(x, r0, r1, GAMMA)
                rate = ref01
                profit_usd = (out - x * rate) / token_scale[t1] * price_usd[t1]
            else:
                continue
            gas = 110_000 + np.random.randint(0, 20_000)
            gas_usd = gas * (base_fee_wei + knobs.searcher_prio_wei) * 1e-18 * eth_usd
            t_in = t1 if not zfo else t0
            value_usd = profit_usd - gas_usd - knobs.cexdex_margin_usd \
                - knobs.cexdex_fee * x / token_scale[t_in] * price_usd[t_in]      # the CEX leg's costs
            if value_usd <= 0.0:
                continue
            winner, bid = _auction_nb(value_usd / eth_usd * 1e18, knobs.kind_cexdex, pop_see, pop_share,
                                      pop_sigma, pop_capital_wei)
            if winner < 0:
                continue
            actor = knobs.n_traders + winner
            n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                      b, tx, log, p, CEXDEX, zfo, x, actor, rate, gas, 0)
            if n < 0:
                return _STATUS_FULL, 0
            a_paid[n - 1] = bid + knobs.searcher_prio_wei * gas
            if p >= n_v2:
                _v3_swap_commit_nb(v3, p, x, zfo)
            else:
                _v2_swap_commit_nb(rf0, rf1, p, x, zfo)
            tx += 1
            log += 1

        # user transactions, each possibly back-run by a cyclic arbitrage
        activity = min(max(utilization / 0.5, 0.3), 2.0)
        n_user = np.random.poisson(knobs.swaps_per_block * activity)
        for _ in range(n_user):
            p = np.searchsorted(pool_cum_weight, np.random.random() * total_weight, side="right")
            p = min(p, n_pools - 1)
            trader = np.random.randint(0, knobs.n_traders)
            if np.random.random() < knobs.lp_event_share:
                kind = MINT if np.random.random() < 0.5 else BURN
                frac_ppm = float(np.random.randint(1_000, 50_000))
                if p >= n_v2:
                    n_before = n
                    n = _v3_lp_action_nb(cap, n, b, tx, log, p, kind, frac_ppm, trader, v3, price_usd, token_scale,
                                         pool_t1, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor,
                                         a_aux, a_gas, a_hop, a_tick_lower, a_tick_upper)
                    if n < 0:
                        return _STATUS_FULL, 0
                    if n > n_before:
                        tx += 1
                        log += 1
                    continue
                n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas,
                          a_hop, b, tx, log, p, kind, False, frac_ppm, trader, 0.0, 0, 0)
                if n < 0:
                    return _STATUS_FULL, 0
                f = frac_ppm * 1e-6 if kind == MINT else -frac_ppm * 1e-6
                rf0[p] *= 1.0 + f
                rf1[p] *= 1.0 + f
                tx += 1
                log += 1
                continue

            zfo = np.random.random() < 0.5
            t_in = pool_t0[p] if zfo else pool_t1[p]
            r_in = rf0[p] if zfo else rf1[p]
            r_out = rf1[p] if zfo else rf0[p]
            size_usd = max(math.exp(knobs.noise_log_median_usd + knobs.noise_sigma * np.random.standard_normal()),
                           1.0)
            amount_in = size_usd / price_usd[t_in] * token_scale[t_in]
            if p >= n_v2:   # at most noise_max_tvl_frac of the pool's TVL
                amount_in = max(min(amount_in, knobs.noise_max_tvl_frac * v3.tvl_usd[p] / price_usd[t_in]
                                    * token_scale[t_in]), 1.0)
            else:           # TVL ≈ 2 × reserve_in in value
                amount_in = max(min(amount_in, 2.0 * knobs.noise_max_tvl_frac * r_in), 1.0)
            slip_bps = slippages[np.random.randint(0, slippages.shape[0])]
            # no draw at share 0: the market of a zero share is the exact-input market draw for draw
            exact_out = p < n_v2 and knobs.exact_output_share > 0.0 and \
                np.random.random() < knobs.exact_output_share
            gas_price = base_fee_wei + knobs.searcher_prio_wei
            gas_jitter = np.random.random()
            # a sandwich around a V2 victim: the front-run stops 1 % short of the largest one its limit allows (the
            # float pass must not make a victim the exact replay would revert). An exact-output victim buys the
            # quote of its drawn input and pays at most amountInMax = drawn × (1 + slippage): getAmountIn(quote)
            # <= amountInMax is getAmountOut(amountInMax) >= quote, the exact-input bound with amountInMax sold
            front = front_out = 0.0
            victim_pays = amount_in
            if mev_ok and p < n_v2:
                quote = _amount_out_nb(amount_in, r_in, r_out, GAMMA)
                if exact_out:
                    x_max = _max_frontrun_nb(r_in, r_out, GAMMA, amount_in * (1.0 + slip_bps * 1e-4), quote)
                else:
                    x_max = _max_frontrun_nb(r_in, r_out, GAMMA, amount_in, quote * (1.0 - slip_bps * 1e-4))
                if x_max > 0.0:
                    x = 0.99 * min(x_max, r_in)
                    f_out = _amount_out_nb(x, r_in, r_out, GAMMA)
                    v_in = amount_in
                    if exact_out:   # getAmountIn(quote) after the front-run
                        v_out = quote
                        v_in = (r_in + x) * quote / ((r_out - f_out - quote) * GAMMA)
                    else:
                        v_out = _amount_out_nb(amount_in, r_in + x, r_out - f_out, GAMMA)
                    back = _amount_out_nb(f_out, r_out - f_out - v_out, r_in + x + v_in, GAMMA)
                    sand_gas = 2.0 * (105_000.0 + 20_000.0 * gas_jitter)
                    value_wei = (back - x) / token_scale[t_in] * price_usd[t_in] / eth_usd * 1e18 \
                        - sand_gas * gas_price
                    if value_wei > 0.0:
                        winner, bid = _auction_nb(value_wei, knobs.kind_sandwich, pop_see, pop_share, pop_sigma,
                                                  pop_capital_wei)
                        if winner >= 0:
                            front, front_out, victim_pays = x, f_out, v_in
                            n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux,
                                      a_gas, a_hop, b, tx, log, p, SANDWICH, zfo, x, knobs.n_traders + winner, 0.0,
                                      int(sand_gas), 0)
                            if n < 0:
                                return _STATUS_FULL, 0
                            a_paid[n - 1] = bid + knobs.searcher_prio_wei * sand_gas
                            _v2_swap_commit_nb(rf0, rf1, p, x, zfo)
                            r_in, r_out = r_in + x, r_out - f_out
                            tx += 1
                            log += 1
            # JIT liquidity around a V3 swap: a searcher's position minted the tx before it and burned the tx after
            # (the float swap runs through it); screened only when the whole swap fee would pay the gas
            jit_slot = -1
            jit_actor = 0
            jit_lower = jit_upper = 0
            jit_liq = 0.0
            if mev_ok and p >= n_v2 and v3.liquidity[p] > 0.0:
                w_in = price_usd[t_in] / token_scale[t_in] / eth_usd * 1e18     # wei per raw unit of the input
                jit_gas_wei = knobs.jit_gas * gas_price
                j3 = v3.version[p] // 2
                if (1.0 - v3.gamma[p]) * amount_in * w_in > jit_gas_wei and \
                        v3.tick_offsets[2 * j3 + 1] - v3.tick_offsets[2 * j3] + 2 <= TICK_CAP:
                    for k in range(1, POS_CAP):     # a free position slot (freed again by the burn)
                        if not v3.pos_active[j3 * POS_CAP + k]:
                            jit_slot = k
                            break
                if jit_slot > 0:
                    w0 = price_usd[pool_t0[p]] / token_scale[pool_t0[p]] / eth_usd * 1e18
                    w1 = price_usd[pool_t1[p]] / token_scale[pool_t1[p]] / eth_usd * 1e18
                    net, jit_lower, jit_upper, jit_liq = _jit_screen_nb(v3, p, amount_in, zfo, w_in, w0, w1,
                                                                        jit_gas_wei, knobs.jit_capital_wei)
                    winner, bid = -1, 0.0
                    if net > 0.0:
                        winner, bid = _auction_nb(net, knobs.kind_jit, pop_see, pop_share, pop_sigma, pop_capital_wei)
                    if winner < 0:
                        jit_slot = -1
                    else:
                        jit_actor = knobs.n_traders + winner
                        n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux,
                                  a_gas, a_hop, b, tx, log, p, MINT, zfo, jit_liq, jit_actor, float(jit_slot),
                                  int(knobs.jit_gas), JIT_POSITION)
                        if n < 0:
                            return _STATUS_FULL, 0
                        a_paid[n - 1] = bid + knobs.searcher_prio_wei * knobs.jit_gas
                        a_tick_lower[n - 1] = jit_lower
                        a_tick_upper[n - 1] = jit_upper
                        _v3_modify_nb(v3, p, jit_slot, jit_lower, jit_upper, jit_liq, 1)
                        tx += 1
                        log += 1
            n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                      b, tx, log, p, NOISE, zfo, amount_in, trader, float(slip_bps), 0,
                      (SANDWICHED_OUT if front > 0.0 else EXACT_OUT) if exact_out
                      else (SANDWICHED if front > 0.0 else EXACT_IN))
            if n < 0:
                return _STATUS_FULL, 0
            if p >= n_v2:
                _v3_swap_commit_nb(v3, p, amount_in, zfo)
            else:
                _v2_swap_commit_nb(rf0, rf1, p, victim_pays, zfo)
            tx += 1
            log += 1
            if jit_slot > 0:  # the JIT searcher burns its whole position (and collects its fees) right after
                n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas,
                          a_hop, b, tx, log, p, BURN, zfo, 1e6, jit_actor, float(jit_slot), 0, JIT_POSITION)
                if n < 0:
                    return _STATUS_FULL, 0
                a_tick_lower[n - 1] = jit_lower
                a_tick_upper[n - 1] = jit_upper
                _v3_modify_nb(v3, p, jit_slot, jit_lower, jit_upper, -jit_liq, -1)
                tx += 1
                log += 1
            if front > 0.0:   # the back-run sells the front-run's output (the replay carries it)
                n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas,
                          a_hop, b, tx, log, p, SANDWICH, not zfo, -1.0, a_actor[n - 2], 0.0, 0, 1)
                if n < 0:
                    return _STATUS_FULL, 0
                _v2_swap_commit_nb(rf0, rf1, p, front_out, not zfo)
                tx += 1
                log += 1
            if not mev_ok:
                continue
            best_net = -1.0
            best_c = -1
            best_x = 0.0
            for j in range(pool_cyc_ptr[p], pool_cyc_ptr[p + 1]):
                c = pool_cyc_idx[j]
                x, gross = _screen_cycle_nb(c, 0, cyc_pools, cyc_zfo, cyc_gamma, cyc_is_v3, state_offsets, state_key,
                                            rf0, rf1, v3.sqrt_price, v3.liquidity, v3.tick, v3.version,
                                            v3.tick_offsets, v3.ticks, v3.tick_sqrt, v3.tick_net, SIM_MAX_STEPS)
                if x <= 0.0:
                    continue
                gas = 140_000.0 + 30_000.0 * gas_jitter if cyc_len[c] == 2 else 200_000.0 + 40_000.0 * gas_jitter
                net = gross - gas * gas_price
                if net > best_net:
                    best_net = net
                    best_c = c
                    best_x = x
            if best_c < 0 or best_net <= 0.0:
                continue
            winner, bid = _auction_nb(best_net, knobs.kind_arbitrage, pop_see, pop_share, pop_sigma, pop_capital_wei)
            if winner < 0:
                continue
            hops = cyc_len[best_c]
            gas = int(140_000.0 + 30_000.0 * gas_jitter if hops == 2 else 200_000.0 + 40_000.0 * gas_jitter)
            # some searchers keep their books in a stablecoin: the cycle starts (and takes its profit) at the
            # first stablecoin it passes through, with what the WETH route would bring there
            start = 0
            amount = best_x
            if np.random.random() < knobs.stable_start_share:
                carried = best_x
                for h in range(1, hops):
                    q = cyc_pools[best_c, h - 1]
                    zfo_h = cyc_zfo[best_c, h - 1]
                    if q >= n_v2:
                        vv = v3.version[q]
                        carried = _v3_swap_nb(carried, zfo_h, v3.gamma[q], v3.sqrt_price[q], v3.liquidity[q],
                                              v3.tick[q], v3.ticks, v3.tick_sqrt, v3.tick_net, v3.tick_offsets[vv],
                                              v3.tick_offsets[vv + 1], SIM_MAX_STEPS)[0]
                    else:
                        carried = _amount_out_nb(carried, rf0[q] if zfo_h else rf1[q], rf1[q] if zfo_h else rf0[q],
                                                 GAMMA)
                    q = cyc_pools[best_c, h]
                    if token_class[pool_t0[q] if cyc_zfo[best_c, h] else pool_t1[q]] == 1:
                        start = h
                        amount = carried
                        break
            for i in range(hops):
                h = (start + i) % hops
                q = cyc_pools[best_c, h]
                zfo_h = cyc_zfo[best_c, h]
                n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas,
                          a_hop, b, tx, log, q, ARB_HOP, zfo_h, amount if i == 0 else -1.0,
                          knobs.n_traders + winner, float(hops), gas if i == 0 else 0, i)
                if n < 0:
                    return _STATUS_FULL, 0
                if i == 0:
                    a_paid[n - 1] = bid + knobs.searcher_prio_wei * gas
                if q >= n_v2:
                    out = _v3_swap_commit_nb(v3, q, amount, zfo_h)
                else:
                    out = _v2_swap_commit_nb(rf0, rf1, q, amount, zfo_h)
                amount = out
                log += 1
            tx += 1

        base_fee[0] = _eip1559_next_nb(base_fee[0], np.int64(gas_used), np.int64(gas_target))
    return _STATUS_OK, n


# ---------------------------------------------------------------------------------------------------------------
# static market (host)

def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _fake_hex(seed: int, salt: int, keys: np.ndarray, n_bytes: int) -> pa.Array:
    """Deterministic '0x…' strings of `n_bytes` bytes, one per uint64 key (addresses: 20, hashes: 32)."""
    keys = np.asarray(keys, dtype=np.uint64)
    n_lanes = (n_bytes + 7) // 8
    with np.errstate(over="ignore"):
        base = _mix64(_mix64(keys) ^ _mix64(np.array([seed * 1_000_003 + salt], dtype=np.uint64)))
        lanes = [_mix64(base + np.uint64(0x9E3779B97F4A7C15) * np.uint64(i + 1)) for i in range(n_lanes)]
    raw = np.stack(lanes, axis=1).view(np.uint8)[:, :n_bytes]
    chars = np.empty((len(keys), 2 + 2 * n_bytes), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("0"), ord("x")
    chars[:, 2::2] = _HEX_DIGITS[raw >> 4]
    chars[:, 3::2] = _HEX_DIGITS[raw & 15]
    return pa.array(chars.view(f"S{chars.shape[1]}").ravel()).cast(pa.string())


def _build_market(params: dict, seed: int) -> dict:
    """Tokens, pools (with initial reserves as Python ints), price dynamics and the WETH cycle list."""
    rng = np.random.default_rng([seed, 0x5EED])
    n_tokens, n_pools = params["n_tokens"], params["n_pools"]
    if n_tokens < len(HUBS) + 1:
        raise ValueError(f"n_tokens = {n_tokens}: need at least {len(HUBS) + 1} (the hubs plus one tail token)")
    n_tail = n_tokens - len(HUBS)
    min_pools = 10 + n_tail
    if n_pools < min_pools:
        raise ValueError(f"n_pools = {n_pools}: need at least {min_pools} (the hub pairs and one WETH pool per "
                         "tail token); raise n_pools or lower n_tokens")

    symbols = [s for s, _ in HUBS] + [f"TK{i:04d}" for i in range(len(HUBS), n_tokens)]
    decimals = np.array([d for _, d in HUBS]
                        + list(rng.choice([18, 6, 9], size=n_tail, p=[0.85, 0.1, 0.05])), dtype=np.int64)
    token_addr = _fake_hex(seed, 1, np.arange(n_tokens), 20)
    addr_py = token_addr.to_pylist()

    price0 = np.empty(n_tokens)
    price0[:len(HUBS)] = [params["eth_price_usd"], 1.0, 1.0, 1.0, params["eth_price_usd"] * 11.3]
    price0[len(HUBS):] = np.exp(rng.normal(0.0, 2.0, n_tail))
    token_class = np.full(n_tokens, 2, dtype=np.int64)
    token_class[WETH] = 0
    token_class[list(STABLES)] = 1
    beta = np.zeros(n_tokens)
    total_vol = np.zeros(n_tokens)
    beta[WBTC], total_vol[WBTC] = 0.7, params["wbtc_vol"]
    beta[len(HUBS):] = rng.uniform(0.3, 1.3, n_tail)
    total_vol[len(HUBS):] = rng.uniform(params["tail_vol_min"], params["tail_vol_max"], n_tail)
    systematic = beta * params["eth_vol"]
    idio_vol = np.sqrt(np.maximum(total_vol ** 2 - systematic ** 2, 0.1 ** 2))
    idio_vol[token_class != 2] = 0.0

    # pools in priority order; the list is cut at n_pools
    hubs = range(len(HUBS))
    tails = list(range(len(HUBS), n_tokens))
    hub_pairs = [(a, b) for a in hubs for b in hubs if a < b]
    wanted = [(a, b, 0) for a, b in hub_pairs] + [(WETH, t, 0) for t in tails]
    wanted += [(WETH, h, 1) for h in hubs if h != WETH]
    wanted += [(WETH, t, 1) for t in tails if rng.random() < 0.6]
    wanted += [(a, b, 1) for a, b in hub_pairs if a != WETH]
    for t in tails:
        for h, prob in ((1, 0.5), (2, 0.3), (3, 0.3), (4, 0.2)):
            if rng.random() < prob:
                wanted.append((h, t, int(rng.integers(2))))
                if rng.random() < 0.4:
                    wanted.append((h, t, 1 - wanted[-1][2]))
    seen = set(wanted)
    tries = 0
    while len(wanted) < n_pools and len(tails) > 1 and tries < 50 * n_pools:
        tries += 1
        a, b = rng.choice(tails, size=2, replace=False)
        key = (int(min(a, b)), int(max(a, b)), int(rng.integers(2)))
        if key not in seen:
            seen.add(key)
            wanted.append(key)
    wanted = wanted[:n_pools]

    pool_t0, pool_t1, pool_venue, tvl_usd = [], [], [], []
    for a, b, venue in wanted:
        t0, t1 = (a, b) if addr_py[a] < addr_py[b] else (b, a)   # Uniswap sorts the pair by address
        pool_t0.append(t0)
        pool_t1.append(t1)
        pool_venue.append(venue)
        fork_share = 0.4 if venue == 1 else 1.0     # the fork holds less liquidity, within the same range
        if a in hubs and b in hubs:
            tvl = np.clip(fork_share * np.exp(rng.normal(math.log(80e6), 0.8)), 20e6, 300e6)
        else:
            tvl = np.clip(fork_share * np.exp(rng.normal(math.log(400e3), 1.0)), 50e3, 5e6)
        tvl_usd.append(float(tvl))
    pool_t0 = np.array(pool_t0, dtype=np.int64)
    pool_t1 = np.array(pool_t1, dtype=np.int64)
    tvl_usd = np.array(tvl_usd)
    scale = 10.0 ** decimals
    reserve0 = [max(int(v / 2 / price0[t] * scale[t]), 1) for v, t in zip(tvl_usd, pool_t0)]
    reserve1 = [max(int(v / 2 / price0[t] * scale[t]), 1) for v, t in zip(tvl_usd, pool_t1)]

    n_v2 = len(pool_t0)
    v3 = _v3_market(params, seed, tails, price0, scale, addr_py)
    pool_t0 = np.concatenate([pool_t0, np.array(v3["t0"], np.int64)])
    pool_t1 = np.concatenate([pool_t1, np.array(v3["t1"], np.int64)])
    tvl_usd = np.concatenate([tvl_usd, np.array(v3["tvl_usd"])])
    reserve0 += [0] * len(v3["t0"])   # V3 pools: token balances, none before genesis
    reserve1 += [0] * len(v3["t0"])
    pool_venue += [VENUES.index("uniswap_v3")] * len(v3["t0"])

    # CEX listing: the tails whose deepest WETH pool is deepest (the largest tokens) up to cex_listed_share of them;
    # the others are unlisted (class 3), marked at their deepest WETH pool
    anchor = np.full(n_tokens, -1, np.int64)
    depth = np.zeros(n_tokens)
    for q in range(len(pool_t0)):
        t = pool_t1[q] if pool_t0[q] == WETH else pool_t0[q] if pool_t1[q] == WETH else -1
        if t >= len(HUBS) and tvl_usd[q] > depth[t]:
            anchor[t], depth[t] = q, tvl_usd[q]
    n_listed = int(round(params["cex_listed_share"] * n_tail))
    unlisted = np.array(sorted(tails, key=lambda t: -depth[t])[n_listed:], np.int64)
    token_class[unlisted] = 3
    anchor[token_class != 3] = -1

    cyc_pools, cyc_zfo, cyc_len = _weth_cycles(pool_t0, pool_t1)
    fee_of = np.concatenate([np.full(n_v2, FEE_PPM), np.array(v3["fee"], np.int64)])
    cyc_is_v3 = (cyc_pools >= n_v2)
    cyc_gamma = np.where(cyc_pools < 0, 0.0, np.where(cyc_is_v3, 1.0 - fee_of[np.maximum(cyc_pools, 0)] / 1e6, GAMMA))
    n_p = len(pool_t0)
    members = [[] for _ in range(n_p)]
    for c in range(len(cyc_len)):
        for h in range(cyc_len[c]):
            members[cyc_pools[c, h]].append(c)
    ptr = np.zeros(n_p + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(m) for m in members])
    idx = np.array([c for m in members for c in m], dtype=np.int64)

    tokens = pa.Table.from_arrays([
        pa.array(np.arange(n_tokens, dtype=np.int32)), token_addr, pa.array(symbols),
        pa.array(decimals.astype(np.int32)), pa.array(np.arange(n_tokens) < len(HUBS)), pa.array(token_class != 3),
    ], schema=schema.TOKENS)
    pools = pa.Table.from_arrays([
        pa.array(np.arange(n_p, dtype=np.int32)), _fake_hex(seed, 2, np.arange(n_p), 20),
        pa.array([VENUES[v] for v in pool_venue]), pa.array(["v2"] * n_v2 + ["v3"] * (n_p - n_v2)),
        pa.array(pool_t0.astype(np.int32)), pa.array(pool_t1.astype(np.int32)),
        pa.array(fee_of.astype(np.int32)),
        pa.array(np.full(n_p, params["first_block"], dtype=np.int64)),
        pa.array(np.concatenate([np.zeros(n_v2, np.int32), np.array(v3["spacing"], np.int32)])),
    ], names=schema.POOLS.names)
    return dict(tokens=tokens, pools=pools, token_scale=scale, token_class=token_class, token_beta=beta,
                token_idio_vol=idio_vol, token_anchor=anchor, log_price=np.log(price0), pool_t0=pool_t0,
                pool_t1=pool_t1, pool_cum_weight=np.cumsum(tvl_usd ** params["noise_tvl_exponent"]),
                reserve0=reserve0, reserve1=reserve1,
                cyc_pools=cyc_pools, cyc_zfo=cyc_zfo, cyc_len=cyc_len, cyc_gamma=cyc_gamma, cyc_is_v3=cyc_is_v3,
                pool_cyc_ptr=ptr, pool_cyc_idx=idx, n_v2=n_v2, v3=v3, tvl_usd=tvl_usd)


def _value1_per_liquidity(sqrt_price: float, tick_lower: int, tick_upper: int) -> float:
    """Token1 raw units a position [tick_lower, tick_upper) holding the price is worth per unit of liquidity:
    L·(s − s_a) of token1 plus L·(1/s − 1/s_b) of token0 at price s²."""
    return (2.0 * sqrt_price - math.exp(tick_lower * amm_v3.LOG_SQRT_TICK)
            - sqrt_price * sqrt_price / math.exp(tick_upper * amm_v3.LOG_SQRT_TICK))


def _v3_market(params: dict, seed: int, tails: list, price0: np.ndarray, scale: np.ndarray, addr_py: list) -> dict:
    """The V3 pools (tokens sorted by address, fee tier, TVL) and their initial positions (tick_lower,
    tick_upper, liquidity) as Python ints, from their own random stream (the V2 market does not change)."""
    rng = np.random.default_rng([seed, 0x5EED, 3])
    usdc, usdt, dai = STABLES
    wanted = [(WETH, usdc, 500), (WETH, usdt, 500), (WETH, WBTC, 500), (usdc, usdt, 100)]
    tail_order = [int(t) for t in rng.permutation(tails)]
    if tail_order:
        wanted.append((WETH, tail_order[0], 3000))
    wanted += [(WETH, usdc, 3000), (WETH, dai, 500), (WETH, WBTC, 3000)]
    if len(tail_order) > 1:
        wanted.append((WETH, tail_order[1], 10000))
    wanted += [(WETH, usdt, 3000), (usdc, dai, 100), (WBTC, usdc, 3000), (WETH, dai, 3000), (usdt, dai, 100),
               (WETH, usdc, 10000), (WETH, usdc, 100)]
    for t in tail_order[2:]:
        wanted.append((WETH, t, 3000 if rng.random() < 0.6 else 10000))
    for t in tail_order:
        if rng.random() < 0.3:
            wanted.append((usdc, t, 10000))
        if rng.random() < 0.3:
            wanted.append((WETH, t, 10000 if wanted[-1][2] == 3000 else 3000))
    seen, unique = set(), []
    for w in wanted:
        if w not in seen:
            seen.add(w)
            unique.append(w)
    n_v3 = int(params["v3_pools"])
    if n_v3 > len(unique):
        raise ValueError(f"v3_pools = {n_v3}: this market has {len(unique)} V3 pool candidates; lower v3_pools "
                         "or raise n_tokens")
    spacing_of = dict(V3_FEE_TIERS)
    out = dict(t0=[], t1=[], fee=[], spacing=[], tvl_usd=[], sqrt_price_x96=[], positions=[])
    for a, b, fee in unique[:n_v3]:
        t0, t1 = (a, b) if addr_py[a] < addr_py[b] else (b, a)
        hub = a < len(HUBS) and b < len(HUBS)
        tvl = float(np.clip(np.exp(rng.normal(math.log(params["v3_hub_tvl_usd"] if hub else 300e3), 0.8)),
                            10e6 if hub else 30e3, 300e6 if hub else 5e6))
        sp = spacing_of[fee]
        price = price0[t0] / price0[t1] * scale[t1] / scale[t0]           # token1 raw per token0 raw
        sqrt_x96 = int(math.sqrt(price) * 2**96)
        tick = exact_v3.get_tick_at_sqrt_ratio(sqrt_x96)
        s = sqrt_x96 / 2**96
        full = (-(exact_v3.MAX_TICK // sp) * sp, (exact_v3.MAX_TICK // sp) * sp)
        shares = [rng.uniform(0.15, 0.3), rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15)]
        n_conc = int(params["v3_concentrated_positions"])
        shares += list((1.0 - sum(shares)) * rng.dirichlet(np.ones(n_conc))) if n_conc else []
        ranges = [full]
        for _ in range(2):  # wide: ±10..50 % in price
            half = max(1, int(math.log(1 + rng.uniform(0.1, 0.5)) / math.log(1.0001) / sp))
            ranges.append(((tick // sp - half) * sp, (tick // sp + half) * sp))
        for _ in range(n_conc):  # concentrated: ±0.05..2 % around the price, off-centre
            half = max(1, int(math.log(1 + rng.uniform(0.0005, 0.02)) / math.log(1.0001) / sp))
            shift = int(rng.integers(-half // 2, half // 2 + 1))
            lo, hi = (tick // sp + shift - half) * sp, (tick // sp + shift + half) * sp
            lo, hi = min(lo, (tick // sp) * sp), max(hi, (tick // sp + 1) * sp)   # the price stays inside
            ranges.append((max(lo, full[0]), min(hi, full[1])))
        positions = [(lo, hi, max(1, int(share * tvl / (_value1_per_liquidity(s, lo, hi) * price0[t1] / scale[t1]))))
                     for (lo, hi), share in zip(ranges, shares)]
        for key, value in (("t0", t0), ("t1", t1), ("fee", fee), ("spacing", sp), ("tvl_usd", tvl),
                           ("sqrt_price_x96", sqrt_x96), ("positions", positions)):
            out[key].append(value)
    return out


def _weth_cycles(pool_t0: np.ndarray, pool_t1: np.ndarray):
    """Every 2-hop (WETH→X→WETH on two pools) and 3-hop (WETH→A→B→WETH) cycle; -1 pads 2-hop rows."""
    weth_pools = {}
    for p, (t0, t1) in enumerate(zip(pool_t0.tolist(), pool_t1.tolist())):
        if t0 == WETH or t1 == WETH:
            weth_pools.setdefault(t1 if t0 == WETH else t0, []).append(p)
    cycles = []   # (pools, token_in of each hop)
    for x, ps in weth_pools.items():
        for a in ps:
            for b in ps:
                if a != b:
                    cycles.append(((a, b), (WETH, x)))
    for q, (t0, t1) in enumerate(zip(pool_t0.tolist(), pool_t1.tolist())):
        if WETH in (t0, t1):
            continue
        for a_tok, b_tok in ((t0, t1), (t1, t0)):
            for a in weth_pools.get(a_tok, ()):
                for b in weth_pools.get(b_tok, ()):
                    cycles.append(((a, q, b), (WETH, a_tok, b_tok)))
    n = len(cycles)
    cyc_pools = np.full((max(n, 1), 3), -1, dtype=np.int64)
    cyc_zfo = np.zeros((max(n, 1), 3), dtype=np.bool_)
    cyc_len = np.zeros(max(n, 1), dtype=np.int64)
    for c, (ps, tins) in enumerate(cycles):
        cyc_len[c] = len(ps)
        for h, (p, t_in) in enumerate(zip(ps, tins)):
            cyc_pools[c, h] = p
            cyc_zfo[c, h] = pool_t0[p] == t_in
    return cyc_pools, cyc_zfo, cyc_len


# ---------------------------------------------------------------------------------------------------------------
# exact pass (host, Python ints)

def _replay_exact(actions: dict, reserve0: list, reserve1: list, v3_pools=(), n_v2: int | None = None) -> dict:
    """Replay the float pass's actions with Uniswap's integer math; `reserve0/1` (Python ints) are updated.

    V2 swap outputs are getAmountOut at fee_ppm 3000 (inlined: the hot loop of the generator); an exact-output noise
    swap (hop 1) buys amountOut = getAmountOut(drawn input) and pays getAmountIn(amountOut). Pools >= n_v2 are
    the exact V3Pools `v3_pools` (updated in place; reserve0/1 hold their token balances); their rows also get
    the state after the event and, for mints and burns, the position's ticks and signed liquidity delta. A JIT
    position (mint, victim swap, burn: hop JIT_POSITION) runs the victim through exact.v3.swap_with_fees and labels
    its exact profit (exact.v3.jit_gross); the victim's limit is quoted on the state before the mint.
    """
    fee_keep = 1_000_000 - FEE_PPM
    n_v2 = len(reserve0) if n_v2 is None else n_v2
    kinds = actions["kind"].tolist()
    pools = actions["pool"].tolist()
    zfos = actions["zfo"].tolist()
    amounts = actions["amount"].tolist()
    auxs = actions["aux"].tolist()
    hops = actions["hop"].tolist()
    lowers = actions["tick_lower"].tolist() if "tick_lower" in actions else None
    uppers = actions["tick_upper"].tolist() if "tick_upper" in actions else None
    a0i, a1i, a0o, a1o, res0, res1 = [], [], [], [], [], []
    v3_cols = {k: [] for k in ("sqrt_price_x96", "liquidity", "tick", "tick_lower", "tick_upper", "liquidity_delta")}
    any_v3 = False
    victim_in, victim_min, victim_exact_out, label_profit, label_pools, label_row = [], [], [], [], [], []
    last_out = first_in = 0
    arb_pools = []
    sand_in = sand_out = 0
    sand_pre = (0, 0)   # the sandwiched pool's reserves before the front-run: the victim's router quoted there
    jit = None          # the open JIT position: its mint's row, range, ΔL, victim direction and quote, amounts
    for i, kind in enumerate(kinds):
        p = pools[i]
        r0 = reserve0[p]
        r1 = reserve1[p]
        jit_victim = None
        exact_out = kind == NOISE and hops[i] in (EXACT_OUT, SANDWICHED_OUT)   # a V2 router's exact-output call
        if p >= n_v2:
            any_v3 = True
            pool = v3_pools[p - n_v2]
            is_jit = kind in (MINT, BURN) and hops[i] == JIT_POSITION
            if is_jit and kind == MINT:
                if i + 2 >= len(kinds) or (kinds[i + 1], pools[i + 1], kinds[i + 2]) != (NOISE, p, BURN):
                    raise RuntimeError(f"synthetic JIT mint at action {i}: not followed by its victim and its burn")
                v_zfo = zfos[i + 1]
                quote = pool.swap_outcome(v_zfo, max(int(amounts[i + 1]), 1), exact_v3.MIN_SQRT_RATIO + 1 if v_zfo
                                          else exact_v3.MAX_SQRT_RATIO - 1, commit=False)
                jit = dict(row=i, lower=lowers[i], upper=uppers[i], liquidity=int(amounts[i]), zfo=v_zfo,
                           quote=-(quote.amount1 if v_zfo else quote.amount0))
            elif kind == NOISE and jit is not None:
                jit_victim = jit
            r0, r1, out, amount_in = _replay_v3_row(pool, kind, zfos[i], amounts[i], auxs[i], lowers[i], uppers[i],
                                                    hops[i], last_out, r0, r1, a0i, a1i, a0o, a1o, v3_cols,
                                                    jit_victim)
            if is_jit and kind == MINT:
                jit["minted"] = (a0i[-1], a1i[-1])
            elif is_jit:
                if -v3_cols["liquidity_delta"][-1] != jit["liquidity"]:
                    raise RuntimeError(f"synthetic JIT burn at action {i}: burns {-v3_cols['liquidity_delta'][-1]}, "
                                       f"minted {jit['liquidity']}")
                fees = exact_v3.mul_div(jit["growth"], jit["liquidity"], exact_v3.Q128)   # Position.update
                label_profit.append(exact_v3.jit_gross(jit["zfo"], jit["minted"], (a0o[-1], a1o[-1]), fees,
                                                       pool.sqrt_price_x96)[2])
                label_pools.append([p])
                label_row.append(jit["row"])
                jit = None
        elif kind <= SANDWICH:
            if kind == SANDWICH and hops[i] == 0:
                sand_pre = (r0, r1)
            amount_in = (last_out if (kind == ARB_HOP and hops[i] > 0)
                         else sand_out if kind == SANDWICH and hops[i] == 1 else int(amounts[i]))
            if amount_in < 1:
                amount_in = 1
            drawn = amount_in
            with_fee = amount_in * fee_keep
            # an exact-output victim buys what its drawn input quotes (a sandwiched one: quoted before the
            # front-run) and pays getAmountIn of it on the state it meets
            q0, q1 = sand_pre if hops[i] == SANDWICHED_OUT and kind == NOISE else (r0, r1)
            if zfos[i]:
                out = with_fee * q1 // (q0 * 1_000_000 + with_fee)
                if exact_out and out > 0:  # exact output: pays getAmountIn(out) (<= drawn + 1 unsandwiched)
                    amount_in = r0 * out * 1_000_000 // ((r1 - out) * fee_keep) + 1
                r0 += amount_in
                r1 -= out
                a0i.append(amount_in), a1i.append(0), a0o.append(0), a1o.append(out)
            else:
                out = with_fee * q0 // (q1 * 1_000_000 + with_fee)
                if exact_out and out > 0:
                    amount_in = r1 * out * 1_000_000 // ((r0 - out) * fee_keep) + 1
                r1 += amount_in
                r0 -= out
                a0i.append(0), a1i.append(amount_in), a0o.append(out), a1o.append(0)
        else:
            d0 = r0 * int(amounts[i]) // 1_000_000
            d1 = r1 * int(amounts[i]) // 1_000_000
            if kind == MINT:
                r0 += d0
                r1 += d1
                a0i.append(d0), a1i.append(d1), a0o.append(0), a1o.append(0)
            else:
                r0 -= d0
                r1 -= d1
                a0i.append(0), a1i.append(0), a0o.append(d0), a1o.append(d1)
        if p < n_v2:
            for col in v3_cols.values():
                col.append(None)
        if kind <= SANDWICH:
            last_out = out
            if kind == NOISE:
                # the router's quote is taken on this same state (a sandwiched victim's before the front-run), so
                # amount_out_min <= out (exact-in) and amountInMax >= what the swap paid (exact-out)
                if exact_out and out > 0:
                    limit = drawn * (10_000 + int(auxs[i])) // 10_000
                    if hops[i] == SANDWICHED_OUT and amount_in > limit:
                        raise RuntimeError(f"synthetic sandwich: the exact-output victim at action {i} pays "
                                           f"{amount_in} > its limit {limit} (the float pass and the exact replay "
                                           "disagree)")
                    victim_in.append(max(limit, amount_in))
                    victim_min.append(out)
                    victim_exact_out.append(True)
                else:
                    quoted = out if jit_victim is None else jit_victim["quote"]
                    if hops[i] == SANDWICHED:
                        q_in, q_out = sand_pre if zfos[i] else sand_pre[::-1]
                        quoted = amount_in * fee_keep * q_out // (q_in * 1_000_000 + amount_in * fee_keep)
                    victim_in.append(amount_in)
                    victim_min.append(quoted * (10_000 - int(auxs[i])) // 10_000)
                    victim_exact_out.append(False)
                    if out < victim_min[-1]:
                        raise RuntimeError(f"synthetic sandwich: the victim at action {i} gets {out} < its limit "
                                           f"{victim_min[-1]} (the float pass and the exact replay disagree)")
            elif kind == SANDWICH:
                if hops[i] == 0:
                    sand_in, sand_out = amount_in, out
                else:
                    label_profit.append(out - sand_in)
                    label_pools.append([p])
                    label_row.append(i - 2)
            elif kind == CEXDEX:
                label_profit.append(out - round(amount_in * auxs[i]))
                label_pools.append([p])
                label_row.append(i)
            else:
                if hops[i] == 0:
                    first_in = amount_in
                    arb_pools = []
                arb_pools.append(p)
                if hops[i] == int(auxs[i]) - 1:
                    label_profit.append(out - first_in)
                    label_pools.append(arb_pools)
                    label_row.append(i - hops[i])
        reserve0[p] = r0
        reserve1[p] = r1
        res0.append(r0)
        res1.append(r1)
    return dict(amount0_in=a0i, amount1_in=a1i, amount0_out=a0o, amount1_out=a1o, reserve0=res0, reserve1=res1,
                victim_in=victim_in, victim_min=victim_min, victim_exact_out=victim_exact_out,
                label_profit=label_profit, label_pools=label_pools,
                label_row=np.array(label_row, dtype=np.int64), v3=v3_cols if any_v3 else None)


def _replay_v3_row(pool, kind, zfo, amount, aux, lower, upper, hop, last_out, r0, r1, a0i, a1i, a0o, a1o, cols,
                   jit=None):
    """One action on an exact V3Pool: appends its amounts and state columns; returns (balance0, balance1, amount
    out, amount in) (out and in are 0 for mints and burns). A swap wrapped by a JIT position (`jit`: its range)
    runs through exact.v3.swap_with_fees, which sets jit["growth"], the fee growth inside the range."""
    out = amount_in = 0
    lower_col = upper_col = delta = None
    if kind <= SANDWICH:
        amount_in = last_out if (kind == ARB_HOP and hop > 0) else int(amount)
        amount_in = max(amount_in, 1)
        limit = exact_v3.MIN_SQRT_RATIO + 1 if zfo else exact_v3.MAX_SQRT_RATIO - 1
        if jit is None:
            amount0, amount1 = pool.swap(zfo, amount_in, limit)
        else:   # the same swap as pool.swap (its loop), with the fee accounting
            amount0, amount1, _, jit["growth"], _ = exact_v3.swap_with_fees(pool, zfo, amount_in, jit["lower"],
                                                                           jit["upper"])
        if (amount0 if zfo else amount1) != amount_in:
            raise RuntimeError(f"synthetic V3 swap of {amount_in} reached the price limit (the float pass and the "
                               "exact pool disagree: a full-range position should prevent this)")
        out = -amount1 if zfo else -amount0
        if zfo:
            a0i.append(amount_in), a1i.append(0), a0o.append(0), a1o.append(out)
        else:
            a0i.append(0), a1i.append(amount_in), a0o.append(out), a1o.append(0)
        r0, r1 = r0 + amount0, r1 + amount1
    elif kind == MINT:
        delta = int(amount)
        amount0, amount1 = pool.mint(lower, upper, delta, owner=int(aux))
        a0i.append(amount0), a1i.append(amount1), a0o.append(0), a1o.append(0)
        r0, r1 = r0 + amount0, r1 + amount1
        lower_col, upper_col = lower, upper
    else:
        held = pool.positions[(int(aux), lower, upper)]
        burned = held if amount >= 1e6 else max(1, held * int(amount) // 1_000_000)
        amount0, amount1 = pool.burn(lower, upper, burned, owner=int(aux))
        a0i.append(0), a1i.append(0), a0o.append(amount0), a1o.append(amount1)
        r0, r1 = r0 - amount0, r1 - amount1
        lower_col, upper_col, delta = lower, upper, -burned
    cols["sqrt_price_x96"].append(pool.sqrt_price_x96)
    cols["liquidity"].append(pool.liquidity)
    cols["tick"].append(pool.tick)
    cols["tick_lower"].append(lower_col)
    cols["tick_upper"].append(upper_col)
    cols["liquidity_delta"].append(delta)
    return r0, r1, out, amount_in


# ---------------------------------------------------------------------------------------------------------------
# driver

class _Simulator:
    """Carries the market state across partitions and turns each partition into Arrow tables."""

    def __init__(self, params: dict, seed: int):
        self.params, self.seed = params, seed
        self.market = m = _build_market(params, seed)
        self.n_pools = len(m["pool_t0"])
        self.log_price = m["log_price"].copy()
        self.regime = np.zeros(1, dtype=np.int64)
        self.congestion = np.zeros(1)
        self.base_fee = np.array([int(params["base_fee_gwei"] * 1e9)], dtype=np.int64)
        self.reserve0, self.reserve1 = list(m["reserve0"]), list(m["reserve1"])
        # the searchers who land the market's MEV: the population `competition=default` auctions our trades against
        pop, self.pop_see, self.pop_share, self.pop_sigma = bidders(params["competition"])
        self.population = pop
        n_s = pop.size
        self.knobs = Knobs(
            dt_years=BLOCK_SECONDS / (365.0 * 86400.0), eth_vol=float(params["eth_vol"]),
            vol_regime_mult=float(params["vol_regime_mult"]), calm_to_volatile=float(params["calm_to_volatile"]),
            volatile_to_calm=float(params["volatile_to_calm"]),
            base_fee_wei0=float(params["base_fee_gwei"] * 1e9), swaps_per_block=float(params["swaps_per_block"]),
            noise_log_median_usd=math.log(params["noise_median_usd"]), noise_sigma=float(params["noise_sigma"]),
            noise_max_tvl_frac=float(params["noise_max_tvl_frac"]), lp_event_share=float(params["lp_event_share"]),
            n_traders=int(params["n_traders"]), mev_block_share=float(params["mev_block_share"]),
            stable_start_share=float(params["stable_start_share"]),
            searcher_prio_wei=float(params["searcher_priority_gwei"]) * 1e9,
            kind_arbitrage=pop.kind_id("arbitrage"), kind_sandwich=pop.kind_id("sandwich"),
            kind_cexdex=pop.kind_id("cexdex"), kind_jit=pop.kind_id("jit"),
            jit_capital_wei=float(params["jit_capital_eth"]) * 1e18,
            jit_gas=float(exact_gas.V3_MINT_TX_GAS + exact_gas.V3_BURN_COLLECT_TX_GAS),
            cexdex_margin_usd=float(params["cexdex_margin_usd"]), cexdex_fee=float(params["cexdex_fee_bps"]) * 1e-4,
            exact_output_share=float(params["exact_output_share"]),
        )
        n_actors = params["n_traders"] + n_s
        self.actor_addr = _fake_hex(seed, 3, np.arange(n_actors + len(VENUES)), 20)   # + one factory per venue
        self.actor_names = pa.array([f"searcher_{i}" for i in range(n_s)])
        self.capacity = 1024
        self.n_v2 = m["n_v2"]
        self.v3_exact, self.genesis_v3 = self._create_v3_pools()

    def _create_v3_pools(self):
        """The exact V3 pools after their genesis Initialize and Mints, and those events' rows."""
        v3 = self.market["v3"]
        pools, rows = [], []
        for j in range(len(v3["t0"])):
            pid = self.n_v2 + j
            pool = exact_v3.V3Pool(fee=v3["fee"][j], tick_spacing=v3["spacing"][j])
            pool.initialize(v3["sqrt_price_x96"][j])
            bal0 = bal1 = 0
            rows.append(dict(pool=pid, kind=INITIALIZE, a0=0, a1=0, r0=0, r1=0, sqrt=pool.sqrt_price_x96,
                             liquidity=0, tick=pool.tick, lower=None, upper=None, delta=None))
            for slot, (lower, upper, liquidity) in enumerate(v3["positions"][j]):
                a0, a1 = pool.mint(lower, upper, liquidity, owner=slot)
                bal0, bal1 = bal0 + a0, bal1 + a1
                rows.append(dict(pool=pid, kind=MINT, a0=a0, a1=a1, r0=bal0, r1=bal1, sqrt=pool.sqrt_price_x96,
                                 liquidity=pool.liquidity, tick=pool.tick, lower=lower, upper=upper, delta=liquidity))
            self.reserve0[pid], self.reserve1[pid] = bal0, bal1
            pools.append(pool)
        return pools, rows

    def _v3_float(self) -> V3Float:
        """The float pass's V3 state, synced from the exact pools (see V3Float)."""
        n_p, n_v3 = self.n_pools, len(self.v3_exact)
        version = np.full(n_p, -1, np.int64)
        sqrt_price, liquidity, gamma = np.zeros(n_p), np.zeros(n_p), np.zeros(n_p)
        tick, spacing = np.zeros(n_p, np.int64), np.ones(n_p, np.int64)
        tick_offsets = np.zeros(2 * n_v3 + 1, np.int64)
        tick_offsets[-1] = n_v3 * TICK_CAP
        ticks, tick_refs = np.zeros(n_v3 * TICK_CAP, np.int64), np.zeros(n_v3 * TICK_CAP, np.int64)
        tick_sqrt, tick_net = np.zeros(n_v3 * TICK_CAP), np.zeros(n_v3 * TICK_CAP)
        pos_lower, pos_upper = np.zeros(n_v3 * POS_CAP, np.int64), np.zeros(n_v3 * POS_CAP, np.int64)
        pos_liq, pos_active = np.zeros(n_v3 * POS_CAP), np.zeros(n_v3 * POS_CAP, np.bool_)
        for j, pool in enumerate(self.v3_exact):
            p = self.n_v2 + j
            version[p] = 2 * j
            sqrt_price[p], liquidity[p], tick[p] = pool.sqrt_price_x96 / 2**96, float(pool.liquidity), pool.tick
            gamma[p], spacing[p] = 1.0 - pool.fee / 1e6, pool.tick_spacing
            refs = {}
            for (owner, lower, upper), held in pool.positions.items():
                k = j * POS_CAP + owner
                pos_lower[k], pos_upper[k], pos_liq[k], pos_active[k] = lower, upper, float(held), True
                refs[lower] = refs.get(lower, 0) + 1
                refs[upper] = refs.get(upper, 0) + 1
            sorted_ticks = sorted(pool.ticks)
            base = j * TICK_CAP
            tick_offsets[2 * j], tick_offsets[2 * j + 1] = base, base + len(sorted_ticks)
            for i, t in enumerate(sorted_ticks):
                ticks[base + i], tick_refs[base + i] = t, refs[t]
                tick_sqrt[base + i] = exact_v3.get_sqrt_ratio_at_tick(t) / 2**96
                tick_net[base + i] = float(pool.ticks[t].liquidity_net)
        return V3Float(sqrt_price, liquidity, tick, version, gamma, spacing, self.market["tvl_usd"], tick_offsets,
                       ticks, tick_sqrt, tick_net, tick_refs, pos_lower, pos_upper, pos_liq, pos_active)

    def _simulate(self, part_index: int, n_blocks: int, genesis: bool):
        """Float pass with retries on a full action buffer; the state is only committed on success."""
        m = self.market
        rng_seed = int(np.random.SeedSequence([self.seed, part_index]).generate_state(1)[0])
        exo = np.random.default_rng([self.seed, part_index, 0xE0])   # the exogenous paths' own stream
        exo_u = exo.random((n_blocks, 2))
        exo_z = exo.standard_normal((n_blocks, 2 + len(self.log_price)))
        self.capacity = max(self.capacity, int(n_blocks * (self.params["swaps_per_block"] * 3 + 20)))
        while True:
            state = (self.log_price.copy(), self.regime.copy(), self.congestion.copy(), self.base_fee.copy(),
                     np.array([float(r) for r in self.reserve0]), np.array([float(r) for r in self.reserve1]))
            cap = self.capacity
            acts = dict(block=np.empty(cap, np.int64), tx=np.empty(cap, np.int64), log=np.empty(cap, np.int64),
                        pool=np.empty(cap, np.int64), kind=np.empty(cap, np.int64), zfo=np.empty(cap, np.bool_),
                        amount=np.empty(cap), actor=np.empty(cap, np.int64), aux=np.empty(cap),
                        gas=np.empty(cap, np.int64), hop=np.empty(cap, np.int64),
                        tick_lower=np.zeros(cap, np.int64), tick_upper=np.zeros(cap, np.int64), paid=np.zeros(cap))
            base_fee = np.empty(n_blocks, np.int64)
            gas_used = np.empty(n_blocks, np.int64)
            takes_bundles = np.empty(n_blocks, np.bool_)
            prices = np.empty((n_blocks, len(self.log_price)))
            status, n = _simulate_partition_nb(
                rng_seed, exo_u, exo_z, n_blocks, genesis, self.knobs, *state,
                m["token_scale"], m["token_class"], m["token_beta"], m["token_idio_vol"], m["token_anchor"],
                m["pool_t0"], m["pool_t1"], m["pool_cum_weight"], self.n_v2, self._v3_float(),
                self.n_v2 + len(self.genesis_v3),
                m["cyc_pools"], m["cyc_zfo"], m["cyc_len"], m["cyc_gamma"], m["cyc_is_v3"], m["pool_cyc_ptr"],
                m["pool_cyc_idx"], self.pop_see, self.pop_share, self.pop_sigma, self.population.capital_wei,
                base_fee, gas_used, takes_bundles, prices,
                acts["block"], acts["tx"], acts["log"], acts["pool"], acts["kind"], acts["zfo"], acts["amount"],
                acts["actor"], acts["aux"], acts["gas"], acts["hop"], acts["tick_lower"], acts["tick_upper"],
                acts["paid"])
            if status == _STATUS_OK:
                break
            self.capacity *= 2
        self.log_price, self.regime, self.congestion, self.base_fee = state[:4]
        return {k: v[:n] for k, v in acts.items()}, base_fee, gas_used, takes_bundles, prices

    def partition(self, part_index: int, first: int, last: int) -> dict:
        """All partitioned tables for blocks first..last (inclusive)."""
        p = self.params
        n_blocks = last - first + 1
        genesis = first == p["first_block"]
        snap_r0, snap_r1 = list(self.reserve0), list(self.reserve1)
        snap_v3 = [(pool.sqrt_price_x96, pool.liquidity, pool.tick) for pool in self.v3_exact]
        tick_rows = [(self.n_v2 + j, t, pool.ticks[t].liquidity_net, pool.ticks[t].liquidity_gross)
                     for j, pool in enumerate(self.v3_exact) for t in sorted(pool.ticks)]
        acts, base_fee, gas_used, takes_bundles, prices = self._simulate(part_index, n_blocks, genesis)
        exact = _replay_exact(acts, self.reserve0, self.reserve1, self.v3_exact, self.n_v2)

        block_numbers = np.arange(first, last + 1, dtype=np.int64)
        blocks = pa.Table.from_arrays([
            pa.array(block_numbers), pa.array(FIRST_TIMESTAMP + BLOCK_SECONDS * (block_numbers - p["first_block"])),
            pa.array(base_fee), pa.array(gas_used), pa.array(np.full(n_blocks, GAS_LIMIT, dtype=np.int64)),
            pa.array(takes_bundles),
        ], schema=schema.BLOCKS)

        sampled = np.flatnonzero(((block_numbers - p["first_block"]) % p["price_interval"] == 0)
                                 | (block_numbers == first))
        n_tokens = prices.shape[1]
        price_table = pa.Table.from_arrays([
            pa.array(np.repeat(block_numbers[sampled], n_tokens)),
            pa.array(np.tile(np.arange(n_tokens, dtype=np.int32), len(sampled))),
            pa.array(prices[sampled].ravel()),
        ], schema=schema.PRICES)

        # the state before the partition's events: V3 pools are created in genesis tx 0, so they have no row there
        n_snap = self.n_v2 if genesis else self.n_pools
        n_none = self.n_v2
        snapshots = pa.Table.from_arrays([
            pa.array(np.full(n_snap, first, dtype=np.int64)), pa.array(np.arange(n_snap, dtype=np.int32)),
            pa.array(snap_r0[:n_snap], type=schema.AMOUNT), pa.array(snap_r1[:n_snap], type=schema.AMOUNT),
            pa.array([None] * n_none + [v[0] for v in snap_v3][:n_snap - n_none], type=schema.BIG),
            pa.array([None] * n_none + [v[1] for v in snap_v3][:n_snap - n_none], type=schema.BIG),
            pa.array([None] * n_none + [v[2] for v in snap_v3][:n_snap - n_none], type=pa.int32()),
        ], schema=schema.SNAPSHOTS)
        tick_rows = [] if genesis else tick_rows
        ticks = pa.Table.from_arrays([
            pa.array(np.full(len(tick_rows), first, dtype=np.int64)),
            pa.array([r[0] for r in tick_rows], type=pa.int32()), pa.array([r[1] for r in tick_rows], type=pa.int32()),
            pa.array([r[2] for r in tick_rows], type=schema.BIG), pa.array([r[3] for r in tick_rows], type=schema.BIG),
        ], schema=schema.TICKS)

        ev_block = acts["block"] + first
        ev_tx, ev_log, ev_pool, ev_kind, ev_actor = acts["tx"], acts["log"], acts["pool"], acts["kind"], acts["actor"]
        amounts = {k: exact[k] for k in ("amount0_in", "amount1_in", "amount0_out", "amount1_out")}
        res0, res1 = exact["reserve0"], exact["reserve1"]
        v3_names = ("sqrt_price_x96", "liquidity", "tick", "tick_lower", "tick_upper", "liquidity_delta")
        v3_cols = exact["v3"] or {k: [None] * len(res0) for k in v3_names}
        if genesis:
            # pool creation in tx 0 of the first block: one sync per V2 pool carrying the initial reserves, then
            # each V3 pool's Initialize and Mints
            n_p, g = self.n_v2, self.genesis_v3
            n_g = n_p + len(g)
            ev_block = np.concatenate([np.full(n_g, first, dtype=np.int64), ev_block])
            ev_tx = np.concatenate([np.zeros(n_g, dtype=np.int64), ev_tx])
            ev_log = np.concatenate([np.arange(n_g, dtype=np.int64), ev_log])
            ev_pool = np.concatenate([np.arange(n_p, dtype=np.int64), np.array([r["pool"] for r in g], np.int64),
                                      ev_pool])
            ev_kind = np.concatenate([np.full(n_p, -1, dtype=np.int64), np.array([r["kind"] for r in g], np.int64),
                                      ev_kind])
            venue_of = np.array([VENUES.index(v) for v in
                                 self.market["pools"].column("venue").to_pylist()], dtype=np.int64)
            ev_actor = np.concatenate([len(self.actor_addr) - len(VENUES) + venue_of[:n_p],
                                       np.full(len(g), len(self.actor_addr) - len(VENUES) + VENUES.index("uniswap_v3"),
                                               np.int64), ev_actor])
            zeros = [0] * n_p
            amounts = {"amount0_in": zeros + [r["a0"] for r in g] + amounts["amount0_in"],
                       "amount1_in": zeros + [r["a1"] for r in g] + amounts["amount1_in"],
                       "amount0_out": zeros + [0] * len(g) + amounts["amount0_out"],
                       "amount1_out": zeros + [0] * len(g) + amounts["amount1_out"]}
            res0 = snap_r0[:n_p] + [r["r0"] for r in g] + res0
            res1 = snap_r1[:n_p] + [r["r1"] for r in g] + res1
            genesis_cols = dict(sqrt_price_x96="sqrt", liquidity="liquidity", tick="tick", tick_lower="lower",
                                tick_upper="upper", liquidity_delta="delta")
            v3_cols = {k: [None] * n_p + [r[genesis_cols[k]] for r in g] + v3_cols[k] for k in v3_names}
        kind_names = pa.array(("sync",) + _KIND_NAMES)
        tx_hash = self._tx_hashes(ev_block, ev_tx)
        events = pa.Table.from_arrays([
            pa.array(ev_block), pa.array(ev_tx.astype(np.int32)), pa.array(ev_log.astype(np.int32)),
            pa.array(ev_pool.astype(np.int32)), kind_names.take(pa.array(ev_kind + 1)),
            *[pa.array(amounts[k], type=schema.AMOUNT) for k in ("amount0_in", "amount1_in", "amount0_out",
                                                                  "amount1_out")],
            pa.array(res0, type=schema.AMOUNT), pa.array(res1, type=schema.AMOUNT),
            tx_hash, self.actor_addr.take(pa.array(ev_actor)),
            *[pa.array(v3_cols[k], type=schema.EVENTS.field(k).type) for k in v3_names],
        ], schema=schema.EVENTS)

        noise = np.flatnonzero(acts["kind"] == NOISE)
        victims = pa.Table.from_arrays([
            pa.array(acts["block"][noise] + first), pa.array(acts["tx"][noise].astype(np.int32)),
            self._tx_hashes(acts["block"][noise] + first, acts["tx"][noise]),
            pa.array(acts["pool"][noise].astype(np.int32)), pa.array(acts["zfo"][noise]),
            pa.array(exact["victim_in"], type=schema.AMOUNT),
            pa.array(exact["victim_min"], type=schema.AMOUNT),
            pa.array(exact["victim_exact_out"], type=pa.bool_()),
        ], schema=schema.VICTIMS)

        rows = exact["label_row"]
        kind_of = acts["kind"][rows]
        n_t = p["n_traders"]
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        offsets[1:] = np.cumsum([len(x) for x in exact["label_pools"]])
        flat_pools = np.array([q for x in exact["label_pools"] for q in x], dtype=np.int32)
        zfo_rows, pool_rows = acts["zfo"][rows], acts["pool"][rows]
        token_out = np.where(zfo_rows, self.market["pool_t1"][pool_rows], self.market["pool_t0"][pool_rows])
        token_in = np.where(zfo_rows, self.market["pool_t0"][pool_rows], self.market["pool_t1"][pool_rows])
        labels = pa.Table.from_arrays([
            pa.array(acts["block"][rows] + first), pa.array(acts["tx"][rows].astype(np.int32)),
            self._tx_hashes(acts["block"][rows] + first, acts["tx"][rows]),
            pa.array(np.array(["cexdex", "arbitrage", "sandwich", "jit"])[kind_of - CEXDEX]),   # jit: MINT
            self.actor_names.take(pa.array(acts["actor"][rows] - n_t)),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat_pools, type=pa.int32())),
            pa.array(np.where(kind_of == CEXDEX, token_out, token_in).astype(np.int32)),
            pa.array(exact["label_profit"], type=schema.AMOUNT),
            pa.array(acts["gas"][rows]),
        ], schema=schema.LABELS).append_column(
            "bribe_wei", pa.array([int(round(v)) for v in acts["paid"][rows]], type=schema.AMOUNT))
        return dict(blocks=blocks, events=events, snapshots=snapshots, ticks=ticks, victims=victims, labels=labels,
                    prices=price_table)

    def _tx_hashes(self, block: np.ndarray, tx: np.ndarray) -> pa.Array:
        return _fake_hex(self.seed, 4, (np.asarray(block, np.uint64) << np.uint64(20)) + np.asarray(tx, np.uint64),
                         32)


def generate(out_dir, preset: str = "small", seed: int = 0, progress: bool = True, **overrides) -> pathlib.Path:
    """Write a synthetic dataset to `out_dir` and return its path.

    `overrides` replace preset parameters (see PRESETS); `overwrite=True` replaces an existing dataset;
    `cache=True` marks the folder as gpubt's own cache (`is_own_cache`), the only kind it may ever replace.
    """
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed = {seed!r}: must be an int in [0, 2**63)")
    seed = int(seed)
    if preset not in PRESETS:
        raise ValueError(f"preset = {preset!r}: unknown (choose one of {', '.join(PRESETS)})")
    overwrite = bool(overrides.pop("overwrite", False))
    cache = bool(overrides.pop("cache", False))
    unknown = sorted(set(overrides) - set(PRESETS[preset]))
    if unknown:
        raise ValueError(f"unknown synthetic parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(PRESETS[preset]))})")
    params = dict(PRESETS[preset], **overrides)
    if params["n_blocks"] < 1 or params["partition_blocks"] < 1 or params["price_interval"] < 1:
        raise ValueError("n_blocks, partition_blocks and price_interval must be >= 1")

    out_dir = pathlib.Path(out_dir)
    if (out_dir / "manifest.json").exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} already holds a dataset (manifest.json); "
                                  "pass overwrite=True to replace it or choose another folder")
        _remove_dataset(out_dir)
    if cache:  # marked before the first file, so an interrupted generation is recognised as ours too
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CACHE_MARK).write_text(json.dumps({"path": str(out_dir.resolve())}))

    sim = _Simulator(params, seed)
    writer = DatasetWriter(out_dir, source="synthetic", params=dict(params, preset=preset, seed=seed))
    writer.write_static(sim.market["tokens"], sim.market["pools"])
    from tqdm.auto import tqdm

    first_block, n_blocks, step = params["first_block"], params["n_blocks"], params["partition_blocks"]
    with tqdm(total=n_blocks, unit="block", desc=f"synthetic {preset}", disable=not progress) as bar:
        for part_index, first in enumerate(range(first_block, first_block + n_blocks, step)):
            last = min(first + step, first_block + n_blocks) - 1
            writer.write_partition(first, last, sim.partition(part_index, first, last))
            bar.update(last - first + 1)
    from gpubt.data import lending, rivals
    from gpubt.data.store import Dataset

    lending.write_positions(Dataset(out_dir))  # the default lending book (strategy=liquidation)
    rivals.plant_liquidations(out_dir, params["competition"], seed)  # its history: rival liquidators' (labels too)
    writer.finish()  # complete only with its book and their history: an interrupted generation is not taken for one
    return out_dir


CACHE_MARK = ".gpubt-cache.json"  # {"path": the folder}: gpubt generated this dataset into its own cache here


def is_own_cache(root) -> bool:
    """gpubt generated the dataset at `root` into its cache (generate(cache=True)) at this very path (a copy
    elsewhere is not: the mark names the folder it was written in)."""
    root = pathlib.Path(root)
    try:
        return json.loads((root / CACHE_MARK).read_text()).get("path") == str(root.resolve())
    except (OSError, ValueError, AttributeError):
        return False


def _remove_dataset(root: pathlib.Path) -> None:
    """Delete only what a dataset consists of (never the folder's other files)."""
    for name in ("manifest.json", "tokens.parquet", "pools.parquet", "positions.parquet", "liquidations.parquet"):
        (root / name).unlink(missing_ok=True)
    for name in PARTITIONED:
        folder = root / name
        if folder.is_dir():
            for f in folder.glob("*.parquet*"):
                f.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
