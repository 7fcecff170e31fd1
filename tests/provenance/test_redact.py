"""The redaction rules: fast forms that find what their plain forms find, in patterns of a safe shape.

``provenance._redact`` writes each value rule so the regex engine can skip ahead (a literal first,
the boundary check after it), never rescans a run from every candidate inside it (possessive runs,
a consuming alternative) and screens payloads with a lower-cased pre-filter. These tests hold the
fast forms to rules that read more simply, and check the shape that keeps them linear; the time on
adversarial input is measured by bench/redact.py, not asserted here.
"""

from __future__ import annotations

import base64
import binascii
import re

# The regex module's own parser (private, Python 3.11+): only the shape of its output is read.
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_ledger.provenance import _redact
from mcp_ledger.provenance._redact import (
    _PEM_BEGIN_RE,
    _PEM_BODY_RE,
    _PEM_END_RE,
    _RULES,
    _pem_blocks,
    _Scan,
    canonical_json,
    redact_canonical,
    redact_payload,
    redact_text,
)
from tests.conftest import AWS, BASIC, BEARER_TOKEN, GH, GH_PAT, HF, JWT, PEM, QUERY_TOKEN, URL_PASSWORD


def _basic(match: str) -> bool:
    token = match.split(None, 1)[1].rstrip("=")
    try:
        return b":" in base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


