"""The exact engine on the device (kernels/exact_uniswap.py, its CPU build: the same source as the CUDA one) on the
cases the pyrevm suites ran against the real bytecode: the inputs batched once a suite has run, the outcomes
compared with what the contracts returned."""
from __future__ import annotations

from gpubt.backend import Backend
from gpubt.kernels import exact_uniswap as ex
from gpubt.strategies.exact_engine import pack_v3_swaps
from tests.kernels.test_exact_uniswap import v3_swap_outputs, v3_swap_results
from tests.kernels.test_u256 import run_rows


def device_rows(name: str, rows: list) -> list:
    """Driver `name` (exact_uniswap.BATCH_KINDS) on rows of Python values: ("ok", values) or ("revert",) each."""
    ins, outs = ex.BATCH_KINDS[name]
    return [("ok", r[:-1]) if r[-1] == ex.EXACT_OK else ("revert",)
            for r in run_rows(Backend("cpu"), "exact_uniswap", name, ins, outs, rows)]


def device_v3_swaps(swaps: list) -> list:
    """v3_swaps on rows (sqrt_price, tick, liquidity, tick_spacing, fee, amount_specified (the contract's sign:
    > 0 exact input), zero_for_one, sqrt_price_limit, (initialized ticks, their liquidityNet)): per row ("ok",
    (amount0, amount1, sqrt_price, tick, liquidity)) with the contract's signs, or ("revert",)."""
    outs = v3_swap_outputs(len(swaps))
    Backend("cpu").launch("exact_uniswap", "v3_swaps", len(swaps), (*pack_v3_swaps(
        [(*row[:5], abs(row[5]), row[5] > 0, *row[6:]) for row in swaps]), *outs))
    result = []
    for row, (kind, values) in zip(swaps, v3_swap_results(outs)):
        if kind != "ok":
            result.append(("revert",))
            continue
        paid, received, price, tick, liquidity, _ = values
        amounts = (paid, -received) if row[6] else (-received, paid)
        result.append(("ok", (*amounts, price, tick, liquidity)))
    return result
