"""Error aggregation (issue 13): "what keeps failing, since when, on which objects" in one call.

A generated ledger with known groups is asked through every surface — ``provenance.Ledger.errors``,
the ``prov_errors`` tool and the ``provenance://errors`` resource through in-process MCP clients of
both protocol eras, and ``mcp-ledger errors`` — and each answers the same groups: failures that
differ only in ids, numbers, paths or quoted values collapse; different errors keep apart; the most
recently failing group comes first; objects and examples are bounded; filters narrow.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp.shared.exceptions import MCPError

from mcp_ledger import provenance
from mcp_ledger.provenance import _index as index_module
from mcp_ledger.provenance._errors import EXAMPLES_SHOWN, OBJECTS_SHOWN
from mcp_ledger.provenance._index import INDEX_NAME, IndexUnavailable, open_index
from mcp_ledger.server.cli import main
from tests.harness import call_ok, result_text, spans

T0 = 1_790_000_000 * 10**9  # 2026-09-21T14:13:20Z
SECOND = 10**9
DOCKER_MISSING = (
    "container '{name}' not found on the Docker engine at unix:///var/run/docker.sock: No such container: {name}"
)


def span(
    seconds: int,
    tool: str,
    *,
    message: str | None = None,
    error_type: str = "tool_error",
    upstream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A span ``seconds`` after T0; failed when it has a message."""
    start = T0 + seconds * SECOND
    attributes: dict[str, Any] = {"gen_ai.tool.name": tool, "mcp-ledger.tool.group": tool.split("_")[0]}
    if message is not None:
        attributes["error.type"] = error_type
    return {
        "type": "span",
        "trace_id": secrets.token_hex(16),
        "span_id": secrets.token_hex(8),
        "parent_span_id": None,
        "name": f"tools/call {tool}",
        "kind": "SERVER",
        "start_ns": str(start),
        "end_ns": str(start + 5_000_000),
        "status": {"code": "ERROR" if message is not None else "OK", "message": message},
        "attributes": attributes,
        "input": {"sha256": "0" * 64, "size": 2, "preview": "{}", "truncated": False, "redactions": []},
        "output": {"sha256": "0" * 64, "size": 2, "preview": "{}", "truncated": False, "redactions": []},
        "upstream": upstream or {},
    }


def known_spans() -> list[dict[str, Any]]:
    """Four groups (and successful calls between them), oldest first:

    - k8s_pod_logs, pod not found (quoted generated names): 3 failures at 10-12 s;
    - docker_container_inspect, container not found: 30 failures at 100-129 s, 15 containers (each twice);
    - docker_container_inspect, engine timeout: 2 failures at 140 and 200 s;
    - github_run_get, run not found (numbers and repositories): 5 failures at 150-190 s.
    """
    made = []
    for i in range(3):
        pod = f"web-{secrets.token_hex(4)}-{secrets.token_hex(3)}"
        made.append(
            span(
                10 + i,
                "k8s_pod_logs",
                message=f'pods "{pod}" not found in namespace "shop"',
                upstream={"k8s.namespace.name": "shop", "k8s.pod.name": pod, "k8s.audit_id": secrets.token_hex(8)},
            )
        )
    for i in range(30):
        name = f"api-{i % 15}"
        made.append(span(50 + i, "docker_container_list"))
        made.append(
            span(
                100 + i,
                "docker_container_inspect",
                message=DOCKER_MISSING.format(name=name),
                upstream={"container_name": name, "container_id": f"{i % 15:02x}" * 32, "engine_version": "27.3.1"},
            )
        )
    for seconds in (140, 200):
        made.append(
            span(
                seconds,
                "docker_container_inspect",
                message="the Docker engine at unix:///var/run/docker.sock did not answer in time",
            )
        )
    for i in range(5):
        run_id, repo = 10 ** (i + 3) + i, ["acme/web", "acme/infra", "octo/cat-9"][i % 3]
        made.append(
            span(
                150 + 10 * i,
                "github_run_get",
                message=f"not found: workflow run {run_id} in {repo} (404); check the names and numbers",
                upstream={"repository": repo, "run_id": run_id, "github_request_id": secrets.token_hex(6)},
            )
        )
    made.sort(key=lambda s: int(s["start_ns"]))
    return made


