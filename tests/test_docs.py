"""The docs site's API reference names every public name of the three packages.

The reference pages (docs/api/*.md) are mkdocstrings `::: dotted.name` directives; `make docs`
(strict) proves each directive resolves, this test proves none is missing. A name added to an
`__all__` without a directive fails here, naming the name and the page to add it to.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)

# (module, its reference page); `__version__` is a version string, not an API to document.
PACKAGES = [
    ("crossrank", "crossrank.md"),
    ("langchain_crossrank", "langchain.md"),
    ("llama_index.postprocessor.crossrank", "llamaindex.md"),
]


def documented(page: Path) -> set[str]:
    """The dotted names a reference page renders."""
    return set(DIRECTIVE.findall(page.read_text(encoding="utf-8")))


def missing_names(module_name: str, page: Path) -> list[str]:
    module = pytest.importorskip(module_name)
    names = documented(page)
    return [
        name
        for name in module.__all__
        if name != "__version__" and f"{module_name}.{name}" not in names
    ]


@pytest.mark.parametrize(("module_name", "page"), PACKAGES)
def test_every_public_name_is_in_the_api_reference(module_name: str, page: str) -> None:
    missing = missing_names(module_name, API / page)
    assert not missing, f"docs/api/{page} lacks `::: {module_name}.NAME` for: {missing}"


def test_a_missing_name_is_reported(tmp_path: Path) -> None:
    """The check can fail: a page without one of crossrank's names reports exactly that name."""
    page = (API / "crossrank.md").read_text(encoding="utf-8")
    cut = tmp_path / "crossrank.md"
    cut.write_text(page.replace("::: crossrank.Reranker\n", ""), encoding="utf-8")
    assert missing_names("crossrank", cut) == ["Reranker"]


def test_every_page_is_in_the_nav() -> None:
    """mkdocs only warns about a page left out of nav; this keeps docs/ and nav in step."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert [p for p in pages if f": {p}" not in nav] == []
