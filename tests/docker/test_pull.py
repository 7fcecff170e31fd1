"""docker_image_pull from a loopback registry: progress notifications and the digest in the span."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.docker.conftest import Caller, Engine, Registry, check_against_spec, push
from tests.harness import last_span

pytestmark = pytest.mark.docker


async def test_pull_reports_progress_and_records_the_digest(
    client: Caller, app: Any, engine: Engine, registry: Registry
) -> None:
    # A fresh layer (a unique marker file), so the engine really downloads it.
    reference = f"{registry.address}/pulltest:{uuid.uuid4().hex[:8]}"
    engine.import_image(reference, extra_file=uuid.uuid4().bytes * 4096)
    push(engine, reference)
    pushed = engine.json("GET", f"/images/{reference}/json")
    digest = next(d for d in pushed["RepoDigests"] if d.startswith(f"{registry.address}/pulltest@"))
    engine.json("DELETE", f"/images/{reference}")
    assert engine.request("GET", f"/images/{reference}/json")[0] == 404

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    pulled = await client.ok("docker_image_pull", {"image": reference}, progress=on_progress)
    assert pulled["image"] == reference and pulled["repo_digest"] == digest
    assert pulled["image_id"] == pushed["Id"] and pulled["layers"] == 1
    assert pulled["status"].startswith("Status: Downloaded newer image")

    messages = [m or "" for _, _, m in progress]
    assert any("Pull complete" in m for m in messages), messages
    assert any(m.startswith("Digest: sha256:") for m in messages)
    sized = [(done, total) for done, total, _ in progress if total]
    assert sized and sized[-1][0] == sized[-1][1]
    assert [done for done, _ in sized] == sorted(done for done, _ in sized)

    upstream = last_span(app, "docker_image_pull")["upstream"]
    assert upstream["repo_digest"] == digest and upstream["image_id"] == pushed["Id"]
    assert upstream["image_ref"] == reference and upstream["api_version"] == "1.41"

    again = await client.ok("docker_image_pull", {"image": reference})
    assert again["status"].startswith("Status: Image is up to date") and again["repo_digest"] == digest
    check_against_spec("/images/{name}/json", "get", "200", engine.json("GET", f"/images/{reference}/json"))


async def test_pull_of_a_missing_tag_is_a_clear_error(client: Caller, registry: Registry) -> None:
    message = await client.error("docker_image_pull", {"image": f"{registry.address}/pulltest:no-such-tag"})
    assert f"pulling '{registry.address}/pulltest'" in message and "not found" in message