def write(directory: Path, records: list[dict[str, Any]]) -> None:
    store = provenance.SpanStore(directory, fsync="never")
    for record in records:
        store.append(record)
    store.close()


@pytest.fixture
def ledger(ledger_dir: Path) -> Path:
    write(ledger_dir, known_spans())
    return ledger_dir


def at(seconds: int) -> str:
    """What the answer says for T0 + seconds."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(T0 // SECOND + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def shape(answer: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    return [(g["tool"], g["count"], g["first_seen"], g["last_seen"]) for g in answer["groups"]]


EVERY_GROUP = [
    ("docker_container_inspect", 2, at(140), at(200)),
    ("github_run_get", 5, at(150), at(190)),
    ("docker_container_inspect", 30, at(100), at(129)),
    ("k8s_pod_logs", 3, at(10), at(12)),
]


def test_failures_group_by_tool_and_signature_newest_group_first(ledger: Path) -> None:
    answer = provenance.Ledger(ledger).errors()
    assert shape(answer) == EVERY_GROUP
    assert answer["failures"] == 40 and answer["more_groups"] == 0
    timeout, runs, missing, pods = answer["groups"]
    assert timeout["signature"] == "tool_error: the Docker engine at unix:<path> did not answer in time"
    assert missing["signature"] == (
        "tool_error: container <str> not found on the Docker engine at unix:<path>: No such container: <str>"
    )
    assert runs["signature"] == "tool_error: not found: workflow run <n> in <path> (<n>); check the names and numbers"
    assert pods["signature"] == "tool_error: pods <str> not found in namespace <str>"
    assert missing["message"] == DOCKER_MISSING.format(name="api-14")  # the newest failure's own words
    assert [g["group"] for g in answer["groups"]] == ["docker", "github", "docker", "k8s"]


def test_each_group_names_the_latest_distinct_objects_and_example_spans(ledger: Path) -> None:
    answer = provenance.Ledger(ledger).errors()
    timeout, runs, missing, pods = answer["groups"]
    # 15 containers failed (each twice): the 10 most recent distinct, newest first.
    assert len(missing["objects"]) == OBJECTS_SHOWN
    assert [o["container_name"] for o in missing["objects"]] == [f"api-{i}" for i in range(14, 4, -1)]
    assert missing["objects"][0] == {"container_id": "0e" * 32, "container_name": "api-14"}  # no engine_version
    assert timeout["objects"] == []
    assert [o["run_id"] for o in runs["objects"]] == [10**7 + 4, 10**6 + 3, 10**5 + 2, 10**4 + 1, 10**3]
    assert all(set(o) == {"repository", "run_id"} for o in runs["objects"])  # no request id
    assert all(set(o) == {"k8s.namespace.name", "k8s.pod.name"} for o in pods["objects"])
    # Example span ids: the newest few, and real spans of the group.
    on_disk = {s["span_id"]: s for s in spans(ledger)}
    assert len(missing["span_ids"]) == EXAMPLES_SHOWN
    newest = sorted(
        (s for s in on_disk.values() if s["status"]["message"] and "No such container" in s["status"]["message"]),
        key=lambda s: int(s["start_ns"]),
        reverse=True,
    )
    assert missing["span_ids"] == [s["span_id"] for s in newest[:EXAMPLES_SHOWN]]
    assert len(timeout["span_ids"]) == 2


def test_filters_narrow_the_failures_counted(ledger: Path) -> None:
    reader = provenance.Ledger(ledger)
    assert shape(reader.errors(tool="docker_container_inspect")) == [EVERY_GROUP[0], EVERY_GROUP[2]]
    assert shape(reader.errors(group="github")) == [EVERY_GROUP[1]]
    assert shape(reader.errors(group="k8s", tool="docker_container_inspect")) == []
    # A window: first and last seen, and the counts, are of the failures inside it.
    window = reader.errors(since=at(120).replace(".000", ""), until=at(160).replace(".000", ""))
    assert shape(window) == [
        ("github_run_get", 2, at(150), at(160)),
        ("docker_container_inspect", 1, at(140), at(140)),
        ("docker_container_inspect", 10, at(120), at(129)),
    ]
    assert window["failures"] == 13
    assert [o["container_name"] for o in window["groups"][2]["objects"]] == [f"api-{i}" for i in range(14, 4, -1)]
    assert reader.errors(tool="nothing_like_it") == {"groups": [], "failures": 0, "more_groups": 0}


def test_a_limit_shows_the_newest_groups_and_says_how_many_more(ledger: Path) -> None:
    answer = provenance.Ledger(ledger).errors(limit=2)
    assert shape(answer) == EVERY_GROUP[:2]
    assert answer["more_groups"] == 2 and answer["failures"] == 40
    for bad in ("0", "101", "many"):
        with pytest.raises(provenance.QueryError, match="limit: expected a whole number of groups from 1 to 100"):
            provenance.Ledger(ledger).errors(limit=bad)


def test_without_the_index_a_scan_gives_the_same_answer(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = provenance.Ledger(ledger)
    questions: list[dict[str, Any]] = [{}, {"tool": "docker_container_inspect"}, {"since": at(120)[:19]}, {"limit": 1}]
    indexed = [reader.errors(**question) for question in questions]

    def unavailable(directory: Path) -> Any:
        raise IndexUnavailable("disk full")

    monkeypatch.setattr("mcp_ledger.provenance._query.open_index", unavailable)
    assert [reader.errors(**question) for question in questions] == indexed


def test_the_questions_read_the_partial_index_of_failures(ledger: Path) -> None:
    """Without it SQLite would walk every span of a tool, a group or a time range (no timing in tests:
    the plans of the statements really run)."""
    reader = provenance.Ledger(ledger)
    reader.errors()
    index = open_index(ledger)
    statements: list[str] = []
    index._db.set_trace_callback(statements.append)
    try:
        for question in ({}, {"group": "docker"}, {"since": "2026-09-21", "until": "2026-09-22"}):
            reader.errors(tool="docker_container_inspect", **question)
            reader.errors(**question)
    finally:
        index._db.set_trace_callback(None)
    questions = [sql for sql in statements if "FROM spans" in sql and "error = 1" in sql]
    assert len(questions) >= 6 * 2, statements
    for sql in questions:
        plan = [row[3] for row in index.rows(f"EXPLAIN QUERY PLAN {sql}")]
        assert any("USING INDEX spans_errors" in step for step in plan), (sql, plan)
        assert not any("spans_by" in step for step in plan), (sql, plan)


def test_an_index_of_the_previous_schema_is_rebuilt_with_signatures(ledger_dir: Path) -> None:
    write(ledger_dir, known_spans())
    # What an earlier version left: every span indexed, without signatures.
    db = sqlite3.connect(ledger_dir / INDEX_NAME)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE segments (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            indexed_to INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE spans (id INTEGER PRIMARY KEY AUTOINCREMENT, seg INTEGER NOT NULL, off INTEGER NOT NULL,
            len INTEGER NOT NULL, span_id TEXT NOT NULL, trace_id TEXT NOT NULL, tool TEXT, grp TEXT,
            error INTEGER NOT NULL, session TEXT, connection TEXT, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
            principal TEXT);
        INSERT INTO meta VALUES ('schema', '2'), ('generation', 'old');
        """
    )
    for segment in ledger_dir.glob("*.jsonl"):
        db.execute("INSERT INTO segments (name, indexed_to) VALUES (?, ?)", (segment.name, segment.stat().st_size))
    db.commit()
    db.close()
    index_module._open.pop(ledger_dir.resolve(), None)
    assert shape(provenance.Ledger(ledger_dir).errors()) == EVERY_GROUP


