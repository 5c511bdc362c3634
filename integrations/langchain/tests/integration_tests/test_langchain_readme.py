"""The README's LangChain example runs as written (with the model CI gives it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[4] / "README.md"


def langchain_example() -> str:
    if not README.is_file():
        pytest.skip(f"{README} not found (the package is tested outside its repository)")
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## LangChain\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the LangChain section has one copy-paste example"
    return blocks[0]


def test_readme_langchain_example_runs(tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("CROSSRANK_MODEL", tiny_model)
    exec(compile(langchain_example(), str(README), "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3  # two reranked documents (top_k=2), then the retriever's ids
    ranked = [line.split()[:2] for line in lines[:2]]
    assert [position for _, position in ranked] == ["0", "1"]
    assert {doc_id for doc_id, _ in ranked} <= {"a", "b", "c"}
    assert "'relevance_score'" in lines[0] and "'original_score'" in lines[0]
    retrieved = eval(lines[2])  # a printed list of ids
    assert len(retrieved) == 2 and set(retrieved) <= {"a", "b", "c"}
