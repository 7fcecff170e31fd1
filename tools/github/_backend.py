"""The GitHub backend: githubkit's async client with our auth, base URL, retry policy and error messages.

Tools call :meth:`GitHubBackend.request` with a spec path; it records the request id, the remaining
rate limit and the request line on the call's span, and turns every upstream failure into an
:class:`UpstreamError` whose message tells the agent what to do next. githubkit is imported here
lazily (inside :func:`open_backend`), never at module import: server cold start matters.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio

from mcp_ledger.provenance import annotate
from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools._logtail import Grep, LogExcerpt, LogTail
from mcp_ledger.tools.group import NotConfigured, UpstreamError

if TYPE_CHECKING:
    import httpx
    from githubkit import GitHub
    from githubkit.exception import GitHubException
    from githubkit.typing import RetryOption

__all__ = [
    "API_VERSION",
    "GitHubBackend",
    "LogExcerpt",
    "api_base_url",
    "find_token",
    "next_page",
    "open_backend",
]

# The REST API version that both api.github.com and GitHub Enterprise Server accept. githubkit's
# typed endpoint methods pin a newer version that GHES rejects, so requests go through its core client.
API_VERSION = "2022-11-28"
TOKEN_HINT = "GITHUB_TOKEN or GH_TOKEN (or log in with `gh auth login`)"


def api_base_url(host: str | None, environ: Mapping[str, str]) -> str:
    """The REST base URL: ``--github-host`` wins, then ``GITHUB_API_URL``, then api.github.com.

    A host is a name (``github.example.com`` → GHES at ``/api/v3``; ``corp.ghe.com`` → ``api.corp.ghe.com``)
    or a URL with a scheme (``https://github.example.com``), to which ``/api/v3`` is added likewise.
    """
    if host:
        host = host.strip().rstrip("/")
        scheme, _, name = host.rpartition("://")
        scheme = scheme or "https"
        bare = name.split("/", 1)[0].lower()
        if bare in ("github.com", "api.github.com"):
            return "https://api.github.com"
        if bare.endswith(".ghe.com"):
            return f"{scheme}://{name if bare.startswith('api.') else 'api.' + name}"
        return f"{scheme}://{name}" if name.endswith("/api/v3") else f"{scheme}://{name}/api/v3"
    url = environ.get("GITHUB_API_URL", "").strip().rstrip("/")
    return url or "https://api.github.com"


async def find_token(host_name: str, environ: Mapping[str, str]) -> str | None:
    """``GITHUB_TOKEN``, else ``GH_TOKEN``, else ``gh auth token`` when the gh CLI is installed."""
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        value = environ.get(name, "").strip()
        if value:
            return value
    gh = shutil.which("gh", path=environ.get("PATH"))
    if gh is None:
        return None
    command = [gh, "auth", "token"]
    if host_name not in ("api.github.com", "github.com"):
        command += ["--hostname", host_name]
    try:
        with anyio.fail_after(10):
            result = await anyio.run_process(command, check=False)
    except (OSError, TimeoutError):
        return None
    token = result.stdout.decode(errors="replace").strip()
    return token if result.returncode == 0 and token else None


def next_page(link_header: str | None) -> str | None:
    """The ``page`` of the ``rel="next"`` link, as the cursor for the next page."""
    for part in (link_header or "").split(","):
        match = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', part)
        if match:
            pages = parse_qs(urlsplit(match[1]).query).get("page")
            if pages and pages[0].isdigit():
                return pages[0]
    return None


class RetryPolicy:
    """Wait out a rate limit only when the wait is short; retry a 5xx twice. Anything else fails now.

    githubkit's default sleeps for the whole ``Retry-After`` (or until ``x-ratelimit-reset``) without a
    cap, which would hold a tool call for up to an hour.
    """

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        from githubkit.exception import RateLimitExceeded, RequestFailed
        from githubkit.typing import RetryOption

        if isinstance(exc, RateLimitExceeded):
            wait = exc.retry_after.total_seconds()
            if retry_count < 1 and wait <= self.max_wait:
                annotate(rate_limit_waited_s=round(wait, 3))
                return RetryOption(True, timedelta(seconds=wait))
            return RetryOption(False)
        if isinstance(exc, RequestFailed) and exc.response.status_code in (502, 503, 504) and retry_count < 2:
            return RetryOption(True, timedelta(seconds=retry_count + 1))
        return RetryOption(False)


def _github_message(response: httpx.Response) -> str:
    """GitHub's own error text: ``message`` plus the ``errors`` details of a 422."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or "")
    details = []
    for error in body.get("errors") or ():
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[key]) for key in ("resource", "field", "code") if error.get(key)
            )
            details.append(str(text))
        else:
            details.append(str(error))
    if details:
        message = f"{message}: {'; '.join(details)}" if message else "; ".join(details)
    return message[:500]


