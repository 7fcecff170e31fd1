"""OTLP export: the ledger's spans to an OpenTelemetry collector over OTLP/HTTP (protobuf), live or from history.

Live (``mcp-ledger serve --otlp-endpoint URL``): :func:`start` installs an OpenTelemetry SDK tracer
provider (or joins the SDK provider already installed) with a batch processor and the OTLP/HTTP
exporter. The provenance middleware already makes each ``tools/call``'s ledger span the OpenTelemetry
span when a provider is installed — same trace and span ids, the record's redacted attributes and
status, the context current while the tool runs (so instrumented HTTP requests nest under it) — so
this module only ships what ends.

Export is best effort and never on a call's path: ending a span appends it to a bounded queue (a
full queue drops it, counted), and one background thread sends batches. A collector that is down or
slow costs the calls nothing; the ledger stays the record of truth. The counts (exported, dropped,
failed, pending) are live in the process (:func:`export_status`) and written about once a second to
``<ledger>/otlp/<chain>.json``, where ``mcp-ledger stats`` and other servers' ``prov_stats`` read them.

Backfill (``mcp-ledger export --format otlp``): :func:`backfill` streams the ledger's spans (filtered
like ``query``) as OTLP batches with the ledger's own ids.

Headers (API keys) are the exporter's business: it reads ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` /
``OTEL_EXPORTER_OTLP_HEADERS`` itself. This module never reads, keeps, logs or writes them, and shows an
endpoint without its user info or query.

The SDK and exporter come with the ``otlp`` extra; this module imports them only when export starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

__all__ = [
    "EXTRA_MISSING",
    "STATUS_DIR",
    "BackfillReport",
    "LiveExport",
    "OtlpError",
    "backfill",
    "display_endpoint",
    "export_status",
    "start",
    "traces_endpoint",
]

logger = logging.getLogger("mcp_ledger.otlp")

EXTRA_MISSING = "not configured: pip install 'mcp-ledger[otlp]' (the OpenTelemetry SDK and its OTLP/HTTP exporter)"
STATUS_DIR = "otlp"  # under the ledger directory: one status file per exporting server (chain)
TRACES_PATH = "/v1/traces"
_STATUS_FILES = 256  # the newest this many are read


class OtlpError(ValueError):
    """An endpoint that cannot be used, or the ``otlp`` extra is not installed; the message says what to fix."""


def _check_url(url: str, source: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise OtlpError(
            f"{source}: expected an http:// or https:// URL of an OTLP/HTTP receiver, such as http://127.0.0.1:4318"
        )
    return url


def traces_endpoint(flag: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The OTLP/HTTP traces URL to send to and the setting that named it, or None (no export).

    Precedence: ``--otlp-endpoint`` (or ``MCP_LEDGER_OTLP_ENDPOINT``, its twin, given here as ``flag``), then
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is, as the OpenTelemetry specification says), then
    ``OTEL_EXPORTER_OTLP_ENDPOINT``. The flag and the generic variable name the receiver's base URL, to
    which ``/v1/traces`` is added (a flag that already ends in ``/v1/traces`` is used as is).
    """
    environ = os.environ if environ is None else environ
    if flag:
        url = _check_url(flag, "--otlp-endpoint")
        return (url if urlsplit(url).path.rstrip("/").endswith(TRACES_PATH) else _with_path(url)), "--otlp-endpoint"
    signal = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        return _check_url(signal, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return _with_path(_check_url(base, "OTEL_EXPORTER_OTLP_ENDPOINT")), "OTEL_EXPORTER_OTLP_ENDPOINT"
    return None


def _with_path(base: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + TRACES_PATH))


