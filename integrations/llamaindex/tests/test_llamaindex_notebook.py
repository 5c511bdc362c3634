"""notebooks/llamaindex_rag.ipynb runs top to bottom with the trained fixture model."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "llamaindex_rag.ipynb"


@pytest.mark.notebook
@pytest.mark.trained_model
def test_llamaindex_notebook_runs_top_to_bottom(trained_model, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("CROSSRANK_MODEL", trained_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert "the prompt holds no rerank metadata" in outputs
    assert "all: retrieval" in outputs
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
