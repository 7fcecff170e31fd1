"""Environment values in what a tool returns: secrets by nature, so the names stay and the values go.

A container's (or pod's) environment routinely carries tokens and passwords under harmless names;
a tool that shows it to the agent keeps ``KEY=`` and replaces every value with ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mcp_ledger import provenance

__all__ = ["redact_env_values"]

_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


def redact_env_values(env: Mapping[str, Any] | Iterable[Any]) -> Any:
    """``["K=V", …]`` -> ``["K=[REDACTED]", …]``; ``{K: V}`` -> ``{K: "[REDACTED]"}`` (empty values stay empty).

    An item that is not ``K=V`` keeps its text, with any credential shape cut out of it.
    """
    if isinstance(env, Mapping):
        return {
            str(key): provenance.redaction.REDACTED if value not in (None, "") else value for key, value in env.items()
        }
    out: list[Any] = []
    for item in env:
        match = _ITEM_RE.match(item) if isinstance(item, str) else None
        if match and match.group(2):
            out.append(f"{match.group(1)}={provenance.redaction.REDACTED}")
        elif isinstance(item, str):
            out.append(provenance.redaction.redact_text(item)[0])
        else:
            out.append(item)
    return out
