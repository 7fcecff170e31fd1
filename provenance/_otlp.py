"""The SDK side of OTLP export (the ``otlp`` extra): the export queue, the provider, and backfill from the ledger.

Imported only by :mod:`provenance.otlp` once export starts; see its docstring for what holds.

:class:`ExportQueue` is the batch processor. The SDK's ``BatchSpanProcessor`` drops spans when its
queue is full but does not count them; this one does, and keeps ``on_end`` (which runs inside the
call, on the event loop) to a length check and an append. One daemon thread sends batches: every
``OTEL_BSP_SCHEDULE_DELAY`` ms, or at once when a batch is full. Spans of other instrumentation (an
HTTP client's span under a tool call, the SDK's own spans of other MCP methods) are exported too, with
their attributes, events and status redacted in that thread; the ledger's spans are already.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from mcp_ledger.provenance._query import SpanFilter, iter_spans
from mcp_ledger.provenance._redact import redact_payload, redact_text
from mcp_ledger.provenance.otlp import BackfillReport, StatusFile, _forget

__all__ = ["ExportQueue", "backfill", "ledger_span", "start_live"]

logger = logging.getLogger("mcp_ledger.otlp")

LEDGER_SCOPE = "mcp-ledger"  # the middleware's tracer: its spans are the ledger's, already redacted
_STATUS_EVERY = 1.0  # seconds between status file writes while counts change


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("%s: expected a positive integer; using %d", name, default)
        return default
    return value


def resource(service_version: str) -> Resource:
    """``service.name`` mcp-ledger and the server's version, unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` say otherwise (the service name variable wins over the attribute)."""
    defaults: dict[str, Any] = {SERVICE_NAME: "mcp-ledger", SERVICE_VERSION: service_version}
    return Resource.create({**defaults, **OTELResourceDetector().detect().attributes})


class ExportQueue(SpanProcessor):
    """A batch processor with a bounded queue whose drops are counted (see the module docstring)."""

    def __init__(
        self,
        exporter: SpanExporter,
        status: StatusFile | None = None,
        *,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay: float = 1.0,
    ) -> None:
        self.exporter = exporter
        self.status = status
        self.max_queue = max_queue
        self.batch_size = min(batch_size, max_queue)
        self.delay = delay
        self.exported = 0
        self.dropped = 0
        self.failed = 0
        self._queue: deque[ReadableSpan] = deque()
        self._in_flight = 0
        self._closed = False
        self._wake = threading.Event()
        self._flushes = threading.Condition()
        self._flush_asked = 0
        self._flush_done = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._last_status = 0.0
        self._status_counts: dict[str, int] | None = None

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # Inside every call: no lock, no I/O, no wake-up unless a batch is full.
        if self._closed:
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("OTLP export: the queue is full, spans are dropped (prov_stats counts them)")
            return
        queue.append(span)
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
                self._pid = os.getpid()
                self._queue.clear()
                self._wake = threading.Event()
                self._flushes = threading.Condition()
            self._thread = threading.Thread(target=self._run, name="mcp-ledger-otlp", daemon=True)
            self._thread.start()

    def counts(self) -> dict[str, int]:
        return {
            "exported": self.exported,
            "dropped": self.dropped,
            "failed": self.failed,
            "pending": len(self._queue) + self._in_flight,
        }

    def _run(self) -> None:
        while True:
            self._wake.wait(self.delay)
            self._wake.clear()
            with self._flushes:
                asked = self._flush_asked
            self._drain()
            with self._flushes:
                self._flush_done = max(self._flush_done, asked)
                self._flushes.notify_all()
            self._write_status()
            if self._closed:
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue and not self._closed:
            batch: list[ReadableSpan] = []
            while queue and len(batch) < self.batch_size:
                batch.append(queue.popleft())
            self._in_flight = len(batch)
            try:
                result = self.exporter.export([_scrubbed(span) for span in batch])
            except Exception:  # an exporter must not raise; if one does, the batch is lost all the same
                logger.warning("OTLP export: the exporter failed on a batch of %d spans", len(batch))
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
            self._in_flight = 0

    def _write_status(self, *, closed: bool = False) -> None:
        if self.status is None:
            return
        counts = self.counts()
        now = time.monotonic()
        if not closed and (counts == self._status_counts or now - self._last_status < _STATUS_EVERY):
            return
        self._status_counts, self._last_status = counts, now
        self.status.write(counts, closed=closed)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send everything queued so far; False if that did not finish within the timeout."""
        if self._thread is None or self._closed:
            return not self._queue
        with self._flushes:
            self._flush_asked += 1
            target = self._flush_asked
        self._wake.set()
        with self._flushes:
            return self._flushes.wait_for(lambda: self._flush_done >= target, timeout_millis / 1000)

    def shutdown(self) -> None:
        self.close()

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued (within ``timeout``), then stop; what is still queued counts as dropped."""
        if self._closed:
            return
        self.force_flush(int(timeout * 1000))
        self._closed = True
        self.dropped += len(self._queue)
        self._queue.clear()
        self.exporter.shutdown()  # interrupts the exporter's retries
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._write_status(closed=True)


