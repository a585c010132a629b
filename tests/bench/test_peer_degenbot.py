"""Smoke test of bench/peer_degenbot.py: degenbot and gpubt agree on a small seeded set of cycles.

degenbot is a benchmark-only dependency (`pip install -e '.[bench]'`); without it the test is skipped.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peer_degenbot.py"


def load_bench():
    if str(BENCH.parent) not in sys.path:  # its `from common import ...` (bench/common.py), as when run from bench/
        sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("peer_degenbot", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_peer_degenbot_agrees(tmp_path):
    pytest.importorskip("degenbot", reason="degenbot is not installed (benchmark-only: pip install -e '.[bench]')")
    rows, agreement = load_bench().main(["--cycles", "50", "--repeats", "1", "--json", str(tmp_path / "peer.json")])
    assert agreement["cycles"] == 50
    assert agreement["degenbot_profitable"] > 0
    assert agreement["flag_mismatches"] == 0
    # gpubt's exact profit is the proven exact integer maximum on every cycle, and degenbot's input never beats it
    # (degenbot below the maximum, its search tolerance, is counted apart and is not a disagreement)
    assert agreement["compared"] > 0 and agreement["maximum_unproven"] == 0
    assert agreement["gpubt_at_maximum"] == agreement["compared"]
    assert agreement["degenbot_beats_gpubt"] == 0
    assert agreement["disagreements"] == 0
    assert (tmp_path / "peer.json").exists()
    assert {r["workload"].split()[0] for r in rows} >= {"degenbot", "gpubt"}
    # the exact search timed on both engines (main() refuses to go on when they differ)
    assert sum(r["workload"].startswith("gpubt exact search") and "cuda" not in r["workload"] for r in rows) == 2


def test_gpubt_never_imports_degenbot():
    package = Path(__file__).resolve().parents[2] / "gpubt"
    offenders = [str(p) for p in package.rglob("*.py") if "degenbot" in p.read_text()]
    assert offenders == []
