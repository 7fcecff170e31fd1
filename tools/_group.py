"""The tool-group interface: what one module contributes — its tools, its settings, its backend.

A group module reads top to bottom: input/output models, then tool functions, then ``register()``
returning a :class:`ToolGroup`. A tool function has the shape::

    async def docker_container_list(args: ContainerListArgs, backend: DockerBackend, ctx: Context) -> ContainerList

``args`` is validated with the tool's own pydantic model (failures become short messages that name
the field and the problem — never the rejected value); ``backend`` is the group's client, connected
lazily on first use; ``ctx`` is the SDK's request context (progress, request ``_meta``).

Failures a user can act on are raised as :class:`ToolFailure` subclasses; their message reaches the
agent. Anything else is an internal error: its text stays on the server.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, get_type_hints

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from provenance import annotate

__all__ = [
    "GroupEnvironment",
    "GroupRuntime",
    "GroupSettings",
    "InvalidArguments",
    "NoSettings",
    "NotConfigured",
    "ToolEntry",
    "ToolFailure",
    "ToolGroup",
    "ToolModel",
    "ToolSpec",
    "UpstreamError",
]

logger = logging.getLogger("mcp_ledger.tools")

BackendT = TypeVar("BackendT")


class ToolFailure(ToolError):
    """A failure the agent can act on; the message says what went wrong and what to do next."""


class InvalidArguments(ToolFailure):
    """The arguments do not fit the tool's input model."""


class NotConfigured(ToolFailure):
    """The group's backend is not configured; the message names what to set."""

    def __init__(self, what_to_set: str) -> None:
        super().__init__(f"not configured: set {what_to_set}")


class UpstreamError(ToolFailure):
    """The upstream refused or failed the request (not found, unauthorized, unreachable, …)."""


class ToolModel(BaseModel):
    """Base for tool input and output models. Validators are built on first use, not at import:
    a server that offers many tools starts as fast as one that offers a few."""

    model_config = ConfigDict(defer_build=True)


class GroupSettings(BaseModel):
    """Base for a group's settings. Each field becomes ``--<group>-<field>`` with the environment
    twin ``MCP_LEDGER_<GROUP>_<FIELD>``; the field's description is its help text."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(GroupSettings):
    pass


@dataclass(frozen=True)
class GroupEnvironment:
    """What a group's backend is built from."""

    settings: GroupSettings
    ledger_dir: Path


ToolFn = Callable[[Any, Any, Context], Awaitable[Any]]
Connect = Callable[[GroupEnvironment], Awaitable[Any]]


class _Hinted(Protocol):
    @property
    def title(self) -> str | None: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def destructive(self) -> bool: ...
    @property
    def idempotent(self) -> bool: ...
    @property
    def open_world(self) -> bool: ...


def _annotations(tool: _Hinted) -> ToolAnnotations:
    """Every hint explicit: MCP's default for a tool that is not read-only is destructive."""
    return ToolAnnotations(
        title=tool.title,
        read_only_hint=tool.read_only,
        destructive_hint=tool.destructive,
        idempotent_hint=tool.idempotent,
        open_world_hint=tool.open_world,
    )


@dataclass(frozen=True)
class ToolSpec:
    """One tool, defined in one place: schema, description, annotations and handler together."""

    name: str
    group: str
    fn: ToolFn
    description: str
    input_model: type[BaseModel]
    output_type: Any
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    title: str | None = None
    exports_credentials: bool = False

    @property
    def annotations(self) -> ToolAnnotations:
        return _annotations(self)


