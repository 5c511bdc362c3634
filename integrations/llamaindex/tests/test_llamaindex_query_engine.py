"""A real LlamaIndex pipeline: VectorStoreIndex over Cranfield documents with real
all-MiniLM-L6-v2 embeddings, MockLLM (which answers with the prompt it was given, so the test
can read exactly what the LLM saw), and CrossRankRerank as the node postprocessor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode
from llama_index.postprocessor.crossrank import CrossRankRerank

DATA = Path(__file__).resolve().parents[3] / "notebooks" / "data"
JUDGED = json.loads((DATA / "cranfield_llamaindex_queries.json").read_text("utf-8"))[0]
QUERY = JUDGED["query"]  # Cranfield query 1


def length_scorer(pairs):
    """Known scores: the longer the passage, the higher."""
    return [float(len(text)) for _, text in pairs]


@pytest.fixture(scope="module")
def index(cranfield_documents, embed_model):
    return VectorStoreIndex.from_documents(cranfield_documents, embed_model=embed_model)


def expected_top(index, top_n):
    """The retriever's 20 hits, stably sorted by the known score, cut at top_n."""
    hits = index.as_retriever(similarity_top_k=20).retrieve(QUERY)
    assert len(hits) == 20
    # The text scored: the EMBED view (title and text), as in the peer postprocessors.
    ranked = sorted(hits, key=lambda h: -len(h.node.get_content(MetadataMode.EMBED)))[:top_n]
    return [(h.node.node_id, h.score) for h in ranked]


def check_sources(response, expected):
    sources = response.source_nodes
    assert [(n.node.node_id, n.node.metadata["original_score"]) for n in sources] == expected
    assert [n.node.metadata["rerank_position"] for n in sources] == list(range(len(expected)))
    assert [n.score for n in sources] == [
        float(len(n.node.get_content(MetadataMode.EMBED))) for n in sources
    ]
    for n in sources:
        assert "title" in n.node.metadata
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            text = n.node.get_content(metadata_mode=mode)
            assert "title: " in text  # the caller's metadata still shows
            assert "original_score" not in text
            assert "rerank_position" not in text
    # MockLLM answers with its prompt: the LLM saw the reranked nodes and no contract keys.
    prompt = str(response)
    assert "title: " in prompt
    assert "original_score" not in prompt
    assert "rerank_position" not in prompt


def test_query_engine_returns_the_top_n_in_rerank_order(index):
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=20,
        node_postprocessors=[CrossRankRerank(scorer=length_scorer, top_n=5)],
    )
    check_sources(engine.query(QUERY), expected_top(index, 5))


def test_async_query_engine_agrees(index):
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=20,
        node_postprocessors=[CrossRankRerank(scorer=length_scorer, top_n=5)],
    )
    check_sources(asyncio.run(engine.aquery(QUERY)), expected_top(index, 5))


def test_query_engine_with_a_real_cross_encoder(index, tiny_model):
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=20,
        node_postprocessors=[CrossRankRerank(model=tiny_model, top_n=5, device="cpu")],
    )
    sources = engine.query(QUERY).source_nodes
    assert len(sources) == 5
    scores = [n.score for n in sources]
    assert scores == sorted(scores, reverse=True)
    assert all(type(s) is float and 0.0 < s < 1.0 for s in scores)  # sigmoid of one logit
    assert all(isinstance(n.node.metadata["original_score"], float) for n in sources)


@pytest.mark.trained_model
def test_trained_model_puts_a_judged_document_first(trained_model, index):
    """Cranfield query 1 has judged answers (codes 1 to 4) among the indexed documents."""
    judged = {doc for doc, code in JUDGED["qrels"].items() if 1 <= code <= 4}
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=20,
        node_postprocessors=[CrossRankRerank(model=trained_model, top_n=5, device="cpu")],
    )
    sources = engine.query(QUERY).source_nodes
    assert len(sources) == 5
    assert sources[0].node.ref_doc_id in judged
