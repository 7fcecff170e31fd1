"""Remote endpoints against a loopback OpenAI-compatible server (every body checked with the openai types):
embeddings and ranking, and the error paths — a bad key, an unknown model, an endpoint that is down, one
that does not answer in time. Plus how endpoints are configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_ledger.server.cli import build_parser
from mcp_ledger.server.settings import model_from_namespace
from mcp_ledger.tools.group import NotConfigured
from mcp_ledger.tools.infer import InferSettings
from mcp_ledger.tools.infer._backend import HF_ROUTER, EndpointSource, HttpEndpoint, parse_endpoints
from tests.harness import call_error, call_ok, ledger_bytes, only_span, spans
from tests.infer.conftest import FAKE_KEY, Connect, free_port
from tests.infer.fake import CHAT_MODEL, EMBED_MODEL, NO_USAGE_MODEL, SLOW_MODEL, FakeOpenAI

MESSAGES = [{"role": "user", "content": "Where did the cat sit?"}]


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI) -> FakeOpenAI:
    monkeypatch.setenv("MCP_LEDGER_INFER_KEY_REMOTE", FAKE_KEY)
    return fake


async def test_remote_embeddings_and_ranking(connect: Connect, ledger_dir: Path, keyed: FakeOpenAI) -> None:
    async with connect([f"remote={keyed.url}"]) as client:
        embedded = await call_ok(
            client,
            "infer_embed",
            {"endpoint": "remote", "model": EMBED_MODEL, "texts": ["cat", "dog"], "vectors": True},
        )
        ranked = await call_ok(
            client,
            "infer_rank",
            {"endpoint": "remote", "model": EMBED_MODEL, "query": "cat", "documents": ["dog", "act", "tiger"]},
        )
    assert embedded["model"] == EMBED_MODEL and embedded["dimensions"] == 26 and embedded["revision"] is None
    assert embedded["items"][0]["vector"][0] == 1.0  # one 'a' in "cat"
    assert ranked["ranked"][0] == {"index": 1, "score": 1.0}  # "act" has the letters of "cat"
    upstream = only_span(ledger_dir, "infer_rank")["upstream"]
    assert upstream["endpoint"] == "remote" and upstream["endpoint.url"] == keyed.url
    assert upstream["gen_ai.request.model"] == upstream["gen_ai.response.model"] == EMBED_MODEL
    assert upstream["gen_ai.usage.input_tokens"] == 4 and upstream["mcp-ledger.upstream.request_id"].startswith("req-")
    method, path, headers, body = keyed.seen[-1]
    assert (method, path) == ("POST", "/v1/embeddings") and body["input"] == ["cat", "dog", "act", "tiger"]
    assert headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY.encode() not in ledger_bytes(ledger_dir)


async def test_chat_on_the_first_configured_endpoint_streams_and_counts(
    connect: Connect, ledger_dir: Path, keyed: FakeOpenAI
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect([f"remote={keyed.url}", "other=http://127.0.0.1:9/v1"]) as client:
        result = await call_ok(
            client, "infer_chat", {"messages": MESSAGES, "max_tokens": 3}, progress_callback=on_progress
        )
    assert progress == [(3, 3, "done")]  # a stream this short gets only the closing notification
    assert result == {
        "endpoint": "remote",
        "model": CHAT_MODEL,  # the endpoint's first model: none was named
        "text": "The cat sat ",
        "finish_reason": "length",
        "input_tokens": 5,
        "output_tokens": 3,
        "truncated": False,
    }
    body = keyed.seen[-1][3]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 3
    upstream = only_span(ledger_dir, "infer_chat")["upstream"]
    assert upstream["gen_ai.usage.input_tokens"] == 5 and upstream["gen_ai.usage.output_tokens"] == 3
    assert (
        upstream["gen_ai.response.finish_reasons"] == ["length"] and upstream["gen_ai.response.id"] == "chatcmpl-fake-1"
    )


async def test_an_endpoint_that_streams_no_usage_is_asked_for_one_answer_next_time(
    connect: Connect, ledger_dir: Path, keyed: FakeOpenAI
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    arguments = {"messages": MESSAGES, "model": NO_USAGE_MODEL}
    async with connect([f"remote={keyed.url}"]) as client:
        streamed = await call_ok(client, "infer_chat", arguments)
        answered = await call_ok(client, "infer_chat", arguments, progress_callback=on_progress)
    assert streamed["text"] == answered["text"] == "The cat sat on the mat."
    assert streamed["input_tokens"] is None and (answered["input_tokens"], answered["output_tokens"]) == (5, 6)
    assert keyed.seen[-2][3]["stream"] is True and "stream" not in keyed.seen[-1][3]
    assert progress[-1] == (progress[-1][0], progress[-1][0], "done")
    first, second = spans(ledger_dir, "infer_chat")
    assert first["upstream"]["mcp-ledger.usage.missing"] == "the endpoint sent no usage while streaming"
    assert (
        second["upstream"]["gen_ai.usage.output_tokens"] == 6 and "mcp-ledger.usage.missing" not in second["upstream"]
    )


async def test_a_wrong_key_is_named_and_never_echoed(
    connect: Connect, ledger_dir: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-" + "Mn8Bv6Cx4Zl2Kj0H"
    monkeypatch.setenv("MCP_LEDGER_INFER_KEY_REMOTE", wrong)
    async with connect([f"remote={fake.url}"]) as client:
        text = await call_error(client, "infer_chat", {"messages": MESSAGES, "model": CHAT_MODEL})
    assert text.startswith("endpoint remote refused the key (401, unauthorized): check MCP_LEDGER_INFER_KEY_REMOTE")
    assert "Incorrect API key provided: [REDACTED]" in text  # the fake echoes the key; we do not
    assert wrong not in text and wrong.encode() not in ledger_bytes(ledger_dir)
    span = only_span(ledger_dir, "infer_chat")
    assert span["status"]["code"] == "ERROR" and span["attributes"]["error.type"] == "tool_error"


async def test_no_key_says_which_variable_to_set(
    connect: Connect, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCP_LEDGER_INFER_KEY_REMOTE", raising=False)
    async with connect([f"remote={fake.url}"]) as client:
        text = await call_error(client, "infer_embed", {"endpoint": "remote", "texts": ["x"], "model": EMBED_MODEL})
    assert "refused the key (401, unauthorized): set MCP_LEDGER_INFER_KEY_REMOTE" in text


async def test_an_unknown_model_is_named(connect: Connect, keyed: FakeOpenAI) -> None:
    async with connect([f"remote={keyed.url}"]) as client:
        text = await call_error(client, "infer_chat", {"messages": MESSAGES, "model": "gpt-9"})
        assert text.startswith("endpoint remote has no model 'gpt-9' (404); infer_model_list shows what it serves")
        text = await call_error(
            client, "infer_rank", {"endpoint": "remote", "model": "nope", "query": "q", "documents": ["d"]}
        )
        assert "has no model 'nope' (404)" in text


async def test_an_endpoint_that_is_down_is_named_and_the_others_still_list(connect: Connect, keyed: FakeOpenAI) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    async with connect([f"down={down}", f"remote={keyed.url}"]) as client:
        text = await call_error(client, "infer_chat", {"messages": MESSAGES, "model": CHAT_MODEL})
        assert text.startswith(f"endpoint down ({down}) is not reachable (ConnectError): is the server up?")
        listed = await call_ok(client, "infer_model_list", {})
    by_name = {e["endpoint"]: e for e in listed["endpoints"]}
    assert list(by_name) == ["local", "down", "remote"]
    assert by_name["down"]["models"] == [] and "not reachable" in by_name["down"]["error"]
    assert by_name["remote"]["models"] == [CHAT_MODEL, EMBED_MODEL, SLOW_MODEL, NO_USAGE_MODEL]
    assert by_name["local"]["models"] == ["all-MiniLM-L6-v2"]


async def test_an_endpoint_that_does_not_answer_in_time_is_a_timeout(
    connect: Connect, ledger_dir: Path, keyed: FakeOpenAI
) -> None:
    keyed.slow_seconds = 2.0
    async with connect([f"remote={keyed.url}"], request_timeout=0.5) as client:
        text = await call_error(client, "infer_chat", {"messages": MESSAGES, "model": SLOW_MODEL})
    assert text.startswith("endpoint remote (") and "did not answer within 0.5 s (--infer-request-timeout)" in text
    assert only_span(ledger_dir, "infer_chat")["status"]["code"] == "ERROR"


async def test_an_unconfigured_endpoint_lists_the_known_ones(connect: Connect, keyed: FakeOpenAI) -> None:
    async with connect([f"remote={keyed.url}"]) as client:
        text = await call_error(client, "infer_embed", {"endpoint": "elsewhere", "texts": ["x"]})
    assert "endpoint 'elsewhere' is not configured; known: local, remote" in text


def test_endpoints_parse_from_name_url_pairs_with_the_hf_preset() -> None:
    configs = parse_endpoints(["vllm=http://10.0.0.5:8000", "HF", "ollama=http://localhost:11434/v1/"])
    assert [(c.name, c.url) for c in configs] == [
        ("vllm", "http://10.0.0.5:8000/v1"),  # a bare host gets /v1
        ("hf", HF_ROUTER),
        ("ollama", "http://localhost:11434/v1"),
    ]
    assert configs[1].key_env == ("MCP_LEDGER_INFER_KEY_HF", "HF_TOKEN") and configs[1].system == "huggingface"
    assert configs[0].key_env == ("MCP_LEDGER_INFER_KEY_VLLM",)
    assert "Sekr3tPass" not in parse_endpoints(["my-box=https://u:Sekr3tPass@box.example/v1"])[0].shown_url


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("local=http://x", "'local' is the built-in model"),
        ("vllm", "vllm=URL (only 'hf' is a preset"),
        ("a b=http://x", "NAME of lower-case letters"),
        ("x=ftp://host/v1", "http:// or https:// URL"),
        ("x=http://", "http:// or https:// URL"),
    ],
)
def test_bad_endpoints_are_refused_with_what_to_fix(item: str, message: str) -> None:
    with pytest.raises(NotConfigured, match="not configured: set --infer-endpoint") as raised:
        parse_endpoints([item])
    assert message in str(raised.value)


async def test_the_hf_preset_uses_hf_token() -> None:
    token = "hf_" + "PresetPresetPresetPresetPresetPr"
    source = EndpointSource(InferSettings(endpoint=["hf"]), {"HF_TOKEN": token})
    endpoint = await source.open("hf")
    assert isinstance(endpoint, HttpEndpoint)
    try:
        assert str(endpoint.client.base_url).rstrip("/") == HF_ROUTER
        assert endpoint.client.headers["Authorization"] == f"Bearer {token}"
    finally:
        await source.close(endpoint)


def test_the_flag_repeats_and_the_environment_twin_takes_a_list() -> None:
    argv = ["serve", "--infer-endpoint", "a=http://127.0.0.1:1/v1", "--infer-endpoint", "b=http://127.0.0.1:2/v1,hf"]
    args = build_parser(argv).parse_args(argv)
    settings = model_from_namespace(InferSettings, args, prefix="infer_", environ={})
    assert settings.endpoint == ["a=http://127.0.0.1:1/v1", "b=http://127.0.0.1:2/v1", "hf"]
    args = build_parser(["serve"]).parse_args(["serve"])
    environ = {"MCP_LEDGER_INFER_ENDPOINTS": "x=http://127.0.0.1:3,hf", "MCP_LEDGER_INFER_PRELOAD": "false"}
    settings = model_from_namespace(InferSettings, args, prefix="infer_", environ=environ)
    assert settings.endpoint == ["x=http://127.0.0.1:3", "hf"] and settings.preload is False
