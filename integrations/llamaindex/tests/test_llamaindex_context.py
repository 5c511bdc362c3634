"""Context selection in a real LlamaIndex query engine: VectorStoreIndex over Cranfield with
real embeddings, MockLLM (which answers with its prompt), CrossRankRerank's context fields."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank
from pydantic import ValidationError

from crossrank import ConfigError

DATA = Path(__file__).resolve().parents[3] / "notebooks" / "data"
QUERY = json.loads((DATA / "cranfield_llamaindex_queries.json").read_text("utf-8"))[0]["query"]
DEPTH = 20


def length_scorer(pairs):
    """Known scores: the longer the passage, the higher."""
    return [float(len(text)) for _, text in pairs]


@pytest.fixture(scope="module")
def index(cranfield_documents, embed_model):
    return VectorStoreIndex.from_documents(cranfield_documents, embed_model=embed_model)


@pytest.fixture(scope="module")
def ranked_hits(index):
    """The retriever's hits as the reranker orders them: (node id, scored text), best first."""
    hits = index.as_retriever(similarity_top_k=DEPTH).retrieve(QUERY)
    texts = [(h.node.node_id, h.node.get_content(MetadataMode.EMBED)) for h in hits]
    return sorted(texts, key=lambda t: -len(t[1]))  # stable, as the reranker's sort


def query(index, **settings):
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=DEPTH,
        node_postprocessors=[CrossRankRerank(scorer=length_scorer, **settings)],
    )
    return engine.query(QUERY)


def test_context_settings_are_fields_beside_top_n():
    fields = CrossRankRerank.model_fields
    for name in ("top_n", "score_threshold", "min_results", "max_context_tokens"):
        assert name in fields
    assert (
        CrossRankRerank(scorer=length_scorer, top_n=3, score_threshold=0.5).score_threshold == 0.5
    )


@pytest.mark.parametrize("top_n", [None, 2])
def test_threshold_in_a_query_engine_keeps_ties_at_it(index, ranked_hits, top_n):
    threshold = float(len(ranked_hits[3][1]))  # the fourth best's score: kept, and its ties
    kept = [i for i, t in ranked_hits if len(t) >= threshold]
    assert len(kept) >= 4
    response = query(index, score_threshold=threshold, top_n=top_n)
    got = [n.node.node_id for n in response.source_nodes]
    assert got == (kept if top_n is None else kept[:top_n])
    assert all(n.score >= threshold for n in response.source_nodes)


def test_a_threshold_above_every_score_leaves_the_llm_no_context(index, ranked_hits):
    response = query(index, score_threshold=1e9)
    assert response.source_nodes == []


def test_the_floor_holds_in_a_query_engine(index, ranked_hits):
    response = query(index, score_threshold=1e9, min_results=2)
    assert [n.node.node_id for n in response.source_nodes] == [i for i, _ in ranked_hits[:2]]
    response = query(index, score_threshold=1e9, min_results=3, top_n=1)
    assert [n.node.node_id for n in response.source_nodes] == [ranked_hits[0][0]]


def test_token_budget_in_a_query_engine(index, ranked_hits, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    counts = [len(tok(t, add_special_tokens=False)["input_ids"]) for _, t in ranked_hits]
    budget = sum(counts[:3]) + counts[3] - 1  # the fourth does not fit
    response = query(index, max_context_tokens=budget, context_tokenizer=tiny_model)
    sources = response.source_nodes
    assert [n.node.node_id for n in sources] == [i for i, _ in ranked_hits[:3]]
    assert [n.node.metadata["context_tokens"] for n in sources] == counts[:3]
    prompt = str(response)  # MockLLM: the prompt the LLM saw
    assert "context_tokens" not in prompt
    # Combined with top_n and a threshold.
    response = query(
        index,
        top_n=2,
        score_threshold=float(len(ranked_hits[2][1])),
        max_context_tokens=counts[0],
        context_tokenizer=tiny_model,
    )
    assert [n.node.node_id for n in response.source_nodes] == [ranked_hits[0][0]]


def test_async_query_engine_selects_the_same(index):
    engine = index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=DEPTH,
        node_postprocessors=[CrossRankRerank(scorer=length_scorer, top_n=5, score_threshold=300.0)],
    )
    sync = [n.node.node_id for n in engine.query(QUERY).source_nodes]
    assert [n.node.node_id for n in asyncio.run(engine.aquery(QUERY)).source_nodes] == sync


def test_postprocess_nodes_returns_a_list_that_counts_what_it_dropped():
    nodes = [NodeWithScore(node=TextNode(text="x" * n, id_=str(n)), score=0.1) for n in (3, 9, 5)]
    out = CrossRankRerank(scorer=length_scorer, top_n=2, score_threshold=6.0).postprocess_nodes(
        nodes, QueryBundle("q")
    )
    assert isinstance(out, list) and [n.node.node_id for n in out] == ["9"]
    assert out.dropped["top_k"] == 1 and out.dropped["score_threshold"] == 1


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"score_threshold": float("inf")}, "score_threshold"),
        ({"max_context_tokens": -1, "context_tokenizer": "cl100k_base"}, "max_context_tokens"),
        ({"min_results": -4}, "min_results"),
        ({"max_context_tokens": 10}, "needs context_tokenizer"),
    ],
)
def test_bad_values_name_the_setting(settings, named):
    with pytest.raises(ValidationError, match=named):
        CrossRankRerank(scorer=length_scorer, **settings)


def test_a_missing_tokenizer_fails_before_scoring():
    calls = []

    def scorer(pairs):
        calls.append(pairs)
        return length_scorer(pairs)

    post = CrossRankRerank(
        scorer=scorer, max_context_tokens=50, context_tokenizer="no-such-org/no-such-tokenizer"
    )
    with pytest.raises(ConfigError, match="context_tokenizer"):
        post.postprocess_nodes([NodeWithScore(node=TextNode(text="wing"))], QueryBundle("q"))
    assert calls == []
