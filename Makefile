# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint pytest browser-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/echosearch demo

lint: setup
	$(BIN)/ruff check echosearch indexer ui tests benchmarks
	$(BIN)/ruff format --check echosearch indexer ui tests benchmarks

pytest: setup
	$(BIN)/python -m pytest -q

test: lint pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
