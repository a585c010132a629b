// SPDX-License-Identifier: MIT
// Test-only: the usual V2 arbitrage-bot executor, to measure the gas of an n-hop cycle in ONE transaction
// (bench/evm_gas.py, tests/evm/test_gas_per_tx.py). The first hop is paid from this contract's balance, each
// pair sends its output straight to the next pair, the last to this contract; amounts come from the pairs'
// reserves (getReserves, 0.3 % fee), and the transaction reverts unless the balance grew by `minProfit`.
pragma solidity =0.7.6;

interface IERC20Min {
    function transfer(address to, uint256 value) external returns (bool);
    function balanceOf(address owner) external view returns (uint256);
}

interface IV2PairMin {
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

contract GpubtCycleExecutor {
    address private immutable owner;

    constructor() {
        owner = msg.sender;
    }

    /// `pairs[i]` is hop i; bit i of `zeroForOne` says whether hop i sells token0 for token1.
    function execute(address tokenIn, uint256 amountIn, uint256 minProfit, address[] calldata pairs,
                     uint256 zeroForOne) external {
        require(msg.sender == owner, "owner");
        uint256 before = IERC20Min(tokenIn).balanceOf(address(this));
        require(IERC20Min(tokenIn).transfer(pairs[0], amountIn), "transfer");
        uint256 amount = amountIn;
        uint256 n = pairs.length;
        for (uint256 i = 0; i < n; i++) {
            bool zfo = (zeroForOne >> i) & 1 == 1;
            (uint256 r0, uint256 r1, ) = IV2PairMin(pairs[i]).getReserves();
            (uint256 rIn, uint256 rOut) = zfo ? (r0, r1) : (r1, r0);
            uint256 inWithFee = amount * 997;
            amount = inWithFee * rOut / (rIn * 1000 + inWithFee);
            address to = i + 1 < n ? pairs[i + 1] : address(this);
            IV2PairMin(pairs[i]).swap(zfo ? 0 : amount, zfo ? amount : 0, to, new bytes(0));
        }
        require(IERC20Min(tokenIn).balanceOf(address(this)) >= before + minProfit, "profit");
    }
}
