"""Per pool_id arrays of a dataset's pools table (and its tokens' decimals): what kernels and exact pricing
index by pool."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpubt.exact import v3 as exact_v3


class PoolTable:
    """Per pool_id arrays of a dataset's pools table (token0/1, fee_ppm, gamma = kept fraction, is_v3,
    tick_spacing: a V3 pool without one gets its fee tier's), and the tokens' decimals when given."""

    def __init__(self, pools: pa.Table, tokens: pa.Table | None = None):
        ids = pools.column("pool_id").to_numpy()
        self.n = n = int(ids.max()) + 1 if len(ids) else 0
        self.token0 = np.zeros(n, np.int32)
        self.token1 = np.zeros(n, np.int32)
        self.fee_ppm = np.zeros(n, np.int32)
        self.is_v3 = np.zeros(n, np.bool_)
        self.tick_spacing = np.zeros(n, np.int32)
        self.token0[ids] = pools.column("token0").to_numpy()
        self.token1[ids] = pools.column("token1").to_numpy()
        self.fee_ppm[ids] = pools.column("fee_ppm").to_numpy()
        self.is_v3[ids] = np.asarray(pools.column("protocol").to_pylist(), dtype=object) == "v3"
        if "tick_spacing" in pools.column_names:
            self.tick_spacing[ids] = pools.column("tick_spacing").fill_null(0).to_numpy()
        for p in np.flatnonzero(self.is_v3 & (self.tick_spacing == 0)).tolist():
            self.tick_spacing[p] = exact_v3.TICK_SPACINGS.get(int(self.fee_ppm[p]), 1)
        self.gamma = 1.0 - self.fee_ppm.astype(np.float64) / 1e6
        if tokens is not None:
            tid = tokens.column("token_id").to_numpy()
            self.decimals = np.zeros(int(tid.max()) + 1 if len(tid) else 0, np.int64)
            self.decimals[tid] = tokens.column("decimals").to_numpy()