def test_a_missing_ledger_has_no_failures(tmp_path: Path) -> None:
    assert provenance.Ledger(tmp_path / "none").errors() == {"groups": [], "failures": 0, "more_groups": 0}


# Through the real surfaces.


async def test_prov_errors_answers_what_keeps_failing_in_one_call(ledger: Path, connect: Any, mode: str) -> None:
    async with connect(mode) as (client, _):
        for job in (17, 4242, 9):
            await client.call_tool("fake_fail", {"text": f"job {job} of /srv/queue/{job}.json"})
        answer = await call_ok(client, "prov_errors", {})
        assert answer["failures"] == 43
        newest = answer["groups"][0]
        assert (newest["tool"], newest["group"], newest["count"]) == ("fake_fail", "fake", 3)
        assert newest["signature"] == "tool_error: Error executing tool fake_fail: upstream said no: job <n> of <path>"
        assert newest["message"] == "Error executing tool fake_fail: upstream said no: job 9 of /srv/queue/9.json"
        recorded = spans(ledger, "fake_fail")
        assert newest["span_ids"] == [s["span_id"] for s in reversed(recorded)]
        assert newest["first_seen"] <= newest["last_seen"]
        assert shape({"groups": answer["groups"][1:]}) == EVERY_GROUP

        narrowed = await call_ok(client, "prov_errors", {"tool": "docker_container_inspect", "limit": 1})
        assert shape(narrowed) == EVERY_GROUP[:1] and narrowed["more_groups"] == 1
        assert await call_ok(client, "prov_errors", {"group": "github", "since": at(0)[:19], "until": "1m"}) == (
            provenance.Ledger(ledger).errors(group="github", since=at(0)[:19], until="1m")
        )


