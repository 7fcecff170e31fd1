"""What tool groups get at run time, through real MCP clients: a tool's own timeout, preloading in the
background, per-target clients and reload, blocking calls in a worker thread, a missing extra."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import (
    GroupEnvironment,
    NotConfigured,
    TargetClients,
    ToolArgs,
    ToolGroup,
    WorkerCall,
    abandoned_workers,
    run_in_worker,
    tool,
)
from tests.harness import result_text, spans


class Nothing(ToolArgs):
    pass


class Sleep(ToolArgs):
    seconds: float = Field(ge=0, le=60)


class Done(BaseModel):
    value: str


def spans_of(ledger_dir: Path, tool_name: str) -> list[dict[str, Any]]:
    return [s for s in spans(ledger_dir) if s["name"] == f"tools/call {tool_name}"]


@asynccontextmanager
async def serve(
    ledger_dir: Path, mode: str, *groups: ToolGroup[Any], **settings: Any
) -> AsyncIterator[tuple[Client, LedgerApp]]:
    app = create_app(ServerSettings(ledger_dir=ledger_dir, **settings), groups=[prov.register(), *groups])
    try:
        async with Client(app.server, mode=mode) as client:
            yield client, app
    finally:
        app.close()


# A tool's own timeout


@tool(read_only=True, idempotent=True, open_world=False, timeout=0.3)
async def quick_sleep(args: Sleep, backend: None, ctx: Context) -> Done:
    """Sleep, with a timeout of its own shorter than the server's."""
    await anyio.sleep(args.seconds)
    return Done(value="slept")


@tool(read_only=True, idempotent=True, open_world=False, timeout=30)
async def quick_patient(args: Sleep, backend: None, ctx: Context) -> Done:
    """Sleep, with a timeout of its own longer than the server's."""
    await anyio.sleep(args.seconds)
    return Done(value="slept")


def timed_group() -> ToolGroup[None]:
    group: ToolGroup[None] = ToolGroup("quick", "Tools with their own timeouts")
    group.add(quick_sleep)
    group.add(quick_patient)
    return group


async def test_a_tool_s_own_timeout_ends_the_call_with_a_timeout_span(ledger_dir: Path, mode: str) -> None:
    async with serve(ledger_dir, mode, timed_group(), call_timeout=60) as (client, _):
        with anyio.fail_after(10):
            result = await client.call_tool("quick_sleep", {"seconds": 30})
    assert result.is_error
    assert "0.3 s (the tool's own timeout)" in result_text(result)
    [span] = spans(ledger_dir)
    assert span["attributes"]["error.type"] == "timeout"
    assert (int(span["end_ns"]) - int(span["start_ns"])) / 1e9 < 5


async def test_a_tool_s_own_timeout_wins_over_a_shorter_call_timeout(ledger_dir: Path) -> None:
    async with serve(ledger_dir, "auto", timed_group(), call_timeout=0.2) as (client, _):
        result = await client.call_tool("quick_patient", {"seconds": 0.6})
    assert not result.is_error and result.structured_content == {"value": "slept"}
    [span] = spans(ledger_dir)
    assert span["status"]["code"] == "OK"


def test_a_tool_s_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        tool(read_only=True, timeout=0)


# Preload


