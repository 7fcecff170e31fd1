"""A tool group while the server runs: its code loaded on first use, its backend connected on first use
(or preloaded in the background), reloaded on request, closed at shutdown.

A server lists its tools from ``tools/catalog.json`` and imports a group only when one of its tools
is called (or when it is preloaded). Both the import and ``connect()`` run under a lock, so a call
that arrives while a preload is under way waits for that preload — inside its own span — instead
of starting a second one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import (
    Backend,
    GroupEnvironment,
    MissingExtra,
    TargetClients,
    ToolFailure,
    ToolGroup,
    ToolSpec,
)

__all__ = ["GroupRuntime", "missing_extra"]

logger = logging.getLogger("mcp_ledger.tools")

_OWN_PACKAGES = frozenset({"mcp_ledger"})


def missing_extra(exc: ModuleNotFoundError, group: str) -> MissingExtra | None:
    """The group's optional dependencies are not installed, or None when the missing module is ours (a bug)."""
    name = exc.name or ""
    if not name or name.split(".", 1)[0] in _OWN_PACKAGES:
        return None
    return MissingExtra(group, name)


@dataclass
class _Held:
    """The connected backend and how many calls use it (a retired one is closed when the last ends)."""

    backend: Any
    users: int = 0
    retired: bool = False


class GroupRuntime:
    """One group's code and backend for the server's lifetime."""

    def __init__(
        self,
        name: str,
        environment: GroupEnvironment[Any],
        resolve: Callable[[], ToolGroup[Any]],
    ) -> None:
        """``resolve`` imports the group; it runs in a worker thread on first use."""
        self.name = name
        self.environment = environment
        self._resolve = resolve
        self._group: ToolGroup[Any] | None = None
        self._held: _Held | None = None
        self._load_lock = anyio.Lock()
        self._connect_lock = anyio.Lock()

    async def group(self) -> ToolGroup[Any]:
        if self._group is None:
            async with self._load_lock:
                if self._group is None:
                    # Imports block; in a worker thread they do not hold up other requests.
                    self._group = await anyio.to_thread.run_sync(self._load)
        return self._group

    def _load(self) -> ToolGroup[Any]:
        group = self._resolve()
        for module in group.requires:
            importlib.import_module(module)  # ModuleNotFoundError: the extra is not installed
        return group

    async def spec(self, name: str) -> ToolSpec:
        for spec in (await self.group()).tools:
            if spec.name == name:
                return spec
        raise ToolFailure(f"tool {name} is listed but its group {self.name} no longer defines it")

    async def _connected(self) -> _Held:
        held = self._held
        if held is None:
            group = await self.group()
            async with self._connect_lock:
                held = self._held
                if held is None:
                    backend = await group.connect(self.environment) if group.connect is not None else None
                    held = self._held = _Held(backend)
        return held

    async def backend(self) -> Any:
        """The group's backend, connected on first use (None for a group without one)."""
        return (await self._connected()).backend

    async def run(self, spec: ToolSpec, args: BaseModel, ctx: Any) -> Any:
        """Call the tool function with what it takes: the backend, or the client of the target the call
        names (the default one when it names none). Counted, so that a reload never closes it under the call."""
        held = self._held or await self._connected()
        held.users += 1
        try:
            kind = spec.hints.target
            if kind is None:
                return await spec.fn(args, held.backend, ctx)
            if not isinstance(held.backend, TargetClients):
                raise TypeError(f"group {self.name}: tools with a target need connect() to return TargetClients")
            async with held.backend.lease(getattr(args, kind)) as (name, client):
                annotate(**{kind: name})
                return await spec.fn(args, client, ctx)
        finally:
            held.users -= 1
            if held.retired and held.users == 0:
                await self._close(held.backend)

    async def preload(self) -> None:
        """Load the code and connect the backend (and the default target's client) ahead of the first call.

        Runs in the background from server start; a failure is logged and left to the first call,
        which tries again and reports it in its own span."""
        try:
            backend = await self.backend()
            if isinstance(backend, TargetClients):
                async with backend.lease(None):
                    pass
        except ModuleNotFoundError as exc:
            failure = missing_extra(exc, self.name)
            logger.warning("preloading the %s tools failed: %s", self.name, failure or f"{exc!r}")
        except ToolFailure as exc:
            logger.warning("preloading the %s tools failed: %s", self.name, exc)
        except Exception:
            logger.exception("preloading the %s tools failed", self.name)
        else:
            logger.info("preloaded the %s tools", self.name)

    async def reload(self) -> None:
        """Start again from the configuration: per-target clients are retired, a single backend is
        connected anew on the next call. Calls in flight finish on what they have, which is closed after."""
        held = self._held
        if held is not None and isinstance(held.backend, TargetClients):
            await held.backend.reload()
            return
        async with self._connect_lock:
            held, self._held = self._held, None
        if held is not None:
            held.retired = True
            if held.users == 0:
                await self._close(held.backend)

    async def aclose(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await self._close(held.backend)

    async def _close(self, backend: Backend | None) -> None:
        if backend is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await backend.aclose()
        except Exception:
            logger.exception("closing the %s backend failed", self.name)
