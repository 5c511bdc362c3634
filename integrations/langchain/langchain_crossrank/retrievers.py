"""`CrossRankRetriever`: a first-stage retriever followed by crossrank, with langchain-core only.

``reranker.as_retriever(base_retriever)`` builds one. It does what
``ContextualCompressionRetriever(base_compressor=reranker, base_retriever=...)`` from
langchain-classic does, without that dependency, and adds a per-call ``top_k``:
``retriever.invoke(query, top_k=3)``.
"""

from __future__ import annotations

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from pydantic import ConfigDict

from langchain_crossrank.rerank import _UNSET, CrossRankReranker


class CrossRankRetriever(BaseRetriever):
    """Retrieve with `base_retriever`, then rerank with `reranker`, best first.

    Example:
        ```python
        retriever = CrossRankRetriever(
            base_retriever=vector_store.as_retriever(search_kwargs={"k": 20}),
            reranker=CrossRankReranker(top_k=5),
        )
        docs = retriever.invoke("what is a cross-encoder?")
        ```
    """

    base_retriever: RetrieverLike
    """The first stage: any retriever (or runnable) mapping a query to `Document`s."""

    reranker: CrossRankReranker
    """The rerank stage."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        top_k: int | None = _UNSET,
    ) -> list[Document]:
        documents = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        return self.reranker.rerank(documents, query, top_k=top_k)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        top_k: int | None = _UNSET,
    ) -> list[Document]:
        documents = await self.base_retriever.ainvoke(
            query, config={"callbacks": run_manager.get_child()}
        )
        return await self.reranker.arerank(documents, query, top_k=top_k)


__all__ = ["CrossRankRetriever"]
