"""Boolean settings fail closed: only true/false, 1/0, yes/no, on/off (any case); anything else stops the server."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_ledger.server.settings import ServerSettings, add_model_arguments, model_from_namespace


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``mcp-ledger serve`` over stdio with stdin already closed: it starts, reads EOF and exits."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_ledger.server", "serve"],
        env={"MCP_LEDGER_DIR": str(tmp_path / "ledger"), "PATH": os.environ.get("PATH", ""), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MCP_LEDGER_READ_ONLY", "y"),
        ("MCP_LEDGER_READ_ONLY", "t"),
        ("MCP_LEDGER_READ_ONLY", "enabled"),
        ("MCP_LEDGER_READ_ONLY", "ture"),
        ("MCP_LEDGER_ALLOW_DESTRUCTIVE", "2"),
        ("MCP_LEDGER_STATELESS", "nope"),
        ("MCP_LEDGER_DOCKER_ALLOW_BIND_WRITES", "disabled"),
    ],
)
def test_an_unrecognised_boolean_stops_the_server_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    proc = serve(tmp_path, **{variable: value})
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"mcp-ledger serve: {variable}: not a boolean; use true/false, 1/0, yes/no or on/off" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ledger").exists()


@pytest.mark.parametrize("value", ["TRUE", " off "])
def test_a_boolean_word_in_any_case_starts_the_server(tmp_path: Path, value: str) -> None:
    proc = serve(tmp_path, MCP_LEDGER_READ_ONLY=value, MCP_LEDGER_DOCKER_ALLOW_BIND_WRITES=value)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("value", "meaning"),
    [
        ("TRUE", True),
        ("False", False),
        (" on ", True),
        ("OFF", False),
        ("Yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
    ],
)
def test_the_eight_boolean_words_mean_what_they_say(value: str, meaning: bool) -> None:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, ServerSettings)
    settings = model_from_namespace(ServerSettings, parser.parse_args([]), environ={"MCP_LEDGER_READ_ONLY": value})
    assert settings.read_only is meaning