class SlowStart:
    """A backend whose connect() waits until the test lets it finish."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.connects = 0

    async def connect(self, environment: GroupEnvironment[Any]) -> SlowStart:
        self.connects += 1
        self.started.set()
        await self.release.wait()
        return self

    async def aclose(self) -> None:
        pass


@tool(read_only=True, idempotent=True, open_world=False)
async def slow_thing_get(args: Nothing, backend: SlowStart, ctx: Context) -> Done:
    """Answer once the backend is connected."""
    return Done(value=f"connected {backend.connects}x")


def slow_group(backend: SlowStart) -> ToolGroup[SlowStart]:
    group = ToolGroup("slow", "A backend that takes a while to load", connect=backend.connect)
    group.add(slow_thing_get)
    return group


async def test_preload_never_delays_initialize_or_tools_list_and_a_first_call_waits_inside_its_span(
    ledger_dir: Path, mode: str
) -> None:
    backend = SlowStart()
    with anyio.fail_after(20):
        async with serve(ledger_dir, mode, slow_group(backend), preload=["slow"]) as (client, _):
            await backend.started.wait()  # preloading, and it will not finish by itself
            names = {t.name for t in (await client.list_tools()).tools}
            assert "slow_thing_get" in names and not backend.release.is_set()

            results: list[Any] = []

            async def call() -> None:
                results.append(await client.call_tool("slow_thing_get", {}))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call)
                await anyio.sleep(0.3)
                assert not results  # the call waits for the preload
                backend.release.set()
    [result] = results
    assert result.structured_content == {"value": "connected 1x"}
    assert backend.connects == 1
    [span] = spans(ledger_dir)
    assert span["name"] == "tools/call slow_thing_get" and span["status"]["code"] == "OK"
    assert (int(span["end_ns"]) - int(span["start_ns"])) / 1e9 >= 0.25  # the wait is inside the span


async def test_a_failed_preload_is_left_to_the_first_call_which_reports_it_in_its_span(ledger_dir: Path) -> None:
    attempts = 0

    async def refuse(environment: GroupEnvironment[Any]) -> SlowStart:
        nonlocal attempts
        attempts += 1
        raise NotConfigured("SLOW_URL")

    group = ToolGroup("slow", "A backend that is not configured", connect=refuse)
    group.add(slow_thing_get)
    async with serve(ledger_dir, "auto", group, preload=["slow"]) as (client, _):
        with anyio.fail_after(10):
            while attempts == 0:
                await anyio.sleep(0.01)
        result = await client.call_tool("slow_thing_get", {})
    assert result.is_error and "not configured: set SLOW_URL" in result_text(result)
    assert attempts == 2
    [span] = spans(ledger_dir)
    assert span["attributes"]["error.type"] == "tool_error"


def test_preload_of_an_unknown_toolset_fails_at_start(ledger_dir: Path) -> None:
    from mcp_ledger.server.gating import GatingError

    with pytest.raises(GatingError, match="--preload: unknown nope"):
        create_app(ServerSettings(ledger_dir=ledger_dir, preload=["nope"]), groups=[prov.register()])


# One client per target


class Cluster:
    def __init__(self, name: str, generation: int) -> None:
        self.name = name
        self.generation = generation
        self.closed = False


class Clusters:
    """A TargetSource that counts what it opens and closes."""

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()
        self.closed: list[tuple[str, int]] = []
        self.current = "alpha"

    async def default_target(self) -> str:
        return self.current

    async def open(self, target: str) -> Cluster:
        if target not in ("alpha", "beta"):
            raise NotConfigured(f"a known context (no context {target!r}; known: alpha, beta)")
        await anyio.sleep(0.05)  # concurrent first calls overlap here
        self.opened[target] += 1
        return Cluster(target, self.opened[target])

    async def close(self, client: Cluster) -> None:
        client.closed = True
        self.closed.append((client.name, client.generation))


class PodArgs(ToolArgs):
    hold: float = Field(default=0, ge=0, le=10, description="Seconds to hold the client")


class PodAnswer(BaseModel):
    cluster: str
    generation: int


@tool(read_only=True, idempotent=True, open_world=True, target="context")
async def k8s_pod_list(args: PodArgs, cluster: Cluster, ctx: Context) -> PodAnswer:
    """Say which cluster client the call got."""
    await anyio.sleep(args.hold)
    assert not cluster.closed, "a client was closed under a call"
    return PodAnswer(cluster=cluster.name, generation=cluster.generation)


def cluster_group(source: Clusters) -> ToolGroup[TargetClients[Cluster]]:
    async def connect(environment: GroupEnvironment[Any]) -> TargetClients[Cluster]:
        return TargetClients(source)

    group = ToolGroup("k8s", "Clusters", connect=connect)
    group.add(k8s_pod_list)
    return group


async def test_the_target_parameter_is_added_to_the_schema(ledger_dir: Path) -> None:
    async with serve(ledger_dir, "auto", cluster_group(Clusters())) as (client, _):
        [listed] = [t for t in (await client.list_tools()).tools if t.name == "k8s_pod_list"]
    properties = listed.input_schema["properties"]
    assert set(properties) == {"hold", "context"}
    assert "current context" in properties["context"]["description"]
    assert "context" not in listed.input_schema.get("required", [])


async def test_one_client_per_target_created_on_first_use(ledger_dir: Path, mode: str) -> None:
    source = Clusters()
    async with serve(ledger_dir, mode, cluster_group(source)) as (client, _):
        answers: list[Any] = []

        async def call(arguments: dict[str, Any]) -> None:
            answers.append((await client.call_tool("k8s_pod_list", arguments)).structured_content)

        async with anyio.create_task_group() as tasks:
            for arguments in ({}, {"context": "alpha"}, {"context": "beta"}, {"context": "beta"}, {}):
                tasks.start_soon(call, arguments)
        unknown = await client.call_tool("k8s_pod_list", {"context": "gamma"})
    assert sorted(a["cluster"] for a in answers) == ["alpha", "alpha", "alpha", "beta", "beta"]
    assert source.opened == {"alpha": 1, "beta": 1}
    assert unknown.is_error and "no context 'gamma'; known: alpha, beta" in result_text(unknown)
    spans = spans_of(ledger_dir, "k8s_pod_list")
    assert len(spans) == 6
    assert Counter(s["upstream"].get("context") for s in spans) == {"alpha": 3, "beta": 2, None: 1}
    # The server closes every client at shutdown.
    assert sorted(source.closed) == [("alpha", 1), ("beta", 1)]


async def test_reload_retires_the_clients_after_the_calls_that_hold_them(ledger_dir: Path, mode: str) -> None:
    source = Clusters()
    async with serve(ledger_dir, mode, cluster_group(source)) as (client, app):
        [runtime] = [r for r in app.runtimes if r.name == "k8s"]
        first = (await client.call_tool("k8s_pod_list", {})).structured_content
        held: list[Any] = []

        async def hold() -> None:
            held.append((await client.call_tool("k8s_pod_list", {"hold": 0.5})).structured_content)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await anyio.sleep(0.2)  # the call holds alpha's first client
            source.current = "beta"  # as if the kubeconfig's current context changed
            await runtime.reload()
            assert source.closed == []  # not under the call that holds it
            after = (await client.call_tool("k8s_pod_list", {"context": "alpha"})).structured_content
        assert source.closed == [("alpha", 1)]
        default_now = (await client.call_tool("k8s_pod_list", {})).structured_content
    assert first == {"cluster": "alpha", "generation": 1}
    assert held == [{"cluster": "alpha", "generation": 1}]
    assert after == {"cluster": "alpha", "generation": 2}
    assert default_now == {"cluster": "beta", "generation": 1}


async def test_reload_of_a_single_backend_connects_again_on_the_next_call(ledger_dir: Path) -> None:
    backend = SlowStart()
    backend.release.set()
    async with serve(ledger_dir, "auto", slow_group(backend)) as (client, app):
        [runtime] = [r for r in app.runtimes if r.name == "slow"]
        first = await client.call_tool("slow_thing_get", {})
        await runtime.reload()
        second = await client.call_tool("slow_thing_get", {})
    assert first.structured_content == {"value": "connected 1x"}
    assert second.structured_content == {"value": "connected 2x"}


# A blocking call in a worker thread


class Steps(ToolArgs):
    steps: int = Field(default=3, ge=1, le=100)


seen_cancel = threading.Event()


def count_up(call: WorkerCall, steps: int) -> str:
    for step in range(1, steps + 1):
        call.progress(step, steps, f"step {step}")
    return f"{steps} steps"


def spin_until_cancelled(call: WorkerCall) -> str:
    for _ in range(1000):  # at most 10 s
        if call.cancelled:
            seen_cancel.set()
            return "stopped"
        threading.Event().wait(0.01)
    return "never told"


@tool(read_only=True, idempotent=True, open_world=False)
async def sync_count_run(args: Steps, backend: None, ctx: Context) -> Done:
    """Count in a worker thread, reporting progress."""
    return Done(value=await run_in_worker(lambda call: count_up(call, args.steps), label="count", ctx=ctx))


@tool(read_only=True, idempotent=True, open_world=False, timeout=0.3)
async def sync_spin_run(args: Nothing, backend: None, ctx: Context) -> Done:
    """Spin in a worker thread until told to stop."""
    return Done(value=await run_in_worker(spin_until_cancelled, label="spin", ctx=ctx))


def sync_group() -> ToolGroup[None]:
    group: ToolGroup[None] = ToolGroup("sync", "Blocking work in worker threads")
    group.add(sync_count_run)
    group.add(sync_spin_run)
    return group


async def test_a_worker_thread_reports_progress(ledger_dir: Path, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with serve(ledger_dir, mode, sync_group()) as (client, _):
        result = await client.call_tool("sync_count_run", {"steps": 3}, progress_callback=on_progress)
        with anyio.fail_after(5):
            while len(seen) < 3:  # notifications may trail the result
                await anyio.sleep(0.01)
    assert result.structured_content == {"value": "3 steps"}
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    [span] = spans(ledger_dir)
    assert span["status"]["code"] == "OK"


async def test_a_cancelled_worker_is_told_to_stop_and_the_span_says_it_was_abandoned(
    ledger_dir: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_cancel.clear()
    async with serve(ledger_dir, mode, sync_group()) as (client, _):
        with anyio.fail_after(10):
            result = await client.call_tool("sync_spin_run", {})
    assert result.is_error and "timeout" in result_text(result)
    [span] = spans(ledger_dir)
    assert span["attributes"]["error.type"] == "timeout"
    assert span["upstream"]["worker_thread"] == "abandoned"
    assert await anyio.to_thread.run_sync(seen_cancel.wait, 10), "the worker thread never saw the cancellation"
    with anyio.fail_after(10):
        while abandoned_workers():
            await anyio.sleep(0.01)
    logged = capsys.readouterr().err  # the server's log handler writes to stderr
    assert "spin: cancelled; its worker thread was told to stop" in logged
    assert "spin: the abandoned worker thread ended" in logged


# A group whose third-party dependency is not installed


@tool(read_only=True, idempotent=True, open_world=True)
async def extra_thing_get(args: Nothing, backend: Any, ctx: Context) -> Done:
    """Needs a backend whose library is missing."""
    return Done(value="unreachable")


async def connect_missing(environment: GroupEnvironment[Any]) -> Any:
    import mcp_ledger_test_missing_library  # noqa: F401

    raise AssertionError("the import above fails")


def extra_group() -> ToolGroup[Any]:
    group: ToolGroup[Any] = ToolGroup("extra", "A group whose extra is not installed", connect=connect_missing)
    group.add(extra_thing_get)
    return group


async def test_a_missing_extra_answers_not_configured_and_other_groups_keep_working(
    ledger_dir: Path, mode: str
) -> None:
    async with serve(ledger_dir, mode, extra_group()) as (client, _):
        result = await client.call_tool("extra_thing_get", {})
        listed = await client.call_tool("prov_query", {})
    assert result.is_error
    assert "not configured: pip install 'mcp-ledger[extra]'" in result_text(result)
    assert "mcp_ledger_test_missing_library" in result_text(result)
    assert not listed.is_error
    [span] = spans_of(ledger_dir, "extra_thing_get")
    assert span["attributes"]["error.type"] == "tool_error"
    assert span["attributes"]["exception.type"] == "MissingExtra"


BLOCK_LIBRARIES = "import sys\nsys.modules.update(aiodocker=None, aiohttp=None, githubkit=None)\n"


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger"), "DOCKER_HOST": "unix:///nonexistent.sock"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_LIBRARIES + code], capture_output=True, text=True, env=env, timeout=120
    )


def test_without_the_docker_and_github_libraries_the_cli_works(tmp_path: Path) -> None:
    for argv in (["--help"], ["serve", "--help"], ["query"]):
        done = run_python(f"from mcp_ledger.server.cli import main\nsys.exit(main({argv!r}))", tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert "Traceback" not in done.stderr
    assert (
        "--docker-host"
        in run_python("from mcp_ledger.server.cli import main\nmain(['serve', '--help'])", tmp_path).stdout
    )


def test_without_the_docker_library_its_tools_answer_pip_install_and_prov_works(tmp_path: Path) -> None:
    code = """
