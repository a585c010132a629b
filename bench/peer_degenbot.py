"""Side by side with a peer: gpubt vs degenbot (`UniswapLpCycle.calculate`) on the same random V2 cycles.

N seeded cycles (2- and 3-hop from WETH, about half profitable) are evaluated by degenbot 0.3.0 on offline pools
(`UnregisteredLiquidityPool` + `state_overrides`, stand-in tokens that read no chain) and by gpubt: the float64
screen on the CPU backend (one path, one state-log entry per pool, one pair per cycle; kernel only, compile
excluded), the exact re-pricing a run does (the proven level search from the float optimum, on the exact
engine's numba-CPU build and on its Python-int oracle, which must agree), and CUDA where usable. Medians of
--repeats. Agreement (always reported; --check fails on any disagreement): the float screen must flag exactly the
cycles degenbot finds profitable, and on each of them gpubt's exact profit must equal the exact integer maximum
(`exact_maximum`: gpubt's level search run until its upper bound proves it, tested against brute force in
tests/exact/test_v2.py), and degenbot's input, evaluated exactly, must not beat gpubt's. Cycles where the two
differ only because degenbot stops below the maximum are counted apart: they are not disagreements.

    pip install -e '.[bench]'      # degenbot: a benchmark-only dependency, never imported by gpubt
    python bench/peer_degenbot.py --cycles 2000 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import kernel_args, machine, median_seconds  # bench/common.py (scripts run from bench/)

from gpubt.backend import Backend, cpu_backend, cuda_unavailable_reason
from gpubt.exact.v2 import FEE_DENOMINATOR, get_amount_out, optimal_input_search, path_profit
from gpubt.strategies import exact_engine

FEE_PPM = 3000
GAMMA = (FEE_DENOMINATOR - FEE_PPM) / FEE_DENOMINATOR
WEI_PER_ETH = 10**18
ETH_USD = 3000.0
# symbol, decimals, price in ETH per whole token (tails get a random price)
STABLES = (("USDC", 6), ("USDT", 6), ("PYUSD", 6))
N_TAILS = 40


@dataclass(frozen=True)
class Market:
    """Tokens (0 is WETH), pools (token0 < token1 by address, integer reserves) and cycles that start at WETH."""

    token_address: list[str]     # 0x + 40 lowercase hex
    token_symbol: list[str]
    token_decimals: list[int]
    pool_token0: list[int]
    pool_token1: list[int]
    pool_reserve0: list[int]     # raw units of token0
    pool_reserve1: list[int]
    cycle_pools: list[list[int]]          # pool ids, in swap order
    cycle_zero_for_one: list[list[bool]]  # per hop: the input is the pool's token0

    def hop_reserves(self, c: int) -> tuple[list[int], list[int]]:
        """(reserves_in, reserves_out) of cycle c's hops, raw units."""
        r_in, r_out = [], []
        for p, zfo in zip(self.cycle_pools[c], self.cycle_zero_for_one[c]):
            r0, r1 = self.pool_reserve0[p], self.pool_reserve1[p]
            r_in.append(r0 if zfo else r1)
            r_out.append(r1 if zfo else r0)
        return r_in, r_out


