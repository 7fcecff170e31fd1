"""Docker containers: list, inspect, logs, stats; start, stop, restart, run, remove.

Container environment values never leave the server: results show names only, and engine errors
that quote a value (runc quotes a bad KEY=VALUE whole) are scrubbed before they reach the agent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field, field_validator

from mcp_ledger import provenance
from mcp_ledger.tools._logtail import Grep, check_pattern
from mcp_ledger.tools._time import time_ns
from mcp_ledger.tools.docker._backend import DockerEngine, NotFound
from mcp_ledger.tools.docker._binds import check_mounted_binds, resolve_binds
from mcp_ledger.tools.docker._presentation import (
    LABELS_NOTE,
    Cursor,
    Limit,
    cut,
    iso_time,
    keyset_page,
    shown_env,
    shown_labels,
)
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolFailure, ToolModel, UpstreamError, tool

ContainerRef = Field(description="Container id, unique id prefix, or name", min_length=1, max_length=256)
TimeArg = Field(
    default=None,
    max_length=64,
    description="ISO-8601 time (no offset = UTC), a Unix timestamp, or an age such as 30s, 15m, 2h, 7d",
)


ContainerStatus = Literal["created", "restarting", "running", "removing", "paused", "exited", "dead"]


class ContainerListArgs(ToolArgs):
    all: bool = Field(default=False, description="Include stopped containers (default: running only)")
    name: str | None = Field(default=None, max_length=256, description="Only names containing this text")
    label: list[str] = Field(
        default_factory=list, max_length=16, description="Only with these labels: key or key=value"
    )
    status: ContainerStatus | None = Field(default=None, description="Only containers in this state (implies all)")
    ancestor: str | None = Field(
        default=None, max_length=512, description="Only containers of this image (or its children)"
    )
    failed_only: bool = Field(
        default=False, description="Only exited or restarting containers whose last exit code is non-zero (implies all)"
    )
    exited_since: str | None = Field(
        default=None,
        max_length=64,
        description="Only containers that last stopped at or after this time: ISO-8601, Unix seconds, "
        "or an age such as 1h (implies all)",
    )
    limit: int = Limit
    cursor: str | None = Cursor


class ContainerSummary(ToolModel):
    id: str
    name: str
    image: str
    image_id: str
    command: str
    created: str = Field(description="ISO-8601, UTC")
    state: str
    status: str = Field(description="The engine's human status, e.g. 'Exited (1) 5 minutes ago'")
    exit_code: int | None = Field(description="The last exit code of an exited, restarting or dead container")
    finished_at: str | None = Field(
        description="When an exited, restarting or dead container last stopped (ISO-8601, UTC); "
        "the engine has it only in inspect, so each such container on this page is inspected"
    )
    labels: dict[str, str] = Field(description=LABELS_NOTE)


class ContainerList(ToolModel):
    containers: list[ContainerSummary] = Field(description="Newest first")
    total: int = Field(description="Containers matching the filters, on all pages")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class ContainerArgs(ToolArgs):
    container: str = ContainerRef


class ContainerState(ToolModel):
    status: str
    running: bool
    paused: bool
    restarting: bool
    oom_killed: bool
    dead: bool
    pid: int
    exit_code: int
    error: str = Field(description="The engine's last error for it, environment values removed")
    started_at: str | None
    finished_at: str | None
    health: str | None


class ContainerDetails(ToolModel):
    id: str
    name: str
    image: str = Field(description="The image reference the container was created from")
    image_id: str
    created: str
    state: ContainerState
    restart_count: int
    command: list[str] = Field(description="At most 256 arguments, each cut at 4096 characters (ending in …)")
    entrypoint: list[str]
    env: list[str] = Field(description="KEY=[REDACTED]: names kept, values redacted (at most 256)")
    labels: dict[str, str] = Field(description=LABELS_NOTE)
    working_dir: str
    user: str
    tty: bool
    network_mode: str
    networks: list[str]
    restart_policy: str
    auto_remove: bool
    privileged: bool
    memory_limit_bytes: int
    nano_cpus: int
    mounts: list[dict[str, Any]] = Field(description="Type, source, destination, mode, rw")


class ContainerLogsArgs(ToolArgs):
    container: str = ContainerRef
    tail: int = Field(default=100, ge=1, le=10_000, description="Last lines to return (after grep)")
    since: str | None = TimeArg
    until: str | None = TimeArg
    timestamps: bool = Field(default=False, description="Prefix each line with its RFC 3339 timestamp")
    stdout: bool = Field(default=True, description="Include stdout")
    stderr: bool = Field(default=True, description="Include stderr")
    grep: str | None = Field(
        default=None, max_length=256, description="Only lines matching this regular expression (Python syntax)"
    )
    max_bytes: int = Field(default=65_536, ge=256, le=1_048_576, description="Most bytes of log text to return")

    @field_validator("grep")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return check_pattern(value)


class LogLine(ToolModel):
    stream: Literal["stdout", "stderr"]
    text: str


class ContainerLogs(ToolModel):
    container_id: str
    container_name: str
    lines: list[LogLine] = Field(description="Oldest first")
    truncated: bool = Field(description="True when lines were left out (see note)")
    note: str | None = Field(description="What was left out and how to see it")


class ContainerStatsArgs(ToolArgs):
    container: str = ContainerRef


class ContainerStats(ToolModel):
    container_id: str
    container_name: str
    read_at: str
    running: bool
    cpu_percent: float = Field(description="Over the engine's ~1 s sample; 100 = one full CPU")
    online_cpus: int
    memory_usage_bytes: int = Field(description="Without the page cache, like `docker stats`")
    memory_limit_bytes: int
    memory_percent: float
    network_rx_bytes: int
    network_tx_bytes: int
    block_read_bytes: int
    block_write_bytes: int
    pids: int


class ContainerStopArgs(ToolArgs):
    container: str = ContainerRef
    timeout_seconds: int = Field(default=10, ge=0, le=300, description="Seconds to wait before killing the container")


class ContainerChange(ToolModel):
    id: str
    name: str
    changed: bool = Field(description="False when the container already was in the wanted state")
    state: ContainerState


class ContainerRunArgs(ToolArgs):
    image: str = Field(description="A local image (pull it first with docker_image_pull)", min_length=1, max_length=512)
    command: list[str] | None = Field(default=None, max_length=256, description="Command and arguments (exec form)")
    entrypoint: list[str] | None = Field(default=None, max_length=64)
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment; values are kept out of results, errors, output and the ledger",
    )
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
    labels: dict[str, str] = Field(default_factory=dict)
    detach: bool = Field(default=True, description="Return once started; false waits for the exit (timeout_seconds)")
    auto_remove: bool = Field(default=False, description="Remove the container when it exits")
    network: str | None = Field(
        default=None, max_length=128, description="none, host, or a network name (default: the engine's)"
    )
    cpus: float | None = Field(default=None, gt=0, le=1024, description="CPU limit, e.g. 0.5")
    memory_bytes: int | None = Field(default=None, ge=6 * 1024 * 1024, description="Memory limit in bytes")
    working_dir: str | None = Field(default=None, max_length=1024)
    user: str | None = Field(default=None, max_length=128)
    timeout_seconds: float = Field(default=60, gt=0, le=3600, description="When not detached: wait at most this long")
    max_bytes: int = Field(default=65_536, ge=256, le=1_048_576, description="When not detached: most output bytes")
    binds: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="HOST_PATH:CONTAINER_PATH[:ro|rw], read-only by default; host paths only where the operator "
        "allowed (--docker-allow-binds), no symbolic links, rw only with --docker-allow-bind-writes",
    )
    privileged: bool = Field(default=False, description="Refused: privileged containers are not offered")
    cap_add: list[str] = Field(default_factory=list, max_length=16, description="Refused: added capabilities")
    pid_mode: str | None = Field(default=None, max_length=64, description="Refused when 'host'")
    ipc_mode: str | None = Field(default=None, max_length=64, description="Refused when 'host'")


class ContainerRun(ToolModel):
    id: str
    name: str
    image_id: str
    detached: bool
    status: str
    exit_code: int | None = Field(description="Null while the container runs")
    timed_out: bool = Field(description="True when it was still running after timeout_seconds (it keeps running)")
    removed: bool
    output: list[LogLine] = Field(description="When not detached: the container's output, oldest first")
    truncated: bool
    note: str | None


class ContainerRemoveArgs(ToolArgs):
    container: str = ContainerRef
    force: bool = Field(default=False, description="Kill a running container first")
    volumes: bool = Field(default=False, description="Also remove its anonymous volumes")


class ContainerRemoval(ToolModel):
    id: str
    name: str
    removed: bool


def _optional_time(value: Any) -> str | None:
    text = iso_time(value)
    return None if not text or text.startswith("0001-01-01") else text


def _time_ns(value: str, name: str) -> int:
    """ISO-8601, Unix seconds or an age (15m, 2h, 7d) -> Unix ns: the `since` forms used everywhere else."""
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            pass
    else:
        try:
            return time_ns(text, name)
        except InvalidArguments:
            pass
    raise InvalidArguments(f"{name}: use ISO-8601 (2024-05-01T12:00:00Z), Unix seconds or an age (15m)")


def _engine_seconds(ns: int) -> str:
    """Unix ns -> the seconds.nanoseconds form the engine takes for since/until."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def _rfc3339_ns(value: Any) -> int | None:
    """An inspect timestamp (RFC 3339, nanoseconds) -> Unix ns; None for Go's zero time or junk."""
    text = str(value or "")
    if not text or text.startswith("0001-01-01"):
        return None
    head, dot, rest = text.partition(".")
    digits = re.match(r"\d*", rest)[0] if dot else ""  # type: ignore[index]
    try:
        moment = dt.datetime.fromisoformat(head + rest[len(digits) :] if dot else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + int((digits + "000000000")[:9])


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quoted(value: str) -> str:
    """The value as Go's %q writes it between the quotes: how runc names a bad variable in its errors."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _scrub_env(text: str, env: Any) -> str:
    """Remove a container's environment values from an engine message (runc quotes a bad KEY=VALUE whole).

    Each value goes as written, Go-quoted and JSON-escaped; a value shorter than 4 characters only
    in its KEY=VALUE form, so that short values do not garble the message."""
    pairs = [str(item).split("=", 1) for item in env or [] if "=" in str(item)]
    for key, value in sorted(pairs, key=lambda pair: -len(pair[1])):
        if not value:
            continue
        forms = sorted({value, _go_quoted(value), json.dumps(value)[1:-1]}, key=len, reverse=True)
        for form in forms:
            text = text.replace(f"{key}={form}", f"{key}={provenance.redaction.REDACTED}")
        for form in forms:
            if len(form) >= 4:
                text = text.replace(form, provenance.redaction.REDACTED)
    return text


@contextmanager
def _env_kept_out(env: Any) -> Iterator[None]:
    """Engine errors raised inside lose the given environment values (KEY=VALUE strings or a dict)."""
    pairs = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env or [])
    try:
        yield
    except UpstreamError as exc:
        text = _scrub_env(str(exc), pairs)
        if text == str(exc):
            raise
        raise type(exc)(text) from None


_STOPPED_STATES = frozenset({"exited", "restarting", "dead"})
_LAST_EXIT_RE = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)(?: (.+) ago)?$")


def _exit_code_from_status(status: str) -> int | None:
    match = _LAST_EXIT_RE.match(status)
    return int(match[1]) if match else None


_HOUR = 3600.0
_NAMED_AGES = {"Less than a second": (0.0, 1.0), "About a minute": (60.0, 120.0), "About an hour": (_HOUR, 2 * _HOUR)}
_COUNTED_AGE_RE = re.compile(r"^(\d+) (second|minute|hour|day|week|month|year)s?$")
_UNIT_HOURS = {"hour": 1, "day": 24, "week": 168, "month": 720, "year": 8760}


def _status_age(status: str) -> tuple[float, float]:
    """Seconds since a container stopped, as bounds [low, high) read from the engine's status text.

    The engine writes "Exited (1) 5 minutes ago" with go-units' HumanDuration, whose versions count
    hours truncated or rounded; the bounds hold for both. (0, inf) when the text does not say."""
    match = _LAST_EXIT_RE.match(status)
    human = match[2] if match else None
    if human in _NAMED_AGES:
        return _NAMED_AGES[human]
    counted = _COUNTED_AGE_RE.match(human or "")
    if counted is None:
        return 0.0, math.inf
    n, unit = int(counted[1]), counted[2]
    if unit in ("second", "minute"):
        size = 1.0 if unit == "second" else 60.0
        return n * size, (n + 1) * size
    hours = _UNIT_HOURS[unit]
    rounding = 0.0 if unit == "year" else 0.5  # years always come from the truncated hour count
    return (n * hours - rounding) * _HOUR, (n + 1) * hours * _HOUR


def _container_state(raw: dict[str, Any]) -> ContainerState:
    state = raw.get("State") or {}
    health = state.get("Health") or {}
    return ContainerState(
        status=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        restarting=bool(state.get("Restarting")),
        oom_killed=bool(state.get("OOMKilled")),
        dead=bool(state.get("Dead")),
        pid=int(state.get("Pid") or 0),
        exit_code=int(state.get("ExitCode") or 0),
        error=cut(_scrub_env(str(state.get("Error") or ""), (raw.get("Config") or {}).get("Env")), 2000),
        started_at=_optional_time(state.get("StartedAt")),
        finished_at=_optional_time(state.get("FinishedAt")),
        health=health.get("Status"),
    )


def _name(raw: dict[str, Any]) -> str:
    return str(raw.get("Name") or "").lstrip("/")


async def _inspect(engine: DockerEngine, ref: str) -> dict[str, Any]:
    """Inspect and record which container this call is about (id, name, image id)."""
    raw = await engine.inspect_container(ref)
    provenance.annotate(container_id=raw.get("Id"), container_name=_name(raw), image_id=raw.get("Image"))
    return raw


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_container_list(args: ContainerListArgs, engine: DockerEngine, ctx: Context) -> ContainerList:
    """List containers, newest first: running only by default, or all; filter by name, label, status, image.

    failed_only and exited_since find recent failures; stopped containers show exit_code and finished_at.
    Paginated: pass next_cursor as cursor for the next page."""
    await engine.annotate_versions()
    since_ns = _time_ns(args.exited_since, "exited_since") if args.exited_since else None
    filters: dict[str, list[str]] = {}
    if args.name:
        filters["name"] = [args.name]
    if args.label:
        filters["label"] = list(args.label)
    if args.status:
        filters["status"] = [args.status]
    if args.ancestor:
        filters["ancestor"] = [args.ancestor]
    everything = args.all or args.status is not None or args.failed_only or since_ns is not None
    raw = await engine.list_containers(all_=everything, filters=filters)
    if args.failed_only:
        raw = [c for c in raw if _exit_code_from_status(str(c.get("Status", ""))) not in (None, 0)]
    inspected: dict[str, dict[str, Any]] = {}
    if since_ns is not None:
        raw = await _stopped_since(engine, raw, since_ns, inspected)
    raw.sort(key=lambda c: (-int(c.get("Created") or 0), str(c.get("Id"))))
    page, next_cursor = keyset_page(raw, "Id", args.limit, args.cursor)
    stopped = [str(c["Id"]) for c in page if c.get("State") in _STOPPED_STATES and c["Id"] not in inspected]
    await _inspect_each(engine, stopped, inspected)
    containers = [_summary(c, inspected.get(str(c.get("Id")))) for c in page]
    provenance.annotate(
        container_ids=[c.id for c in containers],
        container_names=[c.name for c in containers],
        containers_inspected=len(inspected),
    )
    return ContainerList(containers=containers, total=len(raw), next_cursor=next_cursor)


def _summary(listed: dict[str, Any], inspected: dict[str, Any] | None) -> ContainerSummary:
    state = (inspected or {}).get("State") or {}
    status = str(listed.get("Status", ""))
    exit_code = _exit_code_from_status(status)
    if state and listed.get("State") in _STOPPED_STATES:
        exit_code = int(state.get("ExitCode") or 0)
    return ContainerSummary(
        id=str(listed.get("Id", "")),
        name=str((listed.get("Names") or [""])[0]).lstrip("/"),
        image=str(listed.get("Image", "")),
        image_id=str(listed.get("ImageID", "")),
        command=cut(listed.get("Command", ""), 512),
        created=iso_time(listed.get("Created")),
        state=str(listed.get("State", "")),
        status=status,
        exit_code=exit_code,
        finished_at=_optional_time(state.get("FinishedAt")) if state else None,
        labels=shown_labels(listed.get("Labels")),
    )


_INSPECT_AT_ONCE = 16
_MOST_INSPECTED = 1000


# The engine's clock and ours may differ: the status text decides only clear cases, beyond this margin.
_CLOCK_MARGIN_SECONDS = 60.0


async def _stopped_since(
    engine: DockerEngine, listed: list[dict[str, Any]], since_ns: int, inspected: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The stopped containers whose last stop is at or after since_ns.

    The status text ("Exited (1) 3 hours ago") settles clear cases; only the uncertain ones are inspected
    for FinishedAt, so a long history of old containers costs one list call."""
    window = (time.time_ns() - since_ns) / 1e9
    kept: list[dict[str, Any]] = []
    unsure: list[dict[str, Any]] = []
    for container in listed:
        if container.get("State") not in _STOPPED_STATES:
            continue
        low, high = _status_age(str(container.get("Status", "")))
        if low > window + _CLOCK_MARGIN_SECONDS:
            continue
        (kept if high < window - _CLOCK_MARGIN_SECONDS else unsure).append(container)
    if len(unsure) > _MOST_INSPECTED:
        raise ToolFailure(
            f"exited_since: {len(unsure)} stopped containers would need inspecting (at most {_MOST_INSPECTED}); "
            "narrow with name, label or ancestor"
        )
    await _inspect_each(engine, [str(c["Id"]) for c in unsure], inspected)
    for container in unsure:
        state = (inspected.get(str(container["Id"])) or {}).get("State") or {}
        finished = _rfc3339_ns(state.get("FinishedAt"))
        if finished is not None and finished >= since_ns:
            kept.append(container)
    return kept


async def _inspect_each(engine: DockerEngine, container_ids: list[str], into: dict[str, dict[str, Any]]) -> None:
    """Inspect containers a few at a time; one removed since it was listed is left out."""
    limiter = anyio.Semaphore(_INSPECT_AT_ONCE)
    failures: list[ToolFailure] = []

    async def inspect(container_id: str) -> None:
        async with limiter:
            try:
                into[container_id] = await engine.inspect_container(container_id)
            except NotFound:
                pass
            except ToolFailure as exc:  # raised below, as itself rather than inside an exception group
                failures.append(exc)

    async with anyio.create_task_group() as group:
        for container_id in container_ids:
            group.start_soon(inspect, container_id)
    if failures:
        raise failures[0]


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_container_inspect(args: ContainerArgs, engine: DockerEngine, ctx: Context) -> ContainerDetails:
    """Details of one container: state and exit code, command, image, env names (values redacted), labels,
    network, limits and mounts."""
    await engine.annotate_versions()
    raw = await _inspect(engine, args.container)
    config = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    restart = host.get("RestartPolicy") or {}
    provenance.annotate(exit_code=(raw.get("State") or {}).get("ExitCode"))
    return ContainerDetails(
        id=str(raw.get("Id", "")),
        name=_name(raw),
        image=str(config.get("Image", "")),
        image_id=str(raw.get("Image", "")),
        created=iso_time(raw.get("Created")),
        state=_container_state(raw),
        restart_count=int(raw.get("RestartCount") or 0),
        command=[cut(a, 4096) for a in config.get("Cmd") or []][:256],
        entrypoint=[cut(a, 4096) for a in config.get("Entrypoint") or []][:64],
        env=shown_env(config.get("Env")),
        labels=shown_labels(config.get("Labels")),
        working_dir=str(config.get("WorkingDir", "")),
        user=str(config.get("User", "")),
        tty=bool(config.get("Tty")),
        network_mode=str(host.get("NetworkMode", "")),
        networks=sorted(networks)[:32],
        restart_policy=str(restart.get("Name") or "no"),
        auto_remove=bool(host.get("AutoRemove")),
        privileged=bool(host.get("Privileged")),
        memory_limit_bytes=int(host.get("Memory") or 0),
        nano_cpus=int(host.get("NanoCpus") or 0),
        mounts=[
            {
                "type": m.get("Type"),
                "source": m.get("Source") or m.get("Name"),
                "destination": m.get("Destination"),
                "mode": m.get("Mode"),
                "rw": m.get("RW"),
            }
            for m in (raw.get("Mounts") or [])[:64]
        ],
    )


async def _read_logs(
    engine: DockerEngine,
    raw: dict[str, Any],
    *,
    tail: int,
    max_bytes: int,
    stdout: bool = True,
    stderr: bool = True,
    timestamps: bool = False,
    since: str | None = None,
    until: str | None = None,
    grep: str | None = None,
) -> tuple[list[LogLine], bool, str | None]:
    """Fetch, demultiplex, filter and bound a container's log; returns lines, truncated, note."""
    # One line more than wanted, so that "there is more" can be stated. The engine's tail counts both
    # streams before it drops one, so a stream choice or a grep is applied here, over a wider window.
    filtered = grep is not None or not (stdout and stderr)
    scan = max(tail + 1, 10_000) if filtered else tail + 1
    params: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": timestamps, "tail": scan}
    if since:
        params["since"] = _engine_seconds(_time_ns(since, "since"))
    if until:
        params["until"] = _engine_seconds(_time_ns(until, "until"))
    tty = bool((raw.get("Config") or {}).get("Tty"))
    pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    lines: list[LogLine] = []
    # A hard cap on what is read, so one huge line cannot exhaust memory; reported below if hit.
    read_cap, read_total, capped = max(4 * max_bytes, 1 << 20) * (4 if grep else 1), 0, False

    def flush(stream: str, complete: bool) -> None:
        *done, rest = pending[stream].split(b"\n")
        if not complete and rest:
            pending[stream] = rest
        else:
            pending[stream] = b""
            if rest:
                done.append(rest)
        for line in done:
            lines.append(LogLine(stream=stream, text=line.decode("utf-8", "replace").rstrip("\r")))  # type: ignore[arg-type]

    async for frame in engine.container_logs(str(raw["Id"]), params, tty=tty):
        read_total += len(frame.data)
        pending[frame.stream] += frame.data
        flush(frame.stream, complete=False)
        if read_total > read_cap:
            capped = True
            break
    for stream in pending:
        flush(stream, complete=True)

    notes: list[str] = []
    if filtered:
        if len(lines) >= scan:
            notes.append(f"searched the last {scan} lines only; narrow with since/until to search further back")
        pattern = Grep(grep or "")
        wanted = {"stdout"} if not stderr else {"stderr"} if not stdout else {"stdout", "stderr"}
        lines = [line for line in lines if line.stream in wanted and pattern.search(line.text)]
    truncated = capped
    if capped:
        notes.append(f"stopped reading after {read_total} bytes; narrow with since/until or tail")
    if len(lines) > tail:
        lines, truncated = lines[-tail:], True
    kept: list[LogLine] = []
    size = 0
    for line in reversed(lines):
        size += len(line.text.encode()) + 1
        if size > max_bytes:
            truncated = True
            notes.append(
                f"{len(lines) - len(kept)} earlier lines left out to fit max_bytes={max_bytes}; "
                "raise max_bytes or narrow with until"
            )
            break
        kept.append(line)
    kept.reverse()
    if truncated and not notes:
        notes.append(f"showing the last {len(kept)} lines; raise tail or use since/until for more")
    # A container that prints its own environment must not carry those values into results or spans.
    env = (raw.get("Config") or {}).get("Env")
    if env:
        kept = [LogLine(stream=line.stream, text=_scrub_env(line.text, env)) for line in kept]
    return kept, truncated, "; ".join(notes) or None


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_container_logs(args: ContainerLogsArgs, engine: DockerEngine, ctx: Context) -> ContainerLogs:
    """A container's log, stdout and stderr told apart: the last 100 lines by default.

    since/until, timestamps, a grep regex and max_bytes narrow it; any truncation is stated in note.
    The container's own environment values are replaced by [REDACTED] wherever it prints them."""
    if not (args.stdout or args.stderr):
        raise InvalidArguments("stdout, stderr: at least one of them must be true")
    await engine.annotate_versions()
    raw = await _inspect(engine, args.container)
    lines, truncated, note = await _read_logs(
        engine,
        raw,
        tail=args.tail,
        max_bytes=args.max_bytes,
        stdout=args.stdout,
        stderr=args.stderr,
        timestamps=args.timestamps,
        since=args.since,
        until=args.until,
        grep=args.grep,
    )
    provenance.annotate(untrusted_content=True, log_lines=len(lines))
    return ContainerLogs(
        container_id=str(raw["Id"]), container_name=_name(raw), lines=lines, truncated=truncated, note=note
    )


def _sum_blkio(stats: dict[str, Any], op: str) -> int:
    entries = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return sum(int(e.get("value") or 0) for e in entries if str(e.get("op", "")).lower() == op)


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_container_stats(args: ContainerStatsArgs, engine: DockerEngine, ctx: Context) -> ContainerStats:
    """One resource snapshot of a container: CPU %, memory use and limit, network and block I/O, pids."""
    await engine.annotate_versions()
    raw = await _inspect(engine, args.container)
    stats = await engine.container_stats(str(raw["Id"]))
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - int(
        (pre.get("cpu_usage") or {}).get("total_usage") or 0
    )
    system_delta = int(cpu.get("system_cpu_usage") or 0) - int(pre.get("system_cpu_usage") or 0)
    online = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
    cpu_percent = cpu_delta / system_delta * online * 100 if cpu_delta > 0 and system_delta > 0 else 0.0
    memory = stats.get("memory_stats") or {}
    details = memory.get("stats") or {}
    # Like the Docker CLI: cgroup v2 reports inactive_file, v1 total_inactive_file, older v1 cache.
    cache = details.get("inactive_file", details.get("total_inactive_file", details.get("cache", 0)))
    usage = max(int(memory.get("usage") or 0) - int(cache or 0), 0)
    limit = int(memory.get("limit") or 0)
    networks = stats.get("networks") or {}
    return ContainerStats(
        container_id=str(raw["Id"]),
        container_name=_name(raw),
        read_at=str(stats.get("read", "")),
        running=bool((raw.get("State") or {}).get("Running")),
        cpu_percent=round(cpu_percent, 2),
        online_cpus=online,
        memory_usage_bytes=usage,
        memory_limit_bytes=limit,
        memory_percent=round(usage / limit * 100, 2) if limit else 0.0,
        network_rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in networks.values()),
        network_tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in networks.values()),
        block_read_bytes=_sum_blkio(stats, "read"),
        block_write_bytes=_sum_blkio(stats, "write"),
        pids=int((stats.get("pids_stats") or {}).get("current") or 0),
    )


