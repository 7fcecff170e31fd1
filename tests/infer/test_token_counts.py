"""Token counts are not credentials: the GenAI usage attributes survive redaction as integers, also when a
call annotates them once per upstream request (a list), while token-named strings stay secrets."""

from __future__ import annotations

from mcp_ledger.provenance._redact import REDACTED, redact_canonical
from mcp_ledger.provenance.redaction import redact_payload


def test_genai_counts_stay_integers_and_token_strings_stay_redacted() -> None:
    payload = {
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 64,
        "gen_ai.request.max_tokens": 512,
        "token": "abc123",
        "access_token": "ya29.something",
        "refresh_token": 1234,  # a number under a secret's name is the secret
        "session_token": ["a", "b"],
        "input_tokens": "sk-not-a-count",
    }
    redacted, paths = redact_payload(payload)
    assert redacted["gen_ai.usage.input_tokens"] == 812 and redacted["gen_ai.usage.output_tokens"] == 64
    assert redacted["gen_ai.request.max_tokens"] == 512
    for key in ("token", "access_token", "refresh_token", "input_tokens"):
        assert redacted[key] == REDACTED, key
    assert redacted["session_token"] == [REDACTED, REDACTED]
    assert "$['gen_ai.usage.input_tokens']" not in paths


def test_a_count_annotated_once_per_request_is_a_list_of_integers_and_survives() -> None:
    upstream = {"gen_ai.usage.input_tokens": [12, 7], "gen_ai.usage.output_tokens": [3, 0], "max_tokens": ["256"]}
    redacted, paths = redact_payload(upstream)
    assert redacted == upstream and paths == []
    canonical, paths = redact_canonical(upstream)
    assert canonical == b'{"gen_ai.usage.input_tokens":[12,7],"gen_ai.usage.output_tokens":[3,0],"max_tokens":["256"]}'
    # A list that is not all counts stays a secret under a token name.
    redacted, paths = redact_payload({"gen_ai.usage.input_tokens": [12, "ghp-like-string"]})
    assert redacted["gen_ai.usage.input_tokens"] == [REDACTED, REDACTED] and len(paths) == 2
