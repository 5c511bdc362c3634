"""crossrank in real LangChain pipelines: real embeddings, a vector store, runnables."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import CrossRankReranker

from crossrank import CrossEncoderScorer

CORPUS = [
    ("wing", "Lift distribution over a swept wing in a propeller slipstream at low speed."),
    ("heat", "Aerodynamic heating of aircraft structures during supersonic flight."),
    ("aeroelastic", "Similarity laws for aeroelastic models of heated high speed aircraft."),
    ("boundary", "Laminar boundary layer transition on a flat plate with suction."),
    ("shock", "Shock wave interaction with a turbulent boundary layer on a cone."),
    ("panel", "Flutter of heated panels at supersonic speeds and thermal stresses."),
    ("buckling", "Buckling of thin cylindrical shells under axial compression."),
    ("nozzle", "Flow in a convergent divergent nozzle with real gas effects."),
]
QUERY = "what similarity laws apply to aeroelastic models of heated high speed aircraft"


class RecordingScorer:
    """A real cross-encoder that remembers the score it gave each text."""

    def __init__(self, model: str) -> None:
        self.inner = CrossEncoderScorer(model)
        self.given: dict[str, float] = {}

    def score(self, pairs):
        scores = [float(s) for s in self.inner.score(pairs)]
        self.given.update({text: s for (_, text), s in zip(pairs, scores, strict=True)})
        return scores


@pytest.fixture(scope="module")
def store(embeddings) -> InMemoryVectorStore:
    docs = [
        Document(page_content=text, metadata={"topic": topic}, id=topic) for topic, text in CORPUS
    ]
    return InMemoryVectorStore.from_documents(docs, embeddings)


def _format(docs: list[Document]) -> str:
    return "\n".join(
        f"[{d.metadata['rerank_position']}] {d.id} ({d.metadata['relevance_score']:.4f}): "
        f"{d.page_content}"
        for d in docs
    )


def test_first_stage_uses_real_embeddings(store):
    first = store.as_retriever(search_kwargs={"k": 3}).invoke(QUERY)
    assert first[0].id == "aeroelastic"


def test_rag_chain_reranked_order_is_the_order_of_the_scorer_scores(store, tiny_model):
    scorer = RecordingScorer(tiny_model)
    reranker = CrossRankReranker(scorer=scorer, top_k=4)
    first_stage = store.as_retriever(search_kwargs={"k": 6})
    retriever = reranker.as_retriever(first_stage)
    seen: list[list[Document]] = []

    def keep(docs: list[Document]) -> list[Document]:
        seen.append(docs)
        return docs

    chain = {
        "context": retriever | RunnableLambda(keep) | RunnableLambda(_format),
        "question": RunnablePassthrough(),
    } | RunnableLambda(lambda x: f"Context:\n{x['context']}\n\nQuestion: {x['question']}")
    prompt = chain.invoke(QUERY)

    candidates = first_stage.invoke(QUERY)
    assert set(scorer.given) == {d.page_content for d in candidates}
    by_score = sorted(candidates, key=lambda d: -scorer.given[d.page_content])[:4]
    (reranked,) = seen
    assert [d.id for d in reranked] == [d.id for d in by_score]
    assert [d.metadata["relevance_score"] for d in reranked] == [
        scorer.given[d.page_content] for d in by_score
    ]
    lines = prompt.split("\n")[1:5]
    assert [line.split()[1] for line in lines] == [d.id for d in by_score]
    assert prompt.endswith(f"Question: {QUERY}")


async def test_rag_chain_async_equals_sync(store, tiny_model):
    reranker = CrossRankReranker(model=tiny_model, top_k=3)
    chain = reranker.as_retriever(store.as_retriever(search_kwargs={"k": 6})) | RunnableLambda(
        _format
    )
    assert await chain.ainvoke(QUERY) == chain.invoke(QUERY)


def test_inside_contextual_compression_retriever(store, tiny_model):
    retrievers = pytest.importorskip(
        "langchain_classic.retrievers", reason="langchain-classic is not installed"
    )
    reranker = CrossRankReranker(model=tiny_model, top_k=3)
    base = store.as_retriever(search_kwargs={"k": 6})
    ccr = retrievers.ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)
    got = ccr.invoke(QUERY)
    ours = reranker.as_retriever(base).invoke(QUERY)
    assert [(d.id, d.metadata) for d in got] == [(d.id, d.metadata) for d in ours]
    assert len(got) == 3


async def test_inside_contextual_compression_retriever_async(store, tiny_model):
    retrievers = pytest.importorskip(
        "langchain_classic.retrievers", reason="langchain-classic is not installed"
    )
    reranker = CrossRankReranker(model=tiny_model, top_k=3)
    ccr = retrievers.ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 6})
    )
    assert [d.id for d in await ccr.ainvoke(QUERY)] == [d.id for d in ccr.invoke(QUERY)]


@pytest.mark.trained_model
def test_trained_model_puts_the_relevant_document_first(store, trained_model):
    reranker = CrossRankReranker(model=trained_model, top_k=3)
    docs = reranker.as_retriever(store.as_retriever(search_kwargs={"k": 8})).invoke(QUERY)
    assert docs[0].id == "aeroelastic"
    assert 0.0 < docs[-1].metadata["relevance_score"] < docs[0].metadata["relevance_score"] < 1.0
