"""Each strategy's screening kernel (kernels/{sandwich,jit,liquidation,cexdex}.py) on the launches a real run makes,
against its pure-Python build, a NumPy vectorized reference and a gather-only roofline, measured in the same run.

The launches are captured from `gpubt run strategy=all` over a dataset's first blocks (every argument the
strategy passes, copied). Per strategy:
- ours: the numba-CPU driver over every captured launch (medians of --repeats);
- pure Python: the same source run as Python (kernels.compile.build_kernel(..., "python")) on a sample, scaled;
- NumPy: bench/ref_<strategy>.py `numpy_reference`, vectorized over the items it covers (the V2 subset where a
  kernel's V3 walk has no vectorized form: see each file), timed against the kernel on the same items, and checked
  against the kernel's outputs there (`assert_agrees`);
- roofline: bench/ref_<strategy>.py `gather_only`, a kernel that reads what the real one reads, no math.
The strategy kernels search (golden section, bisection, tick walks), so they are compute-bound: the roofline row
says how far from memory-bound they are, for information.

    python bench/strategy_kernels.py --preset small --blocks 2000
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/common.py and bench/ref_*.py, also through `gpubt bench`

from common import machine, median_seconds, row  # noqa: E402

STRATEGIES = ("sandwich", "jit", "liquidation", "cexdex")
# the kernel targets (50x NumPy, 300x Python, 0.7 of the roofline) are the 3-hop cycle kernel's (suite.py);
# these rows say where each strategy's kernel stands
INFO = "(information)"
# each driver's per-item device function (what the pure-Python reference calls item by item)
ITEM_FUNCTION = {"screen_sandwich": "screen_sandwich", "screen_jit": "screen_jit",
                 "liquidation_pairs": "liquidation_pair", "cexdex_pairs": "cexdex_pair"}


@dataclass
class Launch:
    """One kernel launch a strategy made: its driver (without _cpu / _cuda), item count and arguments."""

    driver: str
    n: int
    args: tuple

    def names(self, module) -> list[str]:
        return list(inspect.signature(getattr(module, f"{self.driver}_cpu")).parameters)

    def fresh(self) -> tuple:
        """The arguments with fresh copies of every array (a launch writes its outputs in place)."""
        return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in self.args)


def capture(preset: str, cache_dir: str, blocks: int) -> dict[str, list[Launch]]:
    """Run `gpubt run strategy=all` (CPU) over the dataset's first `blocks` blocks in this process and record
    every strategy kernel launch (Strategy.launch of kernels/<strategy>.py, not its one-item compile launch):
    {strategy: [Launch, ...]}."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gpubt import cli
    from gpubt import backtest
    from gpubt.run import setup
    from gpubt.strategies.base import Strategy

    if not OmegaConf.has_resolver("job_suffix"):
        OmegaConf.register_new_resolver("job_suffix", lambda: "")
    launches: dict[str, list[Launch]] = {s: [] for s in STRATEGIES}
    original = Strategy.launch

    def record(strategy, module, driver, n, args):
        if n and module in launches:
            launches[module].append(Launch(driver, int(n), tuple(
                np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)))
        original(strategy, module, driver, n, args)

    with tempfile.TemporaryDirectory(prefix="gpubt-kcap-") as tmp:
        with initialize_config_dir(config_dir=cli._config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=[f"data.preset={preset}", f"data.cache_dir={cache_dir}", "strategy=all",
                                               "backend=cpu", "progress=false", "report.enabled=false",
                                               "validation.enabled=false", f"out_dir={tmp}/run"])
        first = setup.open_dataset(cfg.data, progress=False).first_block
        OmegaConf.update(cfg, "data.last_block", first + blocks - 1, force_add=True)
        try:
            Strategy.launch = record
            backtest.run(cfg)
        finally:
            Strategy.launch = original
    return launches


def _items_sample(launches: list[Launch], sample: int) -> list[tuple[int, np.ndarray]]:
    """(launch index, item indices) spreading `sample` items over the launches in proportion to their sizes."""
    total = sum(x.n for x in launches)
    out = []
    for j, x in enumerate(launches):
        k = max(1, round(sample * x.n / total)) if total else 0
        out.append((j, np.linspace(0, x.n - 1, min(k, x.n)).astype(np.int64)))
    return out


