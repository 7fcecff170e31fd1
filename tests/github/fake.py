"""A loopback GitHub on pytest-httpserver whose traffic is checked against GitHub's OpenAPI description.

Every request must hit a spec path with a spec method, carry only the operation's query parameters
(each valid for its schema, the required ones present), path parameters valid for theirs, and a JSON
body valid for its request schema. Every JSON response body is
validated against the operation's schema for that status; an error status the operation does not list
is validated against ``basic-error``. Stated exceptions: the job-log blob behind the 302 (``/_blob/…``,
plain text, not a spec path) and the PR diff media type (``application/vnd.github.diff``).

A violation answers 599 and is recorded; the fixture fails the test at teardown if any were recorded.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.github.spec import Operation, component, find_operation, param_errors, schema_errors

API_VERSION = "2022-11-28"
DIFF_MEDIA_TYPE = "application/vnd.github.diff"


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | bytes | None = None  # a non-JSON body (the diff media type, a log blob)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    operation_id: str | None


Handler = Callable[[Request, dict[str, str]], Reply]


class FakeGitHub:
    """Routes by (METHOD, spec path template); ``prefix`` is the GHES ``/api/v3`` mount."""

    def __init__(self, server: HTTPServer, token: str, prefix: str = "") -> None:
        self.server = server
        self.token = token
        self.prefix = prefix
        self.routes: dict[tuple[str, str], Handler] = {}
        self.blobs: dict[str, Handler] = {}
        self._log_locations: dict[str, str] = {}
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self.ratelimit_remaining = 4999
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)

    @property
    def base_url(self) -> str:
        return self.server.url_for(self.prefix or "/").rstrip("/")

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def on(self, method: str, template: str, reply: Reply | Handler) -> None:
        """Answer ``METHOD template`` (a spec path) with a fixed reply or a handler."""
        if isinstance(find_operation(method, template.replace("{", "").replace("}", "")), str):
            raise AssertionError(f"{method} {template} is not in the spec")
        self.routes[(method.upper(), template)] = _handler(reply)

    def blob(self, path: str, reply: Reply | Handler) -> None:
        """A log blob (the stated exception) at ``/_blob/<path>``."""
        self.blobs["/_blob/" + path] = _handler(reply)

    def job_log(self, job_id: int, data: bytes) -> None:
        """Serve a job's log as GitHub does: the API answers 302 to a signed blob URL (the stated exception).
        Each call adds one job's log; a job without one is answered 404."""
        blob_path = f"logs/{job_id}.txt"
        self._log_locations[str(job_id)] = self.url(f"/_blob/{blob_path}") + "?sig=c2lnbmF0dXJl&se=2026-03-01"
        self.on(
            "GET",
            "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs",
            lambda request, params: (
                Reply(302, None, {"Location": self._log_locations[params["job_id"]]})
                if params["job_id"] in self._log_locations
                else Reply(404, {"message": "Not Found"})
            ),
        )
        self.blob(blob_path, Reply(200, text=data))

    def calls(self, operation_id: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.operation_id == operation_id]

    def _violation(self, message: str) -> Response:
        with self._lock:
            self.violations.append(message)
        return Response(json.dumps({"message": f"loopback: {message}"}), status=599, content_type="application/json")

    def _dispatch(self, request: Request) -> Response:
        try:
            return self._serve(request)
        except Exception as exc:  # the handler thread must never die silently
            return self._violation(f"loopback handler crashed: {exc!r}")

    def _serve(self, request: Request) -> Response:
        path = request.path
        if path in self.blobs:
            seen = Seen(request.method, path, dict(request.args), dict(request.headers), None, None)
            self.seen.append(seen)
            return self._respond(self.blobs[path](request, {}), None, blob=True)
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return self._violation(f"{path} is outside the API prefix {self.prefix}")
            path = path[len(self.prefix) :]
        found = find_operation(request.method, path)
        if isinstance(found, str):
            return self._violation(found)
        op = found
        body = None
        if request.data:
            try:
                body = json.loads(request.data)
            except ValueError:
                return self._violation(f"{op.operation_id}: request body is not JSON")
        self.seen.append(Seen(request.method, path, dict(request.args), dict(request.headers), body, op.operation_id))
        params = dict(zip(_names(op.template), _values(op.template, path), strict=True))
        problems = self._check_request(request, op, body, params)
        if problems:
            return self._violation(f"{op.operation_id}: " + "; ".join(problems))
        handler = self.routes.get((op.method, op.template))
        if handler is None:
            return self._violation(f"no route for {op.method} {op.template} in this test")
        return self._respond(handler(request, params), op)

    def _check_request(self, request: Request, op: Operation, body: Any, path_params: dict[str, str]) -> list[str]:
        problems = []
        in_path = op.parameters("path")
        for name, value in path_params.items():
            problems.extend(param_errors(in_path[name], value, where="path"))
        if request.headers.get("Authorization") != f"token {self.token}":
            problems.append("no token Authorization header")
        if request.headers.get("X-GitHub-Api-Version") != API_VERSION:
            problems.append(f"X-GitHub-Api-Version is {request.headers.get('X-GitHub-Api-Version')!r}")
        accept = request.headers.get("Accept", "")
        if accept == DIFF_MEDIA_TYPE and op.operation_id != "pulls/get":
            problems.append("the diff media type is only for pulls/get")
        allowed = op.parameters("query")
        for name in request.args:
            values = request.args.getlist(name)
            if name not in allowed:
                problems.append(f"query parameter {name!r} is not in the spec")
            elif len(values) != 1:
                problems.append(f"query parameter {name!r} repeated")
            else:
                problems.extend(param_errors(allowed[name], values[0]))
        problems.extend(
            f"required query parameter {name!r} is missing"
            for name, param in allowed.items()
            if param.get("required") and name not in request.args
        )
        schema = op.request_schema()
        if schema is None and body is not None:
            problems.append("a body was sent to an operation that takes none")
        elif schema is not None and body is None and op.op["requestBody"].get("required"):
            problems.append("the required request body is missing")
        elif schema is not None and body is not None:
            problems.extend(f"request body {e}" for e in schema_errors(schema, body, write=True))
        return problems

    def _respond(self, reply: Reply, op: Operation | None, *, blob: bool = False) -> Response:
        headers = {
            "X-GitHub-Request-Id": f"F00D:{next(self._ids):04X}:LOOP",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(self.ratelimit_remaining),
            "X-RateLimit-Reset": "1900000000",
            **reply.headers,
        }
        if blob:
            return Response(reply.text or b"", status=reply.status, headers=headers, content_type="text/plain")
        assert op is not None
        if reply.text is not None:
            return Response(
                reply.text, status=reply.status, headers=headers, content_type=f"{DIFF_MEDIA_TYPE}; charset=utf-8"
            )
        schema = op.response_schema(reply.status)
        if schema is False or schema is True:
            if reply.status < 400:
                return self._violation(f"{op.operation_id} does not answer {reply.status} in the spec")
            schema = component("basic-error")
        if schema is None:
            if reply.body is not None:
                return self._violation(f"{op.operation_id} {reply.status} has no body in the spec")
            return Response(b"", status=reply.status, headers=headers)
        errors = schema_errors(schema, reply.body)
        if errors:
            return self._violation(f"{op.operation_id} {reply.status} body does not fit the spec: {errors}")
        return Response(json.dumps(reply.body), status=reply.status, headers=headers, content_type="application/json")

    def paged(self, items: list[Any], wrap: Callable[[list[Any]], Any] | None = None) -> Handler:
        """A list handler that pages ``items`` by per_page/page and sends GitHub's Link header."""

        def handler(request: Request, params: dict[str, str]) -> Reply:
            per_page = int(request.args.get("per_page", "30"))
            page = int(request.args.get("page", "1"))
            chunk = items[(page - 1) * per_page : page * per_page]
            links = []
            if page * per_page < len(items):
                query = {**request.args.to_dict(), "page": str(page + 1)}
                links.append(f'<{self.server.url_for(request.path)}?{urlencode(query)}>; rel="next"')
            last = {**request.args.to_dict(), "page": str(max(1, -(-len(items) // per_page)))}
            links.append(f'<{self.server.url_for(request.path)}?{urlencode(last)}>; rel="last"')
            return Reply(200, wrap(chunk) if wrap else chunk, {"Link": ", ".join(links)})

        return handler


def _handler(reply: Reply | Handler) -> Handler:
    if isinstance(reply, Reply):
        fixed = reply
        return lambda request, params: fixed
    return reply


def _names(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


def _values(template: str, path: str) -> list[str]:
    return [value for part, value in zip(template.split("/"), path.split("/"), strict=True) if part.startswith("{")]
