"""A real local node (ganache from npm, tests/ingest/node/) with the real Uniswap V2/V3 contracts and a scripted
trading history, driven with web3.py. Used by tests/ingest/.

`start_node()` starts ganache on 127.0.0.1 with automine off; `Market.deploy(chain)` deploys WETH9, test ERC20s,
the V2 factory + Router02, the V3 factory + SwapRouter + NonfungiblePositionManager; `Market.trade(...)` mines
blocks of several transactions each: router swaps of every kind (recorded for the victim checks), direct pair
swaps, V2 and V3 liquidity adds/removes, a donation + sync().
"""
from __future__ import annotations

import json
import math
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = NODE_DIR / "node_modules"
GANACHE = NODE_MODULES / "ganache" / "dist" / "node" / "cli.js"
CHAIN_ID = 1337
ARTIFACTS = {
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "ERC20": "@uniswap/v2-core/build/ERC20.json",
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
    "NonfungiblePositionManager":
        "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
}
E18 = 10**18
GAS = 1_500_000
DEADLINE = 4_000_000_000
MAX_UINT = 2**256 - 1


def missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "`node` is not on PATH (Node.js >= 18 runs ganache)"
    missing = [p for p in ARTIFACTS.values() if not (NODE_MODULES / p).exists()]
    if missing or not GANACHE.exists():
        return ("tests/ingest/node/node_modules is not installed: run `make tests/ingest/node/node_modules/.stamp` "
                "(npm ci --prefix tests/ingest/node)")
    return None


def artifact(name: str) -> dict:
    data = json.loads((NODE_MODULES / ARTIFACTS[name]).read_text())
    code = data["bytecode"]
    code = code["object"] if isinstance(code, dict) else code
    return {"abi": data["abi"], "bytecode": code if code.startswith("0x") else "0x" + code}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    proc: subprocess.Popen
    url: str
    w3: Web3

    def rpc(self, method, params=()):
        resp = self.w3.provider.make_request(method, list(params))
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]

    def mine(self, n: int = 1) -> None:
        for _ in range(n):
            self.rpc("evm_mine")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_node(chain_id: int = CHAIN_ID) -> Node:
    port = free_port()
    cmd = ["node", str(GANACHE), "--server.host", "127.0.0.1", "--server.port", str(port), "--chain.chainId",
           str(chain_id), "--wallet.deterministic", "--wallet.totalAccounts", "8", "--wallet.defaultBalance",
           "1000000", "--miner.blockGasLimit", "30000000", "--logging.quiet", "--chain.time", "2024-01-01T00:00:00Z"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"ganache exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if w3.eth.chain_id == chain_id:
                break
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.1)
    node = Node(proc, url, w3)
    node.rpc("miner_stop")
    return node


def sqrt_price_x96(price: float) -> int:
    return int(math.sqrt(price) * 2**96)