def generate_market(n_cycles: int, seed: int, profitable_share: float = 0.5) -> Market:
    """Random V2 cycles with realistic reserves: WETH side 1e20–1e23 wei, 6-decimal stables, 18-decimal tails.

    Each cycle owns its pools. Its fee-inclusive rate of exchange is 1 + edge (profitable) or 1 − edge, edge
    log-uniform in [1e-4, 3e-2], spread over the hops as random price distortions of fairly priced pools.
    """
    rng = np.random.default_rng(seed)
    symbols = ["WETH"] + [s for s, _ in STABLES] + [f"TAIL{i}" for i in range(N_TAILS)]
    decimals = [18] + [d for _, d in STABLES] + [18] * N_TAILS
    eth_per_token = [1.0] + [1.0 / ETH_USD] * len(STABLES) + list(10.0 ** rng.uniform(-6, -1, N_TAILS))
    wei_per_raw = [p * WEI_PER_ETH / 10**d for p, d in zip(eth_per_token, decimals)]
    addresses = ["0x" + rng.bytes(20).hex() for _ in symbols]

    pool_token0, pool_token1, pool_reserve0, pool_reserve1 = [], [], [], []
    cycle_pools, cycle_zfo = [], []
    for _ in range(n_cycles):
        hops = int(rng.integers(2, 4))
        others = rng.choice(np.arange(1, len(symbols)), size=hops - 1, replace=False).tolist()
        route = [0, *others, 0]  # token ids visited: WETH → ... → WETH
        rate = 1.0 + (1 if rng.random() < profitable_share else -1) * 10.0 ** rng.uniform(-4, math.log10(3e-2))
        # distortions d_h with prod(gamma · d_h) = rate, so the cycle's rate is exactly `rate` up to int rounding
        weights = rng.dirichlet(np.ones(hops))
        distortion = (rate / GAMMA**hops) ** weights
        pools, zfos = [], []
        for h in range(hops):
            t_in, t_out = route[h], route[h + 1]
            if 0 in (t_in, t_out):
                value_wei = 10.0 ** rng.uniform(20, 23)  # the WETH side's reserve
            else:
                value_wei = 10.0 ** rng.uniform(19, 22)
            reserve_in = value_wei / wei_per_raw[t_in]
            reserve_out = value_wei / wei_per_raw[t_out] * distortion[h]
            zfo = addresses[t_in] < addresses[t_out]
            r0, r1 = (reserve_in, reserve_out) if zfo else (reserve_out, reserve_in)
            pool_token0.append(t_in if zfo else t_out)
            pool_token1.append(t_out if zfo else t_in)
            pool_reserve0.append(int(r0))
            pool_reserve1.append(int(r1))
            pools.append(len(pool_token0) - 1)
            zfos.append(bool(zfo))
        cycle_pools.append(pools)
        cycle_zfo.append(zfos)
    return Market(addresses, symbols, decimals, pool_token0, pool_token1, pool_reserve0, pool_reserve1,
                  cycle_pools, cycle_zfo)


# --------------------------------------------------------------------------------------------------- gpubt side
def screen_args(market: Market):
    """The flat batch of kernels/cycles.py for the market: one path and one pair per cycle, one log entry per pool."""
    n = len(market.cycle_pools)
    n_pools = len(market.pool_token0)
    path_pools = np.full((n, 3), -1, np.int32)
    path_zfo = np.zeros((n, 3), np.bool_)
    for c, (pools, zfos) in enumerate(zip(market.cycle_pools, market.cycle_zero_for_one)):
        path_pools[c, :len(pools)] = pools
        path_zfo[c, :len(zfos)] = zfos
    path_gamma = np.full((n, 3), GAMMA)
    path_gas_units = np.zeros(n)  # gross profit: degenbot's calculate() knows no gas
    path_start_slot = np.zeros(n, np.int32)
    log_offsets = np.arange(n_pools + 1, dtype=np.int64)
    log_key = np.zeros(n_pools, np.int64)
    log_reserve0 = np.array(market.pool_reserve0, np.float64)
    log_reserve1 = np.array(market.pool_reserve1, np.float64)
    pair_key = np.zeros(n, np.int64)
    pair_path = np.arange(n, dtype=np.int32)
    pair_block = np.zeros(n, np.int32)
    wei_per_raw = np.ones((1, 1))  # the start token is WETH
    gas_price_wei = np.zeros(1)
    return (pair_key, pair_path, pair_block, path_pools, path_zfo, path_gamma, path_gas_units, path_start_slot,
            log_offsets, log_key, log_reserve0, log_reserve1, wei_per_raw, gas_price_wei)


