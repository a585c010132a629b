"""gpubt.exact.v2 against the real UniswapV2Pair (v2-core 1.0.1) and UniswapV2Router02's library math
(v2-periphery 1.1.0-beta.0): every output and input exact to the wei, reserves after every swap equal; the exact
engine on the device (kernels/exact_uniswap.py, tests/evm/device.py) gives the library's every output and input
too."""
from __future__ import annotations

import random

import pytest

from gpubt.exact.v2 import get_amount_in, get_amount_out
from gpubt.market.fork import ForkedPool
from tests.evm.chain import DEPLOYER, Chain, Reverted
from tests.evm.conftest import evm_cases
from tests.evm.device import device_rows

pytestmark = pytest.mark.slow  # the real Uniswap bytecode in pyrevm (npm artifacts: `make node_modules/.stamp`)

MAX_UINT112 = 2**112 - 1
SWAPS_PER_PAIR = 10


def _log_uniform(rng: random.Random, hi: int) -> int:
    """1..hi, uniform in log2 (so tiny and huge values are both common), with the ends forced now and then."""
    u = rng.random()
    if u < 0.03:
        return 1
    if u < 0.06:
        return hi
    return max(1, min(hi, int(2 ** rng.uniform(0, hi.bit_length()))))


def _outs(zero_for_one: bool, amount_out: int) -> tuple[int, int]:
    return (0, amount_out) if zero_for_one else (amount_out, 0)


class V2Market:
    """Factory + router + a callee that pays and swaps (a router's two calls: transfer in, pair.swap)."""

    def __init__(self):
        self.chain = c = Chain()
        self.callee = c.deploy("GpubtCallee")
        self.factory = c.deploy("UniswapV2Factory", ["address"], [DEPLOYER])
        self.router = c.deploy("UniswapV2Router02", ["address", "address"], [self.factory, "0x" + "ee" * 20])

    def new_pair(self, reserve0: int, reserve1: int):
        """A fresh pair whose reserves are set exactly (transfer + sync, no LP tokens needed)."""
        c = self.chain
        a = c.deploy("ERC20", ["uint256"], [2**200])
        b = c.deploy("ERC20", ["uint256"], [2**200])
        c.call(self.factory, "createPair(address,address)", a, b)
        pair = c.call(self.factory, "getPair(address,address)", a, b, returns=["address"])
        token0 = c.call(pair, "token0()", returns=["address"])
        token1 = b if token0.lower() == a.lower() else a
        for tok, amount in ((token0, reserve0), (token1, reserve1)):
            c.call(tok, "transfer(address,uint256)", pair, amount)
            c.call(tok, "transfer(address,uint256)", self.callee, 2**199)
        c.call(pair, "sync()")
        return pair, token0, token1

    def reserves(self, pair) -> tuple[int, int]:
        r0, r1, _ = self.chain.call(pair, "getReserves()", returns=["uint112", "uint112", "uint32"])
        return r0, r1

    def swap(self, pair, token_in, amount_in, amount0_out, amount1_out) -> int:
        return self.chain.call(self.callee, "v2Swap(address,address,uint256,uint256,uint256)", pair, token_in,
                               amount_in, amount0_out, amount1_out, returns=["uint256"])


@pytest.fixture(scope="module")
def market():
    return V2Market()


