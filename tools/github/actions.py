"""GitHub Actions: workflows, runs, jobs and their logs; dispatch, rerun, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field, field_validator, model_validator

from mcp_ledger.provenance import annotate
from mcp_ledger.tools._logtail import Grep, check_pattern
from mcp_ledger.tools.github._backend import GitHubBackend, next_page
from mcp_ledger.tools.github._models import CURSOR_PATTERN, UNTRUSTED, PageArgs, RepoArgs, login, page, page_params
from mcp_ledger.tools.group import ToolModel, UpstreamError, tool

FAILED_CONCLUSIONS = ("failure", "timed_out", "cancelled", "startup_failure")
# github_job_logs by run reads at most this many pages of 100 jobs (a matrix makes at most 256 per run).
JOB_PAGES = 10
RunStatus = Literal[
    "completed",
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "skipped",
    "stale",
    "success",
    "timed_out",
    "in_progress",
    "queued",
    "requested",
    "waiting",
    "pending",
]
WorkflowRef = Field(
    description="Workflow id or file name (e.g. ci.yml)", pattern=r"^[A-Za-z0-9_.-]{1,255}$", max_length=255
)


class WorkflowListArgs(PageArgs):
    pass


class Workflow(ToolModel):
    id: int
    name: str
    path: str
    state: str
    html_url: str


class WorkflowList(ToolModel):
    workflows: list[Workflow]
    total_count: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class RunListArgs(PageArgs):
    workflow: str | None = Field(default=None, description=WorkflowRef.description, pattern=r"^[A-Za-z0-9_.-]{1,255}$")
    branch: str | None = Field(default=None, max_length=255)
    status: RunStatus | None = Field(default=None, description="Run status or conclusion")
    event: str | None = Field(default=None, description="push, pull_request, workflow_dispatch, …", max_length=64)
    actor: str | None = Field(default=None, description="Login of the user who triggered the run", max_length=100)
    head_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")


class RunSummary(ToolModel):
    id: int
    name: str | None
    display_title: str
    workflow_id: int
    run_number: int
    run_attempt: int | None
    event: str
    status: str | None
    conclusion: str | None
    head_branch: str | None
    head_sha: str
    actor: str | None
    created_at: str
    updated_at: str
    html_url: str


class RunList(ToolModel):
    runs: list[RunSummary]
    total_count: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class RunGetArgs(RepoArgs):
    run_id: int = Field(gt=0)
    jobs_cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)


class Step(ToolModel):
    number: int
    name: str
    conclusion: str | None
    duration_s: float | None


class Job(ToolModel):
    id: int = Field(description="Job id (also the check run id); pass to github_job_logs")
    name: str
    status: str
    conclusion: str | None
    started_at: str
    completed_at: str | None
    duration_s: float | None
    runner_name: str | None
    html_url: str | None
    failed_steps: list[Step]


class Run(ToolModel):
    run: RunSummary
    jobs: list[Job] = Field(description="Jobs of the latest attempt, 100 to a page")
    jobs_total: int
    jobs_next_cursor: str | None = Field(description="Pass as jobs_cursor for more jobs; null on the last page")


class JobLogsArgs(RepoArgs):
    job_id: int | None = Field(default=None, gt=0, description="One job's log (from github_run_get or a check run)")
    run_id: int | None = Field(default=None, gt=0, description="A run's jobs' logs instead of one job's")
    failed_only: bool = Field(
        default=True, description="With run_id: only jobs that failed, timed out or were cancelled"
    )
    tail_lines: int = Field(default=200, ge=1, le=5000, description="Keep the last N lines (of the matches, with grep)")
    grep: str | None = Field(
        default=None, max_length=200, description="Python regular expression; keep only matching lines"
    )
    max_bytes: int = Field(default=32_000, ge=1_000, le=1_000_000, description="Cap on returned log text, all jobs")

    @field_validator("grep")
    @classmethod
    def _grep_compiles(cls, value: str | None) -> str | None:
        return check_pattern(value)

    @model_validator(mode="after")
    def _one_target(self) -> JobLogsArgs:
        if (self.job_id is None) == (self.run_id is None):
            raise ValueError("give exactly one of job_id or run_id")
        return self


class JobLog(ToolModel):
    job_id: int
    run_id: int
    name: str
    conclusion: str | None
    failed_steps: list[str]
    lines_total: int
    bytes_total: int
    lines_returned: int
    matches: int | None = Field(description="Lines matching grep (null without grep)")
    truncated: bool
    notes: list[str] = Field(description="What was left out and why")
    untrusted_log: str = Field(description=f"Log lines. {UNTRUSTED}")


class JobLogs(ToolModel):
    jobs: list[JobLog]
    notes: list[str]


class WorkflowDispatchArgs(RepoArgs):
    workflow: str = WorkflowRef
    ref: str = Field(description="Branch or tag to run on", min_length=1, max_length=255)
    inputs: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="workflow_dispatch inputs", max_length=25
    )


class Dispatch(ToolModel):
    workflow: str
    ref: str
    run_id: int | None = Field(description="The new run (when GitHub reports it)")
    html_url: str | None
    note: str


class RunRerunArgs(RepoArgs):
    run_id: int = Field(gt=0)
    failed_only: bool = Field(default=False, description="Re-run only the failed jobs (and their dependents)")
    enable_debug_logging: bool = False


class RunCancelArgs(RepoArgs):
    run_id: int = Field(gt=0)


class RunAction(ToolModel):
    run_id: int
    action: str
    status: str | None = Field(description="The run's status right after the request")
    head_sha: str
    html_url: str


def _duration(start: Any, end: Any) -> float | None:
    if not (isinstance(start, str) and isinstance(end, str)):
        return None
    try:
        delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except ValueError:
        return None
    return round(delta.total_seconds(), 3)


def _run_summary(run: dict[str, Any]) -> RunSummary:
    return RunSummary(
        id=run["id"],
        name=run.get("name"),
        display_title=run["display_title"],
        workflow_id=run["workflow_id"],
        run_number=run["run_number"],
        run_attempt=run.get("run_attempt"),
        event=run["event"],
        status=run.get("status"),
        conclusion=run.get("conclusion"),
        head_branch=run.get("head_branch"),
        head_sha=run["head_sha"],
        actor=login(run.get("actor")),
        created_at=run["created_at"],
        updated_at=run["updated_at"],
        html_url=run["html_url"],
    )


def _job(job: dict[str, Any]) -> Job:
    steps = [
        Step(
            number=step["number"],
            name=step["name"],
            conclusion=step.get("conclusion"),
            duration_s=_duration(step.get("started_at"), step.get("completed_at")),
        )
        for step in job.get("steps") or ()
        if step.get("conclusion") in FAILED_CONCLUSIONS
    ]
    return Job(
        id=job["id"],
        name=job["name"],
        status=job["status"],
        conclusion=job.get("conclusion"),
        started_at=job["started_at"],
        completed_at=job.get("completed_at"),
        duration_s=_duration(job.get("started_at"), job.get("completed_at")),
        runner_name=job.get("runner_name"),
        html_url=job.get("html_url"),
        failed_steps=steps,
    )


async def _run(backend: GitHubBackend, args: RepoArgs, run_id: int) -> dict[str, Any]:
    response = await backend.request(
        "GET", f"{args.repo_path}/actions/runs/{run_id}", what=f"workflow run {run_id} in {args.full_name}"
    )
    run: dict[str, Any] = response.json()
    annotate(run_id=run["id"], head_sha=run["head_sha"], run_attempt=run.get("run_attempt"), run_url=run["html_url"])
    return run


async def _jobs(
    backend: GitHubBackend, args: RepoArgs, run_id: int, cursor: str | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """One page of a run's jobs (latest attempt): the jobs, how many in all, the next page's cursor."""
    response = await backend.request(
        "GET",
        f"{args.repo_path}/actions/runs/{run_id}/jobs",
        what=f"jobs of workflow run {run_id} in {args.full_name}",
        params={"filter": "latest", "per_page": 100, "page": page(cursor)},
    )
    body = response.json()
    return body["jobs"], body["total_count"], next_page(response.headers.get("link"))


@tool(read_only=True, idempotent=True, open_world=True)
async def github_workflow_list(args: WorkflowListArgs, backend: GitHubBackend, ctx: Context) -> WorkflowList:
    """List a repository's Actions workflows (id, name, file path, state)."""
    response = await backend.request(
        "GET", f"{args.repo_path}/actions/workflows", what=f"workflows of {args.full_name}", params=page_params(args)
    )
    body = response.json()
    annotate(repository=args.full_name)
    return WorkflowList(
        workflows=[Workflow.model_validate(w) for w in body["workflows"]],
        total_count=body["total_count"],
        next_cursor=next_page(response.headers.get("link")),
    )