def exact_search(hop_reserves, amount_in_float: np.ndarray, flagged: np.ndarray, engine: str, backend=None):
    """gpubt's exact re-pricing of the flagged cycles as a run prices a V2 cycle (gpubt.strategies.exact_engine: the
    proven level search from the float optimum, in one call), on the exact engine `engine` ("device": its numba-CPU
    build, both cores, or `backend`'s; "python": the Python-int oracle, one core): {cycle: (amount_in, exact gross
    profit wei)}."""
    cycles = np.flatnonzero(flagged).tolist()
    found = exact_engine.v2_optimal_inputs(backend or cpu_backend(), amount_in_float[cycles],
                                           [hop_reserves[c][0] for c in cycles], [hop_reserves[c][1] for c in cycles],
                                           [[FEE_PPM] * len(hop_reserves[c][0]) for c in cycles], engine)
    return {c: (x, profit) for c, (x, profit, _, _) in zip(cycles, found)}


def unit_values_wei(r_in: list[int], r_out: list[int], x: int) -> list[float]:
    """Start-token units one raw unit of each hop's output is worth near input x (the hop's floor error bound)."""
    values, amount = [], x
    for a, b in zip(r_in, r_out):
        amount = get_amount_out(amount, a, b, FEE_PPM) if amount > 0 else 0
        values.append(x / amount if amount > 0 else math.inf)
    return values


def exact_maximum(r_in: list[int], r_out: list[int], x_hint: float) -> tuple[int, int, bool]:
    """The exact integer profit maximum of a cycle: (amount_in, profit, proven).

    gpubt's level search (`optimal_input_search`) with no practical window: it scans the coarsest hop's step starts
    outward until its exact concave upper bound proves that no other input does better (`proven`). Routes through
    two 6-decimal stables take ~1e4 levels here, which is why the per-trade refinement stops earlier on them.
    """
    x, profit, proven, _ = optimal_input_search(x_hint, r_in, r_out, [FEE_PPM] * len(r_in), window=1 << 20)
    return x, profit, proven


# ------------------------------------------------------------------------------------------------ degenbot side
def degenbot_cycles(market: Market):
    """degenbot objects for every cycle, built offline: [(UniswapLpCycle, state_overrides)]."""
    from degenbot.arbitrage.uniswap_lp_cycle import UniswapLpCycle
    from degenbot.erc20_token import Erc20Token
    from degenbot.uniswap.types import UniswapV2PoolState
    from degenbot.uniswap.v2_liquidity_pool import UnregisteredLiquidityPool
    from eth_utils.address import to_checksum_address

    class OfflineToken(Erc20Token):
        """An Erc20Token that reads no chain: address, symbol, name, decimals given (equality/order by address)."""

        def __init__(self, address: str, symbol: str, decimals: int):  # noqa: D107 (no super(): it calls the chain)
            self.address = to_checksum_address(address)
            self.symbol = self.name = symbol
            self.decimals = decimals

    tokens = [OfflineToken(a, s, d) for a, s, d in zip(market.token_address, market.token_symbol,
                                                      market.token_decimals)]
    pools, overrides = [], []
    for p, (t0, t1) in enumerate(zip(market.pool_token0, market.pool_token1)):
        pool = UnregisteredLiquidityPool(address=f"0x{p + 1:040x}", tokens=[tokens[t0], tokens[t1]])
        pool.name = f"{tokens[t0].symbol}-{tokens[t1].symbol} (V2, 0.30%)"
        # degenbot orders tokens itself (checksummed strings): give each reserve to the token it belongs to
        reserve = {tokens[t0].address: market.pool_reserve0[p], tokens[t1].address: market.pool_reserve1[p]}
        pools.append(pool)
        overrides.append(UniswapV2PoolState(pool=pool.address, reserves_token0=reserve[pool.token0.address],
                                            reserves_token1=reserve[pool.token1.address]))
    out = []
    for c, cycle_pools in enumerate(market.cycle_pools):
        first, zfo = cycle_pools[0], market.cycle_zero_for_one[c][0]
        # search bound: the first pool's input reserve (the optimum is far below it for rates < 4)
        max_input = market.pool_reserve0[first] if zfo else market.pool_reserve1[first]
        cycle = UniswapLpCycle(input_token=tokens[0], swap_pools=[pools[p] for p in cycle_pools], id=str(c),
                               max_input=max_input)
        out.append((cycle, {pools[p].address: overrides[p] for p in cycle_pools}))
    return out


