// SPDX-License-Identifier: MIT
// Test-only caller for gpubt's differential tests (tests/evm/): holds tokens, pays the Uniswap callbacks, and
// measures the gas of the pair/pool call itself (plus the token transfers it entails) with gasleft().
pragma solidity =0.7.6;

interface IERC20Like {
    function transfer(address to, uint256 value) external returns (bool);
}

interface IV2PairLike {
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IV3PoolLike {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96,
                  bytes calldata data) external returns (int256 amount0, int256 amount1);
    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external returns (uint256 amount0, uint256 amount1);
    function burn(int24 tickLower, int24 tickUpper, uint128 amount) external returns (uint256 amount0, uint256 amount1);
}

contract GpubtCallee {
    /// V2 swap as a router does it: pay `amountIn` of `tokenIn` to the pair, then pair.swap (output to this).
    function v2Swap(address pair, address tokenIn, uint256 amountIn, uint256 amount0Out, uint256 amount1Out)
        external returns (uint256 gasUsed)
    {
        uint256 g = gasleft();
        require(IERC20Like(tokenIn).transfer(pair, amountIn), "transfer");
        IV2PairLike(pair).swap(amount0Out, amount1Out, address(this), "");
        gasUsed = g - gasleft();
    }

    /// V3 pool.swap with this contract as recipient and payer (uniswapV3SwapCallback below).
    function v3Swap(address pool, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96)
        external returns (int256 amount0, int256 amount1, uint256 gasUsed)
    {
        uint256 g = gasleft();
        (amount0, amount1) = IV3PoolLike(pool).swap(address(this), zeroForOne, amountSpecified, sqrtPriceLimitX96, "");
        gasUsed = g - gasleft();
    }

    function v3Mint(address pool, int24 tickLower, int24 tickUpper, uint128 amount)
        external returns (uint256 amount0, uint256 amount1)
    {
        return IV3PoolLike(pool).mint(address(this), tickLower, tickUpper, amount, "");
    }

    function v3Burn(address pool, int24 tickLower, int24 tickUpper, uint128 amount)
        external returns (uint256 amount0, uint256 amount1)
    {
        return IV3PoolLike(pool).burn(tickLower, tickUpper, amount);
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external {
        if (amount0Delta > 0) _pay(IV3PoolLike(msg.sender).token0(), uint256(amount0Delta));
        if (amount1Delta > 0) _pay(IV3PoolLike(msg.sender).token1(), uint256(amount1Delta));
    }

    function uniswapV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes calldata) external {
        if (amount0Owed > 0) _pay(IV3PoolLike(msg.sender).token0(), amount0Owed);
        if (amount1Owed > 0) _pay(IV3PoolLike(msg.sender).token1(), amount1Owed);
    }

    function _pay(address token, uint256 amount) private {
        require(IERC20Like(token).transfer(msg.sender, amount), "pay");
    }
}
