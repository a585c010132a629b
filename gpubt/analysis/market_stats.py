"""A dataset's market statistics beside the published mainnet ranges (`gpubt market-stats DATASET`).

`market_stats(dataset)` reads a gpubt dataset (synthetic or ingested) partition by partition (blocks, labels and
prices validated by `Dataset.read_partition`; events in the five columns used, their block range and pool ids
checked), and returns one row per figure of PUBLISHED: the measured value, the published range,
whether the value lies in it, and the source. Where the dataset lacks what a statistic needs, the value is None and
`detail` says why ("n/a (...)" in the table). Definitions and citations: docs/market.md.

How a single published figure becomes a range (the `basis` of each row): a rate per block or a USD size is taken
within a factor of two (the studies' own windows differ by more: atomic arbitrage is 0.13 per block on Uniswap V2
in 2020-21 and 0.7 on all DEXes to 2022); a share within +-10 percentage points; a figure the source gives as a
range is that range.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpubt import schema

BLOCKS_PER_DAY = 7_200
SEARCHER_WINDOW_BLOCKS = 14 * BLOCKS_PER_DAY  # the searcher counts are over 14-day windows
ATOMIC_KINDS = ("arbitrage", "sandwich", "liquidation")  # what Zeromev counts as atomic MEV
LABEL_KINDS = ("arbitrage", "sandwich", "jit", "liquidation", "cexdex")
# sources whose labels come from gpubt's labeler (gpubt/data/labeler.py): kinds it does not look for are n/a
# there, not zero
INGESTED_SOURCES = ("rpc", "cryo")


class Published(NamedTuple):
    """One published mainnet figure and the range a dataset's statistic is compared with."""
    key: str
    statistic: str
    low: float | None        # None: no published figure to compare with (the value is shown alone)
    high: float | None
    unit: str
    basis: str               # the published figure, and how the range was made from it
    sources: tuple[str, ...]  # full citations, keys of SOURCES


def _x2(value: float) -> tuple[float, float]:
    return value / 2, value * 2


def _pp10(share: float) -> tuple[float, float]:
    return max(0.0, share - 0.10), min(1.0, share + 0.10)


# the sources: full citation → the short name the console table shows
SOURCES = {
    "McLaughlin et al., USENIX Security 2023 (atomic arbitrage on all DEXes, Feb 2020-Jul 2022)": "McLaughlin 2023",
    "Wang et al., \"Cyclic Arbitrage in DEXs\", arXiv:2105.02784 (Uniswap V2, May 2020-Apr 2021)": "Wang 2021",
    "Zeromev labels, winnsterx/searcher_database (three 14-day windows, Oct-Dec 2023)": "Zeromev 2023",
    "EigenPhi (sandwiches, 30 days to Jan 2023)": "EigenPhi 2023",
    "Wu, Sui, Thiery, Pai, arXiv:2507.13023 (CEX-DEX arbitrage, Aug 2023-Mar 2025)": "Wu 2025",
    "Uniswap Labs, \"JIT liquidity\" (May 2021-Jul 2022)": "Uniswap Labs",
    "Qin et al., arXiv:2101.05511 (liquidations on Aave/Compound/dYdX/Maker)": "Qin 2021",
    "Chemaya et al., arXiv:2312.02660 data (Uniswap swaps, 2021-22)": "Chemaya 2023",
    "EIP-1559 (30M gas limit, 15M target, base fee +-12.5 % per block)": "EIP-1559",
    "Block Scholes (share of blocks without an MEV payment)": "Block Scholes",
}
_MCLAUGHLIN, _WANG, _ZEROMEV, _EIGENPHI, _WU, _JIT, _QIN, _CHEMAYA, _EIP1559, _BLOCK_SCHOLES = SOURCES

