"""What a failed span is grouped by: its error signature, and the upstream objects it names.

The signature is the span's ``error.type`` and status message with what varies between two failures
of one kind masked: URLs past the host, ISO times, UUIDs, digests, quoted values (and their unquoted
repeats), paths, IP addresses, ids (hex, generated names such as ``web-7d9f8-xk2lp`` or ``api-3``) and
numbers. A hex id without a letter (one in 300 of Docker's short ids) reads as a number: its failures
group apart. It is computed when a span is indexed, so the index groups failures without reading a
record. The message in a span is already redacted (``SpanBuilder.fail``); masking here generalises,
it is not what keeps secrets out.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from mcp_ledger.provenance._span import ERROR_TYPE

__all__ = ["error_columns", "error_objects", "error_signature"]

SIGNATURE_CHARS = 300
_MESSAGE_CHARS = 500  # what a span's message is cut to when it is written; a hand-made line may be longer

# One pass, left to right; at each position the first alternative that matches wins. The first one
# steps over plain words and spaces in one match each (no rule starts there): six times faster.
_MASK = re.compile(
    r"""
    (?P<keep>[A-Za-z_]++(?![\w'"`/\\:.~-])|[\s,;()\[\]{}!?=<>#]+)
  | (?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#'"`<>]+)(?P<url_rest>[/?#][^\s'"`<>]*)?
  | (?P<time>\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)
  | (?P<uuid>\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b)
  | (?P<digest>\b(?:sha(?:1|224|256|384|512)|md5|blake2b?):[0-9a-fA-F]{6,}\b|\b[0-9a-fA-F]{32,}\b)
  | (?P<str>(?<![\w'])'[^'\n]*'(?!\w)|"[^"\n]*"|`[^`\n]*`)
  | (?P<path>(?:(?<![\w./~-])(?:~|\.{1,2})?/|\b[A-Za-z]:\\|(?<![\w.@+-])[\w.@+-]+/)[^\s'"`<>(),;]*[^\s'"`<>(),;:.!?])
  | (?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b)
  | (?P<hex>\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b
      |\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])[0-9A-F]{7,}\b)
  | (?P<n>(?<![A-Za-z0-9])\d+(?:[.,]\d+)*(?=[A-Za-z]{0,3}\b))
  | (?P<id>(?<![\w-])(?=[\w-]{5})[\w-]*?(?:[A-Za-z]\d|\d[A-Za-z])[\w-]*|(?<![\w-])[A-Za-z][\w-]*[-_]\d+(?![\w-]))
    """,
    re.VERBOSE,
)
_SPACES = re.compile(r"\s+")


def _mask(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "keep":
        return match[0]
    if kind == "url" or kind == "url_rest":
        return match["url"] + ("/…" if match["url_rest"] else "")
    return "<id>" if kind == "hex" else f"<{kind}>"


_QUOTED = re.compile(r"""(?<![\w'])'([^'\n]{3,})'(?!\w)|"([^"\n]{3,})"|`([^`\n]{3,})`""")
_QUOTED_VALUES = 4
_QUOTED_REPEATS = 4


def _unquoted_repeats(text: str) -> str:
    """A quoted value said again without quotes is masked too: ``container 'api-3' not found: No such
    container: api-3`` (the repeat would otherwise make one signature per container)."""
    values = {next(v for v in match.groups() if v is not None) for match in _QUOTED.finditer(text)}
    for value in sorted(values, key=lambda v: (-len(v), v))[:_QUOTED_VALUES]:  # longest first, always the same
        start, replaced = 0, 0
        while replaced < _QUOTED_REPEATS and (at := text.find(value, start)) >= 0:
            end = at + len(value)
            if _is_word_or_quote(text[at - 1 : at]) or _is_word_or_quote(text[end : end + 1]):
                start = end
                continue
            text = f'{text[:at]}""{text[end:]}'
            start, replaced = at + 2, replaced + 1
    return text


def _is_word_or_quote(char: str) -> bool:
    return char != "" and (char.isalnum() or char in "_'\"`")


def error_signature(error_type: str | None, message: str | None) -> str:
    """``error.type: message`` with its variable parts masked: equal for two failures of one kind."""
    text = (message or "")[:_MESSAGE_CHARS]
    if "'" in text or '"' in text or "`" in text:
        text = _unquoted_repeats(text)
    text = _SPACES.sub(" ", _MASK.sub(_mask, text)).strip()
    kind = error_type or "error"
    signature = f"{kind}: {text}" if text else kind
    return signature if len(signature) <= SIGNATURE_CHARS else signature[: SIGNATURE_CHARS - 1] + "…"


# Upstream keys that name an object (k8s.pod.name, container_id, image_ref, repository, run_ids, repo_id,
# k8s.object.uids, pr_number), not a request, a count or a setting.
_OBJECT_KEY = re.compile(r"(?:^|[._])(?:uids?|ids?|names?|kind|image|image_ref|repository|numbers?)$")
_NOT_OBJECT_KEY = re.compile(r"request|audit|^gen_ai\.|^mcp|^http\.|^network\.|version|session")
OBJECT_KEYS = 8
OBJECT_LIST_ITEMS = 3
OBJECT_VALUE_CHARS = 128


def _object_value(value: Any) -> str | int | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        items = [item for item in value if item not in (None, "")]
        if not items:
            return None
        more = f" (+{len(items) - OBJECT_LIST_ITEMS})" if len(items) > OBJECT_LIST_ITEMS else ""
        text = ", ".join(str(item)[:OBJECT_VALUE_CHARS] for item in items[:OBJECT_LIST_ITEMS]) + more
    elif isinstance(value, str):
        text = value
    else:
        return None
    return text if len(text) <= OBJECT_VALUE_CHARS else text[: OBJECT_VALUE_CHARS - 1] + "…"


def error_objects(upstream: Any) -> dict[str, str | int] | None:
    """The upstream facts of a span that name the objects it touched (at most ``OBJECT_KEYS``, values cut)."""
    if not isinstance(upstream, dict):
        return None
    found: dict[str, str | int] = {}
    for key, value in upstream.items():
        if len(found) >= OBJECT_KEYS:
            break
        if not isinstance(key, str) or not _OBJECT_KEY.search(key) or _NOT_OBJECT_KEY.search(key):
            continue
        shown = _object_value(value)
        if shown is not None:
            found[key[:OBJECT_VALUE_CHARS]] = shown
    return found or None


def error_columns(record: dict[str, Any]) -> tuple[str, str | None]:
    """The index's signature and objects (compact JSON, or None) of a failed span's record."""
    attributes = record.get("attributes")
    status = record.get("status")
    error_type = attributes.get(ERROR_TYPE) if isinstance(attributes, dict) else None
    message = status.get("message") if isinstance(status, dict) else None
    objects = error_objects(record.get("upstream"))
    return (
        error_signature(
            str(error_type) if error_type is not None else None, message if isinstance(message, str) else None
        ),
        orjson.dumps(objects, option=orjson.OPT_SORT_KEYS).decode() if objects else None,
    )
