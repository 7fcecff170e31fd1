"""Actions caches of a repository: list (with the repository's usage against its limit), delete."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field, model_validator

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.github._backend import GitHubBackend, next_page
from mcp_ledger.tools.github._models import PageArgs, RepoArgs, page_params
from mcp_ledger.tools.group import ToolModel, UpstreamError, tool

# actions/toolkit's cache package counts the repository limit in GiB ("10GB" = 10 * 1024**3 bytes).
GIB = 1024**3
REF_PATTERN = r"^refs/\S{1,250}$"


class CacheListArgs(PageArgs):
    key: str | None = Field(default=None, description="Key prefix", max_length=512)
    ref: str | None = Field(default=None, description="e.g. refs/heads/main", pattern=REF_PATTERN)
    sort: Literal["last_accessed_at", "created_at", "size_in_bytes"] = "last_accessed_at"
    direction: Literal["asc", "desc"] = "desc"


class Cache(ToolModel):
    id: int | None
    key: str | None
    ref: str | None
    size_bytes: int | None
    created_at: str | None
    last_accessed_at: str | None


class CacheUsage(ToolModel):
    active_caches: int
    active_bytes: int = Field(description="Total size of the repository's active caches (refreshed every ~5 minutes)")
    limit_bytes: int | None = Field(description="The repository's cache storage limit; null when GitHub did not say")
    used_percent: float | None
    note: str | None = Field(description="Why the limit is unknown")


class CacheList(ToolModel):
    repository: str
    caches: list[Cache]
    total_count: int = Field(description="Caches matching the filters, all pages")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")
    usage: CacheUsage | None = Field(description="The whole repository's usage; on the first page only")


class CacheDeleteArgs(RepoArgs):
    cache_id: int | None = Field(default=None, gt=0, description="One cache, by id")
    key: str | None = Field(default=None, description="Every cache with exactly this key", min_length=1, max_length=512)
    ref: str | None = Field(default=None, description="With key: only caches of this ref", pattern=REF_PATTERN)

    @model_validator(mode="after")
    def _one_target(self) -> CacheDeleteArgs:
        if (self.cache_id is None) == (self.key is None):
            raise ValueError("give exactly one of cache_id or key")
        if self.ref is not None and self.key is None:
            raise ValueError("ref narrows a delete by key; give key with it")
        return self


class CacheDeletion(ToolModel):
    repository: str
    deleted_ids: list[int]
    deleted: list[Cache] = Field(description="The deleted caches as GitHub reports them (by key only)")


def _cache(cache: dict[str, Any]) -> Cache:
    return Cache(
        id=cache.get("id"),
        key=cache.get("key"),
        ref=cache.get("ref"),
        size_bytes=cache.get("size_in_bytes"),
        created_at=cache.get("created_at"),
        last_accessed_at=cache.get("last_accessed_at"),
    )


def _note_caches(caches: list[Cache]) -> None:
    annotate(cache_ids=[cache.id for cache in caches], cache_keys=[cache.key for cache in caches])


async def _usage(backend: GitHubBackend, args: RepoArgs) -> CacheUsage:
    what = f"Actions cache usage of {args.full_name}"
    usage = (await backend.request("GET", f"{args.repo_path}/actions/cache/usage", what=what)).json()
    # The limit needs admin access (admin:repository); a reader still gets the usage.
    response = await backend.request(
        "GET",
        f"{args.repo_path}/actions/cache/storage-limit",
        what=f"Actions cache storage limit of {args.full_name}",
        ok_statuses=(403, 404),
    )
    limit_gb = response.json().get("max_cache_size_gb") if response.status_code == 200 else None
    note = None
    if response.status_code == 403:
        note = "GitHub refused the storage limit (403): reading it needs admin access to the repository"
    elif response.status_code == 404:
        note = "GitHub did not give the storage limit (404): not visible to this token, or not on this GitHub"
    elif limit_gb is None:
        note = "GitHub's answer named no storage limit"
    limit = limit_gb * GIB if isinstance(limit_gb, int) else None
    size = usage["active_caches_size_in_bytes"]
    annotate(cache_usage_bytes=size, cache_limit_bytes=limit)
    return CacheUsage(
        active_caches=usage["active_caches_count"],
        active_bytes=size,
        limit_bytes=limit,
        used_percent=round(100 * size / limit, 2) if limit else None,
        note=note,
    )


@tool(read_only=True, idempotent=True, open_world=True)
async def github_cache_list(args: CacheListArgs, backend: GitHubBackend, ctx: Context) -> CacheList:
    """A repository's Actions caches (key, ref, size, created, last used); page 1 adds total usage vs limit."""
    params = {
        **page_params(args),
        "key": args.key,
        "ref": args.ref,
        "sort": args.sort,
        "direction": args.direction,
    }
    annotate(repository=args.full_name)
    response = await backend.request(
        "GET", f"{args.repo_path}/actions/caches", what=f"Actions caches of {args.full_name}", params=params
    )
    body = response.json()
    caches = [_cache(cache) for cache in body["actions_caches"]]
    _note_caches(caches)
    return CacheList(
        repository=args.full_name,
        caches=caches,
        total_count=body["total_count"],
        next_cursor=next_page(response.headers.get("link")),
        usage=await _usage(backend, args) if args.cursor is None else None,
    )


@tool(read_only=False, destructive=True, idempotent=True, open_world=True)
async def github_cache_delete(args: CacheDeleteArgs, backend: GitHubBackend, ctx: Context) -> CacheDeletion:
    """Delete Actions caches: one by cache_id, or all with a key (optionally only on ref). Cannot be undone."""
    annotate(repository=args.full_name)
    if args.cache_id is not None:
        annotate(cache_id=args.cache_id)
        await backend.request(
            "DELETE",
            f"{args.repo_path}/actions/caches/{args.cache_id}",
            what=f"Actions cache {args.cache_id} in {args.full_name}",
        )
        return CacheDeletion(repository=args.full_name, deleted_ids=[args.cache_id], deleted=[])
    annotate(cache_key=args.key, cache_ref=args.ref)
    what = f"Actions caches with key {args.key!r}{f' on {args.ref}' if args.ref else ''} in {args.full_name}"
    response = await backend.request(
        "DELETE",
        f"{args.repo_path}/actions/caches",
        what=what,
        params={"key": args.key, "ref": args.ref},
        ok_statuses=(404,),
    )
    if response.status_code == 404:
        raise UpstreamError(f"not found: {what} (404); list the caches with github_cache_list")
    deleted = [_cache(cache) for cache in response.json()["actions_caches"]]
    _note_caches(deleted)
    return CacheDeletion(
        repository=args.full_name, deleted_ids=[cache.id for cache in deleted if cache.id is not None], deleted=deleted
    )