@dataclass
class Market:
    """The deployed contracts, the traders and every router call sent (tx hash → what was sent)."""

    node: Node
    deployer: str
    traders: list
    c: dict = field(default_factory=dict)          # name → contract
    tokens: dict = field(default_factory=dict)     # symbol-ish name → contract
    v2_pairs: dict = field(default_factory=dict)   # (name, name) → pair contract
    v3_pools: dict = field(default_factory=dict)   # (name, name, fee) → pool contract
    sent: dict = field(default_factory=dict)       # tx hash → {"protocol", "method", "amount_in", ...}
    nonces: dict = field(default_factory=dict)
    v3_positions: list = field(default_factory=list)   # NPM token ids
    v2_lp: list = field(default_factory=list)          # (trader, pair) holding LP tokens

    # -- plumbing --------------------------------------------------------------------------------------------
    def _nonce(self, who: str) -> int:
        if who not in self.nonces:
            self.nonces[who] = self.node.w3.eth.get_transaction_count(who)
        n = self.nonces[who]
        self.nonces[who] = n + 1
        return n

    def send(self, fn, who: str, value: int = 0, gas: int = GAS) -> str:
        tx = fn.transact({"from": who, "nonce": self._nonce(who), "gas": gas, "value": value,
                          "gasPrice": 50 * 10**9})
        return "0x" + bytes(tx).hex()

    def deploy(self, name: str, *args) -> object:
        art = artifact(name)
        w3 = self.node.w3
        factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = factory.constructor(*args).transact({"from": self.deployer, "nonce": self._nonce(self.deployer),
                                                  "gas": 12_000_000, "gasPrice": 50 * 10**9})
        self.node.mine()
        rcpt = w3.eth.get_transaction_receipt(tx)
        assert rcpt.status == 1, f"deploy {name} failed"
        return w3.eth.contract(address=rcpt.contractAddress, abi=art["abi"])

    def at(self, name: str, address: str):
        return self.node.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name)["abi"])

    def mine_checked(self, hashes: list) -> None:
        self.node.mine()
        for h in hashes:
            r = self.node.w3.eth.get_transaction_receipt(h)
            assert r.status == 1, f"setup tx {h} reverted"

    # -- deployment ------------------------------------------------------------------------------------------
    @classmethod
    def deploy_all(cls, node: Node, with_v3: bool = True) -> "Market":
        accounts = node.w3.eth.accounts
        m = cls(node, accounts[0], list(accounts[1:6]))
        m.c["weth"] = m.deploy("WETH9")
        m.tokens["WETH"] = m.c["weth"]
        for name in ("A", "B", "C"):
            m.tokens[name] = m.deploy("ERC20", 10**30)
        m.c["v2_factory"] = m.deploy("UniswapV2Factory", m.deployer)
        m.c["v2_router"] = m.deploy("UniswapV2Router02", m.c["v2_factory"].address, m.c["weth"].address)
        if with_v3:
            m.c["v3_factory"] = m.deploy("UniswapV3Factory")
            m.c["v3_router"] = m.deploy("SwapRouter", m.c["v3_factory"].address, m.c["weth"].address)
            m.c["npm"] = m.deploy("NonfungiblePositionManager", m.c["v3_factory"].address, m.c["weth"].address,
                                  m.deployer)
        spenders = [m.c[k].address for k in ("v2_router", "v3_router", "npm") if k in m.c]
        # fund: WETH by deposit, test tokens by transfer; approve every spender
        hashes = []
        for who in [m.deployer, *m.traders]:
            hashes.append(m.send(m.c["weth"].functions.deposit(), who, value=50_000 * E18, gas=100_000))
            if who != m.deployer:
                for name in ("A", "B", "C"):
                    hashes.append(m.send(m.tokens[name].functions.transfer(who, 10**27), m.deployer, gas=100_000))
        m.mine_checked(hashes)
        hashes = []
        for who in [m.deployer, *m.traders]:
            for tok in m.tokens.values():
                for sp in spenders:
                    hashes.append(m.send(tok.functions.approve(sp, MAX_UINT), who, gas=100_000))
        m.mine_checked(hashes)
        return m

    def create_pools(self, with_v3: bool = True) -> None:
        """V2 pairs WETH/A, WETH/B, A/B, WETH/C, B/C (router addLiquidity creates them); V3 WETH/A 0.3 %, A/B 0.05 %."""
        r = self.c["v2_router"].functions
        price = {"WETH": 1.0, "A": 0.5, "B": 0.25, "C": 0.1}  # in WETH
        hashes = []
        for a, b, weth_depth in (("WETH", "A", 400), ("WETH", "B", 300), ("A", "B", 200), ("WETH", "C", 150),
                                 ("B", "C", 100)):
            amt_a, amt_b = int(weth_depth / price[a] * E18), int(weth_depth / price[b] * E18)
            hashes.append(self.send(r.addLiquidity(self.tokens[a].address, self.tokens[b].address, amt_a, amt_b,
                                                   0, 0, self.deployer, DEADLINE), self.deployer, gas=4_000_000))
        self.mine_checked(hashes)
        f = self.c["v2_factory"].functions
        for a, b in (("WETH", "A"), ("WETH", "B"), ("A", "B"), ("WETH", "C"), ("B", "C")):
            addr = f.getPair(self.tokens[a].address, self.tokens[b].address).call()
            self.v2_pairs[(a, b)] = self.at("UniswapV2Pair", addr)
        if not with_v3:
            return
        npm = self.c["npm"].functions
        hashes = []
        for a, b, fee in (("WETH", "A", 3000), ("A", "B", 500)):
            t0, t1 = sorted([self.tokens[a].address, self.tokens[b].address], key=lambda x: int(x, 16))
            p = price[a] / price[b] if t0 == self.tokens[a].address else price[b] / price[a]  # token1 per token0
            hashes.append(self.send(npm.createAndInitializePoolIfNecessary(t0, t1, fee, sqrt_price_x96(p)),
                                    self.deployer, gas=6_000_000))
        self.mine_checked(hashes)
        hashes = []
        for a, b, fee in (("WETH", "A", 3000), ("A", "B", 500)):
            t0, t1 = sorted([self.tokens[a].address, self.tokens[b].address], key=lambda x: int(x, 16))
            addr = self.c["v3_factory"].functions.getPool(t0, t1, fee).call()
            pool = self.at("UniswapV3Pool", addr)
            self.v3_pools[(a, b, fee)] = pool
            spacing = pool.functions.tickSpacing().call()
            tick = pool.functions.slot0().call()[1]
            center = tick // spacing * spacing
            for width, size in ((2, 50), (10, 200), (40, 400), (400, 300)):
                lo, hi = center - width * spacing, center + width * spacing
                hashes.append(self.send(npm.mint((t0, t1, fee, lo, hi, size * E18, size * E18, 0, 0,
                                                  self.deployer, DEADLINE)), self.deployer, gas=1_000_000))
            # one-sided ranges (out of range): crossed when the price moves
            for lo_w, hi_w in ((3, 8), (-8, -3)):
                hashes.append(self.send(npm.mint((t0, t1, fee, center + lo_w * spacing, center + hi_w * spacing,
                                                  100 * E18, 100 * E18, 0, 0, self.deployer, DEADLINE)),
                                        self.deployer, gas=1_000_000))
        self.mine_checked(hashes)
        total = self.c["npm"].functions.totalSupply().call()
        self.v3_positions = [self.c["npm"].functions.tokenByIndex(i).call() for i in range(total)]

    # -- trading ---------------------------------------------------------------------------------------------
    def _amount(self, rng, weth_value: float, token: str) -> int:
        price = {"WETH": 1.0, "A": 0.5, "B": 0.25, "C": 0.1}[token]
        return int(weth_value / price * E18 * rng.uniform(0.5, 1.5))

    def _record(self, tx_hash, protocol, method, exact_input, path, amount_in=None, amount_out_min=None,
                amount_out=None, amount_in_max=None, fees=(), deadline=DEADLINE, recipient=None):
        self.sent[tx_hash] = dict(protocol=protocol, method=method, exact_input=exact_input,
                                  path=[p.lower() for p in path], amount_in=amount_in, amount_out_min=amount_out_min,
                                  amount_out=amount_out, amount_in_max=amount_in_max, fees=list(fees),
                                  deadline=deadline, recipient=recipient.lower() if recipient else None)

    def trade(self, n_blocks: int, seed: int = 0, txs_per_block=(2, 6), with_v3: bool = True) -> None:
        rng = random.Random(seed)
        tok = {k: v.address for k, v in self.tokens.items()}
        r2 = self.c["v2_router"].functions
        v2_paths = [["WETH", "A"], ["A", "WETH"], ["WETH", "B"], ["B", "WETH"], ["A", "B"], ["B", "A"],
                    ["WETH", "A", "B"], ["B", "A", "WETH"], ["WETH", "B", "C"], ["C", "B", "A"]]
        for _ in range(n_blocks):
            for _ in range(rng.randint(*txs_per_block)):
                who = rng.choice(self.traders)
                kind = rng.random()
                deadline = DEADLINE + rng.randint(0, 10**6)
                if kind < 0.40 or not with_v3 and kind < 0.75:
                    self._v2_router_swap(rng, who, r2, v2_paths, tok, deadline)
                elif kind < 0.75:
                    self._v3_router_swap(rng, who, tok, deadline)
                elif kind < 0.87:  # direct swap on the WETH/C pair: transfer in, then swap (two txs)
                    pair = self.v2_pairs[("WETH", "C")]
                    zfo = rng.random() < 0.5
                    if not hasattr(self, "_wc_tokens"):
                        self._wc_tokens = (pair.functions.token0().call(), pair.functions.token1().call())
                    r0, r1, _ = pair.functions.getReserves().call()
                    token_in = self._wc_tokens[0 if zfo else 1]
                    amt = int((r0 if zfo else r1) * rng.uniform(0.001, 0.01))
                    out = (amt * 997 * (r1 if zfo else r0)) // ((r0 if zfo else r1) * 1000 + amt * 997) // 2
                    self.send(self.at("ERC20", token_in).functions.transfer(pair.address, amt), who, gas=100_000)
                    self.send(pair.functions.swap(0 if zfo else out, out if zfo else 0, who, b""), who, gas=200_000)
                elif kind < 0.93:
                    self._v2_liquidity(rng, who, tok)
                elif kind < 0.985 and with_v3:
                    self._v3_liquidity(rng)
                else:  # donation + sync() on B/C: a lone Sync
                    pair = self.v2_pairs[("B", "C")]
                    self.send(self.tokens["B"].functions.transfer(pair.address, 10**18), who, gas=100_000)
                    self.send(pair.functions.sync(), who, gas=100_000)
            self.node.mine()

    # slippage limits from the scripted reference prices (no eth_call per tx: the prices drift far less than 5x)
    PRICE = {"WETH": 1.0, "A": 0.5, "B": 0.25, "C": 0.1}

    def _quote_min(self, amount_in: int, names: list) -> int:
        return int(amount_in * self.PRICE[names[0]] / self.PRICE[names[-1]] / 5)

    def _quote_max(self, amount_out: int, names: list) -> int:
        return int(amount_out * self.PRICE[names[-1]] / self.PRICE[names[0]] * 5)

    def _v2_router_swap(self, rng, who, r2, paths, tok, deadline):
        path_names = rng.choice(paths)
        path = [tok[n] for n in path_names]
        method = rng.choice(["swapExactTokensForTokens", "swapTokensForExactTokens", "eth"])
        if method == "eth" and path_names[0] == "WETH":
            if rng.random() < 0.5:
                value = self._amount(rng, 1.0, "WETH")
                amin = self._quote_min(value, path_names)
                h = self.send(r2.swapExactETHForTokens(amin, path, who, deadline), who, value=value)
                self._record(h, "v2", "swapExactETHForTokens", True, path, amount_in=value, amount_out_min=amin,
                             deadline=deadline, recipient=who)
            else:
                out = self._amount(rng, 1.0, path_names[-1])
                value = self._quote_max(out, path_names)
                h = self.send(r2.swapETHForExactTokens(out, path, who, deadline), who, value=value)
                self._record(h, "v2", "swapETHForExactTokens", False, path, amount_out=out, amount_in_max=value,
                             deadline=deadline, recipient=who)
            return
        if method == "eth" and path_names[-1] == "WETH":
            if rng.random() < 0.5:
                amt = self._amount(rng, 1.0, path_names[0])
                amin = self._quote_min(amt, path_names)
                h = self.send(r2.swapExactTokensForETH(amt, amin, path, who, deadline), who)
                self._record(h, "v2", "swapExactTokensForETH", True, path, amount_in=amt, amount_out_min=amin,
                             deadline=deadline, recipient=who)
            else:
                out = self._amount(rng, 1.0, "WETH")
                amax = self._quote_max(out, path_names)
                h = self.send(r2.swapTokensForExactETH(out, amax, path, who, deadline), who)
                self._record(h, "v2", "swapTokensForExactETH", False, path, amount_out=out, amount_in_max=amax,
                             deadline=deadline, recipient=who)
            return
        if method != "swapTokensForExactTokens":
            amt = self._amount(rng, 1.0, path_names[0])
            amin = self._quote_min(amt, path_names)
            h = self.send(r2.swapExactTokensForTokens(amt, amin, path, who, deadline), who)
            self._record(h, "v2", "swapExactTokensForTokens", True, path, amount_in=amt, amount_out_min=amin,
                         deadline=deadline, recipient=who)
        else:
            out = self._amount(rng, 1.0, path_names[-1])
            amax = self._quote_max(out, path_names)
            h = self.send(r2.swapTokensForExactTokens(out, amax, path, who, deadline), who)
            self._record(h, "v2", "swapTokensForExactTokens", False, path, amount_out=out, amount_in_max=amax,
                         deadline=deadline, recipient=who)

    def _v3_router_swap(self, rng, who, tok, deadline):
        r3 = self.c["v3_router"].functions
        choice = rng.randrange(4)
        if choice < 2:
            a, b, fee = rng.choice([("WETH", "A", 3000), ("A", "WETH", 3000), ("A", "B", 500), ("B", "A", 500)])
            if choice == 0:
                amt = self._amount(rng, 2.0, a)
                h = self.send(r3.exactInputSingle((tok[a], tok[b], fee, who, deadline, amt, 1, 0)), who)
                self._record(h, "v3", "exactInputSingle", True, [tok[a], tok[b]], amount_in=amt, amount_out_min=1,
                             fees=[fee], deadline=deadline, recipient=who)
            else:
                out = self._amount(rng, 2.0, b)
                amax = out * 10
                h = self.send(r3.exactOutputSingle((tok[a], tok[b], fee, who, deadline, out, amax, 0)), who)
                self._record(h, "v3", "exactOutputSingle", False, [tok[a], tok[b]], amount_out=out,
                             amount_in_max=amax, fees=[fee], deadline=deadline, recipient=who)
            return
        names, fees = rng.choice([(["WETH", "A", "B"], [3000, 500]), (["B", "A", "WETH"], [500, 3000])])
        path = [tok[n] for n in names]

        def packed(tokens, fs):
            out = bytes.fromhex(tokens[0][2:])
            for t, f in zip(tokens[1:], fs):
                out += f.to_bytes(3, "big") + bytes.fromhex(t[2:])
            return out
        if choice == 2:
            amt = self._amount(rng, 2.0, names[0])
            h = self.send(r3.exactInput((packed(path, fees), who, deadline, amt, 1)), who)
            self._record(h, "v3", "exactInput", True, path, amount_in=amt, amount_out_min=1, fees=fees,
                         deadline=deadline, recipient=who)
        else:
            out = self._amount(rng, 2.0, names[-1])
            amax = out * 100
            h = self.send(r3.exactOutput((packed(path[::-1], fees[::-1]), who, deadline, out, amax)), who)
            self._record(h, "v3", "exactOutput", False, path, amount_out=out, amount_in_max=amax, fees=fees,
                         deadline=deadline, recipient=who)

    def _v2_liquidity(self, rng, who, tok):
        r2 = self.c["v2_router"].functions
        if self.v2_lp and rng.random() < 0.4:
            owner, (a, b) = self.v2_lp.pop(rng.randrange(len(self.v2_lp)))
            pair = self.v2_pairs[(a, b)]
            lp = pair.functions.balanceOf(owner).call()
            if lp:
                self.send(pair.functions.approve(self.c["v2_router"].address, MAX_UINT), owner, gas=100_000)
                self.send(r2.removeLiquidity(tok[a], tok[b], lp // 2, 0, 0, owner, DEADLINE), owner)
            return
        a, b = rng.choice([("WETH", "A"), ("WETH", "B"), ("A", "B")])
        amt_a = self._amount(rng, 5.0, a)
        pair = self.v2_pairs[(a, b)]
        r0, r1, _ = pair.functions.getReserves().call()
        a_is_0 = pair.functions.token0().call() == tok[a]
        ra, rb = (r0, r1) if a_is_0 else (r1, r0)
        amt_b = amt_a * rb // ra * 2  # the router takes the optimal amount
        self.send(r2.addLiquidity(tok[a], tok[b], amt_a, amt_b, 0, 0, who, DEADLINE), who)
        self.v2_lp.append((who, (a, b)))

    def _v3_liquidity(self, rng):
        npm = self.c["npm"].functions
        token_id = rng.choice(self.v3_positions)
        if rng.random() < 0.5:
            liq = npm.positions(token_id).call()[7]
            if liq > 10:
                self.send(npm.decreaseLiquidity((token_id, liq // 5, 0, 0, DEADLINE)), self.deployer)
                self.send(npm.collect((token_id, self.deployer, 2**128 - 1, 2**128 - 1)), self.deployer)
        else:
            self.send(npm.increaseLiquidity((token_id, 20 * E18, 20 * E18, 0, 0, DEADLINE)), self.deployer)

    # -- addresses for the ingest ----------------------------------------------------------------------------
    def factories(self) -> list[str]:
        return [self.c[k].address.lower() for k in ("v2_factory", "v3_factory") if k in self.c]

    def pool_addresses(self) -> list[str]:
        return [p.address.lower() for p in (*self.v2_pairs.values(), *self.v3_pools.values())]
