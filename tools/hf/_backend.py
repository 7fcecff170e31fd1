"""The hub backend: which hub, which token, online or not — read at connect time — and the hub calls.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the token file's path once, when it is
imported; a server may import it before the user's environment is what it will be. So this module
reads them itself in :func:`open_hub` and passes the endpoint and the token to every call explicitly.

huggingface_hub blocks: every hub call runs in a worker thread (:meth:`Hub.run`). The hub's request id
(``X-Request-Id``) is only exposed on errors, so a response hook on the library's HTTP client (installed
once, with ``set_client_factory``) gathers the ids of every response a call saw; outside our calls the
hook does nothing. Listing endpoints are requested directly (one page each, no hidden retries) and
parsed with the library's own ``ModelInfo`` / ``DatasetInfo`` / ``RepoFile`` / ``RepoFolder``.
Every failure becomes a :class:`HubError` whose message says what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import anyio.to_thread

from mcp_ledger.provenance import annotate
from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools.group import Abandoned, NotConfigured, UpstreamError, WorkerCall, run_in_worker

if TYPE_CHECKING:
    import httpx2
    from mcp.server.mcpserver import Context

    from mcp_ledger.tools.hf import HfSettings

__all__ = [
    "DEFAULT_ENDPOINT",
    "Credentials",
    "Download",
    "FileText",
    "Hub",
    "HubCall",
    "HubError",
    "cache_dir",
    "endpoint_url",
    "find_credentials",
    "is_offline",
    "open_hub",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_HINT = "set HF_TOKEN (or log in with `hf auth login`)"
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})  # huggingface_hub's own reading of a boolean variable
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_MAX_REQUEST_IDS = 64
T = TypeVar("T")


class HubError(UpstreamError):
    """The hub refused or failed a request, or the bytes on disk do not match what it said."""


@dataclass(frozen=True)
class Credentials:
    token: str | None
    source: str  # HF_TOKEN, HUGGING_FACE_HUB_TOKEN, "token file" or "none" (recorded, never the token)


def _hf_home(environ: Mapping[str, str], home: Path) -> Path:
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser()
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "huggingface"


def find_credentials(environ: Mapping[str, str], home: Path) -> Credentials:
    """``HF_TOKEN`` (or the legacy ``HUGGING_FACE_HUB_TOKEN``), else the token file ``hf auth login`` wrote."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = environ.get(name, "").strip()
        if value:
            return Credentials(value, name)
    path = (
        Path(environ["HF_TOKEN_PATH"]).expanduser()
        if environ.get("HF_TOKEN_PATH")
        else _hf_home(environ, home) / "token"
    )
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        value = ""
    return Credentials(value, "token file") if value else Credentials(None, "none")


def cache_dir(environ: Mapping[str, str], home: Path) -> Path:
    """The standard hub cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub`` (where other tools look too)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return Path(environ[name]).expanduser()
    return _hf_home(environ, home) / "hub"


def is_offline(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name, "").strip().upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def endpoint_url(configured: str | None, environ: Mapping[str, str]) -> str:
    """``--hf-endpoint``, else ``HF_ENDPOINT``, else huggingface.co; an http(s) URL without a trailing slash."""
    for value, source in ((configured, "--hf-endpoint"), (environ.get("HF_ENDPOINT"), "HF_ENDPOINT")):
        if value and value.strip():
            url = value.strip().rstrip("/")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                raise NotConfigured(f"{source} to the hub's http(s) URL (it is {redact_text(url)[0]!r})")
            return url
    return DEFAULT_ENDPOINT


class HubCall:
    """What one tool call's hub requests saw, gathered in its worker thread (the tool annotates it after)."""

    def __init__(self, worker: WorkerCall) -> None:
        self.worker = worker
        self.request_ids: list[str] = []

    def saw(self, response: httpx2.Response) -> None:
        request_id = response.headers.get("x-request-id")
        if request_id and len(self.request_ids) < _MAX_REQUEST_IDS:
            self.request_ids.append(request_id[:128])


_current: ContextVar[HubCall | None] = ContextVar("mcp_ledger_hf_call", default=None)
_hook_lock = threading.Lock()
_hook_installed = False


