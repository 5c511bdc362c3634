"""`model_family` and `instruction` reach the engine through the LangChain compressor."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankReranker

from crossrank import ModelLoadError, Reranker
from crossrank.testing import build_tiny_causal_reranker

QUERY = "what is a giant panda?"
TEXTS = ["a giant panda eats bamboo", "bears live in forests", "china", "black and white"]
INSTRUCTION = "Rank passages by the animals they name"


@pytest.fixture(scope="module")
def causal_folder(tmp_path_factory) -> str:
    """A Qwen3-Reranker under a name that says nothing: only model_family can tell."""
    return str(
        build_tiny_causal_reranker(tmp_path_factory.mktemp("lc") / "local", "qwen3-reranker")
    )


def test_model_family_and_instruction_pass_through(causal_folder):
    documents = [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    compressor = CrossRankReranker(
        model=causal_folder, device="cpu", model_family="qwen3-reranker", instruction=INSTRUCTION
    )
    ranked = compressor.compress_documents(documents, QUERY)
    expected = Reranker(
        model=causal_folder, device="cpu", model_family="qwen3-reranker", instruction=INSTRUCTION
    ).rerank(QUERY, TEXTS)
    assert [d.metadata["relevance_score"] for d in ranked] == [r.score for r in expected]
    default = Reranker(model=causal_folder, device="cpu", model_family="qwen3-reranker")
    assert sorted(r.score for r in default.rerank(QUERY, TEXTS)) != sorted(
        r.score for r in expected
    )  # the instruction changed the prompt
    with pytest.raises(ModelLoadError, match="Set model_family"):
        CrossRankReranker(model=causal_folder, device="cpu").compress_documents(documents, QUERY)


def test_instruction_is_validated_like_the_contract():
    with pytest.raises(ValueError, match="takes no instruction"):
        CrossRankReranker(model_family="sequence-classification", instruction=INSTRUCTION)
