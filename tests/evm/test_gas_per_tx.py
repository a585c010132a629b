"""The per-transaction (cold) gas semantics of tests/evm/txchain.py, and gpubt/exact/gas.py against a fresh
measurement with it (so the constants can't rot when the bytecode, the EVM or the workloads change)."""
from __future__ import annotations

import random
import statistics

import pytest

from gpubt.exact import gas
from tests.evm.chain import DEPLOYER, Chain
from tests.evm.txchain import TxChain

pytestmark = pytest.mark.slow  # the real Uniswap bytecode in pyrevm (npm artifacts: `make node_modules/.stamp`)

# Probe runtime (hand-assembled), returning three gas deltas, each taken between two GAS opcodes:
#   word 0: SLOAD(calldata[0])           = SLOAD + 9    (PUSH0 2, CALLDATALOAD 3, POP 2, GAS 2)
#   word 1: BALANCE(calldata[32])        = BALANCE + 10 (PUSH1 3, CALLDATALOAD 3, POP 2, GAS 2)
#   word 2: SSTORE(1, calldata[64])      = SSTORE + 11  (PUSH1 3, CALLDATALOAD 3, PUSH1 3, GAS 2)
PROBE = bytes.fromhex(
    "5a5f3554505a9003"        # GAS PUSH0 CALLDATALOAD SLOAD POP GAS SWAP1 SUB
    "5a60203531505a9003"      # GAS PUSH1 32 CALLDATALOAD BALANCE POP GAS SWAP1 SUB
    "5a6040356001555a9003"    # GAS PUSH1 64 CALLDATALOAD PUSH1 1 SSTORE GAS SWAP1 SUB
    "6040526020525f5260605ff3")  # MSTORE(64, d3) MSTORE(32, d2) MSTORE(0, d1) RETURN(0, 96)
OTHER = bytes.fromhex("5f545f5260205ff3")  # a contract with code, whose account the probe's BALANCE touches


def _initcode(runtime: bytes) -> bytes:
    return bytes.fromhex(f"60{len(runtime):02x}600a5f3960{len(runtime):02x}5ff3") + runtime


def _probe(chain, probe: str, slot: int, account: str, value: int) -> tuple[int, int, int, int]:
    """(SLOAD, BALANCE, SSTORE opcode gas, receipt gasUsed) of one probe call."""
    data = slot.to_bytes(32, "big") + int(account, 16).to_bytes(32, "big") + value.to_bytes(32, "big")
    if isinstance(chain, TxChain):
        out, receipt = chain.transact_raw(probe, data)
    else:
        out, receipt = bytes(chain.evm.message_call(DEPLOYER, probe, data)), chain.evm.result.gas_used
    d1, d2, d3 = (int.from_bytes(out[i:i + 32], "big") for i in (0, 32, 64))
    return d1 - 9, d2 - 10, d3 - 11, receipt


@pytest.fixture()
def probes():
    setup = Chain()
    probe = setup.evm.deploy(DEPLOYER, _initcode(PROBE))
    other = setup.evm.deploy(DEPLOYER, _initcode(OTHER))
    return setup, probe, other


def test_one_journal_chain_stays_warm(probes):
    """Why gas is never read off `Chain`: its second call finds the slot and the account warm (pyrevm 0.3.7)."""
    setup, probe, other = probes
    assert _probe(setup, probe, 5, other, 7)[:3] == (2100, 100, 22100)  # `other`: warm since its deployment
    assert _probe(setup, probe, 5, other, 7)[:3] == (100, 100, 100)  # slot warm, and 7 -> 7 on a "dirty" slot


def test_each_transaction_starts_cold(probes):
    setup, probe, other = probes
    chain = TxChain.from_chain(setup)
    first = _probe(chain, probe, 5, other, 7)
    assert first[:3] == (2100, 2600, 22100)  # cold SLOAD, cold account (EIP-2929), 0 -> 7 SSTORE of a cold slot
    again = _probe(chain, probe, 5, other, 7)
    assert again[:2] == (2100, 2600)  # the same call in the next transaction: cold again
    assert again[2] == 2200  # 7 -> 7: a no-op SSTORE of a cold slot (2,100 + 100)
    assert _probe(chain, probe, 5, other, 7) == again  # and the same transaction twice costs the same


