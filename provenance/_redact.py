"""Secret redaction, applied before anything is hashed, previewed, stored or logged.

Three rules, all cheap enough for every call and linear in the input:

* by key: any value under a key that names a secret (``*token*``, ``*secret*``, ``password``,
  ``authorization``, kubeconfig credentials, …) is replaced whole, numbers included; an integer
  count such as ``max_tokens`` or ``gen_ai.usage.input_tokens`` is not a secret. Values under
  ``env``-like keys and the ``data`` of a Kubernetes ``Secret`` are secrets by nature.
* by value: well-known credential shapes (GitHub, Hugging Face and AWS keys, JWTs, PEM blocks,
  ``Bearer …``/``Basic …`` credentials), URL userinfo (``https://user:pw@host``), credential query
  parameters and ``name=value`` secrets in free text (``api_key=…``, ``--password …``-style
  assignments, ``"token": "…"``) are cut out of any string, wherever they appear — and out of key
  names too, which a caller writes as freely as values.

What was redacted is reported as JSON paths (``$.arguments.headers.Authorization``), never as values.

Every rule runs on its own and the union of what they find is cut out, so no rule can hide another's
match. Each rule is written so that the regex engine never scans the same text twice from many
starting points: no unbounded lazy scan that can fail, possessive quantifiers where a run is
followed by a fixed delimiter, and, where a failed attempt would be retried from every candidate
inside the same run, an alternative that consumes the run (those matches are not secrets). The PEM
rule alone needs a look at the whole text first (where the last ``-----END …-----`` is).
bench/redact.py measures 1 MB of adversarial text per rule.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "REDACTED",
    "canonical_json",
    "is_secret_key",
    "redact_canonical",
    "redact_payload",
    "redact_text",
]

REDACTED = "[REDACTED]"

# Names that make the value beside them a secret (``*token*``, ``db_password``, ``X-Api-Key``), for
# keys of a mapping and for ``name=value`` in text; lower case, ``-`` and ``.`` read as ``_``.
_SECRET_WORDS = (
    r"token|secret|passw(?:or)?d|passphrase|authorization|api_?key|private_?key|client_key"
    r"|credential|cookie|session_key|access_key|signing_key|auth_?header"
)
_SECRET_KEY_RE = re.compile(_SECRET_WORDS)
# Counts and limits are not secrets, whatever they are called (when they are numbers).
_COUNT_KEY_RE = re.compile(
    r"(?:^|_)(?:max|min|num|n|count|total|prompt|completion|input|output|cached|reasoning)_tokens?$"
    r"|^tokens?_(?:count|used|limit|usage|per_\w+)$|^tokens$|_tokens?_(?:count|limit|details|usage)$"
)
_ENV_KEYS = frozenset({"env", "environment", "envs", "env_vars", "environment_variables"})
_ENV_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)
_CACHED_KEY_CHARS = 256  # longer keys are not cached: a client could fill the cache with megabytes
_key_cache: dict[str, tuple[bool, bool]] = {}


def _key_facts(key: str) -> tuple[bool, bool]:
    """(names a secret, names a count) for a key."""
    facts = _key_cache.get(key)
    if facts is None:
        k = key.lower().replace("-", "_").replace(".", "_")
        facts = (_SECRET_KEY_RE.search(k) is not None, _COUNT_KEY_RE.search(k) is not None)
        if len(key) <= _CACHED_KEY_CHARS:
            if len(_key_cache) >= 4096:
                _key_cache.clear()
            _key_cache[key] = facts
    return facts


def is_secret_key(key: str) -> bool:
    """Whether a string under ``key`` is a secret by its name alone."""
    secret, count = _key_facts(key)
    return secret and not count


def _is_count(value: Any) -> bool:
    """A number, or a short string of digits: what a count looks like (``"max_tokens": "256"``); or a
    short list of them (a count annotated once per upstream request: ``gen_ai.usage.input_tokens: [12, 7]``)."""
    if isinstance(value, list | tuple):
        return 0 < len(value) <= 64 and all(_is_single_count(item) for item in value)
    return _is_single_count(value)


def _is_single_count(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and len(value) <= 20 and value.isdigit()


# --- value rules -----------------------------------------------------------------------------------
# Each pattern starts with a literal of two or more characters and checks the character before it with
# a lookbehind placed after that literal (``hf_(?<![A-Za-z0-9]hf_)`` = "hf_ not preceded by a letter or
# digit"): the regex engine then jumps from one occurrence of the literal to the next (0.5 ms per MB),
# where a pattern starting with a character class or an alternation tries every position (20 ms).
# A rule runs only when its literal occurs in the text at all.


_Span = tuple[int, int]


@dataclass(frozen=True)
class _Rule:
    kind: str
    needle: str  # the pattern's leading literal
    pattern: re.Pattern[str]
    lowered: bool = False  # matched against the lower-cased text (names and schemes are case-insensitive)
    # What of a match is the secret, given the original text; None: nothing. Default: all of it.
    cut: Callable[[re.Match[str], str], _Span | None] | None = None
    assignment: bool = False  # needs a ``=`` or ``:`` in the text


def _basic_credential(match: re.Match[str], text: str) -> _Span | None:
    token = text[match.start("v") : match.end("v")]
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return match.span() if b":" in decoded else None


def _whole_jwt(match: re.Match[str], text: str) -> _Span | None:
    return match.span() if match.group("sig") is not None else None  # else a run consumed, not a JWT


def _userinfo(match: re.Match[str], text: str) -> _Span | None:
    start = match.start("a")
    end = text.rfind("@", start, match.end())  # the last one: ``app:p@ss@db`` has a password with an @
    return (start, end) if end > start and text.find(_CUT, start, end) < 0 else None


_CUT = "[REDACTED"  # what a cut leaves: a value that is one already is not cut again
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def _assigned_value(match: re.Match[str], text: str) -> _Span | None:
    """The value of a ``name=value``, unless it is a count (``max_tokens=512`` stays)."""
    value = match.group("v")
    if value.strip("\\\"'").isdigit():
        lowered, start = match.string, match.start()
        while start > 0 and match.start() - start < 64 and lowered[start - 1] in _NAME_CHARS:
            start -= 1
        if _key_facts(lowered[start : match.start("v")].rstrip(" \t=:\"'\\"))[1]:
            return None
    return match.span("v")


def _group_v(match: re.Match[str], text: str) -> _Span | None:
    return match.span("v")


# ``name=value`` in text (``api_key=…``, ``--password=…``, ``DB_PASSWORD: …``, ``"token": "…"``): a name
# run holding a secret word, ``=`` or ``:``, then the value (quoted, bounded, or up to a delimiter). The
# rest of the name and the blanks around the separator are bounded, so an attempt that fails costs at
# most about 70 steps however many secret words one long run of name characters holds.
_ASSIGNMENT = (
    r"[a-z0-9_.-]{0,32}+(?:\\?[\"'])?[ \t]{0,16}+[=:][ \t]{0,16}+"
    r"(?!\\?[\"']?\[redacted)(?P<v>\\?\"[^\"\\\r\n]{1,256}+\\?\"|'[^'\r\n]{1,256}+'|\\?[\"']?[^\s&\"'<>;,)}\]\\]++)"
)
_SECRET_NAMES = (  # (the literal, what must follow it); the same words as _SECRET_WORDS, spelt for text
    ("token", ""),
    ("secret", ""),
    ("passw", ""),
    ("passphrase", ""),
    ("auth", r"(?:orization|[_-]?header)"),
    ("api", r"[_-]?key"),
    ("private", r"[_-]?key"),
    ("client", r"[_-]key"),
    ("credential", ""),
    ("cookie", ""),
    ("session", r"[_-]key"),
    ("access", r"[_-]key"),
    ("signing", r"[_-]key"),
    ("pwd", ""),
)
_SEGMENT = r"[A-Za-z0-9_-]"
_RULES: tuple[_Rule, ...] = (
    # Prefixed tokens may follow an underscore (``tool_ghp_…``): not preceded by a letter or digit.
    _Rule("github-token", "gh", re.compile(r"gh(?<![A-Za-z0-9]gh)[pousr]_[A-Za-z0-9]{30,255}")),
    _Rule("github-pat", "github_pat_", re.compile(r"github_pat_(?<![A-Za-z0-9]github_pat_)[A-Za-z0-9_]{22,255}")),
    _Rule("hf-token", "hf_", re.compile(r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{30,}")),
    _Rule("aws-access-key", "AKIA", re.compile(r"AKIA(?<!\wAKIA)[0-9A-Z]{16}\b")),
    _Rule("aws-access-key", "ASIA", re.compile(r"ASIA(?<!\wASIA)[0-9A-Z]{16}\b")),
    # Every ``eyJ`` inside one run of segment characters reaches the same end of that run, so when the first
    # fails they all do: the second alternative consumes a long run instead of retrying it from each (a
    # short one is retried, at most 64 characters each time).
    _Rule(
        "jwt",
        "eyJ",
        re.compile(
            rf"eyJ(?<!\weyJ)(?:{_SEGMENT}{{4,}}+\.eyJ{_SEGMENT}{{4,}}+\.(?P<sig>{_SEGMENT}{{4,}}+)|{_SEGMENT}{{64,}}+)"
        ),
        cut=_whole_jwt,
    ),
    _Rule("bearer", "bearer", re.compile(r"bearer(?<!\wbearer)\s++[a-z0-9._~+/=-]{16,}+"), lowered=True),
    _Rule(
        "basic",
        "basic",
        re.compile(r"basic(?<!\wbasic)\s++(?P<v>[a-z0-9+/]{6,}+)={0,2}"),
        lowered=True,
        cut=_basic_credential,
    ),
    # ``scheme://user:password@host``: the userinfo, up to the authority's last ``@``.
    _Rule("url-userinfo", "://", re.compile(r"://(?P<a>[^\s/?#@\"'<>\\]*+@[^\s/?#\"'<>\\]*+)"), cut=_userinfo),
    # Query parameters that carry a credential under a short name (``?key=…``, ``&sig=…``).
    *(
        _Rule(
            "url-credential",
            name,
            re.compile(rf"{name}(?<={before}{name})(?!\[redacted)(?P<v>[^&#\s\"'<>]++)"),
            lowered=True,
            cut=_group_v,
        )
        for name, before in (("key=", "[?&;]"), ("sig=", "[?&;]"), ("code=", "[?&;]"), ("signature=", ""))
    ),
    *(
        _Rule("key-value", word, re.compile(word + after + _ASSIGNMENT), True, _assigned_value, assignment=True)
        for word, after in _SECRET_NAMES
    ),
)
_PEM_BEGIN_RE = re.compile(r"-----BEGIN [A-Z0-9 ]{1,64}+-----")
_PEM_END_RE = re.compile(r"-----END [A-Z0-9 ]{1,64}+-----")
_PEM_TO_END_RE = re.compile(r"[\s\S]*?-----END [A-Z0-9 ]{1,64}+-----")
_PEM_BODY_RE = re.compile(r"[A-Za-z0-9+/=\s:,.-]*+")

# Short texts are screened with one pattern for every rule's literal (lower-cased) before the rules'
# own look-ups; for long ones the look-ups (a fast substring search each) are cheaper than the pattern.
_SCREEN_RE = re.compile(
    r"gh[pousr]_|github_pat_|hf_|akia|asia|eyj|-----begin |bearer|basic|://|key=|sig=|code=|signature="
    r"|token|secret|passw|auth|api|private|client|credential|cookie|session|access|signing|pwd"
)
_SCREEN_BELOW = 512

_Found = tuple[int, int, str]  # start, end, kind


def _last_pem_end(text: str) -> int:
    """Where the last ``-----END …-----`` in ``text`` starts, or -1."""
    end = len(text)
    while (start := text.rfind("-----END ", 0, end)) >= 0:
        if _PEM_END_RE.match(text, start) is not None:
            return start
        end = start + 8  # the next occurrence found starts before this one
    return -1


def _pem_blocks(text: str) -> Iterator[_Found]:
    """``-----BEGIN X-----`` up to the first ``-----END Y-----`` after it, else over its base64 body.

    The plain pattern's lazy scan for an end marker runs to the end of the text for every header when
    there is none; here it runs only for headers with an end marker after them, so it always stops
    (and consumes what it scanned).
    """
    last_end = _last_pem_end(text)
    pos = 0
    while (header := _PEM_BEGIN_RE.search(text, pos)) is not None:
        body = header.end()
        block = _PEM_TO_END_RE.match(text, body) if body <= last_end else None
        if block is None:
            block = _PEM_BODY_RE.match(text, body)
            assert block is not None  # it matches the empty string
        yield header.start(), block.end(), "pem"
        # An end marker's closing dashes may open the next header (``-----END A-----BEGIN B-----``).
        pos = block.end() - 5


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
# Matches looked at in Python per text (cuts, and candidates a rule's check turns down). Past that the
# rest of the text is cut whole: it fails closed, and the work per text stays within a few milliseconds
# on top of the regex engine's linear scans, however densely a text is packed with candidates.
_MATCHES_PER_TEXT = 4096
TOO_MANY = "too-many-candidates"


class _Scan:
    """One text's scan by every rule, within the per-text budget of matches looked at in Python."""

    def __init__(self, text: str, lowered: str) -> None:
        self.text = text
        self.lowered = lowered
        self.found: list[_Found] = []
        self.left = _MATCHES_PER_TEXT
        self.limit = len(text)  # the rest of the text from here is cut whole
        self.assignments = "=" in lowered or ":" in lowered

    def take(self, start: int) -> bool:
        """Whether a match starting at ``start`` is looked at (else the scan of its rule stops)."""
        if start >= self.limit:
            return False
        if self.left == 0:
            self.limit = start
            return False
        self.left -= 1
        return True

    def rule(self, rule: _Rule) -> None:
        subject = self.lowered if rule.lowered else self.text
        if rule.needle not in subject or (rule.assignment and not self.assignments):
            return
        cut, kind, text, found = rule.cut, rule.kind, self.text, self.found
        for match in rule.pattern.finditer(subject):
            if not self.take(match.start()):
                break
            span = match.span() if cut is None else cut(match, text)
            if span is not None and span[0] < span[1]:
                found.append((*span, kind))

    def pem(self) -> None:
        if "-----BEGIN " not in self.text:
            return
        for block in _pem_blocks(self.text):
            if not self.take(block[0]):
                break
            self.found.append(block)


