"""`model_family` and `instruction` reach the engine through the LlamaIndex postprocessor."""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

from crossrank import ModelLoadError, Reranker
from crossrank.testing import build_tiny_causal_reranker

QUERY = "what is a giant panda?"
TEXTS = ["a giant panda eats bamboo", "bears live in forests", "china", "black and white"]
INSTRUCTION = "Rank passages by the animals they name"


@pytest.fixture(scope="module")
def causal_folder(tmp_path_factory) -> str:
    """A Qwen3-Reranker under a name that says nothing: only model_family can tell."""
    return str(
        build_tiny_causal_reranker(tmp_path_factory.mktemp("li") / "local", "qwen3-reranker")
    )


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(TEXTS)]


def test_model_family_and_instruction_pass_through(causal_folder):
    postprocessor = CrossRankRerank(
        model=causal_folder, device="cpu", model_family="qwen3-reranker", instruction=INSTRUCTION
    )
    out = postprocessor.postprocess_nodes(nodes(), QueryBundle(QUERY))
    expected = Reranker(
        model=causal_folder, device="cpu", model_family="qwen3-reranker", instruction=INSTRUCTION
    ).rerank(QUERY, TEXTS)
    assert [n.score for n in out] == [r.score for r in expected]
    assert [n.node.get_content() for n in out] == [TEXTS[r.document_id] for r in expected]
    default = Reranker(model=causal_folder, device="cpu", model_family="qwen3-reranker")
    assert sorted(r.score for r in default.rerank(QUERY, TEXTS)) != sorted(
        r.score for r in expected
    )  # the instruction changed the prompt
    with pytest.raises(ModelLoadError, match="Set model_family"):
        CrossRankRerank(model=causal_folder, device="cpu").postprocess_nodes(
            nodes(), QueryBundle(QUERY)
        )


def test_instruction_is_validated_like_the_contract():
    with pytest.raises(ValueError, match="takes no instruction"):
        CrossRankRerank(model_family="sequence-classification", instruction=INSTRUCTION)
