"""Every tool's input model, fuzzed: any JSON either validates or yields a short message that names
fields and problems — never the rejected value, a traceback or a documentation URL."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mcp_ledger.server.gating import opt_in_tools, select_tools
from mcp_ledger.server.toolbridge import describe_validation_error
from mcp_ledger.tools import load_groups
from mcp_ledger.tools.group import ToolSpec

GROUPS = load_groups()
SPECS = select_tools(GROUPS, allow_destructive=True, tools=opt_in_tools(GROUPS))
MARKER = "Zq9-planted-value"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.just(MARKER)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def arguments_for(spec: ToolSpec) -> st.SearchStrategy[dict[str, Any]]:
    fields = list(spec.input_model.model_fields) or ["x"]
    keys = st.sampled_from([*fields, "unexpected"])
    return st.dictionaries(keys, json_values, max_size=len(fields) + 1)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_any_arguments_validate_or_fail_with_a_safe_message(spec: ToolSpec) -> None:
    @settings(max_examples=60, deadline=None)
    @given(arguments=arguments_for(spec))
    def check(arguments: dict[str, Any]) -> None:
        try:
            spec.input_model.model_validate(arguments)
        except ValidationError as exc:
            message = describe_validation_error(exc)
            assert message.startswith("invalid arguments: ")
            assert MARKER not in message
            assert "input_value" not in message and "errors.pydantic.dev" not in message
            assert len(message) < 2000

    check()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_published_schema_is_the_input_models(spec: ToolSpec) -> None:
    schema = spec.input_model.model_json_schema()
    assert schema.get("type") == "object"
    assert spec.description and len(spec.description) < 1200