def _find(text: str) -> list[_Found]:
    """Every secret in ``text`` as (start, end, kind); they may overlap."""
    lowered = text.lower()
    if len(text) < _SCREEN_BELOW and _SCREEN_RE.search(lowered) is None:
        return []
    if len(lowered) != len(text):  # a few characters lower-case to two (İ): keep the offsets aligned
        lowered = text.translate(_ASCII_LOWER)
    scan = _Scan(text, lowered)
    for rule in _RULES:
        scan.rule(rule)
    scan.pem()
    if scan.limit < len(text):
        scan.found.append((scan.limit, len(text), TOO_MANY))
    return scan.found


def redact_text(text: str) -> tuple[str, list[str]]:
    """Cut credentials out of ``text``; return the new text and the kinds found (one per cut)."""
    if not text:
        return text, []
    found = _find(text)
    if not found:
        return text, []
    found.sort(key=lambda f: (f[0], -f[1]))  # at one start the longest first: it names the cut
    pieces: list[str] = []
    kinds: list[str] = []
    done = 0  # the text before this offset is written out or cut
    for start, end, kind in found:
        if start < done:  # overlaps the previous cut: extend it
            done = max(done, end)
            continue
        pieces.append(text[done:start])
        pieces.append(f"[REDACTED:{kind}]")
        kinds.append(kind)
        done = end
    pieces.append(text[done:])
    return "".join(pieces), kinds


