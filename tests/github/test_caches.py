"""Actions cache tools through a real MCP client against the spec-checked loopback GitHub."""

from __future__ import annotations

from pathlib import Path

from werkzeug import Request

from tests.github import bodies as b
from tests.github.conftest import Connect
from tests.github.fake import FakeGitHub, Reply
from tests.harness import call_error, call_ok, effective_hints, only_span, spans

REPO = {"owner": b.OWNER, "repo": b.REPO}
FULL_NAME = f"{b.OWNER}/{b.REPO}"
CACHES = "/repos/{owner}/{repo}/actions/caches"
USAGE = "/repos/{owner}/{repo}/actions/cache/usage"
LIMIT = "/repos/{owner}/{repo}/actions/cache/storage-limit"
GIB = 1024**3
KEY_A = "Linux-pip-958aff96db2d75d67787d1e634ae70b659de937b"
KEY_B = "Linux-node-e5bd3914e2e596debea16f433f57875b5b90bcd6"


def usage(size: int, count: int) -> Reply:
    return Reply(200, {"full_name": FULL_NAME, "active_caches_size_in_bytes": size, "active_caches_count": count})


def serve_usage(fake: FakeGitHub, size: int = 3 * GIB, count: int = 3, limit: Reply | None = None) -> None:
    fake.on("GET", USAGE, usage(size, count))
    fake.on("GET", LIMIT, limit or Reply(200, {"max_cache_size_gb": 10}))


