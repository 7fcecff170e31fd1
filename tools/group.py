"""The tool-group interface: what a group module declares — its tools, its settings, its backend.

A group is a package of one shape::

    tools/<group>/__init__.py   settings (``SETTINGS``) and a lazy ``register()``; imports nothing heavy
    tools/<group>/<domain>.py   input/output models, then the tool functions, each declared with @tool
    tools/<group>/_backend.py   the client the tools use, built by ``connect()`` on first use

A tool is declared where it is written::

    @tool(read_only=True, idempotent=True, open_world=False)
    async def docker_container_list(args: ContainerListArgs, engine: DockerEngine, ctx: Context) -> ContainerList:
        \"\"\"The description agents read.\"\"\"

``args`` is validated with the tool's own model (a :class:`ToolArgs`); failures become short messages
that name the field and the problem, never the rejected value. ``engine`` is the group's backend,
connected lazily on first use — or, for a tool declared with ``target=``, the client of the target
the call names (see :class:`TargetClients`). ``ctx`` is the SDK's request context (progress, ``_meta``).

Failures a user can act on are raised as :class:`ToolFailure` subclasses; their message reaches the
agent. Anything else is an internal error: its text stays on the server.

This module is imported to read a group's settings before any tool loads (``mcp-ledger serve
--help``): it imports pydantic and the standard library only.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from mcp_ledger.tools._targets import TargetClients, TargetSource
from mcp_ledger.tools._worker import Abandoned, WorkerCall, abandoned_workers, run_in_worker

__all__ = [
    "Abandoned",
    "Backend",
    "GroupEnvironment",
    "GroupSettings",
    "InvalidArguments",
    "MissingExtra",
    "NoSettings",
    "NotConfigured",
    "TargetClients",
    "TargetKind",
    "TargetSource",
    "ToolArgs",
    "ToolFailure",
    "ToolGroup",
    "ToolHints",
    "ToolModel",
    "ToolSpec",
    "UpstreamError",
    "WorkerCall",
    "abandoned_workers",
    "run_in_worker",
    "tool",
]


class ToolFailure(Exception):
    """A failure the agent can act on; the message says what went wrong and what to do next."""


class InvalidArguments(ToolFailure):
    """The arguments do not fit the tool's input model."""


class NotConfigured(ToolFailure):
    """The group's backend is not configured; the message names what to set."""

    def __init__(self, what_to_set: str) -> None:
        super().__init__(f"not configured: set {what_to_set}")


class MissingExtra(NotConfigured):
    """The group's third-party dependencies are not installed (an optional extra of the package)."""

    def __init__(self, group: str, module: str) -> None:
        ToolFailure.__init__(
            self, f"not configured: pip install 'mcp-ledger[{group}]' (the {group} tools need {module}, not installed)"
        )


class UpstreamError(ToolFailure):
    """The upstream refused or failed the request (not found, unauthorized, unreachable, …)."""


class ToolModel(BaseModel):
    """Base for tool input and output models. Validators are built on first use, not at import:
    a server that offers many tools starts as fast as one that offers a few."""

    model_config = ConfigDict(defer_build=True)


class ToolArgs(ToolModel):
    """Base for a tool's input model: an argument the model does not name is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class GroupSettings(BaseModel):
    """Base for a group's settings. Each field becomes ``--<group>-<field>`` with the environment
    twin ``MCP_LEDGER_<GROUP>_<FIELD>``; the field's description is its help text."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(GroupSettings):
    pass


SettingsT = TypeVar("SettingsT", bound=GroupSettings, covariant=True)


@dataclass(frozen=True)
class GroupEnvironment(Generic[SettingsT]):
    """What a group's backend is built from."""

    settings: SettingsT
    ledger_dir: Path


class Backend(Protocol):
    """What a group's ``connect()`` returns: its client(s), closed once at server shutdown."""

    async def aclose(self) -> None: ...


BackendT = TypeVar("BackendT", bound="Backend | None")
FnT = TypeVar("FnT", bound=Callable[..., Awaitable[Any]])

# A target is the upstream a call runs against when a group talks to several of one kind.
TargetKind = Literal["context", "endpoint"]
TARGET_DESCRIPTIONS: dict[str, str] = {
    "context": "Kubernetes context from the kubeconfig; default: the current context",
    "endpoint": "Inference endpoint name; default: the configured default endpoint",
}


@dataclass(frozen=True)
class ToolHints:
    """How a tool behaves, declared with it: annotations for clients, and what the server enforces."""

    read_only: bool
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = True
    title: str | None = None
    # Read-only tools that could hand out credentials (a kubeconfig, a token) are hidden by --read-only.
    exports_credentials: bool = False
    # Seconds before a call is stopped; None: the server's --call-timeout.
    timeout: float | None = None
    # The tool takes this target parameter; it receives that target's client instead of the backend.
    target: TargetKind | None = None
    # Listed and callable only when named with --tools, even when its toolset is on: rarely used tools
    # stay out of every session's tools/list (the schema budget) until an operator asks for them.
    opt_in: bool = False


