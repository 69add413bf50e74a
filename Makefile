# Two entry points for a fresh clone: `make demo` and `make test`. Both build .venv from the
# committed constraints file, so every machine (and CI) installs the same versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint bench chaos clean

$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/python -m airflow_bpm_provider.testing demo --output .demo/output

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

# The fault campaign alone (bench/run.py runs it too): RUNS/RATE/SEED, e.g. `make chaos RATE=0.12`.
chaos: install
	$(BIN)/python bench/chaos.py --runs $(or $(RUNS),20) --rate $(or $(RATE),0.10) --seed $(or $(SEED),1)

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
