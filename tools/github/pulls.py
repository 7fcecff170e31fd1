"""Pull requests: list, get (with files, diff, checks, reviews on request); create, review, merge."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field, model_validator

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.github._backend import GitHubBackend, next_page
from mcp_ledger.tools.github._models import CURSOR_PATTERN, UNTRUSTED, PageArgs, RepoArgs, login, page, page_params
from mcp_ledger.tools.group import ToolModel, UpstreamError, tool

DIFF_MEDIA_TYPE = "application/vnd.github.diff"


class PrListArgs(PageArgs):
    state: Literal["open", "closed", "all"] = "open"
    base: str | None = Field(default=None, description="Base branch name", max_length=255)
    head: str | None = Field(default=None, description="user:branch or org:branch", max_length=255)
    sort: Literal["created", "updated", "popularity", "long-running"] = "created"
    direction: Literal["asc", "desc"] = "desc"


class PrSummary(ToolModel):
    number: int
    title: str
    state: str
    draft: bool | None
    author: str | None
    head_ref: str
    head_sha: str
    base_ref: str
    labels: list[str]
    created_at: str
    updated_at: str
    html_url: str


class PrList(ToolModel):
    pulls: list[PrSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class PrGetArgs(RepoArgs):
    number: int = Field(gt=0, description="Pull request number")
    include: list[Literal["files", "diff", "checks", "reviews"]] = Field(
        default_factory=list,
        description="Extras: changed files, the unified diff, CI checks of the head commit, reviews",
        max_length=4,
    )
    diff_max_bytes: int = Field(default=50_000, ge=1_000, le=1_000_000, description="Cap on the returned diff")
    # A list's cursor includes that list; each list comes 100 to a page.
    files_cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)
    checks_cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)
    reviews_cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)


class PrDetail(PrSummary):
    merged: bool
    mergeable: bool | None
    mergeable_state: str
    additions: int
    deletions: int
    changed_files: int
    commits: int
    untrusted_body: str | None = Field(description=f"The PR description. {UNTRUSTED}")


class PrFile(ToolModel):
    filename: str
    status: str
    additions: int
    deletions: int
    previous_filename: str | None = None


class PrDiff(ToolModel):
    bytes_total: int
    truncated: bool
    untrusted_diff: str = Field(description=f"Unified diff. {UNTRUSTED}")


class CheckRun(ToolModel):
    id: int = Field(description="For GitHub Actions this is the job id: pass it to github_job_logs")
    name: str
    status: str
    conclusion: str | None
    app: str | None
    details_url: str | None
    completed_at: str | None


class CommitStatus(ToolModel):
    context: str
    state: str
    description: str | None
    target_url: str | None


class PrChecks(ToolModel):
    head_sha: str
    combined_state: str = Field(description="Combined commit status: success, pending, failure or error")
    statuses: list[CommitStatus]
    statuses_total: int
    check_runs: list[CheckRun]
    check_runs_total: int
    failing: list[str] = Field(description="Names of failed check runs and statuses (of this page)")
    next_cursor: str | None = Field(description="Pass as checks_cursor for more check runs and statuses")


class Review(ToolModel):
    id: int
    author: str | None
    state: str
    submitted_at: str | None
    commit_id: str | None
    untrusted_body: str = Field(description=f"Review text. {UNTRUSTED}")


class Pr(ToolModel):
    pr: PrDetail
    files: list[PrFile] | None = None
    files_next_cursor: str | None = Field(default=None, description="Pass as files_cursor for more files")
    files_note: str | None = Field(default=None, description="Set when GitHub lists fewer files than changed")
    diff: PrDiff | None = None
    checks: PrChecks | None = None
    reviews: list[Review] | None = None
    reviews_next_cursor: str | None = Field(default=None, description="Pass as reviews_cursor for more reviews")


class PrCreateArgs(RepoArgs):
    title: str = Field(min_length=1, max_length=256)
    head: str = Field(description="Branch with the changes (user:branch for a fork)", min_length=1, max_length=255)
    base: str = Field(description="Branch to merge into", min_length=1, max_length=255)
    body: str | None = Field(default=None, max_length=65_536)
    draft: bool = False


class PrReviewArgs(RepoArgs):
    number: int = Field(gt=0)
    event: Literal["COMMENT", "APPROVE", "REQUEST_CHANGES"]
    body: str | None = Field(default=None, max_length=65_536, description="Required for COMMENT and REQUEST_CHANGES")
    commit_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{40}$", description="Review this commit (default: the current head)"
    )

    @model_validator(mode="after")
    def _body_when_needed(self) -> PrReviewArgs:
        if self.event != "APPROVE" and not self.body:
            raise ValueError(f"{self.event} needs a body")
        return self


class ReviewResult(ToolModel):
    id: int
    state: str
    commit_id: str | None
    html_url: str


class PrMergeArgs(RepoArgs):
    number: int = Field(gt=0)
    expected_head_sha: str = Field(
        pattern=r"^[0-9a-f]{40}$", description="Merge only if the head is still this commit (from github_pr_get)"
    )
    method: Literal["merge", "squash", "rebase"] = "merge"
    commit_title: str | None = Field(default=None, max_length=256)
    commit_message: str | None = Field(default=None, max_length=65_536)


class MergeResult(ToolModel):
    merged: bool
    sha: str = Field(description="The merge (or squash/rebase) commit")
    message: str


def _summary(pull: dict[str, Any]) -> PrSummary:
    return PrSummary(
        number=pull["number"],
        title=pull["title"],
        state=pull["state"],
        draft=pull.get("draft"),
        author=login(pull.get("user")),
        head_ref=pull["head"]["ref"],
        head_sha=pull["head"]["sha"],
        base_ref=pull["base"]["ref"],
        labels=[label["name"] for label in pull.get("labels") or () if isinstance(label, dict)],
        created_at=pull["created_at"],
        updated_at=pull["updated_at"],
        html_url=pull["html_url"],
    )


def _note_pr(pull: dict[str, Any]) -> None:
    annotate(pr_number=pull["number"], head_sha=pull["head"]["sha"], pr_url=pull["html_url"])


@tool(read_only=True, idempotent=True, open_world=True)
async def github_pr_list(args: PrListArgs, backend: GitHubBackend, ctx: Context) -> PrList:
    """List pull requests (default: open, newest first), filtered by state, base or head branch."""
    params = {
        **page_params(args),
        "state": args.state,
        "base": args.base,
        "head": args.head,
        "sort": args.sort,
        "direction": args.direction,
    }
    response = await backend.request(
        "GET", f"{args.repo_path}/pulls", what=f"pull requests of {args.full_name}", params=params
    )
    pulls = [_summary(pull) for pull in response.json()]
    annotate(repository=args.full_name, pr_numbers=[pull.number for pull in pulls])
    return PrList(pulls=pulls, next_cursor=next_page(response.headers.get("link")))


@tool(read_only=True, idempotent=True, open_world=True)
async def github_pr_get(args: PrGetArgs, backend: GitHubBackend, ctx: Context) -> Pr:
    """One pull request; include adds changed files, the diff (bounded), CI checks of the head commit
    (check runs, statuses) and reviews, 100 a page (*_cursor: the next)."""
    what = f"pull request #{args.number} in {args.full_name}"
    path = f"{args.repo_path}/pulls/{args.number}"
    pull = (await backend.request("GET", path, what=what)).json()
    _note_pr(pull)
    annotate(untrusted_content=True)
    result = Pr(
        pr=PrDetail(
            **_summary(pull).model_dump(),
            merged=pull["merged"],
            mergeable=pull.get("mergeable"),
            mergeable_state=pull["mergeable_state"],
            additions=pull["additions"],
            deletions=pull["deletions"],
            changed_files=pull["changed_files"],
            commits=pull["commits"],
            untrusted_body=pull.get("body"),
        )
    )
    include = set(args.include)
    include.update(name for name in ("files", "checks", "reviews") if getattr(args, f"{name}_cursor"))
    if "files" in include:
        response = await backend.request(
            "GET", f"{path}/files", what=what, params={"per_page": 100, "page": page(args.files_cursor)}
        )
        result.files = [PrFile.model_validate(entry) for entry in response.json()]
        result.files_next_cursor = next_page(response.headers.get("link"))
        listed = 100 * ((page(args.files_cursor) or 1) - 1) + len(result.files)
        if result.files_next_cursor is None and listed < pull["changed_files"]:
            # GitHub lists at most 3,000 files of a pull request; say so rather than end the list silently.
            result.files_note = (
                f"GitHub listed {listed} of the {pull['changed_files']} changed files (it lists at most 3,000)"
            )
    if "diff" in include:
        raw = (await backend.request("GET", path, what=what, accept=DIFF_MEDIA_TYPE)).content
        cut = raw[: args.diff_max_bytes]
        if len(raw) > args.diff_max_bytes and b"\n" in cut:
            cut = cut[: cut.rindex(b"\n") + 1]
        result.diff = PrDiff(
            bytes_total=len(raw), truncated=len(cut) < len(raw), untrusted_diff=cut.decode(errors="replace")
        )
    if "checks" in include:
        result.checks = await _checks(backend, args, pull["head"]["sha"], page(args.checks_cursor))
    if "reviews" in include:
        response = await backend.request(
            "GET", f"{path}/reviews", what=what, params={"per_page": 100, "page": page(args.reviews_cursor)}
        )
        reviews = response.json()
        result.reviews_next_cursor = next_page(response.headers.get("link"))
        result.reviews = [
            Review(
                id=review["id"],
                author=login(review.get("user")),
                state=review["state"],
                submitted_at=review.get("submitted_at"),
                commit_id=review.get("commit_id"),
                untrusted_body=review["body"],
            )
            for review in reviews
        ]
        annotate(review_ids=[review.id for review in result.reviews])
    return result


async def _checks(backend: GitHubBackend, args: RepoArgs, sha: str, number: int | None) -> PrChecks:
    """One page (100) of the head commit's check runs and of its statuses: the cursor pages both."""
    what = f"commit {sha} in {args.full_name}"
    params = {"per_page": 100, "page": number}
    runs_response = await backend.request("GET", f"{args.repo_path}/commits/{sha}/check-runs", what=what, params=params)
    status_response = await backend.request("GET", f"{args.repo_path}/commits/{sha}/status", what=what, params=params)
    runs, status = runs_response.json(), status_response.json()
    check_runs = [
        CheckRun(
            id=run["id"],
            name=run["name"],
            status=run["status"],
            conclusion=run.get("conclusion"),
            app=(run.get("app") or {}).get("slug"),
            details_url=run.get("details_url"),
            completed_at=run.get("completed_at"),
        )
        for run in runs["check_runs"]
    ]
    statuses = [
        CommitStatus(
            context=s["context"], state=s["state"], description=s.get("description"), target_url=s.get("target_url")
        )
        for s in status["statuses"]
    ]
    failing = [
        run.name for run in check_runs if run.conclusion in ("failure", "timed_out", "cancelled", "action_required")
    ]
    failing += [s.context for s in statuses if s.state in ("failure", "error")]
    annotate(check_run_ids=[run.id for run in check_runs])
    return PrChecks(
        head_sha=sha,
        combined_state=status["state"],
        statuses=statuses,
        statuses_total=status["total_count"],
        check_runs=check_runs,
        check_runs_total=runs["total_count"],
        failing=failing,
        next_cursor=next_page(runs_response.headers.get("link")) or next_page(status_response.headers.get("link")),
    )


