"""Issues: list, get (with bounded comments); create, comment, update (title, body, state, labels, assignees)."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field, model_validator

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.github._backend import GitHubBackend, next_page
from mcp_ledger.tools.github._models import UNTRUSTED, PageArgs, RepoArgs, login, page_params
from mcp_ledger.tools.group import ToolModel, tool


class IssueListArgs(PageArgs):
    state: Literal["open", "closed", "all"] = "open"
    labels: list[str] = Field(default_factory=list, description="Only issues with all of these labels", max_length=20)
    assignee: str | None = Field(default=None, description="A login, 'none' or '*'", max_length=39)
    creator: str | None = Field(default=None, max_length=39)
    since: str | None = Field(default=None, description="Updated at or after this ISO-8601 time", max_length=40)
    sort: Literal["created", "updated", "comments"] = "created"
    direction: Literal["asc", "desc"] = "desc"


class IssueSummary(ToolModel):
    number: int
    title: str
    state: str
    author: str | None
    labels: list[str]
    assignees: list[str]
    comments: int
    is_pull_request: bool = Field(description="GitHub lists pull requests among issues")
    created_at: str
    updated_at: str
    html_url: str


class IssueList(ToolModel):
    issues: list[IssueSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class IssueGetArgs(RepoArgs):
    number: int = Field(gt=0, description="Issue (or pull request) number")
    comments_limit: int = Field(default=20, ge=0, le=100, description="Comments per page, oldest first")
    comments_cursor: str | None = Field(
        default=None, description="comments_next_cursor from the previous call", pattern=r"^[1-9][0-9]{0,5}$"
    )
    max_chars: int = Field(default=8_000, ge=200, le=100_000, description="Cap on the body and on each comment")


class IssueDetail(IssueSummary):
    state_reason: str | None
    closed_at: str | None
    untrusted_body: str | None = Field(description=f"The issue text. {UNTRUSTED}")
    body_truncated: bool


class Comment(ToolModel):
    id: int
    author: str | None
    created_at: str
    html_url: str
    untrusted_body: str = Field(description=f"Comment text. {UNTRUSTED}")
    truncated: bool


class Issue(ToolModel):
    issue: IssueDetail
    comments: list[Comment]
    comments_next_cursor: str | None = Field(description="Pass as comments_cursor for more comments")


class IssueCreateArgs(RepoArgs):
    title: str = Field(min_length=1, max_length=256)
    body: str | None = Field(default=None, max_length=65_536)
    labels: list[str] = Field(default_factory=list, max_length=20)
    assignees: list[str] = Field(default_factory=list, max_length=10)


class IssueRef(ToolModel):
    number: int
    title: str
    state: str
    labels: list[str]
    assignees: list[str]
    html_url: str


class IssueCommentArgs(RepoArgs):
    number: int = Field(gt=0, description="Issue or pull request number")
    body: str = Field(min_length=1, max_length=65_536)


class CommentRef(ToolModel):
    id: int
    issue_number: int
    html_url: str


class IssueUpdateArgs(RepoArgs):
    number: int = Field(gt=0)
    title: str | None = Field(default=None, min_length=1, max_length=256)
    body: str | None = Field(default=None, max_length=65_536)
    state: Literal["open", "closed"] | None = None
    state_reason: Literal["completed", "not_planned", "reopened"] | None = None
    labels: list[str] | None = Field(default=None, description="Replaces all labels", max_length=20)
    assignees: list[str] | None = Field(default=None, description="Replaces all assignees", max_length=10)

    @model_validator(mode="after")
    def _something_to_change(self) -> IssueUpdateArgs:
        if not self.model_fields_set - {"owner", "repo", "number"}:
            raise ValueError("give at least one of title, body, state, state_reason, labels, assignees")
        return self


def _names(items: Any, key: str) -> list[str]:
    return [str(item[key]) for item in items or () if isinstance(item, dict) and item.get(key)]


def _summary(issue: dict[str, Any]) -> IssueSummary:
    return IssueSummary(
        number=issue["number"],
        title=issue["title"],
        state=issue["state"],
        author=login(issue.get("user")),
        labels=_names(issue.get("labels"), "name"),
        assignees=_names(issue.get("assignees"), "login"),
        comments=issue["comments"],
        is_pull_request="pull_request" in issue,
        created_at=issue["created_at"],
        updated_at=issue["updated_at"],
        html_url=issue["html_url"],
    )


def _ref(issue: dict[str, Any]) -> IssueRef:
    annotate(issue_number=issue["number"], issue_url=issue["html_url"])
    return IssueRef(
        number=issue["number"],
        title=issue["title"],
        state=issue["state"],
        labels=_names(issue.get("labels"), "name"),
        assignees=_names(issue.get("assignees"), "login"),
        html_url=issue["html_url"],
    )


def _cut(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit] + f"\n…[cut: {len(text) - limit} more characters]", True


@tool(read_only=True, idempotent=True, open_world=True)
async def github_issue_list(args: IssueListArgs, backend: GitHubBackend, ctx: Context) -> IssueList:
    """List issues (and pull requests, flagged) by state, labels, assignee, creator or update time."""
    params = {
        **page_params(args),
        "state": args.state,
        "labels": ",".join(args.labels) or None,
        "assignee": args.assignee,
        "creator": args.creator,
        "since": args.since,
        "sort": args.sort,
        "direction": args.direction,
    }
    response = await backend.request(
        "GET", f"{args.repo_path}/issues", what=f"issues of {args.full_name}", params=params
    )
    issues = [_summary(issue) for issue in response.json()]
    annotate(repository=args.full_name, issue_numbers=[issue.number for issue in issues])
    return IssueList(issues=issues, next_cursor=next_page(response.headers.get("link")))


@tool(read_only=True, idempotent=True, open_world=True)
async def github_issue_get(args: IssueGetArgs, backend: GitHubBackend, ctx: Context) -> Issue:
    """One issue with its body and a page of comments (bounded; oldest first)."""
    what = f"issue #{args.number} in {args.full_name}"
    path = f"{args.repo_path}/issues/{args.number}"
    issue = (await backend.request("GET", path, what=what)).json()
    annotate(issue_number=issue["number"], issue_url=issue["html_url"], untrusted_content=True)
    body, body_cut = _cut(issue.get("body"), args.max_chars)
    comments: list[Comment] = []
    next_cursor = None
    if args.comments_limit and issue["comments"]:
        params = {"per_page": args.comments_limit, "page": int(args.comments_cursor) if args.comments_cursor else None}
        response = await backend.request("GET", f"{path}/comments", what=what, params=params)
        for comment in response.json():
            text, cut = _cut(comment.get("body") or "", args.max_chars)
            comments.append(
                Comment(
                    id=comment["id"],
                    author=login(comment.get("user")),
                    created_at=comment["created_at"],
                    html_url=comment["html_url"],
                    untrusted_body=text or "",
                    truncated=cut,
                )
            )
        next_cursor = next_page(response.headers.get("link"))
        annotate(comment_ids=[comment.id for comment in comments])
    return Issue(
        issue=IssueDetail(
            **_summary(issue).model_dump(),
            state_reason=issue.get("state_reason"),
            closed_at=issue.get("closed_at"),
            untrusted_body=body,
            body_truncated=body_cut,
        ),
        comments=comments,
        comments_next_cursor=next_cursor,
    )


@tool(read_only=False, destructive=False, idempotent=False)
async def github_issue_create(args: IssueCreateArgs, backend: GitHubBackend, ctx: Context) -> IssueRef:
    """Open an issue with a title, body, labels and assignees."""
    body: dict[str, Any] = {"title": args.title}
    if args.body is not None:
        body["body"] = args.body
    if args.labels:
        body["labels"] = args.labels
    if args.assignees:
        body["assignees"] = args.assignees
    issue = (
        await backend.request("POST", f"{args.repo_path}/issues", what=f"an issue in {args.full_name}", json=body)
    ).json()
    return _ref(issue)


@tool(read_only=False, destructive=False, idempotent=False)
async def github_issue_comment(args: IssueCommentArgs, backend: GitHubBackend, ctx: Context) -> CommentRef:
    """Add a comment to an issue or a pull request's conversation."""
    comment = (
        await backend.request(
            "POST",
            f"{args.repo_path}/issues/{args.number}/comments",
            what=f"issue #{args.number} in {args.full_name}",
            json={"body": args.body},
        )
    ).json()
    annotate(issue_number=args.number, comment_id=comment["id"], comment_url=comment["html_url"])
    return CommentRef(id=comment["id"], issue_number=args.number, html_url=comment["html_url"])


@tool(read_only=False, destructive=False, idempotent=True)
async def github_issue_update(args: IssueUpdateArgs, backend: GitHubBackend, ctx: Context) -> IssueRef:
    """Change an issue's title, body, state (close/reopen, with a reason), labels or assignees."""
    body = args.model_dump(include=args.model_fields_set - {"owner", "repo", "number"})
    issue = (
        await backend.request(
            "PATCH",
            f"{args.repo_path}/issues/{args.number}",
            what=f"issue #{args.number} in {args.full_name}",
            json=body,
        )
    ).json()
    return _ref(issue)
