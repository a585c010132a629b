"""The CPU kernels' disk cache (kernels.compile.cached_njit): reused across processes, and never stale when a
callee in another kernels/*.py file changes (numba's own cache would only notice the caller's file)."""
import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from gpubt.kernels import compile as kc

PROBE = '''
from numba import prange


def drive(x, reserve_in, reserve_out, out):
    for i in prange(x.shape[0]):
        out[i] = v2_amount_out(x[i], reserve_in, reserve_out, 0.997)
'''

RUN = textwrap.dedent('''
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from kpkg import amm_v2, compile as kc, probe
    k = kc.build("cpu", (amm_v2.v2_amount_out,), (probe.drive,), cache=True)
    out = np.zeros(3)
    k.drive(np.array([1.0, 10.0, 100.0]), 1000.0, 2000.0, out)
    print(json.dumps({"out": out.tolist(), "hits": sum(k.drive.stats.cache_hits.values()),
                      "misses": sum(k.drive.stats.cache_misses.values())}))
''')


@pytest.fixture()
def kernel_copy(tmp_path):
    """A private copy of kernels/ (as package `kpkg`) with a probe driver calling amm_v2.v2_amount_out."""
    pkg = tmp_path / "kpkg"
    shutil.copytree(kc.KERNEL_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "probe.py").write_text(PROBE)
    return tmp_path


def _run(root):
    done = subprocess.run([sys.executable, "-c", RUN, str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cache_is_reused_and_follows_callee_edits(kernel_copy):
    first = _run(kernel_copy)
    assert first["misses"] == 1 and first["hits"] == 0
    expected = [2000.0 * x * 0.997 / (1000.0 + x * 0.997) for x in (1.0, 10.0, 100.0)]
    assert first["out"] == pytest.approx(expected, rel=1e-15)
    assert list((kernel_copy / "kpkg" / "__pycache__").glob("probe.drive-*.nbi"))

    second = _run(kernel_copy)
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["out"] == first["out"]

    # edit the callee only (amm_v2.py); probe.py, the cached function's own file, is untouched
    amm = kernel_copy / "kpkg" / "amm_v2.py"
    amm.write_text(amm.read_text().replace("return x * reserve_out / (reserve_in + x)",
                                           "return 2.0 * x * reserve_out / (reserve_in + x)", 1))
    third = _run(kernel_copy)
    assert third["misses"] == 1 and third["hits"] == 0
    assert third["out"] == pytest.approx([2 * v for v in expected], rel=1e-15)


def test_source_stamp_covers_every_kernel_file_and_the_extra_one(tmp_path):
    kernels = tmp_path / "k"
    shutil.copytree(kc.KERNEL_DIR, kernels, ignore=shutil.ignore_patterns("__pycache__"))
    extra = tmp_path / "user.py"
    extra.write_text("x = 1\n")
    base = kc.source_stamp(str(extra), kernel_dir=kernels)
    assert base == kc.source_stamp(str(extra), kernel_dir=kernels)
    assert base != kc.source_stamp(None, kernel_dir=kernels)
    extra.write_text("x = 2\n")
    assert kc.source_stamp(str(extra), kernel_dir=kernels) != base
    extra.write_text("x = 1\n")
    (kernels / "rng.py").write_text((kernels / "rng.py").read_text() + "\n# edited\n")
    assert kc.source_stamp(str(extra), kernel_dir=kernels) != base