def _on_response(response: httpx2.Response) -> None:
    call = _current.get()
    if call is not None:
        call.saw(response)


def _client_factory() -> httpx2.Client:
    """The library's own client, plus a response hook (called for every response, redirects included)."""
    from huggingface_hub.utils._http import default_client_factory

    client = default_client_factory()
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "response": [*hooks.get("response", []), _on_response]}
    return client


def prepare_library() -> None:
    """Once per process: the library's HTTP client gets :func:`_on_response` (a no-op outside our calls),
    and its agent detection is left without a registry.

    huggingface_hub builds every request's User-Agent with ``detect_agent()``, which on first use fetches
    ``/api/agent-harnesses`` from the endpoint it read at import — huggingface.co, whatever hub this server
    was configured for (a mirror, an air-gapped enterprise hub). A server must not make requests nobody
    asked for, to a host nobody configured: an empty registry means "no agent detected", with no fetch."""
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            from huggingface_hub import set_client_factory
            from huggingface_hub.utils import _detect_agent

            if _detect_agent._registry is None:
                _detect_agent._registry = _detect_agent._EMPTY_REGISTRY
            set_client_factory(_client_factory)
            _hook_installed = True


@dataclass(frozen=True)
class FileText:
    commit: str | None
    etag: str | None
    size: int | None
    data: bytes
    sha256: str | None  # of the whole file, when all of it was read
    verified: bool | None


@dataclass(frozen=True)
class Download:
    commit: str | None
    etag: str | None
    size: int
    local_path: str
    sha256: str
    verified: bool | None
    cached: bool


def etag_matches(etag: str | None, sha256: str, git_sha1: str) -> bool | None:
    """Does the content match the hub's etag (an LFS file's sha256, a git file's blob sha1)? None: neither form."""
    if etag is None:
        return None
    if _HEX64.fullmatch(etag):
        return etag == sha256
    if _HEX40.fullmatch(etag):
        return etag == git_sha1
    return None


def _digests(data: bytes) -> tuple[str, str]:
    blob = hashlib.sha1(f"blob {len(data)}\0".encode(), usedforsecurity=False)
    blob.update(data)
    return hashlib.sha256(data).hexdigest(), blob.hexdigest()


