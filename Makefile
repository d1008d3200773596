# GridWall developer entry points. Each target installs what it needs on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-smoke clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

## run: start GridWall with embedded defaults (SQLite in ./var, in-process bus, built-in district)
run: $(VENV)/.installed
	$(BIN)/python app.py run $(ARGS)

## test: the whole test suite
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(ARGS)

## lint: ruff and mypy
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy .

## bench: the benchmarks (timed runs; results go to BENCHMARKS.md)
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(ARGS)

## bench-smoke: every benchmark's smoke run (tiny workload, checks only; CI runs it after the suite)
bench-smoke: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m bench_smoke tests/test_bench_smoke.py tests/test_bench_smoke_scaleout.py $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
