"""Which tools are offered: toolsets, single tools, exclusions, read-only and destructive gating."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger.server.gating import GatingError, select_tools
from mcp_ledger.server.settings import ServerSettings, SettingsError, add_model_arguments, model_from_namespace
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import ToolGroup
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
    assert names(toolsets=["prov"]) == {"prov_query", "prov_span", "prov_trace", "prov_stats", "prov_verify"}
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
