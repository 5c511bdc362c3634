"""What a user coming from LlamaIndex's own rerankers expects: unknown keywords refused, the
EMBED view scored, `keep_retrieval_score`, and a documented fate for nodes without text."""

from __future__ import annotations

import copy
import logging
import math
import pickle

import pytest
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank
from pydantic import ValidationError

from crossrank import DocumentError

QUERY = QueryBundle("which wing passage is best?")
PNG = (  # a 1x1 PNG, base64
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize(
    "keyword",
    ["cache_folder", "top_m", "modle", "cross_encoder_kwargs", "similarity_cutoff"],
)
def test_unknown_keywords_are_refused_naming_them(keyword):
    with pytest.raises(ValidationError, match=keyword) as info:
        CrossRankRerank(**{keyword: 1})
    assert "Extra inputs are not permitted" in str(info.value)


def test_from_dict_refuses_unknown_keys_too():
    data = CrossRankRerank(top_n=2).to_dict()
    assert CrossRankRerank.from_dict(data).top_n == 2
    with pytest.raises(ValidationError, match="top_m"):
        CrossRankRerank.from_dict({**data, "top_m": 1})


def test_the_engine_validators_run_here_too(known_scorer):
    with pytest.raises(ValidationError, match="on_unreadable"):
        CrossRankRerank(on_unreadable="drop")
    with pytest.raises(ValidationError, match="activation applies to the built-in model"):
        CrossRankRerank(scorer=known_scorer, activation="none")


# -- metadata_mode: EMBED, as the peers ------------------------------------------------------


def _nodes() -> list[NodeWithScore]:
    texts = [
        ("wings", "Lift on a swept wing at low speed."),
        ("heat", "Aerodynamic heating of structures in supersonic flight."),
        ("shells", "Buckling of thin cylindrical shells under compression."),
    ]
    return [
        NodeWithScore(node=TextNode(id_=i, text=t, metadata={"title": i.upper()}), score=s)
        for (i, t), s in zip(texts, (0.5, 0.4, 0.3), strict=True)
    ]


def test_same_scores_as_llamaindex_sbert_reranker_on_the_same_model(tiny_model):
    from llama_index.postprocessor.sbert_rerank import SentenceTransformerRerank

    peer = SentenceTransformerRerank(model=tiny_model, device="cpu", top_n=3)
    ours = CrossRankRerank(model=tiny_model, device="cpu", top_n=3)
    theirs = peer.postprocess_nodes(_nodes(), QUERY)
    mine = ours.postprocess_nodes(_nodes(), QUERY)
    assert [n.node.node_id for n in mine] == [n.node.node_id for n in theirs]
    assert [n.score for n in mine] == pytest.approx([float(n.score) for n in theirs], abs=1e-6)
    # Scoring the text alone (the old default) gives other scores: a switch would show it.
    alone = CrossRankRerank(model=tiny_model, device="cpu", metadata_mode=MetadataMode.NONE)
    assert [n.score for n in alone.postprocess_nodes(_nodes(), QUERY)] != [n.score for n in mine]


# -- keep_retrieval_score ------------------------------------------------------------------


def test_keep_retrieval_score_writes_the_peers_key(known_scorer, scored_nodes):
    out = CrossRankRerank(scorer=known_scorer, keep_retrieval_score=True).postprocess_nodes(
        scored_nodes, QUERY
    )
    by_id = {n.node.node_id: n.score for n in scored_nodes}
    for n in out:
        assert n.node.metadata["retrieval_score"] == by_id[n.node.node_id]
        assert n.node.metadata["original_score"] == by_id[n.node.node_id]
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            assert "retrieval_score" not in n.node.get_content(metadata_mode=mode)
    default = CrossRankRerank(scorer=known_scorer).postprocess_nodes(scored_nodes, QUERY)
    assert all("retrieval_score" not in n.node.metadata for n in default)
    assert all("retrieval_score" not in n.node.metadata for n in scored_nodes)  # untouched


def test_keep_retrieval_score_matches_the_sbert_peer(tiny_model):
    from llama_index.postprocessor.sbert_rerank import SentenceTransformerRerank

    peer = SentenceTransformerRerank(
        model=tiny_model, device="cpu", top_n=3, keep_retrieval_score=True
    )
    ours = CrossRankRerank(model=tiny_model, device="cpu", top_n=3, keep_retrieval_score=True)
    theirs = {
        n.node.node_id: n.node.metadata["retrieval_score"]
        for n in peer.postprocess_nodes(_nodes(), QUERY)
    }
    mine = {
        n.node.node_id: n.node.metadata["retrieval_score"]
        for n in ours.postprocess_nodes(_nodes(), QUERY)
    }
    assert mine == theirs


# -- nodes without text: on_unreadable -----------------------------------------------------


def _with_image(scored_nodes) -> list[NodeWithScore]:
    image = ImageNode(id_="img", image=PNG, metadata={"file_name": "wing.png"})
    # Its EMBED view is "file_name: wing.png": metadata alone, which is not scored.
    assert image.get_content(metadata_mode=MetadataMode.EMBED).strip()
    return [*scored_nodes[:2], NodeWithScore(node=image, score=0.95), *scored_nodes[2:]]


def test_an_image_node_fails_by_default_naming_it(known_scorer, scored_nodes, rerank_events):
    with pytest.raises(DocumentError, match=r"node 2 \(id 'img', ImageNode\)") as info:
        CrossRankRerank(scorer=known_scorer).postprocess_nodes(_with_image(scored_nodes), QUERY)
    assert info.value.document_id == "img"
    assert "on_unreadable='skip' or 'last'" in str(info.value)
    assert rerank_events == []  # refused before the start event


def test_skip_leaves_the_image_out_and_warns(known_scorer, scored_nodes, caplog):
    rerank = CrossRankRerank(scorer=known_scorer, on_unreadable="skip")
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        out = rerank.postprocess_nodes(_with_image(scored_nodes), QUERY)
    assert [n.node.node_id for n in out] == ["n1", "n3", "n2", "n0", "n4"]
    assert "(id 'img')" in caplog.text and "on_unreadable='skip'" in caplog.text


async def test_last_ranks_the_image_last_with_its_problem(known_scorer, scored_nodes):
    rerank = CrossRankRerank(scorer=known_scorer, on_unreadable="last")
    for out in (
        rerank.postprocess_nodes(_with_image(scored_nodes), QUERY),
        await rerank.apostprocess_nodes(_with_image(scored_nodes), QUERY),
    ):
        assert [n.node.node_id for n in out] == ["n1", "n3", "n2", "n0", "n4", "img"]
        image = out[-1]
        assert isinstance(image.node, ImageNode) and image.node.image == PNG
        assert image.score == -math.inf
        assert image.node.metadata["original_score"] == 0.95
        assert "is empty" in image.node.metadata["unreadable"]
        assert "unreadable" not in image.node.get_content(metadata_mode=MetadataMode.LLM)
        assert all("unreadable" not in n.node.metadata for n in out[:-1])
    # top_n cuts after the scored nodes first.
    cut = CrossRankRerank(scorer=known_scorer, on_unreadable="last", top_n=5)
    assert "img" not in [
        n.node.node_id for n in cut.postprocess_nodes(_with_image(scored_nodes), QUERY)
    ]


def test_an_image_node_with_a_caption_is_scored_on_its_caption(known_scorer):
    image = ImageNode(id_="img", image=PNG, text="a wing in a wind tunnel s=0.8")
    out = CrossRankRerank(scorer=known_scorer).postprocess_nodes(
        [NodeWithScore(node=image), NodeWithScore(node=TextNode(text="s=0.3"))], QUERY
    )
    assert (out[0].node.node_id, out[0].score) == ("img", 0.8)


# -- copies and pickles --------------------------------------------------------------------


def test_pickles_and_copies_after_scoring(tiny_model, scored_nodes):
    rerank = CrossRankRerank(model=tiny_model, device="cpu", top_n=2)
    expected = [(n.node.node_id, n.score) for n in rerank.postprocess_nodes(scored_nodes, QUERY)]
    for clone in (pickle.loads(pickle.dumps(rerank)), copy.deepcopy(rerank)):
        got = clone.postprocess_nodes(scored_nodes, QUERY)
        assert [(n.node.node_id, n.score) for n in got] == expected