def display_endpoint(url: str) -> str:
    """The endpoint as logs, status files and messages show it: no user info, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class LiveExport(Protocol):
    """A running live export (see :func:`start`)."""

    endpoint: str

    def counts(self) -> dict[str, Any]: ...

    def flush(self, timeout: float = 5.0) -> bool: ...

    def close(self, timeout: float = 3.0) -> None: ...


def start(
    endpoint: str,
    *,
    ledger_dir: Path,
    chain: str,
    service_version: str,
) -> LiveExport:
    """Export every span that ends from now on to ``endpoint`` (a traces URL from :func:`traces_endpoint`).

    Installs an SDK tracer provider as the global one, or adds the export to the SDK provider already
    installed (``opentelemetry-instrument``, say). ``chain`` names this server's status file. Raises
    :class:`OtlpError` when the ``otlp`` extra is missing.
    """
    try:
        from mcp_ledger.provenance import _otlp
    except ImportError:
        raise OtlpError(EXTRA_MISSING) from None
    try:
        export = _otlp.start_live(endpoint, ledger_dir=ledger_dir, chain=chain, service_version=service_version)
    except (ImportError, OSError, RuntimeError, TypeError, ValueError) as exc:
        # The exporter reads OTEL_EXPORTER_OTLP_* itself (a credential provider, certificate files): what it
        # refuses stops the start, redacted, in one line.
        from mcp_ledger.provenance._redact import redact_text

        raise OtlpError(f"the OTLP exporter cannot start: {redact_text(str(exc))[0][:300]}") from None
    _live[chain] = export
    return export


@dataclass
class BackfillReport:
    spans: int
    batches: int
    seconds: float
    failed_batch: int | None = None  # the batch the collector did not take; nothing after it was sent

    @property
    def ok(self) -> bool:
        return self.failed_batch is None


def backfill(
    directory: Path,
    endpoint: str,
    *,
    service_version: str,
    batch_size: int = 512,
    progress: Callable[[int], None] | None = None,
    tool: str | None = None,
    group: str | None = None,
    status: str | None = None,
    session: str | None = None,
    trace: str | None = None,
    since: str | None = None,
    until: str | None = None,
    principal: str | None = None,
) -> BackfillReport:
    """Send the ledger's spans that the filters keep (``query``'s: tool, group, status, session, trace, since,
    until, principal) to ``endpoint``, in batches, with their own ids.

    Streams: one segment file and one batch in memory at a time. Stops at the first batch the collector
    does not take (after the exporter's retries). Raises ``QueryError`` for a bad filter and
    :class:`OtlpError` when the extra is missing.
    """
    from mcp_ledger.provenance._query import SpanFilter

    span_filter = SpanFilter.from_params(
        tool=tool,
        group=group,
        status=status,
        session=session,
        trace=trace,
        since=since,
        until=until,
        principal=principal,
    )
    try:
        from mcp_ledger.provenance import _otlp
    except ImportError:
        raise OtlpError(EXTRA_MISSING) from None
    return _otlp.backfill(
        directory, endpoint, span_filter, service_version=service_version, batch_size=batch_size, progress=progress
    )


# The live exports of this process, by chain: export_status shows their counts as they are now.
_live: dict[str, LiveExport] = {}


def _forget(chain: str) -> None:
    _live.pop(chain, None)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusFile:
    """One exporting server's counts in ``<ledger>/otlp/<chain>.json``, replaced whole (never torn)."""

    def __init__(self, ledger_dir: Path, chain: str, endpoint: str) -> None:
        self.path = ledger_dir / STATUS_DIR / f"{chain}.json"
        self.base = {
            "chain": chain,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "endpoint": display_endpoint(endpoint),
            "started": _now_iso(),
        }
        self._lock = threading.Lock()
        self._warned = False

    def write(self, counts: Mapping[str, Any], *, closed: bool = False) -> None:
        status = {**self.base, **counts, "closed": closed, "updated": _now_iso()}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary.write_bytes(orjson.dumps(status, option=orjson.OPT_SORT_KEYS))
                os.replace(temporary, self.path)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning("OTLP export: cannot write its status file %s: %s", self.path, exc.strerror or exc)


_COUNTS = ("exported", "dropped", "failed", "pending")


def export_status(directory: Path) -> dict[str, Any] | None:
    """OTLP export counts of every server that exported from this ledger directory, or None if none did.

    Per server (``chain``): spans ``exported``, ``dropped`` (the queue was full), ``failed`` (the collector
    did not take their batch), ``pending`` (queued), since that server started; ``closed`` once it stopped,
    and ``state``: ``running``, ``stopped``, or ``gone`` (a process of this host that ended without stopping:
    killed, its last numbers kept).
    This process's own exports are read live, the others from their status files (at most about a second
    old). The totals add them up.
    """
    writers: dict[str, dict[str, Any]] = {}
    folder = Path(directory) / STATUS_DIR
    try:
        paths = sorted(folder.glob("*.json"), key=_mtime, reverse=True)[:_STATUS_FILES]
    except OSError:
        paths = []
    for path in paths:
        try:
            status = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(status, dict) and isinstance(status.get("chain"), str):
            writers[status["chain"]] = {key: status.get(key) for key in (*_STATUS_KEYS, *_COUNTS)}
    for chain, export in list(_live.items()):
        entry = writers.setdefault(chain, {"chain": chain, "pid": os.getpid(), "endpoint": export.endpoint})
        entry.update(export.counts(), closed=False, updated=_now_iso())
    if not writers:
        return None
    host = socket.gethostname()
    for entry in writers.values():
        entry["state"] = _state(entry, host)
    listed = sorted(writers.values(), key=lambda w: str(w.get("updated") or ""), reverse=True)
    totals = {key: sum(int(w.get(key) or 0) for w in listed) for key in _COUNTS}
    return {**totals, "servers": listed}


_STATUS_KEYS = ("chain", "pid", "host", "endpoint", "started", "updated", "closed")


def _state(entry: Mapping[str, Any], host: str) -> str:
    if entry.get("closed"):
        return "stopped"
    pid = entry.get("pid")
    if entry.get("host") == host and isinstance(pid, int) and pid > 0 and not _alive(pid):
        return "gone"
    return "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