async def test_cache_list_forwards_filters_and_reports_usage_against_the_limit(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    entries = [b.cache(11, KEY_A, size=2 * GIB), b.cache(12, KEY_A + "-x", ref="refs/pull/7/merge", size=GIB)]
    github_env.on("GET", CACHES, Reply(200, b.cache_list(entries)))
    serve_usage(github_env)
    async with connect() as client:
        result = await call_ok(
            client,
            "github_cache_list",
            {**REPO, "key": "Linux-pip-", "ref": "refs/heads/main", "sort": "size_in_bytes", "limit": 50},
        )
    assert result["repository"] == FULL_NAME and result["total_count"] == 2 and result["next_cursor"] is None
    assert result["caches"][0] == {
        "id": 11,
        "key": KEY_A,
        "ref": "refs/heads/main",
        "size_bytes": 2 * GIB,
        "created_at": "2026-02-28T22:45:36.000Z",
        "last_accessed_at": "2026-03-01T10:45:36.000Z",
    }
    assert result["usage"] == {
        "active_caches": 3,
        "active_bytes": 3 * GIB,
        "limit_bytes": 10 * GIB,
        "used_percent": 30.0,
        "note": None,
    }
    (request,) = github_env.calls("actions/get-actions-cache-list")
    assert request.query == {
        "per_page": "50",
        "key": "Linux-pip-",
        "ref": "refs/heads/main",
        "sort": "size_in_bytes",
        "direction": "desc",
    }
    upstream = only_span(ledger_dir, "github_cache_list")["upstream"]
    assert upstream["repository"] == FULL_NAME
    assert upstream["cache_ids"] == [11, 12] and upstream["cache_keys"] == [KEY_A, KEY_A + "-x"]
    assert upstream["cache_usage_bytes"] == 3 * GIB and upstream["cache_limit_bytes"] == 10 * GIB
    assert len(upstream["github_request_id"]) == 3


async def test_cache_list_pages_on_and_reads_the_usage_only_on_the_first_page(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    entries = [b.cache(100 + i, f"key-{i}") for i in range(5)]
    github_env.on("GET", CACHES, github_env.paged(entries, lambda chunk: b.cache_list(chunk, total=5)))
    serve_usage(github_env)
    seen: list[int] = []
    async with connect() as client:
        first = await call_ok(client, "github_cache_list", {**REPO, "limit": 3})
        second = await call_ok(client, "github_cache_list", {**REPO, "limit": 3, "cursor": first["next_cursor"]})
    seen = [c["id"] for c in first["caches"] + second["caches"]]
    assert seen == [100, 101, 102, 103, 104]
    assert first["next_cursor"] == "2" and second["next_cursor"] is None
    assert first["usage"] is not None and second["usage"] is None
    assert len(github_env.calls("actions/get-actions-cache-usage")) == 1
    assert [span["upstream"]["cache_ids"] for span in spans(ledger_dir, "github_cache_list")] == [
        [100, 101, 102],
        [103, 104],
    ]


async def test_a_reader_without_admin_rights_gets_the_usage_and_a_note_instead_of_the_limit(
    github_env: FakeGitHub, connect: Connect
) -> None:
    github_env.on("GET", CACHES, Reply(200, b.cache_list([])))
    refused = Reply(
        403, {"message": "Must have admin rights to Repository.", "documentation_url": "https://docs.github.com"}
    )
    serve_usage(github_env, size=5000, count=1, limit=refused)
    async with connect() as client:
        result = await call_ok(client, "github_cache_list", REPO)
    assert result["caches"] == [] and result["total_count"] == 0
    assert result["usage"]["active_bytes"] == 5000 and result["usage"]["limit_bytes"] is None
    assert result["usage"]["used_percent"] is None and "needs admin access" in result["usage"]["note"]


async def test_cache_delete_is_destructive_and_hidden_unless_allowed(github_env: FakeGitHub, connect: Connect) -> None:
    async with connect() as client:
        default = {tool.name for tool in (await client.list_tools()).tools}
        hidden = await call_error(client, "github_cache_delete", {**REPO, "cache_id": 5})
    async with connect(allow_destructive=True, read_only=True) as client:
        read_only = {tool.name for tool in (await client.list_tools()).tools}
    async with connect(allow_destructive=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert "github_cache_list" in default and "github_cache_delete" not in default
    assert "github_cache_delete" in hidden
    assert "github_cache_delete" not in read_only
    hints = effective_hints(tools["github_cache_delete"].annotations)
    assert hints["destructiveHint"] is True and hints["readOnlyHint"] is False and hints["openWorldHint"] is True
    assert github_env.seen == []


async def test_cache_delete_by_id_names_the_cache_and_the_repository_in_the_ledger(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    github_env.on("DELETE", CACHES + "/{cache_id}", Reply(204))
    async with connect(allow_destructive=True) as client:
        result = await call_ok(client, "github_cache_delete", {**REPO, "cache_id": 505})
    assert result == {"repository": FULL_NAME, "deleted_ids": [505], "deleted": []}
    (request,) = github_env.calls("actions/delete-actions-cache-by-id")
    assert request.path == f"/repos/{FULL_NAME}/actions/caches/505"
    span = only_span(ledger_dir, "github_cache_delete")
    assert span["attributes"]["mcp-ledger.tool.destructive"] is True
    assert span["upstream"]["repository"] == FULL_NAME and span["upstream"]["cache_id"] == 505


async def test_cache_delete_by_key_and_ref_reports_every_deleted_cache(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    def delete(request: Request, params: dict[str, str]) -> Reply:
        if request.args.get("key") != KEY_B:
            return Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com"})
        return Reply(200, b.cache_list([b.cache(31, KEY_B, ref=request.args.get("ref", "refs/heads/main"))]))

    github_env.on("DELETE", CACHES, delete)
    async with connect(allow_destructive=True) as client:
        result = await call_ok(client, "github_cache_delete", {**REPO, "key": KEY_B, "ref": "refs/heads/dev"})
        missing = await call_error(client, "github_cache_delete", {**REPO, "key": "no-such-key"})
    assert result["deleted_ids"] == [31] and result["deleted"][0]["ref"] == "refs/heads/dev"
    assert [c.query for c in github_env.calls("actions/delete-actions-cache-by-key")] == [
        {"key": KEY_B, "ref": "refs/heads/dev"},
        {"key": "no-such-key"},
    ]
    assert missing == (
        "not found: Actions caches with key 'no-such-key' in octo-org/hello (404); "
        "list the caches with github_cache_list"
    )
    first, second = spans(ledger_dir, "github_cache_delete")
    assert first["upstream"]["cache_key"] == KEY_B and first["upstream"]["cache_ref"] == "refs/heads/dev"
    assert first["upstream"]["cache_ids"] == [31] and first["upstream"]["cache_keys"] == [KEY_B]
    assert second["status"]["code"] == "ERROR" and second["upstream"]["cache_key"] == "no-such-key"


async def test_cache_delete_takes_exactly_one_target(github_env: FakeGitHub, connect: Connect) -> None:
    async with connect(allow_destructive=True) as client:
        both = await call_error(client, "github_cache_delete", {**REPO, "cache_id": 5, "key": KEY_A})
        neither = await call_error(client, "github_cache_delete", REPO)
        ref_alone = await call_error(client, "github_cache_delete", {**REPO, "cache_id": 5, "ref": "refs/heads/x"})
        not_a_ref = await call_error(client, "github_cache_delete", {**REPO, "key": KEY_A, "ref": "main"})
    assert "exactly one of cache_id or key" in both and "exactly one of cache_id or key" in neither
    assert "give key with it" in ref_alone
    assert "ref" in not_a_ref
    assert github_env.seen == []


async def test_offline_or_busy_runners_and_cache_usage_by_key_with_every_object_in_the_ledger(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    """Issue 14's question: which self-hosted runners are offline or busy, and how much Actions cache does
    this repository use and for which keys — answered by two calls, with every object named in the ledger."""
    runners = [b.runner(1, "idle"), b.runner(2, "busy-one", busy=True), b.runner(3, "gone", status="offline")]
    github_env.on("GET", "/repos/{owner}/{repo}/actions/runners", Reply(200, {"total_count": 3, "runners": runners}))
    caches = [b.cache(41, KEY_A, size=700_000_000), b.cache(42, KEY_B, size=300_000_000)]
    github_env.on("GET", CACHES, Reply(200, b.cache_list(caches)))
    serve_usage(github_env, size=1_000_000_000, count=2)
    async with connect() as client:
        listed = await call_ok(client, "github_runner_list", {**REPO, "limit": 100})
        cached = await call_ok(client, "github_cache_list", {**REPO, "sort": "size_in_bytes", "limit": 100})
    attention = {r["name"]: (r["status"], r["busy"]) for r in listed["runners"] if r["status"] != "online" or r["busy"]}
    assert attention == {"busy-one": ("online", True), "gone": ("offline", False)}
    assert listed["next_cursor"] is None and cached["next_cursor"] is None
    assert {c["key"]: c["size_bytes"] for c in cached["caches"]} == {KEY_A: 700_000_000, KEY_B: 300_000_000}
    assert cached["usage"]["active_bytes"] == 1_000_000_000 and cached["usage"]["used_percent"] == 9.31
    runner_span = only_span(ledger_dir, "github_runner_list")["upstream"]
    cache_span = only_span(ledger_dir, "github_cache_list")["upstream"]
    assert runner_span["repository"] == FULL_NAME and runner_span["runner_ids"] == [1, 2, 3]
    assert cache_span["repository"] == FULL_NAME
    assert cache_span["cache_ids"] == [41, 42] and cache_span["cache_keys"] == [KEY_A, KEY_B]
