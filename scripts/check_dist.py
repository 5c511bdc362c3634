"""Check the built packages: what each wheel and sdist holds and what its metadata says.

    python scripts/check_dist.py dist/

`make dist` runs it after `twine check` (which checks the metadata renders); tests/test_packaging.py
runs it on a fresh build. Prints one line per artifact and exits 1 listing every problem found.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LICENSE = (REPO / "LICENSE").read_text(encoding="utf-8")

# distribution name -> (wheel file prefix, the import package's folder in the wheel)
PACKAGES = {
    "crossrank": ("crossrank", "crossrank"),
    "langchain-crossrank": ("langchain_crossrank", "langchain_crossrank"),
    "llama-index-postprocessor-crossrank": (
        "llama_index_postprocessor_crossrank",
        "llama_index/postprocessor/crossrank",
    ),
}
# Repository tooling that is not part of the core package.
NOT_IN_CORE_SDIST = ("integrations/", "benchmarks/", "notebooks/", "scripts/", ".ci/")
# A markdown link whose target is neither absolute nor an anchor: broken on PyPI.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)")


def _one(folder: Path, pattern: str, problems: list[str]) -> Path | None:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        problems.append(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
        return None
    return found[0]


def check_metadata(name: str, text: str, where: str, problems: list[str]) -> None:
    meta = Parser().parsestr(text)
    if meta.get("License-Expression") != "Apache-2.0":
        problems.append(f"{where}: License-Expression is {meta.get('License-Expression')!r}")
    if "LICENSE" not in (meta.get_all("License-File") or []):
        problems.append(f"{where}: no License-File: LICENSE")
    if not meta.get_all("Project-URL"):
        problems.append(f"{where}: no Project-URL")
    for extra in meta.get_all("Provides-Extra") or []:
        if extra in ("dev", "test"):
            problems.append(f"{where}: test tooling published as the extra {extra!r}")
    description = meta.get_payload() or ""
    for target in RELATIVE_LINK.findall(description):
        problems.append(f"{where}: relative link {target!r} in the description breaks on PyPI")
    if name != "crossrank":
        core = [
            Requirement(r)
            for r in meta.get_all("Requires-Dist") or []
            if Requirement(r).name == "crossrank"
        ]
        ok = len(core) == 1 and Version("0.2") not in core[0].specifier
        if not ok or Version("0.1.0") not in core[0].specifier:
            problems.append(f"{where}: crossrank is not bounded >=0.1,<0.2: {core}")


def check_wheel(name: str, wheel: Path, problems: list[str]) -> None:
    package = PACKAGES[name][1]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        licence = f"{info}/licenses/LICENSE"
        if licence not in names:
            problems.append(f"{wheel.name}: no {licence}")
        elif z.read(licence).decode("utf-8") != LICENSE:
            problems.append(f"{wheel.name}: {licence} is not the repository's LICENSE")
        if f"{package}/py.typed" not in names:
            problems.append(f"{wheel.name}: no {package}/py.typed")
        outside = sorted(n for n in names if not n.startswith((package + "/", info + "/")))
        if outside:
            problems.append(f"{wheel.name}: files outside {package}/: {outside[:5]}")
        check_metadata(name, z.read(f"{info}/METADATA").decode("utf-8"), wheel.name, problems)


def check_sdist(name: str, sdist: Path, problems: list[str]) -> None:
    with tarfile.open(sdist) as t:
        root = sdist.name.removesuffix(".tar.gz")
        members = [m.name.removeprefix(root + "/") for m in t.getmembers() if m.isfile()]
        for required in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO"):
            if required not in members:
                problems.append(f"{sdist.name}: no {required}")
        if name == "crossrank":
            extra = sorted(m for m in members if m.startswith(NOT_IN_CORE_SDIST))
            if extra:
                problems.append(f"{sdist.name}: repository tooling in the core sdist: {extra[:5]}")
        pkg_info = t.extractfile(f"{root}/PKG-INFO")
        if pkg_info is not None:
            check_metadata(name, pkg_info.read().decode("utf-8"), sdist.name, problems)


def check(folder: Path) -> list[str]:
    problems: list[str] = []
    for name, (prefix, _package) in PACKAGES.items():
        wheel = _one(folder, f"{prefix}-*.whl", problems)
        if wheel is not None:
            check_wheel(name, wheel, problems)
            print(f"checked {wheel.name}")
        sdist = _one(folder, f"{prefix}-*.tar.gz", problems)
        if sdist is not None:
            check_sdist(name, sdist, problems)
            print(f"checked {sdist.name}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_dist.py DIST_FOLDER", file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
