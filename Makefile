# Regio: `make demo` runs a local multi-region cluster, `make test` runs every check.
# Works on a fresh Debian machine: `make setup` installs what is missing (see README.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.regio-installed

.PHONY: setup system-packages test lint typecheck pytest demo bench screenshot dashboard clean

setup: system-packages $(STAMP)

system-packages:
	@sh infra/scripts/system-packages.sh

$(STAMP): pyproject.toml router/transport/_fastpath.c router/forwarding/_fanout.c \
		router/forwarding/_gcc.c router/rtp/_twcc.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

demo: setup
	$(BIN)/regio cluster up --topology infra/local/topology.toml

bench: setup
	$(BIN)/regio bench codec --record

screenshot: setup
	$(BIN)/python -m tests.browser.screenshot docs/meeting.png

# The Grafana dashboard's panels over a real local cluster, drawn with matplotlib (not Grafana).
dashboard: setup
	$(BIN)/python -m tests.infra.dashboard docs/dashboard.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
