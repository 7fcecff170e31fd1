"""Models and datasets on the hub: search, and one repo's info at a revision (its resolved commit)."""

from __future__ import annotations

import re
from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolModel, tool
from mcp_ledger.tools.hf._backend import Hub, HubCall, HubError
from mcp_ledger.tools.hf._models import UNTRUSTED, FileRow, RepoId, Revision, cut, file_rows

_SORTS = {"downloads": "downloads", "likes": "likes", "trending": "trendingScore", "modified": "lastModified"}
_CARD_BYTES = 32768
_CARD_CHARS = 1500
_MAX_FILES = 300
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._/+-]{0,99}")

Name = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
Cursor = Field(default=None, max_length=2048, description="next_cursor of the previous page")


class SearchArgs(ToolArgs):
    search: str | None = Field(default=None, max_length=200, description="Text in the repo id")
    author: str | None = Name
    tags: list[str] = Field(default_factory=list, max_length=10, description="All of these tags, e.g. license:mit")
    sort: Literal["downloads", "likes", "trending", "modified"] = "downloads"
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Cursor


class ModelSearchArgs(SearchArgs):
    task: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$", description="e.g. text-generation")
    library: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="e.g. transformers")


class ModelRow(ToolModel):
    id: str
    task: str | None
    library: str | None
    downloads: int | None
    likes: int | None


class ModelList(ToolModel):
    models: list[ModelRow]
    next_cursor: str | None


class DatasetRow(ToolModel):
    id: str
    downloads: int | None
    likes: int | None
    gated: str | None
    last_modified: str | None


class DatasetList(ToolModel):
    datasets: list[DatasetRow]
    next_cursor: str | None


class InfoArgs(ToolArgs):
    repo: RepoId
    revision: Revision = None


class RepoInfo(ToolModel):
    id: str
    revision: str = Field(description="The revision asked for")
    sha: str | None = Field(description="The commit it resolved to")
    license: str | None
    gated: str | None = Field(description="auto or manual when gated")
    private: bool | None
    downloads: int | None
    likes: int | None
    last_modified: str | None
    tags: list[str] = Field(description="At most 50")
    files: list[FileRow] = Field(description=f"At most {_MAX_FILES}")
    files_total: int
    untrusted_card: str | None = Field(description=f"Start of the README, front matter removed. {UNTRUSTED}")


class ModelInfo(RepoInfo):
    task: str | None
    library: str | None
    parameters: int | None = Field(description="From safetensors or gguf metadata")


class Split(ToolModel):
    name: str
    examples: int | None


class Config(ToolModel):
    name: str
    splits: list[Split]


class DatasetInfo(RepoInfo):
    configs: list[Config] = Field(description="From the dataset card, at most 20")


def _search_query(args: SearchArgs, extra: dict[str, str | None]) -> list[tuple[str, str]]:
    for tag in args.tags:
        if not _TAG.fullmatch(tag):
            raise InvalidArguments("tags: each a tag such as license:mit or language:en")
    query = [(key, value) for key, value in (("search", args.search), ("author", args.author), *extra.items()) if value]
    query += [("filter", tag) for tag in args.tags]
    return [*query, ("sort", _SORTS[args.sort]), ("limit", str(args.limit))]


