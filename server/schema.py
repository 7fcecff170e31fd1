"""Compact JSON Schemas: the smallest schema that accepts exactly the same instances.

Every byte of a tool's schemas is read by a model in every session, and pydantic writes them for
people and code generators: a ``title`` on every property, ``anyOf: [{type: X}, {type: null}]`` for
an optional value, ``default: null``, and a ``$defs`` entry per model. :func:`compact_schema` rewrites
a pydantic (draft 2020-12) schema without changing which instances it accepts:

- drops ``title``, ``default: null`` and ``additionalProperties: true`` (annotations or no-ops);
- drops ``type`` beside an ``enum`` or ``const`` whose values all have that type;
- turns an ``anyOf`` of branches that constrain disjoint types into one ``type`` list
  (``{type: [string, null], maxLength: 64}``), and an ``anyOf`` of value sets into one ``enum``;
- inlines a ``$defs`` entry where that is not longer than referring to it (always when it is used once;
  never when it refers to itself).

Anything it does not recognise is kept as it is. Semantic equality is proven by a property test over
every tool's schemas (``tests/server/test_schema.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

__all__ = ["compact_schema"]

Schema = dict[str, Any]

# Keywords whose value is a map of name -> subschema, one subschema, or a list of subschemas.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")

# Keywords that never change which instances are valid.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"})

# Keywords that constrain only instances of one JSON type (and accept every other type).
_TYPE_KEYWORDS: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format", "contentEncoding", "contentMediaType"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
    "array": frozenset(
        {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"}
    ),
    "object": frozenset(
        {
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "minProperties",
            "maxProperties",
            "propertyNames",
            "dependentRequired",
            "dependentSchemas",
        }
    ),
    "boolean": frozenset(),
    "null": frozenset(),
}
_TYPE_KEYWORDS["integer"] = _TYPE_KEYWORDS["number"]
# integer instances are numbers too: the two never count as disjoint.
_FAMILY = {"integer": "number"}


def compact_schema(schema: Schema) -> Schema:
    """The same schema, smaller: accepts and rejects exactly the instances ``schema`` does."""
    defs: dict[str, Schema] = schema.get("$defs", {}) if isinstance(schema.get("$defs"), dict) else {}
    body = {key: value for key, value in schema.items() if key != "$defs"}
    if not defs:
        compact: Schema = _rewrite(copy.deepcopy(body))
        return compact
    inline: set[str] = set()
    best = _assemble(body, defs, inline)
    best_size = _size(best)
    for name in _inlining_order(defs):
        trial = _assemble(body, defs, inline | {name})
        if _size(trial) <= best_size:
            inline.add(name)
            best, best_size = trial, _size(trial)
    return best


def _size(schema: Schema) -> int:
    return len(orjson.dumps(schema))


def _ref_name(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith("#/$defs/") and "/" not in ref[len("#/$defs/") :]:
        return ref[len("#/$defs/") :].replace("~1", "/").replace("~0", "~")
    return None


def _refs(node: Any) -> set[str]:
    """Names of the $defs entries a node refers to, directly."""
    found: set[str] = set()
    if isinstance(node, dict):
        name = _ref_name(node.get("$ref"))
        if name is not None:
            found.add(name)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _inlining_order(defs: dict[str, Schema]) -> list[str]:
    """Entries that do not reach themselves, leaves first (so a trial inlines an already compact body)."""
    edges = {name: _refs(body) & defs.keys() for name, body in defs.items()}

    def reaches_itself(start: str) -> bool:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            name = todo.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(edges[name])
        return False

    order: list[str] = []
    candidates = sorted(name for name in defs if not reaches_itself(name))
    while candidates:
        ready = [name for name in candidates if not edges[name] & set(candidates)] or candidates[:1]
        order.extend(ready)
        candidates = [name for name in candidates if name not in ready]
    return order


def _assemble(body: Schema, defs: dict[str, Schema], inline: set[str]) -> Schema:
    """The schema with the entries in ``inline`` substituted at every reference they can replace."""

    def expand(node: Any, trail: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [expand(item, trail) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: expand(value, trail) for key, value in node.items()}
        name = _ref_name(out.get("$ref"))
        if name in inline and name in defs and name not in trail:
            target = expand(copy.deepcopy(defs[name]), (*trail, name))
            siblings = {key: value for key, value in out.items() if key != "$ref"}
            merged = _merge_ref(target, siblings)
            if merged is not None:
                return merged
        return out

    result: Schema = _rewrite(expand(copy.deepcopy(body), ()))
    kept = {name: _rewrite(expand(copy.deepcopy(defs[name]), (name,))) for name in defs}
    used = _reachable(result, kept)
    if used:
        result["$defs"] = {name: kept[name] for name in sorted(used)}
    return result


def _reachable(body: Schema, defs: dict[str, Schema]) -> set[str]:
    seen: set[str] = set()
    todo = list(_refs(body) & defs.keys())
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(defs[name]) & defs.keys())
    return seen


def _merge_ref(target: Any, siblings: Schema) -> Any:
    """A referenced schema with the keywords written beside its ``$ref``, or None if they conflict.

    Both apply to the instance; a sibling annotation (a field's description) wins over the entry's
    own (its model's docstring), and a constraint on both sides keeps the reference."""
    if not isinstance(target, dict):
        return None if siblings else target
    merged = dict(target)
    for key, value in siblings.items():
        if key in merged and merged[key] != value and key not in _ANNOTATIONS:
            return None
        merged[key] = value
    if "$ref" in target and "$ref" in siblings:
        return None
    return merged


def _rewrite(node: Any) -> Any:
    """Compact one (already $ref-expanded) schema node and everything under it, bottom-up."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _rewrite(sub) for name, sub in value.items()}
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = _rewrite(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_rewrite(sub) for sub in value]
        else:
            out[key] = value
    out.pop("title", None)
    if "default" in out and out["default"] is None:
        del out["default"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    _drop_implied_type(out)
    if isinstance(out.get("anyOf"), list):
        _merge_any_of(out)
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _has_type(value: Any, declared: str) -> bool:
    actual = _json_type(value)
    return actual == declared or (declared == "number" and actual == "integer")


def _drop_implied_type(node: Schema) -> None:
    """``{enum: [a, b], type: string}`` says no more than ``{enum: [a, b]}`` when a and b are strings."""
    declared = node.get("type")
    if "enum" in node and isinstance(node["enum"], list):
        values = node["enum"]
    elif "const" in node:
        values = [node["const"]]
    else:
        return
    types = _types(declared)
    if types and all(any(_has_type(value, t) for t in types) for value in values):
        del node["type"]


def _types(declared: Any) -> list[str] | None:
    """The types a ``type`` keyword names, or None when it is absent or not understood."""
    types = declared if isinstance(declared, list) else [declared]
    if types and all(isinstance(t, str) and t in _TYPE_KEYWORDS for t in types):
        return list(types)
    return None


def _value_set(branch: Any) -> list[Any] | None:
    """The values a branch accepts when it is a plain ``enum``, ``const`` or ``type: null``."""
    if not isinstance(branch, dict):
        return None
    keys = set(branch) - _ANNOTATIONS
    if keys == {"enum"} and isinstance(branch["enum"], list):
        return list(branch["enum"])
    if keys == {"const"}:
        return [branch["const"]]
    if keys == {"type"} and branch["type"] == "null":
        return [None]
    return None


def _typed_branch(branch: Any) -> tuple[list[str], Schema] | None:
    """A branch's types and its constraints, when every constraint applies to its types only."""
    if not isinstance(branch, dict):
        return None
    types = _types(branch.get("type"))
    if types is None:
        return None
    constraints = {key: value for key, value in branch.items() if key != "type" and key not in _ANNOTATIONS}
    allowed = frozenset().union(*(_TYPE_KEYWORDS[t] for t in types))
    if set(constraints) - allowed:
        return None
    return types, constraints


def _merge_any_of(node: Schema) -> None:
    """Replace ``anyOf`` by one ``type`` list or one ``enum`` when that accepts the same instances."""
    branches = node["anyOf"]
    outer = {key: value for key, value in node.items() if key != "anyOf"}
    if set(outer) - _ANNOTATIONS:
        return
    sets = [_value_set(branch) for branch in branches]
    if branches and all(values is not None for values in sets):
        merged_values: list[Any] = []
        for values in sets:
            for value in values or ():
                if not any(_same_json(value, seen) for seen in merged_values):
                    merged_values.append(value)
        del node["anyOf"]
        node["enum"] = merged_values
        return
    typed = [_typed_branch(branch) for branch in branches]
    if not branches or any(item is None for item in typed):
        return
    all_types: list[str] = []
    constraints: Schema = {}
    # Annotations never change validity: the outer one (a field's own description) wins over a branch's.
    notes = {key: value for branch in reversed(branches) for key, value in branch.items() if key in _ANNOTATIONS}
    families: set[str] = set()
    for item in typed:
        assert item is not None
        types, own = item
        for t in types:
            family = _FAMILY.get(t, t)
            if family in families:
                return  # two branches accept the same type: their constraints would combine differently
            families.add(family)
            all_types.append(t)
        for key, value in own.items():
            if key in constraints:
                return
            constraints[key] = value
    for item in typed:
        assert item is not None
        types, own = item
        others = [t for t in all_types if t not in types]
        if any(set(own) & _TYPE_KEYWORDS[t] for t in others):
            return  # a keyword of this branch would also constrain another branch's type
    del node["anyOf"]
    for key, value in notes.items():
        node.setdefault(key, value)
    node["type"] = all_types[0] if len(all_types) == 1 else all_types
    node.update(constraints)


def _same_json(a: Any, b: Any) -> bool:
    return _json_type(a) == _json_type(b) and a == b