@tool(read_only=False, destructive=False, idempotent=False)
async def github_pr_create(args: PrCreateArgs, backend: GitHubBackend, ctx: Context) -> PrSummary:
    """Open a pull request from head into base."""
    body: dict[str, Any] = {"title": args.title, "head": args.head, "base": args.base, "draft": args.draft}
    if args.body is not None:
        body["body"] = args.body
    pull = (
        await backend.request("POST", f"{args.repo_path}/pulls", what=f"a pull request in {args.full_name}", json=body)
    ).json()
    _note_pr(pull)
    return _summary(pull)


@tool(read_only=False, destructive=False, idempotent=False)
async def github_pr_review(args: PrReviewArgs, backend: GitHubBackend, ctx: Context) -> ReviewResult:
    """Submit a review on a pull request: COMMENT, APPROVE or REQUEST_CHANGES."""
    body: dict[str, Any] = {"event": args.event}
    if args.body:
        body["body"] = args.body
    if args.commit_id:
        body["commit_id"] = args.commit_id
    review = (
        await backend.request(
            "POST",
            f"{args.repo_path}/pulls/{args.number}/reviews",
            what=f"pull request #{args.number} in {args.full_name}",
            json=body,
        )
    ).json()
    annotate(
        pr_number=args.number, review_id=review["id"], head_sha=review.get("commit_id"), review_url=review["html_url"]
    )
    return ReviewResult(
        id=review["id"], state=review["state"], commit_id=review.get("commit_id"), html_url=review["html_url"]
    )


