"""Which tools are offered: toolsets, single tools, exclusions, read-only and destructive gating."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger.server.app import create_app
from mcp_ledger.server.gating import GatingError, opt_in_tools, select_tools
from mcp_ledger.server.settings import ServerSettings, SettingsError, add_model_arguments, model_from_namespace
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import ToolArgs, ToolGroup, ToolModel, tool
from tests.conftest import fake_group, make_app
from tests.harness import effective_hints


def names(**flags: Any) -> set[str]:
    groups: list[ToolGroup[Any]] = [prov.register(), fake_group()]
    return {spec.name for spec in select_tools(groups, **flags)}


def test_by_default_everything_but_destructive_tools_is_offered() -> None:
    offered = names()
    assert "fake_remove" not in offered
    assert {"fake_echo", "fake_update", "prov_query"} <= offered


def test_allow_destructive_offers_destructive_tools() -> None:
    assert "fake_remove" in names(allow_destructive=True)


def test_read_only_keeps_only_read_only_tools_even_with_allow_destructive() -> None:
    offered = names(read_only=True, allow_destructive=True)
    assert "fake_update" not in offered and "fake_remove" not in offered
    assert "fake_echo" in offered


def test_toolsets_select_groups_and_prov_is_always_on() -> None:
    assert names(toolsets=["prov"]) == {
        "prov_query",
        "prov_span",
        "prov_trace",
        "prov_stats",
        "prov_errors",
        "prov_verify",
    }
    assert "fake_echo" in names(toolsets=["fake"])


def test_tools_add_and_exclude_tools_remove() -> None:
    offered = names(toolsets=["prov"], tools=["fake_echo"], exclude_tools=["prov_trace"])
    assert "fake_echo" in offered and "prov_trace" not in offered and "fake_fail" not in offered


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"toolsets": ["nope"]}, "--toolsets: unknown nope"),
        ({"tools": ["fake_nope"]}, "--tools: unknown fake_nope"),
        ({"exclude_tools": ["x"]}, "--exclude-tools: unknown x"),
    ],
)
def test_unknown_names_are_refused_with_the_known_ones(flags: dict[str, Any], words: str) -> None:
    with pytest.raises(GatingError, match=words) as caught:
        names(**flags)
    assert "known:" in str(caught.value)


class OptInArgs(ToolArgs):
    pass


class OptInResult(ToolModel):
    ok: bool


@tool(read_only=False, opt_in=True)
async def optin_build(args: OptInArgs, backend: None, ctx: Any) -> OptInResult:
    """An opt-in write tool."""
    return OptInResult(ok=True)


@tool(read_only=True, opt_in=True)
async def optin_read(args: OptInArgs, backend: None, ctx: Any) -> OptInResult:
    """An opt-in read tool."""
    return OptInResult(ok=True)


@tool(read_only=True)
async def optin_plain(args: OptInArgs, backend: None, ctx: Any) -> OptInResult:
    """A tool of the same group that is not opt-in."""
    return OptInResult(ok=True)


def optin_group() -> ToolGroup[None]:
    group: ToolGroup[None] = ToolGroup("optin", "Opt-in tools for tests")
    for fn in (optin_build, optin_read, optin_plain):
        group.add(fn)
    return group


def test_an_opt_in_tool_is_offered_only_when_tools_names_it() -> None:
    groups: list[ToolGroup[Any]] = [prov.register(), optin_group()]

    def offered(**flags: Any) -> set[str]:
        return {spec.name for spec in select_tools(groups, **flags)} - {s.name for s in groups[0].tools}

    assert offered() == {"optin_plain"}
    assert offered(toolsets=["optin"], allow_destructive=True) == {"optin_plain"}
    assert offered(tools=["optin_build"]) == {"optin_plain", "optin_build"}
    assert offered(toolsets=["prov"], tools=["optin_read"]) == {"optin_read"}
    # Named, it still passes the read-only filter, and --exclude-tools still removes it.
    assert offered(tools=["optin_build", "optin_read"], read_only=True) == {"optin_plain", "optin_read"}
    assert offered(tools=["optin_read"], exclude_tools=["optin_read"]) == {"optin_plain"}
    assert opt_in_tools(groups) == ["optin_build", "optin_read"]


async def test_an_opt_in_tool_not_named_is_neither_listed_nor_callable(ledger_dir: Path) -> None:
    from mcp import Client

    groups: list[ToolGroup[Any]] = [prov.register(), optin_group()]
    plain = create_app(ServerSettings(ledger_dir=ledger_dir / "a"), groups=groups)
    named = create_app(ServerSettings(ledger_dir=ledger_dir / "b", tools=["optin_build"]), groups=groups)
    try:
        async with Client(plain.server) as client:
            hidden = {t.name for t in (await client.list_tools()).tools}
            refused = await client.call_tool("optin_build", {})
        async with Client(named.server) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            called = await client.call_tool("optin_build", {})
    finally:
        plain.close()
        named.close()
    assert "optin_build" not in hidden and "optin_plain" in hidden and refused.is_error
    assert "optin_build" in listed and "optin_read" not in listed and not called.is_error


async def test_hidden_tools_are_not_listed_and_calling_one_is_a_recorded_error(ledger_dir: Path) -> None:
    from mcp import Client

    from mcp_ledger import provenance

    app = make_app(ledger_dir, read_only=True)
    try:
        async with Client(app.server) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("fake_update", {})
    finally:
        app.close()
    assert "fake_update" not in listed and "fake_echo" in listed
    assert result.is_error
    (span,) = provenance.Ledger(ledger_dir).scan()
    assert span["attributes"]["gen_ai.tool.name"] == "fake_update"


async def test_annotations_say_which_writes_destroy(ledger_dir: Path) -> None:
    from mcp import Client

    app = make_app(ledger_dir, allow_destructive=True)
    try:
        async with Client(app.server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
    finally:
        app.close()
    hints = {name: effective_hints(tool.annotations) for name, tool in tools.items()}
    assert hints["fake_update"]["destructiveHint"] is False
    assert hints["fake_remove"]["destructiveHint"] is True
    assert hints["fake_echo"]["readOnlyHint"] is True


def parse(argv: list[str], environ: dict[str, str]) -> ServerSettings:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, ServerSettings)
    return model_from_namespace(ServerSettings, parser.parse_args(argv), environ=environ)  # type: ignore[no-any-return]


def test_flags_win_over_environment_twins_which_win_over_defaults() -> None:
    settings = parse(
        ["--call-timeout", "5"],
        {"MCP_LEDGER_CALL_TIMEOUT": "9", "MCP_LEDGER_READ_ONLY": "true", "MCP_LEDGER_TOOLSETS": "docker, github"},
    )
    assert settings.call_timeout == 5
    assert settings.read_only is True
    assert settings.toolsets == ["docker", "github"]
    assert parse(["--no-read-only"], {"MCP_LEDGER_READ_ONLY": "1"}).read_only is False
    assert parse([], {"MCP_LEDGER_DIR": "/tmp/x"}).ledger_dir == Path("/tmp/x")
    assert parse([], {}).fsync == "batch"


def test_bad_setting_values_name_the_flag() -> None:
    with pytest.raises(SettingsError, match="--call-timeout"):
        parse([], {"MCP_LEDGER_CALL_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="--port"):
        parse(["--port", "70000"], {})