# --- payloads --------------------------------------------------------------------------------------


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
        if secret and value is not None and not isinstance(value, bool):
            self.paths.append(path)  # a number under a secret's name is the secret (a PIN, a numeric key)
            return REDACTED
        return value

    def key(self, raw_key: Any, out: Mapping[str, Any], path: str) -> tuple[str, str]:
        """The key as stored (a credential in a key name is cut out like anywhere else) and its path."""
        key = str(raw_key)
        shown, kinds = redact_text(key)
        if not kinds:
            return key, _child_path(path, key)
        unique, n = shown, 1
        while unique in out:  # two secrets redact to the same name; both entries stay
            n += 1
            unique = f"{shown}#{n}"
        child = _child_path(path, unique)
        self.paths.append(child)
        return unique, child

    def mapping(self, value: Mapping[Any, Any], path: str, secret: bool) -> dict[str, Any]:
        is_k8s_secret = value.get("kind") == "Secret"
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key, child = self.key(raw_key, out, path)
            names_secret, names_count = _key_facts(str(raw_key))
            if names_count and _is_count(item):
                out[key] = item  # a count is not a secret, wherever it is
            elif secret or names_secret or (is_k8s_secret and key in ("data", "stringData")):
                out[key] = self.value(item, child, True)
            elif key.lower().replace("-", "_") in _ENV_KEYS:
                out[key] = self.env(item, child)
            else:
                out[key] = self.value(item, child, False)
        return out

    def env(self, value: Any, path: str) -> Any:
        """Environment values are secrets by nature: keep the names, drop the values."""
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for raw_key, item in value.items():
                key, child = self.key(raw_key, out, path)
                out[key] = self.value(item, child, True)
            return out
        if isinstance(value, list | tuple):
            items: list[Any] = []
            for i, item in enumerate(value):
                item_path = f"{path}[{i}]"
                match = _ENV_ITEM_RE.match(item) if isinstance(item, str) else None
                if match and match.group(2):
                    self.paths.append(item_path)
                    items.append(f"{redact_text(match.group(1))[0]}={REDACTED}")
                else:
                    items.append(self.value(item, item_path, False))
            return items
        return self.value(value, path, False)


