"""Gas of one Uniswap swap, measured in the EVM on the real v2-core / v3-core bytecode (not wired into configs yet).

Re-derive with `python bench/evm_gas.py` (prints the table, writes bench_results/evm_gas.json). Measured: the
pair/pool `swap` call itself plus the ERC20 transfers it entails (V2: transfer in + pair.swap; V3: pool.swap with
its callback's transfer), via gasleft() in tests/evm/contracts/GpubtCallee.sol; excluded: the 21,000 intrinsic
gas, calldata, and any router overhead (a swap through a router costs more). V3 = base + per tick crossed,
a Theil-Sen line over the per-bucket medians.
Caveat: pyrevm keeps storage warm across calls (one open journal), so these are warm-storage figures, lower
than a transaction that touches the pool first in its block (each cold slot/account adds 2,000-2,500).
"""
V2_SWAP_GAS = 38_021  # median of 400 swaps; pair already touched (warm), price accumulators updated
V3_SWAP_BASE_GAS = 29_260  # Theil-Sen line over the medians of 0..13 ticks crossed (4 fee tiers)
V3_GAS_PER_TICK_CROSSED = 7_678
