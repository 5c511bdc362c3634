"""Loading a model prints nothing (transformers' "Loading weights" bar stays off) unless the
user asked to see what crossrank does, and transformers' own setting is left as it was."""

from __future__ import annotations

import logging

import pytest
from transformers.utils import logging as hf_logging

from crossrank import Reranker
from crossrank.testing import build_tiny_cross_encoder


@pytest.fixture
def fresh_model(tmp_path):
    """A model folder no other test has loaded (loaded models are shared per process)."""
    return str(build_tiny_cross_encoder(tmp_path / "model"))


def test_loading_a_model_draws_no_progress_bar(fresh_model, capfd):
    capfd.readouterr()
    before = hf_logging.is_progress_bar_enabled()
    Reranker(model=fresh_model).rerank("q", ["a", "b"])
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() == before


def test_the_bar_shows_when_the_crossrank_logger_is_at_info(fresh_model, capfd, caplog):
    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("transformers' progress bars are switched off in this environment")
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        Reranker(model=fresh_model).rerank("q", ["a", "b"])
    assert "Loading weights" in capfd.readouterr().err
    assert any("loading reranker" in r.getMessage() for r in caplog.records)
