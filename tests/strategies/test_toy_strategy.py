"""Adding a strategy is one module and one config file (docs/architecture.md, "Add a strategy"): a toy strategy built
exactly as that section says, registered for this test only (its module injected as gpubt.strategies.toy, its
config file in a temporary Hydra search path), run end to end on the hand market through the real run(cfg)."""
import json
import sys
import types

import pyarrow as pa
import pyarrow.parquet as pq

from gpubt import schema
from gpubt.exact import v2 as exact_v2
from gpubt.strategies.base import Strategy, StrategyResult
from tests.cli import run_inprocess

from ..conftest import hand_market, write_market

E18 = 10**18
TOY_YAML = """\
# @package strategy.toy
# Toy one-pool back-run (tests/strategies/test_toy_strategy.py)
name: toy
amount_in_eth: 1.0
gas_units: 100000
"""


def _pre_swap_reserves(event: dict) -> tuple[int, int]:
    """A V2 swap event's reserves before it: the reserves after, less what came in, plus what went out."""
    r0 = int(event["reserve0"]) - int(event["amount0_in"]) + int(event["amount0_out"])
    r1 = int(event["reserve1"]) - int(event["amount1_in"]) + int(event["amount1_out"])
    return r0, r1


class ToyStrategy(Strategy):
    """After each swap that buys WETH from a V2 WETH pool, sell `amount_in_eth` WETH back into that pool; the
    tokens received are valued at the pool's price before the swap (the back-run bets the impact reverts)."""

    name = "toy"

    def __init__(self, cfg, dataset, backend, gas, min_profit_wei: int):
        super().__init__(cfg, dataset, backend, gas, min_profit_wei)
        symbols = dataset.tokens.column("symbol").to_pylist()
        self.weth = dataset.tokens.column("token_id").to_pylist()[symbols.index("WETH")]
        self.pools = {p["pool_id"]: p for p in dataset.pools.to_pylist()}
        self.amount_in = int(float(cfg.amount_in_eth) * E18)
        self.gas_units = int(cfg.gas_units)

    def evaluate(self, batch, tables) -> StrategyResult:
        base_fee = {b["block_number"]: int(b["base_fee_wei"]) for b in tables.blocks.to_pylist()}
        opportunities = {f.name: [] for f in schema.OPPORTUNITIES}
        trades = []
        for event in tables.events.to_pylist():
            pool = self.pools[event["pool_id"]]
            if event["kind"] != "swap" or pool["protocol"] != "v2" or self.weth not in (pool["token0"],
                                                                                        pool["token1"]):
                continue
            weth_is_0 = pool["token0"] == self.weth
            bought_weth = int(event["amount0_out" if weth_is_0 else "amount1_out"]) > 0
            if not bought_weth:
                continue
            r0, r1 = int(event["reserve0"]), int(event["reserve1"])
            weth_reserve, token_reserve = (r0, r1) if weth_is_0 else (r1, r0)
            amount_out = exact_v2.get_amount_out(self.amount_in, weth_reserve, token_reserve, pool["fee_ppm"])
            b0, b1 = _pre_swap_reserves(event)
            weth_before, token_before = (b0, b1) if weth_is_0 else (b1, b0)
            gross_wei = amount_out * weth_before // token_before - self.amount_in
            gas_price = base_fee[event["block_number"]] + self.gas.priority_fee_wei
            gas_cost = self.gas_units * gas_price
            net_wei = gross_wei - gas_cost
            for key, value in (("strategy", self.name), ("block_number", event["block_number"]),
                               ("tx_index", event["tx_index"]), ("path_id", event["pool_id"]),
                               ("start_token", self.weth), ("hops", 1),
                               ("screen_amount_in", float(self.amount_in)),
                               ("screen_gross_profit_raw", float(gross_wei)),
                               ("screen_net_profit_wei", float(net_wei))):
                opportunities[key].append(value)
            self.stats["screened"] += 1
            trade = {
                "block_number": event["block_number"], "tx_index": event["tx_index"],
                "path_id": event["pool_id"], "start_token": self.weth, "pools": [event["pool_id"]],
                "zero_for_one": [weth_is_0], "amount_in": self.amount_in, "amount_out": amount_out,
                "gross_profit_raw": gross_wei, "gross_profit_wei": gross_wei, "gas_units": self.gas_units,
                "gas_price_wei": gas_price, "gas_cost_wei": gas_cost, "net_profit_wei": net_wei,
                "net_profit_usd": net_wei / E18 * float(batch.eth_usd[event["block_number"] - batch.first_block]),
                "screen_net_profit_wei": float(net_wei),
                "detail": json.dumps({"pre_swap_reserves": [str(b0), str(b1)]}),
            }
            if self.takes(trade, float(net_wei)):  # the interface's rule: the exact net profit clears the threshold
                trades.append(trade)
        return StrategyResult(pa.Table.from_pydict(opportunities, schema=schema.OPPORTUNITIES), trades)