async def _change(engine: DockerEngine, ref: str, action: Any, wanted_running: bool | None) -> ContainerChange:
    before = await _inspect(engine, ref)
    was_running = bool((before.get("State") or {}).get("Running"))
    if wanted_running is not False:  # a (re)start mounts the binds again, through any link planted since
        check_mounted_binds((before.get("HostConfig") or {}).get("Binds") or [], engine.allow_binds)
    with _env_kept_out((before.get("Config") or {}).get("Env")):
        await action(str(before["Id"]))
    after = await engine.inspect_container(str(before["Id"]))
    state = _container_state(after)
    provenance.annotate(exit_code=state.exit_code, state=state.status)
    changed = True if wanted_running is None else was_running != wanted_running
    return ContainerChange(id=str(after["Id"]), name=_name(after), changed=changed, state=state)


@tool(read_only=False, destructive=False, idempotent=True, open_world=False)
async def docker_container_start(args: ContainerArgs, engine: DockerEngine, ctx: Context) -> ContainerChange:
    """Start a stopped container. Starting a running container changes nothing (changed=false)."""
    await engine.annotate_versions()
    return await _change(engine, args.container, engine.start, wanted_running=True)


@tool(read_only=False, destructive=False, idempotent=True, open_world=False)
async def docker_container_stop(args: ContainerStopArgs, engine: DockerEngine, ctx: Context) -> ContainerChange:
    """Stop a running container (SIGTERM, then SIGKILL after timeout_seconds). Stopping a stopped one changes
    nothing."""
    await engine.annotate_versions()
    return await _change(
        engine, args.container, lambda cid: engine.stop(cid, args.timeout_seconds), wanted_running=False
    )


