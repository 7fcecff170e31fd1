"""Response bodies that satisfy GitHub's schemas, with the fields the tests care about set."""

from __future__ import annotations

from typing import Any

from tests.github.spec import example

OWNER, REPO = "octo-org", "hello"
WEB = f"https://github.com/{OWNER}/{REPO}"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
SHA2 = "e5bd3914e2e596debea16f433f57875b5b90bcd6"


def user(login: str) -> dict[str, Any]:
    return example("simple-user", login=login, html_url=f"https://github.com/{login}")


def workflow(id: int, name: str, path: str) -> dict[str, Any]:
    return example("workflow", id=id, name=name, path=path, state="active", html_url=f"{WEB}/blob/main/{path}")


def run(
    id: int,
    *,
    status: str = "completed",
    conclusion: str | None = "failure",
    head_sha: str = SHA,
    branch: str = "main",
    event: str = "push",
    title: str = "Fix the flaky test",
) -> dict[str, Any]:
    return example(
        "workflow-run",
        id=id,
        name="CI",
        run_number=id % 1000,
        run_attempt=1,
        display_title=title,
        event=event,
        status=status,
        conclusion=conclusion,
        head_sha=head_sha,
        head_branch=branch,
        workflow_id=161335,
        actor=user("mona"),
        html_url=f"{WEB}/actions/runs/{id}",
        created_at="2026-03-01T10:00:00Z",
        updated_at="2026-03-01T10:07:30Z",
    )


def step(number: int, name: str, conclusion: str, start: str, end: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": "completed",
        "conclusion": conclusion,
        "number": number,
        "started_at": start,
        "completed_at": end,
    }


def job(id: int, run_id: int, name: str, conclusion: str = "failure", head_sha: str = SHA) -> dict[str, Any]:
    steps = [step(1, "Set up job", "success", "2026-03-01T10:00:05Z", "2026-03-01T10:00:07Z")]
    if conclusion == "failure":
        steps.append(step(2, "Run tests", "failure", "2026-03-01T10:00:07Z", "2026-03-01T10:03:07Z"))
    else:
        steps.append(step(2, "Run tests", conclusion, "2026-03-01T10:00:07Z", "2026-03-01T10:01:07Z"))
    return example(
        "job",
        id=id,
        run_id=run_id,
        name=name,
        head_sha=head_sha,
        status="completed",
        conclusion=conclusion,
        started_at="2026-03-01T10:00:05Z",
        completed_at="2026-03-01T10:03:10Z",
        runner_name="GitHub Actions 12",
        html_url=f"{WEB}/actions/runs/{run_id}/job/{id}",
        steps=steps,
    )


def _branch(ref: str, sha: str) -> dict[str, Any]:
    return {"ref": ref, "sha": sha, "label": f"{OWNER}:{ref}"}


def pull(
    number: int, *, head_sha: str = SHA, body: str | None = "Fixes the flaky test.", simple: bool = False
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "number": number,
        "title": f"Fix number {number}",
        "state": "open",
        "draft": False,
        "user": user("mona"),
        "body": body,
        "head": _branch("fix-flake", head_sha),
        "base": _branch("main", SHA2),
        "labels": [
            {
                "id": 1,
                "node_id": "L1",
                "url": f"{WEB}/labels/bug",
                "name": "bug",
                "description": "Something is broken",
                "color": "d73a4a",
                "default": True,
            }
        ],
        "html_url": f"{WEB}/pull/{number}",
        "created_at": "2026-03-01T09:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z",
    }
    if simple:
        return example("pull-request-simple", **fields)
    return example(
        "pull-request",
        **fields,
        merged=False,
        mergeable=True,
        mergeable_state="clean",
        additions=12,
        deletions=3,
        changed_files=2,
        commits=1,
    )


def issue(number: int, *, body: str | None = "It breaks.", comments: int = 0, is_pull: bool = False) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if is_pull:
        extra["pull_request"] = {
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}",
            "html_url": f"{WEB}/pull/{number}",
            "diff_url": f"{WEB}/pull/{number}.diff",
            "patch_url": f"{WEB}/pull/{number}.patch",
        }
    return example(
        "issue",
        number=number,
        title=f"Issue number {number}",
        state="open",
        body=body,
        user=user("hubot"),
        labels=[{"name": "bug"}],
        assignees=[user("mona")],
        comments=comments,
        html_url=f"{WEB}/issues/{number}",
        created_at="2026-03-01T08:00:00Z",
        updated_at="2026-03-01T09:00:00Z",
        **extra,
    )


def comment(id: int, body: str, number: int = 7) -> dict[str, Any]:
    return example(
        "issue-comment",
        id=id,
        body=body,
        user=user("stranger"),
        html_url=f"{WEB}/issues/{number}#issuecomment-{id}",
        created_at="2026-03-01T09:30:00Z",
    )


def check_run(id: int, name: str, conclusion: str | None, slug: str = "github-actions") -> dict[str, Any]:
    body = example(
        "check-run",
        id=id,
        name=name,
        head_sha=SHA,
        status="completed",
        conclusion=conclusion,
        details_url=f"{WEB}/actions/runs/9/job/{id}",
        completed_at="2026-03-01T10:03:10Z",
    )
    body["app"] = example("nullable-integration", slug=slug, name=slug)
    return body


def combined_status(state: str, statuses: list[tuple[str, str]]) -> dict[str, Any]:
    return example(
        "combined-commit-status",
        state=state,
        sha=SHA,
        total_count=len(statuses),
        statuses=[
            example(
                "simple-commit-status",
                context=context,
                state=s,
                description=f"{context} says {s}",
                target_url=f"https://ci.example.com/{context}",
            )
            for context, s in statuses
        ],
    )


def review(id: int, state: str, body: str) -> dict[str, Any]:
    return example(
        "pull-request-review",
        id=id,
        state=state,
        body=body,
        user=user("reviewer"),
        commit_id=SHA,
        html_url=f"{WEB}/pull/3#pullrequestreview-{id}",
        submitted_at="2026-03-01T10:30:00Z",
    )


def diff_entry(filename: str, status: str = "modified") -> dict[str, Any]:
    return example("diff-entry", filename=filename, status=status, additions=6, deletions=1, changes=7)


def runner(id: int, name: str, *, status: str = "online", busy: bool = False, os: str = "Linux") -> dict[str, Any]:
    labels = [
        example("runner-label", id=1, name="self-hosted", type="read-only"),
        example("runner-label", id=2, name=os, type="read-only"),
        example("runner-label", id=3, name="gpu", type="custom"),
    ]
    return example(
        "runner",
        id=id,
        name=name,
        os=os,
        status=status,
        busy=busy,
        labels=labels,
        ephemeral=False,
        version="2.323.0",
        runner_group_id=1,
    )


def cache(id: int, key: str, *, ref: str = "refs/heads/main", size: int = 1024) -> dict[str, Any]:
    """One entry of an actions-cache-list body, checked against that schema with it."""
    entry = {
        "id": id,
        "ref": ref,
        "key": key,
        "version": "73885106f58cc52a7df9ec4d4a5622a5614813162cb516c759a30af6bf56e6f0",
        "last_accessed_at": "2026-03-01T10:45:36.000Z",
        "created_at": "2026-02-28T22:45:36.000Z",
        "size_in_bytes": size,
    }
    example("actions-cache-list", total_count=1, actions_caches=[entry])
    return entry


def cache_list(entries: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    return example("actions-cache-list", total_count=len(entries) if total is None else total, actions_caches=entries)
