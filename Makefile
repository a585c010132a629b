# `make run` and `make test` each set up everything they need (a .venv with gpubt installed), idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast bench bench-peer clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/gpubt run $(ARGS)

# one worker process per core, at most 4 (pytest-xdist; a file's tests stay on one worker, so its fixtures are built
# once): on CI's 2 cores the whole suite takes about half as long
test: $(STAMP) node_modules/.stamp tests/ingest/node/node_modules/.stamp
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

# the tests not marked slow (no node, no EVM bytecode, no dask cluster, no long end-to-end runs): no npm needed
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile -m "not slow" $(PYTEST_ARGS)

# tests/evm/: Uniswap V2/V3 artifacts + solc from npm (package-lock.json), then the test contracts compiled
node_modules/.stamp: package.json package-lock.json tests/evm/build_contracts.js $(wildcard tests/evm/contracts/*.sol)
	npm ci --no-audit --no-fund
	node tests/evm/build_contracts.js
	touch $@

# tests/ingest/: ganache and the Uniswap V2/V3 artifacts (tests/ingest/node/package-lock.json)
tests/ingest/node/node_modules/.stamp: tests/ingest/node/package.json tests/ingest/node/package-lock.json
	npm ci --prefix tests/ingest/node --no-audit --no-fund --ignore-scripts
	touch $@

bench: $(STAMP)
	$(BIN)/python bench/screen_throughput.py $(ARGS)

# degenbot (the `bench` extra) pins scipy<1.15, which brings numpy down to 2.2.x: it gets its own venv, never .venv
BENCH_VENV := .venv-bench
bench-peer:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[dev,bench]'
	$(BENCH_VENV)/bin/python bench/peer_degenbot.py $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) results data_cache .pytest_cache