# The value rules as first written: a leading boundary assertion, greedy runs, a lazy scan for a PEM end.
_PLAIN_RULES: dict[str, tuple[str, bool]] = {  # kind: (pattern, matched on the lower-cased text)
    "github-token": (r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,255}", False),
    "github-pat": (r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,255}", False),
    "hf-token": (r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}", False),
    "aws-access-key": (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", False),
    "jwt": (r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", False),
    "pem": (r"-----BEGIN [A-Z0-9 ]{1,64}-----(?:[\s\S]*?-----END [A-Z0-9 ]{1,64}-----|[A-Za-z0-9+/=\s:,.-]*)", False),
    "bearer": (r"\bbearer\s+[a-z0-9._~+/=-]{16,}", True),
    "basic": (r"\bbasic\s+[a-z0-9+/]{6,}={0,2}", True),
}

# Pieces that make near-misses likely: prefixes, boundaries, runs of token characters.
_ATOMS = [
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "hf_",
    "AKIA",
    "ASIA",
    "eyJ",
    "-eyJ",
    ".",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "-----BEGIN A-----",
    "-----END ",
    "Bearer ",
    "bearer ",
    "Basic ",
    "Basic dXNlcjpwYXNz",
    "A" * 16,
    "a1" * 16,
    "Z9",
    "_",
    "-",
    " ",
    "\n",
    "=",
    "/",
    "é",
    "İ",
    "x",
    "://",
    "@",
    ":",
    "?",
    "&",
    '"',
    "'",
    "\\",
    "token",
    "api_key",
    "Password",
    "max_tokens",
    "key=",
    "sig=",
    "[REDACTED]",
    "=[REDACTED:key-value]",
]
_texts = st.lists(st.one_of(st.sampled_from(_ATOMS), st.text(max_size=3)), max_size=30).map("".join)


def _fast_spans(kind: str, text: str) -> list[tuple[int, int]]:
    scan = _Scan(text, text.lower())
    if kind == "pem":
        scan.pem()
    for rule in _RULES:
        if rule.kind == kind:
            scan.rule(rule)
    return sorted((start, end) for start, end, _ in scan.found)


def _plain_spans(kind: str, text: str) -> list[tuple[int, int]]:
    pattern, lowered = _PLAIN_RULES[kind]
    if kind == "pem":  # the next header may begin with the closing dashes of an end marker
        spans, pos = [], 0
        while (m := re.compile(pattern).search(text, pos)) is not None:
            spans.append(m.span())
            pos = m.end() - 5
        return spans
    matches = re.finditer(pattern, text.lower() if lowered else text)
    if kind == "basic":  # a credential only when the (original) token decodes to user:password
        return [m.span() for m in matches if _basic(text[m.start() : m.end()])]
    return [m.span() for m in matches]


@settings(max_examples=3000, deadline=None)
@given(_texts)
def test_value_rules_match_what_their_plain_form_matches(text: str) -> None:
    if "İ" in text:  # lower-cases to two characters: the rules then match a copy lowered in ASCII only
        text = text.replace("İ", "I")
    for kind in _PLAIN_RULES:
        assert _fast_spans(kind, text) == _plain_spans(kind, text), kind


def test_every_kind_is_found_in_running_text() -> None:
    text = f"x {GH} {GH_PAT} {HF} {AWS} {JWT} {PEM} Authorization: Bearer {BEARER_TOKEN} {BASIC} y"
    redacted, kinds = redact_text(text)
    assert sorted(set(kinds)) == [
        "aws-access-key",
        "basic",
        "bearer",
        "github-pat",
        "github-token",
        "hf-token",
        "jwt",
        "pem",
    ]
    for secret in (GH, GH_PAT, HF, AWS, JWT, BEARER_TOKEN):
        assert secret not in redacted


# --- the shape that keeps every rule linear ----------------------------------------------------------

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)


def _unsafe_repeats(items: Any, last: bool) -> list[str]:
    """Unbounded repetitions that can give characters back (greedy or lazy, not possessive), unless
    nothing follows them in the pattern (then there is nothing to give back for)."""
    problems: list[str] = []
    items = list(items)
    for i, (op, av) in enumerate(items):
        is_last = last and i == len(items) - 1
        if op in _REPEATS:
            low, high, body = av
            if high == sre_constants.MAXREPEAT and not (op == sre_constants.MAX_REPEAT and is_last):
                problems.append(f"{op} {{{low},}} at item {i}")
            problems += _unsafe_repeats(body, is_last)
        elif op == _POSSESSIVE:
            continue  # nothing is given back; what is inside runs once per attempt
        elif op == sre_constants.BRANCH:
            for branch in av[1]:
                problems += _unsafe_repeats(branch, is_last)
        elif op == sre_constants.SUBPATTERN:
            problems += _unsafe_repeats(av[-1], is_last)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            problems += _unsafe_repeats(av[1], False)
    return problems


@pytest.mark.parametrize(
    "pattern",
    [rule.pattern for rule in _RULES] + [_PEM_BEGIN_RE, _PEM_END_RE, _PEM_BODY_RE],
    ids=lambda p: p.pattern[:24],
)
def test_rule_patterns_never_give_back_an_unbounded_run(pattern: re.Pattern[str]) -> None:
    assert _unsafe_repeats(sre_parse.parse(pattern.pattern), True) == []


@pytest.mark.parametrize("rule", _RULES, ids=lambda r: f"{r.kind}:{r.needle}")
def test_every_rule_starts_with_its_literal(rule: Any) -> None:
    """A leading literal lets the engine jump between candidates; the rule is skipped when it is absent."""
    assert rule.pattern.pattern.startswith(rule.needle)
    first = sre_parse.parse(rule.pattern.pattern)[0]
    assert first[0] == sre_constants.LITERAL


def test_the_lazy_pem_scan_runs_only_towards_a_known_end_marker() -> None:
    """A header with no end marker after it takes the body pattern; one with, stops at that marker."""
    text = "-----BEGIN A-----\nabc\n-----END A-----\n-----BEGIN B-----\nxyz\nafter words"
    assert list(_pem_blocks(text)) == [(0, 37, "pem"), (38, len(text), "pem")]
    assert _redact._last_pem_end("-----END A-----END B-----") == 10


# --- what the new rules cut, and what they leave --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://u:pw@host/x", "https://[REDACTED:url-userinfo]@host/x"),
        ("postgres://app:p@ss@db:5432/x", "postgres://[REDACTED:url-userinfo]@db:5432/x"),
        ("POST /mcp?access_token=abc123&x=1", "POST /mcp?access_token=[REDACTED:key-value]&x=1"),
        ("GET /a?key=AIzaSyA-1&sig=zz", "GET /a?key=[REDACTED:url-credential]&sig=[REDACTED:url-credential]"),
        ("curl -d api_key=abc123 https://x", "curl -d api_key=[REDACTED:key-value] https://x"),
        ("export DB_PASSWORD='a b c'; run", "export DB_PASSWORD=[REDACTED:key-value]; run"),
        ('{"client_secret": "s3"}', '{"client_secret": [REDACTED:key-value]}'),
        ('{\\"password\\":\\"s3\\"}', '{\\"password\\":[REDACTED:key-value]}'),
        ("--auth-header=xyz", "--auth-header=[REDACTED:key-value]"),
        ("input_token=abc", "input_token=[REDACTED:key-value]"),
    ],
)
def test_credentials_in_urls_and_assignments_are_cut(text: str, expected: str) -> None:
    assert redact_text(text)[0] == expected


