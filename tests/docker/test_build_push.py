"""docker_image_build and docker_image_push against the real engine and the loopback registry, through
an MCP client: build an allowed directory, push it, remove it, pull it, the same digest — and the ledger
names every object while no build secret or registry credential reaches it, a result or stderr."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.docker import DockerSettings, _build_context
from tests.docker.conftest import TEST_IMAGE, Caller, Engine, Registry, check_definition
from tests.harness import last_span, ledger_text

pytestmark = pytest.mark.docker

OPT_IN = ["docker_image_build", "docker_image_push"]
BUILD_SECRET = "npm_canary_" + uuid.uuid4().hex
CONFIG_SECRET = "config-canary-" + uuid.uuid4().hex
HELPER_SECRET = "helper-canary-" + uuid.uuid4().hex
DOCKERFILE = f"""# syntax is the classic builder's
ARG BASE={TEST_IMAGE}
FROM ${{BASE}} AS base
ARG NPM_TOKEN
COPY . /ctx/
RUN test -e /ctx/hello.txt && test ! -e /ctx/secret.txt && test ! -e /ctx/logs/a.log \\
    && echo "token is $NPM_TOKEN"
FROM base
LABEL stage=final
"""


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "contexts"
    (root / "app" / "logs").mkdir(parents=True)
    app = root / "app"
    (app / "Dockerfile").write_text(DOCKERFILE)
    (app / "hello.txt").write_text(uuid.uuid4().hex)  # a fresh layer every run
    (app / "secret.txt").write_text("left out by .dockerignore")
    (app / "logs" / "a.log").write_text("left out too")
    (app / ".dockerignore").write_text("# the CLI's rules\nsecret.txt\nlogs/\n")
    return root


@pytest.fixture
def builder(engine: Engine, tmp_path: Path, allowed: Path) -> Iterator[LedgerApp]:
    ledger_app = create_app(
        ServerSettings(ledger_dir=tmp_path / "ledger", allow_destructive=True, tools=OPT_IN),
        {"docker": DockerSettings(host=engine.host, allow_build_contexts=[str(allowed)])},
    )
    try:
        yield ledger_app
    finally:
        ledger_app.close()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


async def test_build_push_remove_pull_gives_the_pushed_digest_and_the_ledger_names_every_object(
    builder: LedgerApp,
    engine: Engine,
    registry: Registry,
    allowed: Path,
    docker_config: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    client = Caller(builder)
    auth = base64.b64encode(f"pusher:{CONFIG_SECRET}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {f"http://{registry.address}": {"auth": auth}}}))
    reference = f"{registry.address}/buildtest:{uuid.uuid4().hex[:8]}"
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        steps.append((done, total, message))

    built = await client.ok(
        "docker_image_build",
        {"context": str(allowed / "app"), "tags": [reference], "build_args": {"NPM_TOKEN": BUILD_SECRET}},
        progress=on_progress,
    )
    base_id = engine.json("GET", f"/images/{TEST_IMAGE}/json")["Id"]
    assert built["image_id"].startswith("sha256:") and built["tags"] == [reference]
    assert built["image_id"] == engine.json("GET", f"/images/{reference}/json")["Id"]
    assert built["base_images"] == [{"reference": TEST_IMAGE, "image_id": base_id, "repo_digest": None}]
    assert "token is [REDACTED]" in built["log"] and BUILD_SECRET not in built["log"]
    assert built["steps"] == 7 and not built["log_truncated"]
    assert (steps[0][2] or "").startswith("Step 1/7 : ARG BASE")
    assert [(d, t) for d, t, _ in steps] == [(i, 7) for i in range(1, 8)]
    span = last_span(builder, "docker_image_build")
    assert span["upstream"]["image_id"] == built["image_id"] and span["upstream"]["tags"] == [reference]
    assert span["upstream"]["base_images"] == [{"ref": TEST_IMAGE, "image_id": base_id, "repo_digest": None}]
    assert span["upstream"]["context"] == str((allowed / "app").resolve())

    pushed = await client.ok("docker_image_push", {"image": reference}, progress=on_progress)
    assert pushed["login_from"] == "config auths" and pushed["registry"] == registry.address
    assert pushed["image_id"] == built["image_id"] and pushed["digest"].startswith("sha256:")
    name = reference.rsplit(":", 1)[0]
    assert pushed["repo_digest"] == f"{name}@{pushed['digest']}"
    assert pushed["repo_digest"] in engine.json("GET", f"/images/{reference}/json")["RepoDigests"]
    upstream = last_span(builder, "docker_image_push")["upstream"]
    assert upstream["digest"] == pushed["digest"] and upstream["image_id"] == built["image_id"]
    assert upstream["image_ref"] == reference and upstream["login_from"] == "config auths"

    removed = await client.ok("docker_image_remove", {"image": reference})
    assert removed["image_id"] == built["image_id"] and reference in removed["untagged"]
    assert engine.request("GET", f"/images/{reference}/json")[0] == 404
    pulled = await client.ok("docker_image_pull", {"image": reference})
    assert pulled["repo_digest"] == pushed["repo_digest"] and pulled["image_id"] == built["image_id"]
    assert last_span(builder, "docker_image_pull")["upstream"]["repo_digest"] == pushed["repo_digest"]

    ledger = ledger_text(builder)
    for secret in (BUILD_SECRET, CONFIG_SECRET, auth):
        assert secret not in ledger and secret not in json.dumps([built, pushed, pulled])
        assert secret not in "".join(m or "" for _, _, m in steps)
    captured = capfd.readouterr()
    assert CONFIG_SECRET not in captured.err + captured.out and BUILD_SECRET not in captured.err + captured.out


async def test_push_takes_the_credential_helper_and_never_shows_what_it_said(
    builder: LedgerApp,
    engine: Engine,
    registry: Registry,
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    bin_dir, asked = tmp_path / "bin", tmp_path / "asked"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-mcpltest"
    answer = json.dumps({"ServerURL": registry.address, "Username": "pusher", "Secret": HELPER_SECRET})
    helper.write_text(f"#!/bin/sh\ncat > {asked}\necho 'stderr says {HELPER_SECRET}' >&2\necho '{answer}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (docker_config / "config.json").write_text(json.dumps({"credHelpers": {registry.address: "mcpltest"}}))
    reference = f"{registry.address}/helpertest:{uuid.uuid4().hex[:8]}"
    engine.import_image(reference, extra_file=uuid.uuid4().bytes)

    pushed = await Caller(builder).ok("docker_image_push", {"image": reference})
    assert pushed["login_from"] == "credential helper mcpltest"
    assert asked.read_text() == registry.address
    assert pushed["repo_digest"] in engine.json("GET", f"/images/{reference}/json")["RepoDigests"]
    captured = capfd.readouterr()
    assert HELPER_SECRET not in ledger_text(builder) + json.dumps(pushed) + captured.err + captured.out
    engine.request("DELETE", f"/images/{reference}", params={"force": "1"})


async def test_push_errors_are_clear_and_recorded(
    builder: LedgerApp, engine: Engine, registry: Registry, docker_config: Path
) -> None:
    client = Caller(builder)
    missing = await client.error("docker_image_push", {"image": f"{registry.address}/never-built:1"})
    assert "not found" in missing and "never-built" in missing
    bad = await client.error("docker_image_push", {"image": "Not A/Reference!"})
    assert "image: not an image reference" in bad and "Reference!" not in bad
    # A registry that is not there: the engine's in-band error, as the tool's error.
    reference = f"127.0.0.1:9/nowhere:{uuid.uuid4().hex[:6]}"
    engine.import_image(reference)
    try:
        unreachable = await client.error("docker_image_push", {"image": reference})
        assert unreachable.startswith(f"pushing {reference} failed:")
        assert last_span(builder, "docker_image_push")["status"]["code"] == "ERROR"
    finally:
        engine.request("DELETE", f"/images/{reference}", params={"force": "1"})


async def test_contexts_outside_the_allowed_directories_and_links_out_are_refused(
    builder: LedgerApp, allowed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Caller(builder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\n")
    message = await client.error("docker_image_build", {"context": str(outside)})
    assert "is not under a directory the operator allowed" in message and "--docker-allow-build-contexts" in message
    (allowed / "via-link").symlink_to(outside)
    message = await client.error("docker_image_build", {"context": str(allowed / "via-link")})
    assert "is a symbolic link" in message
    dotdot = await client.error("docker_image_build", {"context": f"{allowed}/app/../../outside"})
    assert "without '..'" in dotdot

    leaky = allowed / "leaky"
    leaky.mkdir()
    (leaky / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nCOPY . /x\n")
    (leaky / "passwd").symlink_to("/etc/passwd")
    message = await client.error("docker_image_build", {"context": str(leaky)})
    assert "passwd in the build context is a symbolic link that leads out of it" in message
    (leaky / "passwd").unlink()
    (leaky / "Dockerfile.link").symlink_to(leaky / "Dockerfile")
    message = await client.error("docker_image_build", {"context": str(leaky), "dockerfile": "Dockerfile.link"})
    assert "is a symbolic link" in message
    message = await client.error("docker_image_build", {"context": str(leaky), "dockerfile": "../app/Dockerfile"})
    assert "dockerfile: a path inside the context" in message

    bad_tag = await client.error("docker_image_build", {"context": str(leaky), "tags": ["ok:1", "UPPER/Case:x"]})
    assert "tags[1]: not an image reference" in bad_tag and "UPPER" not in bad_tag
    bad_arg = await client.error("docker_image_build", {"context": str(leaky), "build_args": {"A B": "x"}})
    assert "build_args:" in bad_arg

    monkeypatch.setattr(_build_context, "MAX_CONTEXT_BYTES", 64 * 1024)
    (leaky / "big.bin").write_bytes(os.urandom(128 * 1024))
    too_big = await client.error("docker_image_build", {"context": str(leaky)})
    assert "the build context is over" in too_big and ".dockerignore" in too_big
    span = last_span(builder, "docker_image_build")
    assert span["status"]["code"] == "ERROR" and "the build context is over" in span["status"]["message"]


async def test_a_failing_step_is_an_error_with_the_end_of_the_output(
    builder: LedgerApp, allowed: Path, engine: Engine
) -> None:
    failing = allowed / "failing"
    failing.mkdir()
    (failing / "Dockerfile").write_text(
        f"FROM {TEST_IMAGE}\nARG PASSWORD\nRUN echo about to fail $PASSWORD && exit 3\n"
    )
    message = await Caller(builder).error(
        "docker_image_build", {"context": str(failing), "build_args": {"PASSWORD": BUILD_SECRET}}
    )
    assert "the build failed" in message and "returned a non-zero code: 3" in message
    assert "about to fail [REDACTED]" in message and BUILD_SECRET not in message
    assert BUILD_SECRET not in ledger_text(builder)


def test_the_build_and_push_streams_match_the_engine_api_description(
    engine: Engine, registry: Registry, allowed: Path
) -> None:
    """The raw /build and push streams the tools parse, line by line, against BuildInfo and PushImageInfo."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in (("Dockerfile", f"FROM {TEST_IMAGE}\nRUN echo hi\n"), ("x", uuid.uuid4().hex)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    reference = f"{registry.address}/streamtest:{uuid.uuid4().hex[:8]}"
    status, body = engine.request(
        "POST",
        "/build",
        params={"t": reference},
        body=archive.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert any("aux" in e for e in events) and any("stream" in e for e in events)
    for event in events:
        check_definition("BuildInfo", event)
    name, tag = reference.rsplit(":", 1)
    status, body = engine.request(
        "POST",
        f"/images/{name}/push",
        params={"tag": tag},
        headers={"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()},
    )
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert status == 200 and any("aux" in e for e in events)
    for event in events:
        check_definition("PushImageInfo", event)
    engine.request("DELETE", f"/images/{reference}", params={"force": "1"})
