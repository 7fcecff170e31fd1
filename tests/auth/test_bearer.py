"""`--auth bearer`: only the callers of the tokens file get in, each sees and calls what its policy allows,
and every span says who called — through the MCP SDK's own streamable HTTP client."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mcp_ledger import provenance
from mcp_ledger.server import cli
from tests.auth.conftest import (
    ALICE,
    CALL,
    CAROL,
    DESTRUCTIVE_TOOLS,
    HEADERS,
    LIST_TOOLS,
    PLANTED,
    READ_TOOLS,
    READER,
    WRITE_TOOLS,
    WRITER,
    WRONG,
    Served,
    assert_nothing_holds,
    assert_refused,
    bearer,
    connect,
    serve,
    write_tokens,
)
from tests.harness import result_text

ERIN = "erin_" + secrets.token_urlsafe(24)

TOKENS = [
    "# callers of the test server",
    f"alice {ALICE}",
    f"reader {READER} read-only",
    f"writer {WRITER} read-write",
    f"erin {ERIN} read-only",
]


@pytest.fixture(scope="module")
def bearer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("bearer")
    tokens = tmp / "tokens"
    write_tokens(tokens, TOKENS)
    flags = ["--auth", "bearer", "--auth-tokens-file", str(tokens), "--toolsets", "docker,prov"]
    with serve(tmp, *flags, "--allow-destructive", "--log-level", "DEBUG") as served:
        yield served, tokens


async def test_no_token_or_a_wrong_one_gets_401_with_a_challenge_and_runs_nothing(
    bearer_server: tuple[Served, Path],
) -> None:
    served, _ = bearer_server
    before = len(served.spans())
    async with httpx.AsyncClient(timeout=20) as http:
        bare = await http.post(served.url, content=CALL, headers=HEADERS)
        wrong = await http.post(served.url, content=CALL, headers=bearer(WRONG))
        basic = await http.post(served.url, content=CALL, headers={**HEADERS, "authorization": "Basic YTpi"})
        listing = await http.post(served.url, content=LIST_TOOLS, headers=HEADERS)
        malformed = await http.post(served.url, content=b'{"jsonrpc":"1.0","id":3}', headers=HEADERS)
        stream = await http.get(served.url, headers={"accept": "text/event-stream"})
    for response in (bare, wrong, basic, listing, malformed, stream):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="mcp-ledger"')
    assert "error=" not in bare.headers["www-authenticate"]  # RFC 6750 §3.1: no error code without credentials
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    for token in (None, WRONG):
        await assert_refused(served.url, token)
    assert len(served.spans()) == before  # no tool ran, and not even a refused call was recorded


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_each_caller_sees_and_calls_the_tools_of_its_policy_and_its_spans_name_it(
    bearer_server: tuple[Served, Path], mode: str
) -> None:
    served, _ = bearer_server
    listed: dict[str, set[str]] = {}
    for name, token in (("alice", ALICE), ("reader", READER), ("writer", WRITER)):
        async with connect(served.url, token, mode) as client:
            listed[name] = {tool.name for tool in (await client.list_tools()).tools}
    assert listed["reader"] == READ_TOOLS
    assert listed["writer"] == READ_TOOLS | WRITE_TOOLS
    assert listed["alice"] == READ_TOOLS | WRITE_TOOLS | DESTRUCTIVE_TOOLS

    async with connect(served.url, READER, mode) as client:
        read = await client.call_tool("prov_stats", {})
        refused = await client.call_tool("docker_container_start", {"container": "web"})
        refused_destructive = await client.call_tool("docker_image_remove", {"image": "busybox"})
    async with connect(served.url, WRITER, mode) as client:
        written = await client.call_tool("docker_container_start", {"container": "web"})
        writer_refused = await client.call_tool("docker_container_remove", {"container": "web"})
    assert not read.is_error
    assert refused.is_error and result_text(refused).startswith("forbidden: docker_container_start is a write tool")
    assert "'reader'" in result_text(refused) and "mcp-ledger:write" in result_text(refused)
    assert refused_destructive.is_error and "needs mcp-ledger:destructive" in result_text(refused_destructive)
    assert "forbidden" not in result_text(written)  # it ran (and Docker is not there)
    assert writer_refused.is_error and result_text(writer_refused).startswith("forbidden:")

    by_id = {span["span_id"]: span for span in served.spans()}
    for result, who in ((read, "reader"), (refused, "reader"), (written, "writer"), (writer_refused, "writer")):
        assert result.meta is not None
        span = by_id[result.meta[provenance.SPAN_ID_META_KEY]]
        attributes = span["attributes"]
        assert attributes["enduser.id"] == who
        assert attributes["mcp-ledger.auth.method"] == "bearer"
        assert attributes["mcp-ledger.auth.token_fingerprint"].startswith("sha256:")
        assert len(attributes["mcp-ledger.auth.token_fingerprint"]) == len("sha256:") + 16
    refused_span = by_id[refused.meta[provenance.SPAN_ID_META_KEY]]  # type: ignore[index]
    assert refused_span["status"]["code"] == "ERROR" and refused_span["status"]["message"].startswith("forbidden:")
    assert by_id[read.meta[provenance.SPAN_ID_META_KEY]]["attributes"]["enduser.scope"] == "mcp-ledger:read"  # type: ignore[index]


async def test_query_principal_shows_exactly_the_calls_that_caller_made(
    bearer_server: tuple[Served, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    served, _ = bearer_server
    made: set[str] = set()
    async with connect(served.url, ERIN) as client:
        for arguments in ({}, {"since": "1h"}):
            result = await client.call_tool("prov_stats", arguments)
            assert result.meta is not None
            made.add(result.meta[provenance.SPAN_ID_META_KEY])
        refused = await client.call_tool("docker_container_stop", {"container": "web"})
        assert refused.meta is not None
        made.add(refused.meta[provenance.SPAN_ID_META_KEY])
        # The agent's view: prov_query filters by principal too.
        mine = await client.call_tool("prov_query", {"principal": "erin", "limit": 200})
    assert not mine.is_error and mine.structured_content is not None
    assert {span["span_id"] for span in mine.structured_content["spans"]} == made
    assert {span["principal"] for span in mine.structured_content["spans"]} == {"erin"}
    async with connect(served.url, ALICE) as client:
        await client.call_tool("prov_stats", {})

    code = cli.main(["query", "--ledger-dir", str(served.ledger), "--principal", "erin", "--limit", "200", "--json"])
    assert code == 0
    page = json.loads(capsys.readouterr().out)
    assert {span["span_id"] for span in page["spans"]} == made | {
        mine.meta[provenance.SPAN_ID_META_KEY]  # type: ignore[index]
    }
    assert cli.main(["query", "--ledger-dir", str(served.ledger), "--principal", "erin"]) == 0
    table = capsys.readouterr().out
    assert "CALLER" in table.splitlines()[0]
    assert sum(" erin " in line for line in table.splitlines()[2:]) == 4
    # The index answers it; a full scan agrees.
    assert {s["span_id"] for s in served.spans() if s["attributes"].get("enduser.id") == "erin"} == {
        span["span_id"] for span in page["spans"]
    }


async def test_a_session_belongs_to_the_caller_that_opened_it_and_a_callers_malformed_call_is_recorded_as_its(
    bearer_server: tuple[Served, Path],
) -> None:
    served, _ = bearer_server
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    async with httpx.AsyncClient(timeout=20) as http:
        opened = await http.post(
            served.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, headers=bearer(ALICE)
        )
        assert opened.status_code == 200
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        taken = await http.post(served.url, content=CALL, headers={**bearer(READER), **session})
        assert taken.status_code == 404  # as if the session did not exist
        malformed = await http.post(
            served.url,
            content=b'{"jsonrpc":"2.0","id":77,"method":"tools/call","params":["prov_stats"]}',
            headers={**bearer(WRITER), **session},
        )
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == -32602
    (span,) = [s for s in served.spans() if s["attributes"].get("jsonrpc.request.id") == "77"]
    assert span["attributes"]["enduser.id"] == "writer" and span["attributes"]["error.type"] == "-32602"


async def test_a_stateless_server_names_each_caller_too(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, [f"reader {READER} read-only"])
    flags = ["--auth", "bearer", "--auth-tokens-file", str(tokens), "--toolsets", "docker,prov", "--stateless"]
    with serve(tmp_path, *flags) as served:
        for mode in ("auto", "legacy"):
            async with connect(served.url, READER, mode) as client:
                assert {tool.name for tool in (await client.list_tools()).tools} == READ_TOOLS
                assert (await client.call_tool("docker_container_stop", {"container": "web"})).is_error
    assert [span["attributes"]["enduser.id"] for span in served.spans()] == ["reader", "reader"]


async def test_a_changed_tokens_file_is_picked_up_without_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, [f"alice {ALICE}"])
    with serve(tmp_path, "--auth", "bearer", "--auth-tokens-file", str(tokens)) as served:
        async with connect(served.url, ALICE) as client:
            assert not (await client.call_tool("prov_stats", {})).is_error
        await assert_refused(served.url, CAROL)
        write_tokens(tokens, [f"carol {CAROL} read-only"])  # alice revoked, carol added
        async with connect(served.url, CAROL) as client:
            assert not (await client.call_tool("prov_stats", {})).is_error
        await assert_refused(served.url, ALICE)
        write_tokens(tokens, [f"carol {CAROL} read-only", "bob short-token"])  # a bad line is left out, logged
        async with connect(served.url, CAROL) as client:
            assert not (await client.call_tool("prov_stats", {})).is_error
        tokens.unlink()  # no file: no one
        async with httpx.AsyncClient(timeout=20) as http:
            gone = await http.post(served.url, content=CALL, headers=bearer(CAROL))
        assert gone.status_code == 401
    printed = served.stderr.read_text()
    assert f"{tokens}, line 2: the token must be at least 24 characters" in printed
    assert "short-token" not in printed
    assert {span["attributes"]["enduser.id"] for span in served.spans()} == {"alice", "carol"}


async def test_no_planted_token_reaches_the_ledger_the_index_a_result_or_stderr(
    bearer_server: tuple[Served, Path],
) -> None:
    served, _ = bearer_server
    texts: list[str] = []
    for token in (ALICE, READER, WRITER):
        async with connect(served.url, token, "legacy") as client:
            for name, arguments in (
                ("prov_query", {"limit": 200}),
                ("prov_query", {"principal": "alice"}),
                ("prov_span", {"span_id": "0" * 16}),
                ("docker_container_run", {"image": "busybox"}),
                ("no_such_tool", {}),
            ):
                result = await client.call_tool(name, arguments)
                texts.append(json.dumps(result.model_dump(mode="json")))
            resource = await client.read_resource("provenance://spans?limit=200")
            texts.append(json.dumps(resource.model_dump(mode="json")))
    async with httpx.AsyncClient(timeout=20) as http:
        for token in (WRONG, CAROL, ALICE[:-1]):
            answer = await http.post(served.url, content=CALL, headers=bearer(token))
            texts.append(answer.text + json.dumps(dict(answer.headers)))
    assert cli.main(["index", "--ledger-dir", str(served.ledger)]) == 0
    served.stop()
    assert (served.ledger / "index.sqlite").exists()
    assert "DEBUG" in served.stderr.read_text()  # the most talkative log level was on
    assert_nothing_holds([*PLANTED, ERIN], served.ledger, served.stderr, *texts)