@pytest.mark.parametrize(
    "harmless",
    [
        "max_tokens=512 and input_tokens: 20",
        '{"completion_tokens": 3}',
        "https://example.com:8443/path?q=1&page=2",
        "see https://github.com/owner/repo/issues/1#issuecomment-2",
        "a token-bucket rate limiter",
        "mail me at someone@example.com",
    ],
)
def test_counts_urls_and_prose_are_left_alone(harmless: str) -> None:
    assert redact_text(harmless) == (harmless, [])


_PLANTED = [  # (text planted, the secret in it)
    (GH, GH),
    (HF, HF),
    (AWS, AWS),
    (JWT, JWT),
    (PEM, PEM.splitlines()[1]),
    (f"Bearer {BEARER_TOKEN}", BEARER_TOKEN),
    (BASIC, BASIC.split()[1]),
    (f"postgres://app:{URL_PASSWORD}@db:5432/app", URL_PASSWORD),
    (f"https://h.example/cb?access_token={QUERY_TOKEN}&state=1", QUERY_TOKEN),
    (f"curl -d api_key={QUERY_TOKEN} https://h.example", QUERY_TOKEN),
]


@settings(max_examples=1000, deadline=None)
@given(_texts, _texts, st.sampled_from(_PLANTED))
def test_a_planted_secret_between_blanks_never_survives(before: str, after: str, planted: tuple[str, str]) -> None:
    text, secret = planted
    redacted, kinds = redact_text(f"{before} {text} {after}")
    assert kinds and secret not in redacted


@settings(max_examples=3000, deadline=None)
@given(_texts)
def test_redacted_text_has_nothing_left_to_redact(text: str) -> None:
    """A text redacted twice (a tool's own scrub, then the ledger's) comes out as it went in."""
    once, _ = redact_text(text)
    assert redact_text(once) == (once, [])


# --- payloads ------------------------------------------------------------------------------------

_KEYS = ["text", "name", "API-Key", "Token", "max_tokens", "X-Auth-Header", "Password", "env", "Environment"]
_keys = st.one_of(
    st.sampled_from(
        [*_KEYS, "kind", "data", "Cookie", "session_key", "privateKey", "client-key", "Credentials", "input_token"]
    ),
    _texts,
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.just("Secret"),
    st.just("K=V"),
    st.just("512"),
    _texts,
)
_payloads = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=2000, deadline=None)
@given(_payloads)
def test_the_prefilter_never_skips_a_payload_the_walk_would_redact(payload: Any) -> None:
    redacted, paths = redact_payload(payload, "$")
    canonical, fast_paths = redact_canonical(payload, "$")
    assert fast_paths == paths
    assert canonical == canonical_json(redacted)


def test_integers_beyond_64_bits_are_digested_exactly() -> None:
    big = {"n": 2**70, "m": -(2**64), "f": float("inf")}
    canonical, paths = redact_canonical(big, "$")
    assert canonical == b'{"f":null,"m":-18446744073709551616,"n":1180591620717411303424}'
    assert paths == []