def redact_payload(value: Any, root: str = "$") -> tuple[Any, list[str]]:
    """Return a redacted copy of a JSON-like value and the JSON paths that were redacted."""
    walker = _Walker()
    out = walker.value(value, root, False)
    return out, walker.paths


# Every value rule starts with one of these literals, and every key or assignment rule contains one of
# these words: a serialised payload without any of them has nothing to redact. (A hit only means "look
# closer".) The payload is lower-cased first, so one case-sensitive pattern whose alternatives all
# start with a literal covers both; the engine then skips ahead to candidate characters (3 µs per KiB,
# where a case-insensitive pattern took 70). The words are grouped by their first letters: at each
# candidate character the engine then tries a dozen alternatives instead of thirty (half the time; the
# flat list is the test's reference, tests/provenance/test_redact.py).
MAYBE_SECRET = re.compile(
    rb"a(?:kia|sia|uth(?:oriz|.?header)|pi.?key|ccess.key)|b(?:earer|asic)|c(?:lient.key|redential|ookie|ode=)"
    rb"|e(?:yj|nv)|g(?:h[pousr]_|ithub_pat_)|hf_|key=|p(?:ass(?:w|phrase)|rivate|wd)"
    rb"|s(?:e(?:cret|ssion.key)|ig(?:=|n(?:ature=|ing.key)))|token|-----begin|://"
)
CANONICAL_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_json(value: Any) -> bytes:
    """Sorted, compact UTF-8 JSON of ``value``.

    orjson refuses integers beyond 64 bits (JSON allows them; a client may send one), strings with a
    lone surrogate (U+FFFD there instead) and types that are not JSON; those values take a slower path
    instead of failing the span.
    """
    try:
        return orjson.dumps(value, option=CANONICAL_OPTIONS)
    except TypeError:
        return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):  # a lone surrogate (a Python caller's string cut inside an emoji) cannot be UTF-8
        return _LONE_SURROGATE.sub("\ufffd", value)
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # as orjson writes them
    if isinstance(value, Mapping):
        return {_jsonable(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def redact_canonical(value: Any, root: str = "$", canonical: bytes | None = None) -> tuple[bytes, list[str]]:
    """Canonical JSON (sorted keys, compact) of the redacted value, and the redacted paths.

    Fast path: most payloads hold nothing that could be a secret, which one serialisation and one
    byte scan show; only the rest pay for the walk. ``canonical`` is the value's canonical JSON when
    the caller has it already.
    """
    if canonical is None:
        try:
            canonical = orjson.dumps(value, option=CANONICAL_OPTIONS)
        except TypeError:
            canonical = canonical_json(value)  # see there
    if MAYBE_SECRET.search(canonical.lower()) is None:
        return canonical, []
    redacted, paths = redact_payload(value, root)
    return (canonical_json(redacted) if paths else canonical), paths
