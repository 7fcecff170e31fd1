"""The floor: the least a hash-chained span per call can cost, for comparison with the real middleware.

``FloorMiddleware`` does only what every span needs — two ids, canonical digests of input and output,
one sorted JSON line with a hash link, one ``write()`` — and nothing the real one adds (timeouts,
redaction, annotations, error paths, locks, failure handling). It is a measuring stick, never a product.
"""

from __future__ import annotations

import os
import random
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

__all__ = ["FloorMiddleware"]

_SORTED = orjson.OPT_SORT_KEYS


def _digest(payload: Any) -> dict[str, Any]:
    canonical = orjson.dumps(payload, option=_SORTED)
    return {
        "sha256": sha256(canonical).hexdigest(),
        "size": len(canonical),
        "preview": canonical[:1024].decode(errors="ignore"),
        "truncated": len(canonical) > 1024,
        "redactions": [],
    }


class FloorMiddleware:
    def __init__(self, ledger_dir: Path) -> None:
        ledger_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(ledger_dir / "floor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._ids = random.Random()
        self._seq = 0
        self._prev: str | None = None

    def close(self) -> None:
        os.close(self._fd)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        start = time.time_ns()
        params = ctx.params or {}
        ids = f"{self._ids.getrandbits(192):048x}"
        result = await call_next(ctx)
        assert isinstance(result, dict)
        output = result.get("structuredContent") or result.get("content")
        record = {
            "v": 1,
            "type": "span",
            "seq": self._seq,
            "prev": self._prev,
            "trace_id": ids[16:],
            "span_id": ids[:16],
            "name": f"tools/call {params.get('name')}",
            "start_ns": str(start),
            "end_ns": str(time.time_ns()),
            "status": {"code": "OK", "message": None},
            "attributes": {"gen_ai.tool.name": params.get("name"), "jsonrpc.request.id": str(ctx.request_id)},
            "input": _digest(params.get("arguments") or {}),
            "output": _digest(output),
        }
        line = orjson.dumps(record, option=_SORTED)
        os.write(self._fd, line + b"\n")
        self._seq += 1
        self._prev = "sha256:" + sha256(line).hexdigest()
        meta = result.get("_meta") or {}
        meta["mcp-ledger/span_id"] = ids[:16]
        result["_meta"] = meta
        return result