def _register_toy(monkeypatch, tmp_path) -> str:
    """The two things a new strategy adds, for this test only: gpubt/strategies/toy.py (as an injected module)
    and configs/strategy/toy.yaml (in a search path Hydra also reads). Returns the search-path override."""
    module = types.ModuleType("gpubt.strategies.toy")
    module.ToyStrategy = ToyStrategy
    monkeypatch.setitem(sys.modules, "gpubt.strategies.toy", module)
    (tmp_path / "configs" / "strategy").mkdir(parents=True)
    (tmp_path / "configs" / "strategy" / "toy.yaml").write_text(TOY_YAML)
    return f"hydra.searchpath=[file://{tmp_path / 'configs'}]"


def _expected_net_wei(trade: dict, tables: dict) -> int:
    """The toy trade's net profit from the dataset alone: the pool after the swap at (block, tx), exact V2 math."""
    (event,) = [e for e in tables["events"].to_pylist()
                if (e["block_number"], e["tx_index"], e["pool_id"]) == (trade["block_number"], trade["tx_index"],
                                                                       trade["path_id"])]
    pool = tables["pools"].to_pylist()[event["pool_id"]]
    assert pool["token0"] == 0  # WETH is token 0 of every WETH pool of the hand market
    out = exact_v2.get_amount_out(E18, int(event["reserve0"]), int(event["reserve1"]), pool["fee_ppm"])
    weth_before = int(event["reserve0"]) + int(event["amount0_out"]) - int(event["amount0_in"])
    token_before = int(event["reserve1"]) + int(event["amount1_out"]) - int(event["amount1_in"])
    (block,) = [b for b in tables["blocks"].to_pylist() if b["block_number"] == trade["block_number"]]
    gas_cost = 100_000 * (int(block["base_fee_wei"]) + 10**9)  # config.yaml gas.priority_fee_gwei: 1
    return out * weth_before // token_before - E18 - gas_cost


def test_a_toy_strategy_runs_end_to_end_from_one_module_and_one_config_file(monkeypatch, tmp_path):
    searchpath = _register_toy(monkeypatch, tmp_path)
    tables = hand_market()
    data = write_market(tmp_path / "hand", tables)
    # replay: the toy prices from the events table (history), so every point must see history
    result = run_inprocess("backend=cpu", "data=parquet", f"data.path={data}", "progress=false",
                           "report.enabled=false", "strategy=[arbitrage,toy]", "thresholds.min_profit_eth=0",
                           "competition=none",
                           "execution=replay", searchpath, f"out_dir={tmp_path / 'out'}")
    summary = result.summary
    assert summary["run"]["strategies"] == ["arbitrage", "toy"]
    trades = pq.read_table(result.trades_path).to_pylist()
    toy = [t for t in trades if t["strategy"] == "toy"]
    # the hand market's swaps that buy WETH (block, tx, pool): 3,000 LINK in on pool 2, 90,000 USDC on pool 1,
    # 150,000 USDC on pool 0
    assert {(t["block_number"], t["tx_index"], t["path_id"]) for t in toy} == {(101, 0, 2), (102, 0, 1), (103, 1, 0)}
    for t in toy:
        assert int(t["net_profit_wei"]) == _expected_net_wei(t, tables) > 0
        assert int(t["net_profit_wei"]) == int(t["gross_profit_wei"]) - int(t["gas_cost_wei"])
    assert summary["by_strategy"]["toy"]["trades"] == len(toy)
    # its own counts reach summary.json, as the arbitrage strategy's do
    assert summary["timing"]["by_strategy"]["toy"]["trades"] == len(toy)
    assert summary["timing"]["by_strategy"]["toy"]["screened"] == 3
    assert summary["timing"]["by_strategy"]["arbitrage"]["screened"] == summary["metrics"]["pairs_evaluated"] - 3
    assert summary["by_strategy"]["arbitrage"]["trades"] == len(trades) - len(toy) > 0
    opportunities = pq.read_table(result.opportunities_path).to_pylist()
    assert sum(o["strategy"] == "toy" for o in opportunities) == summary["by_strategy"]["toy"]["opportunities"] == 3
    assert "toy" in result.console


def test_a_proposal_priced_on_a_state_our_trades_changed_is_not_sent(monkeypatch, tmp_path):
    """Under execution=counterfactual the toy's trades on pools the arbitrage trades forked were priced on
    history's state, which is gone, and the toy offers no way to price them again (`_reprice`): the ordered pass
    drops them rather than execute them on a state they were not priced on."""
    searchpath = _register_toy(monkeypatch, tmp_path)
    data = write_market(tmp_path / "hand", hand_market())
    result = run_inprocess("backend=cpu", "data=parquet", f"data.path={data}", "progress=false",
                           "report.enabled=false", "strategy=[arbitrage,toy]", "thresholds.min_profit_eth=0",
                           "competition=none",
                           searchpath, f"out_dir={tmp_path / 'out'}")
    execution = result.summary["execution"]
    toy = result.summary["timing"]["by_strategy"]["toy"]
    assert execution["mode"] == "counterfactual" and execution["stale_dropped"] >= 1
    # each toy proposal lost to the arbitrage bundle at its point (a shared pool) or was stale later
    assert toy["trades"] == 3 and toy["executed"] == 0 and execution["conflicts"] + execution["stale_dropped"] >= 3
