"""A seeded, mainnet-like synthetic Uniswap V2 market, written as a gpubt dataset (see gpubt/data/store.py).

What it simulates, per block of 12 s:
- reference USD prices: GBM with a calm/volatile Markov regime and a market (ETH) factor; stablecoins pinned;
- EIP-1559 base fee driven by a congestion AR(1) process;
- CEX-DEX arbitrageurs at the top of the block: pools outside the fee band of the reference are pushed back to
  its edge when that beats gas (LABELS kind "cexdex");
- noise traders (Poisson count, pools ∝ TVL^0.7, lognormal USD size), each also a pending router swap (VICTIMS);
- cyclic-arbitrage searchers back-running noise swaps with the best 2- or 3-hop WETH cycle (LABELS "arbitrage");
- occasional LP mints and burns proportional to the reserves.

How, per partition of blocks: a numba float64 pass decides every action (`_simulate_partition_nb`), then a
Python-int pass replays the actions with Uniswap's exact integer math (`_replay_exact`), so every event, reserve
and profit in the dataset is exact; the float reserves are re-synced from the exact ones at every partition.
Only one partition's rows are in memory at a time.

Label profits: "arbitrage" profit_raw is exact WETH wei (last hop's output − first hop's input);
"cexdex" profit_raw is in raw units of the token the arbitrageur received (profit_token):
amount_out − round(amount_in × reference rate of token_in in token_out at that block), i.e. the DEX leg
marked against a CEX hedge at the reference price.
"""
from __future__ import annotations

import math
import pathlib
from collections import namedtuple

import numpy as np
import pyarrow as pa
from numba import njit

from gpubt import schema
from gpubt.data.store import PARTITIONED, DatasetWriter
from gpubt.kernels import amm_v2

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
VENUES = ("uniswap_v2", "sushiswap")
SLIPPAGES_BPS = (10, 50, 100, 300)
N_CEXDEX = 3                      # distinct CEX-DEX arbitrageur addresses

_COMMON = dict(
    first_block=FIRST_BLOCK,
    price_interval=10,            # blocks between PRICES rows (plus the first block of every partition)
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
    n_searchers=5,
    searcher_activity=0.6,        # probability that some searcher looks at a back-run after a noise swap
    searcher_margin_eth=0.0005,   # searcher i demands (i + 1) × this net of gas
    cexdex_activity=0.7,          # probability that an out-of-band pool is arbitraged at the top of a block
    cexdex_margin_usd=10.0,       # net of gas
)

PRESETS: dict[str, dict] = {
    "tiny": dict(_COMMON, n_blocks=200, n_tokens=12, n_pools=30, swaps_per_block=8.0, partition_blocks=100),
    "small": dict(_COMMON, n_blocks=2_000, n_tokens=60, n_pools=250, swaps_per_block=20.0, partition_blocks=500),
    "mainnet-month": dict(_COMMON, n_blocks=216_000, n_tokens=300, n_pools=2_000, swaps_per_block=40.0,
                          partition_blocks=7_200),
}

# action kinds of the float pass (swaps first: kind <= ARB_HOP is a swap)
NOISE, CEXDEX, ARB_HOP, MINT, BURN = 0, 1, 2, 3, 4
_KIND_NAMES = ("swap", "swap", "swap", "mint", "burn")
_STATUS_OK, _STATUS_FULL = 0, 1

Knobs = namedtuple("Knobs", [
    "dt_years", "eth_vol", "vol_regime_mult", "calm_to_volatile", "volatile_to_calm", "base_fee_wei0",
    "swaps_per_block", "noise_log_median_usd", "noise_sigma", "noise_max_tvl_frac", "lp_event_share",
    "n_traders", "n_searchers", "searcher_activity", "cexdex_activity", "cexdex_margin_usd",
])


# ---------------------------------------------------------------------------------------------------------------
# float pass (numba)

_amount_out_nb = njit(cache=True)(amm_v2.v2_amount_out)
_compose_hop_nb = njit(cache=True)(amm_v2.compose_hop)
_optimal_input_nb = njit(cache=True)(amm_v2.optimal_input)


