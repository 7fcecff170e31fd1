"""The bind decision on real files: the resolved host path, no links below an allowed root, read-only by default."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mcp_ledger.tools.docker._binds import BindRefused, check_mounted_binds, resolve_binds
from mcp_ledger.tools.group import InvalidArguments


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "allowed"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("x")
    return root


def test_an_allowed_path_is_bound_read_only_at_its_real_path(allowed: Path) -> None:
    (bind,) = resolve_binds([f"{allowed}/./sub//deeper/:/data"], [str(allowed)], allow_writes=False)
    assert bind.spec == f"{allowed}/sub/deeper:/data:ro"
    (whole,) = resolve_binds([f"{allowed}:/data:ro"], [str(allowed)], allow_writes=False)
    assert whole.spec == f"{allowed}:/data:ro"


def test_a_link_planted_below_the_root_is_refused_wherever_it_points(allowed: Path, tmp_path: Path) -> None:
    (allowed / "hostroot").symlink_to("/")
    (allowed / "sub" / "inside").symlink_to(allowed / "sub" / "deeper")  # even one pointing inside
    for source in (f"{allowed}/hostroot/etc", f"{allowed}/hostroot", f"{allowed}/sub/inside"):
        with pytest.raises(BindRefused, match="is a symbolic link"):
            resolve_binds([f"{source}:/data:ro"], [str(allowed)], allow_writes=True)


def test_a_root_that_is_itself_a_link_is_resolved_and_both_spellings_work(allowed: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(allowed)
    expected = f"{allowed}/sub:/data:ro"
    assert resolve_binds([f"{alias}/sub:/data"], [str(alias)], allow_writes=False)[0].spec == expected
    assert resolve_binds([f"{allowed}/sub:/data"], [str(alias)], allow_writes=False)[0].spec == expected


def test_paths_outside_dotdot_missing_and_odd_files_are_refused(allowed: Path, tmp_path: Path) -> None:
    roots = [str(allowed)]
    cases = {
        f"{tmp_path}": "is not allowed (allowed: ",
        f"{allowed}/../allowed/sub": "is not allowed",
        f"{allowed}-sibling": "is not allowed",
        f"{allowed}/missing/dir": "does not exist",
        f"{allowed}/sub/file.txt/below": "Not a directory",
        f"{allowed}/{'n' * 5000}": "File name too long",
        f"{allowed}/nul\x00byte": "not a usable path",
    }
    for source, expected in cases.items():
        with pytest.raises(BindRefused, match=re.escape(expected)):
            resolve_binds([f"{source}:/data"], roots, allow_writes=True)
    fifo = allowed / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BindRefused, match="only directories and regular files"):
        resolve_binds([f"{fifo}:/data"], roots, allow_writes=True)
    with pytest.raises(BindRefused, match=r"allowed: none\)"):
        resolve_binds([f"{allowed}:/data"], [], allow_writes=True)


def test_writable_binds_need_the_operator(allowed: Path) -> None:
    with pytest.raises(BindRefused, match="--docker-allow-bind-writes"):
        resolve_binds([f"{allowed}/sub:/data:rw"], [str(allowed)], allow_writes=False)
    (bind,) = resolve_binds([f"{allowed}/sub:/data:rw"], [str(allowed)], allow_writes=True)
    assert bind.spec == f"{allowed}/sub:/data:rw"
    (default,) = resolve_binds([f"{allowed}/sub:/data"], [str(allowed)], allow_writes=True)
    assert default.read_only  # writes allowed still means asked for


def test_shapes_and_named_volumes(allowed: Path) -> None:
    for bad in ("nocolon", ":/data", f"{allowed}:relative", f"{allowed}:/a:/b:ro", f"{allowed}:/data:z", "../x:/d"):
        with pytest.raises(InvalidArguments):
            resolve_binds([bad], [str(allowed)], allow_writes=True)
    (volume,) = resolve_binds(["cache-vol:/cache:rw"], [], allow_writes=False)
    assert volume.spec == "cache-vol:/cache:rw"


def test_a_mounted_bind_is_checked_again_before_a_restart(allowed: Path, tmp_path: Path) -> None:
    roots = [str(allowed)]
    check_mounted_binds([f"{allowed}/sub:/data:ro", "/elsewhere:/x", "vol:/v"], roots)
    # A container with a writable bind swaps the checked directory for a link.
    (allowed / "sub").rename(allowed / "moved")
    (allowed / "sub").symlink_to("/")
    with pytest.raises(BindRefused, match="is a symbolic link"):
        check_mounted_binds([f"{allowed}/sub:/data:ro"], roots)
