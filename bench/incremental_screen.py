"""Incremental screening: arbitrage's screen with the safe bound (strategy.arbitrage.screen_bound) against the full
screen, measured in the same run on tiny, small and the first partition of mainnet-month (7,200 blocks).

Per market: pairs considered, pairs the kernel evaluated, the screen's seconds (strategies' `screen_seconds`: the
bound's walk, the kernel and the candidate mask; medians of --repeats passes after a warm-up pass) and blocks/s,
and whether the opportunities are identical (they must be: the bound is safe; --check fails otherwise).

    python bench/incremental_screen.py --repeats 3 --check
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine, row  # noqa: E402

from gpubt.backend import Backend  # noqa: E402
from gpubt.data import synthetic  # noqa: E402
from gpubt.data.store import Dataset  # noqa: E402
from gpubt.exact.gas import GasModel  # noqa: E402
from gpubt.market.batch import iter_batches  # noqa: E402
from gpubt.strategies.arbitrage import Arbitrage  # noqa: E402

MARKETS = (("tiny", "tiny", {}), ("small", "small", {}), ("mainnet-month partition 0", "mainnet-month",
                                                            {"n_blocks": 7_200}))
GAS = GasModel(32_952, 51_557, 10**9)


def screen_pass(ds, batches, bound: bool) -> tuple[float, dict, pa.Table]:
    """(screen seconds, stats, opportunities) of arbitrage over the packed batches."""
    arb = Arbitrage({"start_tokens": ["WETH"], "max_hops": 3, "min_hops": 2, "screen_bound": bound}, ds,
                    Backend("cpu"), GAS, 0)
    opportunities = [arb.evaluate(batch).opportunities for batch in batches]
    return arb.stats["screen_seconds"], dict(arb.stats), pa.concat_tables(opportunities)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markets", default="tiny,small,mainnet-month", help="comma-separated presets")
    parser.add_argument("--json", type=Path, default=Path("bench_results/incremental_screen.json"))
    parser.add_argument("--check", action="store_true", help="fail unless the opportunities are identical")
    args = parser.parse_args(argv)
    wanted = args.markets.split(",")
    rows, failed = [], False
    print(f"{'market':28s} {'blocks':>7s} {'pairs':>12s} {'evaluated':>12s} {'fewer':>6s} {'full s':>8s} "
          f"{'bound s':>8s} {'full blk/s':>11s} {'bound blk/s':>12s} {'ratio':>6s} same")
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset, overrides in MARKETS:
            if preset not in wanted:
                continue
            ds = Dataset(synthetic.generate(Path(tmp) / preset, preset=preset, seed=0, progress=False, **overrides))
            batches = list(iter_batches(ds, ds.first_block, ds.last_block, 250, GAS.priority_fee_wei))
            seconds, result = {False: [], True: []}, {}
            for repeat in range(args.repeats + 1):  # the first pass warms the compiled code up: not timed
                for bound in (False, True):
                    t, stats, opportunities = screen_pass(ds, batches, bound)
                    if repeat:
                        seconds[bound].append(t)
                    else:
                        result[bound] = (stats, opportunities)
            (full_stats, full_opps), (bound_stats, bound_opps) = result[False], result[True]
            same = full_opps.equals(bound_opps)
            failed |= not same
            n_blocks = ds.last_block - ds.first_block + 1
            t_full, t_bound = statistics.median(seconds[False]), statistics.median(seconds[True])
            fewer = full_stats["evaluated"] / max(bound_stats["evaluated"], 1)
            r = row(f"screen, {name}", "full screen", t_full, "with the bound", t_bound, ">= 2x", 2.0)
            r.update(market=name, blocks=n_blocks, pairs=full_stats["screened"], evaluated_full=full_stats["evaluated"],
                     evaluated_bound=bound_stats["evaluated"], fewer_evaluations=fewer,
                     opportunities=full_opps.num_rows, identical=same)
            rows.append(r)
            print(f"{name:28s} {n_blocks:>7,} {r['pairs']:>12,} {bound_stats['evaluated']:>12,} {fewer:>5.1f}x "
                  f"{t_full:>8.3f} {t_bound:>8.3f} {n_blocks / t_full:>11,.0f} {n_blocks / t_bound:>12,.0f} "
                  f"{r['ratio']:>5.2f}x {'yes' if same else 'NO'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "repeats": args.repeats, "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