def degenbot_calculate(cycles) -> list[tuple[int, int] | None]:
    """calculate() on every cycle: (input_amount, profit_amount), None when degenbot rejects it as unprofitable."""
    from degenbot.exceptions import ArbitrageError, RateOfExchangeBelowMinimum

    results = []
    for cycle, overrides in cycles:
        try:
            r = cycle.calculate(state_overrides=overrides)
            results.append((r.input_amount, r.profit_amount))
        except (RateOfExchangeBelowMinimum, ArbitrageError):
            results.append(None)
    return results


# -------------------------------------------------------------------------------------------------- comparison
def compare(market: Market, hop_reserves, flagged, refined, degen, amount_in_float) -> dict:
    """Agreement between degenbot, gpubt and the exact integer maximum (`exact_maximum`) on every cycle both flag.

    A disagreement is a cycle where gpubt's exact profit is not the maximum, or where degenbot's input, evaluated
    exactly, beats gpubt's (target: 0). Where only degenbot is below the maximum it is counted apart.
    """
    degen_profitable = np.array([r is not None and r[1] > 0 for r in degen])
    report = {
        "cycles": len(degen),
        "degenbot_profitable": int(degen_profitable.sum()),
        "gpubt_flagged": int(flagged.sum()),
        "flag_mismatches": int((degen_profitable != flagged).sum()),
        "compared": 0, "maximum_unproven": 0,
        "profit_equal_same_input": 0, "profit_equal_other_input": 0,
        "gpubt_at_maximum": 0, "gpubt_below_maximum": 0, "gpubt_max_shortfall_wei": 0,
        "degenbot_beats_gpubt": 0, "disagreements": 0,
        "degenbot_below_maximum": 0, "degenbot_below_maximum_on_stable_routes": 0,
        "degenbot_max_shortfall_wei": 0, "degenbot_max_shortfall_fine_routes_wei": 0,
        "degenbot_reported_not_exact": 0, "degenbot_reported_max_error_wei": 0,
        "examples": [],
    }
    for c in np.flatnonzero(degen_profitable & flagged).tolist():
        r_in, r_out = hop_reserves[c]
        fees = [FEE_PPM] * len(r_in)
        d_in, d_reported = degen[c]
        d_exact = path_profit(d_in, r_in, r_out, fees)  # degenbot returns its objective: a float, rounded
        if d_exact != d_reported:
            report["degenbot_reported_not_exact"] += 1
            report["degenbot_reported_max_error_wei"] = max(report["degenbot_reported_max_error_wei"],
                                                            abs(d_reported - d_exact))
        g_in, g_profit = refined[c]
        opt_in, opt_profit, proven = exact_maximum(r_in, r_out, float(amount_in_float[c]))
        report["compared"] += 1
        report["maximum_unproven"] += not proven
        if g_profit == d_exact:
            report["profit_equal_same_input" if g_in == d_in else "profit_equal_other_input"] += 1
        gpubt_short, degen_short = opt_profit - g_profit, opt_profit - d_exact
        report["gpubt_at_maximum"] += gpubt_short == 0
        if gpubt_short > 0:
            report["gpubt_below_maximum"] += 1
            report["gpubt_max_shortfall_wei"] = max(report["gpubt_max_shortfall_wei"], gpubt_short)
        report["degenbot_beats_gpubt"] += d_exact > g_profit
        disagree = gpubt_short != 0 or d_exact > g_profit
        report["disagreements"] += disagree
        if degen_short > 0:
            report["degenbot_below_maximum"] += 1
            report["degenbot_max_shortfall_wei"] = max(report["degenbot_max_shortfall_wei"], degen_short)
            if max(unit_values_wei(r_in, r_out, opt_in)[:-1]) > 1.0:
                report["degenbot_below_maximum_on_stable_routes"] += 1
            else:
                report["degenbot_max_shortfall_fine_routes_wei"] = max(
                    report["degenbot_max_shortfall_fine_routes_wei"], degen_short)
        if (disagree or degen_short > 0) and len(report["examples"]) < 4 or disagree:
            report["examples"].append({"cycle": c, "route": "→".join(market.token_symbol[t] for t in route_of(market, c)),
                                       "gpubt": [g_in, g_profit], "degenbot": [d_in, d_exact],
                                       "maximum": [opt_in, opt_profit], "proven": proven, "disagreement": disagree})
    return report


