"""kernels.compile.paste_item: a CPU driver whose per-item call has > 30 arguments (which numba cannot inline) gets
the item's body pasted into its prange loop, with the same results; other shapes are left alone."""
import importlib
import sys

import numpy as np
import pytest

from gpubt.kernels import compile as kc

N_EXTRA = 31  # scalar arguments besides the arrays: the call has > 30 arguments
EXTRA = ", ".join(f"c{k}" for k in range(N_EXTRA))

TOY = f'''
from numba import prange


def item(i, x, out, {EXTRA}):
    """Doubles x[i] plus the constants; skips negatives (an early return) and counts down a loop."""
    out[i] = -1.0
    if x[i] < 0.0:
        return
    total = 0.0
    for k in range(3):
        total += k
    out[i] = 2.0 * x[i] + total + c0 + c{N_EXTRA - 1}


def drive(x, out, {EXTRA}):
    """Driver: one item per index."""
    for i in prange(x.shape[0]):
        item(i, x, out, {EXTRA})


def item_returning_in_loop(j, x, out, {EXTRA}):
    out[j] = 0.0
    for k in range(3):
        if x[j] < k:
            return
        out[j] += 1.0


def drive_returning_in_loop(x, out, {EXTRA}):
    for i in prange(x.shape[0]):
        item_returning_in_loop(i, x, out, {EXTRA})
'''


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "paste_toy.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("paste_toy", None)
    return importlib.import_module("paste_toy")


def test_the_item_body_is_pasted_and_gives_the_same_results(toy):
    pasted = kc.paste_item(toy.drive, (toy.item,))
    assert pasted is not toy.drive and "item" not in pasted.__code__.co_names   # no call left
    assert pasted.__qualname__ == "drive"
    k = kc.build("cpu", (toy.item,), (toy.drive,))
    x = np.array([1.5, -2.0, 0.0, 7.0])
    consts = [float(c) for c in range(N_EXTRA)]
    out = np.zeros(4)
    k.drive(x, out, *consts)
    want = np.zeros(4)
    for i in range(4):
        toy.item(i, x, want, *consts)
    np.testing.assert_array_equal(out, want)
    assert out[1] == -1.0 and out[0] == 2 * 1.5 + 3 + 0 + (N_EXTRA - 1)


def test_a_return_inside_a_loop_keeps_the_call(toy):
    assert kc.paste_item(toy.drive_returning_in_loop, (toy.item_returning_in_loop,)) is toy.drive_returning_in_loop
    k = kc.build("cpu", (toy.item_returning_in_loop,), (toy.drive_returning_in_loop,))
    out = np.zeros(3)
    k.drive_returning_in_loop(np.array([0.5, 1.5, 9.0]), out, *([0.0] * N_EXTRA))
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("name", ["sandwich", "jit", "liquidation", "cexdex"])
def test_every_strategy_driver_is_pasted(name):
    module = importlib.import_module(f"gpubt.kernels.{name}")
    functions = module.DEVICE_FUNCTIONS
    driver = module.DRIVERS[0][0]
    pasted = kc.paste_item(driver, functions)
    assert pasted is not driver
    item = next(f for f in functions if f.__name__ in driver.__code__.co_names)
    assert item.__name__ not in pasted.__code__.co_names


def test_the_cycle_driver_keeps_its_call():
    """28 arguments: numba inlines that call itself (inline="always")."""
    from gpubt.kernels import cycles

    assert kc.paste_item(cycles.screen_pairs_cpu, cycles.DEVICE_FUNCTIONS) is cycles.screen_pairs_cpu
