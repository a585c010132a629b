"""The synthetic presets against published mainnet figures: `gpubt market-stats` on a freshly generated `small` and
on the first partition (7,200 blocks, one day) of `mainnet-month`, side by side, each statistic marked in or out of
its range, the calibrated ones (market_stats.CALIBRATED) flagged.

    python bench/market_calibration.py [--out bench_results/market_calibration.json]

Seconds: both markets generate in well under a minute. docs/market.md holds the figures of the last run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402

from gpubt.analysis.market_stats import CALIBRATED, market_stats  # noqa: E402
from gpubt.data import synthetic  # noqa: E402

MARKETS = (("small", "small", {}), ("mainnet-month partition 0", "mainnet-month", {"n_blocks": 7_200}))


def _cell(row: dict) -> str:
    value = row["value"]
    if value is None:
        return "n/a"
    text = f"{value:.1%}" if row["unit"] == "share" else f"{value:,.4g}"
    return text + ("" if row["in_range"] is None else " ✓" if row["in_range"] else " ✗")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset, overrides in MARKETS:
            t0 = time.perf_counter()
            path = synthetic.generate(Path(tmp) / preset, preset=preset, seed=0, progress=False, **overrides)
            measured[name] = {row["key"]: row for row in market_stats(path)}
            print(f"{name}: generated and measured in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    first = next(iter(measured.values()))
    print(f"| statistic | published range | {' | '.join(measured)} | calibrated |")
    print("|---|---|" + "---|" * len(measured) + "---|")
    for key, row in first.items():
        rng = row["published_range"]
        published = "—" if rng is None else (f"{rng[0]:.1%} – {rng[1]:.1%}" if row["unit"] == "share"
                                             else f"{rng[0]:,.4g} – {rng[1]:,.4g}")
        cells = " | ".join(_cell(m[key]) for m in measured.values())
        print(f"| {row['statistic']} | {published} | {cells} | {'yes' if key in CALIBRATED else ''} |")
    for name, rows in measured.items():
        inside = sum(1 for r in rows.values() if r["in_range"])
        off = [k for k in CALIBRATED if not rows[k]["in_range"]]
        print(f"{name}: {inside} of {sum(1 for r in rows.values() if r['in_range'] is not None)} compared rows in "
              f"range; calibrated rows outside: {off or 'none'}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "markets": {
            name: list(rows.values()) for name, rows in measured.items()}}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
