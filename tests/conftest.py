"""Shared fixtures: a server with a fake tool group, connected through real MCP clients."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import ToolFailure, ToolGroup, tool
from tests.harness import connected

# Servers started by tests (in-process or as subprocesses) sign checkpoints with a key of their own,
# never with (or into) the user's ~/.config/mcp-ledger.
os.environ.setdefault(
    "MCP_LEDGER_CHECKPOINT_KEY", os.path.join(tempfile.mkdtemp(prefix="mcp-ledger-test-key-"), "checkpoint-key.pem")
)

# Servers list their output schemas in the suite (in-process and as subprocesses), so that every client
# here validates every structured result against its tool's schema, as a client given --output-schemas
# does. The default listing (without them) is tested on its own, with the value set explicitly.
os.environ.setdefault("MCP_LEDGER_OUTPUT_SCHEMAS", "1")
ServerSettings.model_fields["output_schemas"].default = True
ServerSettings.model_rebuild(force=True)

# One of each secret kind DESIGN.md names, built at run time so no scanner flags this file.
GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GH_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS"
GHO = "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
GHS = "ghs_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
AWS = "AKIA" + "IOSFODNN7EXAMPLQ"
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
BEARER_TOKEN = "s3cr3tBearerValue_0123456789abcdef"
BASIC = "Basic " + "YWxhZGRpbjpvcGVuc2VzYW1l"  # aladdin:opensesame
PASSWORD = "hunter2-correct-horse"
KEYED_TOKEN = "plain-looking-value-under-a-token-key"
NUMERIC_PASSWORD = 90251675928872  # a number under a secret's name
URL_PASSWORD = "pgpass-" + "Xq81vT0dLw"  # in postgres://app:…@db
URL_USER_PASSWORD = "upw-" + "Lk29sQ0aZ"  # in https://u:…@host
QUERY_TOKEN = "qtok-" + "9f8e7d6c5b4a"  # in ?access_token=…
ASSIGNED_KEY = "akey-" + "1a2b3c4d5e6f"  # in a command's api_key=…
KEY_NAME_SECRET = "hf_" + "KeyNameKeyNameKeyNameKeyNameKeyName"  # a secret used as a key name

VALUE_SECRETS = [
    GH,
    GH_PAT,
    GHO,
    GHS,
    HF,
    AWS,
    JWT,
    BEARER_TOKEN,
    "YWxhZGRpbjpvcGVuc2VzYW1l",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
]
ALL_SECRETS = [
    *VALUE_SECRETS,
    PASSWORD,
    KEYED_TOKEN,
    str(NUMERIC_PASSWORD),
    URL_PASSWORD,
    URL_USER_PASSWORD,
    QUERY_TOKEN,
    ASSIGNED_KEY,
    KEY_NAME_SECRET,
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoArgs(_Args):
    text: str = Field(default="", max_length=100_000)
    count: int = Field(default=1, ge=0, le=10)
    extra: dict[str, Any] = Field(default_factory=dict)


class Echo(BaseModel):
    text: str
    count: int
    extra: dict[str, Any]


class SleepArgs(_Args):
    seconds: float = Field(ge=0, le=60)


class Slept(BaseModel):
    seconds: float


@tool(read_only=True, idempotent=True, open_world=False)
async def fake_echo(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """Return the arguments; annotate an upstream fact twice."""
    provenance.annotate(request_id="req-1", object="echo")
    provenance.annotate(request_id="req-2")
    return Echo(text=args.text, count=args.count, extra=args.extra)


@tool(read_only=True, idempotent=True, open_world=False)
async def fake_fail(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """Fail the way a tool reports a problem the agent can act on."""
    raise ToolFailure(f"upstream said no: {args.text}")


@tool(read_only=True, idempotent=True, open_world=False)
async def fake_crash(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """Crash with an unexpected exception."""
    raise RuntimeError(f"boom with {args.text}")


@tool(read_only=True, idempotent=True, open_world=False)
async def fake_protocol(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """Raise a JSON-RPC error."""
    raise MCPError(-32602, "protocol-level refusal")


@tool(read_only=True, idempotent=True, open_world=False)
async def fake_sleep(args: SleepArgs, backend: None, ctx: Context) -> Slept:
    """Sleep (for timeouts and cancellation)."""
    await anyio.sleep(args.seconds)
    return Slept(seconds=args.seconds)


@tool(read_only=False, destructive=True)
async def fake_remove(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """A destructive write."""
    return Echo(text=args.text, count=args.count, extra=args.extra)


@tool(read_only=False, destructive=False, idempotent=True)
async def fake_update(args: EchoArgs, backend: None, ctx: Context) -> Echo:
    """A write that is not destructive."""
    return Echo(text=args.text, count=args.count, extra=args.extra)


def fake_group() -> ToolGroup[None]:
    group: ToolGroup[None] = ToolGroup("fake", "Tools for tests")
    for fn in (fake_echo, fake_fail, fake_crash, fake_protocol, fake_sleep, fake_remove, fake_update):
        group.add(fn)
    return group


def make_app(ledger_dir: Path, **settings: Any) -> LedgerApp:
    return create_app(ServerSettings(ledger_dir=ledger_dir, **settings), groups=[prov.register(), fake_group()])


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(ledger_dir: Path) -> Callable[..., Any]:
    """``async with connect(mode, **settings) as (client, app)``; the app is closed afterwards."""

    @asynccontextmanager
    async def _connect(mode: str = "auto", **settings: Any) -> AsyncIterator[tuple[Client, LedgerApp]]:
        app = make_app(ledger_dir, **settings)
        async with connected(app, mode) as client:
            yield client, app

    return _connect


def dump(value: Any) -> bytes:
    return orjson.dumps(value)