# Not idempotent: every restart stops the process again (new pid, its in-memory state gone).
@tool(read_only=False, destructive=False, idempotent=False, open_world=False)
async def docker_container_restart(args: ContainerStopArgs, engine: DockerEngine, ctx: Context) -> ContainerChange:
    """Restart a container (stop with timeout_seconds, then start); a stopped container is started."""
    await engine.annotate_versions()
    return await _change(engine, args.container, lambda cid: engine.restart(cid, args.timeout_seconds), None)


def _refuse_unsafe(args: ContainerRunArgs) -> None:
    """The run options that give a container the host are refused, with what to do instead (binds: _binds)."""
    if args.privileged:
        raise ToolFailure("refused: privileged containers are not offered by this server; run without privileged")
    if args.cap_add:
        raise ToolFailure("refused: adding capabilities (cap_add) is not offered by this server")
    for field, value in (("pid_mode", args.pid_mode), ("ipc_mode", args.ipc_mode)):
        if value and value.lower() == "host":
            raise ToolFailure(f"refused: {field}=host would share the host's namespace; leave {field} unset")


def _run_config(args: ContainerRunArgs, auto_remove: bool) -> dict[str, Any]:
    host: dict[str, Any] = {"AutoRemove": auto_remove, "Privileged": False}
    if args.network:
        host["NetworkMode"] = args.network
    if args.cpus:
        host["NanoCpus"] = int(args.cpus * 1e9)
    if args.memory_bytes:
        host["Memory"] = args.memory_bytes
    if args.binds:
        host["Binds"] = list(args.binds)
    config: dict[str, Any] = {
        "Image": args.image,
        "Env": [f"{k}={v}" for k, v in args.env.items()],
        "Labels": dict(args.labels),
        "HostConfig": host,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if args.command is not None:
        config["Cmd"] = list(args.command)
    if args.entrypoint is not None:
        config["Entrypoint"] = list(args.entrypoint)
    if args.working_dir:
        config["WorkingDir"] = args.working_dir
    if args.user:
        config["User"] = args.user
    return config


@tool(read_only=False, destructive=False, idempotent=False, open_world=True)
async def docker_container_run(args: ContainerRunArgs, engine: DockerEngine, ctx: Context) -> ContainerRun:
    """Create and start a container from a local image. Detached by default; with detach=false, waits up to
    timeout_seconds and returns the exit code and the bounded output.

    Privileged mode, added capabilities, host PID/IPC namespaces and host-path bind mounts (unless the
    operator allowed the path) are refused. The image is never pulled implicitly."""
    _refuse_unsafe(args)
    binds = resolve_binds(args.binds, engine.allow_binds, allow_writes=engine.allow_bind_writes)
    args = args.model_copy(update={"binds": [bind.spec for bind in binds]})  # the engine mounts the checked real path
    for key, value in args.env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise InvalidArguments("env: names are letters, digits, '_', '.', '-' and do not start with a digit")
        if "\x00" in value:
            raise InvalidArguments("env: values cannot contain a NUL character")
    await engine.annotate_versions()
    with _env_kept_out(args.env):
        # Not detached: we remove it ourselves after reading its output (the engine would race us to it).
        container_id = await engine.create_container(_run_config(args, args.auto_remove and args.detach), args.name)
        provenance.annotate(container_id=container_id)
        try:
            check_mounted_binds(args.binds, engine.allow_binds)  # again, just before the engine mounts them
            await engine.start(container_id)
        except ToolFailure:
            await engine.remove_container(container_id, force=True, volumes=True)  # leave nothing half-made behind
            raise
    raw = await engine.inspect_container(container_id)
    provenance.annotate(container_name=_name(raw), image_id=raw.get("Image"))
    if args.detach:
        state = _container_state(raw)
        return ContainerRun(
            id=container_id,
            name=_name(raw),
            image_id=str(raw.get("Image", "")),
            detached=True,
            status=state.status,
            exit_code=None if state.running else state.exit_code,
            timed_out=False,
            removed=False,
            output=[],
            truncated=False,
            note="read its output with docker_container_logs",
        )
    with anyio.move_on_after(args.timeout_seconds) as scope:
        await engine.wait(container_id)
    timed_out = scope.cancelled_caught
    raw = await engine.inspect_container(container_id)
    state = _container_state(raw)
    output, truncated, note = await _read_logs(engine, raw, tail=10_000, max_bytes=args.max_bytes)
    exit_code = None if state.running else state.exit_code
    removed = False
    if args.auto_remove and not state.running:
        await engine.remove_container(container_id, force=False, volumes=True)
        removed = True
    provenance.annotate(exit_code=exit_code, untrusted_content=True)
    if timed_out:
        note = "; ".join(filter(None, [f"still running after {args.timeout_seconds:g} s; it keeps running", note]))
    return ContainerRun(
        id=container_id,
        name=_name(raw),
        image_id=str(raw.get("Image", "")),
        detached=False,
        status=state.status,
        exit_code=exit_code,
        timed_out=timed_out,
        removed=removed,
        output=output,
        truncated=truncated,
        note=note,
    )


@tool(read_only=False, destructive=True, idempotent=True, open_world=False)
async def docker_container_remove(args: ContainerRemoveArgs, engine: DockerEngine, ctx: Context) -> ContainerRemoval:
    """Remove a container (force kills a running one first). Cannot be undone."""
    await engine.annotate_versions()
    raw = await _inspect(engine, args.container)
    await engine.remove_container(str(raw["Id"]), force=args.force, volumes=args.volumes)
    return ContainerRemoval(id=str(raw["Id"]), name=_name(raw), removed=True)
