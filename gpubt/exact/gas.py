"""Gas of Uniswap swaps, V2 arbitrage cycles and V3 JIT liquidity (mint; burn + collect): COLD, per-transaction figures, measured in the EVM on the real
v2-core / v3-core bytecode by `python bench/evm_gas.py` (table + fits; writes bench_results/evm_gas.json).

Method: each measured swap is one transaction in a fresh pyrevm EVM (Cancun) built from a state snapshot
(tests/evm/txchain.py), in a block of its own: every account and slot starts cold (EIP-2929) and SSTORE's
original value is the pre-transaction one (EIP-2200/3529), as for the first swap of a pool in a mainnet block.
tests/evm/test_gas_per_tx.py checks those semantics and that these constants are within ±5 % of a fresh
measurement. `*_TX_*` and the cycle figures are receipt gasUsed (21,000 intrinsic + calldata + execution - refund);
the others are the swap call alone (gasleft() in tests/evm/contracts/GpubtCallee.sol; no intrinsic, no calldata,
before refunds). V2 pairs seeded with non-zero price accumulators; V3 pools with ticks crossed before (steady state).

Superseded: the earlier warm figures (V2 38,021; V3 29,260 + 7,678/tick) came from pyrevm calls sharing one open
journal (storage warm, dirty-slot SSTOREs at 100): too low for a real transaction by ~30,000 (V2) and
~16,000 per V3 tick crossed.
"""
from dataclasses import dataclass

# A V2 cycle run by an arbitrage executor contract in one transaction (GpubtCycleExecutor: first hop paid from
# its balance, getReserves + amount out per hop, each output sent to the next pair, a final profit check):
# gas = CYCLE_BASE_GAS + V2_HOP_GAS × hops; least squares over 2/3/4 hops (136,067 / 187,621 / 239,181 median,
# max residual 2). These are what configs' gas.base_units / gas.per_hop_units should be.
CYCLE_BASE_GAS = 32_952  # 21,000 intrinsic + calldata + the executor's own work (owner check, balanceOf ×2)
V2_HOP_GAS = 51_557  # one more V2 hop: a cold pair + getReserves + swap (its token transfer, reserve/oracle writes)

# One V2 swap as its own transaction: GpubtCallee.v2Swap (transfer the input to the pair, then pair.swap).
V2_SWAP_TX_GAS = 87_984  # receipt gasUsed, median of 400
V2_SWAP_GAS = 68_021  # the transfer + pair.swap call alone (gasleft), cold

# One V3 swap as its own transaction: GpubtCallee.v3Swap (pool.swap + the callback's transfer), by initialized
# ticks crossed (0..13, 4 fee tiers); Theil-Sen line over the per-bucket medians (0 ticks: median 96,474 tx).
V3_SWAP_TX_BASE_GAS = 99_427  # receipt gasUsed
V3_SWAP_TX_GAS_PER_TICK = 23_703
V3_SWAP_BASE_GAS = 76_952  # the pool.swap call alone (gasleft), cold
V3_GAS_PER_TICK_CROSSED = 23_702

# V3 JIT liquidity, two transactions of a searcher contract owning the position (GpubtJitCallee): in a block of its
# own, pool.mint of a new position of 1..3 tick spacings around the current tick ([base − (k−1)·s, base + k·s),
# base = the current spacing; configs/strategy/jit.yaml), its mint callback transferring both tokens; then, same
# block, after a victim swap inside the range (the position earned fees), pool.burn of the whole position +
# pool.collect of principal and fees, in one transaction. Receipt gasUsed, medians of 200 cases each over the 4 fee
# tiers (per tier within ±0.2 %; p10-p90 within ±0.2 %), same cold per-transaction method as above; price
# mid-TickBitmap-word (a range straddling a word boundary costs ~5,000 more to mint).
# Ticks NOT initialized before the mint (no other LP bounds a position at either tick): the mint writes both
# Tick.Infos from 0 (lower: liquidity, both feeGrowthOutside, cumulatives; upper: liquidity, cumulatives) and
# flips two TickBitmap bits; the burn clears them again (its refund, capped at gasUsed/5, binds). This is the JIT
# default (jit.yaml mint_gas / burn_gas): a JIT range is fresh, its bounds picked per victim next to the current
# tick (the cheap case needs another LP's position bounded at exactly both), and the searcher's own ticks never
# persist (its burn clears them); it is also the dearer case, so a JIT profit is never overstated for want of gas.
# Each case's position is new to its owner (a range the owner held before mints cheaper). Tokens: v2-core's plain
# ERC20 (as for the swaps above); real tokens' transfers (proxies, e.g. USDC) cost more.
V3_MINT_TX_GAS = 270_468  # receipt gasUsed, p10-p90 270,153-270,579 (pool.mint call + callback: 250,918)
V3_BURN_COLLECT_TX_GAS = 152_704  # after the refund; p10-p90 152,452-152,792 (burn + collect calls: 168,536)
# Both ticks already initialized by other LPs' positions (the mint/burn only change their liquidity):
V3_MINT_TX_GAS_TICKS_INITIALIZED = 185_225  # p10-p90 184,839-185,347
V3_BURN_COLLECT_TX_GAS_TICKS_INITIALIZED = 121_006  # p10-p90 120,743-121,139


# A V3 hop inside a cycle (not measured in an executor yet): the V2 hop's marginal cost plus the difference
# between the V3 and V2 swap calls measured alone; + V3_GAS_PER_TICK_CROSSED per initialized tick crossed.
V3_HOP_GAS = V2_HOP_GAS + (V3_SWAP_BASE_GAS - V2_SWAP_GAS)


@dataclass(frozen=True)
class GasModel:
    """gas units of a cycle = base_units + per_hop_units × V2 hops + Σ over V3 hops (v3_hop_units + v3_tick_units ×
    initialized ticks crossed); price = base fee + priority fee (wei/gas). The screen knows no tick crossings
    (it charges v3_hop_units); exact re-pricing counts them. Defaults: gpubt/exact/gas.py."""

    base_units: int
    per_hop_units: int
    priority_fee_wei: int
    v3_hop_units: int = V3_HOP_GAS
    v3_tick_units: int = V3_GAS_PER_TICK_CROSSED

    def units(self, hops, v3_hops=0, ticks_crossed=0):
        return (self.base_units + self.per_hop_units * (hops - v3_hops) + self.v3_hop_units * v3_hops
                + self.v3_tick_units * ticks_crossed)