def test_numbers_under_secret_names_are_secrets_and_counts_stay() -> None:
    payload = {
        "password": 90251675928872,
        "pin": {"secret": 1234.5},
        "max_tokens": 512,
        "gen_ai.usage.input_tokens": 7,
        "usage": {"completion_tokens_details": {"reasoning_tokens": 0}, "prompt_tokens": 3},
        "input_token": "not-a-count",
        "max_tokens_hint": "256",
        "use_token": True,
    }
    redacted, paths = redact_payload(payload)
    assert redacted["password"] == redacted["pin"]["secret"] == redacted["input_token"] == _redact.REDACTED
    assert redacted["max_tokens"] == 512 and redacted["gen_ai.usage.input_tokens"] == 7
    assert redacted["usage"] == payload["usage"] and redacted["use_token"] is True
    assert sorted(paths) == ["$.input_token", "$.max_tokens_hint", "$.password", "$.pin.secret"]


def test_secret_shaped_key_names_are_cut_and_never_recorded_in_paths() -> None:
    payload = {GH: 1, "labels": {HF: "x", HF[:-1] + "Z": "y"}, "env": {AWS: "v"}, "Env": [f"{GH_PAT}=v"]}
    redacted, paths = redact_payload(payload)
    blob = canonical_json(redacted).decode() + " ".join(paths)
    for secret in (GH, HF, AWS, GH_PAT):
        assert secret not in blob
    assert redacted["[REDACTED:github-token]"] == 1
    assert redacted["labels"] == {"[REDACTED:hf-token]": "x", "[REDACTED:hf-token]#2": "y"}  # both entries stay
    assert redacted["Env"] == [f"[REDACTED:github-pat]={_redact.REDACTED}"]


def test_a_text_packed_with_candidates_is_cut_whole_past_the_budget() -> None:
    """Work per text is bounded: past 4096 matches looked at in Python, the rest is cut (fails closed)."""
    text = "&sig=x" * 5000 + " " + GH
    redacted, kinds = redact_text(text)
    assert GH not in redacted and kinds[-1] == _redact.TOO_MANY and len(kinds) <= 4097


def test_every_alternative_of_the_payload_prefilter_starts_with_a_literal() -> None:
    """The prefilter runs on every call's payload: the engine may skip ahead only when each alternative
    begins with a literal (one starting with a character class made it try every alternative everywhere)."""
    (op, (_, branches)), *_ = sre_parse.parse(_redact.MAYBE_SECRET.pattern.decode())
    assert op == sre_constants.BRANCH
    assert all(branch[0][0] == sre_constants.LITERAL for branch in branches)


# The prefilter's words as a flat list: the reference that the grouped pattern in _redact must equal.
_PREFILTER_REFERENCE = re.compile(
    rb"gh[pousr]_|github_pat_|hf_|akia|asia|eyj|-----begin|bearer|basic"
    rb"|token|secret|passw|passphrase|authoriz|api.?key|private|client.key|credential|cookie"
    rb"|session.key|access.key|signing.key|auth.?header|env|pwd|://|key=|sig=|code=|signature="
)
_PREFILTER_WORDS = [
    b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_", b"hf_", b"akia", b"asia", b"eyj", b"-----begin",
    b"bearer", b"basic", b"token", b"secret", b"passw", b"passphrase", b"authoriz", b"apikey", b"api_key",
    b"client.key", b"credential", b"cookie", b"session-key", b"access_key", b"signing_key", b"authheader",
    b"auth-header", b"env", b"pwd", b"://", b"key=", b"sig=", b"code=", b"signature=",
]  # fmt: skip
_near_words = st.sampled_from(_PREFILTER_WORDS).flatmap(
    lambda word: st.sampled_from([word, word[:-1], word[1:]]) | st.builds(lambda i, c: word[:i] + c + word[i + 1 :],
        st.integers(0, len(word) - 1), st.sampled_from([b"_", b"-", b"x", b".", b"\n", b"=", b":"]))
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(_near_words | st.binary(max_size=6) | st.sampled_from([b"a", b"s", b"au", b"sig", b"pass"]), max_size=8)
)
def test_the_grouped_payload_prefilter_finds_exactly_what_the_flat_word_list_finds(parts: list[bytes]) -> None:
    text = b"".join(parts)
    found, reference = _redact.MAYBE_SECRET.search(text), _PREFILTER_REFERENCE.search(text)
    assert (found is None) == (reference is None)
    assert found is None or reference is None or found.start() == reference.start()