def bench_strategy(strategy: str, launches: list[Launch], repeats: int, python_sample: int) -> list[dict]:
    """The rows of one strategy (see the module docstring)."""
    from gpubt.backend import Backend
    from gpubt.kernels.compile import build_kernel

    ref = importlib.import_module(f"ref_{strategy}")
    cpu = Backend("cpu").compiled(strategy)
    py = build_kernel(strategy, "python")
    n_total = sum(x.n for x in launches)
    label = f"{strategy} kernel: {n_total:,} items in {len(launches)} launches"
    args = [x.fresh() for x in launches]

    def run_all():
        for x, a in zip(launches, args):
            getattr(cpu, f"{x.driver}_cpu")(*a)

    run_all()  # compile / load outside the timing
    t_cpu = median_seconds(run_all, repeats)

    # pure Python: the per-item device function (the driver's body) on a sample
    picks = _items_sample(launches, python_sample)
    n_py = sum(len(items) for _, items in picks)
    py_args = [x.fresh() for x in launches]

    def run_python():
        for j, items in picks:
            fn = getattr(py, ITEM_FUNCTION[launches[j].driver])
            for i in items.tolist():
                fn(i, *py_args[j])

    t_py = median_seconds(run_python, 1) * n_total / max(n_py, 1)
    names = launches[0].names(cpu)
    for j, items in picks:  # the Python build writes what the compiled one does
        for k, name in enumerate(names):
            if name.startswith("out_"):
                np.testing.assert_allclose(py_args[j][k][items], args[j][k][items], rtol=1e-9, atol=1e-6,
                                           err_msg=f"{strategy}: pure Python vs numba-CPU, {name}")

    # NumPy: on the items it covers; the kernel is timed on exactly those items (its own launch per subset)
    covered = [ref.covered(x.names(cpu), x.args) for x in launches]
    n_np = int(sum(len(c) for c in covered))
    rows = [row(label, f"pure Python ({n_py:,}-item sample, scaled)", t_py, "gpubt cpu", t_cpu, INFO, None)]
    if n_np:
        subsets = [ref.subset(x.names(cpu), x.args, c) for x, c in zip(launches, covered) if len(c)]
        sub_args = [s for s in subsets]

        def run_subset():
            for x, a in zip(launches, sub_args):
                getattr(cpu, f"{x.driver}_cpu")(*a)

        def run_numpy():
            return [ref.numpy_reference(names, a) for a in sub_args]

        run_subset()
        t_sub = median_seconds(run_subset, repeats)
        t_np = median_seconds(run_numpy, repeats)
        for a, out in zip(sub_args, run_numpy()):
            ref.assert_agrees(out, {n: a[k] for k, n in enumerate(names) if n.startswith("out_")})
        rows.append(row(f"{strategy} kernel: {n_np:,} items ({ref.COVERS})", "NumPy vectorized", t_np, "gpubt cpu",
                        t_sub, INFO, None))
    else:
        rows.append({"workload": f"{strategy} kernel: no item of the kind the NumPy reference covers ({ref.COVERS})",
                     "baseline": "NumPy vectorized", "baseline_seconds": None, "ours": "gpubt cpu",
                     "ours_seconds": t_cpu, "ratio": float("nan"), "target": INFO, "met": None})
    roof_args = [x.fresh() for x in launches]

    def run_roof():
        for a in roof_args:
            ref.gather_only(names, a)

    run_roof()
    t_roof = median_seconds(run_roof, repeats)
    rows.append(row(label, "gather-only roofline", t_roof, "gpubt cpu", t_cpu, INFO, None))
    rows[0]["items_per_second"] = n_total / t_cpu
    return rows


def bench_strategy_kernels(preset: str, cache_dir: str, blocks: int, repeats: int, python_sample: int) -> list[dict]:
    launches = capture(preset, cache_dir, blocks)
    rows = []
    for strategy in STRATEGIES:
        if launches[strategy]:
            rows += bench_strategy(strategy, launches[strategy], repeats, python_sample)
    return rows


def main(argv=None) -> list[dict]:
    from suite import print_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python-sample", type=int, default=2000)
    parser.add_argument("--cache-dir", default="data_cache")
    parser.add_argument("--json", default="bench_results/strategy_kernels.json")
    opts = parser.parse_args(argv)
    rows = bench_strategy_kernels(opts.preset, opts.cache_dir, opts.blocks, opts.repeats, opts.python_sample)
    print_table(rows)
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2, default=str))
    return rows


if __name__ == "__main__":
    main()
