"""Which tools a server offers: toolsets, single tools, exclusions, then read-only and destructive
filters — all derived from each tool's annotations, never from a hand-kept list.

An opt-in tool (``@tool(opt_in=True)``) is offered only when ``--tools`` names it, even when its toolset
is on; the read-only and destructive filters still apply to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["ALWAYS_ON", "GatingError", "opt_in_tools", "select_tools"]


class _Tool(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def destructive(self) -> bool: ...
    @property
    def exports_credentials(self) -> bool: ...
    @property
    def opt_in(self) -> bool: ...


ToolT = TypeVar("ToolT", bound=_Tool)
ToolT_co = TypeVar("ToolT_co", bound=_Tool, covariant=True)


class _Group(Protocol[ToolT_co]):
    @property
    def name(self) -> str: ...
    @property
    def tools(self) -> Sequence[ToolT_co]: ...


ALWAYS_ON = "prov"


class GatingError(ValueError):
    """A toolset or tool name in the flags does not exist."""


def select_tools(
    groups: Sequence[_Group[ToolT]],
    *,
    toolsets: Sequence[str] | None = None,
    tools: Sequence[str] = (),
    exclude_tools: Sequence[str] = (),
    read_only: bool = False,
    allow_destructive: bool = False,
) -> list[ToolT]:
    known_groups = {group.name for group in groups}
    by_name = {spec.name: spec for group in groups for spec in group.tools}
    for flag, names, known in (
        ("--toolsets", toolsets or (), known_groups),
        ("--tools", tools, by_name),
        ("--exclude-tools", exclude_tools, by_name),
    ):
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise GatingError(f"{flag}: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    enabled_groups = known_groups if toolsets is None else {*toolsets, ALWAYS_ON}
    selected = []
    for group in groups:
        for spec in group.tools:
            wanted = spec.name in tools or (group.name in enabled_groups and not spec.opt_in)
            if not wanted or spec.name in exclude_tools:
                continue
            if read_only and (not spec.read_only or spec.exports_credentials):
                continue
            if spec.destructive and (not allow_destructive or read_only):
                continue
            selected.append(spec)
    return selected


def opt_in_tools(groups: Sequence[_Group[ToolT]]) -> list[str]:
    """The names of the opt-in tools: ``--tools`` with these offers every tool (regenerate, the tests)."""
    return [spec.name for group in groups for spec in group.tools if spec.opt_in]
