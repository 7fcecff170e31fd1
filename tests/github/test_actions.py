"""Actions tools through a real MCP client against the spec-checked loopback GitHub."""

from __future__ import annotations

from pathlib import Path

from werkzeug import Request

from tests.github import bodies as b
from tests.github.conftest import REPO_PATH, Connect
from tests.github.fake import FakeGitHub, Reply
from tests.harness import call_error, call_ok, only_span, spans

REPO = {"owner": b.OWNER, "repo": b.REPO}


async def test_workflow_list_pages_with_a_cursor_until_the_last_page(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    workflows = [b.workflow(100 + i, f"wf{i}", f".github/workflows/wf{i}.yml") for i in range(5)]
    github_env.on(
        "GET",
        "/repos/{owner}/{repo}/actions/workflows",
        github_env.paged(workflows, lambda chunk: {"total_count": 5, "workflows": chunk}),
    )
    seen: list[int] = []
    async with connect() as client:
        cursor = None
        for _ in range(5):
            page = await call_ok(client, "github_workflow_list", {**REPO, "limit": 2, "cursor": cursor})
            seen += [w["id"] for w in page["workflows"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [100, 101, 102, 103, 104]
    assert [c.query.get("page") for c in github_env.calls("actions/list-repo-workflows")] == [None, "2", "3"]


async def test_run_list_forwards_filters_to_the_workflow_runs_endpoint(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    runs = [b.run(30433642 + i, branch="main", event="push") for i in range(3)]
    github_env.on(
        "GET",
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
        github_env.paged(runs, lambda chunk: {"total_count": 3, "workflow_runs": chunk}),
    )
    async with connect() as client:
        page = await call_ok(
            client,
            "github_run_list",
            {**REPO, "workflow": "ci.yml", "branch": "main", "status": "failure", "event": "push", "actor": "mona"},
        )
    assert [r["id"] for r in page["runs"]] == [30433642, 30433643, 30433644]
    assert page["runs"][0]["conclusion"] == "failure" and page["runs"][0]["actor"] == "mona"
    (request,) = github_env.calls("actions/list-workflow-runs")
    assert request.path == f"{REPO_PATH}/actions/workflows/ci.yml/runs"
    assert request.query == {"branch": "main", "status": "failure", "event": "push", "actor": "mona", "per_page": "30"}
    span = only_span(ledger_dir, "github_run_list")
    assert span["upstream"]["run_ids"] == [30433642, 30433643, 30433644]
    assert span["upstream"]["github_request_id"].startswith("F00D:")


async def test_run_get_returns_jobs_with_failed_steps_and_durations(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    run_id = 30433642
    github_env.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, b.run(run_id)))
    jobs = [b.job(399444496, run_id, "test"), b.job(399444497, run_id, "lint", conclusion="success")]
    github_env.on(
        "GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", Reply(200, {"total_count": 2, "jobs": jobs})
    )
    async with connect(mode="legacy") as client:
        result = await call_ok(client, "github_run_get", {**REPO, "run_id": run_id})
    assert result["run"]["head_sha"] == b.SHA
    test_job, lint_job = result["jobs"]
    assert test_job["conclusion"] == "failure" and test_job["duration_s"] == 185.0
    assert [s["name"] for s in test_job["failed_steps"]] == ["Run tests"]
    assert test_job["failed_steps"][0]["duration_s"] == 180.0
    assert lint_job["failed_steps"] == [] and result["jobs_next_cursor"] is None
    (jobs_request,) = github_env.calls("actions/list-jobs-for-workflow-run")
    assert jobs_request.query == {"filter": "latest", "per_page": "100"}
    upstream = only_span(ledger_dir, "github_run_get")["upstream"]
    assert upstream["run_id"] == run_id and upstream["head_sha"] == b.SHA
    assert upstream["job_ids"] == [399444496, 399444497]
    assert len(upstream["github_request_id"]) == 2 and upstream["ratelimit_remaining"] == [4999, 4999]


async def test_run_get_pages_a_large_matrix_of_jobs_with_a_cursor(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    run_id = 30433642
    jobs = [b.job(5000 + i, run_id, f"matrix ({i})", conclusion="success") for i in range(230)]
    github_env.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, b.run(run_id)))
    github_env.on(
        "GET",
        "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
        github_env.paged(jobs, lambda chunk: {"total_count": len(jobs), "jobs": chunk}),
    )
    pages = []
    async with connect() as client:
        cursor = None
        for _ in range(4):
            page = await call_ok(client, "github_run_get", {**REPO, "run_id": run_id, "jobs_cursor": cursor})
            pages.append(page)
            cursor = page["jobs_next_cursor"]
            if cursor is None:
                break
    assert [len(page["jobs"]) for page in pages] == [100, 100, 30]
    assert [job["id"] for page in pages for job in page["jobs"]] == [5000 + i for i in range(230)]
    assert {page["jobs_total"] for page in pages} == {230}
    assert [c.query.get("page") for c in github_env.calls("actions/list-jobs-for-workflow-run")] == [None, "2", "3"]
    assert [span["upstream"]["job_ids"][0] for span in spans(ledger_dir, "github_run_get")] == [5000, 5100, 5200]


async def test_job_logs_by_run_finds_failed_jobs_beyond_the_first_hundred(
    github_env: FakeGitHub, connect: Connect
) -> None:
    run_id = 30433642
    jobs = [b.job(7000 + i, run_id, f"shard {i}", conclusion="success") for i in range(150)]
    jobs[140] = b.job(7140, run_id, "shard 140")
    github_env.on(
        "GET",
        "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
        github_env.paged(jobs, lambda chunk: {"total_count": len(jobs), "jobs": chunk}),
    )
    github_env.job_log(7140, b"setup\nFAILED shard 140\n")
    async with connect() as client:
        result = await call_ok(client, "github_job_logs", {**REPO, "run_id": run_id})
    (log,) = result["jobs"]
    assert log["job_id"] == 7140 and log["untrusted_log"].endswith("FAILED shard 140")
    assert result["notes"] == []
    assert len(github_env.calls("actions/list-jobs-for-workflow-run")) == 2


async def test_job_logs_by_run_names_the_failed_jobs_it_did_not_read(github_env: FakeGitHub, connect: Connect) -> None:
    run_id = 30433642
    jobs = [b.job(800 + i, run_id, f"t{i}") for i in range(8)]
    github_env.on(
        "GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", Reply(200, {"total_count": 8, "jobs": jobs})
    )
    for i in range(5):
        github_env.job_log(800 + i, b"FAILED\n")
    async with connect() as client:
        result = await call_ok(client, "github_job_logs", {**REPO, "run_id": run_id, "tail_lines": 1})
    assert [log["job_id"] for log in result["jobs"]] == [800, 801, 802, 803, 804]
    assert result["notes"] == [
        "8 jobs selected; logs of the first 5 returned; ask for the others by job_id: 805, 806, 807"
    ]


def big_log(lines: int) -> bytes:
    """A multi-megabyte job log with a few error lines, GitHub-style timestamps."""
    out = []
    for i in range(1, lines + 1):
        text = f"ERROR: assertion failed in test_{i}" if i % 20_000 == 0 else f"collecting item {i} " + "." * 40
        out.append(f"2026-03-01T10:01:{i % 60:02d}.0000000Z {text}")
    return ("\n".join(out) + "\n").encode()


async def test_job_logs_tail_a_multi_megabyte_log_behind_a_redirect(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    job_id, run_id = 399444496, 30433642
    data = big_log(60_000)
    assert len(data) > 3_000_000
    github_env.on("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}", Reply(200, b.job(job_id, run_id, "test")))
    github_env.job_log(job_id, data)
    async with connect() as client:
        result = await call_ok(client, "github_job_logs", {**REPO, "job_id": job_id})
    (log,) = result["jobs"]
    lines = log["untrusted_log"].splitlines()
    assert len(lines) == 200 and log["lines_returned"] == 200
    assert lines[-1].endswith("ERROR: assertion failed in test_60000")
    assert lines[0].split(" ", 1)[1] == "collecting item 59801 " + "." * 40
    assert log["lines_total"] == 60_000 and log["bytes_total"] == len(data)
    assert log["truncated"] is True and "showing the last 200 of 60000 lines" in log["notes"]
    assert log["failed_steps"] == ["Run tests"]
    blob_request = next(s for s in github_env.seen if s.path.startswith("/_blob/"))
    assert "Authorization" not in blob_request.headers, "the GitHub token must not go to the blob host"
    span = only_span(ledger_dir, "github_job_logs")
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True
    upstream = span["upstream"]
    assert upstream["job_id"] == job_id and upstream["run_id"] == run_id and upstream["head_sha"] == b.SHA
    assert "sig=" not in str(upstream) and upstream["log_blob_host"].startswith("localhost")


async def test_job_logs_grep_keeps_matching_lines_with_their_numbers_within_max_bytes(
    github_env: FakeGitHub, connect: Connect
) -> None:
    job_id, run_id = 399444496, 30433642
    github_env.on("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}", Reply(200, b.job(job_id, run_id, "test")))
    github_env.job_log(job_id, big_log(60_000))
    async with connect() as client:
        grep = await call_ok(client, "github_job_logs", {**REPO, "job_id": job_id, "grep": "ERROR"})
        tight = await call_ok(
            client, "github_job_logs", {**REPO, "job_id": job_id, "tail_lines": 5000, "max_bytes": 1000}
        )
        bad = await call_error(client, "github_job_logs", {**REPO, "job_id": job_id, "grep": "(unclosed"})
    (log,) = grep["jobs"]
    assert log["matches"] == 3 and log["lines_returned"] == 3 and log["truncated"] is False
    assert log["untrusted_log"].splitlines()[0].startswith("20000: ")
    (cut,) = tight["jobs"]
    assert len(cut["untrusted_log"].encode()) <= 1000 and cut["truncated"] is True
    assert any("max_bytes=1000" in note for note in cut["notes"])
    assert "grep" in bad and "regular expression" in bad


async def test_job_logs_by_run_reads_only_the_failed_jobs(github_env: FakeGitHub, connect: Connect) -> None:
    run_id = 30433642
    jobs = [b.job(11, run_id, "lint", conclusion="success"), b.job(12, run_id, "test")]
    github_env.on(
        "GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", Reply(200, {"total_count": 2, "jobs": jobs})
    )
    github_env.job_log(12, b"line one\nFAILED test_x\nline three\n")
    async with connect() as client:
        result = await call_ok(client, "github_job_logs", {**REPO, "run_id": run_id, "tail_lines": 2})
        both = await call_error(client, "github_job_logs", {**REPO, "run_id": run_id, "job_id": 12})
    (log,) = result["jobs"]
    assert log["job_id"] == 12 and log["untrusted_log"] == "FAILED test_x\nline three"
    assert "exactly one of job_id or run_id" in both


async def test_workflow_dispatch_sends_ref_and_inputs_and_reports_the_new_run(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    github_env.on(
        "POST",
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
        Reply(
            200,
            {
                "workflow_run_id": 555,
                "run_url": "https://api.github.com/repos/octo-org/hello/actions/runs/555",
                "html_url": f"{b.WEB}/actions/runs/555",
            },
        ),
    )
    async with connect() as client:
        result = await call_ok(
            client,
            "github_workflow_dispatch",
            {**REPO, "workflow": "deploy.yml", "ref": "main", "inputs": {"env": "staging"}},
        )
    assert result["run_id"] == 555
    (request,) = github_env.calls("actions/create-workflow-dispatch")
    assert request.body == {"ref": "main", "inputs": {"env": "staging"}, "return_run_details": True}
    assert only_span(ledger_dir, "github_workflow_dispatch")["upstream"]["run_id"] == 555


async def test_workflow_dispatch_without_run_details_points_to_run_list(
    github_env: FakeGitHub, connect: Connect
) -> None:
    github_env.on("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", Reply(204))
    async with connect() as client:
        result = await call_ok(client, "github_workflow_dispatch", {**REPO, "workflow": "161335", "ref": "v1.2.0"})
    assert result["run_id"] is None and "github_run_list" in result["note"]


async def test_rerun_failed_jobs_and_cancel_report_the_run_state(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    run_id = 30433642
    state = {"status": "completed"}

    def rerun(request: Request, params: dict[str, str]) -> Reply:
        state["status"] = "queued"
        return Reply(201, {})

    github_env.on("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs", rerun)
    github_env.on("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel", Reply(202, {}))
    github_env.on(
        "GET",
        "/repos/{owner}/{repo}/actions/runs/{run_id}",
        lambda request, params: Reply(200, b.run(run_id, status=state["status"], conclusion=None)),
    )
    async with connect() as client:
        rerun_result = await call_ok(client, "github_run_rerun", {**REPO, "run_id": run_id, "failed_only": True})
        cancel_result = await call_ok(client, "github_run_cancel", {**REPO, "run_id": run_id})
    assert rerun_result == {
        "run_id": run_id,
        "action": "rerun-failed-jobs",
        "status": "queued",
        "head_sha": b.SHA,
        "html_url": f"{b.WEB}/actions/runs/{run_id}",
    }
    assert cancel_result["action"] == "cancel"
    assert github_env.calls("actions/re-run-workflow-failed-jobs")[0].body == {"enable_debug_logging": False}
    assert github_env.calls("actions/re-run-workflow") == []
    upstream = only_span(ledger_dir, "github_run_rerun")["upstream"]
    assert upstream["run_id"] == run_id and upstream["head_sha"] == b.SHA


async def test_cancelling_a_finished_run_says_why_it_cannot(github_env: FakeGitHub, connect: Connect) -> None:
    github_env.on(
        "POST",
        "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel",
        Reply(
            409,
            {
                "message": "Cannot cancel a workflow run that is completed.",
                "documentation_url": "https://docs.github.com",
            },
        ),
    )
    async with connect() as client:
        text = await call_error(client, "github_run_cancel", {**REPO, "run_id": 7})
    assert "workflow run 7 cannot be cancelled" in text
