"""The prov backend: read access to the ledger directory; file scans run in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from mcp_ledger import provenance
from mcp_ledger.tools.group import GroupEnvironment, ToolFailure

T = TypeVar("T")


class Ledger:
    """The group's backend: the ledger's one reader, its reads run in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.reader = provenance.Ledger(directory)

    async def aclose(self) -> None:
        """Nothing stays open between calls."""

    async def read(self, question: Callable[[provenance.Ledger], T]) -> T:
        """Ask the reader; a bad parameter is an error result that says what to fix."""
        try:
            return await anyio.to_thread.run_sync(question, self.reader)
        except provenance.QueryError as exc:
            raise ToolFailure(str(exc)) from None


async def connect(environment: GroupEnvironment[Any]) -> Ledger:
    return Ledger(environment.ledger_dir)
