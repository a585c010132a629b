"""gpubt.exact.v3's library functions against v3-core's own FullMath/TickMath/SqrtPriceMath/SwapMath/LiquidityMath,
compiled from the npm package's sources into a harness (tests/evm/contracts/GpubtV3MathHarness.sol): random and
edge inputs, equal results or a revert on both sides; the exact engine on the device (kernels/exact_uniswap.py,
tests/evm/device.py) on the same inputs, for the functions it has."""
from __future__ import annotations

import random

import pytest

from gpubt.exact import v3
from tests.evm.chain import Chain, Reverted
from tests.evm.conftest import evm_cases
from tests.evm.device import device_rows

pytestmark = pytest.mark.slow  # the real Uniswap bytecode in pyrevm (npm artifacts: `make node_modules/.stamp`)


def _big(rng: random.Random, bits: int) -> int:
    u = rng.random()
    if u < 0.05:
        return 0
    if u < 0.1:
        return 2**bits - 1
    return int(2 ** rng.uniform(0, bits)) if rng.random() < 0.7 else rng.getrandbits(bits)


def _price(rng):
    return rng.randint(v3.MIN_SQRT_RATIO, v3.MAX_SQRT_RATIO - 1) if rng.random() < 0.3 else \
        v3.get_sqrt_ratio_at_tick(rng.randint(v3.MIN_TICK, v3.MAX_TICK))


CASES = {  # name: (solidity signature, return types, python function, random args)
    "mulDiv": ("mulDiv(uint256,uint256,uint256)", ["uint256"], v3.mul_div,
               lambda r: (_big(r, 256), _big(r, 256), _big(r, 256))),
    "mulDivRoundingUp": ("mulDivRoundingUp(uint256,uint256,uint256)", ["uint256"], v3.mul_div_rounding_up,
                         lambda r: (_big(r, 256), _big(r, 200), _big(r, 256))),
    "getSqrtRatioAtTick": ("getSqrtRatioAtTick(int24)", ["uint160"], v3.get_sqrt_ratio_at_tick,
                           lambda r: (r.randint(v3.MIN_TICK - 2, v3.MAX_TICK + 2),)),
    "getTickAtSqrtRatio": ("getTickAtSqrtRatio(uint160)", ["int24"], v3.get_tick_at_sqrt_ratio,
                           lambda r: (r.choice((_price(r), _price(r) - 1, _price(r) + 1)),)),
    "getNextSqrtPriceFromInput": (
        "getNextSqrtPriceFromInput(uint160,uint128,uint256,bool)", ["uint160"], v3.get_next_sqrt_price_from_input,
        lambda r: (_price(r), _big(r, 128), _big(r, r.choice((64, 128, 256))), r.random() < 0.5)),
    "getNextSqrtPriceFromOutput": (
        "getNextSqrtPriceFromOutput(uint160,uint128,uint256,bool)", ["uint160"], v3.get_next_sqrt_price_from_output,
        lambda r: (_price(r), _big(r, 128), _big(r, r.choice((64, 128, 256))), r.random() < 0.5)),
    "getAmount0Delta": ("getAmount0Delta(uint160,uint160,uint128,bool)", ["uint256"], v3.get_amount0_delta,
                        lambda r: (_price(r), _price(r), _big(r, 128), r.random() < 0.5)),
    "getAmount1Delta": ("getAmount1Delta(uint160,uint160,uint128,bool)", ["uint256"], v3.get_amount1_delta,
                        lambda r: (_price(r), _price(r), _big(r, 128), r.random() < 0.5)),
    "getAmount0DeltaSigned": ("getAmount0DeltaSigned(uint160,uint160,int128)", ["int256"],
                              v3.get_amount0_delta_signed,
                              lambda r: (_price(r), _price(r), r.choice((1, -1)) * _big(r, 127))),
    "getAmount1DeltaSigned": ("getAmount1DeltaSigned(uint160,uint160,int128)", ["int256"],
                              v3.get_amount1_delta_signed,
                              lambda r: (_price(r), _price(r), r.choice((1, -1)) * _big(r, 127))),
    "computeSwapStep": ("computeSwapStep(uint160,uint160,uint128,int256,uint24)",
                        ["uint160", "uint256", "uint256", "uint256"], v3.compute_swap_step,
                        lambda r: (_price(r), _price(r), _big(r, 128), r.choice((1, -1)) * _big(r, 200),
                                   r.choice((100, 500, 3000, 10000, r.randint(0, 999_999))))),
    "addDelta": ("addDelta(uint128,int128)", ["uint128"], v3.add_delta,
                 lambda r: (_big(r, 128), r.choice((1, -1)) * _big(r, 127))),
}


# the harness's functions the device engine has: its driver, and the harness's arguments as the driver's
ON_DEVICE = {
    "mulDiv": ("mul_div", None), "mulDivRoundingUp": ("mul_div_rounding_up", None),
    "getSqrtRatioAtTick": ("get_sqrt_ratio_at_tick", None), "getTickAtSqrtRatio": ("get_tick_at_sqrt_ratio", None),
    "getNextSqrtPriceFromInput": ("get_next_sqrt_price_from_input", None),
    "getNextSqrtPriceFromOutput": ("get_next_sqrt_price_from_output", None),
    "getAmount0Delta": ("get_amount0_delta", None), "getAmount1Delta": ("get_amount1_delta", None),
    "computeSwapStep": ("compute_swap_step", lambda p, t, q, left, fee: (p, t, q, left % 2**256, fee)),
    "addDelta": ("add_liquidity_delta", lambda x, y: (x, y % 2**256, False)),
}


@pytest.fixture(scope="module")
def harness():
    chain = Chain()
    return chain, chain.deploy("GpubtV3MathHarness")


@pytest.mark.parametrize("name", list(CASES))
def test_v3_library_function_matches_contract(harness, name):
    chain, address = harness
    signature, returns, fn, draw = CASES[name]
    rng = random.Random(name)
    n = max(200, evm_cases() // 5)
    mismatches, reverts, on_device = [], 0, []
    for _ in range(n):
        args = draw(rng)
        try:
            evm = chain.call(address, signature, *args, returns=returns)
            evm = tuple(evm) if isinstance(evm, tuple) else evm
        except Reverted as e:
            evm = ("revert", e.reason)
        try:
            py = fn(*args)
            py = tuple(py) if isinstance(py, tuple) else py
        except v3.V3Revert as e:
            py = ("revert", e.reason)
        reverts += isinstance(py, tuple) and py[:1] == ("revert",)
        if evm != py:
            mismatches.append((args, evm, py))
        evm = evm if isinstance(evm, tuple) else (evm,)
        on_device.append((args, ("revert",) if evm[0] == "revert" else ("ok", evm)))
    assert not mismatches, f"{name}: {len(mismatches)}/{n} differ, first: {mismatches[:3]}"
    assert reverts < n  # not only failures
    if name in ON_DEVICE:
        driver, convert = ON_DEVICE[name]
        rows = [convert(*args) if convert else args for args, _ in on_device]
        differ = [(args, got, want) for (args, want), got in zip(on_device, device_rows(driver, rows)) if got != want]
        assert not differ, f"{name} on the device: {len(differ)}/{n} differ, first: {differ[:3]}"