# The one table of published figures (7,200 blocks a day).
PUBLISHED: tuple[Published, ...] = (
    Published("arbitrage_per_block", "arbitrage labels per block", 0.13, 0.7, "per block",
              "0.13 (Uniswap V2, May 2020-Apr 2021) to 0.7 (all DEXes, 3.8M Feb 2020-Jul 2022)",
              (_WANG, _MCLAUGHLIN)),
    Published("sandwich_per_block", "sandwich labels per block", *_x2(0.38), "per block",
              "82.5k in 30 days to Jan 2023 = 0.38, x/2..x2", (_EIGENPHI,)),
    Published("jit_per_block", "jit labels per block", *_x2(18 / BLOCKS_PER_DAY), "per block",
              "18 per day (May 2021-Jul 2022) = 0.0025, x/2..x2", (_JIT,)),
    Published("liquidation_per_block", "liquidation labels per block", *_x2(28 / BLOCKS_PER_DAY), "per block",
              "28 per day (Aave/Compound/dYdX/Maker) = 0.0039, x/2..x2", (_QIN,)),
    Published("cexdex_per_block", "cexdex labels per block", *_x2(1.7), "per block",
              "1.7 (Aug 2023-Mar 2025, 19 searchers), x/2..x2", (_WU,)),
    Published("atomic_tx_per_block", "atomic MEV txs per block", 1.1, 1.9, "per block",
              "1.1-1.9 landed (three 14-day windows, Oct-Dec 2023); here arbitrage + liquidation + 2 x sandwich",
              (_ZEROMEV,)),
    Published("blocks_without_mev", "blocks without labeled MEV", *_pp10(0.52), "share",
              "52 % of blocks carry no MEV payment, +-10 pp", (_BLOCK_SCHOLES,)),
    Published("arbitrage_profit_usd", "arbitrage profit, mean", *_x2(84.0), "USD",
              "mean ~$84, x/2..x2 (labels: gross, before gas)", (_MCLAUGHLIN,)),
    Published("sandwich_profit_usd", "sandwich profit (revenue), mean", *_x2(67.0), "USD",
              "mean revenue ~$67 (profit ~$10 after ~85 % cost), x/2..x2 (labels: gross)", (_EIGENPHI,)),
    Published("cexdex_profit_usd", "cexdex profit, mean", *_x2(32.0), "USD",
              "mean ~$32, x/2..x2", (_WU,)),
    Published("liquidation_profit_usd", "liquidation profit, mean", *_x2(1260.0), "USD",
              "mean ~$1.26k (bonus 5-15 %), x/2..x2", (_QIN,)),
    Published("arbitrage_2_3_pools", "arbitrages through 2-3 pools", *_pp10(0.91), "share",
              "91 % touch 2-3 exchanges, +-10 pp", (_MCLAUGHLIN,)),
    Published("arbitrage_profit_weth", "arbitrages taking profit in WETH", 0.92, 0.98, "share",
              "92 % take profit in WETH; 98 % start from ETH", (_MCLAUGHLIN, _WANG)),
    Published("arbitrage_gas_share", "arbitrage gas at base fee / revenue", *_pp10(0.246), "share",
              "24.6 % of revenue paid as gas, +-10 pp (here base fee only: a lower bound)", (_WANG,)),
    Published("arbitrage_net_negative", "arbitrages losing at base fee", *_pp10(0.071), "share",
              "7.1 % net negative, +-10 pp (here base fee only)", (_WANG,)),
    Published("top1_searcher_share", "top searcher's share of atomic MEV", 0.30, 0.37, "share",
              "30-37 % of atomic MEV txs", (_ZEROMEV,)),
    Published("top5_searcher_share", "top 5 searchers' share of atomic MEV", 0.63, 0.65, "share",
              "63-65 % of atomic MEV txs", (_ZEROMEV,)),
    Published("searchers_14d", "atomic MEV searchers in 14 days", 262, 314, "searchers",
              "262-314 searcher contracts per 14-day window", (_ZEROMEV,)),
    Published("bribe_per_tx_eth", "bribe per atomic MEV tx", 0.003, 0.005, "ETH",
              "0.003-0.005 ETH per tx (here the bid plus the priority fee, LABELS bribe_wei)", (_ZEROMEV,)),
    Published("sandwich_cost_share", "sandwich gas at base fee + bribe / revenue", *_pp10(0.85), "share",
              "cost ~85 % of revenue (profit ~$10 on ~$67), +-10 pp", (_EIGENPHI,)),
    Published("cexdex_builder_share", "cexdex bribes / profit", *_pp10(0.615), "share",
              "61.5 % of the extracted value paid to builders, +-10 pp", (_WU,)),
    Published("swaps_per_block", "swaps per block", 5.0, 6.0, "per block",
              "39-41k Uniswap swaps per day (2021-22) = 5-6; here the swaps on Uniswap V2 and V3 pools", (_CHEMAYA,)),
    Published("swap_usd_median", "swap size, median", 2300.0, 4000.0, "USD",
              "median Uniswap swap $2.3k-4.0k (2021-22); here on Uniswap V2 and V3 pools", (_CHEMAYA,)),
    Published("base_fee_step_max", "base fee change per block, max |step|", 0.0, 0.125, "fraction",
              "base fee moves at most +-12.5 % per block", (_EIP1559,)),
    Published("base_fee_eip1559_exact", "base fee steps following EIP-1559 exactly", 1.0, 1.0, "share",
              "next = base + base x (gas_used - target) / target / 8, target = gas_limit / 2", (_EIP1559,)),
    Published("gas_used_ratio", "gas used / gas limit, mean", *_pp10(0.5), "ratio",
              "15M target of a 30M limit = 0.5, +-10 pp", (_EIP1559,)),
    Published("gas_limit", "gas limit, mean", 29_700_000, 30_300_000, "gas",
              "30M (2023), +-1 %", (_EIP1559,)),
    Published("v3_pool_share", "V3 share of pools", None, None, "share",
              "no published figure in this table: shown, not compared", ()),
)
PUBLISHED_BY_KEY = {p.key: p for p in PUBLISHED}

