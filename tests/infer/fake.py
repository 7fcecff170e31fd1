"""A loopback OpenAI-compatible endpoint for the error paths and remote embeddings.

It speaks the API's real shapes: ``GET /v1/models``, ``POST /v1/embeddings``, ``POST /v1/chat/completions``
(streamed as server-sent events ending in ``data: [DONE]``, with the usage chunk when
``stream_options.include_usage`` is set), and OpenAI's error body ``{"error": {"message", "type",
"param", "code"}}``. Every JSON body it serves is parsed with the ``openai`` library's own types
(``Model``, ``CreateEmbeddingResponse``, ``ChatCompletionChunk``, ``ErrorObject``) before it is sent,
and every request body is checked against the library's request parameter types; a refusal is recorded
in ``violations`` and the fixture fails the test.

Model ``slow`` answers after ``slow_seconds`` (the timeout path); a wrong key gets 401 with a message
that echoes the key, as some servers do (our error must not pass it on).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared import ErrorObject
from pydantic import BaseModel, TypeAdapter, ValidationError

CHAT_MODEL = "fake-chat"
EMBED_MODEL = "fake-embed"
SLOW_MODEL = "slow"
NO_USAGE_MODEL = "no-usage"  # streams without usage, as llama-cpp-python's server does
MODELS = [CHAT_MODEL, EMBED_MODEL, SLOW_MODEL, NO_USAGE_MODEL]
ANSWER = ["The ", "cat ", "sat ", "on ", "the ", "mat."]


def _request_types() -> dict[str, TypeAdapter[Any]]:
    from openai.types import embedding_create_params
    from openai.types.chat import completion_create_params

    return {
        "/v1/embeddings": TypeAdapter(embedding_create_params.EmbeddingCreateParams),
        "/v1/chat/completions": TypeAdapter(completion_create_params.CompletionCreateParamsStreaming),
        "/v1/chat/completions (one answer)": TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming),
    }


def letter_vector(text: str) -> list[float]:
    """A deterministic 26-dimension embedding: letter counts (so 'cat' is nearest to 'cat')."""
    counts = [0.0] * 26
    for char in text.lower():
        if "a" <= char <= "z":
            counts[ord(char) - 97] += 1.0
    return counts


class FakeOpenAI:
    def __init__(self, key: str) -> None:
        self.key = key
        self.slow_seconds = 3.0
        self.violations: list[str] = []
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []  # method, path, headers, body
        self.request_types = _request_types()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (the timeout test) leaves a broken pipe behind: expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- serving ---------------------------------------------------------------------------------------

    def _checked(self, model: type[BaseModel], body: dict[str, Any]) -> bytes:
        try:
            model.model_validate(body)
        except ValidationError as exc:
            self.violations.append(f"served a body that {model.__name__} refuses: {exc}")
        return json.dumps(body).encode()

    def _send_json(self, handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("x-request-id", f"req-{len(self.seen)}")
        handler.end_headers()
        handler.wfile.write(payload)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, message: str, kind: str, code: str | None) -> None:
        error = {"message": message, "type": kind, "param": None, "code": code}
        try:
            ErrorObject.model_validate(error)
        except ValidationError as exc:
            self.violations.append(f"served an error that ErrorObject refuses: {exc}")
        self._send_json(handler, status, json.dumps({"error": error}).encode())

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = json.loads(raw) if raw else None
        path = handler.path
        self.seen.append((method, path, dict(handler.headers.items()), body))
        if handler.headers.get("Authorization") != f"Bearer {self.key}":
            given = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
            self._error(
                handler, 401, f"Incorrect API key provided: {given}.", "invalid_request_error", "invalid_api_key"
            )
            return
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS]
            for item in data:
                self._checked(Model, item)
            self._send_json(handler, 200, json.dumps({"object": "list", "data": data}).encode())
            return
        one_answer = path == "/v1/chat/completions" and isinstance(body, dict) and not body.get("stream")
        adapter = self.request_types.get(path + " (one answer)" if one_answer else path)
        if method != "POST" or adapter is None:
            self._error(handler, 404, f"Unknown request URL: {method} {path}.", "invalid_request_error", "unknown_url")
            return
        try:
            adapter.validate_python(body)
        except ValidationError as exc:
            self.violations.append(f"{path}: a request body the openai types refuse: {exc}")
            self._error(handler, 400, "invalid request body", "invalid_request_error", None)
            return
        model = body.get("model")
        if model not in MODELS:
            message = f"The model `{model}` does not exist or you do not have access to it."
            self._error(handler, 404, message, "invalid_request_error", "model_not_found")
            return
        if model == SLOW_MODEL:
            time.sleep(self.slow_seconds)
        if path == "/v1/embeddings":
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            reply = {
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": letter_vector(t)} for i, t in enumerate(texts)
                ],
                "usage": {
                    "prompt_tokens": sum(len(t.split()) for t in texts),
                    "total_tokens": sum(len(t.split()) for t in texts),
                },
            }
            self._send_json(handler, 200, self._checked(CreateEmbeddingResponse, reply))
            return
        if one_answer:
            self._send_json(handler, 200, self._checked(ChatCompletion, self._completion(body)))
            return
        self._stream_chat(handler, body)

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        pieces = ANSWER[: int(body.get("max_tokens") or len(ANSWER))]
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        return {
            "id": "chatcmpl-fake-2",
            "object": "chat.completion",
            "created": 1700000000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    "finish_reason": "stop" if len(pieces) == len(ANSWER) else "length",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)},
        }

    def _stream_chat(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.send_header("x-request-id", "req-chat")
        handler.end_headers()
        for event in self._chunks(body):
            handler.wfile.write(b"data: " + event + b"\n\n")
            handler.wfile.flush()
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        handler.close_connection = True

    def _chunks(self, body: dict[str, Any]) -> Iterator[bytes]:
        base = {
            "id": "chatcmpl-fake-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": body["model"],
        }
        limit = int(body.get("max_tokens") or len(ANSWER))
        pieces = ANSWER[:limit]
        first = {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
        yield self._checked(ChatCompletionChunk, first)
        for piece in pieces:
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield self._checked(ChatCompletionChunk, chunk)
        reason = "stop" if len(pieces) == len(ANSWER) else "length"
        yield self._checked(
            ChatCompletionChunk, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
        )
        if (body.get("stream_options") or {}).get("include_usage") and body["model"] != NO_USAGE_MODEL:
            prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}
            yield self._checked(ChatCompletionChunk, {**base, "choices": [], "usage": usage})
