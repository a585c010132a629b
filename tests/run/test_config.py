"""The Hydra config: defaults compose, and the gas model defaults are the EVM-measured constants."""
from gpubt.exact import gas

from ..cli import compose as _cfg


def test_gas_defaults_are_the_measured_constants():
    cfg = _cfg()
    assert cfg.gas.base_units == gas.CYCLE_BASE_GAS
    assert cfg.gas.per_hop_units == gas.V2_HOP_GAS
    assert cfg.gas.v3_hop_units == gas.V3_HOP_GAS and cfg.gas.v3_tick_units == gas.V3_GAS_PER_TICK_CROSSED


def test_groups_compose():
    cfg = _cfg("backend=cpu", "data=parquet", "data.path=/x", "thresholds=dynamic")
    assert cfg.backend.name == "cpu" and cfg.data.source == "parquet" and cfg.thresholds.kind == "dynamic"
    assert _cfg().data.preset == "small" and _cfg().strategy.arbitrage.max_hops == 3