def test_sstore_original_value_and_refund_are_per_transaction(probes):
    setup, probe, other = probes
    chain = TxChain.from_chain(setup)
    _probe(chain, probe, 5, other, 7)
    assert _probe(chain, probe, 5, other, 9)[2] == 5000  # 7 -> 9, original 7 (not the session's 0): 2,100 + 2,900
    *_, sstore, receipt_9_to_0 = _probe(chain, probe, 5, other, 0)  # 9 -> 0: 5,000 and a 4,800 refund
    assert sstore == 5000 and chain.last_gas_refunded == 4800
    *_, sstore, receipt_0_to_0 = _probe(chain, probe, 5, other, 0)  # 0 -> 0 no-op: 2,200 and no refund
    assert sstore == 2200 and chain.last_gas_refunded == 0
    assert receipt_9_to_0 == receipt_0_to_0 + (5000 - 2200) - 4800  # the receipt nets the refund out
    _probe(chain, probe, 5, other, 3)
    assert chain.storage(probe, 1) == 3  # the state carries over from transaction to transaction


def _close(measured: float, constant: int, what: str, tol: float = 0.05) -> None:
    assert abs(measured - constant) <= tol * constant, f"{what}: measured {measured:,.0f} vs gas.py {constant:,}"


def test_v2_constants_match_a_fresh_measurement():
    from tests.evm.gas_workloads import V2Workloads

    rng = random.Random(11)
    work = V2Workloads(cycle_hops=(2, 3))
    direct = [work.direct_swap(rng) for _ in range(7)]
    _close(statistics.median(g for g, _ in direct), gas.V2_SWAP_TX_GAS, "V2 direct swap tx")
    _close(statistics.median(c for _, c in direct), gas.V2_SWAP_GAS, "V2 transfer + pair.swap call")
    cycle = {k: statistics.median(work.cycle(k, rng)[0] for _ in range(5)) for k in (2, 3)}
    for k, g in cycle.items():
        _close(g, gas.CYCLE_BASE_GAS + gas.V2_HOP_GAS * k, f"V2 {k}-hop cycle")
    _close(cycle[3] - cycle[2], gas.V2_HOP_GAS, "V2 marginal hop")


def test_v3_constants_match_a_fresh_measurement():
    from tests.evm.gas_workloads import V3Workloads, measure_v3

    rng = random.Random(12)
    by_crossed = measure_v3(V3Workloads(fees=(500, 3000), rng=rng), 80, rng)
    points = [(t, statistics.median(g for g, _ in s)) for t, s in by_crossed.items()]
    points_call = [(t, statistics.median(c for _, c in s)) for t, s in by_crossed.items()]
    assert len(points) >= 5
    for pts, base, per_tick, what in ((points, gas.V3_SWAP_TX_BASE_GAS, gas.V3_SWAP_TX_GAS_PER_TICK, "V3 tx"),
                                      (points_call, gas.V3_SWAP_BASE_GAS, gas.V3_GAS_PER_TICK_CROSSED, "V3 call")):
        slope = statistics.median([(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(sorted(pts))
                                   for x2, y2 in sorted(pts)[i + 1:]])
        intercept = statistics.median([y - slope * x for x, y in pts])
        _close(slope, per_tick, f"{what} gas per tick crossed")
        for ticks in (1, 4, 8):
            _close(intercept + slope * ticks, base + per_tick * ticks, f"{what} gas at {ticks} ticks crossed")


@pytest.mark.parametrize("ticks_initialized", [False, True], ids=["new-ticks", "ticks-initialized"])
def test_v3_jit_constants_match_a_fresh_measurement(ticks_initialized):
    from tests.evm.gas_workloads import V3JitWorkloads, measure_jit

    rng = random.Random(13)
    cases = measure_jit(V3JitWorkloads(ticks_initialized, rng=rng), 24, rng)
    assert {fee for fee, *_ in cases} == {100, 500, 3000, 10000} and {k for _, k, *_ in cases} == {1, 2, 3}
    mint, burn = (gas.V3_MINT_TX_GAS_TICKS_INITIALIZED, gas.V3_BURN_COLLECT_TX_GAS_TICKS_INITIALIZED) \
        if ticks_initialized else (gas.V3_MINT_TX_GAS, gas.V3_BURN_COLLECT_TX_GAS)
    what = "ticks initialized" if ticks_initialized else "new ticks"
    _close(statistics.median(c[2] for c in cases), mint, f"V3 JIT mint tx, {what}")
    _close(statistics.median(c[4] for c in cases), burn, f"V3 JIT burn + collect tx, {what}")
