// SPDX-License-Identifier: MIT
// Test-only JIT liquidity searcher for gpubt's gas measurements (tests/evm/gas_workloads.py, bench/evm_gas.py):
// the owner of its V3 positions; holds both tokens, mints with pool.mint (its mint callback paying both tokens
// from its balance) and, in one transaction, burns the whole position and collects principal + fees to itself.
// No owner check or slippage guard (a production contract's few hundred gas more); gasleft() gives the pool
// calls' own gas.
pragma solidity =0.7.6;

interface IERC20JitLike {
    function transfer(address to, uint256 value) external returns (bool);
}

interface IV3PoolJitLike {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external returns (uint256 amount0, uint256 amount1);
    function burn(int24 tickLower, int24 tickUpper, uint128 amount) external returns (uint256 amount0, uint256 amount1);
    function collect(address recipient, int24 tickLower, int24 tickUpper, uint128 amount0Requested,
                     uint128 amount1Requested) external returns (uint128 amount0, uint128 amount1);
}

contract GpubtJitCallee {
    /// The JIT mint: pool.mint of `amount` liquidity on [tickLower, tickUpper) owned by this contract.
    function jitMint(address pool, int24 tickLower, int24 tickUpper, uint128 amount)
        external returns (uint256 amount0, uint256 amount1, uint256 gasUsed)
    {
        uint256 g = gasleft();
        (amount0, amount1) = IV3PoolJitLike(pool).mint(address(this), tickLower, tickUpper, amount, "");
        gasUsed = g - gasleft();
    }

    /// The JIT exit: burn `amount` (the whole position), then collect everything owed (principal + fees) to this.
    function jitBurnCollect(address pool, int24 tickLower, int24 tickUpper, uint128 amount)
        external returns (uint128 amount0, uint128 amount1, uint256 gasUsed)
    {
        uint256 g = gasleft();
        IV3PoolJitLike(pool).burn(tickLower, tickUpper, amount);
        (amount0, amount1) = IV3PoolJitLike(pool).collect(address(this), tickLower, tickUpper, type(uint128).max,
                                                          type(uint128).max);
        gasUsed = g - gasleft();
    }

    function uniswapV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes calldata) external {
        if (amount0Owed > 0) _pay(IV3PoolJitLike(msg.sender).token0(), amount0Owed);
        if (amount1Owed > 0) _pay(IV3PoolJitLike(msg.sender).token1(), amount1Owed);
    }

    function _pay(address token, uint256 amount) private {
        require(IERC20JitLike(token).transfer(msg.sender, amount), "pay");
    }
}