def _cursor_query(cursor: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    query = parse_qsl(cursor, keep_blank_values=True)
    if not query:
        raise InvalidArguments("cursor: not a next_cursor of this tool; search again without it")
    return query


def _search(hub: Hub, path: str, query: list[tuple[str, str]], parse: Any) -> Any:
    def fetch(call: HubCall) -> tuple[list[Any], str | None]:
        items, following = hub.get_page(path, query)
        if not isinstance(items, list):
            raise HubError(f"the hub answered {path} with something other than a list")
        from urllib.parse import urlencode

        return [parse(**item) for item in items], (urlencode(following) if following else None)

    return fetch


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_model_search(args: ModelSearchArgs, hub: Hub, ctx: Context) -> ModelList:
    """Search models on the hub by text, author, task, library and tags; most downloaded first by default."""
    from huggingface_hub import ModelInfo as HubModel

    query = (
        _cursor_query(args.cursor)
        if args.cursor
        else _search_query(args, {"pipeline_tag": args.task, "filter": args.library})
    )
    annotate(hub_endpoint=hub.shown_endpoint, repo_type="model")
    found, following = await hub.run(_search(hub, "/api/models", query, HubModel), what="the model search", ctx=ctx)
    rows = [
        ModelRow(id=m.id, task=m.pipeline_tag, library=m.library_name, downloads=m.downloads, likes=m.likes)
        for m in found
    ]
    annotate(repo_ids=[row.id for row in rows])
    return ModelList(models=rows, next_cursor=following)


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_dataset_search(args: SearchArgs, hub: Hub, ctx: Context) -> DatasetList:
    """Search datasets on the hub by text, author and tags (task_categories:…, language:…)."""
    from huggingface_hub import DatasetInfo as HubDataset

    query = _cursor_query(args.cursor) if args.cursor else _search_query(args, {})
    annotate(hub_endpoint=hub.shown_endpoint, repo_type="dataset")
    found, following = await hub.run(
        _search(hub, "/api/datasets", query, HubDataset), what="the dataset search", ctx=ctx
    )
    rows = [
        DatasetRow(
            id=d.id,
            downloads=d.downloads,
            likes=d.likes,
            gated=str(d.gated) if d.gated else None,
            last_modified=_iso(d.last_modified),
        )
        for d in found
    ]
    annotate(repo_ids=[row.id for row in rows])
    return DatasetList(datasets=rows, next_cursor=following)


def _card_summary(text: bytes) -> str | None:
    body = text.decode("utf-8", errors="replace")
    if body.startswith("---"):
        end = body.find("\n---", 3)
        body = body[end + 4 :] if end != -1 else ""
    body = body.strip()
    return cut(body, _CARD_CHARS) if body else None


def _info(hub: Hub, kind: str, repo: str, revision: str | None) -> Any:
    def fetch(call: HubCall) -> tuple[Any, str | None]:
        from huggingface_hub import errors

        getter = hub.api.model_info if kind == "model" else hub.api.dataset_info
        info = getter(repo, revision=revision, files_metadata=True, timeout=hub.timeout)
        card = None
        if info.sha and any(s.rfilename == "README.md" for s in info.siblings or ()):
            try:
                card = _card_summary(hub.read_bytes(hub.file_url(kind, repo, info.sha, "README.md"), _CARD_BYTES, call))
            except errors.HfHubHTTPError:
                card = None  # the info stands without its card
        return info, card

    return fetch


def _license(card_data: Any, tags: list[str]) -> str | None:
    value = card_data.get("license") if card_data is not None else None
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if value:
        return cut(value, 200)
    return next((t.removeprefix("license:") for t in tags if t.startswith("license:")), None)


def _common(info: Any, args: InfoArgs, card: str | None) -> dict[str, Any]:
    tags = [str(t) for t in info.tags or []]
    files, total = file_rows(info.siblings, _MAX_FILES)
    return {
        "id": info.id,
        "revision": args.revision or "main",
        "sha": info.sha,
        "license": _license(info.card_data, tags),
        "gated": str(info.gated) if info.gated else None,
        "private": info.private,
        "downloads": info.downloads,
        "likes": info.likes,
        "last_modified": _iso(info.last_modified),
        "tags": [cut(t, 200) for t in tags[:50]],
        "files": files,
        "files_total": total,
        "untrusted_card": card,
    }


def _annotate_info(info: Any, card: str | None) -> None:
    annotate(resolved_revision=info.sha, untrusted_content=card is not None)


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_model_info(args: InfoArgs, hub: Hub, ctx: Context) -> ModelInfo:
    """A model at a revision: the commit it resolves to, task, library, license, gating, parameters,
    files with sizes and LFS sha256, and the start of its card."""
    hub.annotate_target("model", args.repo, args.revision)
    what = f"model {args.repo} at {args.revision or 'main'}"
    info, card = await hub.run(_info(hub, "model", args.repo, args.revision), what=what, ctx=ctx)
    _annotate_info(info, card)
    params = info.safetensors.total if info.safetensors else (info.gguf or {}).get("total")
    return ModelInfo(
        **_common(info, args, card),
        task=info.pipeline_tag,
        library=info.library_name,
        parameters=params if isinstance(params, int) else None,
    )


def _configs(card_data: Any) -> list[Config]:
    """Configs and splits as the dataset card states them (``dataset_info`` counts, else ``configs`` files)."""
    data = card_data.to_dict() if card_data is not None else {}
    found: dict[str, dict[str, int | None]] = {}
    infos = data.get("dataset_info")
    for entry in infos if isinstance(infos, list) else [infos] if isinstance(infos, dict) else []:
        if isinstance(entry, dict):
            splits = found.setdefault(str(entry.get("config_name") or "default"), {})
            for split in entry.get("splits") or []:
                if isinstance(split, dict) and split.get("name"):
                    count = split.get("num_examples")
                    splits[str(split["name"])] = count if isinstance(count, int) else None
    for entry in data.get("configs") or []:
        if isinstance(entry, dict) and entry.get("config_name"):
            splits = found.setdefault(str(entry["config_name"]), {})
            files = entry.get("data_files")
            for item in files if isinstance(files, list) else []:
                if isinstance(item, dict) and item.get("split"):
                    splits.setdefault(str(item["split"]), None)
    return [
        Config(name=cut(name, 200), splits=[Split(name=cut(s, 200), examples=n) for s, n in list(splits.items())[:20]])
        for name, splits in list(found.items())[:20]
    ]


@tool(read_only=True, idempotent=True, open_world=True)
async def hf_dataset_info(args: InfoArgs, hub: Hub, ctx: Context) -> DatasetInfo:
    """A dataset at a revision: the commit it resolves to, license, gating, configs and splits, files with
    sizes and LFS sha256, and the start of its card."""
    hub.annotate_target("dataset", args.repo, args.revision)
    what = f"dataset {args.repo} at {args.revision or 'main'}"
    info, card = await hub.run(_info(hub, "dataset", args.repo, args.revision), what=what, ctx=ctx)
    _annotate_info(info, card)
    return DatasetInfo(**_common(info, args, card), configs=_configs(info.card_data))