def test_v2_swaps_exact_against_pair_and_router(market):
    n_swaps = evm_cases()
    rng = random.Random(20240601)
    c = market.chain
    mismatches, done, exact_out_cases, zero_out_cases = [], 0, 0, 0
    library = {"v2_get_amount_out": ([], []), "v2_get_amount_in": ([], [])}   # device rows, the router's answers
    while done < n_swaps:
        pair, token0, token1 = market.new_pair(_log_uniform(rng, 2**100), _log_uniform(rng, 2**100))
        for _ in range(SWAPS_PER_PAIR):
            c.next_block()
            r0, r1 = market.reserves(pair)
            zero_for_one = rng.random() < 0.5
            r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
            if r_in >= MAX_UINT112:  # the pair is full on this side: nothing more can be paid in
                break
            exact_out = r_out > 1 and rng.random() < 0.35
            fork = ForkedPool(0, False, 3000, r0, r1)  # the ordered exact pass's pool (gpubt/market/fork.py)
            if exact_out:
                amount_out = _log_uniform(rng, r_out - 1)
                amount_in = get_amount_in(amount_out, r_in, r_out)
                lib_in = c.call(market.router, "getAmountIn(uint256,uint256,uint256)", amount_out, r_in, r_out,
                                returns=["uint256"])
                if lib_in != amount_in:
                    mismatches.append(("getAmountIn", amount_out, r_in, r_out, lib_in, amount_in))
                library["v2_get_amount_in"][0].append((amount_out, r_in, r_out, 3000))
                library["v2_get_amount_in"][1].append(("ok", (lib_in,)))
                if ForkedPool(0, False, 3000, r0, r1).swap_out(zero_for_one, amount_out) != lib_in:
                    mismatches.append(("fork swap_out", amount_out, r_in, r_out, lib_in))
                if r_in + amount_in > MAX_UINT112:
                    done += 1
                    continue
                # the library's +1 may overshoot; the pair pays what the input is really worth
                amount_out = get_amount_out(amount_in, r_in, r_out)
                exact_out_cases += 1
            else:
                amount_in = _log_uniform(rng, MAX_UINT112 - r_in)
                amount_out = get_amount_out(amount_in, r_in, r_out)
            lib_out = c.call(market.router, "getAmountOut(uint256,uint256,uint256)", amount_in, r_in, r_out,
                             returns=["uint256"])
            if lib_out != amount_out:
                mismatches.append(("getAmountOut", amount_in, r_in, r_out, lib_out, amount_out))
            library["v2_get_amount_out"][0].append((amount_in, r_in, r_out, 3000))
            library["v2_get_amount_out"][1].append(("ok", (lib_out,)))
            token_in = token0 if zero_for_one else token1
            # one wei more than gpubt's output must break the pair's K check: the output is the maximum
            if amount_out + 1 < r_out:
                try:
                    market.swap(pair, token_in, amount_in, *_outs(zero_for_one, amount_out + 1))
                    mismatches.append(("K accepted out+1", amount_in, r_in, r_out, amount_out))
                except Reverted as e:
                    if e.reason != "UniswapV2: K":
                        mismatches.append(("unexpected revert", e.reason, amount_in, r_in, r_out))
            forked_out = fork.swap_in(zero_for_one, amount_in)
            if amount_out == 0:
                zero_out_cases += 1
                if forked_out is not None:  # the pair reverts a swap paying out nothing: so does the fork
                    mismatches.append(("fork swapped for nothing", amount_in, r_in, r_out))
            else:
                market.swap(pair, token_in, amount_in, *_outs(zero_for_one, amount_out))
                want = (r0 + amount_in, r1 - amount_out) if zero_for_one else (r0 - amount_out, r1 + amount_in)
                got = market.reserves(pair)
                if got != want:
                    mismatches.append(("reserves", got, want))
                if forked_out != amount_out or fork.reserves() != got:  # the fork's state is the pair's
                    mismatches.append(("fork", forked_out, amount_out, fork.reserves(), got))
            done += 1
    assert not mismatches, f"{len(mismatches)} mismatches in {done} swaps, first: {mismatches[:3]}"
    assert exact_out_cases > n_swaps // 5 and zero_out_cases > 0
    for name, (rows, router) in library.items():
        device = device_rows(name, rows)
        differ = [(row, d, r) for row, d, r in zip(rows, device, router) if d != r]
        assert not differ, f"the device engine's {name}: {len(differ)} of {len(rows)} differ, first: {differ[:3]}"
