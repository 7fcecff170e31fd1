"""Files of a hub repo at a revision: list them, read a small text file, download one into the hub cache."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolModel, tool
from mcp_ledger.tools.hf._backend import Download, FileText, Hub, HubCall, tree_url
from mcp_ledger.tools.hf._models import UNTRUSTED, FileRow, RepoId, RepoPath, RepoType, Revision

_COMMIT = re.compile(r"[0-9a-f]{40}")
_MAX_EMPTY_PAGES = 5  # hub pages read in one call while a prefix filter matches nothing


class FilesArgs(ToolArgs):
    repo: RepoId
    repo_type: RepoType = "model"
    revision: Revision = None
    prefix: str | None = Field(default=None, max_length=1024, description="Only paths starting with this")
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=4096, description="next_cursor of the previous page")


class RepoFiles(ToolModel):
    repo: str
    sha: str = Field(description="The commit listed")
    files: list[FileRow]
    next_cursor: str | None


class FileArgs(ToolArgs):
    repo: RepoId
    repo_type: RepoType = "model"
    revision: Revision = None
    path: RepoPath


class ReadArgs(FileArgs):
    max_bytes: int = Field(default=65536, ge=1, le=1048576)


class FileRead(ToolModel):
    path: str
    sha: str | None = Field(description="The commit read")
    size: int | None
    etag: str | None
    sha256: str | None = Field(description="When the whole file was read")
    truncated: bool
    untrusted_text: str = Field(description=f"UTF-8, invalid bytes replaced. {UNTRUSTED}")


class FileDownload(ToolModel):
    path: str
    sha: str | None = Field(description="The commit downloaded")
    size: int
    etag: str | None
    sha256: str
    verified: bool | None = Field(description="The bytes match the hub's etag (LFS sha256 or git blob sha1)")
    cached: bool = Field(description="Already in the cache")
    local_path: str


def _what(args: FileArgs | FilesArgs, path: str | None = None) -> str:
    where = f"{args.repo_type} {args.repo}" + (f" file {path}" if path else "")
    return f"{where} at {args.revision or 'main'}"


def _folder(prefix: str | None) -> str:
    """The deepest folder a prefix names: the tree listing starts there."""
    if not prefix or "/" not in prefix:
        return ""
    return prefix.rsplit("/", 1)[0]


def _parse_cursor(cursor: str) -> tuple[str, int, list[tuple[str, str]] | None]:
    commit, _, rest = cursor.partition(":")
    skip, _, query = rest.partition(":")
    if not _COMMIT.fullmatch(commit) or not skip.isdigit() or len(skip) > 7:
        raise InvalidArguments("cursor: not a next_cursor of hf_repo_files; list again without it")
    return commit, int(skip), (parse_qsl(query, keep_blank_values=True) if query else None)


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_repo_files(args: FilesArgs, hub: Hub, ctx: Context) -> RepoFiles:
    """Files of a model, dataset or space repo at one commit (the revision resolved first): sizes, LFS sha256,
    an optional path prefix. Paginated."""
    if args.prefix is not None and (".." in args.prefix.split("/") or args.prefix.startswith("/")):
        raise InvalidArguments("prefix: a path in the repo, without '..' or a leading '/'")
    hub.annotate_target(args.repo_type, args.repo, args.revision)
    prefix, folder = args.prefix or "", _folder(args.prefix)
    state = _parse_cursor(args.cursor) if args.cursor else None

    def listing(call: HubCall) -> tuple[str, list[FileRow], str | None]:
        from huggingface_hub import RepoFile

        parse: Any = RepoFile  # the library's own parsing of a tree entry (its __init__ is untyped)
        sha_only: Any = ["sha"]
        if state is None:
            info = hub.api.repo_info(
                args.repo, repo_type=args.repo_type, revision=args.revision, expand=sha_only, timeout=hub.timeout
            )
            commit, skip, query = str(info.sha), 0, None
        else:
            commit, skip, query = state
        path = tree_url(args.repo_type, args.repo, commit, folder)
        for _ in range(_MAX_EMPTY_PAGES):
            page_query = query or [("recursive", "true"), ("expand", "false")]
            items, following = hub.get_page(path, page_query)
            files = [
                parse(**item)
                for item in items
                if isinstance(item, dict)
                and item.get("type") == "file"
                and str(item.get("path", "")).startswith(prefix)
            ]
            shown = files[skip : skip + args.limit]
            if skip + args.limit < len(files):
                return commit, _rows(shown), f"{commit}:{skip + args.limit}:{urlencode(page_query)}"
            if shown or following is None:
                return commit, _rows(shown), f"{commit}:0:{urlencode(following)}" if following else None
            query, skip = following, 0
            call.worker.check()
        return commit, [], f"{commit}:0:{urlencode(query or [])}"

    commit, rows, following = await hub.run(listing, what=_what(args), ctx=ctx)
    annotate(resolved_revision=commit)
    return RepoFiles(repo=args.repo, sha=commit, files=rows, next_cursor=following)


def _rows(files: list[Any]) -> list[FileRow]:
    return [FileRow(path=f.path, size=f.size, lfs_sha256=f.lfs.sha256 if f.lfs else None) for f in files]


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_file_read(args: ReadArgs, hub: Hub, ctx: Context) -> FileRead:
    """Read a small text file of a repo (README.md, config.json, tokenizer_config.json), bounded."""
    hub.annotate_target(args.repo_type, args.repo, args.revision)
    text: FileText = await hub.run(
        lambda call: hub.read_file(call, args.repo_type, args.repo, args.revision or "main", args.path, args.max_bytes),
        what=_what(args, args.path),
        ctx=ctx,
    )
    if b"\0" in text.data[:8192]:
        raise InvalidArguments(f"{args.path} is binary, not text; hf_file_download fetches it whole")
    annotate(
        resolved_revision=text.commit,
        file_path=args.path,
        file_etag=text.etag,
        file_size=text.size,
        file_sha256=text.sha256,
        untrusted_content=True,
    )
    truncated = text.size is None or len(text.data) < text.size
    return FileRead(
        path=args.path,
        sha=text.commit,
        size=text.size,
        etag=text.etag,
        sha256=text.sha256,
        truncated=truncated,
        untrusted_text=text.data.decode("utf-8", errors="replace"),
    )


@tool(read_only=False, destructive=False, idempotent=True, open_world=True, timeout=3600)
async def hf_file_download(args: FileArgs, hub: Hub, ctx: Context) -> FileDownload:
    """Download one file into the standard hub cache (where transformers and other tools find it), with
    progress notifications; returns its local path, commit, etag and the sha256 of the bytes on disk."""
    hub.annotate_target(args.repo_type, args.repo, args.revision)
    what = _what(args, args.path)
    if hub.offline:
        done: Download = await hub.run(
            lambda call: hub.cached_file(call, args.repo_type, args.repo, args.revision, args.path),
            what=what,
            ctx=ctx,
            offline_ok=True,
        )
    else:
        done = await hub.run(
            lambda call: hub.download(call, args.repo_type, args.repo, args.revision, args.path), what=what, ctx=ctx
        )
    annotate(
        resolved_revision=done.commit,
        file_path=args.path,
        file_etag=done.etag,
        file_size=done.size,
        file_sha256=done.sha256,
        file_verified=done.verified,
        local_path=done.local_path,
        from_cache=done.cached,
    )
    return FileDownload(
        path=args.path,
        sha=done.commit,
        size=done.size,
        etag=done.etag,
        sha256=done.sha256,
        verified=done.verified,
        cached=done.cached,
        local_path=done.local_path,
    )
