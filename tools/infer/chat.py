"""Chat completions on an OpenAI-compatible endpoint, streamed: progress notifications while tokens arrive.

``infer_chat`` takes its endpoint itself rather than through the platform's target parameter: its
default is the first configured endpoint, where the other tools default to the local model (which
does not chat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import NotConfigured, TargetClients, ToolArgs, ToolModel, UpstreamError, tool
from mcp_ledger.tools.infer._backend import LOCAL, Endpoint, EndpointSource, HttpEndpoint

MAX_ANSWER_CHARS = 200_000
PROGRESS_EVERY = 0.5  # seconds between progress notifications


class Message(ToolArgs):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatArgs(ToolArgs):
    messages: list[Message] = Field(min_length=1, max_length=64)
    endpoint: str | None = Field(default=None, max_length=32, description="Default: the first configured")
    model: str | None = Field(default=None, max_length=200, description="Default: the endpoint's first model")
    max_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    json_object: bool = Field(default=False, description="Ask for a JSON object answer")


class Chat(ToolModel):
    endpoint: str
    model: str
    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    truncated: bool = False


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@tool(read_only=True, idempotent=False, open_world=True)
async def infer_chat(args: ChatArgs, clients: TargetClients[Endpoint], ctx: Context) -> Chat:
    """Chat completion on an OpenAI-compatible endpoint, streamed with progress. Returns text, finish reason, usage."""
    source = clients.source
    assert isinstance(source, EndpointSource)
    name = args.endpoint or source.first_configured()
    if name == LOCAL:
        raise UpstreamError("endpoint local is an embedding model and does not chat; name a configured endpoint")
    if name not in source.configs:
        raise NotConfigured(
            f"--infer-endpoint {name}=URL: endpoint {name!r} is not configured; known: {', '.join(source.names)}"
        )
    async with clients.lease(name) as (name, endpoint):
        annotate(endpoint=name)
        assert isinstance(endpoint, HttpEndpoint)
        model = args.model or await endpoint.default_model()
        endpoint.annotate_request("chat", model)
        annotate(
            **{
                "gen_ai.request.max_tokens": args.max_tokens,
                "gen_ai.request.temperature": args.temperature,
                "gen_ai.output.type": "json" if args.json_object else None,
            }
        )
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.model_dump() for m in args.messages],
            "max_tokens": args.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if args.temperature is not None:
            body["temperature"] = args.temperature
        if args.json_object:
            body["response_format"] = {"type": "json_object"}
        if endpoint.streams_usage is False:
            answer = await _answered(endpoint, body, ctx)
        else:
            answer = await _streamed(endpoint, body, args.max_tokens, ctx)
            endpoint.streams_usage = bool(answer.usage)
            if not answer.usage:
                annotate(**{"mcp-ledger.usage.missing": "the endpoint sent no usage while streaming"})
        usage = answer.usage
        input_tokens, output_tokens = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
        answered = str(answer.model or model)[:200]
        annotate(
            **{
                "gen_ai.response.model": answered,
                "gen_ai.response.id": str(answer.id)[:200] if answer.id else None,
                "gen_ai.response.finish_reasons": [answer.finish] if answer.finish else None,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
            }
        )
        annotate(untrusted_content=True)  # a model's answer can carry instructions planted in its input
        text = answer.text
        return Chat(
            endpoint=name,
            model=answered,
            text=text[:MAX_ANSWER_CHARS],
            finish_reason=answer.finish,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            truncated=len(text) > MAX_ANSWER_CHARS,
        )


@dataclass
class _Answer:
    text: str = ""
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    id: Any = None


async def _streamed(endpoint: HttpEndpoint, body: dict[str, Any], max_tokens: int, ctx: Context) -> _Answer:
    """The answer as it streams in, with a progress notification at most every PROGRESS_EVERY seconds."""
    answer = _Answer()
    parts: list[str] = []
    size = chunks = reported = 0
    last_progress = time.monotonic()
    async for event in endpoint.stream("/chat/completions", body):
        answer.model = answer.model or event.get("model")
        answer.id = answer.id or event.get("id")
        if isinstance(event.get("usage"), dict):
            answer.usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                chunks += 1
                if size <= MAX_ANSWER_CHARS:  # one past the bound: the result says it was cut
                    parts.append(content)
                    size += len(content)
            if choice.get("finish_reason"):
                answer.finish = str(choice["finish_reason"])[:64]
        now = time.monotonic()
        if chunks > reported and now - last_progress >= PROGRESS_EVERY:
            last_progress, reported = now, chunks
            await ctx.report_progress(chunks, max(max_tokens, chunks), f"{chunks} chunks received")
    if chunks > reported:  # progress only ever increases
        await ctx.report_progress(chunks, chunks, "done")
    answer.text = "".join(parts)
    return answer


async def _answered(endpoint: HttpEndpoint, body: dict[str, Any], ctx: Context) -> _Answer:
    """One request for an endpoint that does not report usage when streaming; meanwhile a progress
    notification every second says the call is still waiting."""
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    reply: dict[str, Any] = {}
    failure: Exception | None = None
    waited = 0

    async def beat() -> None:
        nonlocal waited
        while True:
            await anyio.sleep(1.0)
            waited += 1
            await ctx.report_progress(waited, None, f"waiting for the answer: {waited} s")

    async with anyio.create_task_group() as group:
        group.start_soon(beat)
        try:
            reply = await endpoint.request("POST", "/chat/completions", body)
        except Exception as exc:  # raised after the heartbeat has stopped
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    await ctx.report_progress(waited + 1, waited + 1, "done")
    answer = _Answer(model=reply.get("model"), id=reply.get("id"))
    if isinstance(reply.get("usage"), dict):
        answer.usage = reply["usage"]
    choices = reply.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    content = message.get("content") if isinstance(message, dict) else None
    answer.text = content if isinstance(content, str) else ""
    answer.finish = str(first["finish_reason"])[:64] if first.get("finish_reason") else None
    return answer
