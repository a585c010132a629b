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


class V3JitWorkloads:
    """JIT liquidity, mint and burn + collect as two cold transactions of GpubtJitCallee (the position's owner):
    in a block of its own, the mint of a position of 1..3 tick spacings around the current tick,
    [base − (k−1)·spacing, base + k·spacing) with base = the current spacing (configs/strategy/jit.yaml); then,
    same block, an unmeasured victim swap through it (price kept inside the range, so the position earns fees);
    then, same block, burn of the whole position + collect of principal and fees to the owner.

    `ticks_initialized=False`: the position's two ticks are not initialized before its mint (other LPs' ticks only
    ≥ 20 spacings away, in the same TickBitmap word, so flipping a bit never writes a word from 0); the mint
    initializes both (Tick.Info from 0), the burn clears them again (refunds). True: other LPs' positions bound
    every spacing near the price, so the mint and burn only update the ticks' liquidity. Each case's position is
    new to its owner (8 owner contracts, the first that never held that range), as a JIT searcher's position is.
    4 fee tiers, full-range liquidity + the positions above, warmed up (fee growth and oracle accumulators,
    ticks' outside values non-zero) like a used mainnet pool."""

    MINT = "jitMint(address,int24,int24,uint128)"
    BURN_COLLECT = "jitBurnCollect(address,int24,int24,uint128)"
    MID_WORD = 128  # the pools' initial price: tick 128 spacings, mid-word of TickBitmap word 0

    def __init__(self, ticks_initialized: bool, fees=(100, 500, 3000, 10000), rng: random.Random | None = None,
                 owners: int = 8):
        from tests.evm.test_v3_pool import V3Market

        rng = rng or random.Random(0)
        self.ticks_initialized = ticks_initialized
        market = V3Market()
        c = market.chain
        self.victim = market.callee  # GpubtCallee: swaps, and mints the other LPs' positions
        self.owners = [c.deploy("GpubtJitCallee") for _ in range(owners)]
        self.pools, self.used = [], set()
        for fee in fees:
            tokens = [_erc20(c, 2**250) for _ in range(2)]
            for tok in tokens:
                c.call(tok, "transfer(address,uint256)", self.victim, 2**249)
                for owner in self.owners:  # inventory: paying the pool never empties an owner's balance
                    c.call(tok, "transfer(address,uint256)", owner, 2**240)
            address = c.call(market.factory, "createPool(address,address,uint24)", *tokens, fee, returns=["address"])
            pool = v3.V3Pool(fee)
            s = pool.tick_spacing
            # the price in the middle of a TickBitmap word (256 spacings), as nearly always on mainnet: a JIT
            # range then flips bits of one word, not of two (a cold word more: +5,000 at a word boundary)
            mid = self.MID_WORD * s
            sqrt_price = v3.get_sqrt_ratio_at_tick(mid)
            c.call(address, "initialize(uint160)", sqrt_price)
            pool.initialize(sqrt_price)
            positions = [(-887272 // s * s + s if -887272 % s else -887272, 887272 // s * s, 10**22)]
            if ticks_initialized:
                positions += [(mid + k * s, mid + (k + 1) * s, 10**21) for k in range(-16, 16)]
            else:
                positions += [(mid - 60 * s, mid - 20 * s, 10**21), (mid + 20 * s, mid + 60 * s, 10**21)]
            for lower, upper, amount in positions:
                market.mint(address, lower, upper, amount)
                pool.mint(lower, upper, amount, owner=self.victim)
            centre = mid + rng.randint(-2, 2) * s  # the warm-up ends strictly inside a spacing (both tokens owed)
            centre = (v3.get_sqrt_ratio_at_tick(centre) + v3.get_sqrt_ratio_at_tick(centre + s)) // 2
            for limit in (v3.get_sqrt_ratio_at_tick(mid - 17 * s), v3.get_sqrt_ratio_at_tick(mid + 17 * s), centre):
                c.next_block()  # warm-up swaps, blocks apart
                zero_for_one = limit < pool.sqrt_price_x96
                market.swap(address, zero_for_one, 10**30, limit)
                pool.swap(zero_for_one, 10**30, limit)
            self.pools.append((address, pool))
        self.chain = TxChain.from_chain(c)

    def case(self, rng: random.Random, spacings: int | None = None) -> tuple[int, int, int, int, int, int] | None:
        """One JIT round trip on a random pool: (fee, spacings, mint tx gasUsed, its pool.mint call gas (the
        callback's transfers included), burn + collect tx gasUsed, its pool.burn + pool.collect calls' gas), or
        None when all owners already held that range."""
        address, pool = rng.choice(self.pools)
        s = pool.tick_spacing
        k = spacings or rng.choice((1, 2, 3))
        base = pool.tick // s * s
        lower, upper = base - (k - 1) * s, base + k * s
        owner = next((o for o in self.owners if (o, address, lower, upper) not in self.used), None)
        if owner is None:
            return None
        self.used.add((owner, address, lower, upper))
        assert all((t in pool.ticks) == self.ticks_initialized for t in (lower, upper))
        liquidity = int(10 ** rng.uniform(21, 24))
        self.chain.next_block()
        (m0, m1, mint_call), mint_gas = self.chain.transact(owner, self.MINT, address, lower, upper, liquidity,
                                                            returns=["uint256", "uint256", "uint256"])
        assert (m0, m1) == pool.mint(lower, upper, liquidity, owner=owner) and m0 > 0 and m1 > 0
        # the victim's swap, same block, unmeasured: to a random price inside the range (towards the middle of
        # the pools' liquidity when the price has wandered off), so it pays fees to the position
        sqrt_lo, sqrt_hi = v3.get_sqrt_ratio_at_tick(lower) + 1, v3.get_sqrt_ratio_at_tick(upper) - 1
        if pool.tick > (self.MID_WORD + 4) * s:
            sqrt_hi = pool.sqrt_price_x96 - 1
        elif pool.tick < (self.MID_WORD - 4) * s:
            sqrt_lo = pool.sqrt_price_x96 + 1
        limit = rng.randint(sqrt_lo, sqrt_hi)
        if limit != pool.sqrt_price_x96:
            zero_for_one = limit < pool.sqrt_price_x96
            outcome = pool.swap_outcome(zero_for_one, 10**30, limit, commit=False)
            (a0, a1, _), _ = self.chain.transact(self.victim, "v3Swap(address,bool,int256,uint160)", address,
                                                 zero_for_one, 10**30, limit, returns=["int256", "int256", "uint256"])
            pool.swap(zero_for_one, 10**30, limit)
            assert (a0, a1) == tuple(outcome[:2])
        (c0, c1, burn_call), burn_gas = self.chain.transact(owner, self.BURN_COLLECT, address, lower, upper,
                                                            liquidity, returns=["uint128", "uint128", "uint256"])
        b0, b1 = pool.burn(lower, upper, liquidity, owner=owner)
        assert c0 >= b0 and c1 >= b1 and (c0, c1) != (b0, b1)  # principal + the swap's fees
        assert all((t in pool.ticks) == self.ticks_initialized for t in (lower, upper))
        return pool.fee, k, mint_gas, mint_call, burn_gas, burn_call


def measure_jit(work: V3JitWorkloads, n: int, rng: random.Random) -> list[tuple[int, int, int, int, int, int]]:
    out = []
    while len(out) < n:
        got = work.case(rng)
        if got:
            out.append(got)
    return out
