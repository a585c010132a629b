"""Reference prices (USD per whole token) from a PRICES table's sparse samples: the one forward-fill.

A sample holds from its block until the token's next sample; before a token's first sample its price is the one
given as `start` (the price in force before the table's blocks), else NaN.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

WETH = 0  # token_id of WETH in every gpubt dataset: profits are measured in it


def price_matrix(prices: pa.Table, n_tokens: int, start: np.ndarray | None = None, sampled: bool = False):
    """(sample blocks, USD prices (samples × n_tokens)): each sample block's row holds every token's latest price
    at or before it (`start`'s, else NaN, before the token's first sample). `sampled`: also the block of each of
    those prices' sample (float64, NaN where `start` or nothing stands), the same forward fill's rows."""
    blocks = prices.column("block_number").to_numpy()
    tokens = prices.column("token_id").to_numpy()
    values = prices.column("price_usd").to_numpy()
    if len(blocks) and (blocks[1:] >= blocks[:-1]).all():  # block-sorted, as a dataset stores it: no sort
        first = np.concatenate(([True], blocks[1:] != blocks[:-1]))  # a row that starts a new sample block
        sample_blocks, row = blocks[first], np.cumsum(first) - 1
    else:
        sample_blocks, row = np.unique(blocks, return_inverse=True)
    dense = np.full((len(sample_blocks) + 1, n_tokens), np.nan)  # row 0: the prices before the first sample
    if start is not None:
        dense[0, :min(n_tokens, len(start))] = start[:n_tokens]
    dense[row + 1, tokens] = values  # a token sampled twice in one block: its later row wins
    # forward fill: each cell takes the last row at or before it that has the token (row 0 if none)
    last = np.where(np.isnan(dense), 0, np.arange(len(dense))[:, None])
    np.maximum.accumulate(last, axis=0, out=last)
    filled = dense[last, np.arange(n_tokens)][1:]
    if not sampled:
        return sample_blocks, filled
    at = np.concatenate(([np.nan], sample_blocks.astype(np.float64)))[last[1:]]  # row 0: no sample of the run's
    return sample_blocks, filled, at


def prices_at(sample_blocks: np.ndarray, dense: np.ndarray, blocks, before=None) -> np.ndarray:
    """(len(blocks), n_tokens) prices in force at each block from price_matrix's samples; `before` (a row) at
    blocks before the first sample, else NaN."""
    idx = np.searchsorted(sample_blocks, np.asarray(blocks, np.int64), side="right") - 1
    fill = np.full(dense.shape[1], np.nan) if before is None else before
    if not len(dense):
        return np.repeat(fill[None, :], len(idx), axis=0)
    return np.where((idx >= 0)[:, None], dense[np.maximum(idx, 0)], fill[None, :])


def per_block(prices: pa.Table, first_block: int, n_blocks: int, start: np.ndarray) -> np.ndarray:
    """(n_blocks, len(start)) USD prices at blocks first_block.. of a block range's PRICES rows, from the prices
    in force at its start (`start`, NaN where unknown)."""
    sample_blocks, dense = price_matrix(prices, len(start), start)
    return prices_at(sample_blocks, dense, first_block + np.arange(n_blocks), start)