def _scrubbed(span: ReadableSpan) -> ReadableSpan:
    """The ledger's spans as they are; any other span with its attributes, events and status redacted."""
    scope = span.instrumentation_scope
    if scope is not None and scope.name == LEDGER_SCOPE:
        return span
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description)[0])
    return ReadableSpan(
        name=redact_text(span.name)[0],
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redacted(span.attributes),
        events=[
            Event(redact_text(event.name)[0], _redacted(event.attributes), event.timestamp) for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=scope,
    )


def _redacted(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    redacted = redact_payload(
        {key: list(value) if isinstance(value, tuple) else value for key, value in attributes.items()}
    )[0]
    return {key: tuple(value) if isinstance(value, list) else value for key, value in redacted.items()}


class _Live:
    """A running live export: the queue on the global provider, and the status file."""

    def __init__(self, endpoint: str, queue: ExportQueue) -> None:
        from mcp_ledger.provenance.otlp import display_endpoint

        self.endpoint = display_endpoint(endpoint)
        self.queue = queue
        self.chain = queue.status.path.stem if queue.status is not None else ""

    def counts(self) -> dict[str, Any]:
        return self.queue.counts()

    def flush(self, timeout: float = 5.0) -> bool:
        return self.queue.force_flush(int(timeout * 1000))

    def close(self, timeout: float = 3.0) -> None:
        try:
            self.queue.close(timeout)
        finally:
            _forget(self.chain)


def _exporter(endpoint: str) -> OTLPSpanExporter:
    # Headers, timeout, compression and TLS files come from the OTEL_EXPORTER_OTLP_* variables, read by the exporter.
    return OTLPSpanExporter(endpoint=endpoint)


class _EveryMinute(logging.Filter):
    """The exporter logs every failed batch (each second while a collector is down): one a minute is enough."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[int, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last.get(record.levelno, -60.0) < 60.0:
            return False
        self._last[record.levelno] = now
        return True


_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def start_live(endpoint: str, *, ledger_dir: Path, chain: str, service_version: str) -> _Live:
    environ = os.environ
    exporter_logger = logging.getLogger(_EXPORTER_LOGGER)
    if not any(isinstance(f, _EveryMinute) for f in exporter_logger.filters):
        exporter_logger.addFilter(_EveryMinute())
    queue = ExportQueue(
        _exporter(endpoint),
        StatusFile(ledger_dir, chain, endpoint),
        max_queue=_env_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
        batch_size=_env_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
        delay=_env_int(environ, "OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
    )
    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=resource(service_version))
        otel_trace.set_tracer_provider(provider)
        if otel_trace.get_tracer_provider() is not provider:  # another provider won (set once per process)
            provider = otel_trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.add_span_processor(queue)
    else:
        logger.warning(
            "OTLP export: an OpenTelemetry tracer provider that is not the SDK's is installed; spans go to it instead"
        )
    return _Live(endpoint, queue)


# Backfill: ledger records as the SDK's spans, sent with the same exporter.

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_INT64 = 2**63


def _attribute(value: Any) -> Any:
    """A ledger attribute as an OpenTelemetry one: scalars as they are, a list of scalars as a sequence,
    anything else (an object, a mixed list, a too-large integer) as its JSON text; None leaves it out."""
    if isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, list) and value:
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds <= {bool, str, float, int}:
            return tuple(value)
    if value is None:
        return None
    return orjson.dumps(value).decode()


def ledger_span(record: Mapping[str, Any], resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """One ledger span record as the span the live export would have sent: ids, name, times, status, attributes."""
    trace_id = int(record["trace_id"], 16)
    parent_id = record.get("parent_span_id")
    status = record.get("status") or {}
    attributes = {}
    for key, value in (record.get("attributes") or {}).items():
        converted = _attribute(value)
        if converted is not None:
            attributes[key] = converted
    return ReadableSpan(
        name=str(record.get("name") or "tools/call"),
        context=SpanContext(trace_id, int(record["span_id"], 16), is_remote=False, trace_flags=_SAMPLED),
        parent=SpanContext(trace_id, int(parent_id, 16), is_remote=True, trace_flags=_SAMPLED) if parent_id else None,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR, status.get("message")) if status.get("code") == "ERROR" else Status(),
        start_time=int(record["start_ns"]),
        end_time=int(record["end_ns"]),
        instrumentation_scope=scope,
    )


def _spans(
    directory: Path, span_filter: SpanFilter, resource: Resource, scope: InstrumentationScope
) -> Iterator[ReadableSpan]:
    for record in iter_spans(directory):
        if not span_filter.matches(record):
            continue
        try:
            yield ledger_span(record, resource, scope)
        except (KeyError, TypeError, ValueError):
            continue  # a damaged record: verify reports it


def _batches(spans: Iterator[ReadableSpan], size: int) -> Iterator[Sequence[ReadableSpan]]:
    batch: list[ReadableSpan] = []
    for span in spans:
        batch.append(span)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def backfill(
    directory: Path,
    endpoint: str,
    span_filter: SpanFilter,
    *,
    service_version: str,
    batch_size: int = 512,
    progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    started = time.perf_counter()
    exporter = _exporter(endpoint)
    scope = InstrumentationScope(LEDGER_SCOPE, service_version)
    report = BackfillReport(spans=0, batches=0, seconds=0.0)
    try:
        for batch in _batches(_spans(directory, span_filter, resource(service_version), scope), batch_size):
            if exporter.export(batch) is not SpanExportResult.SUCCESS:
                report.failed_batch = report.batches + 1
                break
            report.batches += 1
            report.spans += len(batch)
            if progress is not None:
                progress(report.spans)
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
        report.seconds = time.perf_counter() - started
    return report
