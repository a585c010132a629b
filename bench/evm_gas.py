"""Gas of Uniswap swaps measured in the EVM (pyrevm, Cancun rules) on the real v2-core / v3-core bytecode.

What is measured: the gas of the pair/pool call itself plus the ERC20 transfers it entails, taken with gasleft()
inside tests/evm/contracts/GpubtCallee.sol: V2 = token transfer in + pair.swap (its transfer out included);
V3 = pool.swap with its transfer out and the callback's transfer in. Not included: the 21,000 intrinsic gas,
calldata, and a router's own overhead (a swap through UniswapV2Router02 / SwapRouter costs more than the call
measured here). V3 gas is fitted as base + per_tick × initialized ticks crossed (Theil-Sen line over the bucket medians).

Caveat (printed too): pyrevm keeps one open journal across calls, so accounts and slots touched by earlier
calls stay warm (EIP-2929) and SSTORE sees the session's first value as "original": these are warm-storage
figures, lower than a mainnet transaction's first touch of a pool.

    python bench/evm_gas.py [--swaps 400] [--out bench_results/evm_gas.json]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpubt.exact import v3  # noqa: E402
from gpubt.exact.v2 import get_amount_out  # noqa: E402
from tests.evm.chain import artifacts_missing_reason  # noqa: E402
from tests.evm.test_v2_pair import V2Market  # noqa: E402
from tests.evm.test_v3_pool import V3Market  # noqa: E402


def measure_v2(n_swaps: int, rng: random.Random) -> list[int]:
    market = V2Market()
    gas = []
    pair, token0, token1 = market.new_pair(10**24, 2 * 10**27)
    for _ in range(n_swaps):
        market.chain.next_block()  # a new block each time: the pair's price accumulators update, as on mainnet
        r0, r1 = market.reserves(pair)
        zero_for_one = rng.random() < 0.5
        r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
        amount_in = r_in // rng.randint(100, 10_000)
        out = get_amount_out(amount_in, r_in, r_out)
        outs = (0, out) if zero_for_one else (out, 0)
        gas.append(market.swap(pair, token0 if zero_for_one else token1, amount_in, *outs))
    return gas


def measure_v3(n_swaps: int, rng: random.Random) -> dict[int, list[int]]:
    """gas by initialized ticks crossed, over pools of each fee tier with many narrow positions."""
    market = V3Market()
    by_crossed = defaultdict(list)
    per_pool = max(1, n_swaps // 8)
    for fee in (100, 500, 3000, 10000) * 2:
        pool = v3.V3Pool(fee)
        sqrt_price = v3.get_sqrt_ratio_at_tick(0)
        address = market.new_pool(fee, sqrt_price)
        pool.initialize(sqrt_price)
        s = pool.tick_spacing
        positions = [(-887272 // s * s + s if -887272 % s else -887272, 887272 // s * s, 10**22)]
        positions += [(k * s, (k + 1) * s, 10**21) for k in range(-60, 60)]  # an initialized tick every spacing
        for lower, upper, amount in positions:
            market.mint(address, lower, upper, amount)
            pool.mint(lower, upper, amount)
        for _ in range(per_pool):
            market.chain.next_block()
            zero_for_one = pool.tick > 0 if abs(pool.tick) > 40 * s else rng.random() < 0.5
            target_ticks = rng.choice((0, 0, 1, 2, 3, 5, 8, 12))
            limit_tick = pool.tick - target_ticks * s - s // 2 if zero_for_one else pool.tick + target_ticks * s + s // 2
            limit = v3.get_sqrt_ratio_at_tick(limit_tick) + (0 if zero_for_one else 0)
            if (zero_for_one and limit >= pool.sqrt_price_x96) or (not zero_for_one and limit <= pool.sqrt_price_x96):
                continue
            outcome = pool.swap_outcome(zero_for_one, 10**30, limit, commit=False)
            a0, a1, gas = market.chain.call(market.callee, "v3Swap(address,bool,int256,uint160)", address,
                                            zero_for_one, 10**30, limit, returns=["int256", "int256", "uint256"])
            pool.swap(zero_for_one, 10**30, limit)
            assert (a0, a1) == outcome[:2]
            by_crossed[outcome.ticks_crossed].append(gas)
    return dict(by_crossed)


def fit_line(by_crossed: dict[int, list[int]]) -> tuple[float, float]:
    """Theil-Sen line over the per-bucket medians: a bucket dominated by first touches of ticks (20k+ more per
    fresh slot) must not drag the slope. Returns (base, per_tick)."""
    pts = sorted((k, statistics.median(g)) for k, g in by_crossed.items())
    slope = statistics.median([(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(pts) for x2, y2 in pts[i + 1:]])
    return statistics.median([y - slope * x for x, y in pts]), slope


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swaps", type=int, default=400, help="swaps per protocol")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="bench_results/evm_gas.json")
    args = ap.parse_args(argv)
    reason = artifacts_missing_reason()
    if reason:
        sys.exit(reason)
    rng = random.Random(args.seed)
    v2 = measure_v2(args.swaps, rng)
    v3_by = measure_v3(args.swaps, rng)
    base, per_tick = fit_line(v3_by)
    result = {
        "what": "gas of pair/pool swap + its ERC20 transfers, gasleft() in GpubtCallee; no intrinsic/calldata/router",
        "evm": "pyrevm 0.3.7, CANCUN; warm storage across calls (lower bound of a first touch)",
        "v2_swap": {"n": len(v2), "median": statistics.median(v2), "min": min(v2), "max": max(v2)},
        "v3_swap_by_ticks_crossed": {str(k): {"n": len(g), "median": statistics.median(g), "min": min(g),
                                              "max": max(g)} for k, g in sorted(v3_by.items())},
        "V2_SWAP_GAS": round(statistics.median(v2)),
        "V3_SWAP_BASE_GAS": round(base),
        "V3_GAS_PER_TICK_CROSSED": round(per_tick),
    }
    print(f"{'workload':<28}{'n':>6}{'median gas':>12}{'min':>10}{'max':>10}")
    print(f"{'V2 swap':<28}{len(v2):>6}{statistics.median(v2):>12.0f}{min(v2):>10}{max(v2):>10}")
    for k, g in sorted(v3_by.items()):
        print(f"{'V3 swap, ' + str(k) + ' ticks crossed':<28}{len(g):>6}{statistics.median(g):>12.0f}"
              f"{min(g):>10}{max(g):>10}")
    print(f"fit: V3 gas = {base:.0f} + {per_tick:.0f} × ticks crossed;  V2_SWAP_GAS = {result['V2_SWAP_GAS']}")
    print("note: pyrevm keeps storage warm across calls: warm-storage figures (see the module docstring)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