import anyio
from mcp import Client
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings

async def main():
    app = create_app(ServerSettings())
    async with Client(app.server) as client:
        docker = await client.call_tool("docker_system_info", {})
        github = await client.call_tool("github_run_list", {"owner": "o", "repo": "r"})
        prov = await client.call_tool("prov_query", {})
    app.close()
    for result in (docker, github, prov):
        print(result.is_error, result.content[0].text.replace(chr(10), " ")[:300])

anyio.run(main)
"""
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    docker, github, prov_line = done.stdout.splitlines()
    assert docker.startswith("True") and "not configured: pip install 'mcp-ledger[docker]'" in docker
    assert github.startswith("True") and "not configured: pip install 'mcp-ledger[github]'" in github
    assert prov_line.startswith("False")
    assert "Traceback" not in done.stderr


def test_commands_other_than_serve_read_no_group_package(tmp_path: Path) -> None:
    groups = ("mcp_ledger.tools.docker", "mcp_ledger.tools.github", "mcp_ledger.tools.prov")
    code = (
        "from mcp_ledger.server.cli import main\nmain({argv!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith({groups!r})))"
    )
    query = run_python(code.format(argv=["query", "--json"], groups=groups), tmp_path)
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[-1] == "[]"
    serve_help = run_python(code.format(argv=["serve", "--help"], groups=groups), tmp_path)
    assert "--github-host" in serve_help.stdout


async def test_unknown_targets_leave_nothing_behind_and_concurrent_first_calls_share_one_client() -> None:
    """A target name is an agent's argument: a thousand unknown ones keep no state in the server."""
    from mcp_ledger.tools._targets import TargetClients

    source = Clusters()
    clients: TargetClients[Cluster] = TargetClients(source)
    for i in range(1000):
        with pytest.raises(NotConfigured):
            async with clients.lease(f"nope-{i}"):
                pass
    assert clients._locks == {} and clients.opened == []
    seen: list[int] = []

    async def first_call() -> None:
        async with clients.lease("beta") as (_, cluster):
            seen.append(cluster.generation)

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(first_call)
    assert seen == [1] * 5 and source.opened["beta"] == 1 and list(clients._locks) == ["beta"]
