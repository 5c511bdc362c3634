"""LangChain's own standard retriever tests (langchain-tests) on `CrossRankRetriever`.

langchain-tests has no suite for document compressors, so the reranker runs as LangChain
users wrap it: `CrossRankRetriever` over a real `InMemoryVectorStore` with real
all-MiniLM-L6-v2 embeddings, reranked by a real (tiny) cross-encoder. The suite is run under
both names of the result count: `top_n` (LangChain's) and `top_k` (crossrank's).
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import CrossRankReranker, CrossRankRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

CORPUS = [
    "Lift distribution over a swept wing in a propeller slipstream at low speed.",
    "Aerodynamic heating of aircraft structures during supersonic flight.",
    "Similarity laws for aeroelastic models of heated high speed aircraft.",
    "Laminar boundary layer transition on a flat plate with suction.",
    "Shock wave interaction with a turbulent boundary layer on a cone.",
    "Flutter of heated panels at supersonic speeds and thermal stresses.",
]


@pytest.fixture(scope="module")
def retriever_params(embeddings, tiny_model) -> dict:
    store = InMemoryVectorStore.from_documents(
        [Document(page_content=t, id=str(i)) for i, t in enumerate(CORPUS)], embeddings
    )
    return {
        "base_retriever": store.as_retriever(search_kwargs={"k": len(CORPUS)}),
        "reranker": CrossRankReranker(model=tiny_model, device="cpu"),
    }


class _Standard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _params(self, retriever_params):
        self._retriever_params = retriever_params

    @property
    def retriever_constructor(self) -> type[CrossRankRetriever]:
        return CrossRankRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return self._retriever_params

    @property
    def retriever_query_example(self) -> str:
        return "heated aircraft at supersonic speed"


class TestStandardWithTopN(_Standard):
    @property
    def num_results_arg_name(self) -> str:
        return "top_n"


class TestStandardWithTopK(_Standard):
    @property
    def num_results_arg_name(self) -> str:
        return "top_k"