# What the synthetic presets are calibrated to (gpubt/data/synthetic.py): these statistics sit inside their published
# range on `small` and the first mainnet-month partition (tests/data/test_market_stats.py, bench/market_calibration.py).
# The other rows are measured and shown beside their range but not yet met; docs/market.md says why, row by row.
CALIBRATED = ("arbitrage_per_block", "sandwich_per_block", "cexdex_per_block", "atomic_tx_per_block",
              "blocks_without_mev", "top1_searcher_share", "top5_searcher_share", "arbitrage_profit_usd",
              "sandwich_profit_usd", "cexdex_profit_usd", "arbitrage_gas_share", "arbitrage_2_3_pools",
              "arbitrage_profit_weth", "arbitrage_net_negative", "swaps_per_block", "swap_usd_median",
              "base_fee_step_max", "base_fee_eip1559_exact", "gas_used_ratio", "gas_limit", "jit_per_block",
              "liquidation_per_block", "liquidation_profit_usd", "sandwich_cost_share", "cexdex_builder_share")


# ---------------------------------------------------------------------------------------------------------------
# prices: the reference USD samples, forward-filled per token


class _Prices:
    """Reference USD price of (token, block): the latest sample at or before the block, carried across partitions
    (NaN where a token has no sample yet)."""

    def __init__(self, n_tokens: int):
        self.carried = np.full(n_tokens, np.nan)
        self.carried_before = self.carried.copy()
        self.keys = np.zeros(0, np.int64)
        self.values = np.zeros(0)

    def load(self, prices: pa.Table) -> None:
        """Take one partition's samples (call before `lookup` on its blocks, partitions in order)."""
        self.carried_before = self.carried.copy()
        token = prices.column("token_id").to_numpy().astype(np.int64)
        block = prices.column("block_number").to_numpy()
        keys = (token << 40) | block
        order = np.argsort(keys, kind="stable")
        self.keys, self.values = keys[order], prices.column("price_usd").to_numpy()[order]
        if len(order):
            sorted_token = token[order]
            last = np.r_[sorted_token[1:] != sorted_token[:-1], True]
            self.carried[sorted_token[last]] = self.values[last]

    def lookup(self, token: np.ndarray, block: np.ndarray) -> np.ndarray:
        """float64 USD per whole token for each (token, block) of the loaded partition."""
        token = np.asarray(token, np.int64)
        query = (token << 40) | np.asarray(block, np.int64)
        at = np.searchsorted(self.keys, query, side="right") - 1
        found = at >= 0
        found[found] = (self.keys[at[found]] >> 40) == token[found]
        out = self.carried_before[token]
        out[found] = self.values[at[found]]
        return out


# ---------------------------------------------------------------------------------------------------------------
# the pass over the partitions


class _Totals:
    """What the pass accumulates, partition by partition (a few arrays of one value per swap or label)."""

    def __init__(self):
        self.n_blocks = 0
        self.blocks_with_labels = 0
        self.label_count = Counter()
        self.label_profit_usd = {k: [] for k in LABEL_KINDS}
        self.label_unpriced = Counter()
        self.arb_pools = []
        self.arb_weth = []
        self.arb_gas_usd = []
        self.arb_revenue_usd = []
        self.searcher_atomic = Counter()
        self.atomic_labels = 0
        self.atomic_null_searcher = 0
        self.searchers_window = set()
        self.bribe_eth = 0.0    # paid to builders by the atomic labels that say (bribe_wei) ...
        self.bribe_txs = 0      # ... in this many transactions (a sandwich is two)
        self.paid_usd = {k: [] for k in ("sandwich", "cexdex")}      # per label with a bribe and a priced profit:
        self.paid_revenue_usd = {k: [] for k in ("sandwich", "cexdex")}   # its cost, and its revenue
        self.swaps = 0          # on Uniswap pools (what the published count counts)
        self.swaps_all = 0      # on every venue
        self.swap_usd = []
        self.base_fee_steps = []
        self.base_fee_exact = 0
        self.base_fee_checked = 0
        self.gas_ratio_sum = 0.0
        self.gas_limit_sum = 0
        self.previous_block = None   # (base_fee_wei, gas_used, gas_limit) of the last block read