async def test_the_errors_resource_gives_the_same_groups(ledger: Path, connect: Any, mode: str) -> None:
    async with connect(mode) as (client, _):
        read = await client.read_resource("provenance://errors")
        assert orjson.loads(read.contents[0].text) == provenance.Ledger(ledger).errors()
        read = await client.read_resource(f"provenance://errors?tool=docker_container_inspect&since={at(130)[:19]}")
        assert shape(orjson.loads(read.contents[0].text)) == [("docker_container_inspect", 2, at(140), at(200))]
        read = await client.read_resource("provenance://errors?group=k8s&until=2026-09-22")
        assert shape(orjson.loads(read.contents[0].text)) == [EVERY_GROUP[3]]
        for uri, words in [
            ("provenance://errors?since=yesterday", "since:"),
            ("provenance://errors?until=0001-01-01T00:00:00%2B14:00", "until:"),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.error.code == -32602 and caught.value.error.message.startswith(words)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"since": "yesterday"}, "prov_errors: since: expected an ISO-8601 time"),
        ({"until": "99999999999d"}, "prov_errors: until: "),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"tool": "x" * 129}, "tool"),
        ({"signature": "x"}, "signature"),
    ],
)
async def test_bad_arguments_are_an_error_result_that_says_what_to_fix_and_a_span(
    ledger: Path, connect: Any, mode: str, arguments: dict[str, Any], words: str
) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("prov_errors", arguments)
    text = result_text(result)
    assert result.is_error and words in text, text
    assert "Traceback" not in text
    (recorded,) = spans(ledger, "prov_errors")
    assert recorded["status"]["code"] == "ERROR"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_shows_the_groups_as_a_table_and_as_json(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "errors", "--ledger-dir", str(ledger))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["LAST", "SEEN", "(UTC)", "FIRST", "SEEN"]
    rows = lines[2:6]
    assert [row.split()[:4] for row in rows] == [[g[3], g[2], str(g[1]), g[0]] for g in EVERY_GROUP]
    assert "container_name=api-14" in rows[2] and "repository=acme/infra run_id=10000004" in rows[1]
    assert "40 failed calls in 4 groups" in out and "more groups" not in out

    code, out, _ = run(capsys, "errors", "--ledger-dir", str(ledger), "--json", "--group", "docker", "--limit", "1")
    assert code == 0
    assert orjson.loads(out) == provenance.Ledger(ledger).errors(group="docker", limit=1)
    code, out, _ = run(capsys, "errors", "--ledger-dir", str(ledger), "--limit", "3")
    assert "1 more group: raise --limit, or narrow with --tool, --group, --since" in out


@pytest.mark.parametrize(
    "argv", [["--since", "yesterday"], ["--until", "999999999999d"], ["--limit", "0"], ["--limit", "500"]]
)
def test_the_cli_exits_2_with_a_message_on_bad_arguments(
    ledger: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, "errors", "--ledger-dir", str(ledger), *argv)
    assert code == 2 and out == ""
    assert err.startswith("mcp-ledger errors: ") and "Traceback" not in err