@dataclass
class ToolGroup:
    """A toolset: its name (the tool-name prefix), tools, settings model and backend factory."""

    name: str
    description: str
    settings: type[GroupSettings] = NoSettings
    connect: Connect | None = None
    tools: list[ToolSpec] = field(default_factory=list)

    def add(
        self,
        fn: ToolFn,
        *,
        read_only: bool,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = True,
        title: str | None = None,
        exports_credentials: bool = False,
    ) -> None:
        """Add a tool; its name is the function's, its description the docstring's."""
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) != 3 or "return" not in hints:
            raise TypeError(f"{fn.__name__}: a tool is `async def f(args: Model, backend, ctx) -> Output`")
        input_model = hints[params[0]]
        if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
            raise TypeError(f"{fn.__name__}: the first parameter must be annotated with a pydantic model")
        output = hints["return"]
        if not (isinstance(output, type) and issubclass(output, BaseModel)):
            raise TypeError(f"{fn.__name__}: a tool returns a pydantic model (its structured output)")
        name = fn.__name__
        if not name.startswith(f"{self.name}_"):
            raise ValueError(f"{name}: tools of group {self.name!r} are named {self.name}_<noun>_<verb>")
        if read_only and destructive:
            raise ValueError(f"{name}: a read-only tool cannot be destructive")
        self.tools.append(
            ToolSpec(
                name=name,
                group=self.name,
                fn=fn,
                description=inspect.cleandoc(fn.__doc__ or ""),
                input_model=input_model,
                output_type=output,
                read_only=read_only,
                destructive=destructive,
                idempotent=idempotent,
                open_world=open_world,
                title=title,
                exports_credentials=exports_credentials,
            )
        )


class GroupRuntime(Generic[BackendT]):
    """A group's backend while the server runs: connected on first use, closed at shutdown.

    The group itself (its module, models and functions) is resolved on first use too: a server
    lists its tools from ``tools/catalog.json`` and imports a group only when one of its tools is
    called.
    """

    def __init__(self, name: str, environment: GroupEnvironment, resolve: Callable[[], ToolGroup]) -> None:
        self.name = name
        self.environment = environment
        self._resolve = resolve
        self._group: ToolGroup | None = None
        self._backend: Any = None
        self._lock = anyio.Lock()

    @property
    def group(self) -> ToolGroup:
        if self._group is None:
            self._group = self._resolve()
        return self._group

    def spec(self, name: str) -> ToolSpec:
        for spec in self.group.tools:
            if spec.name == name:
                return spec
        raise ToolFailure(f"tool {name} is listed but its group {self.name} no longer defines it")

    async def backend(self) -> Any:
        if self.group.connect is None:
            return None
        if self._backend is None:
            async with self._lock:
                if self._backend is None:
                    self._backend = await self.group.connect(self.environment)
        return self._backend

    async def aclose(self) -> None:
        backend, self._backend = self._backend, None
        close = getattr(backend, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                logger.exception("closing the %s backend failed", self.name)


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
    """What a server needs to list and gate a tool without importing its group: the catalog's view."""

    name: str
    group: str
    description: str
    title: str | None
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    exports_credentials: bool
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None

    @property
    def annotations(self) -> ToolAnnotations:
        return _annotations(self)

    @classmethod
    def from_spec(cls, spec: ToolSpec) -> ToolEntry:
        """The entry as the models say (this is what tools/catalog.json caches)."""
        output = FuncMetadata(arg_model=_RawArguments, output_model=spec.output_type).output_schema
        return cls(
            name=spec.name,
            group=spec.group,
            description=spec.description,
            title=spec.title,
            read_only=spec.read_only,
            destructive=spec.destructive,
            idempotent=spec.idempotent,
            open_world=spec.open_world,
            exports_credentials=spec.exports_credentials,
            input_schema=spec.input_model.model_json_schema(),
            output_schema=output,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_tool(entry: ToolEntry, runtime: GroupRuntime[Any]) -> Tool:
    """The SDK tool: published from the entry; the group's code is resolved on the first call, then
    arguments are validated with the tool's own model (short messages naming fields, never values)."""
    metadata = FuncMetadata(arg_model=_RawArguments, output_schema=entry.output_schema)

    async def call(ctx: Context, arguments: dict[str, Any]) -> Any:
        spec = runtime.spec(entry.name)
        if metadata.output_model is None:
            metadata.output_model = spec.output_type  # read live by the SDK when it converts the result
        try:
            args = spec.input_model.model_validate(arguments)
        except ValidationError as exc:
            annotate(exception_type="InvalidArguments")
            raise InvalidArguments(describe_validation_error(exc)) from None
        try:
            return await spec.fn(args, await runtime.backend(), ctx)
        except ToolError:
            raise
        except Exception as exc:
            annotate(exception_type=type(exc).__qualname__)
            raise

    call.__name__ = entry.name
    # Built directly rather than by Tool.from_function, which would derive (and throw away) an
    # argument model and schema from ``call``'s signature.
    return Tool(
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