@tool(read_only=True, idempotent=True, open_world=True)
async def github_run_list(args: RunListArgs, backend: GitHubBackend, ctx: Context) -> RunList:
    """List workflow runs, newest first, filtered by workflow, branch, status, event, actor or head sha."""
    path = (
        f"{args.repo_path}/actions/workflows/{args.workflow}/runs"
        if args.workflow
        else f"{args.repo_path}/actions/runs"
    )
    what = f"workflow {args.workflow} in {args.full_name}" if args.workflow else f"runs of {args.full_name}"
    params = {
        **page_params(args),
        "branch": args.branch,
        "status": args.status,
        "event": args.event,
        "actor": args.actor,
        "head_sha": args.head_sha,
    }
    response = await backend.request("GET", path, what=what, params=params)
    body = response.json()
    runs = [_run_summary(run) for run in body["workflow_runs"]]
    annotate(repository=args.full_name, run_ids=[run.id for run in runs])
    return RunList(runs=runs, total_count=body["total_count"], next_cursor=next_page(response.headers.get("link")))


@tool(read_only=True, idempotent=True, open_world=True)
async def github_run_get(args: RunGetArgs, backend: GitHubBackend, ctx: Context) -> Run:
    """One workflow run with its jobs: status, conclusion, durations and the steps that failed."""
    run = await _run(backend, args, args.run_id)
    jobs, total, next_cursor = await _jobs(backend, args, args.run_id, args.jobs_cursor)
    annotate(job_ids=[job["id"] for job in jobs])
    return Run(run=_run_summary(run), jobs=[_job(job) for job in jobs], jobs_total=total, jobs_next_cursor=next_cursor)


