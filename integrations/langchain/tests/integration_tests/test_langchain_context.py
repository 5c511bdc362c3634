"""Context selection in LangChain: the compressor inside a real ContextualCompressionRetriever
over a vector store with real embeddings; score_threshold as FlashrankRerank's."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import CrossRankReranker
from pydantic import ValidationError

from crossrank import ConfigError

retrievers = pytest.importorskip(
    "langchain_classic.retrievers", reason="langchain-classic is not installed"
)

CORPUS = {
    "wing": "Lift distribution over a swept wing in a propeller slipstream at low speed.",
    "heat": "Aerodynamic heating of aircraft structures during supersonic flight.",
    "aeroelastic": "Similarity laws for aeroelastic models of heated high speed aircraft.",
    "boundary": "Laminar boundary layer transition on a flat plate with suction.",
    "shock": "Shock wave interaction with a turbulent boundary layer on a cone.",
    "panel": "Flutter of heated panels at supersonic speeds and thermal stresses.",
}
# Known scores by document, two of them tied at 0.5.
SCORES = {
    "aeroelastic": 0.9,
    "heat": 0.5,
    "panel": 0.5,
    "shock": 0.3,
    "wing": 0.2,
    "boundary": 0.1,
}
BY_TEXT = {CORPUS[k]: v for k, v in SCORES.items()}
QUERY = "what similarity laws apply to aeroelastic models of heated high speed aircraft"


def table_scorer(pairs):
    return [BY_TEXT[text] for _, text in pairs]


@pytest.fixture(scope="module")
def store(embeddings) -> InMemoryVectorStore:
    docs = [Document(page_content=t, metadata={"topic": k}, id=k) for k, t in CORPUS.items()]
    return InMemoryVectorStore.from_documents(docs, embeddings)


def retrieve(store, **settings) -> list[Document]:
    ccr = retrievers.ContextualCompressionRetriever(
        base_compressor=CrossRankReranker(scorer=table_scorer, **settings),
        base_retriever=store.as_retriever(search_kwargs={"k": len(CORPUS)}),
    )
    return ccr.invoke(QUERY)


def first_stage_order(store) -> list[str]:
    return [d.id for d in store.as_retriever(search_kwargs={"k": len(CORPUS)}).invoke(QUERY)]


def test_score_threshold_is_flashranks_field():
    # FlashrankRerank(score_threshold=...): keep documents whose score is >= it, after top_n.
    field = CrossRankReranker.model_fields["score_threshold"]
    assert field.default is None and "inclusive" in field.description
    assert CrossRankReranker(scorer=table_scorer, score_threshold=0.5).score_threshold == 0.5


# T1, T2: the two documents tied at 0.5 (heat, panel), in the first stage's order, which a
# stable sort keeps between them.
@pytest.mark.parametrize(
    ("settings", "kept"),
    [
        ({"score_threshold": 0.5}, ["aeroelastic", "T1", "T2"]),  # ties at the threshold kept
        ({"score_threshold": 0.5, "top_n": 2}, ["aeroelastic", "T1"]),  # top_n first
        ({"score_threshold": 0.25, "top_n": 5}, ["aeroelastic", "T1", "T2", "shock"]),
        ({"top_n": 2}, ["aeroelastic", "T1"]),
        ({"score_threshold": 0.95}, []),  # min_results=0: nothing
        ({"score_threshold": 0.95, "min_results": 2}, ["aeroelastic", "T1"]),  # the floor
        ({"score_threshold": 0.95, "min_results": 3, "top_n": 2}, ["aeroelastic", "T1"]),
    ],
)
def test_threshold_inside_a_contextual_compression_retriever(store, settings, kept):
    t1, t2 = sorted(["heat", "panel"], key=first_stage_order(store).index)
    got = retrieve(store, **settings)
    assert [d.id for d in got] == [{"T1": t1, "T2": t2}.get(k, k) for k in kept]
    assert [d.metadata["relevance_score"] for d in got] == [SCORES[d.id] for d in got]
    assert all("context_tokens" not in d.metadata for d in got)


def test_the_compressor_returns_a_list_that_counts_what_it_dropped(store):
    reranker = CrossRankReranker(scorer=table_scorer, top_n=5, score_threshold=0.5)
    docs = store.as_retriever(search_kwargs={"k": len(CORPUS)}).invoke(QUERY)
    got = reranker.compress_documents(docs, QUERY)
    assert isinstance(got, list) and len(got) == 3
    assert got.dropped["top_k"] == 1 and got.dropped["score_threshold"] == 2


def test_token_budget_inside_a_contextual_compression_retriever(store, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    count = {k: len(tok(t, add_special_tokens=False)["input_ids"]) for k, t in CORPUS.items()}
    order = first_stage_order(store)
    best = ["aeroelastic", *sorted(["heat", "panel"], key=order.index)]
    budget = count[best[0]] + count[best[1]] + count[best[2]] - 1  # the third does not fit
    got = retrieve(store, max_context_tokens=budget, context_tokenizer=tiny_model)
    assert [d.id for d in got] == best[:2]
    assert [d.metadata["context_tokens"] for d in got] == [count[k] for k in best[:2]]
    assert [d.page_content for d in got] == [CORPUS[k] for k in best[:2]]  # never cut
    # With top_n and a threshold too.
    got = retrieve(
        store,
        top_n=1,
        score_threshold=0.5,
        max_context_tokens=count["aeroelastic"],
        context_tokenizer=tiny_model,
    )
    assert [(d.id, d.metadata["context_tokens"]) for d in got] == [
        ("aeroelastic", count["aeroelastic"])
    ]


async def test_async_retriever_selects_the_same(store):
    ccr = retrievers.ContextualCompressionRetriever(
        base_compressor=CrossRankReranker(scorer=table_scorer, score_threshold=0.5),
        base_retriever=store.as_retriever(search_kwargs={"k": len(CORPUS)}),
    )
    assert [d.id for d in await ccr.ainvoke(QUERY)] == [d.id for d in ccr.invoke(QUERY)]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"max_context_tokens": -3, "context_tokenizer": "cl100k_base"}, "max_context_tokens"),
        ({"min_results": -1}, "min_results"),
        ({"max_context_tokens": 30}, "needs context_tokenizer"),
    ],
)
def test_bad_values_name_the_setting(settings, named):
    with pytest.raises(ValidationError, match=named):
        CrossRankReranker(scorer=table_scorer, **settings)


def test_a_missing_tokenizer_fails_before_scoring(store):
    calls = []

    def scorer(pairs):
        calls.append(pairs)
        return table_scorer(pairs)

    reranker = CrossRankReranker(
        scorer=scorer, max_context_tokens=50, context_tokenizer="no-such-org/no-such-tokenizer"
    )
    with pytest.raises(ConfigError, match="context_tokenizer"):
        reranker.compress_documents([Document(page_content="wing")], QUERY)
    assert calls == []
