"""Every registered kernel's CUDA build, one thread per item under numba's CUDA simulator, equals its CPU build.

One case per example launch of every driver of gpubt.kernels.REGISTRY (tests/kernels/registry_examples.py), each
run by gpubt.backend.Backend.launch on cpu and on cudasim: a newly registered kernel is covered (and fails until
it has an example). CPU and simulator both evaluate in IEEE float64 without FMA, so equality is exact here; on a
real GPU a·b+c may fuse into one FMA: tests/kernels/test_gpu.py compares with rtol 1e-12 there."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpubt.backend import Backend

from .registry_examples import EXAMPLES, drivers

def _cases():
    return [pytest.param(driver, example, id=f"{driver}-{example}")
            for driver in drivers() for example in EXAMPLES.get(driver, {"no-example": None})]


def test_every_example_is_a_registered_driver():
    assert set(EXAMPLES) <= set(drivers()), set(EXAMPLES) - set(drivers())


@pytest.mark.parametrize("driver, example", _cases())
@pytest.mark.usefixtures("simulator_threads")
def test_cudasim_equals_cpu(driver, example):
    assert driver in EXAMPLES, f"{driver} is registered but has no example launch in tests/kernels/registry_examples.py"
    module, name = driver.split(".")
    n, on_cpu = EXAMPLES[driver][example]()
    _, on_sim = EXAMPLES[driver][example]()
    before = [np.copy(a) if isinstance(a, np.ndarray) else a for a in on_cpu]
    with warnings.catch_warnings():  # NumPy scalars (the simulator) warn where numba wraps mod 2**64 on purpose
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        Backend("cpu").launch(module, name, n, on_cpu)
        Backend("cudasim").launch(module, name, n, on_sim)
    arrays = [(a, b, c) for a, b, c in zip(on_cpu, on_sim, before) if isinstance(a, np.ndarray)]
    for k, (cpu, sim, _) in enumerate(arrays):
        np.testing.assert_array_equal(cpu, sim, err_msg=f"{driver}: array argument {k}")
    assert any(not np.array_equal(cpu, old) for cpu, _, old in arrays), \
        "the example must give the kernel something to compute (no output changed)"
