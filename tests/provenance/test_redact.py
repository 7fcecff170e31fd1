"""The fast redaction patterns find exactly what their plain forms find.

``provenance._redact`` writes its value rules so the regex engine can skip ahead (a literal first,
the boundary check after it) and screens payloads with a lower-cased pre-filter. Both are
optimisations of rules that read more simply; these tests hold the fast forms to the plain ones.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from provenance._redact import _VALUE_RE, _kind, canonical_json, redact_canonical, redact_payload, redact_text
from tests.conftest import AWS, BASIC, BEARER_TOKEN, GH, GH_PAT, HF, JWT, PEM

# The rules as first written: a leading boundary assertion, one named group per kind.
_PLAIN_RULES = [
    ("github_token", r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,255}"),
    ("github_pat", r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,255}"),
    ("hf_token", r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    ("pem", r"-----BEGIN [A-Z0-9 ]{1,64}-----(?:[\s\S]*?-----END [A-Z0-9 ]{1,64}-----|[A-Za-z0-9+/=\s:,.-]*)"),
    ("bearer", r"\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}"),
    ("basic", r"\bBasic\s+[A-Za-z0-9+/]{6,}={0,2}"),
]
_PLAIN_RE = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _PLAIN_RULES))

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
    ".",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
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
    "x",
]
_texts = st.lists(st.one_of(st.sampled_from(_ATOMS), st.text(max_size=3)), max_size=30).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_texts)
def test_value_rules_match_what_their_plain_form_matches(text: str) -> None:
    fast = [(m.start(), m.end(), _kind(m.group(0))) for m in _VALUE_RE.finditer(text)]
    plain = [(m.start(), m.end(), (m.lastgroup or "").replace("_", "-")) for m in _PLAIN_RE.finditer(text)]
    assert fast == plain


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


_KEYS = ["text", "name", "API-Key", "Token", "max_tokens", "X-Auth-Header", "Password", "env", "Environment"]
_keys = st.sampled_from([*_KEYS, "kind", "data", "Cookie", "session_key", "privateKey", "client-key", "Credentials"])
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just("Secret"),
    st.just("K=V"),
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
