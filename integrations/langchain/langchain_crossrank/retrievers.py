"""`CrossRankRetriever`: a first-stage retriever followed by crossrank, with langchain-core only.

``reranker.as_retriever(base_retriever, top_n=5)`` builds one. It does what
``ContextualCompressionRetriever(base_compressor=reranker, base_retriever=...)`` from
langchain-classic does, without that dependency, and adds the number of results in the
constructor and per call: ``retriever.invoke(query, top_n=3)`` (`top_k` is an alias of
`top_n` in both places, as in `CrossRankReranker`).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from pydantic import ConfigDict, Field, PositiveInt, model_validator

from langchain_crossrank.rerank import _UNSET, CrossRankReranker, call_top_n, top_n_alias


class CrossRankRetriever(BaseRetriever):
    """Retrieve with `base_retriever`, then rerank with `reranker`, best first.

    Example:
        ```python
        retriever = CrossRankRetriever(
            base_retriever=vector_store.as_retriever(search_kwargs={"k": 20}),
            reranker=CrossRankReranker(),
            top_n=5,
        )
        docs = retriever.invoke("what is a cross-encoder?")
        ```

    How many documents come back: the call's `top_n` (or `top_k`), else the retriever's
    `top_n`, else the reranker's (None: all the first stage returned, reordered).
    """

    base_retriever: RetrieverLike
    """The first stage: any retriever (or runnable) mapping a query to `Document`s."""

    reranker: CrossRankReranker
    """The rerank stage."""

    top_n: PositiveInt | None = Field(default=None)
    """How many documents to return (alias `top_k`); None: the reranker's `top_n`."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _top_k_alias(cls, data: Any) -> Any:
        return top_n_alias(data)

    def _top_n(self, top_n: Any, top_k: Any) -> Any:
        per_call = call_top_n(top_n, top_k)
        if per_call is not _UNSET:
            return per_call
        return _UNSET if self.top_n is None else self.top_n

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        top_n: int | None = _UNSET,
        top_k: int | None = _UNSET,
    ) -> list[Document]:
        documents = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        return self.reranker.rerank_documents(documents, query, top_n=self._top_n(top_n, top_k))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        top_n: int | None = _UNSET,
        top_k: int | None = _UNSET,
    ) -> list[Document]:
        documents = await self.base_retriever.ainvoke(
            query, config={"callbacks": run_manager.get_child()}
        )
        return await self.reranker.arerank_documents(
            documents, query, top_n=self._top_n(top_n, top_k)
        )


__all__ = ["CrossRankRetriever"]
