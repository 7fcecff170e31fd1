"""A loopback Hugging Face hub (``HF_ENDPOINT``) and its CDN, speaking the hub's HTTP protocol.

The shapes are the hub's, as huggingface_hub parses them: every JSON body served is parsed again with
the library's own ``ModelInfo`` / ``DatasetInfo`` / ``RepoFile`` / ``RepoFolder``, and a body that does
not parse, or lacks a field the tools read, is a violation (the fixture fails the test). Errors carry
the hub's ``X-Error-Code`` / ``X-Error-Message`` headers (the library types errors by them); every
response carries an ``X-Request-Id``. ``resolve`` answers a git-stored file itself (``ETag`` = the git
blob sha1, ``X-Repo-Commit``) and an LFS file with a 302 to the CDN — another origin — whose headers
``X-Linked-Etag`` (the sha256), ``X-Linked-Size`` and ``X-Repo-Commit`` are all a HEAD ever sees.
The CDN serves content by sha256 on a signed URL, checks the signature, and must never see a token.
Listings page with a ``Link: <…>; rel="next"`` header, as the hub does.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SIGNATURE = "X-Amz-Signature=c2lnbmVk&X-Amz-Expires=3600"
DATE = "2026-11-20T10:00:00.000Z"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:
        """The git object id the tree holds: the file's own blob, or for LFS the pointer's."""
        return git_sha1(self.pointer if self.lfs else self.data)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    commits: dict[str, dict[str, Blob]]
    refs: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)
    private: bool = False
    gated: str | bool = False
    accepted: set[str] = field(default_factory=set)  # tokens whose accounts accepted a gated repo's terms

    def commit(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass
class Seen:
    server: str
    method: str
    path: str
    query: list[tuple[str, str]]
    authorization: str | None


class Stop(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class FakeHub:
    def __init__(self, hub: HTTPServer, cdn: HTTPServer, valid_tokens: set[str]) -> None:
        self.hub = hub
        self.cdn = cdn
        self.valid_tokens = valid_tokens
        self.repos: dict[tuple[str, str], Repo] = {}
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self.page_size = 1000
        self.cdn_seconds_per_chunk = 0.0  # a slow CDN: 64 KiB, then this pause, and so on
        self.rate_limited = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        hub.expect_request(re.compile(".*")).respond_with_handler(self._hub)
        cdn.expect_request(re.compile(".*")).respond_with_handler(self._cdn)

    @property
    def url(self) -> str:
        return self.hub.url_for("/").rstrip("/")

    @property
    def cdn_url(self) -> str:
        return self.cdn.url_for("/").rstrip("/")

    def add(self, repo: Repo) -> Repo:
        self.repos[(repo.repo_type, repo.repo_id)] = repo
        return repo

    def requests(self, server: str = "hub", method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.server == server and (method is None or s.method == method)]

    @contextmanager
    def rate_limit(self, count: int = 1) -> Iterator[None]:
        self.rate_limited = count
        try:
            yield
        finally:
            self.rate_limited = 0

    # -- answers --------------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-Request-Id": f"Root=1-{next(self._ids):08x}-loopback", **(extra or {})}

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            json.dumps(body), status=status, headers=self._headers(headers), content_type="application/json"
        )

    def _error(self, status: int, code: str | None, message: str) -> Stop:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        return Stop(self._json({"error": message}, status, headers))

    def _violation(self, message: str) -> Response:
        with self._lock:
            self.violations.append(message)
        return Response(json.dumps({"error": f"loopback: {message}"}), status=599, content_type="application/json")

    def _parsed(self, kind: str, body: Any) -> None:
        """Every body is what huggingface_hub parses, with the fields the tools read."""
        import huggingface_hub as hub

        # The library's own parsing (its constructors are untyped: called through Any).
        library: Any = hub

        items = body if isinstance(body, list) else [body]
        for item in items:
            try:
                if kind == "model":
                    info: Any = library.ModelInfo(**item)
                    assert info.id and info.downloads is not None and info.likes is not None
                elif kind == "dataset":
                    info = library.DatasetInfo(**item)
                    assert info.id and info.downloads is not None and info.likes is not None
                elif kind == "sha":
                    parse = {"model": "ModelInfo", "dataset": "DatasetInfo", "space": "SpaceInfo"}[item.pop("kind")]
                    assert getattr(library, parse)(**item).sha
                elif kind == "tree":
                    entry: Any = library.RepoFile(**item) if item["type"] == "file" else library.RepoFolder(**item)
                    assert entry.path
                    if item["type"] == "file":
                        assert entry.size is not None and entry.blob_id
                        assert (entry.lfs is not None) == ("lfs" in item)
                if kind in ("model", "dataset") and "siblings" in item and item["siblings"] is not None:
                    assert info.sha, "an info body names its commit"
                    for sibling in info.siblings:
                        assert sibling.rfilename
                        assert sibling.size is not None and sibling.blob_id, "files_metadata bodies have sizes"
            except Exception as exc:
                raise Stop(self._violation(f"a {kind} body huggingface_hub cannot use: {exc!r}: {item}")) from None

    # -- the hub --------------------------------------------------------------------------------

    def _hub(self, request: Request) -> Response:
        self.seen.append(
            Seen(
                "hub",
                request.method,
                request.path,
                list(request.args.items(multi=True)),
                request.headers.get("Authorization"),
            )
        )
        try:
            return self._serve(request)
        except Stop as stop:
            return stop.response
        except Exception as exc:  # the handler thread must never die silently
            return self._violation(f"loopback hub crashed: {exc!r}")

    def _token(self, request: Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        token = header.removeprefix("Bearer ")
        if token not in self.valid_tokens:
            raise self._error(401, None, "Invalid credentials in Authorization header")
        return token

    def _serve(self, request: Request) -> Response:
        if self.rate_limited:
            self.rate_limited -= 1
            raise Stop(
                self._json(
                    {"error": "You have exceeded our hourly quotas for action: api. Retry later."},
                    429,
                    {
                        "RateLimit": '"api";r=0;t=37',
                        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
                        "Retry-After": "37",
                    },
                )
            )
        token = self._token(request)
        path = request.path
        if path in ("/api/models", "/api/datasets") and request.method == "GET":
            return self._search(request, path.removeprefix("/api/").removesuffix("s"))
        for kind in ("model", "dataset", "space"):
            if path.startswith(f"/api/{kind}s/") and request.method == "GET":
                rest = path.removeprefix(f"/api/{kind}s/")
                if "/tree/" in rest:
                    repo_id, _, tail = rest.partition("/tree/")
                    return self._tree(request, self._repo(kind, repo_id, token), tail)
                repo_id, _, revision = rest.partition("/revision/")
                return self._info(request, self._repo(kind, repo_id, token), revision or "main")
        if "/resolve/" in path and request.method in ("GET", "HEAD"):
            kind, rest = "model", path[1:]
            for prefix, name in (("datasets/", "dataset"), ("spaces/", "space")):
                if rest.startswith(prefix):
                    kind, rest = name, rest.removeprefix(prefix)
            repo_id, _, tail = rest.partition("/resolve/")
            return self._resolve(request, self._repo(kind, repo_id, token), tail, token)
        return self._violation(f"no such hub route: {request.method} {path}")

    def _repo(self, kind: str, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get((kind, repo_id))
        if repo is None or (repo.private and token is None):
            # The hub does not tell a missing repo from a private one: 401 without a token, 404 with one.
            raise self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str:
        commit = repo.commit(unquote(revision))
        if commit is None:
            raise self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _search(self, request: Request, kind: str) -> Response:
        args = request.args
        allowed = {"search", "author", "pipeline_tag", "filter", "sort", "limit", "cursor"}
        unknown = set(args) - allowed
        if unknown:
            return self._violation(f"unexpected search parameters {sorted(unknown)}")
        found = [r for r in self.repos.values() if r.repo_type == kind and not r.private]
        if args.get("search"):
            found = [r for r in found if args["search"].lower() in r.repo_id.lower()]
        if args.get("author"):
            found = [r for r in found if r.repo_id.startswith(args["author"] + "/")]
        if args.get("pipeline_tag"):
            found = [r for r in found if r.meta.get("pipeline_tag") == args["pipeline_tag"]]
        for tag in args.getlist("filter"):
            found = [r for r in found if tag in r.meta.get("tags", []) or tag == r.meta.get("library_name")]
        sort = {
            "downloads": "downloads",
            "likes": "likes",
            "trendingScore": "trendingScore",
            "lastModified": "lastModified",
        }
        key = sort.get(args.get("sort", "downloads"))
        if key is None:
            return self._violation(f"sort {args.get('sort')!r} is not one the hub knows")
        found.sort(key=lambda r: (r.meta.get(key, 0), r.repo_id), reverse=True)
        limit = int(args.get("limit", "1000"))
        start = int(base64.b64decode(args["cursor"])) if args.get("cursor") else 0
        page = found[start : start + limit]
        rows = [self._row(r) for r in page]
        self._parsed(kind, rows)
        headers = {}
        if start + limit < len(found):
            query = [(k, v) for k, v in args.items(multi=True) if k != "cursor"]
            query.append(("cursor", base64.b64encode(str(start + limit).encode()).decode()))
            headers["Link"] = f'<{self.url}/api/{kind}s?{urlencode(query)}>; rel="next"'
        return self._json(rows, headers=headers)

    def _row(self, repo: Repo) -> dict[str, Any]:
        meta = repo.meta
        common = {
            "_id": hashlib.md5(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
            "id": repo.repo_id,
            "likes": meta.get("likes", 0),
            "trendingScore": meta.get("trendingScore", 0),
            "private": repo.private,
            "downloads": meta.get("downloads", 0),
            "tags": meta.get("tags", []),
            "createdAt": DATE,
        }
        if repo.repo_type == "model":
            row = {**common, "modelId": repo.repo_id, "library_name": meta.get("library_name")}
            if meta.get("pipeline_tag"):
                row["pipeline_tag"] = meta["pipeline_tag"]
            return row
        return {
            **common,
            "author": repo.repo_id.split("/")[0],
            "disabled": False,
            "gated": repo.gated,
            "lastModified": meta.get("lastModified", DATE),
            "sha": repo.refs["main"],
            "description": meta.get("description", ""),
            "key": "",
        }

    def _info(self, request: Request, repo: Repo, revision: str) -> Response:
        commit = self._commit(repo, revision)
        expand = request.args.getlist("expand")
        if expand:
            if expand != ["sha"] or request.args.get("blobs"):
                return self._violation(f"expand={expand} with blobs is refused by the hub")
            # Only the fields asked for: the library parses it, and the tools read only the commit.
            body: dict[str, Any] = {"_id": "0" * 24, "id": repo.repo_id, "sha": commit}
            self._parsed("sha", {**body, "kind": repo.repo_type})
            return self._json(body)
        blobs = request.args.get("blobs") == "True" or request.args.get("blobs") == "true"
        files = repo.commits[commit]
        siblings = []
        for path, blob in sorted(files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling |= {"blobId": blob.oid, "size": len(blob.data)}
                if blob.lfs:
                    sibling["lfs"] = {"sha256": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        body = {
            **self._row(repo),
            "author": repo.repo_id.split("/")[0],
            "sha": commit,
            "lastModified": repo.meta.get("lastModified", DATE),
            "disabled": False,
            "gated": repo.gated,
            "siblings": siblings,
            "cardData": repo.meta.get("cardData", {}),
            "usedStorage": sum(len(b.data) for b in files.values()),
        }
        if repo.repo_type == "model":
            body |= {"spaces": [], "safetensors": repo.meta.get("safetensors")} if repo.meta.get("safetensors") else {}
        self._parsed(repo.repo_type, body)
        return self._json(body)

    def _tree(self, request: Request, repo: Repo, tail: str) -> Response:
        revision, _, folder = tail.partition("/")
        commit = self._commit(repo, revision)
        if set(request.args) - {"recursive", "expand", "cursor"} or request.args.get("expand") not in (
            "false",
            "False",
        ):
            return self._violation(f"unexpected tree parameters {dict(request.args)}")
        recursive = request.args.get("recursive") in ("true", "True")
        files = repo.commits[commit]
        base = folder + "/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, blob in files.items():
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                directory = base + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries[directory] = {
                        "type": "directory",
                        "oid": git_sha1(directory.encode()),
                        "size": 0,
                        "path": directory,
                    }
            if recursive or len(parts) == 1:
                entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
                entries[path] = entry
        if folder and not entries:
            raise self._error(404, "EntryNotFound", f'{folder} does not exist on "{revision}"')
        ordered = [entries[key] for key in sorted(entries)]
        start = int(base64.b64decode(request.args["cursor"])) if request.args.get("cursor") else 0
        page = ordered[start : start + self.page_size]
        self._parsed("tree", page)
        headers = {}
        if start + self.page_size < len(ordered):
            query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
            query.append(("cursor", base64.b64encode(str(start + self.page_size).encode()).decode()))
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return self._json(page, headers=headers)

    def _resolve(self, request: Request, repo: Repo, tail: str, token: str | None) -> Response:
        revision, _, path = tail.partition("/")
        if repo.gated and token not in repo.accepted:
            if token is None:
                raise self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated "
                    "to access it. Please log in.",
                )
            raise self._error(
                403,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.url}/{repo.repo_id} to ask for access.",
            )
        commit = self._commit(repo, revision)
        blob = repo.commits[commit].get(path)
        if blob is None:
            raise self._error(404, "EntryNotFound", "Entry not found")
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if blob.lfs:
            location = f"{self.cdn_url}/repos/{blob.sha256[:2]}/{blob.sha256}?{SIGNATURE}"
            headers |= {
                "Location": location,
                "ETag": f'"{blob.oid}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(len(blob.data)),
            }
            return Response(f"Found. Redirecting to {location}", status=302, headers=self._headers(headers))
        return self._content(request, blob.data, {**headers, "ETag": f'"{blob.oid}"'})

    def _content(self, request: Request, data: bytes, headers: dict[str, str]) -> Response:
        status, body = 200, data
        spec = request.headers.get("Range")
        if spec and spec.startswith("bytes="):
            first, _, last = spec.removeprefix("bytes=").partition("-")
            start, end = int(first or 0), min(int(last) if last else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return Response(body, status=status, headers=self._headers(headers), content_type="application/octet-stream")

    def _slow(self, data: bytes, headers: dict[str, str]) -> Response:
        pause = self.cdn_seconds_per_chunk

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 65536):
                yield data[start : start + 65536]
                time.sleep(pause)

        headers = {**headers, "Content-Length": str(len(data))}
        return Response(chunks(), headers=headers, content_type="application/octet-stream", direct_passthrough=True)

    # -- the CDN --------------------------------------------------------------------------------

    def _cdn(self, request: Request) -> Response:
        self.seen.append(
            Seen(
                "cdn",
                request.method,
                request.path,
                list(request.args.items(multi=True)),
                request.headers.get("Authorization"),
            )
        )
        if request.headers.get("Authorization"):
            return self._violation("the CDN was sent an Authorization header: a token left the hub")
        if request.query_string.decode() != SIGNATURE:
            return Response("<Error><Code>AccessDenied</Code></Error>", status=403, content_type="application/xml")
        sha256 = request.path.rsplit("/", 1)[-1]
        for repo in self.repos.values():
            for files in repo.commits.values():
                for blob in files.values():
                    if blob.lfs and blob.sha256 == sha256:
                        if self.cdn_seconds_per_chunk and not request.headers.get("Range"):
                            return self._slow(blob.data, {"ETag": f'"{sha256}"'})
                        return self._content(request, blob.data, {"ETag": f'"{sha256}"'})
        return Response("<Error><Code>NoSuchKey</Code></Error>", status=404, content_type="application/xml")