class Hub:
    """One configured hub: endpoint, credentials, offline mode, cache directory; calls in worker threads."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        offline: bool,
        cache: Path,
        timeout: float,
        max_download_bytes: int,
    ) -> None:
        from huggingface_hub import HfApi

        self.endpoint = endpoint
        self.shown_endpoint = redact_text(endpoint)[0]  # an endpoint may carry user:password (never shown)
        self.credentials = credentials
        self.offline = offline
        self.cache = cache
        self.timeout = timeout
        self.max_download_bytes = max_download_bytes
        self._token: str | bool = credentials.token or False  # False: send no token, not even an implicit one
        self.api = HfApi(endpoint=endpoint, token=self._token, library_name="mcp-ledger")

    async def aclose(self) -> None:
        """Nothing to close: the library's HTTP client is shared by the process and closed at exit."""

    def annotate_target(self, repo_type: str, repo_id: str, requested: str | None) -> None:
        annotate(
            hub_endpoint=self.shown_endpoint,
            hub_auth=self.credentials.source,
            repo_type=repo_type,
            repo_id=repo_id,
            requested_revision=requested or "main",
        )

    async def run(
        self, fn: Callable[[HubCall], T], *, what: str, ctx: Context | None = None, offline_ok: bool = False
    ) -> T:
        """``fn(call)`` in a worker thread; the hub's request ids go on the span, failures become HubError.

        ``what`` names the object for messages ("model acme/m at main"); never put a secret in it. Offline,
        only a function that reads the hub cache alone (``offline_ok``) runs."""
        if self.offline and not offline_ok:
            raise HubError(
                f"offline: HF_HUB_OFFLINE is set, so the hub is not asked for {what}; unset it to reach "
                f"{self.shown_endpoint} (hf_file_download still answers from the hub cache)"
            )
        calls: list[HubCall] = []

        def work(worker: WorkerCall) -> T:
            call = HubCall(worker)
            calls.append(call)
            token = _current.set(call)
            try:
                return fn(call)
            except (Abandoned, HubError):
                raise
            except Exception as exc:
                raise self.failure(exc, what) from None
            finally:
                _current.reset(token)

        try:
            return await run_in_worker(work, label=f"hf: {what}", ctx=ctx)
        finally:
            if calls and calls[0].request_ids:
                annotate(hub_request_id=list(calls[0].request_ids))

    def failure(self, exc: Exception, what: str) -> HubError:
        """The library's exception as a message an agent can act on (the error code, never the token)."""
        import httpx2
        from huggingface_hub import errors

        has_token = self.credentials.token is not None
        page = f"{self.shown_endpoint}/{_repo_page(what)}"
        said = _server_said(exc)
        if isinstance(exc, errors.GatedRepoError):
            if not has_token:
                return HubError(
                    f"gated: {what} needs an account that accepted its terms: {TOKEN_HINT}, then accept at {page}"
                )
            return HubError(
                f"gated: {what} needs its terms accepted (and approved, for manual gating) "
                f"for the token's account at {page}"
            )
        if isinstance(exc, errors.RepositoryNotFoundError):
            hint = "or the token cannot see it" if has_token else f"or it is private: {TOKEN_HINT}"
            return HubError(f"not found: {what} does not exist ({hint}){said}")
        if isinstance(exc, errors.RevisionNotFoundError):
            return HubError(f"not found: no such revision for {what} (a branch, tag or commit sha){said}")
        if isinstance(exc, errors.RemoteEntryNotFoundError):
            return HubError(f"not found: no such file or folder in {what}{said}")
        if isinstance(exc, errors.LocalEntryNotFoundError):
            return HubError(
                f"not in the hub cache ({self.cache}): {what}; HF_HUB_OFFLINE is set, so it is not downloaded"
            )
        if isinstance(exc, errors.DisabledRepoError):
            return HubError(f"disabled: access to {what} is disabled on the hub{said}")
        if isinstance(exc, errors.OfflineModeIsEnabled):
            return HubError(f"offline: huggingface_hub was imported with HF_HUB_OFFLINE set; {what} was not fetched")
        if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None:
            return self._status_failure(exc.response, what, said, has_token)
        if isinstance(exc, httpx2.TimeoutException):
            return HubError(f"the hub at {self.shown_endpoint} did not answer within {self.timeout:g} s ({what})")
        if isinstance(exc, httpx2.TransportError | ConnectionError):
            return HubError(
                f"cannot reach the hub at {self.shown_endpoint} ({type(exc).__name__}); "
                "check HF_ENDPOINT and the network"
            )
        if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
            return HubError(f"the download of {what} ended short (the connection broke); call again to resume")
        raise exc

    def _status_failure(self, response: httpx2.Response, what: str, said: str, has_token: bool) -> HubError:
        status = response.status_code
        if status == 401:
            if has_token:
                return HubError(
                    f"the hub rejected the token (401){said}: set HF_TOKEN to a valid token "
                    f"(from {self.credentials.source})"
                )
            return HubError(f"the hub wants a token for {what} (401){said}: {TOKEN_HINT}")
        if status == 403:
            return HubError(f"forbidden: the token may not read {what} (403){said}; it needs read access to the repo")
        if status == 429:
            wait = _retry_after(response.headers)
            when = f"retry after {wait} s" if wait is not None else "retry later"
            more = "" if has_token else f"; {TOKEN_HINT} for a higher limit"
            return HubError(f"rate limited by the hub (429) on {what}: {when}{more}")
        return HubError(f"the hub answered {status} for {what}{said}")

    # -- hub calls; each runs inside run()'s worker thread -----------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        from huggingface_hub.utils._headers import build_hf_headers

        return build_hf_headers(token=self._token, library_name="mcp-ledger", headers=extra)

    def get_page(self, path: str, params: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]] | None]:
        """One page of a listing endpoint (no retries: a rate limit is reported, not slept through) and the
        query of the next page from the ``Link`` header."""
        from huggingface_hub import get_session, hf_raise_for_status

        response = get_session().get(
            f"{self.endpoint}{path}", params=tuple(params), headers=self._headers(), timeout=self.timeout
        )
        hf_raise_for_status(response)
        nxt = response.links.get("next", {}).get("url")
        return response.json(), (parse_qsl(urlsplit(nxt).query, keep_blank_values=True) if nxt else None)

    def read_bytes(self, url: str, limit: int, call: HubCall) -> bytes:
        """The first ``limit`` bytes at ``url`` (a Range request; read no further if the server ignores it).

        Redirects are followed; the HTTP client drops the token when a redirect leaves the hub's origin."""
        from huggingface_hub import get_session, hf_raise_for_status

        headers = self._headers({"Range": f"bytes=0-{limit - 1}", "Accept-Encoding": "identity"})
        data = bytearray()
        with get_session().stream("GET", url, headers=headers, timeout=self.timeout) as response:
            hf_raise_for_status(response)
            for chunk in response.iter_bytes(_CHUNK):
                call.worker.check()
                data += chunk[: limit - len(data)]
                if len(data) >= limit:
                    break
        return bytes(data)

    def file_url(self, repo_type: str, repo_id: str, revision: str, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, path, repo_type=repo_type, revision=revision, endpoint=self.endpoint)

    def read_file(self, call: HubCall, repo_type: str, repo_id: str, revision: str, path: str, limit: int) -> FileText:
        """HEAD of ``resolve`` (commit, etag, size — from the ``X-Linked-*`` headers of an LFS redirect),
        then the first ``limit`` bytes at that commit."""
        from huggingface_hub import get_hf_file_metadata

        meta = get_hf_file_metadata(
            self.file_url(repo_type, repo_id, revision, path),
            token=self._token,
            timeout=self.timeout,
            library_name="mcp-ledger",
            endpoint=self.endpoint,
        )
        data = self.read_bytes(self.file_url(repo_type, repo_id, meta.commit_hash or revision, path), limit, call)
        sha256 = verified = None
        if meta.size is not None and len(data) == meta.size:
            sha256, git_sha1 = _digests(data)
            verified = etag_matches(meta.etag, sha256, git_sha1)
            if verified is False:
                raise HubError(f"the bytes read of {path} do not match the hub's etag {meta.etag}; read it again")
        return FileText(meta.commit_hash, meta.etag, meta.size, data, sha256, verified)

    def download(self, call: HubCall, repo_type: str, repo_id: str, revision: str | None, path: str) -> Download:
        """Into the hub cache with ``hf_hub_download`` (which also records the branch or tag in the cache's
        ``refs``); a HEAD first refuses a file over the size limit and reports a rate limit at once. The
        commit and etag are read off the cache's layout (``snapshots/<commit>/…`` → ``blobs/<etag>``),
        then the bytes on disk are hashed and checked against the etag."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, try_to_load_from_cache

        meta = get_hf_file_metadata(
            self.file_url(repo_type, repo_id, revision or "main", path),
            token=self._token,
            timeout=self.timeout,
            library_name="mcp-ledger",
            endpoint=self.endpoint,
        )
        if meta.size is not None and meta.size > self.max_download_bytes:
            raise HubError(
                f"{path} is {meta.size / 2**20:.1f} MiB, over the {self.max_download_bytes / 2**20:.0f} MiB limit "
                "(--hf-max-download-mb)"
            )
        pinned = meta.commit_hash or revision or "main"
        before = try_to_load_from_cache(repo_id, path, cache_dir=self.cache, revision=pinned, repo_type=repo_type)
        local = str(
            hf_hub_download(
                repo_id,
                path,
                repo_type=repo_type,
                revision=revision,
                cache_dir=self.cache,
                token=self._token,
                endpoint=self.endpoint,
                library_name="mcp-ledger",
                etag_timeout=self.timeout,
                tqdm_class=_progress_class(call.worker, path),
            )
        )
        cached = isinstance(before, str)
        commit = _commit_of_snapshot(local, path) or meta.commit_hash
        return self._checked(call, local, commit, Path(os.path.realpath(local)).name, cached, progress=cached)

    def cached_file(self, call: HubCall, repo_type: str, repo_id: str, revision: str | None, path: str) -> Download:
        """Offline: the file from the hub cache (its commit and etag read from the cache's layout)."""
        from huggingface_hub import hf_hub_download

        local = str(
            hf_hub_download(
                repo_id, path, repo_type=repo_type, revision=revision, cache_dir=self.cache, local_files_only=True
            )
        )
        commit = _commit_of_snapshot(local, path)
        return self._checked(call, local, commit, Path(os.path.realpath(local)).name, True, progress=True)

    def _checked(
        self, call: HubCall, local: str, commit: str | None, etag: str | None, cached: bool, *, progress: bool
    ) -> Download:
        size = os.path.getsize(local)
        sha256 = hashlib.sha256()
        git_sha1 = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
        done, last = 0, 0.0
        with open(local, "rb") as file:
            while chunk := file.read(_CHUNK):
                call.worker.check()
                sha256.update(chunk)
                git_sha1.update(chunk)
                done += len(chunk)
                if progress and time.monotonic() - last > 0.5:  # (after a download, its progress said it all)
                    last = time.monotonic()
                    call.worker.progress(done, size, "checking sha256")
        digest = sha256.hexdigest()
        verified = etag_matches(etag, digest, git_sha1.hexdigest())
        if verified is False:
            raise HubError(
                f"the file in the hub cache ({local}) does not match the hub's etag {etag}: its sha256 is {digest}. "
                "Delete it and download again"
            )
        return Download(commit, etag, size, local, digest, verified, cached)


def _commit_of_snapshot(local: str, path: str) -> str | None:
    """``…/snapshots/<commit>/<path>`` → commit."""
    parts = Path(local).parts
    depth = len(path.split("/"))
    if len(parts) > depth + 1 and parts[-depth - 2] == "snapshots":
        return parts[-depth - 1]
    return None


def _progress_class(worker: WorkerCall, label: str) -> type:
    """A tqdm class for ``hf_hub_download``: its updates become MCP progress notifications (at most 4 a
    second), and a cancelled call stops the download at the next chunk. It draws nothing."""
    from tqdm import tqdm

    class Progress(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            self.shown = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            worker.check()
            self.done += int(n or 0)
            now = time.monotonic()
            if now - self.shown >= 0.25 or (self.total and self.done >= self.total):
                self.shown = now
                worker.progress(self.done, self.total, f"{label}: downloading")
            return None

    return Progress


def _repo_page(what: str) -> str:
    """'model acme/m at main' → 'acme/m'; 'dataset acme/d …' → 'datasets/acme/d' (the repo's web page)."""
    words = what.split()
    kind, repo = (words[0], words[1]) if len(words) > 1 else ("model", what)
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(kind, "")
    return prefix + repo


def _server_said(exc: Exception) -> str:
    message = getattr(exc, "server_message", None)
    if not message:
        return ""
    return f": {' '.join(str(message).split())[:300]}"


def _retry_after(headers: Mapping[str, str]) -> int | None:
    from huggingface_hub.utils._http import parse_ratelimit_headers

    info = parse_ratelimit_headers(headers)
    if info is not None and info.remaining == 0:
        return info.reset_in_seconds
    value = headers.get("retry-after", "").strip()
    return int(value) if value.isdigit() else None


def tree_url(repo_type: str, repo_id: str, commit: str, folder: str) -> str:
    return f"/api/{repo_type}s/{repo_id}/tree/{commit}" + (f"/{quote(folder, safe='')}" if folder else "")


async def open_hub(settings: HfSettings) -> Hub:
    environ = dict(os.environ)
    home = Path.home()
    endpoint = endpoint_url(settings.endpoint, environ)
    credentials = await anyio.to_thread.run_sync(find_credentials, environ, home)
    await anyio.to_thread.run_sync(prepare_library)
    return Hub(
        endpoint,
        credentials,
        offline=is_offline(environ),
        cache=cache_dir(environ, home),
        timeout=settings.timeout,
        max_download_bytes=settings.max_download_mb * 2**20,
    )
