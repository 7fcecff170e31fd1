"""Secret redaction, applied before anything is hashed, previewed, stored or logged.

Two rules, both cheap enough for every call:

* by key: a string under a key that names a secret (``*token*``, ``*secret*``, ``password``,
  ``authorization``, kubeconfig credentials, …) is replaced whole; a count such as ``max_tokens``
  is not a secret. Values under ``env``-like keys and the ``data`` of a Kubernetes ``Secret`` are
  secrets by nature and are replaced too.
* by value: well-known credential shapes (GitHub, Hugging Face and AWS keys, JWTs, PEM blocks,
  ``Bearer …``/``Basic …`` credentials) are cut out of any string, wherever they appear.

What was redacted is reported as JSON paths (``$.arguments.headers.Authorization``), never as values.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["REDACTED", "canonical_json", "redact_canonical", "redact_payload", "redact_text"]

REDACTED = "[REDACTED]"

# Each rule is written so that it starts with a literal character and checks the character before it
# with a lookbehind placed *after* that literal: ``gh(?<![A-Za-z0-9]gh)…`` means "gh not preceded by a
# letter or digit", like a leading ``(?<![A-Za-z0-9])`` or ``\b``. A pattern whose every alternative
# starts with a literal lets the regex engine skip ahead to candidate characters; a leading assertion
# makes it try every rule at every position, which cost 90 µs per KiB of ordinary text instead of 5.
# tests/provenance/test_redact.py checks these rules against their plain form on random strings.
_VALUE_RULES: list[tuple[str, str]] = [
    # Prefixed tokens may follow an underscore (``tool_ghp_…``): not preceded by a letter or digit.
    ("github-token", r"gh(?<![A-Za-z0-9]gh)[pousr]_[A-Za-z0-9]{30,255}"),
    ("github-pat", r"g(?<![A-Za-z0-9]g)ithub_pat_[A-Za-z0-9_]{22,255}"),
    ("hf-token", r"hf(?<![A-Za-z0-9]hf)_[A-Za-z0-9]{30,}"),
    ("aws-access-key", r"A(?<!\wA)(?:KIA|SIA)[0-9A-Z]{16}\b"),
    ("jwt", r"e(?<!\we)yJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    (
        "pem",
        r"-----BEGIN [A-Z0-9 ]{1,64}-----(?:[\s\S]*?-----END [A-Z0-9 ]{1,64}-----|[A-Za-z0-9+/=\s:,.-]*)",
    ),
    ("bearer", r"B(?<!\wB)earer\s+[A-Za-z0-9._~+/=-]{16,}"),
    ("bearer", r"b(?<!\wb)earer\s+[A-Za-z0-9._~+/=-]{16,}"),
    ("basic", r"B(?<!\wB)asic\s+[A-Za-z0-9+/]{6,}={0,2}"),
]
# No groups: a group around an alternative would hide its first character from the engine's skip-ahead.
# The kind of a match is told by how it starts (the rules' prefixes are distinct).
_VALUE_RE = re.compile("|".join(rx for _, rx in _VALUE_RULES))
_KIND_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("github_pat_", "github-pat"),
    ("gh", "github-token"),
    ("hf_", "hf-token"),
    ("A", "aws-access-key"),
    ("eyJ", "jwt"),
    ("-----", "pem"),
    ("Basic", "basic"),
    ("B", "bearer"),
    ("b", "bearer"),
)


def _kind(match: str) -> str:
    for prefix, kind in _KIND_BY_PREFIX:
        if match.startswith(prefix):
            return kind
    raise AssertionError(f"no redaction kind for a match of {len(match)} characters")


_SECRET_KEY_RE = re.compile(
    r"token|secret|passw(?:or)?d|passphrase|authorization|api_?key|private_?key|client_key"
    r"|credential|cookie|session_key|access_key|signing_key|auth_?header"
)
# Counts and limits are not secrets, whatever they are called.
_COUNT_KEY_RE = re.compile(
    r"(?:^|_)(?:max|min|num|n|count|total|prompt|completion|input|output|cached|reasoning)_tokens?$"
    r"|^tokens?_(?:count|used|limit|usage|per_\w+)$|^tokens$|_tokens?_(?:count|limit)$"
)
_ENV_KEYS = frozenset({"env", "environment", "envs", "env_vars", "environment_variables"})
_ENV_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def _normal_key(key: str) -> str:
    return key.lower().replace("-", "_")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a string under ``key`` is a secret by its name alone."""
    k = _normal_key(key)
    return bool(_SECRET_KEY_RE.search(k)) and not _COUNT_KEY_RE.search(k)


