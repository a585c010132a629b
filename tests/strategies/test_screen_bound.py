"""Incremental screening (strategies/arbitrage/bound.py): the bound never drops a pair the kernel would pass.

On tiny, small and the first partition of mainnet-month, batch by batch: every pair the full screen passes is kept by
the bound, at thresholds below, at and above the usual ones; on states perturbed so that many cycles pay (some by a
hair: the float edge); and end to end, a run with the bound and one without write the same opportunities and trades.
"""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from gpubt import schema
from gpubt.backend import Backend
from gpubt.data import synthetic
from gpubt.data.store import Dataset
from gpubt.kernels.cycles import V3_MAX_STEPS
from gpubt.strategies.arbitrage import Arbitrage
from gpubt.strategies.base import screen_floor
from tests.cli import gpubt
from tests.strategies.test_liquidation import GAS, batches

from ..conftest import LANDING_BID, TINY

CPU = Backend("cpu")
THRESHOLDS_WEI = (-10**17, 0, 10**15, 10**17)  # a negative one: even −gas can clear it


def arbitrage(ds, bound="auto"):
    return Arbitrage({"start_tokens": ["WETH"], "max_hops": 3, "min_hops": 2, "screen_bound": bound}, ds, CPU,
                     GAS, 0)


def kernel_passes(arb, batch, min_profit_wei) -> tuple:
    """(pairs, the mask the full screen passes, the mask the bound keeps) of a batch; the bound at each point
    (`keep_at`, the ordered pass's) keeps every pair the batch's walk (`keep`) keeps."""
    key, path, block = arb.pairs(batch)
    arb._pairs = (None, None)
    w = arb.wei_per_raw(batch)
    n = len(key)
    outs = (np.zeros(n), np.zeros(n), np.zeros(n))
    CPU.launch("cycles", "screen_pairs", n, (
        key, path, block, arb.paths.pools, arb.paths.zero_for_one, arb.paths.gamma, arb.paths.is_v3, arb._gas_units,
        arb.device.start_slot_host, *batch.kernel_state(), V3_MAX_STEPS, w, batch.gas_price_wei, *outs))
    _, gross, net = outs
    passes = net > screen_floor(min_profit_wei, gross * w[block, arb.device.start_slot_host[path]])
    keep = arb.bound.keep(batch, key, path, block, w, min_profit_wei)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], n]):
        b = block[lo]
        at = arb.bound.keep_at(int(key[lo]), path[lo:hi], batch.kernel_state(), batch.gas_price_wei[b], w[b],
                               min_profit_wei)
        assert np.array_equal(at, keep[lo:hi]), f"key {key[lo]}: keep_at and the walk disagree"
    return n, passes, keep


def check_market(ds, batch_blocks=250, perturb=None):
    """Every batch at every threshold: nothing the kernel passes is dropped. Returns (pairs, kept, passed) at 0."""
    arb = arbitrage(ds)
    total = kept_total = passed_total = 0
    for b, batch in enumerate(batches(ds, ds.first_block, ds.last_block, batch_blocks)):
        if perturb is not None:
            perturb(batch, b)
        for threshold in THRESHOLDS_WEI:
            n, passes, keep = kernel_passes(arb, batch, threshold)
            dropped = np.flatnonzero(passes & ~keep)
            assert not len(dropped), f"batch {b}, threshold {threshold}: {len(dropped)} pairs dropped"
            if threshold == 0:
                total, kept_total, passed_total = total + n, kept_total + keep.sum(), passed_total + passes.sum()
    return total, kept_total, passed_total


def test_the_bound_keeps_every_pair_the_screen_passes_on_tiny(tiny_cache):
    pairs, kept, passed = check_market(Dataset(tiny_cache / TINY))
    assert passed > 0 and kept < pairs / 5  # not vacuous: opportunities exist, and most pairs are skipped


