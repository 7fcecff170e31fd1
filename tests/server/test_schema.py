"""compact_schema: smaller schemas that accept exactly the instances pydantic's schemas accept."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mcp_ledger.server.schema import compact_schema
from mcp_ledger.server.toolbridge import model_schemas
from mcp_ledger.tools import load_groups
from mcp_ledger.tools.group import ToolSpec

Schema = dict[str, Any]

# Keywords the instance generator below understands; a tool that starts using another one fails
# test_the_generator_knows_every_keyword_in_use instead of being checked loosely.
_KNOWN = frozenset(
    {
        "$defs",
        "$ref",
        "additionalProperties",
        "anyOf",
        "const",
        "default",
        "description",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "format",
        "items",
        "maxItems",
        "maxLength",
        "maximum",
        "maxProperties",
        "minItems",
        "minLength",
        "minimum",
        "pattern",
        "properties",
        "required",
        "title",
        "type",
    }
)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2.5, 2.5) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


def _instances(schema: Schema, root: Schema, junk: bool) -> st.SearchStrategy[Any]:
    """Instances shaped by ``schema``; with ``junk``, any node may also be replaced by a wrong value.

    Every strategy is built once, before drawing (building them per draw made the test 10x slower)."""
    shaped = _shaped(schema, root, junk)
    return st.one_of(shaped, _JSON) if junk else shaped


def _shaped(schema: Schema, root: Schema, junk: bool) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        target = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return st.deferred(lambda: _instances({**target, **rest}, root, junk))
    if "anyOf" in schema:
        return st.one_of([_instances(branch, root, junk) for branch in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type", ["null", "boolean", "integer", "string", "array", "object"])
    types = types if isinstance(types, list) else [types]
    return st.one_of([_typed(kind, schema, root, junk) for kind in types])


def _typed(kind: str, schema: Schema, root: Schema, junk: bool) -> st.SearchStrategy[Any]:
    """Values of one type; with ``junk`` also values just past each bound."""
    inside, outside = _bounded(kind, schema, root, junk)
    return st.one_of(inside, *[st.just(value) for value in outside]) if junk else inside


def _bounded(kind: str, schema: Schema, root: Schema, junk: bool) -> tuple[st.SearchStrategy[Any], list[Any]]:
    match kind:
        case "null":
            return st.none(), []
        case "boolean":
            return st.booleans(), []
        case "integer" | "number":
            step = 1 if kind == "integer" else 0.5
            low = schema.get("minimum", schema.get("exclusiveMinimum", -(10**9)) + step)
            high = schema.get("maximum", schema.get("exclusiveMaximum", 10**9) - step)
            numbers: st.SearchStrategy[Any] = (
                st.integers(int(low), int(high)) if kind == "integer" else st.floats(low, high, allow_nan=False)
            )
            return numbers, [low - step, high + step]
        case "string":
            low, high = schema.get("minLength", 0), schema.get("maxLength", 10**6)
            past = ["x" * (low - 1)] * (low > 0) + ["x" * (high + 1)] * (high < 10**6)
            if "pattern" in schema:
                return st.from_regex(schema["pattern"]).filter(lambda text: low <= len(text) <= high), past
            return st.text(min_size=low, max_size=max(low, min(high, 12))), past
        case "array":
            items = _instances(schema.get("items", {}), root, junk)
            low, high = schema.get("minItems", 0), schema.get("maxItems")
            inside: st.SearchStrategy[Any] = st.lists(
                items, min_size=low, max_size=min(high if high is not None else 3, 3)
            )
            if high is None or not junk:
                return inside, []
            return st.one_of(inside, st.lists(items, min_size=high + 1, max_size=high + 1)), []
        case "object":
            return _objects(schema, root, junk), []
    raise AssertionError(f"unknown type {kind}")


def _objects(schema: Schema, root: Schema, junk: bool) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Schema] = schema.get("properties", {})
    values = {name: _instances(sub, root, junk) for name, sub in properties.items()}
    required = sorted(set(schema.get("required", ())))
    extra = schema.get("additionalProperties", True)
    extra_values = _instances(extra, root, junk) if isinstance(extra, dict) else _JSON
    extra_names = st.lists(st.sampled_from(["zz", "extra"]) | st.text(min_size=1, max_size=4), max_size=2)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in required or draw(st.booleans()):
                out[name] = draw(value)
        drop_one: bool = draw(st.booleans())
        if junk and required and drop_one:
            out.pop(draw(st.sampled_from(required)), None)
        if extra is not False or junk:
            for name in draw(extra_names):
                if name not in properties:
                    out[name] = draw(extra_values)
        return out

    return build()


def _tool_schemas() -> list[tuple[str, Schema]]:
    found: list[tuple[str, Schema]] = []
    specs: list[ToolSpec] = [spec for group in load_groups() for spec in group.tools]
    for spec in specs:
        input_schema, output_schema = model_schemas(spec)
        found.append((f"{spec.name}.input", input_schema))
        if output_schema is not None:
            found.append((f"{spec.name}.output", output_schema))
    return found


TOOL_SCHEMAS = _tool_schemas()
CHECKS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found |= _keywords(sub)
            elif key not in ("enum", "const", "default", "required"):
                found |= _keywords(value)
            found.add(key)
    elif isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    return found


def test_the_generator_knows_every_keyword_in_use() -> None:
    used = set().union(*(_keywords(schema) for _, schema in TOOL_SCHEMAS))
    assert used <= _KNOWN, f"teach the instance generator {sorted(used - _KNOWN)}"


@pytest.mark.parametrize(("name", "original"), TOOL_SCHEMAS, ids=[name for name, _ in TOOL_SCHEMAS])
def test_a_tool_schema_and_its_compact_form_accept_the_same_instances(name: str, original: Schema) -> None:
    compact = compact_schema(original)
    Draft202012Validator.check_schema(compact)
    judges = Draft202012Validator(original), Draft202012Validator(compact)
    valid = st.one_of(_instances(original, original, junk=False), _instances(compact, compact, junk=False))
    near = st.one_of(_instances(original, original, junk=True), _instances(compact, compact, junk=True))

    @CHECKS
    @given(valid, near)
    def same_verdicts(valid: Any, near: Any) -> None:
        assert judges[0].is_valid(valid), f"{name}: the generator made an instance neither schema should reject"
        assert judges[1].is_valid(valid), f"{name}: the compact form rejects {valid!r}"
        assert judges[0].is_valid(near) == judges[1].is_valid(near), f"{name}: verdicts differ on {near!r}"

    same_verdicts()


def test_every_tool_schema_is_at_most_three_quarters_its_pydantic_size() -> None:
    before = sum(len(orjson.dumps(schema)) for _, schema in TOOL_SCHEMAS)
    after = sum(len(orjson.dumps(compact_schema(schema))) for _, schema in TOOL_SCHEMAS)
    assert after <= 0.75 * before, (before, after)


def test_titles_go_but_a_property_named_title_stays() -> None:
    schema = {
        "title": "Args",
        "type": "object",
        "properties": {"title": {"title": "Title", "type": "string"}},
        "required": ["title"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    }


def test_an_optional_value_becomes_a_type_list_with_its_constraints() -> None:
    schema = {"anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}], "default": None, "title": "Since"}
    assert compact_schema(schema) == {"type": ["string", "null"], "maxLength": 64}


def test_an_optional_choice_becomes_one_enum() -> None:
    schema = {"anyOf": [{"enum": ["ok", "error"], "type": "string"}, {"type": "null"}], "description": "Status"}
    assert compact_schema(schema) == {"enum": ["ok", "error", None], "description": "Status"}


def test_a_non_null_default_stays() -> None:
    assert compact_schema({"type": "integer", "default": 50, "maximum": 200}) == {
        "type": "integer",
        "default": 50,
        "maximum": 200,
    }


def test_branches_over_overlapping_types_are_kept_apart() -> None:
    schema = {"anyOf": [{"type": "integer", "minimum": 5}, {"type": "number", "maximum": 1}]}
    assert compact_schema(schema) == schema
    crossing = {"anyOf": [{"type": "string", "maxLength": 2}, {"type": ["string", "null"]}]}
    assert compact_schema(crossing) == crossing


def test_a_constraint_on_the_anyof_itself_keeps_it() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "maxLength": 3}
    assert compact_schema(schema) == schema


def test_a_nullable_model_is_inlined_into_one_object_or_null() -> None:
    schema = {
        "$defs": {"Diff": {"title": "Diff", "type": "object", "properties": {"n": {"type": "integer"}}}},
        "type": "object",
        "properties": {"diff": {"anyOf": [{"$ref": "#/$defs/Diff"}, {"type": "null"}], "default": None}},
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {"diff": {"type": ["object", "null"], "properties": {"n": {"type": "integer"}}}},
    }


def test_a_model_used_often_stays_a_reference_when_that_is_shorter() -> None:
    big = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(8)}}
    schema = {
        "$defs": {"Big": big},
        "type": "object",
        "properties": {name: {"$ref": "#/$defs/Big"} for name in ("a", "b", "c")},
    }
    compact = compact_schema(schema)
    assert compact["$defs"] == {"Big": big}
    assert compact["properties"]["a"] == {"$ref": "#/$defs/Big"}


def test_a_recursive_model_keeps_its_reference() -> None:
    node = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
    schema = {"$defs": {"Node": node}, "$ref": "#/$defs/Node"}
    compact = compact_schema(schema)
    assert compact["$defs"] == {"Node": node}
    validator = Draft202012Validator(compact)
    assert validator.is_valid({"children": [{"children": []}]})
    assert not validator.is_valid({"children": [{"children": 3}]})


def test_a_reference_beside_a_conflicting_constraint_is_kept() -> None:
    schema = {
        "$defs": {"Short": {"type": "string", "maxLength": 3}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/Short", "maxLength": 5}},
    }
    compact = compact_schema(schema)
    assert compact["properties"]["a"] == {"$ref": "#/$defs/Short", "maxLength": 5}
    assert compact["$defs"] == {"Short": {"type": "string", "maxLength": 3}}


def test_a_field_description_wins_over_its_models_docstring() -> None:
    schema = {
        "$defs": {"State": {"description": "A model docstring", "type": "object"}},
        "type": "object",
        "properties": {"state": {"$ref": "#/$defs/State", "description": "The field's own words"}},
    }
    assert compact_schema(schema)["properties"]["state"] == {"description": "The field's own words", "type": "object"}


def test_the_input_is_not_changed_and_compacting_twice_changes_nothing() -> None:
    for _, original in TOOL_SCHEMAS:
        kept = copy.deepcopy(original)
        once = compact_schema(original)
        assert original == kept
        assert compact_schema(once) == once
