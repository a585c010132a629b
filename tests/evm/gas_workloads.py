"""The gas workloads of bench/evm_gas.py and tests/evm/test_gas_per_tx.py, each swap ONE real transaction that
starts cold (tests/evm/txchain.py: a fresh pyrevm EVM per transaction, built from the state snapshot).

Set-up (deploying, seeding reserves, minting V3 positions, warming V3 ticks up) runs in the one-journal
`tests.evm.chain.Chain`; its final state is then taken over by a `TxChain`, and every measured swap is a
transaction of its own, in a block of its own (so V2 price accumulators and the V3 oracle update, as for the
first swap of a pool in a mainnet block). Each sample is (receipt gasUsed, gas of the call itself by gasleft()).
"""
from __future__ import annotations

import random
from collections import defaultdict

from gpubt.exact import v3
from gpubt.exact.v2 import get_amount_out
from tests.evm.chain import DEPLOYER, Chain
from tests.evm.txchain import TxChain

EXECUTE = "execute(address,uint256,uint256,address[],uint256)"


def _erc20(chain: Chain, supply: int = 2**200) -> str:
    return chain.deploy("ERC20", ["uint256"], [supply])


class V2Workloads:
    """One pair swapped directly by GpubtCallee, and 2..4-hop cycles run by GpubtCycleExecutor."""

    def __init__(self, cycle_hops=(2, 3, 4), reserve: int = 10**24):
        c = self.setup = Chain()
        self.callee = c.deploy("GpubtCallee")
        self.executor = c.deploy("GpubtCycleExecutor")
        # a factory per hop index: a 2-hop cycle needs two pairs of the same tokens (two V2 forks, same bytecode)
        self.factories = [c.deploy("UniswapV2Factory", ["address"], [DEPLOYER]) for _ in range(max(cycle_hops))]
        # (a) a pair for direct swaps, the callee holding both tokens (so its output balance is never 0 -> x)
        a, b = _erc20(c), _erc20(c)
        self.pair = self._pair(a, b, {a: reserve, b: 2000 * reserve}, self.factories[0])
        for tok in (a, b):
            c.call(tok, "transfer(address,uint256)", self.callee, 2**199)
        self.token0 = c.call(self.pair, "token0()", returns=["address"])
        self.token1 = b if self.token0.lower() == a.lower() else a
        # (c) one cycle per length: start token S held by the executor, T1..T(k-1) only in the pairs; every pair
        # prices its output 10 % above its input, so each cycle is profitable for the whole run
        self.cycles = {}
        for hops in cycle_hops:
            tokens = [_erc20(c) for _ in range(hops)]
            c.call(tokens[0], "transfer(address,uint256)", self.executor, 2**199)
            pairs, zfo_bits = [], 0
            for i in range(hops):
                t_in, t_out = tokens[i], tokens[(i + 1) % hops]
                pair = self._pair(t_in, t_out, {t_in: reserve, t_out: reserve * 11 // 10}, self.factories[i])
                if c.call(pair, "token0()", returns=["address"]).lower() == t_in.lower():
                    zfo_bits |= 1 << i
                pairs.append(pair)
            self.cycles[hops] = (tokens[0], pairs, zfo_bits)
        self.chain = TxChain.from_chain(c)
        # one unmeasured transaction per pair: a pair's first swap after its seeding sets price0/1CumulativeLast
        # from 0 (20,000 more per slot), which an active mainnet pair never pays again
        rng = random.Random(0)
        self.direct_swap(rng)
        for hops in cycle_hops:
            self.cycle(hops, rng)

    def _pair(self, a: str, b: str, reserves: dict[str, int], factory: str) -> str:
        c = self.setup
        c.call(factory, "createPair(address,address)", a, b)
        pair = c.call(factory, "getPair(address,address)", a, b, returns=["address"])
        for tok, amount in reserves.items():
            c.call(tok, "transfer(address,uint256)", pair, amount)
        c.call(pair, "sync()")
        return pair

    def reserves(self, pair: str) -> tuple[int, int]:
        slot8 = self.chain.storage(pair, 8)  # UniswapV2Pair: reserve0 | reserve1 << 112 | blockTimestampLast << 224
        return slot8 & (2**112 - 1), (slot8 >> 112) & (2**112 - 1)

    def direct_swap(self, rng: random.Random) -> tuple[int, int]:
        """One transaction: callee pays the input to the pair, then pair.swap (output to the callee)."""
        self.chain.next_block()
        r0, r1 = self.reserves(self.pair)
        zero_for_one = rng.random() < 0.5
        r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
        amount_in = r_in // rng.randint(100, 10_000)
        out = get_amount_out(amount_in, r_in, r_out)
        outs = (0, out) if zero_for_one else (out, 0)
        inner, gas = self.chain.transact(self.callee, "v2Swap(address,address,uint256,uint256,uint256)", self.pair,
                                         self.token0 if zero_for_one else self.token1, amount_in, *outs,
                                         returns=["uint256"])
        assert self.reserves(self.pair)[1 if zero_for_one else 0] == r_out - out
        return gas, inner

    def cycle(self, hops: int, rng: random.Random) -> tuple[int, None]:
        """One transaction: the executor runs the `hops`-hop cycle; minProfit = gpubt's exact profit (so it must
        be exact to the wei, or the transaction reverts)."""
        self.chain.next_block()
        start, pairs, zfo_bits = self.cycles[hops]
        amount_in = 10**24 // rng.randint(10_000, 100_000)
        amount = amount_in
        for i, pair in enumerate(pairs):
            r0, r1 = self.reserves(pair)
            amount = get_amount_out(amount, *((r0, r1) if zfo_bits >> i & 1 else (r1, r0)))
        assert amount > amount_in
        _, gas = self.chain.transact(self.executor, EXECUTE, start, amount_in, amount - amount_in, pairs, zfo_bits)
        return gas, None


class V3Workloads:
    """Pools of the 4 fee tiers with an initialized tick every spacing over ±60 spacings, swapped by the callee."""

    def __init__(self, fees=(100, 500, 3000, 10000), rng: random.Random | None = None):
        from tests.evm.test_v3_pool import V3Market

        rng = rng or random.Random(0)
        market = self.setup = V3Market()
        self.callee = market.callee
        self.pools = []
        for fee in fees:
            pool = v3.V3Pool(fee)
            sqrt_price = v3.get_sqrt_ratio_at_tick(0)
            address = market.new_pool(fee, sqrt_price)
            pool.initialize(sqrt_price)
            s = pool.tick_spacing
            positions = [(-887272 // s * s + s if -887272 % s else -887272, 887272 // s * s, 10**22)]
            positions += [(k * s, (k + 1) * s, 10**21) for k in range(-60, 60)]
            for lower, upper, amount in positions:
                market.mint(address, lower, upper, amount)
                pool.mint(lower, upper, amount)
            # warm-up: sweep the price over every tick both ways (and back to the middle), blocks apart, so each
            # tick's feeGrowthOutside / secondsOutside are non-zero as on a used mainnet pool (a first crossing
            # would otherwise pay 20,000 per zero slot)
            for target in (-61 * s, 61 * s, rng.randint(-5, 5) * s + s // 2):
                market.chain.next_block()
                zero_for_one = target < pool.tick
                limit = v3.get_sqrt_ratio_at_tick(target)
                market.swap(address, zero_for_one, 10**30, limit)
                pool.swap(zero_for_one, 10**30, limit)
            self.pools.append((address, pool))
        self.chain = TxChain.from_chain(market.chain)

    def swap(self, rng: random.Random, ticks: int | None = None) -> tuple[int, int, int] | None:
        """One transaction: pool.swap by the callee to a price limit `ticks` spacings away (random pool, direction
        towards the middle when far out). (ticks crossed, receipt gasUsed, gas of the pool.swap call) or None."""
        address, pool = rng.choice(self.pools)
        s = pool.tick_spacing
        zero_for_one = pool.tick > 0 if abs(pool.tick) > 40 * s else rng.random() < 0.5
        ticks = rng.choice((0, 0, 1, 2, 3, 5, 8, 12)) if ticks is None else ticks
        limit_tick = pool.tick - ticks * s - s // 2 if zero_for_one else pool.tick + ticks * s + s // 2
        limit = v3.get_sqrt_ratio_at_tick(limit_tick)
        if (zero_for_one and limit >= pool.sqrt_price_x96) or (not zero_for_one and limit <= pool.sqrt_price_x96):
            return None
        self.chain.next_block()
        outcome = pool.swap_outcome(zero_for_one, 10**30, limit, commit=False)
        (a0, a1, inner), gas = self.chain.transact(self.callee, "v3Swap(address,bool,int256,uint160)", address,
                                                   zero_for_one, 10**30, limit, returns=["int256", "int256", "uint256"])
        pool.swap(zero_for_one, 10**30, limit)
        assert (a0, a1) == tuple(outcome[:2])
        return outcome.ticks_crossed, gas, inner


def measure_v3(work: V3Workloads, n: int, rng: random.Random) -> dict[int, list[tuple[int, int]]]:
    by_crossed = defaultdict(list)
    while sum(map(len, by_crossed.values())) < n:
        got = work.swap(rng)
        if got:
            by_crossed[got[0]].append(got[1:])
    return dict(by_crossed)