@tool(read_only=False, destructive=False, idempotent=True)
async def github_pr_merge(args: PrMergeArgs, backend: GitHubBackend, ctx: Context) -> MergeResult:
    """Merge a pull request (merge, squash or rebase), only if its head is still expected_head_sha."""
    what = f"pull request #{args.number} in {args.full_name}"
    body: dict[str, Any] = {"merge_method": args.method, "sha": args.expected_head_sha}
    if args.commit_title:
        body["commit_title"] = args.commit_title
    if args.commit_message:
        body["commit_message"] = args.commit_message
    annotate(pr_number=args.number, head_sha=args.expected_head_sha)
    response = await backend.request(
        "PUT", f"{args.repo_path}/pulls/{args.number}/merge", what=what, json=body, ok_statuses=(405, 409)
    )
    if response.status_code == 405:
        raise UpstreamError(f"{what} cannot be merged: {response.json().get('message', 'not mergeable')}")
    if response.status_code == 409:
        raise UpstreamError(
            f"{what} was not merged: its head is no longer {args.expected_head_sha} "
            f"({response.json().get('message', 'head changed')}); review the new commits first"
        )
    result = response.json()
    annotate(merge_sha=result["sha"])
    return MergeResult(merged=result["merged"], sha=result["sha"], message=result["message"])