def route_of(market: Market, c: int) -> list[int]:
    tokens = [0]
    for p, zfo in zip(market.cycle_pools[c], market.cycle_zero_for_one[c]):
        tokens.append(market.pool_token1[p] if zfo else market.pool_token0[p])
    return tokens


# ------------------------------------------------------------------------------------------------------- driver
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench_results/peer_degenbot.json")
    parser.add_argument("--check", action="store_true",
                        help="fail on a flag mismatch or a disagreement (gpubt below the exact maximum, or degenbot above gpubt)")
    opts = parser.parse_args(argv)

    try:
        import degenbot  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"degenbot is not installed ({exc}): pip install -e '.[bench]' (or make bench-peer)")

    market = generate_market(opts.cycles, opts.seed)
    n = len(market.cycle_pools)
    hop_reserves = [market.hop_reserves(c) for c in range(n)]
    info = machine(("gpubt", "degenbot", "numpy", "numba", "scipy", "web3"))
    print(f"{n:,} cycles ({sum(len(p) == 2 for p in market.cycle_pools):,} 2-hop), {len(market.pool_token0):,} pools, "
          f"seed {opts.seed}; {info['cpu']}, {info['cores']} cores, Python {info['python']}")
    rows = []

    cycles = degenbot_cycles(market)
    degen = [None]
    t_degen = median_seconds(lambda: degen.__setitem__(0, degenbot_calculate(cycles)), opts.repeats)
    degen = degen[0]
    rows.append({"workload": f"degenbot {info['packages']['degenbot']} calculate() (1 core)", "cycles": n,
                 "seconds": t_degen})

    args = screen_args(market)
    outs = tuple(np.zeros(n) for _ in range(3))
    cpu = Backend("cpu")
    cpu.launch("cycles", "screen_pairs", n, (*kernel_args(*args), *outs))  # compile outside the timing
    t_screen = median_seconds(lambda: cpu.launch("cycles", "screen_pairs", n, (*kernel_args(*args), *outs)),
                              opts.repeats)
    rows.append({"workload": f"gpubt float screen, cpu ({os.cpu_count()} cores)", "cycles": n, "seconds": t_screen})
    amount_in_float, gross_float = outs[0].copy(), outs[1].copy()
    flagged = gross_float > 0.0

    # the exact search on each engine: the Python-int oracle, the numba-CPU build, the CUDA build where usable (its
    # screen timed first, arrays resident); each must give the oracle's results
    why_not = cuda_unavailable_reason()
    engines = [("python", "Python ints, 1 core", cpu, t_screen),
               ("device", f"numba CPU, {os.cpu_count()} cores", cpu, t_screen)]
    if why_not is None:
        gpu = Backend("cuda")
        dev_args = [gpu.to_device(a) if isinstance(a, np.ndarray) else a for a in kernel_args(*args)]
        dev_outs = [gpu.to_device(np.zeros(n)) for _ in range(3)]
        gpu.launch("cycles", "screen_pairs", n, (*dev_args, *dev_outs))
        t_gpu = median_seconds(lambda: gpu.launch("cycles", "screen_pairs", n, (*dev_args, *dev_outs)), opts.repeats)
        rows.append({"workload": "gpubt float screen, cuda (arrays resident)", "cycles": n, "seconds": t_gpu})
        engines.append(("device", "cuda, packing included", gpu, t_gpu))
    else:
        print(f"(cuda not measured: {why_not})")
    found = {}
    for engine, label, backend, t_screened in engines:
        exact_search(hop_reserves, amount_in_float[:8], flagged[:8], engine, backend)  # compile outside the timing
        t = median_seconds(lambda: found.__setitem__(label, exact_search(hop_reserves, amount_in_float, flagged,
                                                                         engine, backend)), opts.repeats)
        if found[label] != found[engines[0][1]]:
            raise SystemExit(f"the exact engine ({label}) differs from its Python-int oracle")
        rows.append({"workload": f"gpubt exact search, {label} (flagged cycles)", "cycles": int(flagged.sum()),
                     "seconds": t})
        rows.append({"workload": f"gpubt screen + exact search, {label} (all cycles)", "cycles": n,
                     "seconds": t_screened + t})
    refined = found[engines[0][1]]

    base = n / t_degen
    print(f"\n{'workload':62s} {'cycles':>8s} {'median s':>10s} {'cycles/s':>13s} {'vs degenbot':>12s}")
    for r in rows:
        r["cycles_per_second"] = r["cycles"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        r["vs_degenbot"] = r["cycles_per_second"] / base
        print(f"{r['workload']:62s} {r['cycles']:>8,} {r['seconds']:>10.4f} {r['cycles_per_second']:>13,.0f} "
              f"{r['vs_degenbot']:>11.1f}x")

    agreement = compare(market, hop_reserves, flagged, refined, degen, amount_in_float)
    a = agreement
    print(f"\nprofitable: degenbot {a['degenbot_profitable']:,}, gpubt float screen {a['gpubt_flagged']:,}; "
          f"flagged differently: {a['flag_mismatches']}")
    print(f"on the {a['compared']:,} profitable cycles (exact maximum proven on {a['compared'] - a['maximum_unproven']:,}): "
          f"gpubt's exact profit is the maximum on {a['gpubt_at_maximum']:,}, below it on {a['gpubt_below_maximum']} "
          f"(max {a['gpubt_max_shortfall_wei']:,} wei); degenbot's input beats gpubt's on {a['degenbot_beats_gpubt']}; "
          f"disagreements: {a['disagreements']}")
    print(f"equal to the wei: {a['profit_equal_same_input'] + a['profit_equal_other_input']:,} "
          f"({a['profit_equal_other_input']:,} at different inputs); degenbot below the maximum on "
          f"{a['degenbot_below_maximum']:,} ({a['degenbot_below_maximum_on_stable_routes']:,} through a 6-decimal "
          f"stable, max {a['degenbot_max_shortfall_wei']:,} wei; max {a['degenbot_max_shortfall_fine_routes_wei']:,} "
          f"wei on the others: scipy's bounded Brent stops at a relative input tolerance of ~1.5e-8 on a float64 "
          f"objective, anywhere on a step)")
    print(f"degenbot's profit_amount ≠ the exact profit of its own input_amount on {a['degenbot_reported_not_exact']} "
          f"cycles (max {a['degenbot_reported_max_error_wei']:,} wei: it returns its float64 objective)")
    for ex in a["examples"]:
        print(f"  {'DISAGREEMENT ' if ex['disagreement'] else 'e.g. '}cycle {ex['cycle']} {ex['route']}: (input, profit) "
              f"gpubt {ex['gpubt']}, degenbot {ex['degenbot']}, maximum {ex['maximum']}"
              f"{'' if ex['proven'] else ' (unproven)'}")

    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cycles": n, "seed": opts.seed, "repeats": opts.repeats, "machine": info,
                               "cuda": why_not or "measured", "rows": rows, "agreement": agreement}, indent=2))
    print(f"wrote {out}")
    if opts.check and (a["flag_mismatches"] or a["disagreements"]):
        raise SystemExit("check failed: a flag mismatch or a disagreement (see above)")
    return rows, agreement


if __name__ == "__main__":
    main()