class GitHubBackend:
    """One configured GitHub: base URL, token, githubkit clients (following redirects, and not)."""

    def __init__(self, github: GitHub[Any], github_no_redirect: GitHub[Any], base_url: str, timeout: float) -> None:
        self._github = github
        self._github_no_redirect = github_no_redirect
        self.base_url = base_url
        self.shown_url = redact_text(base_url)[0]  # GITHUB_API_URL may carry user:password (never shown)
        self.timeout = timeout
        self.api_host = _host(base_url)

    async def aclose(self) -> None:
        """Nothing to close: outside ``async with``, githubkit opens and closes an HTTP client per request."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept: str | None = None,
        follow_redirects: bool = True,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one REST request; ``what`` names the object for error messages ("pull request #3 in o/r").

        ``ok_statuses`` lists error statuses the caller handles itself (returned, not raised).
        """
        from githubkit.exception import RateLimitExceeded, RequestFailed, RequestTimeout

        headers = {"X-GitHub-Api-Version": API_VERSION}
        if accept:
            headers["Accept"] = accept
        query = {key: value for key, value in (params or {}).items() if value is not None}
        client = self._github if follow_redirects else self._github_no_redirect
        annotate(github_request=f"{method} {path}")
        try:
            response = await client.arequest(method, path, params=query or None, json=json, headers=headers)
        except RateLimitExceeded as exc:
            self._note(exc.response.raw_response)
            until = datetime.now(UTC) + exc.retry_after
            kind = "secondary" if type(exc).__name__.startswith("Secondary") else "primary"
            raise UpstreamError(
                f"GitHub {kind} rate limit exceeded; rate limited until {until.isoformat(timespec='seconds')} "
                f"(in {int(exc.retry_after.total_seconds())} s). Retry after that time, or use another token."
            ) from None
        except RequestFailed as exc:
            raw = exc.response.raw_response
            self._note(raw)
            if raw.status_code in ok_statuses:
                return raw
            raise self._failure(raw, what) from None
        except RequestTimeout:
            raise UpstreamError(f"GitHub at {self.api_host} did not answer within {self.timeout:g} s") from None
        except Exception as exc:
            if type(exc).__module__.startswith("githubkit"):
                cause = type(getattr(exc, "exc", exc)).__name__
                raise UpstreamError(f"cannot reach GitHub at {self.shown_url} ({cause})") from None
            raise
        self._note(response.raw_response)
        return response.raw_response

    def _note(self, response: httpx.Response) -> None:
        annotate(
            github_request_id=response.headers.get("x-github-request-id"),
            ratelimit_remaining=_int_or_none(response.headers.get("x-ratelimit-remaining")),
        )

    def _failure(self, response: httpx.Response, what: str) -> UpstreamError:
        status = response.status_code
        said = _github_message(response)
        match status:
            case 401:
                return UpstreamError(
                    f"GitHub rejected the token (401 {said or 'Bad credentials'}): set {TOKEN_HINT} to a valid token"
                )
            case 403:
                return UpstreamError(
                    f"GitHub refused access to {what} (403: {said}); the token lacks a permission or scope for it"
                )
            case 404:
                return UpstreamError(
                    f"not found: {what} (404); check the names and numbers, or the token cannot see that repository"
                )
            case 410:
                return UpstreamError(f"gone: {what} (410: {said})")
            case 422:
                return UpstreamError(f"GitHub rejected the request for {what} (422): {said}")
            case _:
                return UpstreamError(f"GitHub answered {status} for {what}: {said}")

    async def read_log(
        self,
        path: str,
        *,
        what: str,
        tail_lines: int,
        grep: Grep | None,
        max_bytes: int,
    ) -> LogExcerpt:
        """Read a job log: the API answers 302 to a short-lived blob URL, which is streamed (never held whole)."""
        import httpx

        response = await self.request("GET", path, what=what, follow_redirects=False, ok_statuses=(410,))
        if response.status_code == 410:
            raise UpstreamError(f"the log of {what} is no longer available (410: logs expire)")
        excerpt = LogTail(tail_lines, grep)
        if response.is_redirect:
            location = response.headers.get("location", "")
            # The blob URL carries a signature: record only its host, and send it no GitHub token.
            annotate(log_blob_host=urlsplit(location).netloc)
            async with (
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=True) as client,
                client.stream("GET", location) as blob,
            ):
                if blob.status_code != 200:
                    raise UpstreamError(f"the log blob of {what} answered {blob.status_code}; ask again for a new URL")
                async for line in blob.aiter_lines():
                    excerpt.feed(line)
        else:
            for line in response.text.splitlines():
                excerpt.feed(line)
        return excerpt.result(max_bytes)


def _host(url: str) -> str:
    """host[:port] of a URL, without any user:password before it."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


async def open_backend(
    *, host: str | None, max_rate_limit_wait: float, request_timeout: float, environ: Mapping[str, str] | None = None
) -> GitHubBackend:
    """Build the backend, or raise :class:`NotConfigured` when no token can be found."""
    environ = os.environ if environ is None else environ
    base_url = api_base_url(host, environ)
    netloc = _host(base_url)
    token = await find_token(netloc.removeprefix("api.") if netloc.endswith(".ghe.com") else netloc, environ)
    if token is None:
        raise NotConfigured(TOKEN_HINT)

    from githubkit import GitHub
    from githubkit.cache import MemCacheStrategy

    policy = RetryPolicy(max_rate_limit_wait)
    # One in-memory HTTP cache per backend: githubkit revalidates with ETags (conditional requests).
    cache = MemCacheStrategy()

    def client(follow_redirects: bool) -> GitHub[Any]:
        return GitHub(
            token,
            base_url=base_url,
            user_agent="mcp-ledger",
            timeout=request_timeout,
            follow_redirects=follow_redirects,
            auto_retry=policy,
            cache_strategy=cache,
        )

    return GitHubBackend(client(True), client(False), base_url, request_timeout)
