#!/usr/bin/env bash
# The checks a lent GPU is for, in one command (issue 25): the exact engine's kernels on CUDA against Python ints
# (bench/exact_engine.py --check) with the CPU build on the same machine as the baseline, the arbitrage screen on
# CUDA against the CPU (bench/screen_throughput.py --check), and the tests marked `gpu`. Each step has its own
# time limit, so one that hangs or fails leaves the others' results; everything lands in $OUT.
#
# Here, once (no GPU needed): fetch the wheels the device's image lacks (omegaconf, hydra-core and antlr4's runtime,
# pure Python) into .whl/, which git ignores:
#     bash bench/gpu_check.sh --fetch
# Then one device call (../.library/device): carry [".whl"], timeout_s 580 (the steps take at most 540 s), command
#     bash bench/gpu_check.sh
# Locally (no GPU: the CUDA steps say why they did not run), a quick functional check:
#     OUT=/tmp/gpu N=500 PYTHON=.venv/bin/python bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench_results/gpu}
N=${N:-20000}            # cases per exact operation
mkdir -p "$OUT"
# what comes back from a device call is at most 8 files: steps.txt (the machine and each step's status), and per
# step its output (and the benches' JSON)

if [ "${1:-}" = "--fetch" ]; then
    grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    mkdir -p .whl
    # the device's python3 is 3.12; these are pure Python (antlr4's runtime is an sdist: built into a wheel here)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl omegaconf==2.3.0 \
        hydra-core==1.3.2 && "$PY" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
    ls -l .whl
    exit
fi

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, its output to $OUT/NAME.txt, its status kept
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}

if ! "$PY" -c "import omegaconf, hydra" 2> /dev/null && ls .whl/*.whl > /dev/null 2>&1; then  # the device's image
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# gpubt itself (gpubt.kernels is the repository's kernels/ folder: an install maps it); nothing is fetched
"$PY" -c "import gpubt.kernels" 2> /dev/null || "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e .
{ nvidia-smi || echo "no nvidia-smi"; "$PY" -c "import numba, numba.cuda as c; print('numba', numba.__version__,
'cuda available:', c.is_available())"; echo "cores: $(nproc)"; } > "$OUT/steps.txt" 2>&1

step exact_engine_cuda 220 "$PY" bench/exact_engine.py --backend cuda --check --n "$N" --repeats 3 \
    --json "$OUT/exact_engine_cuda.json"
step exact_engine_cpu 170 "$PY" bench/exact_engine.py --threads "$(nproc)" --check --n "$N" --repeats 3 \
    --json "$OUT/exact_engine_cpu.json"
step screen 60 "$PY" bench/screen_throughput.py --check --repeats 3 --cache-dir /tmp/gpubt_data_cache \
    --json "$OUT/screen_throughput.json"
# the tests marked gpu read no mainnet data: an empty folder satisfies tests/conftest.py's guard
GPUBT_SHARED_DATA=$(mktemp -d) step pytest_gpu 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/kernels \
    tests/run
cat "$OUT/steps.txt"
