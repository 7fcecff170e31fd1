"""Per-caller gating and who-called attributes in-process (both protocol eras), and the principal filter of
the index — including an index written before it had a principal column."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import Client
from mcp.server.auth.middleware.auth_context import auth_context_var

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.auth import Caller, TokensFile, classes_from_scopes, token_fingerprint
from mcp_ledger.server.auth._oauth import caller_from_claims
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import prov
from tests.auth.conftest import ALICE, write_tokens
from tests.conftest import fake_group
from tests.harness import result_text


def _caller(name: str, *scopes: str) -> Caller:
    return Caller(
        principal=name,
        method="oauth",
        fingerprint="sha256:" + "0" * 16,
        classes=classes_from_scopes(scopes),
        scopes=list(scopes),
        client_id="client-" + name,
    )


def _app(ledger: Path) -> LedgerApp:
    settings = ServerSettings(ledger_dir=ledger, transport="http", allow_destructive=True)
    return create_app(settings, groups=[prov.register(), fake_group()], network_transport="tcp", authenticated=True)


@asynccontextmanager
async def _as(app: LedgerApp, caller: Caller | None, mode: str) -> AsyncIterator[Client]:
    """An in-process client whose server tasks see ``caller`` as the authenticated user (as the HTTP layer sets it)."""
    reset = auth_context_var.set(caller)
    try:
        async with Client(app.server, mode=mode) as client:
            yield client
    finally:
        auth_context_var.reset(reset)


FAKE_READ = {"fake_echo", "fake_fail", "fake_crash", "fake_protocol", "fake_sleep"}
PROV = {"prov_errors", "prov_query", "prov_span", "prov_stats", "prov_trace", "prov_verify"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_scopes_narrow_the_listing_and_the_calls_and_each_span_says_who(tmp_path: Path, mode: str) -> None:
    app = _app(tmp_path / "ledger")
    try:
        listed: dict[str, set[str]] = {}
        for name, scope in (("r", "read"), ("w", "write"), ("d", "destructive")):
            caller = _caller(name, f"mcp-ledger:{scope}")
            async with _as(app, caller, mode) as client:
                listed[caller.principal] = {tool.name for tool in (await client.list_tools()).tools}
        async with _as(app, _caller("r", "mcp-ledger:read", "openid"), mode) as client:
            echoed = await client.call_tool("fake_echo", {"text": "hi"})
            refused = await client.call_tool("fake_update", {"text": "hi"})
        async with _as(app, None, mode) as client:
            nobody = await client.call_tool("fake_echo", {"text": "hi"})
            nothing = {tool.name for tool in (await client.list_tools()).tools}
    finally:
        app.close()
    assert listed["r"] == FAKE_READ | PROV
    assert listed["w"] == FAKE_READ | PROV | {"fake_update"}
    assert listed["d"] == FAKE_READ | PROV | {"fake_update", "fake_remove"}
    assert not echoed.is_error
    assert refused.is_error and "fake_update is a write tool" in result_text(refused)
    assert nobody.is_error and "needs an authenticated caller" in result_text(nobody) and nothing == set()
    spans = {span["span_id"]: span for span in provenance.Ledger(tmp_path / "ledger").scan()}
    for result in (echoed, refused):
        assert result.meta is not None
        attributes = spans[result.meta[provenance.SPAN_ID_META_KEY]]["attributes"]
        assert attributes["enduser.id"] == "r"
        assert attributes["enduser.scope"] == "mcp-ledger:read openid"
        assert attributes["mcp-ledger.auth.client_id"] == "client-r"
        assert attributes["mcp-ledger.auth.method"] == "oauth"
    assert nobody.meta is not None
    assert "enduser.id" not in spans[nobody.meta[provenance.SPAN_ID_META_KEY]]["attributes"]


async def test_principal_filters_every_surface_and_an_old_index_is_rebuilt_with_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    app = _app(ledger)
    made: dict[str, set[str]] = {"ann": set(), "bo": set()}
    try:
        for name in ("ann", "bo", "ann"):
            async with _as(app, _caller(name, "mcp-ledger:write"), "auto") as client:
                for text in ("a", "b"):
                    result = await client.call_tool("fake_echo", {"text": text})
                    assert result.meta is not None
                    made[name].add(result.meta[provenance.SPAN_ID_META_KEY])
        async with _as(app, _caller("ann", "mcp-ledger:read"), "auto") as client:
            resource = await client.read_resource("provenance://spans?principal=bo&limit=200")
    finally:
        app.close()
    reader = provenance.Ledger(ledger)
    for name, ids in made.items():
        assert {s["span_id"] for s in reader.query(principal=name, limit=200)["spans"]} == ids
        assert {s["span_id"] for s in reader.tail(principal=name, last=100)[0]} == ids
    assert reader.query(principal="nobody")["spans"] == []
    listing = getattr(resource.contents[0], "text", "")
    assert '"principal":"bo"' in listing and '"principal":"ann"' not in listing
    page = reader.query(principal="ann", limit=2)
    second = reader.query(principal="ann", limit=200, cursor=page["next_cursor"])
    assert {s["span_id"] for s in page["spans"] + second["spans"]} == made["ann"]

    # An index made before the principal column: it is emptied and made again on first use.
    db = sqlite3.connect(ledger / "index.sqlite")
    db.executescript(
        "DROP TABLE spans; DELETE FROM segments; UPDATE meta SET value = '1' WHERE key = 'schema';"
        "CREATE TABLE spans (id INTEGER PRIMARY KEY AUTOINCREMENT, seg INTEGER NOT NULL, off INTEGER NOT NULL,"
        " len INTEGER NOT NULL, span_id TEXT NOT NULL, trace_id TEXT NOT NULL, tool TEXT, grp TEXT,"
        " error INTEGER NOT NULL, session TEXT, connection TEXT, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL);"
    )
    db.close()
    from mcp_ledger.provenance import _index

    _index._open.clear()
    assert {s["span_id"] for s in provenance.Ledger(ledger).query(principal="bo", limit=200)["spans"]} == made["bo"]
    db = sqlite3.connect(ledger / "index.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == _index.SCHEMA_VERSION
    db.close()


async def test_what_tools_see_of_a_caller_holds_the_tokens_fingerprint_never_the_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, [f"alice {ALICE}"])
    caller = await TokensFile(tokens).verify(ALICE)
    assert caller is not None and await TokensFile(tokens).verify(ALICE[:-1]) is None
    claims = {"iss": "https://id.example", "aud": "https://mcp.example/mcp", "sub": "u1", "exp": 2**31}
    oauth = caller_from_claims(claims, ALICE, ["https://mcp.example/mcp"])
    assert oauth is not None and oauth.access_token.resource == "https://mcp.example/mcp"
    for who in (caller, oauth):
        assert who.access_token.token == token_fingerprint(ALICE)  # what get_access_token() gives a tool
        assert ALICE not in who.access_token.model_dump_json() and ALICE not in repr(who.span_attributes)
