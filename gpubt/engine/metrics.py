"""Trading metrics reduced from the trades table; every figure is computed here from exact amounts."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

WEI_PER_ETH = 10**18


def summarize_trades(trades: pa.Table, n_opportunities: int, n_pairs: int, n_blocks: int) -> dict:
    """Counts, exact profit totals (wei as decimal strings, ETH as floats) and per-trade statistics."""
    net = [int(v) for v in trades.column("net_profit_wei").to_pylist()]
    gross = [int(v) for v in trades.column("gross_profit_wei").to_pylist()]
    gas = [int(v) for v in trades.column("gas_cost_wei").to_pylist()]
    usd = trades.column("net_profit_usd").to_numpy() if trades.num_rows else np.zeros(0)
    n = len(net)
    net_total = sum(net)
    wins = sum(1 for v in net if v > 0)
    net_eth = np.asarray(net, dtype=np.float64) / WEI_PER_ETH
    return {
        "blocks": n_blocks,
        "pairs_evaluated": n_pairs,
        "opportunities": n_opportunities,
        "trades": n,
        "net_profit_wei": str(net_total),
        "gross_profit_wei": str(sum(gross)),
        "gas_cost_wei": str(sum(gas)),
        "net_profit_eth": net_total / WEI_PER_ETH,
        "net_profit_usd": float(usd.sum()),
        "mean_profit_per_trade_eth": float(net_eth.mean()) if n else 0.0,
        "median_profit_per_trade_eth": float(np.median(net_eth)) if n else 0.0,
        "win_rate": wins / n if n else 0.0,
        "gas_units": int(trades.column("gas_units").to_numpy().sum()) if n else 0,
    }
