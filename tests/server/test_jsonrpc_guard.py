"""Every malformed message is classified: an answer with the right code, a span for each refused tools/call."""

from __future__ import annotations

import pydantic_core
import pytest
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, JSONRPCRequest, jsonrpc_message_adapter

from mcp_ledger.server._jsonrpc_guard import MAX_DEPTH, Ignored, Rejection, Repaired, screen
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.server.transport import _lowlevel_server

CALL = b'"method":"tools/call","params":{"name":"prov_stats","arguments":{}}'


def nested(depth: int) -> bytes:
    """A tools/call whose message object is nested ``depth`` levels deep in all."""
    inner = depth - 3  # the message, params and arguments objects
    return b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"prov_stats","arguments":{"a":%s}}}' % (
        b"[" * inner + b"]" * inner
    )


def test_max_depth_is_exactly_what_the_sdk_parser_takes() -> None:
    # The documented depth is the parser's; if pydantic-core changes its limit, this says so.
    pydantic_core.from_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(ValueError, match="recursion limit"):
        pydantic_core.from_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert isinstance(screen(nested(MAX_DEPTH)), JSONRPCRequest)
    for depth in (MAX_DEPTH + 1, 100_000):
        refused = screen(nested(depth))
        assert isinstance(refused, Rejection) and isinstance(refused.reply, dict)
        assert refused.reply["id"] == 7 and refused.reply["error"]["code"] == INVALID_PARAMS
        assert f"nested deeper than {MAX_DEPTH} levels" in refused.reply["error"]["message"]
        (call,) = refused.calls
        assert call.params == {"name": "prov_stats"}  # the name is kept; the cut arguments are not recorded


@pytest.mark.parametrize(
    ("raw", "code", "request_id", "calls"),
    [
        (b"this is not json", PARSE_ERROR, None, 0),
        (b'{"jsonrpc":"2.0","id":5,' + CALL, PARSE_ERROR, None, 0),
        (b'"a string"', INVALID_REQUEST, None, 0),
        (b'{"jsonrpc":"1.0","id":20,' + CALL + b"}", INVALID_REQUEST, 20, 1),
        (b'{"id":20,' + CALL + b"}", INVALID_REQUEST, 20, 1),
        (b'{"jsonrpc":"2.0","id":{"a":1},' + CALL + b"}", INVALID_REQUEST, None, 1),
        (b'{"jsonrpc":"2.0","id":1.5,' + CALL + b"}", INVALID_REQUEST, None, 1),
        (b'{"jsonrpc":"2.0","id":null,' + CALL + b"}", INVALID_REQUEST, None, 1),
        (b'{"jsonrpc":"2.0","id":true,' + CALL + b"}", INVALID_REQUEST, None, 1),
        (b'{"jsonrpc":"2.0","id":"x","method":7}', INVALID_REQUEST, "x", 0),
        (b'{"jsonrpc":"2.0","id":25}', INVALID_REQUEST, 25, 0),
        (b'{"jsonrpc":"2.0","id":21,"method":"tools/call","params":["prov_stats"]}', INVALID_PARAMS, 21, 1),
        (b'{"jsonrpc":"2.0","id":22,"method":"tools/call","params":"x"}', INVALID_PARAMS, 22, 1),
        (b'{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"n":' + b"9" * 5000 + b"}}", INVALID_PARAMS, 26, 1),
        (b"[]", INVALID_REQUEST, None, 0),
    ],
)
def test_each_malformed_shape_gets_its_code_and_id(raw: bytes, code: int, request_id: object, calls: int) -> None:
    refused = screen(raw)
    assert isinstance(refused, Rejection) and isinstance(refused.reply, dict)
    assert refused.reply == {"jsonrpc": "2.0", "id": request_id, "error": refused.reply["error"]}
    assert refused.reply["error"]["code"] == code
    assert len(refused.calls) == calls
    assert all(call.code == code and call.request_id == request_id for call in refused.calls)


def test_a_batch_is_refused_element_by_element_and_each_call_is_recorded() -> None:
    batch = (
        b'[{"jsonrpc":"2.0","id":1,' + CALL + b"},"
        b'{"jsonrpc":"2.0","id":"two","method":"tools/list"},'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"},'
        b'{"jsonrpc":"2.0","id":3,' + CALL + b"}, 4]"
    )
    refused = screen(batch)
    assert isinstance(refused, Rejection) and isinstance(refused.reply, list)
    assert [r["id"] for r in refused.reply] == [1, "two", 3, None]  # the notification is owed no answer
    assert {r["error"]["code"] for r in refused.reply} == {INVALID_REQUEST}
    assert [c.request_id for c in refused.calls] == [1, 3]
    only_notifications = screen(b'[{"jsonrpc":"2.0","method":"notifications/initialized"}]')
    assert isinstance(only_notifications, Rejection) and isinstance(only_notifications.reply, dict)


def test_lone_surrogates_become_replacement_characters_and_the_message_is_served() -> None:
    arguments = b'{"k\\udead":"cut \\ud83d"}'
    raw = b'{"jsonrpc":"2.0","id":24,"method":"tools/call","params":{"name":"prov_stats","arguments":%s}}' % arguments
    with pytest.raises(ValueError, match=r"surrogate|hex escape"):
        jsonrpc_message_adapter.validate_json(raw)  # what the SDK's transport drops
    served = screen(raw)
    assert isinstance(served, Repaired) and isinstance(served.message, JSONRPCRequest)
    assert served.message.params == {"name": "prov_stats", "arguments": {"k\ufffd": "cut \ufffd"}}
    pair = screen(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\\ud83d\\ude00"}}')
    assert isinstance(pair, JSONRPCRequest) and pair.params == {"a": "\U0001f600"}


def test_nothing_is_answered_for_blank_lines_notifications_and_responses() -> None:
    assert isinstance(screen(b"  \n"), Ignored)
    assert isinstance(screen(b'{"jsonrpc":"2.0","method":"notifications/x","params":[1]}'), Ignored)
    assert isinstance(screen(b'{"jsonrpc":"2.0","id":{},"result":{}}'), Ignored)


def test_error_messages_never_quote_the_input() -> None:
    secret = b"ghp_" + b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    shapes = [
        b'{"jsonrpc":"1.0","id":1,"method":"' + secret + b'"}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["' + secret + b'"]}',
        b"not json " + secret,
        b'[{"jsonrpc":"2.0","id":1,"method":"' + secret + b'"}]',
    ]
    for raw in shapes:
        refused = screen(raw)
        assert isinstance(refused, Rejection) and secret.decode() not in str(refused.reply)


def test_the_sdk_keeps_its_low_level_server_where_the_stdio_transport_finds_it(tmp_path: object) -> None:
    from mcp.server.lowlevel.server import Server

    app = create_app(ServerSettings(ledger_dir=tmp_path))  # type: ignore[arg-type]
    try:
        assert isinstance(_lowlevel_server(app), Server)
    finally:
        app.close()
