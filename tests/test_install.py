"""The built wheel, installed into a fresh virtual environment, adds one top-level import package
(``mcp_ledger``) and its ``mcp-ledger serve`` answers ``tools/list``; the source imports only through it."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO_ROOT = Path(__file__).resolve().parent.parent
OWN = ("server", "tools", "provenance")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the development environment has setuptools, and CI has no index for build deps.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("mcp_ledger-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"mcp_ledger"}
    for data in ("tools/catalog.json", "server/py.typed", "tools/py.typed", "provenance/py.typed"):
        assert f"mcp_ledger/{data}" in names
    # every group made it (setuptools follows the links in mcp_ledger/)
    for group in ("docker", "github", "hf", "infer", "k8s", "prov"):
        assert f"mcp_ledger/tools/{group}/__init__.py" in names


@pytest.fixture
def installed(wheel: Path, tmp_path: Path) -> Path:
    """A fresh venv with the wheel installed (no dependencies); returns its ``bin``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", purelib], capture_output=True, text=True, check=True).stdout.strip())
    before = {p.name for p in site.iterdir()}
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    added = {p.name for p in site.iterdir()} - before
    packages = {name for name in added if not name.endswith(".dist-info") and name != "__pycache__"}
    assert packages == {"mcp_ledger"}, added
    # The dependencies come from the development environment, read as a plain path: its .pth files (the
    # editable install of this checkout among them) are not processed, so mcp_ledger can only come from
    # the wheel.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = "import mcp_ledger.server.cli as c, sys; print(c.__file__); print('server' in sys.modules)"
    where = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert where[0].startswith(str(site)), where
    assert where[1] == "False", "a bare top-level server module was imported"
    return venv / "bin"


async def test_the_installed_wheel_serves_tools_list_from_a_fresh_venv(installed: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=str(installed / "mcp-ledger"),
        args=["serve", "--ledger-dir", str(tmp_path / "ledger")],
        cwd=str(tmp_path),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
    assert {"prov_query", "docker_container_list", "github_run_list"} <= {t.name for t in tools}


def test_the_source_imports_its_packages_only_through_mcp_ledger() -> None:
    """``import server`` beside ``import mcp_ledger.server`` would load every module twice (two registries)."""
    bare = re.compile(rf"^\s*(from|import) ({'|'.join(OWN)})(\.|\s)", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in (*OWN, "tests", "bench", "scripts")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if bare.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
