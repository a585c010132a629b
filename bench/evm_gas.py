"""Cold, per-transaction gas of Uniswap swaps, V2 cycles, V3 JIT mint / burn+collect, on the real Uniswap bytecode.

Method: every measured swap is ONE transaction run in a fresh pyrevm EVM (Cancun rules) built from a snapshot of
the state (tests/evm/txchain.py): it starts with an empty access set (EIP-2929: only tx.origin, the callee, the
coinbase and the precompiles warm) and every slot's original value = its value before the transaction (EIP-2200 /
3529 dirty-slot and refund accounting), in a block of its own, like the first swap of a pool in a mainnet block.
tests/evm/test_gas_per_tx.py proves those semantics (a cold SLOAD costs 2,100, a cold CALL 2,600, the same
transaction twice costs the same twice, SSTORE's original value is the pre-transaction one).
`gas` = the receipt's gasUsed: 21,000 intrinsic + calldata + execution - refund. `call` = gas of the swap call
itself, taken with gasleft() inside the test contract (cold too; before the refund, no intrinsic, no calldata).

Workloads (tests/evm/gas_workloads.py):
  V2 direct swap   GpubtCallee.v2Swap: pays the input to the pair, then pair.swap (output back to the callee)
  V2 cycle, k hops GpubtCycleExecutor.execute: a k-hop cycle in one transaction (first hop paid from the
                   contract's balance, getReserves + amount out per hop, each output sent to the next pair, a
                   final balanceOf profit check): the arbitrage-bot pattern; k = 2, 3, 4
  V3 swap, t ticks GpubtCallee.v3Swap: pool.swap + its callback's transfer, by initialized ticks crossed,
                   pools of the 4 fee tiers with an initialized tick every spacing, warmed up (ticks crossed before)
  V3 JIT mint      GpubtJitCallee.jitMint: pool.mint of a new position of 1..3 spacings around the current tick
                   (configs/strategy/jit.yaml's ranges), its callback paying both tokens; a block of its own
  V3 JIT burn+coll GpubtJitCallee.jitBurnCollect, same block, after an unmeasured victim swap inside the range
                   (the position earned fees): pool.burn of the whole position + pool.collect of everything owed
                   JIT rows twice: the range's two ticks not initialized before the mint (the mint initializes
                   them, the burn clears them: V3_MINT_TX_GAS / V3_BURN_COLLECT_TX_GAS, jit.yaml's default), and
                   already initialized by other LPs (the mint/burn only update them); 4 fee tiers, random cases
Fits: cycle gas = CYCLE_BASE_GAS + V2_HOP_GAS × hops (least squares over the per-length medians);
V3 gas = base + per tick × ticks crossed (Theil-Sen line over the per-bucket medians); JIT: the medians.

    python bench/evm_gas.py [--swaps 400] [--jit-cases 200] [--seed 7] [--out bench_results/evm_gas.json]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.evm.chain import artifacts_missing_reason  # noqa: E402

CYCLE_HOPS = (2, 3, 4)


def summary(values: list[int]) -> dict:
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return {"n": len(values), "median": statistics.median(values), "p10": q[0], "p90": q[8]}


def fit_least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through (x, y) points."""
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def fit_theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope), Theil-Sen: an odd bucket (a tick's slot written from 0, +20,000) can't drag the line."""
    pts = sorted(points)
    slope = statistics.median([(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(pts) for x2, y2 in pts[i + 1:]])
    return statistics.median([y - slope * x for x, y in pts]), slope


def measure(n_swaps: int, seed: int, n_jit: int = 200) -> dict:
    from tests.evm.gas_workloads import (
        V2Workloads,
        V3JitWorkloads,
        V3Workloads,
        measure_jit,
        measure_v3,
    )

    rng = random.Random(seed)
    v2 = V2Workloads(CYCLE_HOPS)
    direct = [v2.direct_swap(rng) for _ in range(n_swaps)]
    cycles = {k: [v2.cycle(k, rng)[0] for _ in range(max(20, n_swaps // 4))] for k in CYCLE_HOPS}
    v3_by = measure_v3(V3Workloads(rng=rng), n_swaps, rng)
    jit = {init: measure_jit(V3JitWorkloads(init, rng=rng), n_jit, rng) for init in (False, True)}
    rows = [("V2 direct swap", [g for g, _ in direct], [c for _, c in direct])]
    rows += [(f"V2 cycle, {k} hops", cycles[k], None) for k in CYCLE_HOPS]
    rows += [(f"V3 swap, {t} ticks crossed", [g for g, _ in s], [c for _, c in s]) for t, s in sorted(v3_by.items())]
    for init, label in ((False, "new ticks"), (True, "ticks init.")):
        rows += [(f"V3 JIT mint, {label}", [x[2] for x in jit[init]], [x[3] for x in jit[init]]),
                 (f"V3 JIT burn+collect, {label}", [x[4] for x in jit[init]], [x[5] for x in jit[init]])]
    jit_by_fee = {f"{'ticks_initialized' if init else 'new_ticks'}": {
        fee: {"mint": statistics.median(x[2] for x in cases if x[0] == fee),
              "burn_collect": statistics.median(x[4] for x in cases if x[0] == fee)}
        for fee in sorted({x[0] for x in cases})} for init, cases in jit.items()}
    base, per_hop = fit_least_squares([(k, statistics.median(cycles[k])) for k in CYCLE_HOPS])
    residual = max(abs(statistics.median(cycles[k]) - (base + per_hop * k)) for k in CYCLE_HOPS)
    v3_tx = fit_theil_sen([(t, statistics.median(g for g, _ in s)) for t, s in v3_by.items()])
    v3_call = fit_theil_sen([(t, statistics.median(c for _, c in s)) for t, s in v3_by.items()])
    return {
        "what": "cold per-transaction gas: a fresh pyrevm EVM per transaction (tests/evm/txchain.py)",
        "evm": "pyrevm 0.3.7, CANCUN; v2-core 1.0.1, v3-core 1.0.1 (npm bytecode); test contracts solc 0.7.6",
        "seed": seed,
        "rows": [{"workload": name, "gas": summary(gas), **({"call_gas": summary(call)} if call else {})}
                 for name, gas, call in rows],
        "fit": {
            "CYCLE_BASE_GAS": round(base), "V2_HOP_GAS": round(per_hop), "cycle_fit_max_residual": round(residual),
            "V2_SWAP_TX_GAS": round(statistics.median(g for g, _ in direct)),
            "V2_SWAP_GAS": round(statistics.median(c for _, c in direct)),
            "V3_SWAP_TX_BASE_GAS": round(v3_tx[0]), "V3_SWAP_TX_GAS_PER_TICK": round(v3_tx[1]),
            "V3_SWAP_BASE_GAS": round(v3_call[0]), "V3_GAS_PER_TICK_CROSSED": round(v3_call[1]),
            "V3_MINT_TX_GAS": round(statistics.median(x[2] for x in jit[False])),
            "V3_BURN_COLLECT_TX_GAS": round(statistics.median(x[4] for x in jit[False])),
            "V3_MINT_TX_GAS_TICKS_INITIALIZED": round(statistics.median(x[2] for x in jit[True])),
            "V3_BURN_COLLECT_TX_GAS_TICKS_INITIALIZED": round(statistics.median(x[4] for x in jit[True])),
        },
        "jit_tx_gas_median_by_fee": jit_by_fee,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swaps", type=int, default=400, help="direct V2 swaps and V3 swaps (cycles: a quarter each)")
    ap.add_argument("--jit-cases", type=int, default=200, help="JIT mint + burn/collect round trips, per tick case")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="bench_results/evm_gas.json")
    args = ap.parse_args(argv)
    reason = artifacts_missing_reason()
    if reason:
        sys.exit(reason)
    t0 = time.perf_counter()
    result = measure(args.swaps, args.seed, args.jit_cases)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{'workload':<34}{'n':>6}{'median gas':>12}{'p10':>10}{'p90':>10}{'call median':>13}")
    for row in result["rows"]:
        g, c = row["gas"], row.get("call_gas")
        print(f"{row['workload']:<34}{g['n']:>6}{g['median']:>12,.0f}{g['p10']:>10,.0f}{g['p90']:>10,.0f}"
              f"{(format(c['median'], ',.0f') if c else '-'):>13}")
    f = result["fit"]
    print(f"fit: V2 cycle gas = {f['CYCLE_BASE_GAS']:,} + {f['V2_HOP_GAS']:,} × hops "
          f"(max residual {f['cycle_fit_max_residual']:,})")
    print(f"     V3 swap tx gas = {f['V3_SWAP_TX_BASE_GAS']:,} + {f['V3_SWAP_TX_GAS_PER_TICK']:,} × ticks crossed; "
          f"pool.swap call = {f['V3_SWAP_BASE_GAS']:,} + {f['V3_GAS_PER_TICK_CROSSED']:,} × ticks")
    print(f"     V2 direct swap tx {f['V2_SWAP_TX_GAS']:,}; its transfer + pair.swap call {f['V2_SWAP_GAS']:,}")
    print(f"     V3 JIT mint tx {f['V3_MINT_TX_GAS']:,}, burn + collect tx {f['V3_BURN_COLLECT_TX_GAS']:,} (new ticks: "
          f"jit.yaml's mint_gas / burn_gas); ticks already initialized: {f['V3_MINT_TX_GAS_TICKS_INITIALIZED']:,} / "
          f"{f['V3_BURN_COLLECT_TX_GAS_TICKS_INITIALIZED']:,}")
    for case, by_fee in result["jit_tx_gas_median_by_fee"].items():
        print(f"     JIT medians by fee tier, {case}: " + "; ".join(
            f"{fee}: {m['mint']:,.0f} / {m['burn_collect']:,.0f}" for fee, m in by_fee.items()))
    print("gas = receipt gasUsed (21,000 + calldata + execution - refund), each swap one cold transaction; "
          "call = the swap call alone (JIT: pool.mint with its callback, pool.burn + pool.collect), by gasleft()")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({result['seconds']} s)")
    return result


if __name__ == "__main__":
    main()
