# Entry points for a fresh clone: `make demo`, `make test` and `make e2e`. Each builds .venv from
# the committed constraints file, so every machine (and CI) installs the same versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test docs e2e e2e-install e2e-system lint bench chaos clean

E2E_STAMP := $(VENV)/.e2e-installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
AZURITE_VERSION := 3.37.0
AZURITE := .e2e/node/node_modules/.bin/azurite-blob
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/python -m airflow_bpm_provider.testing demo --output .demo/output --deferrable --advance-after 3

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The HTML reference: one page per operator, sensor and trigger, from the docstrings (pdoc).
docs: install
	$(BIN)/python docs/build.py --output .docs/html

# The distributed tier (tests/e2e): Redis, PostgreSQL, Celery, moto, gcp-storage-emulator, Azurite.
# Debian packages are installed only when absent, and only as root (one `apt-get update`):
# redis-server, postgresql, python3-venv (when .venv is still to be made and a trial venv fails)
# and nodejs/npm only when `npm` is missing (an image's own Node.js stays as it is).
# e2e-install's prerequisites run in order (no -j): e2e-system comes before the venv is built.
e2e-system:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ ! -x $(BIN)/python ]; then \
		probe=$$(mktemp -d); $(PYTHON) -m venv "$$probe/venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
		rm -rf "$$probe"; fi; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make e2e needs:$$missing (apt-get install as root)"; exit 1; fi; \
		apt-get update -qq && $(APT_INSTALL)$$missing; \
	fi

$(E2E_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[e2e]'
	rm -f $(VENV)/.e2e-installed-*
	touch $@

$(AZURITE):
	npm install -q --no-audit --no-fund --prefix .e2e/node azurite@$(AZURITE_VERSION)

e2e-install: e2e-system $(E2E_STAMP) $(AZURITE)

e2e: e2e-install
	$(BIN)/python -m pytest tests/e2e -o addopts="-ra --strict-markers" -p no:cacheprovider

bench: install
	$(BIN)/python bench/run.py

# The fault campaign alone (bench/run.py runs it too): RUNS/RATE/SEED, e.g. `make chaos RATE=0.12`.
chaos: install
	$(BIN)/python bench/chaos.py --runs $(or $(RUNS),20) --rate $(or $(RATE),0.10) --seed $(or $(SEED),1)

clean:
	rm -rf $(VENV) .demo .docs .e2e .pytest_cache .ruff_cache
