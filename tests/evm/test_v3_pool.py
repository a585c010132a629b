"""gpubt.exact.v3.V3Pool against the real UniswapV3Pool (v3-core 1.0.1): random pools of every fee tier with
full-range, wide and concentrated positions, exact-in and exact-out swaps with and without price limits, prices
near MIN/MAX tick; every amount0/amount1, the sqrtPriceX96, tick and liquidity after, and every mint/burn amount
equal to the wei (and a revert on one side is a revert, with the same reason, on the other). Every swap also runs
through the exact engine on the device (kernels/exact_uniswap.py's v3_swaps, tests/evm/device.py): amounts and the
state after equal the contract's, a revert is a revert."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from gpubt.exact import v3
from tests.evm.chain import Chain, Reverted
from tests.evm.conftest import evm_cases
from tests.evm.device import device_v3_swaps

pytestmark = pytest.mark.slow  # the real Uniswap bytecode in pyrevm (npm artifacts: `make node_modules/.stamp`)

SWAPS_PER_POOL = 16
SLOT0 = ["uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"]


def _log_uniform(rng: random.Random, hi: int) -> int:
    u = rng.random()
    if u < 0.03:
        return 1
    if u < 0.05:
        return hi
    return max(1, min(hi, int(2 ** rng.uniform(0, hi.bit_length()))))


def _sqrt_price_in_tick(rng: random.Random, tick: int) -> int:
    """A price inside [tick, tick + 1): exactly on the tick now and then, else anywhere in it."""
    lo = v3.get_sqrt_ratio_at_tick(tick)
    hi = v3.get_sqrt_ratio_at_tick(min(tick + 1, v3.MAX_TICK))
    if rng.random() < 0.2 or hi - lo <= 1:
        return lo
    return rng.randrange(lo, hi)


class V3Market:
    """A factory, tokens, and a callee contract that mints, burns and swaps (paying in its callbacks)."""

    def __init__(self):
        self.chain = c = Chain()
        self.callee = c.deploy("GpubtCallee")
        self.factory = c.deploy("UniswapV3Factory")
        # the 0.01 % tier was enabled on mainnet later, by governance (enableFeeAmount), as here by the owner
        c.call(self.factory, "enableFeeAmount(uint24,int24)", 100, 1)
        self.n_pools = 0

    def new_pool(self, fee: int, sqrt_price_x96: int) -> str:
        c = self.chain
        a = c.deploy("ERC20", ["uint256"], [2**250])
        b = c.deploy("ERC20", ["uint256"], [2**250])
        for tok in (a, b):
            c.call(tok, "transfer(address,uint256)", self.callee, 2**250)
        pool = c.call(self.factory, "createPool(address,address,uint24)", a, b, fee, returns=["address"])
        c.call(pool, "initialize(uint160)", sqrt_price_x96)
        self.n_pools += 1
        return pool

    def mint(self, pool, lower, upper, amount):
        return self.chain.call(self.callee, "v3Mint(address,int24,int24,uint128)", pool, lower, upper, amount,
                               returns=["uint256", "uint256"])

    def burn(self, pool, lower, upper, amount):
        return self.chain.call(self.callee, "v3Burn(address,int24,int24,uint128)", pool, lower, upper, amount,
                               returns=["uint256", "uint256"])

    def swap(self, pool, zero_for_one, amount_specified, limit):
        a0, a1, _gas = self.chain.call(self.callee, "v3Swap(address,bool,int256,uint160)", pool, zero_for_one,
                                       amount_specified, limit, returns=["int256", "int256", "uint256"])
        return a0, a1

    def state(self, pool) -> tuple[int, int, int]:
        slot0 = self.chain.call(pool, "slot0()", returns=SLOT0)
        return slot0[0], slot0[1], self.chain.call(pool, "liquidity()", returns=["uint128"])


def _both(evm_fn, py_fn):
    """Run the same operation on both sides: ('ok', result) or ('revert', reason) for each."""
    try:
        evm = ("ok", tuple(evm_fn()))
    except Reverted as e:
        evm = ("revert", e.reason)
    try:
        py = ("ok", tuple(py_fn()))
    except v3.V3Revert as e:
        py = ("revert", e.reason)
    return evm, py


def _random_start_tick(rng: random.Random) -> int:
    u = rng.random()
    if u < 0.1:
        return v3.MIN_TICK + rng.randrange(0, 4000)
    if u < 0.2:
        return v3.MAX_TICK - 1 - rng.randrange(0, 4000)
    return rng.randint(-300_000, 300_000)


def _random_positions(rng: random.Random, pool: v3.V3Pool):
    """(lower, upper, liquidity): maybe a full-range one, maybe a wide one, and 2..7 concentrated near the price."""
    s = pool.tick_spacing
    lo_usable, hi_usable = -(-v3.MIN_TICK // s) * s, (v3.MAX_TICK // s) * s
    here = (pool.tick // s) * s
    cap = min(2**90, pool.max_liquidity_per_tick // 8)
    out = []
    if rng.random() < 0.7:
        out.append((lo_usable, hi_usable, _log_uniform(rng, cap)))
    if rng.random() < 0.6:
        w = s * rng.randint(50, 3000)
        out.append((max(lo_usable, here - w), min(hi_usable, here + w), _log_uniform(rng, cap)))
    for _ in range(rng.randint(2, 7)):
        lower = here + s * rng.randint(-40, 40)
        upper = lower + s * rng.randint(1, 25)
        lower, upper = max(lo_usable, lower), min(hi_usable, upper)
        if lower < upper:
            out.append((lower, upper, _log_uniform(rng, cap)))
    return out


def _random_limit(rng: random.Random, pool: v3.V3Pool, zero_for_one: bool) -> int:
    if rng.random() < 0.5:
        return v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1
    if rng.random() < 0.03:  # on the wrong side of the price: both must revert 'SPL'
        return pool.sqrt_price_x96
    reach = pool.tick_spacing * rng.randint(1, 400)
    tick = max(v3.MIN_TICK, pool.tick - reach) if zero_for_one else min(v3.MAX_TICK - 1, pool.tick + reach)
    limit = _sqrt_price_in_tick(rng, tick)
    return min(max(limit, v3.MIN_SQRT_RATIO + 1), v3.MAX_SQRT_RATIO - 1)


@pytest.fixture(scope="module")
def market():
    return V3Market()


def test_v3_pool_swaps_mints_burns_exact(market):
    n_swaps = evm_cases()
    rng = random.Random(20240602)
    stats = Counter()
    crossed = Counter()
    mismatches = []
    on_device, from_evm = [], []   # the swaps for the device engine, and what the contract did

    def tick_table():   # the pool's initialized ticks and their liquidityNet (packed once per table)
        ticks = [c * pool.tick_spacing for c in pool.initialized]
        return ticks, [pool.ticks[t].liquidity_net for t in ticks]

    def check(kind, evm, py, *ctx):
        stats[f"{kind}:{evm[0]}"] += 1
        if evm != py:
            mismatches.append((kind, evm, py, *ctx))

    fees = list(v3.TICK_SPACINGS)
    while stats["swaps"] < n_swaps:
        fee = fees[market.n_pools % len(fees)]
        sqrt_price = _sqrt_price_in_tick(rng, _random_start_tick(rng))
        address = market.new_pool(fee, sqrt_price)
        pool = v3.V3Pool(fee)
        pool.initialize(sqrt_price)
        positions = []
        for lower, upper, amount in _random_positions(rng, pool):
            evm, py = _both(lambda: market.mint(address, lower, upper, amount), lambda: pool.mint(lower, upper, amount))
            check("mint", evm, py, fee, lower, upper, amount)
            if py[0] == "ok":
                positions.append([lower, upper, amount])
        table = tick_table()
        for _ in range(SWAPS_PER_POOL):
            market.chain.next_block()
            zero_for_one = rng.random() < 0.5
            magnitude = _log_uniform(rng, 2**rng.choice((64, 100, 127)))
            amount = magnitude if rng.random() < 0.6 else -magnitude
            limit = _random_limit(rng, pool, zero_for_one)
            before = (pool.sqrt_price_x96, pool.tick, pool.liquidity)
            on_device.append((before[0], before[1], before[2], pool.tick_spacing, fee, amount, zero_for_one, limit,
                              table))
            outcome = []
            evm, py = _both(lambda: market.swap(address, zero_for_one, amount, limit),
                            lambda: outcome.append(pool.swap_outcome(zero_for_one, amount, limit)) or outcome[-1][:2])
            check("swap", evm, py, fee, before, zero_for_one, amount, limit)
            got = market.state(address)
            from_evm.append(("ok", (*evm[1], *got)) if evm[0] == "ok" else ("revert",))
            want = (pool.sqrt_price_x96, pool.tick, pool.liquidity)
            if got != want:
                mismatches.append(("state", got, want, fee, before, zero_for_one, amount, limit))
            stats["swaps"] += 1
            stats["exact_in" if amount > 0 else "exact_out"] += 1
            if outcome:
                crossed[outcome[-1].ticks_crossed] += 1
                stats["near_edge"] += abs(pool.tick) > v3.MAX_TICK - 20_000
            if positions and rng.random() < 0.15:  # burn part (or all) of a position, then maybe mint again
                pos = rng.choice(positions)
                part = pos[2] if rng.random() < 0.3 else rng.randint(1, pos[2])
                evm, py = _both(lambda: market.burn(address, pos[0], pos[1], part),
                                lambda: pool.burn(pos[0], pos[1], part))
                check("burn", evm, py, fee, pos, part)
                pos[2] -= part if py[0] == "ok" else 0
                positions = [p for p in positions if p[2] > 0]
                table = tick_table()
    print(dict(stats), sorted(crossed.items()))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"
    device = device_v3_swaps(on_device)
    differ = [(row[:8], d, e) for row, d, e in zip(on_device, device, from_evm) if d != e]
    assert not differ, f"the device engine: {len(differ)} of {len(device)} swaps differ, first: {differ[:3]}"
    # the cases cover what they claim to
    assert stats["swap:ok"] > 0.8 * n_swaps and stats["swap:revert"] > 0
    assert stats["exact_out"] > 0.3 * n_swaps and stats["mint:ok"] > 0 and stats["burn:ok"] > 0
    assert sum(v for k, v in crossed.items() if k >= 3) > 0.05 * n_swaps
    assert stats["near_edge"] > 0