_HINTS_ATTRIBUTE = "__mcp_ledger_tool__"


def tool(
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = True,
    title: str | None = None,
    exports_credentials: bool = False,
    timeout: float | None = None,
    target: TargetKind | None = None,
    opt_in: bool = False,
) -> Callable[[FnT], FnT]:
    """Declare a tool function: its name is the function's, its description the docstring's.

    Every hint is sent explicitly: MCP's default for a tool that is not read-only is destructive."""
    if read_only and destructive:
        raise ValueError("a read-only tool cannot be destructive")
    if timeout is not None and not timeout > 0:
        raise ValueError("timeout: seconds, more than 0")
    if target is not None and target not in TARGET_DESCRIPTIONS:
        raise ValueError(f"target: one of {', '.join(TARGET_DESCRIPTIONS)}")
    hints = ToolHints(
        read_only, destructive, idempotent, open_world, title, exports_credentials, timeout, target, opt_in
    )

    def declare(fn: FnT) -> FnT:
        setattr(fn, _HINTS_ATTRIBUTE, hints)
        return fn

    return declare


@dataclass(frozen=True)
class ToolSpec:
    """One tool as its group defines it: schema, description, hints and handler together."""

    name: str
    group: str
    fn: Callable[..., Awaitable[Any]]
    description: str
    input_model: type[BaseModel]
    output_type: type[BaseModel]
    hints: ToolHints

    @property
    def read_only(self) -> bool:
        return self.hints.read_only

    @property
    def destructive(self) -> bool:
        return self.hints.destructive

    @property
    def exports_credentials(self) -> bool:
        return self.hints.exports_credentials

    @property
    def opt_in(self) -> bool:
        return self.hints.opt_in


def _resolved(fn: Callable[..., Any], annotation: Any) -> Any:
    """A parameter's annotation, evaluated (modules use ``from __future__ import annotations``)."""
    if isinstance(annotation, str):
        return eval(annotation, getattr(fn, "__globals__", {}))  # the module's own source text
    return annotation


def _with_target(model: type[BaseModel], kind: TargetKind) -> type[BaseModel]:
    """The model plus the target parameter, added once here rather than written into every schema."""
    if kind in model.model_fields:
        raise TypeError(f"{model.__name__} already has a field {kind!r}; the target parameter is added for you")
    target_field: Any = (
        str | None,
        Field(default=None, description=TARGET_DESCRIPTIONS[kind], min_length=1, max_length=253),
    )
    derived: type[BaseModel] = create_model(
        model.__name__, __base__=model, __module__=model.__module__, **{kind: target_field}
    )
    return derived


@dataclass
class ToolGroup(Generic[BackendT]):
    """A toolset: its name (the tool-name prefix), tools, settings model and backend factory."""

    name: str
    description: str
    settings: type[GroupSettings] = NoSettings
    connect: Callable[[GroupEnvironment[Any]], Awaitable[BackendT]] | None = None
    # Third-party modules the group needs (its extra, ``mcp-ledger[<name>]``): imported, in a worker
    # thread, when the group first loads, so that a missing one is reported as such.
    requires: tuple[str, ...] = ()
    tools: list[ToolSpec] = field(default_factory=list)

    def add(self, fn: Callable[..., Awaitable[Any]]) -> None:
        """Add a function declared with :func:`tool`."""
        hints: ToolHints | None = getattr(fn, _HINTS_ATTRIBUTE, None)
        name = getattr(fn, "__name__", repr(fn))
        if hints is None:
            raise TypeError(f"{name}: declare the tool with @tool(read_only=…, …) where it is written")
        params = list(inspect.signature(fn).parameters.values())
        annotations = getattr(fn, "__annotations__", {})
        if len(params) != 3 or "return" not in annotations:
            raise TypeError(f"{name}: a tool is `async def f(args: Model, backend, ctx: Context) -> Output`")
        input_model = _resolved(fn, params[0].annotation)
        if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
            raise TypeError(f"{name}: the first parameter must be annotated with a pydantic model")
        output = _resolved(fn, annotations["return"])
        if not (isinstance(output, type) and issubclass(output, BaseModel)):
            raise TypeError(f"{name}: a tool returns a pydantic model (its structured output)")
        if not name.startswith(f"{self.name}_"):
            raise ValueError(f"{name}: tools of group {self.name!r} are named {self.name}_<noun>_<verb>")
        if hints.target is not None:
            input_model = _with_target(input_model, hints.target)
        self.tools.append(
            ToolSpec(
                name=name,
                group=self.name,
                fn=fn,
                description=inspect.cleandoc(fn.__doc__ or ""),
                input_model=input_model,
                output_type=output,
                hints=hints,
            )
        )

    def add_module(self, module: ModuleType) -> None:
        """Add every tool declared in a module, in the order they are written."""
        for value in vars(module).values():
            if getattr(value, "__module__", None) == module.__name__ and hasattr(value, _HINTS_ATTRIBUTE):
                self.add(value)
