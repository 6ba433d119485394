# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint pytest browser-deps clean

setup: $(STAMP)

# pip stays quiet (-q: warnings and errors only, and a failure stops make). The one warning
# filtered is setuptools' notice, on every editable install, that a folder named like the package in
# the working directory may shadow it: here that folder is the package itself.
$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || { echo "==> creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> updating pip in $(VENV)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> installing echosearch and its dependencies into $(VENV) (a few minutes: torch is large)..."
	@PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@touch $(STAMP)
	@echo "==> ready: $(BIN)/echosearch (activate with: source $(BIN)/activate)"

demo: setup
	@echo "==> echosearch demo: synthetic archive -> index with the demo model -> browser UI"
	$(BIN)/echosearch demo

lint: setup
	$(BIN)/ruff check echosearch indexer ui tests benchmarks
	$(BIN)/ruff format --check echosearch indexer ui tests benchmarks

pytest: setup
	$(BIN)/python -m pytest -q

test: lint pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
