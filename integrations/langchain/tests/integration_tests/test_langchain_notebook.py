"""notebooks/langchain_rag.ipynb runs top to bottom on the trained fixture model."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[4] / "notebooks" / "langchain_rag.ipynb"


@pytest.mark.notebook
@pytest.mark.trained_model
def test_langchain_rag_notebook_runs(trained_model, monkeypatch):
    if not NOTEBOOK.is_file():
        pytest.skip(f"{NOTEBOOK} not found (the package is tested outside its repository)")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CROSSRANK_MODEL", trained_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any failure
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("name") == "stdout"
    )
    assert f"reranker model: {trained_model}" in text
    assert text.count("judged relevant in the top 5:") == 5
    assert "async results equal the sync ones for all 5 queries" in text
