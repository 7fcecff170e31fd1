"""GitHub's OpenAPI description (trimmed, tests/specs) as the judge of the loopback's traffic.

Response bodies are validated with an OpenAPI-3.0-aware validator (``nullable``), request paths,
methods, query parameters and JSON bodies against the operation they hit. ``example()`` builds a body
from a schema's required fields (then the test overrides what it cares about) and validates it, because
GitHub's own examples do not all satisfy its schemas (see the specs README).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "github-rest-subset.json"
METHODS = ("get", "put", "post", "patch", "delete")


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec()["components"][section][name]
    return node


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    op: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.op["operationId"])

    def parameters(self, where: str) -> dict[str, dict[str, Any]]:
        found = {}
        for param in self.op.get("parameters", ()):
            param = _deref(param)
            if param["in"] == where:
                found[param["name"]] = param
        return found

    def response_schema(self, status: int) -> dict[str, Any] | bool | None:
        """The JSON schema of that response; None when it has no body; False when the status is not listed."""
        response = self.op["responses"].get(str(status))
        if response is None:
            return False
        content = _deref(response).get("content") or {}
        media = content.get("application/json")
        return None if media is None else media["schema"]

    def request_schema(self) -> dict[str, Any] | None:
        body = self.op.get("requestBody")
        if body is None:
            return None
        return dict(_deref(body)["content"]["application/json"]["schema"])


@cache
def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    table = []
    for template, item in spec()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "$")
        table.append((pattern, template, item))
    return table


def find_operation(method: str, path: str) -> Operation | str:
    """The operation for ``METHOD path``, or a message saying why there is none."""
    for pattern, template, item in _operations():
        if pattern.match(path):
            op = item.get(method.lower())
            if op is None:
                return f"{method} is not an operation of {template}"
            return Operation(method.upper(), template, op)
    return f"{path} is not a path in the spec"


def _with_components(schema: dict[str, Any], *, any_of_for_one_of: bool = False) -> dict[str, Any]:
    root = {"allOf": [schema], "components": spec()["components"]}
    if any_of_for_one_of:
        # GET /user: a private-user body also matches public-user (see the specs README).
        root = dict(json.loads(json.dumps(root).replace('"oneOf"', '"anyOf"')))
    return root


def schema_errors(schema: dict[str, Any], instance: Any, *, write: bool = False) -> list[str]:
    cls = OAS30WriteValidator if write else OAS30ReadValidator
    validator = cls(_with_components(schema), format_checker=oas30_format_checker)
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(instance)][:5]


def param_errors(param: dict[str, Any], raw: str, where: str = "query") -> list[str]:
    schema = param.get("schema", {})
    value: Any = raw
    kind = _deref(schema).get("type") if isinstance(schema, dict) else None
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", raw):
            return [f"{where} {param['name']}={raw!r} is not an integer"]
        value = int(raw)
    elif kind == "boolean":
        if raw not in ("true", "false"):
            return [f"{where} {param['name']}={raw!r} is not a boolean"]
        value = raw == "true"
    return [f"{where} {param['name']}: {m}" for m in schema_errors(schema, value)]


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_DATE = "2026-03-01T10:00:00Z"


def _fill(schema: dict[str, Any], path: str) -> Any:
    schema = _deref(schema)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _fill(part, path)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return _fill(schema[key][0], path)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: _fill(props.get(name, {}), f"{path}.{name}") for name in schema.get("required", ())}
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return _DATE
        if fmt in ("uri", "url"):
            return f"https://github.com/octo-org/hello/{path.rsplit('.', 1)[-1]}"
        if fmt == "email":
            return "octocat@example.com"
        if fmt == "uri-template":
            return "https://api.github.com/x{/y}"
        return "x"
    return None


def example(schema_name: str, /, **overrides: Any) -> dict[str, Any]:
    """A body of ``components/schemas/<name>`` with ``overrides`` merged in (nested dicts merge too);
    raises when the result does not satisfy the schema."""
    body: dict[str, Any] = _fill(component(schema_name), schema_name)
    _merge(body, copy.deepcopy(overrides))
    errors = schema_errors(component(schema_name), body)
    if errors:
        raise AssertionError(f"example {schema_name} does not satisfy the spec: {errors}")
    return body


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
