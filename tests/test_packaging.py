"""The three packages build, and what they hold passes scripts/check_dist.py (licence, py.typed,
contents, metadata, absolute README links). `make dist` also installs them into a fresh venv."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECTS = [REPO, REPO / "integrations" / "langchain", REPO / "integrations" / "llamaindex"]


def _check_dist():
    spec = importlib.util.spec_from_file_location("check_dist", REPO / "scripts" / "check_dist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO / "scripts" / "check_dist.py").is_file():
        pytest.skip("not a repository checkout (the sdist has no scripts/)")
    out = tmp_path_factory.mktemp("dist")
    for project in PROJECTS:
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return out


def test_built_packages_pass_the_release_checks(dist):
    assert _check_dist().check(dist) == []


def test_the_check_finds_a_wheel_without_licence_or_types(dist, tmp_path):
    """The check can fail: a wheel stripped of its LICENSE and py.typed is reported."""
    for built in dist.iterdir():
        shutil.copy(built, tmp_path / built.name)
    (wheel,) = tmp_path.glob("crossrank-*.whl")
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(stripped, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith(("/licenses/LICENSE", "/py.typed")):
                dst.writestr(item, src.read(item))
    stripped.replace(wheel)
    problems = _check_dist().check(tmp_path)
    assert any("licenses/LICENSE" in p for p in problems)
    assert any("crossrank/py.typed" in p for p in problems)
