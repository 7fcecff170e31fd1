"""The bridge between tool groups and the SDK: catalog entries, argument validation, SDK ``Tool`` objects.

A server lists its tools from :class:`ToolEntry` records (cached in ``tools/catalog.json``) without
importing any group; :func:`build_tool` turns an entry into the SDK's tool, which resolves the
group's code on its first call and validates arguments with the tool's own model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, ValidationError

from mcp_ledger.provenance import annotate
from mcp_ledger.server.runtime import GroupRuntime, missing_extra
from mcp_ledger.server.schema import compact_schema
from mcp_ledger.tools import source_digest
from mcp_ledger.tools.group import InvalidArguments, ToolFailure, ToolGroup, ToolSpec

__all__ = ["ToolEntry", "build_tool", "describe_validation_error", "generate_catalog", "model_schemas"]


def describe_validation_error(exc: ValidationError) -> str:
    """Name each bad field and the problem, never the rejected value (the SDK's text echoes it)."""
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        match error["type"]:
            case "missing":
                problem = "required"
            case "extra_forbidden":
                problem = "unknown argument"
            case _:
                problem = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {problem}")
    shown = "; ".join(parts[:8])
    more = f" (and {len(parts) - 8} more)" if len(parts) > 8 else ""
    return f"invalid arguments: {shown}{more}"


class _RawArguments(ArgModelBase):
    """Lets every argument through to the tool's own model, which validates it (see build_tool)."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.__pydantic_extra__ or {})}


@dataclass(frozen=True)
class ToolEntry:
    """What a server needs to list, gate and time a tool without importing its group: the catalog's view."""

    name: str
    group: str
    description: str
    title: str | None
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    exports_credentials: bool
    timeout: float | None
    opt_in: bool
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None

    @property
    def annotations(self) -> ToolAnnotations:
        """The hints that differ from MCP's defaults (not read-only, destructive, not idempotent, open
        world), and none of those the spec says only matter for a tool that writes when it only reads:
        the listing says the same in fewer bytes, every session."""
        hints: dict[str, Any] = {"title": self.title}
        if self.read_only:
            hints["read_only_hint"] = True
        else:
            if not self.destructive:
                hints["destructive_hint"] = False
            if self.idempotent:
                hints["idempotent_hint"] = True
        if not self.open_world:
            hints["open_world_hint"] = False
        return ToolAnnotations(**hints)

    @classmethod
    def from_spec(cls, spec: ToolSpec) -> ToolEntry:
        """The entry as the models say, schemas compacted (this is what tools/catalog.json caches)."""
        input_schema, output_schema = model_schemas(spec)
        hints = spec.hints
        return cls(
            name=spec.name,
            group=spec.group,
            description=spec.description,
            title=hints.title,
            read_only=hints.read_only,
            destructive=hints.destructive,
            idempotent=hints.idempotent,
            open_world=hints.open_world,
            exports_credentials=hints.exports_credentials,
            timeout=hints.timeout,
            opt_in=hints.opt_in,
            input_schema=compact_schema(input_schema),
            output_schema=None if output_schema is None else compact_schema(output_schema),
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def model_schemas(spec: ToolSpec) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The input and output schemas as pydantic and the SDK write them, before compaction."""
    output = FuncMetadata(arg_model=_RawArguments, output_model=spec.output_type).output_schema
    return spec.input_model.model_json_schema(), output


def generate_catalog(groups: list[ToolGroup[Any]]) -> dict[str, Any]:
    """What ``tools/catalog.json`` holds for these groups; ``source`` lets a server notice a group
    edited since (see ``tools.catalog_entries``)."""
    return {
        "groups": {
            group.name: {"description": group.description, "source": source_digest(group.name)} for group in groups
        },
        "tools": {spec.name: ToolEntry.from_spec(spec).as_dict() for group in groups for spec in group.tools},
    }


class _Tool(Tool):
    """The SDK's tool, listed with or without its output schema: structured results are produced and
    checked against the tool's output model either way."""

    publish_output_schema: bool = True

    @cached_property
    def output_schema(self) -> dict[str, Any] | None:
        return self.fn_metadata.output_schema if self.publish_output_schema else None


def build_tool(entry: ToolEntry, runtime: GroupRuntime, *, publish_output_schema: bool = True) -> Tool:
    """The SDK tool: published from the entry; the group's code is resolved on the first call, then
    arguments are validated with the tool's own model (short messages naming fields, never values).

    Without ``publish_output_schema``, ``tools/list`` leaves out the output schema (models read the
    description and input schema; mainstream clients never pass an output schema to the model, and it
    was half of the listing's bytes), while results still carry ``structuredContent`` that the server
    validates against the tool's output model."""
    metadata = FuncMetadata(arg_model=_RawArguments, output_schema=entry.output_schema)

    resolved: list[ToolSpec] = []

    async def call(ctx: Context, arguments: dict[str, Any]) -> Any:
        try:
            if not resolved:
                resolved.append(await runtime.spec(entry.name))
                metadata.output_model = resolved[0].output_type  # read live by the SDK when it converts the result
            spec = resolved[0]
            try:
                args = spec.input_model.model_validate(arguments)
            except ValidationError as exc:
                annotate(exception_type="InvalidArguments")
                raise InvalidArguments(describe_validation_error(exc)) from None
            return await runtime.run(spec, args, ctx)
        except ToolFailure as exc:
            raise ToolError(str(exc)) from None
        except ModuleNotFoundError as exc:
            failure = missing_extra(exc, entry.group)
            if failure is None:
                annotate(exception_type=type(exc).__qualname__)
                raise
            annotate(exception_type=type(failure).__qualname__)
            raise ToolError(str(failure)) from None
        except ToolError:
            raise
        except Exception as exc:
            annotate(exception_type=type(exc).__qualname__)
            raise

    call.__name__ = entry.name
    # Built directly rather than by Tool.from_function, which would derive (and throw away) an
    # argument model and schema from ``call``'s signature.
    return _Tool(
        publish_output_schema=publish_output_schema,
        fn=call,
        name=entry.name,
        title=entry.title,
        description=entry.description,
        parameters=entry.input_schema,
        fn_metadata=metadata,
        is_async=True,
        context_kwarg="ctx",
        annotations=entry.annotations,
    )
