"""CrossRankRetriever / as_retriever with langchain-core alone, sync and async."""

from __future__ import annotations

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_crossrank import CrossRankReranker, CrossRankRetriever


class ListRetriever(BaseRetriever):
    """A first stage that returns fixed documents, in a fixed order."""

    docs: list[Document]

    def _get_relevant_documents(self, query, *, run_manager):
        return list(self.docs)


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[str] = []

    def on_retriever_start(self, serialized, query, **kwargs):
        self.starts.append(kwargs.get("name") or "")


def test_as_retriever_reranks_the_first_stage(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer, top_k=2, original_score_key="score")
    retriever = reranker.as_retriever(ListRetriever(docs=documents))
    assert isinstance(retriever, CrossRankRetriever)
    got = retriever.invoke("what is a cross-encoder passage")
    assert [(d.id, d.metadata) for d in got] == [
        (d.id, d.metadata)
        for d in reranker.compress_documents(documents, "what is a cross-encoder passage")
    ]
    assert len(got) == 2


async def test_async_retriever_matches_sync(documents, keyword_scorer):
    retriever = CrossRankReranker(scorer=keyword_scorer).as_retriever(ListRetriever(docs=documents))
    sync = retriever.invoke("cross-encoder")
    async_ = await retriever.ainvoke("cross-encoder")
    assert [(d.id, d.metadata) for d in async_] == [(d.id, d.metadata) for d in sync]


def test_per_call_top_k(documents, keyword_scorer):
    retriever = CrossRankReranker(scorer=keyword_scorer).as_retriever(ListRetriever(docs=documents))
    assert len(retriever.invoke("passage")) == 4
    assert len(retriever.invoke("passage", top_k=1)) == 1


def test_any_runnable_can_be_the_first_stage(documents, keyword_scorer):
    first = RunnableLambda(lambda query: documents[:2])
    retriever = CrossRankRetriever(
        base_retriever=first, reranker=CrossRankReranker(scorer=keyword_scorer)
    )
    assert sorted(d.id for d in retriever.invoke("passage")) == ["a", "b"]


def test_callbacks_reach_the_first_stage(documents, keyword_scorer):
    recorder = Recorder()
    retriever = CrossRankReranker(scorer=keyword_scorer).as_retriever(ListRetriever(docs=documents))
    retriever.invoke("passage", config={"callbacks": [recorder]})
    assert recorder.starts == ["CrossRankRetriever", "ListRetriever"]
