"""``provenance.Ledger``, the one reader: the prov tools, the resources and the CLI answer the same
question the same way, and a time or cursor out of range is a clear invalid-argument error on each
(issue 10, finding 8), never an internal error with a traceback."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from mcp.shared.exceptions import MCPError

from mcp_ledger import provenance
from mcp_ledger.server.cli import main
from tests.harness import result_text, spans

# Year 1 at +14:00 is before year 1 in UTC; 999999999999 days reach back past the year 1; both are
# beyond the 64-bit nanoseconds a span's start is compared with.
OUT_OF_RANGE_TIMES = ["0001-01-01T00:00:00+14:00", "999999999999d", "9" * 60 + "s"]


def forged(cursor: str, **changes: Any) -> str:
    """A cursor as a client could forge it from a real one (the format is base64 JSON, not signed)."""
    data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data.update(changes)
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def beyond_64_bits(cursor: str) -> list[str]:
    key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["k"]
    return [
        forged(cursor, k=[str(2**70), key[1]]),
        forged(cursor, w=str(2**70)),
        forged(cursor, k=[str(-(2**70)), "0"]),
    ]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert logged == [], [r.getMessage() for r in logged]


@pytest.mark.parametrize("since", OUT_OF_RANGE_TIMES)
async def test_a_time_out_of_range_is_a_tool_error_that_says_what_to_fix(
    connect: Any, ledger_dir: Path, mode: str, since: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(mode) as (client, _):
        await client.call_tool("fake_echo", {})
        for tool, arguments in [("prov_query", {"since": since}), ("prov_stats", {"until": since})]:
            result = await client.call_tool(tool, arguments)
            text = result_text(result)
            # Not the bare "Error executing tool prov_query" of an internal error: what to fix.
            assert result.is_error and f"{tool}: {next(iter(arguments))}: " in text, text
            assert "1678" in text
    found = spans(ledger_dir)
    assert [s["attributes"].get("error.type") for s in found] == [None, "tool_error", "tool_error"]  # one span each
    no_traceback(caplog)


async def test_a_forged_cursor_beyond_64_bits_is_a_tool_error(
    connect: Any, ledger_dir: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(mode) as (client, _):
        for _ in range(3):
            await client.call_tool("fake_echo", {})
        page = await client.call_tool("prov_query", {"tool": "fake_echo", "limit": 1})
        cursor = page.structured_content["next_cursor"]
        assert cursor
        for bad in beyond_64_bits(cursor):
            result = await client.call_tool("prov_query", {"tool": "fake_echo", "limit": 1, "cursor": bad})
            assert result.is_error and "prov_query: cursor: not a cursor returned by this query" in result_text(result)
    assert len(spans(ledger_dir)) == 4 + 3
    no_traceback(caplog)


async def test_resources_answer_out_of_range_times_and_cursors_with_invalid_params(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect() as (client, _):
        for _ in range(3):
            await client.call_tool("fake_echo", {})
        page = orjson.loads((await client.read_resource("provenance://spans?limit=1")).contents[0].text)
        uris = [f"provenance://spans?since={quote(t)}" for t in OUT_OF_RANGE_TIMES]
        uris += [f"provenance://stats?until={quote(t)}" for t in OUT_OF_RANGE_TIMES]
        uris += [f"provenance://spans?limit=1&cursor={bad}" for bad in beyond_64_bits(page["next_cursor"])]
        for uri in uris:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.error.code == -32602, (uri, caught.value.error)
            assert caught.value.error.message.startswith(("since:", "until:", "cursor:"))
    no_traceback(caplog)


@pytest.mark.parametrize("since", OUT_OF_RANGE_TIMES)
def test_the_cli_exits_2_with_a_message_on_a_time_out_of_range(
    tmp_path: Path, since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    from tests.provenance.test_store import synthetic_span

    store.append(synthetic_span(0))
    store.close()
    for argv in (["query", "--since", since], ["stats", "--until", since], ["tail", "--since", since]):
        code = main([*argv, "--ledger-dir", str(tmp_path)])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", (argv, out)
        assert err.startswith(f"mcp-ledger {argv[0]}: ") and ("out of range" in err or "reaches back" in err), err
        assert "Traceback" not in err


def test_the_cli_exits_2_on_a_forged_cursor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    from tests.provenance.test_store import synthetic_span

    for i in range(3):
        store.append(synthetic_span(i))
    store.close()
    assert main(["query", "--ledger-dir", str(tmp_path), "--limit", "1", "--json"]) == 0
    cursor = orjson.loads(capsys.readouterr().out)["next_cursor"]
    for bad in beyond_64_bits(cursor):
        code = main(["query", "--ledger-dir", str(tmp_path), "--limit", "1", "--cursor", bad])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.startswith("mcp-ledger query: cursor: not a cursor"), err


def test_every_front_end_answers_with_the_reader_s_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    from tests.provenance.test_store import synthetic_span

    for i in range(5):
        store.append(synthetic_span(i, status="ERROR" if i % 2 else "OK"))
    store.close()
    ledger = provenance.Ledger(tmp_path)
    page = ledger.query(status="error", limit="1")
    assert [s["status"] for s in page["spans"]] == ["ERROR"] and page["next_cursor"]
    assert main(["query", "--ledger-dir", str(tmp_path), "--status", "error", "--limit", "1", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["spans"] == page["spans"]
    assert ledger.query(status="", since="", limit="")["spans"] == ledger.query()["spans"]  # empty means unset
    assert ledger.stats()["count"] == 5 and ledger.verify().ok
    spans, position = ledger.tail(last=2)
    assert len(spans) == 2 and ledger.tail(after=position) == ([], position)
    assert len(list(ledger.scan())) == 5