def _basic_is_credential(match: re.Match[str]) -> bool:
    token = match.group(0).split(None, 1)[1]
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def redact_text(text: str) -> tuple[str, list[str]]:
    """Cut well-known credential shapes out of ``text``; return the new text and the kinds found."""
    if not text or _VALUE_RE.search(text) is None:
        return text, []
    kinds: list[str] = []

    def replace(match: re.Match[str]) -> str:
        kind = _kind(match.group(0))
        if kind == "basic" and not _basic_is_credential(match):
            return match.group(0)
        kinds.append(kind)
        return f"[REDACTED:{kind}]"

    out = _VALUE_RE.sub(replace, text)
    return out, kinds


def _child_path(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


class _Walker:
    """One redaction pass over a JSON-like value; collects the redacted paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def value(self, value: Any, path: str, secret: bool) -> Any:
        if isinstance(value, str):
            if secret:
                if value:
                    self.paths.append(path)
                    return REDACTED
                return value
            out, kinds = redact_text(value)
            if kinds:
                self.paths.append(path)
            return out
        if isinstance(value, Mapping):
            return self.mapping(value, path, secret)
        if isinstance(value, list | tuple):
            return [self.value(item, f"{path}[{i}]", secret) for i, item in enumerate(value)]
        return value

    def mapping(self, value: Mapping[Any, Any], path: str, secret: bool) -> dict[str, Any]:
        is_k8s_secret = value.get("kind") == "Secret"
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = str(raw_key)
            child = _child_path(path, key)
            if secret or is_secret_key(key) or (is_k8s_secret and key in ("data", "stringData")):
                out[key] = self.value(item, child, True)
            elif _normal_key(key) in _ENV_KEYS:
                out[key] = self.env(item, child)
            else:
                out[key] = self.value(item, child, False)
        return out

    def env(self, value: Any, path: str) -> Any:
        """Environment values are secrets by nature: keep the names, drop the values."""
        if isinstance(value, Mapping):
            return {str(k): self.value(v, _child_path(path, str(k)), True) for k, v in value.items()}
        if isinstance(value, list | tuple):
            out: list[Any] = []
            for i, item in enumerate(value):
                item_path = f"{path}[{i}]"
                match = _ENV_ITEM_RE.match(item) if isinstance(item, str) else None
                if match and match.group(2):
                    self.paths.append(item_path)
                    out.append(f"{match.group(1)}={REDACTED}")
                else:
                    out.append(self.value(item, item_path, False))
            return out
        return self.value(value, path, False)


def redact_payload(value: Any, root: str = "$") -> tuple[Any, list[str]]:
    """Return a redacted copy of a JSON-like value and the JSON paths that were redacted."""
    walker = _Walker()
    out = walker.value(value, root, False)
    return out, walker.paths


# Every value rule starts with one of these literals, and every key rule contains one of these words:
# a serialised payload without any of them has nothing to redact. (A hit only means "look closer".)
# The payload is lower-cased first, so one case-sensitive pattern whose alternatives all start with a
# literal covers both; the engine then skips ahead to candidate characters (3 µs per KiB, where a
# case-insensitive pattern took 70).
_MAYBE_SECRET = re.compile(
    rb"gh[pousr]_|github_pat_|hf_|akia|asia|eyj|-----begin|bearer|basic"
    rb"|token|secret|passw|passphrase|authoriz|api.?key|private|client.key|credential|cookie"
    rb"|session.key|access.key|signing.key|auth.?header|env"
)
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(value: Any) -> bytes:
    """Sorted, compact UTF-8 JSON of ``value``.

    orjson refuses integers beyond 64 bits (JSON allows them; a client may send one) and types that
    are not JSON; those values take a slower path instead of failing the span.
    """
    try:
        return orjson.dumps(value, option=_CANONICAL)
    except TypeError:
        return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # as orjson writes them
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def redact_canonical(value: Any, root: str = "$") -> tuple[bytes, list[str]]:
    """Canonical JSON (sorted keys, compact) of the redacted value, and the redacted paths.

    Fast path: most payloads hold nothing that could be a secret, which one serialisation and one
    byte scan show; only the rest pay for the walk.
    """
    try:
        canonical = orjson.dumps(value, option=_CANONICAL)
    except TypeError:
        canonical = canonical_json(value)  # see there
    if _MAYBE_SECRET.search(canonical.lower()) is None:
        return canonical, []
    redacted, paths = redact_payload(value, root)
    return (canonical_json(redacted) if paths else canonical), paths


def redact_env_values(env: Any) -> Any:
    """Redact the values of an environment listing (``["K=V", …]`` or ``{K: V}``), keeping the names."""
    return _Walker().env(env, "$")
