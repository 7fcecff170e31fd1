"""The inference backend: the configured endpoints, one client per endpoint, and the calls the tools make.

An endpoint is either the built-in local model (``local``) or an OpenAI-compatible HTTP API (``/models``,
``/embeddings``, ``/chat/completions`` under its base URL). Endpoint names and URLs come from the
operator's configuration; an agent only chooses among the names. Keys are read from the environment
when a client opens and go into the ``Authorization`` header only: never into a message, a span or a log.
Every upstream failure becomes a :class:`UpstreamError` that names the endpoint and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx

from mcp_ledger.provenance import annotate
from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools.group import GroupEnvironment, NotConfigured, TargetClients, UpstreamError, run_in_worker
from mcp_ledger.tools.infer import InferSettings
from mcp_ledger.tools.infer._local import LOCAL_MODEL, LocalEmbeddings, LocalModel, load_local_model, loaded_local_model

__all__ = [
    "HF_ROUTER",
    "LOCAL",
    "Endpoint",
    "EndpointConfig",
    "EndpointSource",
    "HttpEndpoint",
    "LocalEndpoint",
    "connect",
    "parse_endpoints",
]

LOCAL = "local"
HF = "hf"
HF_ROUTER = "https://router.huggingface.co/v1"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ERROR_CHARS = 300  # of an upstream's own error message, in ours


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    url: str  # the base URL, up to and including /v1
    key_env: tuple[str, ...]  # environment variables that may hold its key, first set wins

    @property
    def shown_url(self) -> str:
        """The URL as messages and spans name it: without user:password or credential parameters."""
        return redact_text(self.url)[0]

    @property
    def system(self) -> str:
        """``gen_ai.system`` / ``gen_ai.provider.name`` for this endpoint."""
        host = urlsplit(self.url).hostname or ""
        if self.name == HF or host.endswith("huggingface.co"):
            return "huggingface"
        return "openai" if host == "api.openai.com" else "openai_compatible"


def parse_endpoints(items: list[str]) -> list[EndpointConfig]:
    """``NAME=URL`` items (and ``hf`` alone) in the order given; raises NotConfigured naming the bad one."""
    configs: dict[str, EndpointConfig] = {}
    for item in items:
        name, sep, url = item.partition("=")
        name = name.strip().lower()
        if not _NAME_RE.fullmatch(name):
            raise NotConfigured(
                "--infer-endpoint as NAME=URL with NAME of lower-case letters, digits, '-' or '_' (up to 32)"
            )
        if name == LOCAL:
            raise NotConfigured("--infer-endpoint with another name: 'local' is the built-in model")
        if not sep:
            if name != HF:
                raise NotConfigured(f"--infer-endpoint {name}=URL (only 'hf' is a preset that needs no URL)")
            url = HF_ROUTER
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotConfigured(f"--infer-endpoint {name}=URL with an http:// or https:// URL")
        if parts.path in ("", "/"):
            url = url.rstrip("/") + "/v1"  # a bare host: OpenAI-compatible servers answer under /v1
        env = f"MCP_LEDGER_INFER_KEY_{name.upper().replace('-', '_')}"
        keys = (env, "HF_TOKEN") if name == HF else (env,)
        configs[name] = EndpointConfig(name, url.rstrip("/"), keys)
    return list(configs.values())


class LocalEndpoint:
    """The built-in model. Embeddings only."""

    name = LOCAL
    system = "local"
    shown_url = "builtin:" + LOCAL_MODEL

    def __init__(self, model: LocalModel) -> None:
        self.model = model

    def annotate_model(self) -> None:
        annotate(
            **{
                "gen_ai.system": self.system,
                "gen_ai.provider.name": self.system,
                "gen_ai.request.model": self.model.name,
                "gen_ai.response.model": self.model.name,
                "endpoint.url": self.shown_url,
                "mcp-ledger.model.revision": self.model.revision,
                "mcp-ledger.model.sha256": self.model.sha256,
            }
        )

    async def embed(self, texts: list[str], model: str | None, ctx: Any) -> LocalEmbeddings:
        if model not in (None, LOCAL_MODEL):
            raise UpstreamError(f"endpoint local serves only {LOCAL_MODEL}; leave model out or name another endpoint")
        annotate(**{"gen_ai.operation.name": "embeddings"})
        self.annotate_model()
        result = await run_in_worker(
            lambda call: self.model.embed(texts, call.check), label="infer local embed", ctx=ctx
        )
        annotate(
            **{
                "gen_ai.usage.input_tokens": sum(result.tokens),
                "gen_ai.embeddings.dimension.count": self.model.dimensions,
            }
        )
        return result


@dataclass
class HttpEndpoint:
    """An OpenAI-compatible endpoint and its HTTP client."""

    config: EndpointConfig
    client: httpx.AsyncClient
    timeout: float
    key: str | None = field(default=None, repr=False)
    _models: list[str] | None = field(default=None, repr=False)
    # Whether a streamed chat carries usage (OpenAI's stream_options.include_usage): None until one
    # streamed answer shows it. llama-cpp-python's server, for one, never sends it while streaming.
    streams_usage: bool | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def system(self) -> str:
        return self.config.system

    @property
    def shown_url(self) -> str:
        return self.config.shown_url

    def annotate_request(self, operation: str, model: str | None) -> None:
        annotate(
            **{
                "gen_ai.operation.name": operation,
                "gen_ai.system": self.system,
                "gen_ai.provider.name": self.system,
                "gen_ai.request.model": model,
                "endpoint.url": self.shown_url,
            }
        )

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON request; a failure raises UpstreamError naming this endpoint."""
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise self._timeout() from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._note_request_id(response)
        if response.status_code >= 400:
            raise self._refused(response.status_code, response.content, response.headers, body)
        try:
            parsed = response.json()
        except ValueError:
            raise UpstreamError(f"endpoint {self.name} answered {path} with something that is not JSON") from None
        if not isinstance(parsed, dict):
            raise UpstreamError(f"endpoint {self.name} answered {path} with JSON that is not an object")
        return parsed

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events of a streamed request, each ``data:`` parsed; ends at ``[DONE]``."""
        try:
            async with self.client.stream("POST", path, json=body) as response:
                self._note_request_id(response)
                if response.status_code >= 400:
                    raise self._refused(response.status_code, await response.aread(), response.headers, body)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = httpx.Response(200, content=data).json()
                    except ValueError:
                        raise UpstreamError(f"endpoint {self.name} streamed an event that is not JSON") from None
                    if isinstance(event, dict):
                        if isinstance(event.get("error"), dict):  # an error after the stream began
                            said = _message(event, self.key)
                            raise UpstreamError(f"endpoint {self.name} failed mid-answer: {said}")
                        yield event
        except httpx.TimeoutException:
            raise self._timeout() from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    async def models(self, *, fresh: bool = False) -> list[str]:
        """The model ids of ``GET /models`` (kept for the client's life unless ``fresh``)."""
        if self._models is None or fresh:
            body = await self.request("GET", "/models")
            data = body.get("data")
            if not isinstance(data, list):
                raise UpstreamError(f"endpoint {self.name}: GET /models has no 'data' list")
            self._models = [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]
        return self._models

    async def default_model(self) -> str:
        models = await self.models()
        if not models:
            raise UpstreamError(f"endpoint {self.name} lists no models: name one with 'model'")
        return models[0]

    def _note_request_id(self, response: httpx.Response) -> None:
        request_id = response.headers.get("x-request-id")
        if request_id:
            annotate(**{"mcp-ledger.upstream.request_id": request_id[:128]})

    def _timeout(self) -> UpstreamError:
        return UpstreamError(
            f"endpoint {self.name} ({self.shown_url}) did not answer within {self.timeout:g} s "
            "(--infer-request-timeout); try a smaller max_tokens or later"
        )

    def _unreachable(self, exc: httpx.TransportError) -> UpstreamError:
        kind = type(exc).__name__
        return UpstreamError(f"endpoint {self.name} ({self.shown_url}) is not reachable ({kind}): is the server up?")

    def _refused(
        self, status: int, content: bytes, headers: Mapping[str, str], body: dict[str, Any] | None
    ) -> UpstreamError:
        message = _message_of(content, self.key)
        said = f": {message}" if message else ""
        if status in (401, 403):
            key_env = self.config.key_env[0]
            hint = f"check {key_env}" if self.key else f"set {key_env}"
            kind = "unauthorized" if status == 401 else "forbidden"
            return UpstreamError(f"endpoint {self.name} refused the key ({status}, {kind}): {hint}{said}")
        model = (body or {}).get("model")
        if status == 404 and model is not None:
            return UpstreamError(
                f"endpoint {self.name} has no model {model!r} (404); infer_model_list shows what it serves{said}"
            )
        if status == 429:
            retry = headers.get("retry-after")
            after = f"; retry after {retry[:16]} s" if retry else ""
            return UpstreamError(f"endpoint {self.name} is rate limiting (429){after}{said}")
        return UpstreamError(f"endpoint {self.name} answered {status}{said}")


Endpoint = LocalEndpoint | HttpEndpoint


def _message(body: Mapping[str, Any], key: str | None) -> str:
    """The upstream's own error message (OpenAI's ``{"error": {"message": …}}``): without our key (some
    servers echo the key they refused), on one line, bounded and redacted."""
    error = body.get("error")
    if isinstance(error, dict):
        text = str(error.get("message") or error.get("code") or "")
    elif isinstance(error, str):
        text = error
    else:
        text = str(body.get("message") or body.get("detail") or "")
    return _bounded(text, key)


def _bounded(text: str, key: str | None) -> str:
    if key:
        text = text.replace(key, "[REDACTED]")
    text = " ".join(text.split())
    return redact_text(text[:_ERROR_CHARS])[0]


def _message_of(content: bytes, key: str | None) -> str:
    try:
        body = httpx.Response(200, content=content).json()
    except ValueError:
        return _bounded(content[:4096].decode("utf-8", "replace"), key)
    return _message(body, key) if isinstance(body, dict) else ""


class EndpointSource:
    """The configured endpoints: ``local`` plus the operator's. Calls that name none use ``local``."""

    def __init__(self, settings: InferSettings, environ: Mapping[str, str]) -> None:
        self.configs = {c.name: c for c in parse_endpoints(settings.endpoint)}
        self.timeout = settings.request_timeout
        self.environ = environ

    @property
    def names(self) -> list[str]:
        return [LOCAL, *self.configs]

    def first_configured(self) -> str:
        """Chat's default: the first endpoint configured (the local model does not chat)."""
        if not self.configs:
            raise NotConfigured("--infer-endpoint NAME=URL (or MCP_LEDGER_INFER_ENDPOINTS) to chat")
        return next(iter(self.configs))

    async def default_target(self) -> str:
        return LOCAL

    async def open(self, target: str) -> Endpoint:
        if target == LOCAL:
            model = loaded_local_model()
            if model is None:
                # Not a call's work but the process's: a load whose waiter goes away (a preload cut short
                # by shutdown) finishes in its thread and leaves the model loaded, without a warning.
                model = await anyio.to_thread.run_sync(load_local_model, abandon_on_cancel=True)
            return LocalEndpoint(model)
        config = self.configs.get(target)
        if config is None:
            raise NotConfigured(
                f"--infer-endpoint {target}=URL: endpoint {target!r} is not configured; known: {', '.join(self.names)}"
            )
        key = next((self.environ[k] for k in config.key_env if self.environ.get(k)), None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.AsyncClient(
            base_url=config.url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            follow_redirects=False,
        )
        return HttpEndpoint(config, client, self.timeout, key=key)

    async def close(self, client: Endpoint) -> None:
        if isinstance(client, HttpEndpoint):
            await client.client.aclose()


async def connect(environment: GroupEnvironment[InferSettings]) -> TargetClients[Endpoint]:
    return TargetClients(EndpointSource(environment.settings, os.environ))