@tool(read_only=True, idempotent=True, open_world=True)
async def github_job_logs(args: JobLogsArgs, backend: GitHubBackend, ctx: Context) -> JobLogs:
    """The tail of a job's log (by job_id), or of a run's failed jobs (by run_id), optionally grep-filtered.

    Default: last 200 lines, at most 32 kB; the result says what was left out."""
    notes: list[str] = []
    if args.job_id is not None:
        response = await backend.request(
            "GET", f"{args.repo_path}/actions/jobs/{args.job_id}", what=f"job {args.job_id} in {args.full_name}"
        )
        jobs = [response.json()]
    else:
        assert args.run_id is not None
        all_jobs: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(JOB_PAGES):
            chunk, total, cursor = await _jobs(backend, args, args.run_id, cursor)
            all_jobs += chunk
            if cursor is None:
                break
        jobs = [j for j in all_jobs if not args.failed_only or j.get("conclusion") in FAILED_CONCLUSIONS]
        if cursor is not None:
            notes.append(
                f"only the first {len(all_jobs)} of {total} jobs were considered; "
                f"page on with github_run_get(jobs_cursor={cursor!r}) and ask for a job's log by job_id"
            )
        if not jobs:
            notes.append(f"run {args.run_id} has no failed jobs" if args.failed_only else "the run has no jobs")
        if len(jobs) > 5:
            rest = [str(job["id"]) for job in jobs[5:]]
            shown = ", ".join(rest[:50]) + (f" and {len(rest) - 50} more" if len(rest) > 50 else "")
            notes.append(
                f"{len(jobs)} jobs selected; logs of the first 5 returned; ask for the others by job_id: {shown}"
            )
            jobs = jobs[:5]
    grep = Grep(args.grep) if args.grep else None
    budget = args.max_bytes // max(len(jobs), 1)
    results: list[JobLog] = []
    for job in jobs:
        annotate(job_id=job["id"], run_id=job["run_id"], head_sha=job["head_sha"], job_url=job.get("html_url"))
        excerpt = await backend.read_log(
            f"{args.repo_path}/actions/jobs/{job['id']}/logs",
            what=f"job {job['id']} in {args.full_name}",
            tail_lines=args.tail_lines,
            grep=grep,
            max_bytes=budget,
        )
        results.append(
            JobLog(
                job_id=job["id"],
                run_id=job["run_id"],
                name=job["name"],
                conclusion=job.get("conclusion"),
                failed_steps=[step.name for step in _job(job).failed_steps],
                lines_total=excerpt.lines_total,
                bytes_total=excerpt.bytes_total,
                lines_returned=excerpt.lines_returned,
                matches=excerpt.matches,
                truncated=excerpt.truncated,
                notes=excerpt.notes,
                untrusted_log=excerpt.text,
            )
        )
    if results:
        annotate(untrusted_content=True)
    return JobLogs(jobs=results, notes=notes)


