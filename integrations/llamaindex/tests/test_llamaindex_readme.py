"""The README's LlamaIndex example runs as written (with CROSSRANK_MODEL naming a local model)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def llamaindex_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## LlamaIndex\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's LlamaIndex section has no python example"
    return blocks[0]


def test_readme_llamaindex_example_runs(tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("CROSSRANK_MODEL", tiny_model)
    exec(compile(llamaindex_example(), str(README), "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # top_n=2 of three nodes
    positions = [line.split()[0] for line in lines]
    assert positions == ["0", "1"]
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert {line.split()[2] for line in lines} <= {"0.51", "0.42", "0.4"}
