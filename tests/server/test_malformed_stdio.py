"""Malformed messages on a real stdio server: exactly one answer each, one span per tools/call, still serving."""

from __future__ import annotations

import json
import select
import subprocess
from pathlib import Path
from typing import Any

from mcp_ledger import provenance
from mcp_ledger.server._jsonrpc_guard import MAX_DEPTH
from tests.conftest import GH
from tests.server.test_stdio import _exchange, _raw_server

CALL = '"method":"tools/call","params":{"name":"prov_stats","arguments":{}}'
DEEP = "[" * (MAX_DEPTH + 50) + "]" * (MAX_DEPTH + 50)

NO_SPAN = "no span"

# (line sent, expected error code, the id in the answer, the jsonrpc.request.id its span records or NO_SPAN)
MALFORMED: list[tuple[str, int, Any, str | None]] = [
    ("this is not json", -32700, None, NO_SPAN),
    ('{"jsonrpc":"2.0","id":30,' + CALL, -32700, None, NO_SPAN),
    ('{"jsonrpc":"1.0","id":31,' + CALL + "}", -32600, 31, "31"),
    ('{"jsonrpc":"2.0","id":32,"method":"tools/call","params":["prov_stats"]}', -32602, 32, "32"),
    ('[{"jsonrpc":"2.0","id":33,' + CALL + "}]", -32600, [33], "33"),
    ("[]", -32600, None, NO_SPAN),
    ('{"jsonrpc":"2.0","id":{"deep":true},' + CALL + "}", -32600, None, None),
    ('{"jsonrpc":"2.0","id":35,"method":"tools/call","params":{"name":"prov_stats","arguments":{"a":' + DEEP + "}}}",
     -32602, 35, "35"),
    ('{"jsonrpc":"2.0","id":36,"method":"tools/call","params":{"name":"prov_query","arguments":{"tool":"' + GH + '"}}',
     -32700, None, NO_SPAN),
]  # fmt: skip


def _read_line(proc: subprocess.Popen[bytes], seconds: float = 20) -> dict[str, Any] | list[Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    assert ready, f"no answer within {seconds} s"
    answer: dict[str, Any] | list[Any] = json.loads(proc.stdout.readline())
    return answer


def _send(proc: subprocess.Popen[bytes], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.flush()


def test_every_malformed_line_gets_one_answer_and_every_refused_call_one_span(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    proc = _raw_server(ledger)
    try:
        _exchange(proc, [])  # initialize
        for line, code, request_id, _ in MALFORMED:
            answer = _read_after(proc, line)
            if isinstance(request_id, list):
                assert isinstance(answer, list) and [a["id"] for a in answer] == request_id
                assert {a["error"]["code"] for a in answer} == {code}
            else:
                assert isinstance(answer, dict) and answer["id"] == request_id and answer["error"]["code"] == code
            assert GH not in json.dumps(answer)
        # A string cut inside an emoji: served, with U+FFFD in place of the lone surrogate.
        answer = _read_after(proc, '{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"prov_query",'
                                   '"arguments":{"tool":"cut \\ud83d"}}}')  # fmt: skip
        assert isinstance(answer, dict) and answer["id"] == 40 and "result" in answer
        # Still serving, and nothing else was written in between: the next line is this call's answer.
        answer = _read_after(proc, '{"jsonrpc":"2.0","id":41,' + CALL + "}")
        assert isinstance(answer, dict) and answer["id"] == 41 and answer["result"].get("isError") is not True
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
    spans = list(provenance.Ledger(ledger).scan())
    refused = [s for s in spans if s["attributes"].get("error.type") in ("-32600", "-32602")]
    expected = [(span_id, code) for _, code, _, span_id in MALFORMED if span_id != NO_SPAN]
    assert [
        (s["attributes"].get("jsonrpc.request.id"), int(s["attributes"]["error.type"])) for s in refused
    ] == expected
    assert all(s["status"]["code"] == "ERROR" and s["name"].startswith("tools/call") for s in refused)
    served = [s for s in spans if s["attributes"].get("jsonrpc.request.id") in ("40", "41")]
    assert len(served) == 2 and "cut \ufffd" in served[0]["input"]["preview"]
    assert len(spans) == len(expected) + 2
    assert GH.encode() not in b"".join(p.read_bytes() for p in ledger.iterdir() if p.is_file())
    assert provenance.Ledger(ledger).verify().ok


def _read_after(proc: subprocess.Popen[bytes], line: str) -> dict[str, Any] | list[Any]:
    _send(proc, line)
    return _read_line(proc)
