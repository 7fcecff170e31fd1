"""Embeddings and similarity ranking, on the local model (the default) or an endpoint's ``/embeddings``."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import ToolArgs, ToolModel, UpstreamError, tool
from mcp_ledger.tools.infer._backend import Endpoint, HttpEndpoint, LocalEndpoint

MAX_TEXT = 8000  # characters; the local model reads the first 256 tokens (about 1,000 characters)
MAX_NUMBERS = 32_768  # of vectors returned in one result (64 local vectors take 24,576)

Text = Annotated[str, Field(max_length=MAX_TEXT)]


@dataclass(frozen=True)
class _Embedded:
    model: str
    revision: str | None
    vectors: list[list[float]]
    tokens: list[int] | None  # per text, when the endpoint says
    truncated: list[bool]


async def _embed(endpoint: Endpoint, texts: list[str], model: str | None, ctx: Context) -> _Embedded:
    if isinstance(endpoint, LocalEndpoint):
        result = await endpoint.embed(texts, model, ctx)
        return _Embedded(
            endpoint.model.name, endpoint.model.revision, result.vectors.tolist(), result.tokens, result.truncated
        )
    assert isinstance(endpoint, HttpEndpoint)
    chosen = model or await endpoint.default_model()
    endpoint.annotate_request("embeddings", chosen)
    body = await endpoint.request("POST", "/embeddings", {"model": chosen, "input": texts, "encoding_format": "float"})
    data = body.get("data")
    if not isinstance(data, list) or len(data) != len(texts):
        raise UpstreamError(f"endpoint {endpoint.name}: /embeddings did not return one embedding per text")
    vectors: list[list[float]] = [[] for _ in texts]
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(texts) or not isinstance(vector, list):
            raise UpstreamError(f"endpoint {endpoint.name}: /embeddings returned an item without index or vector")
        vectors[index] = [float(v) for v in vector]
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    annotate(
        **{
            "gen_ai.response.model": str(body.get("model") or chosen)[:200],
            "gen_ai.usage.input_tokens": tokens if isinstance(tokens, int) else None,
            "gen_ai.embeddings.dimension.count": len(vectors[0]) if vectors else None,
        }
    )
    return _Embedded(str(body.get("model") or chosen), None, vectors, None, [False] * len(texts))


class EmbedArgs(ToolArgs):
    texts: list[Text] = Field(min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=200, description="Model of a remote endpoint")
    vectors: bool = Field(default=False, description="Return the vectors")


class EmbeddedText(ToolModel):
    index: int
    sha256: str
    tokens: int | None = None
    truncated: bool = False
    vector: list[float] | None = None


class Embeddings(ToolModel):
    model: str
    revision: str | None = None
    dimensions: int
    items: list[EmbeddedText]
    vectors_omitted: int = Field(default=0, description="Vectors left out: past 32,768 numbers in one result")


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@tool(read_only=True, idempotent=True, open_world=True, target="endpoint")
async def infer_embed(args: EmbedArgs, endpoint: Endpoint, ctx: Context) -> Embeddings:
    """Embed texts (default: the local model, no network). Returns a sha256 per text; vectors when asked."""
    embedded = await _embed(endpoint, list(args.texts), args.model, ctx)
    items = []
    numbers = omitted = 0
    for i, text in enumerate(args.texts):
        vector = None
        if args.vectors:
            numbers += len(embedded.vectors[i])
            if numbers <= MAX_NUMBERS:
                vector = [round(v, 6) for v in embedded.vectors[i]]
            else:
                omitted += 1
        items.append(
            EmbeddedText(
                index=i,
                sha256=_digest(text),
                tokens=embedded.tokens[i] if embedded.tokens else None,
                truncated=embedded.truncated[i],
                vector=vector,
            )
        )
    dimensions = len(embedded.vectors[0]) if embedded.vectors else 0
    return Embeddings(
        model=embedded.model,
        revision=embedded.revision,
        dimensions=dimensions,
        items=items,
        vectors_omitted=omitted,
    )


class RankArgs(ToolArgs):
    query: str = Field(max_length=MAX_TEXT)
    documents: list[Text] = Field(min_length=1, max_length=100)
    model: str | None = Field(default=None, max_length=200, description="Model of a remote endpoint")
    top: int | None = Field(default=None, ge=1, le=100, description="Return only the best N")


class Ranked(ToolModel):
    index: int
    score: float


class Ranking(ToolModel):
    model: str
    revision: str | None = None
    ranked: list[Ranked]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


@tool(read_only=True, idempotent=True, open_world=True, target="endpoint")
async def infer_rank(args: RankArgs, endpoint: Endpoint, ctx: Context) -> Ranking:
    """Rank documents by cosine similarity to a query, best first (default: the local model, no network)."""
    embedded = await _embed(endpoint, [args.query, *args.documents], args.model, ctx)
    query, documents = embedded.vectors[0], embedded.vectors[1:]
    try:
        scores = [_cosine(query, document) for document in documents]
    except ValueError:
        raise UpstreamError("the endpoint returned vectors of different lengths") from None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: args.top]
    return Ranking(
        model=embedded.model,
        revision=embedded.revision,
        ranked=[Ranked(index=i, score=round(scores[i], 6)) for i in order],
    )
