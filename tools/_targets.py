"""One client per target — a Kubernetes context, an inference endpoint — created on first use.

A group that talks to several upstreams of one kind returns :class:`TargetClients` from
``connect()`` and declares its tools with ``@tool(target="context")`` (or ``"endpoint"``): the tool's
schema gains that optional parameter, and the tool function receives the client of the target the
call names (the default one when it names none). The span records which target it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio

__all__ = ["TargetClients", "TargetSource"]

ClientT = TypeVar("ClientT")


class TargetSource(Protocol[ClientT]):
    """How a group finds its targets and opens a client for one."""

    async def default_target(self) -> str:
        """The target of a call that names none (the kubeconfig's current context, say)."""
        ...

    async def open(self, target: str) -> ClientT:
        """A client for the target; raise NotConfigured (naming the known targets) for an unknown one."""
        ...

    async def close(self, client: ClientT) -> None: ...


@dataclass
class _Client(Generic[ClientT]):
    client: ClientT
    leases: int = 0
    retired: bool = False


class TargetClients(Generic[ClientT]):
    """The clients of one group, one per target, each opened once and shared by every call naming it.

    :meth:`reload` retires them all (after a kubeconfig change, say): calls in flight finish on the
    client they hold, which is closed after the last of them; later calls open new clients."""

    def __init__(self, source: TargetSource[ClientT]) -> None:
        self.source = source
        self._clients: dict[str, _Client[ClientT]] = {}
        self._locks: dict[str, anyio.Lock] = {}

    @property
    def opened(self) -> list[str]:
        """The targets that have a client now."""
        return sorted(self._clients)

    @asynccontextmanager
    async def lease(self, target: str | None) -> AsyncIterator[tuple[str, ClientT]]:
        """``(target name, client)`` for the length of one call."""
        name = target or await self.source.default_target()
        held = await self._client(name)
        held.leases += 1
        try:
            yield name, held.client
        finally:
            held.leases -= 1
            if held.retired and held.leases == 0:
                await self._close(held)

    async def _client(self, name: str) -> _Client[ClientT]:
        held = self._clients.get(name)
        if held is None:
            lock = self._locks.setdefault(name, anyio.Lock())
            try:
                async with lock:  # two first calls for one target open one client
                    held = self._clients.get(name)
                    if held is None:
                        held = self._clients[name] = _Client(await self.source.open(name))
            finally:
                # A name that opened nothing (an agent's unknown target, say) keeps no lock: the table
                # holds only targets that have clients, whatever names callers send.
                if name not in self._clients and lock.statistics().tasks_waiting == 0 and not lock.locked():
                    self._locks.pop(name, None)
        return held

    async def reload(self) -> None:
        """Retire every client; each is closed once no call holds it."""
        retired, self._clients = list(self._clients.values()), {}
        for held in retired:
            held.retired = True
            if held.leases == 0:
                await self._close(held)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for held in clients:
            await self._close(held)

    async def _close(self, held: _Client[ClientT]) -> None:
        with anyio.CancelScope(shield=True):
            await self.source.close(held.client)
