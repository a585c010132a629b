"""Per-transaction gas in pyrevm: each transaction runs in a FRESH EVM built from a state snapshot.

Why: pyrevm 0.3.7's `message_call` never finalizes its transaction. Every call shares one open journal, so an
account or slot touched by any earlier call stays warm (EIP-2929) and SSTORE sees the session's first value as
the slot's "original" (EIP-2200/3529 dirty-slot accounting). Its `commit()` only pops a checkpoint (the journal
depth underflows) and is no way out. A mainnet transaction starts with an empty access set (only tx.origin, the
callee, the coinbase and the precompiles warm) and with every slot's original value = its value before the tx.

`TxChain` keeps the state itself (balance, nonce, code, storage of every account ever touched, in Python) and
runs each transaction in a new `pyrevm.EVM` whose database is loaded with that state: nothing is in its journal,
so everything starts cold and original = present. After the call it reads the touched accounts and slots back
from the EVM's journal (pyrevm exposes it only as Rust Debug text, `journal_str`; parsed below, pinned to
pyrevm==0.3.7) and folds them into the state. `evm.result.gas_used` is then the receipt's gasUsed: intrinsic
21,000 + calldata + execution, less the (capped) refund. tests/evm/test_gas_per_tx.py checks these semantics.

`TxChain.from_chain(chain)` takes the state left by set-up work done in a `tests.evm.chain.Chain` (one journal,
warm; fine for deploying and seeding, never for gas).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.evm.chain import DEPLOYER, Chain, Reverted, _arg_types, _revert_reason, _selector

_HEAD = re.compile(r"(0x[0-9a-fA-F]{40}): Account \{ info: AccountInfo \{ balance: (\d+), nonce: (\d+), "
                   r"code_hash: 0x([0-9a-f]{64}), code: ")
_CODE = re.compile(r"None|Some\(Bytecode \{ bytecode: 0x([0-9a-f]*), state: (?:Raw|Analysed \{ len: (\d+),)")
_SLOT = re.compile(r"(\d+): StorageSlot \{ previous_or_original_value: \d+, present_value: (\d+) \}")
EMPTY_CODE_HASH = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


@dataclass
class Account:
    balance: int = 0
    nonce: int = 0
    code: bytes = b""
    storage: dict[int, int] = field(default_factory=dict)


def journal_accounts(journal_str: str) -> dict[str, Account]:
    """The accounts in a pyrevm 0.3.7 journal (its Debug text): balance, nonce, code, the slots it loaded."""
    state = journal_str[:journal_str.index(", transient_storage:")]
    heads = list(_HEAD.finditer(state))
    if len(heads) != state.count(": Account { info: "):
        raise RuntimeError("cannot parse pyrevm's journal_str: is pyrevm still 0.3.7?")
    out = {}
    for i, m in enumerate(heads):
        segment = state[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(state)]
        c = _CODE.match(segment)
        if c is None:
            raise RuntimeError(f"cannot parse the code of {m.group(1)} in pyrevm's journal_str")
        code = bytes.fromhex(c.group(1) or "")
        if c.group(2) is not None:  # analysed bytecode is padded: cut it to its real length
            code = code[:int(c.group(2))]
        # pyrevm 0.3.7 also journals a contract's SSTOREs under the EOA that sent the tx (a quirk, no effect on
        # gas or on the contract's state): an account without code has no storage, so it is dropped there. (An
        # account loaded from the database may show `code: None` with its real code hash: it keeps its storage.)
        is_eoa = m.group(4) == EMPTY_CODE_HASH
        slots = {} if is_eoa else {int(k): int(v) for k, v in _SLOT.findall(segment[segment.index("storage: {"):])}
        out[m.group(1).lower()] = Account(int(m.group(2)), int(m.group(3)), code, slots)
    return out


class TxChain:
    """A chain whose every `transact` is one real transaction, starting cold (see the module docstring)."""

    def __init__(self, accounts: dict[str, Account], block_number: int = 1, timestamp: int = 1_700_000_000):
        self.accounts = accounts
        self.block_number, self.timestamp = block_number, timestamp
        self.last_gas_used = self.last_gas_refunded = None

    @classmethod
    def from_chain(cls, chain: Chain) -> "TxChain":
        return cls(journal_accounts(chain.evm.journal_str), chain.block_number + 1, chain.timestamp + 12)

    def next_block(self, seconds: int = 12) -> None:
        self.block_number += 1
        self.timestamp += seconds

    def _fresh_evm(self):
        from pyrevm import EVM, AccountInfo, BlockEnv

        evm = EVM(spec_id="CANCUN")
        # pyrevm's insert_account_storage writes the slot to the database only while the account is not in the
        # journal, and then loads it there (warm: a CALL to it would cost 100, not 2,600; a second slot would be
        # written into the journal, not the database): so each insert is undone from the journal by reverting to a
        # checkpoint taken just before it, which leaves the database as written and the journal empty. Balances
        # are not loaded at all (set_balance writes the journal): these transactions move no ether, gas price 0.
        for addr, acc in self.accounts.items():
            evm.insert_account_info(addr, AccountInfo(nonce=acc.nonce, code=acc.code or None))
            for slot, value in acc.storage.items():
                if value:
                    checkpoint = evm.snapshot()
                    evm.insert_account_storage(addr, slot, value)
                    evm.revert(checkpoint)
        evm.set_block_env(BlockEnv(number=self.block_number, timestamp=self.timestamp))
        return evm

    def transact_raw(self, to: str, data: bytes, sender: str = DEPLOYER, gas: int = 10_000_000) -> tuple[bytes, int]:
        """One transaction: (return data, receipt gasUsed). Reverts raise `Reverted` and change nothing."""
        evm = self._fresh_evm()
        try:
            out = evm.message_call(sender, to, data, gas=gas)
        except RuntimeError as e:
            raise Reverted(_revert_reason(str(e)), str(e)) from None
        result = evm.result
        self.last_gas_used, self.last_gas_refunded = result.gas_used, result.gas_refunded
        for addr, acc in journal_accounts(evm.journal_str).items():
            known = self.accounts.setdefault(addr, Account())
            known.balance, known.nonce = acc.balance, acc.nonce
            known.code = acc.code or known.code
            known.storage.update(acc.storage)
        return bytes(out), result.gas_used

    def transact(self, to: str, signature: str, *args, returns=(), sender: str = DEPLOYER):
        """(decoded returns, receipt gasUsed) of one transaction calling `signature` on `to`."""
        from eth_abi import decode, encode

        out, gas = self.transact_raw(to, _selector(signature) + encode(_arg_types(signature), list(args)), sender)
        if not returns:
            return None, gas
        values = decode(list(returns), out)
        return (values[0] if len(values) == 1 else values), gas

    def view(self, to: str, signature: str, *args, returns=()):
        """A read-only call (the state is not changed, nothing measured)."""
        from eth_abi import decode, encode

        evm = self._fresh_evm()
        out = evm.message_call(DEPLOYER, to, _selector(signature) + encode(_arg_types(signature), list(args)))
        values = decode(list(returns), bytes(out))
        return values[0] if len(values) == 1 else values

    def storage(self, address: str, slot: int) -> int:
        return self.accounts.get(address.lower(), Account()).storage.get(slot, 0)