def _eip1559_next(base_fee: np.ndarray, gas_used: np.ndarray, gas_limit: np.ndarray) -> np.ndarray:
    """The base fee EIP-1559 sets after each block (int64 without overflow: base x delta split by the target)."""
    target = np.maximum(gas_limit // 2, 1)
    delta = np.abs(gas_used - target)
    q, r = base_fee // target, base_fee % target
    change = (q * delta + (r * delta) // target) // 8
    return np.where(gas_used > target, base_fee + np.maximum(change, 1),
                    np.where(gas_used < target, base_fee - change, base_fee))


def _blocks(totals: _Totals, blocks: pa.Table) -> np.ndarray:
    """Block statistics of one partition; returns its base fees (wei per gas, one per block)."""
    base_fee = blocks.column("base_fee_wei").to_numpy().astype(np.int64)
    gas_used = blocks.column("gas_used").to_numpy().astype(np.int64)
    gas_limit = blocks.column("gas_limit").to_numpy().astype(np.int64)
    totals.n_blocks += len(base_fee)
    with np.errstate(divide="ignore", invalid="ignore"):
        totals.gas_ratio_sum += float(np.sum(np.where(gas_limit > 0, gas_used / gas_limit, 0.0)))
    totals.gas_limit_sum += int(gas_limit.sum())
    if totals.previous_block is not None:  # the step from the previous partition's last block
        parent_fee, parent_used, parent_limit = (np.r_[np.int64(before), now[:-1]] for before, now in
                                                 zip(totals.previous_block, (base_fee, gas_used, gas_limit)))
        child = base_fee
    else:
        parent_fee, parent_used, parent_limit, child = base_fee[:-1], gas_used[:-1], gas_limit[:-1], base_fee[1:]
    priced = parent_fee > 0  # pre-London blocks carry no base fee
    totals.base_fee_steps.append(np.abs(child[priced] / parent_fee[priced] - 1.0))
    expected = _eip1559_next(parent_fee[priced], parent_used[priced], parent_limit[priced])
    totals.base_fee_exact += int(np.sum(expected == child[priced]))
    totals.base_fee_checked += int(priced.sum())
    if len(base_fee):
        totals.previous_block = (int(base_fee[-1]), int(gas_used[-1]), int(gas_limit[-1]))
    return base_fee


EVENT_COLUMNS = ["block_number", "pool_id", "kind", "amount0_in", "amount1_in"]


def _read_events(dataset, part) -> pa.Table:
    """The event columns the statistics use, typed by the schema, their block range and pool ids checked: reading
    every column to validate all of them (what `gpubt run` does) is ten times the IO on a mainnet-month dataset."""
    events = dataset.read_range("events", part[0], part[1], columns=EVENT_COLUMNS)
    source = str(dataset.path("events", part))
    schema.check_partition_rows(events, part[0], part[1], source)
    pool_id = events.column("pool_id")
    unknown = pc.invert(pc.fill_null(pc.is_in(pool_id, value_set=dataset.pools.column("pool_id")), False))
    if pc.any(unknown).as_py():
        row = int(pc.index(unknown, True).as_py())
        raise schema.SchemaError(f"{source} row {row}: pool_id = {pool_id[row]} is not a pool_id of the pools table")
    return events


def _swaps(totals: _Totals, events: pa.Table, pool_tokens: np.ndarray, uniswap: np.ndarray, decimals: np.ndarray,
           prices: _Prices) -> None:
    """Swap counts (every venue; Uniswap pools) and the USD value each swap on a Uniswap pool paid in (amount0_in
    and amount1_in at the reference prices)."""
    swaps = events.filter(pc.fill_null(pc.equal(events.column("kind"), "swap"), False))
    totals.swaps_all += swaps.num_rows
    swaps = swaps.filter(uniswap[swaps.column("pool_id").to_numpy()])
    totals.swaps += swaps.num_rows
    if not swaps.num_rows:
        return
    pool = swaps.column("pool_id").to_numpy()
    block = swaps.column("block_number").to_numpy()
    usd = np.zeros(swaps.num_rows)
    for side in (0, 1):
        token = pool_tokens[pool, side]
        # float64 of the decimal (within an ulp of the exact value; nulls NaN): enough for a median in USD
        amount = pc.cast(swaps.column(f"amount{side}_in"), pa.float64()).to_numpy(zero_copy_only=False)
        paid = amount > 0
        usd[paid] += amount[paid] / 10.0 ** decimals[token[paid]] * prices.lookup(token[paid], block[paid])
    totals.swap_usd.append(usd)


def _labels(totals: _Totals, labels: pa.Table, base_fee: np.ndarray, first_block: int, window_end: int,
            decimals: np.ndarray, prices: _Prices, weth: int | None) -> None:
    """Label counts by kind, USD profit per label, arbitrage structure, searchers."""
    if not labels.num_rows:
        return
    kind = labels.column("kind")
    block = labels.column("block_number").to_numpy()
    totals.blocks_with_labels += len(np.unique(block))
    for value, count in zip(*pc.value_counts(kind).flatten()):
        totals.label_count[value.as_py()] += count.as_py()
    token = labels.column("profit_token")
    token_valid = pc.is_valid(token).to_numpy(zero_copy_only=False)
    token_ids = pc.fill_null(token, 0).to_numpy().astype(np.int64)
    profit_raw = pc.cast(labels.column("profit_raw"), pa.float64()).to_numpy(zero_copy_only=False)  # null: NaN
    profit_usd = np.where(token_valid, profit_raw / 10.0 ** decimals[token_ids] * prices.lookup(token_ids, block),
                          np.nan)
    priced = np.isfinite(profit_usd)
    is_kind = {k: pc.equal(kind, k).to_numpy(zero_copy_only=False) for k in LABEL_KINDS}
    for k, mine in is_kind.items():
        totals.label_profit_usd[k].append(profit_usd[mine & priced])
        totals.label_unpriced[k] += int(np.sum(mine & ~priced))

    if weth is not None:   # ETH's USD price, and each label's gas at the base fee in USD
        eth_usd = prices.lookup(np.full(len(block), weth), block)
        gas = pc.fill_null(labels.column("gas_used"), 0).to_numpy().astype(np.float64)
        gas_usd = gas * base_fee[block - first_block] * 1e-18 * eth_usd
    arb = is_kind["arbitrage"]
    if arb.any():
        n_pools = pc.fill_null(pc.list_value_length(labels.column("pools")), 0).to_numpy()
        totals.arb_pools.append(n_pools[arb])
        if weth is not None:
            totals.arb_weth.append(token_valid[arb] & (token_ids[arb] == weth))
            keep = arb & priced & np.isfinite(gas_usd)
            totals.arb_gas_usd.append(gas_usd[keep])
            totals.arb_revenue_usd.append(profit_usd[keep])

    if "bribe_wei" in labels.column_names and weth is not None:
        bribe_eth = pc.cast(labels.column("bribe_wei"), pa.float64()).to_numpy(zero_copy_only=False) * 1e-18
        paid = np.isfinite(bribe_eth)
        for k in ATOMIC_KINDS:
            mine = is_kind[k] & paid
            totals.bribe_eth += float(bribe_eth[mine].sum())
            totals.bribe_txs += int(mine.sum()) * (2 if k == "sandwich" else 1)
        cost_usd = {"sandwich": bribe_eth * eth_usd + gas_usd, "cexdex": bribe_eth * eth_usd}
        for k, cost in cost_usd.items():
            keep = is_kind[k] & paid & priced & np.isfinite(cost)
            totals.paid_usd[k].append(cost[keep])
            totals.paid_revenue_usd[k].append(profit_usd[keep])

    atomic = np.logical_or.reduce([is_kind[k] for k in ATOMIC_KINDS])
    searcher = labels.column("searcher")
    named = atomic & pc.is_valid(searcher).to_numpy(zero_copy_only=False)
    totals.atomic_labels += int(atomic.sum())
    totals.atomic_null_searcher += int(np.sum(atomic & ~named))
    if named.any():
        names = searcher.filter(pa.array(named))
        for value, count in zip(*pc.value_counts(names).flatten()):
            totals.searcher_atomic[value.as_py()] += count.as_py()
        in_window = named & (block < window_end)
        if in_window.any():
            totals.searchers_window.update(pc.unique(searcher.filter(pa.array(in_window))).to_pylist())


def _measure(dataset) -> tuple[_Totals, dict]:
    """One pass over every partition; returns the totals and the dataset's static facts."""
    tokens, pools = dataset.tokens, dataset.pools
    token_ids = tokens.column("token_id").to_numpy()
    n_tokens = int(token_ids.max()) + 1 if len(token_ids) else 1
    decimals = np.zeros(n_tokens)
    decimals[token_ids] = tokens.column("decimals").to_numpy()
    symbols = [str(s).upper() for s in tokens.column("symbol").to_pylist()]
    weth = next((int(t) for t, s in zip(token_ids, symbols) if s == "WETH"), None)
    pool_ids = pools.column("pool_id").to_numpy()
    pool_tokens = np.zeros((int(pool_ids.max()) + 1 if len(pool_ids) else 1, 2), np.int64)
    pool_tokens[pool_ids, 0] = pools.column("token0").to_numpy()
    pool_tokens[pool_ids, 1] = pools.column("token1").to_numpy()
    # the published swap figures are Uniswap's: its V2 and V3 pools (venue uniswap_v2, uniswap_v3), not its forks
    uniswap = np.zeros(len(pool_tokens), np.bool_)
    uniswap[pool_ids] = [str(v).startswith("uniswap") for v in pools.column("venue").to_pylist()]

    totals = _Totals()
    prices = _Prices(n_tokens)
    window_end = dataset.first_block + SEARCHER_WINDOW_BLOCKS
    for part in dataset.partitions:
        base_fee = _blocks(totals, dataset.read_partition("blocks", part))
        prices.load(dataset.read_partition("prices", part))
        _swaps(totals, _read_events(dataset, part), pool_tokens, uniswap, decimals, prices)
        _labels(totals, dataset.read_partition("labels", part), base_fee, part[0], window_end, decimals, prices,
                weth)
    facts = {
        "source": dataset.manifest.get("source"), "weth": weth,
        "n_pools": pools.num_rows, "n_uniswap_pools": int(uniswap.sum()),
        "n_v3_pools": int(pc.sum(pc.equal(pools.column("protocol"), "v3")).as_py() or 0),
        "span_blocks": dataset.last_block - dataset.first_block + 1,
    }
    return totals, facts


# ---------------------------------------------------------------------------------------------------------------
# rows


def _row(key: str, value, detail: str = "") -> dict:
    """One result row: the measured value (None: n/a, `detail` says why) beside its published range."""
    pub = PUBLISHED_BY_KEY[key]
    compared = value is not None and pub.low is not None
    return {
        "key": key, "statistic": pub.statistic,
        "value": None if value is None else float(value),
        "published_range": None if pub.low is None else [float(pub.low), float(pub.high)],
        "unit": pub.unit,
        "in_range": bool(pub.low <= value <= pub.high) if compared else None,
        "detail": detail, "basis": pub.basis, "source": "; ".join(pub.sources),
    }


def _concat(parts: list) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _usd(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def _distribution(values: np.ndarray) -> str:
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return f"median {_usd(median)}, p10 {_usd(p10)}, p90 {_usd(p90)}, n={len(values):,}"


def market_stats(dataset) -> list[dict]:
    """The market statistics of `dataset` (a gpubt.data.store.Dataset, or the path of one) beside the published
    mainnet ranges: one dict per PUBLISHED figure (statistic, value, published_range, unit, in_range, detail,
    basis, source); value None where the dataset lacks the data (detail says why). Raises SchemaError on an
    invalid dataset."""
    from gpubt.data.store import Dataset

    if not isinstance(dataset, Dataset):
        dataset = Dataset(dataset)
    t, facts = _measure(dataset)
    n = t.n_blocks
    ingested = facts["source"] in INGESTED_SOURCES
    if ingested:
        from gpubt.data.labeler import KINDS as from_labeler  # imported only here: it brings numba in
    rows = []

    def unlabeled(kind: str) -> str | None:
        if ingested and kind not in from_labeler:
            return (f"n/a ({facts['source']} datasets are labeled by gpubt's labeler, which looks for "
                    f"{', '.join(from_labeler)} only)")
        return None

    held = ", ".join(sorted(t.label_count)) or "no kind"
    for kind in LABEL_KINDS:
        why = unlabeled(kind)
        count = t.label_count.get(kind, 0)
        note = f"{count:,} in {n:,} blocks" if count else f"none (the dataset's labels hold {held})"
        rows.append(_row(f"{kind}_per_block", None if why else count / n, why or note))
    if ingested:
        why = "n/a (liquidations are not labeled in ingested datasets)"
        rows.append(_row("atomic_tx_per_block", None, why))
    else:
        atomic_tx = (t.label_count.get("arbitrage", 0) + t.label_count.get("liquidation", 0)
                     + 2 * t.label_count.get("sandwich", 0))
        rows.append(_row("atomic_tx_per_block", atomic_tx / n, f"{atomic_tx:,} txs in {n:,} blocks"))
    rows.append(_row("blocks_without_mev", 1.0 - t.blocks_with_labels / n,
                     f"{n - t.blocks_with_labels:,} of {n:,} blocks"))

    for kind in ("arbitrage", "sandwich", "cexdex", "liquidation"):
        key = f"{kind}_profit_usd"
        profits = _concat(t.label_profit_usd[kind])
        why = unlabeled(kind)
        if why:
            rows.append(_row(key, None, why))
        elif not len(profits):
            unpriced = t.label_unpriced[kind]
            rows.append(_row(key, None, f"n/a ({unpriced:,} {kind} labels, none with a profit and a price)"
                             if unpriced else f"n/a (no {kind} labels)"))
        else:
            rows.append(_row(key, profits.mean(), _distribution(profits)))

    n_pools = _concat(t.arb_pools)
    n_arb = len(n_pools)
    if not n_arb:
        for key in ("arbitrage_2_3_pools", "arbitrage_profit_weth", "arbitrage_gas_share", "arbitrage_net_negative"):
            rows.append(_row(key, None, "n/a (no arbitrage labels)"))
    else:
        two_three = int(np.sum((n_pools >= 2) & (n_pools <= 3)))
        rows.append(_row("arbitrage_2_3_pools", two_three / n_arb, f"{two_three:,} of {n_arb:,}"))
        if facts["weth"] is None:
            why = "n/a (no token has the symbol WETH)"
            for key in ("arbitrage_profit_weth", "arbitrage_gas_share", "arbitrage_net_negative"):
                rows.append(_row(key, None, why))
        else:
            in_weth = int(_concat(t.arb_weth).sum())
            rows.append(_row("arbitrage_profit_weth", in_weth / n_arb, f"{in_weth:,} of {n_arb:,}"))
            gas, revenue = _concat(t.arb_gas_usd), _concat(t.arb_revenue_usd)
            if not len(gas) or revenue.sum() <= 0:
                why = "n/a (no arbitrage label with a priced profit and gas)"
                rows.append(_row("arbitrage_gas_share", None, why))
                rows.append(_row("arbitrage_net_negative", None, why))
            else:
                rows.append(_row("arbitrage_gas_share", gas.sum() / revenue.sum(),
                                 f"{_usd(gas.sum())} gas of {_usd(revenue.sum())} revenue"))
                losing = int(np.sum(revenue < gas))
                rows.append(_row("arbitrage_net_negative", losing / len(gas), f"{losing:,} of {len(gas):,}"))

    named = sum(t.searcher_atomic.values())
    if not t.atomic_labels:
        why = "n/a (no atomic MEV labels: arbitrage, sandwich, liquidation)"
        for key in ("top1_searcher_share", "top5_searcher_share", "searchers_14d"):
            rows.append(_row(key, None, why))
    elif not named:
        why = "n/a (the labels carry no searcher)"
        for key in ("top1_searcher_share", "top5_searcher_share", "searchers_14d"):
            rows.append(_row(key, None, why))
    else:
        top = [count for _, count in t.searcher_atomic.most_common(5)]
        unnamed = f", {t.atomic_null_searcher:,} without a searcher" if t.atomic_null_searcher else ""
        rows.append(_row("top1_searcher_share", top[0] / named,
                         f"{top[0]:,} of {named:,} labels, {len(t.searcher_atomic)} searchers{unnamed}"))
        rows.append(_row("top5_searcher_share", sum(top) / named, f"{sum(top):,} of {named:,} labels"))
        if facts["span_blocks"] < SEARCHER_WINDOW_BLOCKS:
            rows.append(_row("searchers_14d", None,
                             f"n/a (the dataset spans {facts['span_blocks']:,} blocks, the published count is over "
                             f"14 days = {SEARCHER_WINDOW_BLOCKS:,}; {len(t.searcher_atomic)} searchers in it)"))
        else:
            rows.append(_row("searchers_14d", len(t.searchers_window), "in the first 14 days"))
    no_bribe = "n/a (no label says what its searcher paid the builder: LABELS bribe_wei)"
    if t.bribe_txs:
        rows.append(_row("bribe_per_tx_eth", t.bribe_eth / t.bribe_txs,
                         f"{t.bribe_eth:,.2f} ETH in {t.bribe_txs:,} atomic MEV txs"))
    else:
        rows.append(_row("bribe_per_tx_eth", None, no_bribe))
    for kind, key, what in (("sandwich", "sandwich_cost_share", "gas and bribes"), ("cexdex", "cexdex_builder_share",
                                                                                   "bribes")):
        cost, revenue = _concat(t.paid_usd[kind]), _concat(t.paid_revenue_usd[kind])
        if not len(cost) or revenue.sum() <= 0:
            rows.append(_row(key, None, no_bribe if not len(cost) else f"n/a (no {kind} revenue)"))
        else:
            rows.append(_row(key, cost.sum() / revenue.sum(), f"{_usd(cost.sum())} {what} of "
                             f"{_usd(revenue.sum())} revenue, {len(cost):,} labels"))

    swap_usd = _concat(t.swap_usd)
    valued = swap_usd[np.isfinite(swap_usd)]
    if not facts["n_uniswap_pools"]:
        why = "n/a (no Uniswap pool: the published figures are Uniswap's swaps)"
        rows.append(_row("swaps_per_block", None, f"{why}; {t.swaps_all:,} swaps in {n:,} blocks on other venues"))
        rows.append(_row("swap_usd_median", None, why))
    else:
        rows.append(_row("swaps_per_block", t.swaps / n, f"{t.swaps:,} swaps on Uniswap pools in {n:,} blocks "
                         f"({t.swaps_all:,} on every venue)"))
        if not len(valued):
            rows.append(_row("swap_usd_median", None, "n/a (no swaps)" if not t.swaps else
                             "n/a (no swap's input token has a reference price)"))
        else:
            unvalued = len(swap_usd) - len(valued)
            rows.append(_row("swap_usd_median", np.median(valued), _distribution(valued)
                             + (f", {unvalued:,} without a price" if unvalued else "")))

    steps = _concat(t.base_fee_steps)
    if not t.base_fee_checked:
        why = "n/a (fewer than two blocks with a base fee)"
        rows.append(_row("base_fee_step_max", None, why))
        rows.append(_row("base_fee_eip1559_exact", None, why))
    else:
        rows.append(_row("base_fee_step_max", steps.max(), f"mean |step| {steps.mean():.4f}, "
                                                           f"{t.base_fee_checked:,} steps"))
        rows.append(_row("base_fee_eip1559_exact", t.base_fee_exact / t.base_fee_checked,
                         f"{t.base_fee_exact:,} of {t.base_fee_checked:,} steps"))
    rows.append(_row("gas_used_ratio", t.gas_ratio_sum / n))
    rows.append(_row("gas_limit", t.gas_limit_sum / n))
    rows.append(_row("v3_pool_share", facts["n_v3_pools"] / facts["n_pools"] if facts["n_pools"] else None,
                     f"{facts['n_v3_pools']:,} of {facts['n_pools']:,} pools" if facts["n_pools"] else
                     "n/a (no pools)"))
    order = {p.key: i for i, p in enumerate(PUBLISHED)}
    return sorted(rows, key=lambda r: order[r["key"]])


# ---------------------------------------------------------------------------------------------------------------
# presentation


def _number(value: float, unit: str) -> str:
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "USD":
        return _usd(value)
    if unit == "fraction":
        return f"{value:.4f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 0.1 or value == 0:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _check(row: dict) -> str:
    """'in range', or how far out: the factor to the nearer bound, a percentage within 10 % of it (percentage points
    for shares and ratios)."""
    if row["value"] is None:
        return "n/a"
    if row["in_range"] is None:
        return "not compared"
    if row["in_range"]:
        return "in range"
    value, (low, high) = row["value"], row["published_range"]
    side = "above" if value > high else "below"
    bound = high if value > high else low
    if row["unit"] in ("share", "ratio"):
        return f"OUT: {100 * abs(value - bound):.1f} pp {side}"
    if value == 0:
        return "OUT: none"
    if bound == 0:
        return f"OUT: {side}"
    factor = value / bound if value > high else bound / value
    if factor < 1.1:   # "1x below" would hide how near it is
        return f"OUT: {100 * abs(value - bound) / bound:.1f} % {side}"
    return f"OUT: {factor:.3g}x {side}"


def _cite(source: str) -> str:
    return "; ".join(SOURCES.get(s, s) for s in source.split("; ")) if source else "-"


def format_market_stats(rows: list[dict], title: str = "") -> str:
    """A console table (statistic | value | published | unit | check | source), then the numbered notes: n/a
    reasons, counts, distributions."""
    head = ("statistic", "value", "published", "unit", "check", "source")
    lines, notes = [], []
    for row in rows:
        unit, low_high = row["unit"], row["published_range"]
        value = "n/a" if row["value"] is None else _number(row["value"], unit)
        if low_high is None:
            published = "-"
        elif low_high[0] == low_high[1]:
            published = _number(low_high[0], unit)
        else:
            published = f"{_number(low_high[0], unit)} .. {_number(low_high[1], unit)}"
        if row["detail"]:
            notes.append(row["detail"])
            value = f"{value} [{len(notes)}]"
        lines.append((row["statistic"], value, published, "" if unit in ("share", "USD") else unit, _check(row),
                      _cite(row["source"])))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'>' if i in (1, 2) else '<'}{w}}}" for i, w in enumerate(widths))
    out = [title, ""] if title else []
    out += [fmt.format(*head).rstrip(), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*line).rstrip() for line in lines]
    counts = Counter("n/a" if r["value"] is None else {True: "in", False: "out", None: "shown"}[r["in_range"]]
                     for r in rows)
    out += ["", f"{counts['in']} in range, {counts['out']} out of range, {counts['n/a']} n/a, {counts['shown']} not "
                "compared (ranges and sources: docs/market.md)", ""]
    out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


USAGE = "usage: gpubt market-stats DATASET [--json]   (DATASET: a folder, or data.path=FOLDER)"


def main(argv: list[str]) -> int:
    """`gpubt market-stats DATASET [--json]`: print the table (or the rows as JSON); 2 and one line on bad input."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE + "\n\nPrints the dataset's market statistics beside the published mainnet ranges "
              "(docs/market.md).")
        return 0
    as_json = "--json" in argv
    paths = [a.split("=", 1)[1] if a.startswith("data.path=") else a for a in argv if a != "--json"]
    unknown = [a for a in paths if a.startswith("-")]
    if unknown or len(paths) != 1:
        why = f"unknown option {unknown[0]}" if unknown else "one DATASET expected"
        print(f"gpubt: error: {why} ({USAGE})", file=sys.stderr)
        return 2
    from gpubt.data.store import Dataset

    try:
        dataset = Dataset(paths[0])
        rows = market_stats(dataset)
    except (schema.SchemaError, OSError) as exc:
        print(f"gpubt: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_market_stats(rows, f"market statistics of {dataset.root} ({dataset.manifest.get('source')}, "
                                        f"blocks {dataset.first_block:,}..{dataset.last_block:,})"))
    return 0
