"""No planted secret reaches the ledger, an error text, a resource or stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_ledger import provenance
from tests.conftest import (
    ALL_SECRETS,
    ASSIGNED_KEY,
    AWS,
    BASIC,
    BEARER_TOKEN,
    GH,
    GH_PAT,
    GHO,
    GHS,
    HF,
    JWT,
    KEY_NAME_SECRET,
    KEYED_TOKEN,
    NUMERIC_PASSWORD,
    PASSWORD,
    PEM,
    QUERY_TOKEN,
    URL_PASSWORD,
    URL_USER_PASSWORD,
)
from tests.harness import ledger_bytes, result_text

PLANTED_TEXT = " ".join(
    [
        GH,
        GH_PAT,
        GHO,
        GHS,
        HF,
        AWS,
        JWT,
        PEM,
        f"Authorization: Bearer {BEARER_TOKEN}",
        BASIC,
        f"postgres://app:{URL_PASSWORD}@db:5432/app",
        f"https://u:{URL_USER_PASSWORD}@h.example/x",
        f"https://h.example/cb?access_token={QUERY_TOKEN}&state=1",
        f"curl -d api_key={ASSIGNED_KEY} https://h.example",
    ]
)
PLANTED_EXTRA = {
    "password": PASSWORD,
    "db_password": NUMERIC_PASSWORD,
    KEY_NAME_SECRET: "a secret used as a key name",
    "labels": {KEY_NAME_SECRET: "x"},
    "api_token": KEYED_TOKEN,
    "headers": {"Authorization": f"Bearer {BEARER_TOKEN}"},
    "env": [f"DB_PASSWORD={PASSWORD}", "PLAIN=1"],
    "max_tokens": 512,
    "gen_ai.usage.input_tokens": 20,
    "input_token": KEYED_TOKEN,
    "kind": "Secret",
    "data": {"key": "c2VjcmV0"},
}


def assert_no_secret(blob: str | bytes, where: str) -> None:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob  # the index is binary
    for secret in ALL_SECRETS:
        assert secret not in text, f"{where} leaks {secret[:6]}…"


async def test_secrets_in_arguments_results_and_errors_stay_out_of_everything(
    connect: Any, ledger_dir: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with connect(mode) as (client, _):
        ok = await client.call_tool("fake_echo", {"text": PLANTED_TEXT, "extra": PLANTED_EXTRA})
        failed = await client.call_tool("fake_fail", {"text": PLANTED_TEXT})
        crashed = await client.call_tool("fake_crash", {"text": PLANTED_TEXT})
        query = await client.call_tool("prov_query", {"limit": 200})
        span_id = ok.meta[provenance.SPAN_ID_META_KEY]
        span = await client.call_tool("prov_span", {"span_id": span_id})
        listing = await client.read_resource("provenance://spans?limit=200")
        single = await client.read_resource(f"provenance://spans/{span_id}")
    assert not ok.is_error  # the agent's own result keeps its content
    assert_no_secret(result_text(failed), "error text of a ToolFailure")
    assert_no_secret(result_text(crashed), "error text of a crash")
    assert "[REDACTED:github-token]" in result_text(failed)
    for name, blob in [
        ("prov_query", result_text(query)),
        ("prov_span", result_text(span)),
        ("spans resource", listing.contents[0].text),
        ("span resource", single.contents[0].text),
        ("ledger files", ledger_bytes(ledger_dir)),
        ("stderr", capfd.readouterr().err),
    ]:
        assert_no_secret(blob, name)


async def test_redactions_are_recorded_as_paths_and_counts_are_kept(connect: Any, ledger_dir: Path) -> None:
    async with connect() as (client, _):
        await client.call_tool("fake_echo", {"text": GH, "extra": PLANTED_EXTRA})
    (span,) = provenance.Ledger(ledger_dir).scan()
    redactions = set(span["input"]["redactions"])
    assert {
        "$.text",
        "$.extra.password",
        "$.extra.api_token",
        "$.extra.headers.Authorization",
        "$.extra.env[0]",
        "$.extra.data.key",
    } <= redactions
    assert '"max_tokens":512' in span["input"]["preview"]
    assert '"gen_ai.usage.input_tokens":20' in span["input"]["preview"]
    assert {"$.extra.db_password", "$.extra.input_token", "$.extra['[REDACTED:hf-token]']"} <= redactions
    assert "PLAIN=[REDACTED]" in span["input"]["preview"]  # env values are secrets by nature; names stay


@pytest.mark.parametrize(
    "planted", [GH, GH_PAT, GHO, GHS, HF, AWS, JWT, PEM, f"Bearer {BEARER_TOKEN}", BASIC], ids=lambda s: s[:8]
)
def test_each_value_shape_is_cut_out_of_free_text(planted: str) -> None:
    text, kinds = provenance.redaction.redact_text(f"log line: credential is {planted} (end)")
    assert kinds and text.endswith("(end)")
    assert_no_secret(text, "redacted text")


def test_pem_block_is_redacted_whole() -> None:
    text, kinds = provenance.redaction.redact_text(f"key:\n{PEM}\nafter")
    assert "MII" not in text and text.endswith("after") and kinds == ["pem"]


@pytest.mark.parametrize(
    "harmless",
    [
        "basic information about the cluster",
        "the bearer of this note",
        "a token-bucket rate limiter",
        "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    ],
)
def test_ordinary_text_is_left_alone(harmless: str) -> None:
    assert provenance.redaction.redact_text(harmless) == (harmless, [])


def test_counts_named_like_tokens_are_not_secrets() -> None:
    payload = {"max_tokens": "256", "prompt_tokens": 12, "usage": {"completion_tokens": 3}, "token": "abc"}
    redacted, paths = provenance.redaction.redact_payload(payload)
    assert redacted["max_tokens"] == "256" and redacted["usage"] == {"completion_tokens": 3}
    assert redacted["token"] == provenance.redaction.REDACTED and paths == ["$.token"]
