"""A bounded tail of a log stream, for every tool that shows logs (CI job logs, pod logs, …).

Logs are untrusted and unbounded: a tool keeps at most ``tail`` lines (each cut at 4,096 characters)
while it reads, optionally only those that match a pattern, and returns at most ``max_bytes`` of them
with notes that say what was left out and how to get it.

The pattern is an agent's argument, so it may be one that backtracks exponentially (``(a|aa)+$``) on
the lines a log holds: :class:`Grep` matches with the ``regex`` library, whose searches take a
timeout, within one time budget per call, and says to simplify the pattern when it runs out.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import regex

from mcp_ledger.tools.group import ToolFailure

__all__ = ["GREP_SECONDS", "MAX_LINE_CHARS", "Grep", "LogExcerpt", "LogTail", "check_pattern"]

MAX_LINE_CHARS = 4096


# What one call's matching may take in all, on the event loop: long enough for any sane pattern over
# the largest log a tool reads, short enough that a pathological one cannot stall other calls.
GREP_SECONDS = 1.0


def check_pattern(value: str | None) -> str | None:
    """A ``grep`` argument's validator: the pattern must compile, or the caller is told why."""
    if value is not None:
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"not a regular expression ({exc.msg})") from None
    return value


class Grep:
    """An agent's pattern, matched line by line within :data:`GREP_SECONDS` for the whole call."""

    def __init__(self, pattern: str, seconds: float = GREP_SECONDS) -> None:
        self.pattern = pattern
        self._compiled = regex.compile(pattern)
        self._deadline: float | None = None
        self._seconds = seconds

    def search(self, line: str) -> bool:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        try:
            return self._compiled.search(line, timeout=max(self._deadline - now, 0.0)) is not None
        except TimeoutError:
            raise ToolFailure(
                f"grep {self.pattern[:80]!r} took more than {self._seconds:g} s over the log; use a simpler pattern "
                "(no repeated group whose alternatives overlap, such as (a|aa)+) "
                "or narrow the log with since/tail first"
            ) from None


@dataclass
class LogExcerpt:
    """The bounded part of a log that a tool returns."""

    text: str
    lines_total: int
    bytes_total: int
    lines_returned: int
    matches: int | None
    truncated: bool
    notes: list[str] = field(default_factory=list)


class LogTail:
    """Keeps the last ``tail`` lines (or the last ``tail`` lines that match ``grep``) of a stream fed line by
    line, in bounded memory; :meth:`result` cuts them to ``max_bytes`` and says what was left out."""

    def __init__(self, tail: int, grep: Grep | None) -> None:
        self.lines: deque[str] = deque(maxlen=tail)
        self.grep = grep
        self.lines_total = 0
        self.bytes_total = 0
        self.matches = 0
        self.long_lines = 0

    def feed(self, line: str) -> None:
        self.lines_total += 1
        self.bytes_total += len(line.encode()) + 1
        if self.grep is not None:
            if not self.grep.search(line):
                return
            self.matches += 1
        if len(line) > MAX_LINE_CHARS:
            self.long_lines += 1
            line = line[:MAX_LINE_CHARS] + " …[line cut]"
        self.lines.append(f"{self.lines_total}: {line}" if self.grep is not None else line)

    def result(self, max_bytes: int) -> LogExcerpt:
        kept = list(self.lines)
        size = sum(len(line.encode()) + 1 for line in kept)
        dropped_for_bytes = 0
        while kept and size > max_bytes:
            size -= len(kept.pop(0).encode()) + 1
            dropped_for_bytes += 1
        notes: list[str] = []
        selected = self.matches if self.grep is not None else self.lines_total
        if selected > len(kept):
            scope = "matching lines" if self.grep is not None else "lines"
            notes.append(f"showing the last {len(kept)} of {selected} {scope}")
        if dropped_for_bytes:
            notes.append(f"{dropped_for_bytes} earlier lines dropped to stay within max_bytes={max_bytes}")
        if self.long_lines:
            notes.append(f"{self.long_lines} lines longer than {MAX_LINE_CHARS} characters were cut")
        return LogExcerpt(
            text="\n".join(kept),
            lines_total=self.lines_total,
            bytes_total=self.bytes_total,
            lines_returned=len(kept),
            matches=self.matches if self.grep is not None else None,
            truncated=bool(notes),
            notes=notes,
        )