@njit(cache=True)
def _eip1559_next_nb(base_fee_wei, gas_used, gas_target):
    """Next block's base fee by the EIP-1559 integer rule; base × delta is split so int64 cannot overflow."""
    delta = gas_used - gas_target if gas_used >= gas_target else gas_target - gas_used
    q = base_fee_wei // gas_target
    r = base_fee_wei - q * gas_target
    change = (q * delta + (r * delta) // gas_target) // 8
    if gas_used > gas_target:
        return base_fee_wei + max(change, 1)
    return base_fee_wei - change


@njit(cache=True)
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


@njit(cache=True)
def _simulate_partition_nb(rng_seed, n_blocks, genesis, knobs,
                           log_price, regime, congestion, base_fee, rf0, rf1,
                           token_scale, token_class, token_beta, token_idio_vol,
                           pool_t0, pool_t1, pool_cum_weight,
                           cyc_pools, cyc_zfo, cyc_len, pool_cyc_ptr, pool_cyc_idx,
                           searcher_margin_wei, searcher_prio_wei,
                           out_base_fee, out_gas_used, out_prices,
                           a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop):
    """Decide every action of `n_blocks` blocks in float64; state arrays are updated in place.

    token_class: 0 WETH, 1 stablecoin, 2 market-loaded. Actions (a_*): block offset, tx_index, log_index, pool,
    kind, zero_for_one, float amount_in (-1: the previous hop's output; mint/burn: fraction in ppm), actor,
    aux (noise: slippage bps; cexdex: reference rate token_in→token_out raw), gas (first action of a labeled
    tx), hop (index within its tx). Returns (status, n_actions).
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
    n = 0
    for b in range(n_blocks):
        # reference prices (the genesis block keeps the initial ones)
        if not (genesis and b == 0):
            if regime[0] == 0 and np.random.random() < knobs.calm_to_volatile:
                regime[0] = 1
            elif regime[0] == 1 and np.random.random() < knobs.volatile_to_calm:
                regime[0] = 0
            vol_mult = knobs.vol_regime_mult if regime[0] == 1 else 1.0
            eth_sigma = knobs.eth_vol * vol_mult * sqrt_dt
            market_shock = eth_sigma * np.random.standard_normal()
            for t in range(n_tokens):
                cls = token_class[t]
                if cls == 0:
                    log_price[t] += market_shock - 0.5 * eth_sigma * eth_sigma
                elif cls == 1:
                    # pinned: a fast mean-reverting wobble of ~1e-4 around $1
                    log_price[t] = 0.99 * log_price[t] + 2e-5 * np.random.standard_normal()
                else:
                    idio = token_idio_vol[t] * vol_mult * sqrt_dt
                    log_price[t] += token_beta[t] * market_shock + idio * np.random.standard_normal() \
                        - 0.5 * idio * idio
        for t in range(n_tokens):
            price_usd[t] = math.exp(log_price[t])
            out_prices[b, t] = price_usd[t]

        # gas market: congestion AR(1); demand is price-elastic so the base fee mean-reverts
        congestion[0] = 0.9 * congestion[0] + 0.08 * np.random.standard_normal()
        utilization = 0.5 + congestion[0] - 0.3 * math.log(base_fee[0] / knobs.base_fee_wei0)
        utilization = min(max(utilization, 0.05), 1.0)
        gas_used = int(utilization * GAS_LIMIT)
        out_base_fee[b] = base_fee[0]
        out_gas_used[b] = gas_used
        base_fee_wei = float(base_fee[0])
        eth_usd = price_usd[WETH]

        tx = 1 if (genesis and b == 0) else 0       # genesis tx 0 holds the pool-creation syncs
        log = n_pools if (genesis and b == 0) else 0

        # CEX-DEX arbitrage at the top of the block: push out-of-band pools back to the band edge
        for p in range(n_pools):
            t0 = pool_t0[p]
            t1 = pool_t1[p]
            r0 = rf0[p]
            r1 = rf1[p]
            ref01 = price_usd[t0] / price_usd[t1] * token_scale[t1] / token_scale[t0]  # token1 raw per token0 raw
            rho = r1 / (r0 * ref01)
            if rho < GAMMA:      # token0 cheap on the pool: sell token1 for it
                zfo = False
                x = (math.sqrt(GAMMA * r0 * r1 * ref01) - r1) / GAMMA
                out = _amount_out_nb(x, r1, r0, GAMMA)
                rate = 1.0 / ref01
                profit_usd = (out - x * rate) / token_scale[t0] * price_usd[t0]
            elif rho * GAMMA > 1.0:
                zfo = True
                x = (math.sqrt(GAMMA * r0 * r1 / ref01) - r0) / GAMMA
                out = _amount_out_nb(x, r0, r1, GAMMA)
                rate = ref01
                profit_usd = (out - x * rate) / token_scale[t1] * price_usd[t1]
            else:
                continue
            gas = 110_000 + np.random.randint(0, 20_000)
            gas_usd = gas * (base_fee_wei + 2e9) * 1e-18 * eth_usd
            if profit_usd <= gas_usd + knobs.cexdex_margin_usd or np.random.random() >= knobs.cexdex_activity:
                continue
            actor = knobs.n_traders + knobs.n_searchers + np.random.randint(0, N_CEXDEX)
            n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                      b, tx, log, p, CEXDEX, zfo, x, actor, rate, gas, 0)
            if n < 0:
                return _STATUS_FULL, 0
            if zfo:
                rf0[p] = r0 + x
                rf1[p] = r1 - out
            else:
                rf1[p] = r1 + x
                rf0[p] = r0 - out
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
            # TVL ≈ 2 × reserve_in in value
            amount_in = max(min(amount_in, 2.0 * knobs.noise_max_tvl_frac * r_in), 1.0)
            slip_bps = slippages[np.random.randint(0, slippages.shape[0])]
            n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas, a_hop,
                      b, tx, log, p, NOISE, zfo, amount_in, trader, float(slip_bps), 0, 0)
            if n < 0:
                return _STATUS_FULL, 0
            out = _amount_out_nb(amount_in, r_in, r_out, GAMMA)
            if zfo:
                rf0[p] = r_in + amount_in
                rf1[p] = r_out - out
            else:
                rf1[p] = r_in + amount_in
                rf0[p] = r_out - out
            tx += 1
            log += 1

            if np.random.random() >= knobs.searcher_activity:
                continue
            s = np.random.randint(0, knobs.n_searchers)
            gas_price = base_fee_wei + searcher_prio_wei[s]
            gas_jitter = np.random.random()
            best_net = -1.0
            best_c = -1
            best_x = 0.0
            for j in range(pool_cyc_ptr[p], pool_cyc_ptr[p + 1]):
                c = pool_cyc_idx[j]
                k = 1.0
                m = 1.0
                nn = 0.0
                for h in range(cyc_len[c]):
                    q = cyc_pools[c, h]
                    if cyc_zfo[c, h]:
                        k, m, nn = _compose_hop_nb(k, m, nn, rf0[q], rf1[q], GAMMA)
                    else:
                        k, m, nn = _compose_hop_nb(k, m, nn, rf1[q], rf0[q], GAMMA)
                x = _optimal_input_nb(k, m, nn)
                if x <= 0.0:
                    continue
                gross = k * x / (m + nn * x) - x
                gas = 140_000.0 + 30_000.0 * gas_jitter if cyc_len[c] == 2 else 200_000.0 + 40_000.0 * gas_jitter
                net = gross - gas * gas_price
                if net > best_net:
                    best_net = net
                    best_c = c
                    best_x = x
            if best_c < 0 or best_net <= searcher_margin_wei[s]:
                continue
            hops = cyc_len[best_c]
            gas = int(140_000.0 + 30_000.0 * gas_jitter if hops == 2 else 200_000.0 + 40_000.0 * gas_jitter)
            amount = best_x
            for h in range(hops):
                q = cyc_pools[best_c, h]
                zfo_h = cyc_zfo[best_c, h]
                n = _push(cap, n, a_block, a_tx, a_log, a_pool, a_kind, a_zfo, a_amount, a_actor, a_aux, a_gas,
                          a_hop, b, tx, log, q, ARB_HOP, zfo_h, amount if h == 0 else -1.0,
                          knobs.n_traders + s, float(hops), gas if h == 0 else 0, h)
                if n < 0:
                    return _STATUS_FULL, 0
                if zfo_h:
                    out = _amount_out_nb(amount, rf0[q], rf1[q], GAMMA)
                    rf0[q] += amount
                    rf1[q] -= out
                else:
                    out = _amount_out_nb(amount, rf1[q], rf0[q], GAMMA)
                    rf1[q] += amount
                    rf0[q] -= out
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

    cyc_pools, cyc_zfo, cyc_len = _weth_cycles(pool_t0, pool_t1)
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
        pa.array(decimals.astype(np.int32)), pa.array(np.arange(n_tokens) < len(HUBS)),
    ], schema=schema.TOKENS)
    pools = pa.Table.from_arrays([
        pa.array(np.arange(n_p, dtype=np.int32)), _fake_hex(seed, 2, np.arange(n_p), 20),
        pa.array([VENUES[v] for v in pool_venue]), pa.array(["v2"] * n_p),
        pa.array(pool_t0.astype(np.int32)), pa.array(pool_t1.astype(np.int32)),
        pa.array(np.full(n_p, FEE_PPM, dtype=np.int32)),
        pa.array(np.full(n_p, params["first_block"], dtype=np.int64)),
    ], names=schema.required_names("pools"))
    return dict(tokens=tokens, pools=pools, token_scale=scale, token_class=token_class, token_beta=beta,
                token_idio_vol=idio_vol, log_price=np.log(price0), pool_t0=pool_t0, pool_t1=pool_t1,
                pool_cum_weight=np.cumsum(tvl_usd ** 0.7), reserve0=reserve0, reserve1=reserve1,
                cyc_pools=cyc_pools, cyc_zfo=cyc_zfo, cyc_len=cyc_len, pool_cyc_ptr=ptr, pool_cyc_idx=idx)


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

def _replay_exact(actions: dict, reserve0: list, reserve1: list) -> dict:
    """Replay the float pass's actions with Uniswap's integer math; `reserve0/1` (Python ints) are updated.

    Swap outputs are getAmountOut at fee_ppm 3000 (inlined: the hot loop of the generator).
    """
    fee_keep = 1_000_000 - FEE_PPM
    kinds = actions["kind"].tolist()
    pools = actions["pool"].tolist()
    zfos = actions["zfo"].tolist()
    amounts = actions["amount"].tolist()
    auxs = actions["aux"].tolist()
    hops = actions["hop"].tolist()
    a0i, a1i, a0o, a1o, res0, res1 = [], [], [], [], [], []
    victim_min, label_profit, label_pools, label_row = [], [], [], []
    last_out = first_in = 0
    arb_pools = []
    for i, kind in enumerate(kinds):
        p = pools[i]
        r0 = reserve0[p]
        r1 = reserve1[p]
        if kind <= ARB_HOP:
            amount_in = last_out if (kind == ARB_HOP and hops[i] > 0) else int(amounts[i])
            if amount_in < 1:
                amount_in = 1
            with_fee = amount_in * fee_keep
            if zfos[i]:
                out = with_fee * r1 // (r0 * 1_000_000 + with_fee)
                r0 += amount_in
                r1 -= out
                a0i.append(amount_in), a1i.append(0), a0o.append(0), a1o.append(out)
            else:
                out = with_fee * r0 // (r1 * 1_000_000 + with_fee)
                r1 += amount_in
                r0 -= out
                a0i.append(0), a1i.append(amount_in), a0o.append(out), a1o.append(0)
            last_out = out
            if kind == NOISE:
                # the router's quote is taken on this same state, so amount_out_min <= out
                victim_min.append(out * (10_000 - int(auxs[i])) // 10_000)
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
        reserve0[p] = r0
        reserve1[p] = r1
        res0.append(r0)
        res1.append(r1)
    return dict(amount0_in=a0i, amount1_in=a1i, amount0_out=a0o, amount1_out=a1o, reserve0=res0, reserve1=res1,
                victim_min=victim_min, label_profit=label_profit, label_pools=label_pools,
                label_row=np.array(label_row, dtype=np.int64))


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
        n_s = params["n_searchers"]
        self.searcher_margin_wei = params["searcher_margin_eth"] * 1e18 * np.arange(1, n_s + 1, dtype=np.float64)
        self.searcher_prio_wei = 1e9 * (1.0 + 0.5 * np.arange(n_s, dtype=np.float64))
        self.knobs = Knobs(
            dt_years=BLOCK_SECONDS / (365.0 * 86400.0), eth_vol=float(params["eth_vol"]),
            vol_regime_mult=float(params["vol_regime_mult"]), calm_to_volatile=float(params["calm_to_volatile"]),
            volatile_to_calm=float(params["volatile_to_calm"]),
            base_fee_wei0=float(params["base_fee_gwei"] * 1e9), swaps_per_block=float(params["swaps_per_block"]),
            noise_log_median_usd=math.log(params["noise_median_usd"]), noise_sigma=float(params["noise_sigma"]),
            noise_max_tvl_frac=float(params["noise_max_tvl_frac"]), lp_event_share=float(params["lp_event_share"]),
            n_traders=int(params["n_traders"]), n_searchers=int(n_s),
            searcher_activity=float(params["searcher_activity"]), cexdex_activity=float(params["cexdex_activity"]),
            cexdex_margin_usd=float(params["cexdex_margin_usd"]),
        )
        n_actors = params["n_traders"] + n_s + N_CEXDEX
        self.actor_addr = _fake_hex(seed, 3, np.arange(n_actors + len(VENUES)), 20)   # + one factory per venue
        self.actor_names = pa.array([f"searcher_{i}" for i in range(n_s)] + [f"cexdex_{i}" for i in range(N_CEXDEX)])
        self.capacity = 1024

    def _simulate(self, part_index: int, n_blocks: int, genesis: bool):
        """Float pass with retries on a full action buffer; the state is only committed on success."""
        m = self.market
        rng_seed = int(np.random.SeedSequence([self.seed, part_index]).generate_state(1)[0])
        self.capacity = max(self.capacity, int(n_blocks * (self.params["swaps_per_block"] * 3 + 20)))
        while True:
            state = (self.log_price.copy(), self.regime.copy(), self.congestion.copy(), self.base_fee.copy(),
                     np.array([float(r) for r in self.reserve0]), np.array([float(r) for r in self.reserve1]))
            cap = self.capacity
            acts = dict(block=np.empty(cap, np.int64), tx=np.empty(cap, np.int64), log=np.empty(cap, np.int64),
                        pool=np.empty(cap, np.int64), kind=np.empty(cap, np.int64), zfo=np.empty(cap, np.bool_),
                        amount=np.empty(cap), actor=np.empty(cap, np.int64), aux=np.empty(cap),
                        gas=np.empty(cap, np.int64), hop=np.empty(cap, np.int64))
            base_fee = np.empty(n_blocks, np.int64)
            gas_used = np.empty(n_blocks, np.int64)
            prices = np.empty((n_blocks, len(self.log_price)))
            status, n = _simulate_partition_nb(
                rng_seed, n_blocks, genesis, self.knobs, *state,
                m["token_scale"], m["token_class"], m["token_beta"], m["token_idio_vol"],
                m["pool_t0"], m["pool_t1"], m["pool_cum_weight"],
                m["cyc_pools"], m["cyc_zfo"], m["cyc_len"], m["pool_cyc_ptr"], m["pool_cyc_idx"],
                self.searcher_margin_wei, self.searcher_prio_wei, base_fee, gas_used, prices,
                acts["block"], acts["tx"], acts["log"], acts["pool"], acts["kind"], acts["zfo"], acts["amount"],
                acts["actor"], acts["aux"], acts["gas"], acts["hop"])
            if status == _STATUS_OK:
                break
            self.capacity *= 2
        self.log_price, self.regime, self.congestion, self.base_fee = state[:4]
        return {k: v[:n] for k, v in acts.items()}, base_fee, gas_used, prices

    def partition(self, part_index: int, first: int, last: int) -> dict:
        """All partitioned tables for blocks first..last (inclusive)."""
        p = self.params
        n_blocks = last - first + 1
        genesis = first == p["first_block"]
        snap_r0, snap_r1 = list(self.reserve0), list(self.reserve1)
        acts, base_fee, gas_used, prices = self._simulate(part_index, n_blocks, genesis)
        exact = _replay_exact(acts, self.reserve0, self.reserve1)

        block_numbers = np.arange(first, last + 1, dtype=np.int64)
        blocks = pa.Table.from_arrays([
            pa.array(block_numbers), pa.array(FIRST_TIMESTAMP + BLOCK_SECONDS * (block_numbers - p["first_block"])),
            pa.array(base_fee), pa.array(gas_used), pa.array(np.full(n_blocks, GAS_LIMIT, dtype=np.int64)),
        ], schema=schema.BLOCKS)

        sampled = np.flatnonzero(((block_numbers - p["first_block"]) % p["price_interval"] == 0)
                                 | (block_numbers == first))
        n_tokens = prices.shape[1]
        price_table = pa.Table.from_arrays([
            pa.array(np.repeat(block_numbers[sampled], n_tokens)),
            pa.array(np.tile(np.arange(n_tokens, dtype=np.int32), len(sampled))),
            pa.array(prices[sampled].ravel()),
        ], schema=schema.PRICES)

        snapshots = pa.Table.from_arrays([
            pa.array(np.full(self.n_pools, first, dtype=np.int64)), pa.array(np.arange(self.n_pools, dtype=np.int32)),
            pa.array(snap_r0, type=schema.AMOUNT), pa.array(snap_r1, type=schema.AMOUNT),
        ], names=schema.required_names("snapshots"))

        ev_block = acts["block"] + first
        ev_tx, ev_log, ev_pool, ev_kind, ev_actor = acts["tx"], acts["log"], acts["pool"], acts["kind"], acts["actor"]
        amounts = {k: exact[k] for k in ("amount0_in", "amount1_in", "amount0_out", "amount1_out")}
        res0, res1 = exact["reserve0"], exact["reserve1"]
        if genesis:
            # pool creation: one sync per pool in tx 0 of the first block, carrying the initial reserves
            n_p = self.n_pools
            ev_block = np.concatenate([np.full(n_p, first, dtype=np.int64), ev_block])
            ev_tx = np.concatenate([np.zeros(n_p, dtype=np.int64), ev_tx])
            ev_log = np.concatenate([np.arange(n_p, dtype=np.int64), ev_log])
            ev_pool = np.concatenate([np.arange(n_p, dtype=np.int64), ev_pool])
            ev_kind = np.concatenate([np.full(n_p, -1, dtype=np.int64), ev_kind])
            venue_of = np.array([VENUES.index(v) for v in
                                 self.market["pools"].column("venue").to_pylist()], dtype=np.int64)
            ev_actor = np.concatenate([len(self.actor_addr) - len(VENUES) + venue_of, ev_actor])
            amounts = {k: [0] * n_p + v for k, v in amounts.items()}
            res0, res1 = snap_r0 + res0, snap_r1 + res1
        kind_names = pa.array(("sync",) + _KIND_NAMES)
        tx_hash = self._tx_hashes(ev_block, ev_tx)
        events = pa.Table.from_arrays([
            pa.array(ev_block), pa.array(ev_tx.astype(np.int32)), pa.array(ev_log.astype(np.int32)),
            pa.array(ev_pool.astype(np.int32)), kind_names.take(pa.array(ev_kind + 1)),
            *[pa.array(amounts[k], type=schema.AMOUNT) for k in ("amount0_in", "amount1_in", "amount0_out",
                                                                  "amount1_out")],
            pa.array(res0, type=schema.AMOUNT), pa.array(res1, type=schema.AMOUNT),
            tx_hash, self.actor_addr.take(pa.array(ev_actor)),
        ], names=schema.required_names("events"))

        noise = np.flatnonzero(acts["kind"] == NOISE)
        victims = pa.Table.from_arrays([
            pa.array(acts["block"][noise] + first), pa.array(acts["tx"][noise].astype(np.int32)),
            self._tx_hashes(acts["block"][noise] + first, acts["tx"][noise]),
            pa.array(acts["pool"][noise].astype(np.int32)), pa.array(acts["zfo"][noise]),
            pa.array(_noise_inputs(exact, acts, noise), type=schema.AMOUNT),
            pa.array(exact["victim_min"], type=schema.AMOUNT),
        ], schema=schema.VICTIMS)

        rows = exact["label_row"]
        is_arb = acts["kind"][rows] == ARB_HOP
        n_t = p["n_traders"]
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        offsets[1:] = np.cumsum([len(x) for x in exact["label_pools"]])
        flat_pools = np.array([q for x in exact["label_pools"] for q in x], dtype=np.int32)
        token_out = np.where(acts["zfo"][rows], self.market["pool_t1"][acts["pool"][rows]],
                             self.market["pool_t0"][acts["pool"][rows]])
        labels = pa.Table.from_arrays([
            pa.array(acts["block"][rows] + first), pa.array(acts["tx"][rows].astype(np.int32)),
            self._tx_hashes(acts["block"][rows] + first, acts["tx"][rows]),
            pa.array(np.where(is_arb, "arbitrage", "cexdex")),
            self.actor_names.take(pa.array(acts["actor"][rows] - n_t)),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat_pools, type=pa.int32())),
            pa.array(np.where(is_arb, WETH, token_out).astype(np.int32)),
            pa.array(exact["label_profit"], type=schema.AMOUNT),
            pa.array(acts["gas"][rows]),
        ], schema=schema.LABELS)
        return dict(blocks=blocks, events=events, snapshots=snapshots, victims=victims, labels=labels,
                    prices=price_table)

    def _tx_hashes(self, block: np.ndarray, tx: np.ndarray) -> pa.Array:
        return _fake_hex(self.seed, 4, (np.asarray(block, np.uint64) << np.uint64(20)) + np.asarray(tx, np.uint64),
                         32)


def _noise_inputs(exact: dict, acts: dict, noise: np.ndarray) -> list:
    """The exact amount_in of each noise swap (whichever side it paid in)."""
    a0i, a1i = exact["amount0_in"], exact["amount1_in"]
    zfo = acts["zfo"]
    return [a0i[i] if zfo[i] else a1i[i] for i in noise.tolist()]


def generate(out_dir, preset: str = "small", seed: int = 0, progress: bool = True, **overrides) -> pathlib.Path:
    """Write a synthetic dataset to `out_dir` and return its path.

    `overrides` replace preset parameters (see PRESETS); `overwrite=True` replaces an existing dataset.
    """
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed = {seed!r}: must be an int in [0, 2**63)")
    seed = int(seed)
    if preset not in PRESETS:
        raise ValueError(f"preset = {preset!r}: unknown (choose one of {', '.join(PRESETS)})")
    overwrite = bool(overrides.pop("overwrite", False))
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
    writer.finish()
    return out_dir


def _remove_dataset(root: pathlib.Path) -> None:
    """Delete only what a dataset consists of (never the folder's other files)."""
    for name in ("manifest.json", "tokens.parquet", "pools.parquet"):
        (root / name).unlink(missing_ok=True)
    for name in PARTITIONED:
        folder = root / name
        if folder.is_dir():
            for f in folder.glob("*.parquet*"):
                f.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
