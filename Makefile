# `make demo` and `make test` bootstrap .venv from nothing (python3, pip and make assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TS_CLIENT := tests/auth/ts_client
TS_STAMP := $(TS_CLIENT)/node_modules/.installed

.PHONY: demo test lint pytest bench regenerate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mcp-ledger demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Docker tests need a real engine: scripts/docker-engine.sh installs Debian's docker.io,
# busybox-static and docker-registry when they are missing (root + apt-get); the tests start and
# stop their own dockerd on a private socket.
# tests/auth checks the server against the MCP TypeScript SDK's client too (Node.js and npm: Debian's
# nodejs and npm packages; the SDK from the npm registry, pinned by package-lock.json).
$(TS_STAMP): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --prefix $(TS_CLIENT) --no-audit --no-fund --loglevel=error
	touch $(TS_STAMP)

pytest: $(STAMP) $(TS_STAMP)
	bash scripts/docker-engine.sh
	$(BIN)/pytest

test: lint pytest

# After changing a tool: tools/catalog.json and tests/toolsnaps/<tool>.json from the groups' code.
regenerate: $(STAMP)
	$(BIN)/python -m tools.regenerate

# Benchmarks print a table and write JSON under bench/results/; DuckDB is a comparison point in
# bench/store.py only, so it is installed here and never as a dependency of the project.
bench: $(STAMP)
	$(BIN)/pip install --quiet duckdb
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.toolslist

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(TS_CLIENT)/node_modules
