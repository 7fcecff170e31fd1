"""The build context as the engine receives it: .dockerignore by the Docker CLI's rules, links kept as
links and only inside the context, the Dockerfile always sent, the limits."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from mcp_ledger.tools.docker import _build_context
from mcp_ledger.tools.docker._build_context import ContextRefused, DockerIgnore, pack_context, resolve_context
from mcp_ledger.tools.docker.builds import base_references, checked_reference
from mcp_ledger.tools.group import InvalidArguments, WorkerCall


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        ("*.log", "a.log", True),
        ("*.log", "sub/a.log", False),  # '*' stays in one directory
        ("**/*.log", "sub/deep/a.log", True),
        ("**/*.log", "a.log", True),
        ("logs", "logs/today/a.txt", True),  # a directory's pattern covers what is under it
        ("logs/", "logs/a.txt", True),
        ("/secret.txt", "secret.txt", True),
        ("*.log\n!keep.log", "keep.log", False),
        ("*.log\n!keep.log\nkeep.log", "keep.log", True),  # the last matching line wins
        ("te?t[0-9].md", "test1.md", True),
        ("te?t[0-9].md", "test12.md", False),
        ("# a comment\n\n  build  ", "build/out", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/c", False),
    ],
)
def test_dockerignore_follows_the_docker_cli(patterns: str, path: str, ignored: bool) -> None:
    assert DockerIgnore(patterns).ignored(path) is ignored


def _names(directory: Path, dockerfile: str = "Dockerfile") -> dict[str, tarfile.TarInfo]:
    context = resolve_context(str(directory), dockerfile, [str(directory.parent)])
    out, size, files = pack_context(context, WorkerCall(None, "test"))
    try:
        with tarfile.open(fileobj=out) as tar:
            members = {m.name: m for m in tar.getmembers()}
    finally:
        out.close()
    assert files == len(members) and size > 0
    return members


def test_the_dockerfile_and_dockerignore_are_sent_even_when_ignored_and_links_stay_links(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "node_modules" / "x").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "src" / "main.py").write_text("print(1)\n")
    (ctx / "node_modules" / "x" / "big").write_text("x")
    (ctx / "src" / "current").symlink_to("main.py")
    (ctx / "linked-dir").symlink_to("src")
    (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\nnode_modules\n")
    members = _names(ctx)
    assert set(members) == {"Dockerfile", ".dockerignore", "src", "src/main.py", "src/current", "linked-dir"}
    assert members["src/current"].issym() and members["src/current"].linkname == "main.py"
    assert members["linked-dir"].issym() and members["src/main.py"].uid == 0


def test_an_exception_under_an_ignored_directory_brings_that_file_back(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "build" / "keep").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "build" / "drop.o").write_text("x")
    (ctx / "build" / "keep" / "me.txt").write_text("x")
    (ctx / ".dockerignore").write_text("build\n!build/keep/me.txt\n")
    assert "build/keep/me.txt" in _names(ctx) and "build/drop.o" not in _names(ctx)


def test_links_out_of_the_context_odd_files_and_limits_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "up").symlink_to("../../..")
    with pytest.raises(ContextRefused, match="up in the build context is a symbolic link that leads out of it"):
        _names(ctx)
    (ctx / "up").unlink()
    import os

    os.mkfifo(ctx / "pipe")
    with pytest.raises(ContextRefused, match="pipe in the build context is not a file, directory or link"):
        _names(ctx)
    (ctx / "pipe").unlink()
    monkeypatch.setattr(_build_context, "MAX_CONTEXT_FILES", 3)
    for i in range(4):
        (ctx / f"f{i}").write_text("x")
    with pytest.raises(ContextRefused, match="more than 3 files"):
        _names(ctx)


def test_a_dockerfile_under_an_ignored_directory_is_still_sent(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "docker").mkdir(parents=True)
    (ctx / "docker" / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "docker" / "other").write_text("x")
    (ctx / ".dockerignore").write_text("docker\n")
    assert set(_names(ctx, "docker/Dockerfile")) == {".dockerignore", "docker/Dockerfile"}


def test_base_images_are_the_from_lines_with_build_args_applied_not_stages_or_scratch() -> None:
    dockerfile = (
        "# comment\nARG REGISTRY=docker.io\nARG TAG\n"
        "FROM --platform=linux/amd64 ${REGISTRY}/library/alpine:${TAG:-3} AS build\n"
        "RUN make \\\n    all\nfrom build AS test\nFROM scratch\nFROM $REGISTRY/busybox\nCOPY --from=build /x /x\n"
    )
    assert base_references(dockerfile, {"TAG": "3.20"}) == ["docker.io/library/alpine:3.20", "docker.io/busybox"]
    assert base_references(dockerfile, {"REGISTRY": "127.0.0.1:5000"})[0] == "127.0.0.1:5000/library/alpine:3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("127.0.0.1:5000/a/b:v1.2", ("127.0.0.1:5000/a/b", "v1.2")),
        ("localhost/x_y__z-w:T", ("localhost/x_y__z-w", "T")),
        ("Upper/case", None),
        ("a:b:c", None),
        ("a@sha256:" + "0" * 64, None),
        ("a/../b", None),
        ("x:" + "t" * 129, None),
        ("host:99999999/a", None),
    ],
)
def test_references_are_checked_before_they_reach_the_engine(value: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidArguments, match="not an image reference") as caught:
            checked_reference(value, "image")
        assert value not in str(caught.value)
    else:
        assert checked_reference(value, "image") == expected
