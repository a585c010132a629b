"""A small in-process EVM (pyrevm) holding the real Uniswap V2/V3 contracts from their npm artifacts.

Artifacts come from node_modules (package.json; `make node_modules/.stamp` installs them); the test-only
contracts in tests/evm/contracts/ are compiled by tests/evm/build_contracts.js with the pinned solc.
Used by tests/evm/ and bench/evm_gas.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"
ARTIFACTS = {
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "ERC20": "@uniswap/v2-core/build/ERC20.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "GpubtCallee": ".gpubt/GpubtCallee.json",
    "GpubtV3MathHarness": ".gpubt/GpubtV3MathHarness.json",
    "GpubtCycleExecutor": ".gpubt/GpubtCycleExecutor.json",
    "GpubtJitCallee": ".gpubt/GpubtJitCallee.json",
}
BUILT = ("GpubtCallee", "GpubtV3MathHarness", "GpubtCycleExecutor", "GpubtJitCallee")
DEPLOYER = "0x" + "d0" * 20
MAX_UINT256 = 2**256 - 1


def artifacts_missing_reason() -> str | None:
    """None when every artifact is present (building the test contracts if node can); else why the EVM tests skip."""
    upstream = [p for n, p in ARTIFACTS.items() if n not in BUILT and not (NODE_MODULES / p).exists()]
    if upstream:
        return (f"Uniswap npm artifacts absent ({upstream[0]}, ...): run `make node_modules/.stamp` "
                "(npm ci of package.json) to install them")
    if any(not (NODE_MODULES / ARTIFACTS[n]).exists() for n in BUILT):
        if shutil.which("node") is None:
            return "node_modules/.gpubt/ test contracts not built and `node` is not on PATH"
        proc = subprocess.run(["node", str(REPO / "tests/evm/build_contracts.js")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"tests/evm/build_contracts.js failed:\n{proc.stderr}")
    try:
        import pyrevm  # noqa: F401
        import eth_abi  # noqa: F401
    except ImportError as e:  # a dev install has them; say so rather than skip silently
        raise RuntimeError(f"{e}: install the dev extra (pip install -e '.[dev]')") from e
    return None


@lru_cache(maxsize=None)
def creation_code(name: str) -> bytes:
    data = json.loads((NODE_MODULES / ARTIFACTS[name]).read_text())
    code = data["bytecode"]
    code = code["object"] if isinstance(code, dict) else code
    return bytes.fromhex(code[2:] if code.startswith("0x") else code)


@lru_cache(maxsize=None)
def _selector(signature: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=signature)[:4]


def _arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1:-1]
    return [t for t in inner.split(",") if t]


class Reverted(Exception):
    """The call reverted or halted; `reason` is the decoded revert string ('' when it had none)."""

    def __init__(self, reason: str, raw: str):
        self.reason = reason
        super().__init__(reason or raw[:200])


_REVERT_OUTPUT = re.compile(r"output: (?:Bytes\()?0x([0-9a-fA-F]*)")


def _revert_reason(message: str) -> str:
    m = _REVERT_OUTPUT.search(message)
    if not m:
        return ""
    out = bytes.fromhex(m.group(1))
    if out[:4] == bytes.fromhex("08c379a0"):  # Error(string)
        from eth_abi import decode

        return decode(["string"], out[4:])[0]
    return ""


class Chain:
    """One pyrevm EVM (Cancun rules) with a funded deployer; calls are ABI-encoded from Solidity signatures.

    Note: pyrevm keeps one open journal across calls, so storage warmed by earlier calls stays warm; gas is
    therefore measured per transaction with tests/evm/txchain.py (a fresh EVM per tx), never from these calls.
    """

    def __init__(self, timestamp: int = 1_700_000_000):
        from pyrevm import EVM, BlockEnv

        self.evm = EVM(spec_id="CANCUN")
        self.evm.set_balance(DEPLOYER, 10**30)
        self.block_number, self.timestamp = 1, timestamp
        self._block_env = BlockEnv
        self.evm.set_block_env(BlockEnv(number=self.block_number, timestamp=self.timestamp))

    def next_block(self, seconds: int = 12) -> None:
        self.block_number += 1
        self.timestamp += seconds
        self.evm.set_block_env(self._block_env(number=self.block_number, timestamp=self.timestamp))

    def deploy(self, name: str, ctor_types=(), ctor_args=()) -> str:
        from eth_abi import encode

        return self.evm.deploy(DEPLOYER, creation_code(name) + encode(list(ctor_types), list(ctor_args)))

    def call(self, to: str, signature: str, *args, returns=(), sender: str = DEPLOYER):
        """Call `signature` (e.g. 'swap(uint256,uint256,address,bytes)') on `to`; decoded returns or Reverted."""
        from eth_abi import decode, encode

        data = _selector(signature) + encode(_arg_types(signature), list(args))
        try:
            out = self.evm.message_call(sender, to, data)
        except RuntimeError as e:
            raise Reverted(_revert_reason(str(e)), str(e)) from None
        if not returns:
            return None
        values = decode(list(returns), bytes(out))
        return values[0] if len(values) == 1 else values
