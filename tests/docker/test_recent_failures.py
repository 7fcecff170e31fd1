"""The acceptance question, played by an agent: which containers exited with an error in the last hour,
and what did they log last? Answered with the Docker tools alone; the ledger names exactly what was read."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp
from tests.docker.conftest import TEST_IMAGE, TEST_LABEL, Caller, Engine
from tests.harness import ledger_text, spans

pytestmark = pytest.mark.docker

SECRET = "planted-failure-s3cret-93c1e7"


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_agent_finds_the_last_hours_failures_and_reads_their_last_lines(
    client: Caller, app: LedgerApp, engine: Engine, container: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    # The engine is shared by the whole session: a label keeps other tests' containers out of the answer.
    mine = {"e2e": tag}
    env = [f"DB_PASSWORD={SECRET}", f"MODE={SECRET}"]
    fine = container(["sh", "-c", "echo all good; exit 0"], name=f"fine-{tag}", labels=mine, env=env, wait=True)
    crash = container(
        ["sh", "-c", "echo connecting to db; echo 'error: db unreachable' >&2; exit 3"],
        name=f"crash-{tag}",
        labels=mine,
        env=env,
        wait=True,
    )
    panic = container(
        ["sh", "-c", "echo worker up; echo 'panic: nil map' >&2; exit 2"],
        name=f"panic-{tag}",
        labels=mine,
        env=env,
        wait=True,
    )
    alive = container(["sleep", "60"], name=f"alive-{tag}", labels=mine, env=env)

    # The agent: one list call for the failures, then the last lines of each.
    failures = await client.ok(
        "docker_container_list", {"failed_only": True, "exited_since": "1h", "label": [f"e2e={tag}"]}
    )
    found = failures["containers"]
    assert {c["id"] for c in found} == {crash, panic} and failures["total"] == 2
    now = dt.datetime.now(dt.UTC)
    for summary in found:
        assert summary["state"] == "exited"
        assert summary["exit_code"] == {crash: 3, panic: 2}[summary["id"]]
        finished = _moment(summary["finished_at"])
        assert now - dt.timedelta(hours=1) < finished <= now
        assert finished >= _moment(summary["created"])
    read = [await client.ok("docker_container_logs", {"container": c["id"], "tail": 10}) for c in found]
    last_lines = {logs["container_name"]: sorted((x["stream"], x["text"]) for x in logs["lines"]) for logs in read}
    assert last_lines == {
        f"crash-{tag}": [("stderr", "error: db unreachable"), ("stdout", "connecting to db")],
        f"panic-{tag}": [("stderr", "panic: nil map"), ("stdout", "worker up")],
    }

    # The ledger on disk: one list, then one log read per failure, in the order the agent read them.
    recorded = spans(app)
    assert [s["name"] for s in recorded] == [
        "tools/call docker_container_list",
        "tools/call docker_container_logs",
        "tools/call docker_container_logs",
    ]
    listed = recorded[0]["upstream"]
    assert listed["container_ids"] == [c["id"] for c in found]
    assert listed["container_names"] == [c["name"] for c in found]
    assert listed["containers_inspected"] == 2  # the page's two failures; the status text settled the rest
    assert [(s["upstream"]["container_id"], s["upstream"]["container_name"]) for s in recorded[1:]] == [
        (c["id"], c["name"]) for c in found
    ]
    assert all(s["status"]["code"] == "OK" for s in recorded)
    text = ledger_text(app)
    for untouched in (fine, alive, f"fine-{tag}", f"alive-{tag}"):
        assert untouched not in text
    assert SECRET not in text and SECRET not in json.dumps([failures, *read])
    assert provenance.Ledger(app.ledger_dir).verify().ok


async def test_exited_since_keeps_only_containers_that_stopped_after_the_time(
    client: Caller, app: LedgerApp, container: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    label = [f"e2e={tag}"]
    earlier = container(["sh", "-c", "exit 1"], labels={"e2e": tag}, wait=True)
    between = dt.datetime.now(dt.UTC)
    later = container(["sh", "-c", "exit 0"], labels={"e2e": tag}, wait=True)
    container(["sleep", "60"], labels={"e2e": tag})

    recent = await client.ok("docker_container_list", {"exited_since": between.isoformat(), "label": label})
    assert [c["id"] for c in recent["containers"]] == [later]
    assert recent["containers"][0]["exit_code"] == 0 and _moment(recent["containers"][0]["finished_at"]) > between
    # Both stopped a moment ago, too close to the time for the status text: both were inspected.
    assert spans(app, "docker_container_list")[-1]["upstream"]["containers_inspected"] == 2

    unix = await client.ok("docker_container_list", {"exited_since": f"{between.timestamp():.6f}", "label": label})
    assert [c["id"] for c in unix["containers"]] == [later]
    hour = await client.ok("docker_container_list", {"exited_since": "1h", "label": label})
    assert {c["id"] for c in hour["containers"]} == {earlier, later}  # never the running one
    failed = await client.ok("docker_container_list", {"exited_since": "1h", "failed_only": True, "label": label})
    assert [c["id"] for c in failed["containers"]] == [earlier]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert (await client.ok("docker_container_list", {"exited_since": future, "label": label}))["containers"] == []

    everything = await client.ok("docker_container_list", {"all": True, "label": label})
    by_id = {c["id"]: c for c in everything["containers"]}
    assert by_id[earlier]["exit_code"] == 1 and by_id[earlier]["finished_at"]
    assert [c["finished_at"] for c in everything["containers"] if c["state"] == "running"] == [None]

    message = await client.error("docker_container_list", {"exited_since": "an hour ago"})
    assert "exited_since: use ISO-8601" in message


async def test_long_labels_are_cut_and_say_so(client: Caller, container: Any) -> None:
    container_id = container(["sleep", "60"], labels={"devcontainer.metadata": "x" * 5000})
    listed = await client.ok("docker_container_list", {"label": ["devcontainer.metadata"]})
    labels = next(c for c in listed["containers"] if c["id"] == container_id)["labels"]
    assert labels == {"devcontainer.metadata": "x" * 1023 + "…", TEST_LABEL: "1"}
    details = await client.ok("docker_container_inspect", {"container": container_id})
    assert details["labels"] == labels


NUL_SECRET = "bad\x00planted-nul-s3cret"


async def test_an_engine_error_naming_an_env_value_is_scrubbed(client: Caller, app: LedgerApp, engine: Engine) -> None:
    # runc refuses a NUL in a value and names the whole KEY=VALUE (Go-quoted) in its error.
    config = {
        "Image": TEST_IMAGE,
        "Cmd": ["true"],
        "Env": [f"API_KEY={NUL_SECRET}"],
        "Labels": {TEST_LABEL: "1"},
        "HostConfig": {"NetworkMode": "none"},
    }
    container_id = engine.json("POST", "/containers/create", body=config)["Id"]
    try:
        message = await client.error("docker_container_start", {"container": container_id})
        assert "environment variable value can't contain null" in message and "API_KEY=[REDACTED]" in message
        state = (await client.ok("docker_container_inspect", {"container": container_id}))["state"]
        assert "can't contain null" in state["error"] and "API_KEY=[REDACTED]" in state["error"]
        engine_error = engine.json("GET", f"/containers/{container_id}/json")["State"]["Error"]
        assert "planted-nul-s3cret" in engine_error  # the engine does keep it: the tools must not pass it on
        refused = await client.error(
            "docker_container_run", {"image": TEST_IMAGE, "command": ["true"], "env": {"API_KEY": NUL_SECRET}}
        )
        assert refused.endswith("env: values cannot contain a NUL character")
        for blob in (message, str(state), refused, ledger_text(app)):
            assert "planted-nul-s3cret" not in blob
    finally:
        engine.remove(container_id)
