"""Shared fixtures: tiny real cross-encoders built on disk, and the trained fixture model.

No test reaches the network: the Hugging Face hub is switched to offline mode before any
model code is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One intra-op thread: on a small, shared machine torch's OpenMP threads oversubscribe the CPU
# and a tiny model's forward pass gets 10-25x slower (set OMP_NUM_THREADS to override).
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest

from crossrank.testing import build_tiny_cross_encoder, isolated_export_cache, trained_model_or_skip


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory):
    """Model exports (the default backend converts to OpenVINO) stay in the session's folder."""
    yield from isolated_export_cache(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BertForSequenceClassification cross-encoder folder (one logit)."""
    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce")))


@pytest.fixture(scope="session")
def tiny_model_short(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same kind of model with a 32-token limit, for truncation paths."""
    folder = tmp_path_factory.mktemp("tiny-ce-short")
    return str(build_tiny_cross_encoder(folder, max_position_embeddings=32, seed=1))


@pytest.fixture(scope="session")
def trained_model() -> str:
    """The trained MiniLM-L6 fixture named by CROSSRANK_TEST_MODEL, or skip."""
    return trained_model_or_skip()