@pytest.mark.slow
@pytest.mark.parametrize("preset,overrides", [("small", {}), ("mainnet-month", {"n_blocks": 7_200})],
                         ids=["small", "mainnet-month-partition-0"])
def test_the_bound_keeps_every_pair_the_screen_passes(tmp_path, preset, overrides):
    ds = Dataset(synthetic.generate(tmp_path / preset, preset=preset, seed=0, progress=False, **overrides))
    pairs, kept, passed = check_market(ds)
    assert passed > 0 and kept < pairs / 3


def test_a_market_without_v3_pools(hand_dataset):
    """A V2-only market's state log has no V3 columns."""
    pairs, kept, passed = check_market(Dataset(hand_dataset), batch_blocks=2)
    assert pairs > 0 and passed <= kept <= pairs


def test_the_bound_is_safe_where_many_cycles_pay_some_by_a_hair(tiny_cache):
    """Each state scaled by a random factor (V2: one reserve; V3: the sqrt price, kept inside its tick's range, as
    every V3 state is), from 1e-12 to 1e-2 in log: mispricings from far below the fees (and the bound's ε) to far
    above them."""
    rng = np.random.default_rng(7)
    scales = (1e-12, 1e-9, 1e-6, 1e-3, 1e-2)

    def perturb(batch, b):
        factor = np.exp(rng.normal(0.0, scales[b % len(scales)], len(batch.log_key)))
        np.multiply(batch.log_reserve1, factor, out=batch.log_reserve1)  # in place: the batch is frozen
        if len(batch.log_sqrt_price):
            tick = batch.log_tick.astype(np.float64)
            lo, hi = 1.0001 ** (tick / 2) * (1 + 1e-12), 1.0001 ** ((tick + 1) / 2) * (1 - 1e-12)
            np.copyto(batch.log_sqrt_price, np.clip(batch.log_sqrt_price * np.sqrt(factor), lo, hi))

    ds = Dataset(tiny_cache / TINY)
    pairs, kept, passed = check_market(ds, batch_blocks=20, perturb=perturb)
    assert passed > 0 and kept < pairs


def test_screen_bound_option_is_checked(tiny_cache):
    ds = Dataset(tiny_cache / TINY)
    assert arbitrage(ds, "auto").bound is not None and arbitrage(ds, True).bound is not None
    assert arbitrage(ds, False).bound is None
    with pytest.raises(schema.SchemaError, match="screen_bound='sometimes': use true, false or auto"):
        arbitrage(ds, "sometimes")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["arbitrage", "all"])
def test_a_run_with_the_bound_writes_what_one_without_it_writes(tiny_cache, tmp_path, strategy):
    """As a user types it: the default (bound on) against strategy.arbitrage.screen_bound=false; with every
    strategy, the ordered pass screens arbitrage again on pools the others' bundles forked."""
    common = ("run", "backend=cpu", "data.preset=tiny", f"data.cache_dir={tiny_cache}", "progress=false",
              "report.enabled=false", f"strategy={strategy}", f"competition.ours.bid_fraction={LANDING_BID}")
    for name, extra in (("on", ()), ("off", ("strategy.arbitrage.screen_bound=false",))):
        proc = gpubt(*common, *extra, f"out_dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stderr[-2000:]
    for table in ("opportunities", "trades"):
        on, off = (pq.read_table(tmp_path / name / f"{table}.parquet") for name in ("on", "off"))
        assert on.num_rows > 0 and on.equals(off), table
    stats = {name: json.loads((tmp_path / name / "summary.json").read_text())["timing"]["by_strategy"]["arbitrage"]
             for name in ("on", "off")}
    assert stats["on"]["screened"] == stats["off"]["screened"]
    assert stats["on"]["rescreened"] == stats["off"]["rescreened"] > 0  # the ordered pass's, on forked pools
    assert 0 < stats["on"]["evaluated"] < stats["off"]["evaluated"] / 3  # the bound in both screens