@tool(read_only=False, destructive=False, idempotent=False)
async def github_workflow_dispatch(args: WorkflowDispatchArgs, backend: GitHubBackend, ctx: Context) -> Dispatch:
    """Start a workflow that has a workflow_dispatch trigger, on a branch or tag, with inputs."""
    response = await backend.request(
        "POST",
        f"{args.repo_path}/actions/workflows/{args.workflow}/dispatches",
        what=f"workflow {args.workflow} in {args.full_name}",
        json={"ref": args.ref, "inputs": args.inputs, "return_run_details": True},
    )
    annotate(repository=args.full_name, workflow=args.workflow, ref=args.ref)
    if response.status_code == 200 and response.content:
        body = response.json()
        annotate(run_id=body["workflow_run_id"], run_url=body["html_url"])
        return Dispatch(
            workflow=args.workflow,
            ref=args.ref,
            run_id=body["workflow_run_id"],
            html_url=body["html_url"],
            note="run created; follow it with github_run_get",
        )
    return Dispatch(
        workflow=args.workflow,
        ref=args.ref,
        run_id=None,
        html_url=None,
        note="dispatch accepted; find the run with github_run_list(workflow=…, event='workflow_dispatch')",
    )


@tool(read_only=False, destructive=False, idempotent=False)
async def github_run_rerun(args: RunRerunArgs, backend: GitHubBackend, ctx: Context) -> RunAction:
    """Re-run a workflow run: all jobs, or only the failed ones (failed_only)."""
    suffix = "rerun-failed-jobs" if args.failed_only else "rerun"
    await backend.request(
        "POST",
        f"{args.repo_path}/actions/runs/{args.run_id}/{suffix}",
        what=f"workflow run {args.run_id} in {args.full_name}",
        json={"enable_debug_logging": args.enable_debug_logging},
    )
    run = await _run(backend, args, args.run_id)
    return RunAction(
        run_id=run["id"], action=suffix, status=run.get("status"), head_sha=run["head_sha"], html_url=run["html_url"]
    )


@tool(read_only=False, destructive=False, idempotent=True)
async def github_run_cancel(args: RunCancelArgs, backend: GitHubBackend, ctx: Context) -> RunAction:
    """Cancel a queued or in-progress workflow run."""
    response = await backend.request(
        "POST",
        f"{args.repo_path}/actions/runs/{args.run_id}/cancel",
        what=f"workflow run {args.run_id} in {args.full_name}",
        ok_statuses=(409,),
    )
    if response.status_code == 409:
        raise UpstreamError(f"workflow run {args.run_id} cannot be cancelled: it is not queued or in progress")
    run = await _run(backend, args, args.run_id)
    return RunAction(
        run_id=run["id"], action="cancel", status=run.get("status"), head_sha=run["head_sha"], html_url=run["html_url"]
    )
