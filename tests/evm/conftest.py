"""tests/evm/: gpubt's exact math against the real Uniswap bytecode, executed in pyrevm.

Case counts: a quick default; GPUBT_EVM_CASES=N runs N swaps per differential test (CI runs 10000 once).
"""
from __future__ import annotations

import os

import pytest

from tests.evm.chain import artifacts_missing_reason

DEFAULT_CASES = 1500


def evm_cases(default: int = DEFAULT_CASES) -> int:
    return int(os.environ.get("GPUBT_EVM_CASES") or default)


def pytest_collection_modifyitems(config, items):
    evm_items = [it for it in items if "tests/evm/" in it.nodeid.replace("\\", "/")]
    if not evm_items:
        return
    reason = artifacts_missing_reason()
    for it in evm_items:
        if reason:
            it.add_marker(pytest.mark.skip(reason=reason))
