"""CrossRankRerank through its public API, as a LlamaIndex user calls it."""

from __future__ import annotations

import asyncio
import copy
import json
import threading

import numpy as np
import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank
from pydantic import ValidationError

from crossrank import DocumentError, QueryError, Reranker

QUERY = QueryBundle("which wing passage is best?")


def dump(nodes: list[NodeWithScore]) -> list[dict]:
    return [n.model_dump() for n in nodes]


def test_is_a_node_postprocessor_with_a_class_name():
    assert issubclass(CrossRankRerank, BaseNodePostprocessor)
    assert CrossRankRerank.class_name() == "CrossRankRerank"


def test_nodes_come_back_in_rerank_order_with_the_contract_in_metadata(scored_nodes, known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer, top_n=3)
    out = rerank.postprocess_nodes(scored_nodes, QUERY)
    assert [n.node.node_id for n in out] == ["n1", "n3", "n2"]
    assert [n.score for n in out] == [0.9, 0.7, 0.5]
    assert all(type(n.score) is float for n in out)
    assert [n.node.metadata["rerank_position"] for n in out] == [0, 1, 2]
    assert [n.node.metadata["original_score"] for n in out] == [0.9, 0.7, 0.8]
    # the caller's metadata is all still there
    assert out[0].node.metadata["source"] == "doc1.txt"
    assert out[0].node.metadata["page"] == 1
    assert out[0].node.get_content() == scored_nodes[1].node.get_content()


def test_contract_keys_stay_out_of_llm_and_embed_text(scored_nodes, known_scorer):
    out = CrossRankRerank(scorer=known_scorer).postprocess_nodes(scored_nodes, QUERY)
    for n in out:
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            text = n.node.get_content(metadata_mode=mode)
            assert "original_score" not in text
            assert "rerank_position" not in text
            assert "source: doc" in text  # other metadata is shown as before
        assert "page" in n.node.excluded_llm_metadata_keys  # the caller's exclusions kept
        assert "rerank_position" in n.node.get_content(metadata_mode=MetadataMode.ALL)


def test_callers_nodes_are_not_mutated(scored_nodes, known_scorer):
    before = copy.deepcopy(scored_nodes)
    out = CrossRankRerank(scorer=known_scorer, top_n=2).postprocess_nodes(scored_nodes, QUERY)
    assert dump(scored_nodes) == dump(before)
    originals = {id(n) for n in scored_nodes} | {id(n.node) for n in scored_nodes}
    for result in out:
        assert id(result) not in originals
        assert id(result.node) not in originals
        source = next(n.node for n in scored_nodes if n.node.node_id == result.node.node_id)
        assert result.node.metadata is not source.metadata
        assert result.node.excluded_llm_metadata_keys is not source.excluded_llm_metadata_keys
        assert result.node.excluded_embed_metadata_keys is not source.excluded_embed_metadata_keys


def test_existing_exclusions_are_not_duplicated(known_scorer):
    node = TextNode(
        text="s=1",
        metadata={"original_score": 0.3},
        excluded_llm_metadata_keys=["original_score"],
        excluded_embed_metadata_keys=["x", "rerank_position"],
    )
    (out,) = CrossRankRerank(scorer=known_scorer).postprocess_nodes(
        [NodeWithScore(node=node, score=0.4)], QUERY
    )
    assert out.node.excluded_llm_metadata_keys == ["original_score", "rerank_position"]
    assert out.node.excluded_embed_metadata_keys == ["x", "rerank_position", "original_score"]
    assert out.node.metadata["original_score"] == 0.4  # the previous stage's score


def test_scores_and_metadata_are_json_serialisable(known_scorer):
    nodes = [NodeWithScore(node=TextNode(text=f"s={s}")) for s in (0.3, 0.6)]
    # What an earlier SentenceTransformerRerank leaves behind: numpy floats set by assignment.
    nodes[0].score, nodes[1].score = np.float32(0.5), np.float32(0.25)
    out = CrossRankRerank(scorer=lambda pairs: np.array(known_scorer(pairs))).postprocess_nodes(
        nodes, QUERY
    )
    text = json.dumps([{"score": n.score, **n.node.metadata} for n in out])
    assert json.loads(text) == [
        {"score": 0.6, "original_score": 0.25, "rerank_position": 0},
        {"score": 0.3, "original_score": 0.5, "rerank_position": 1},
    ]
    assert all(type(n.node.metadata["original_score"]) is float for n in out)
    json.dumps([n.model_dump() for n in out])


def test_a_node_without_a_previous_score_keeps_none(known_scorer):
    (out,) = CrossRankRerank(scorer=known_scorer).postprocess_nodes(
        [NodeWithScore(node=TextNode(text="s=2"))], QUERY
    )
    assert out.node.metadata["original_score"] is None
    assert out.score == 2.0


def test_top_n_larger_than_n_returns_all_and_none_keeps_all(scored_nodes, known_scorer):
    for top_n in (50, None):
        out = CrossRankRerank(scorer=known_scorer, top_n=top_n).postprocess_nodes(
            scored_nodes, QUERY
        )
        assert [n.node.node_id for n in out] == ["n1", "n3", "n2", "n0", "n4"]


def test_top_k_is_an_alias_of_top_n(scored_nodes, known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer, top_k=2)
    assert rerank.top_n == 2
    assert len(rerank.postprocess_nodes(scored_nodes, QUERY)) == 2
    with pytest.raises(ValueError, match="top_k"):
        CrossRankRerank(scorer=known_scorer, top_k=2, top_n=3)


@pytest.mark.parametrize("top_n", [0, -1])
def test_top_n_must_be_positive(top_n):
    with pytest.raises(ValidationError, match="top_n"):
        CrossRankRerank(top_n=top_n)


def test_engine_settings_are_validated():
    with pytest.raises(ValidationError, match="device"):
        CrossRankRerank(device="gpu9")
    with pytest.raises(ValidationError, match="scorer"):
        CrossRankRerank(scorer="not-a-url")
    with pytest.raises(ValidationError, match="long_documents"):
        CrossRankRerank(long_documents="split")
    with pytest.raises(ValidationError, match="tokenizer"):
        CrossRankRerank(scorer=lambda pairs: [0.0] * len(pairs), long_documents="chunk")


def test_every_engine_setting_is_inherited_from_the_one_definition():
    from crossrank import RerankConfig
    from crossrank.config import CALL_SETTINGS, EngineSettings

    assert issubclass(CrossRankRerank, EngineSettings)
    for name, field in EngineSettings.model_fields.items():
        # The same type, default and description as the contract's, by construction.
        assert repr(CrossRankRerank.model_fields[name]) == repr(field)
        assert repr(RerankConfig.model_fields[name]) == repr(field)
    assert set(RerankConfig.model_fields) == set(EngineSettings.model_fields) | CALL_SETTINGS

    class Extended(EngineSettings):
        new_setting: int = 3

    class ExtendedRerank(Extended, CrossRankRerank):
        pass

    assert "new_setting" in ExtendedRerank.model_fields


def test_empty_input_returns_empty(known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer, top_n=3)
    assert rerank.postprocess_nodes([], QUERY) == []
    assert asyncio.run(rerank.apostprocess_nodes([], QUERY)) == []


def test_a_query_bundle_is_required(scored_nodes, known_scorer, rerank_events):
    rerank = CrossRankRerank(scorer=known_scorer)
    with pytest.raises(QueryError, match="needs the query"):
        rerank.postprocess_nodes(scored_nodes)
    with pytest.raises(QueryError, match="needs the query"):
        asyncio.run(rerank.apostprocess_nodes(scored_nodes))
    with pytest.raises(QueryError, match="empty"):
        rerank.postprocess_nodes(scored_nodes, query_str="  ")
    assert rerank_events == []  # nothing started, so no unmatched start event
    # query_str works as in every postprocessor
    assert rerank.postprocess_nodes(scored_nodes, query_str="wings")[0].node.node_id == "n1"


def test_a_node_without_text_is_an_error_naming_node_and_field(known_scorer):
    nodes = [
        NodeWithScore(node=TextNode(id_="good", text="s=1")),
        NodeWithScore(node=TextNode(id_="blank", text="  ", metadata={"a": "b"})),
    ]
    with pytest.raises(DocumentError, match=r"node 1 \(id 'blank', TextNode\).*is empty") as err:
        CrossRankRerank(scorer=known_scorer).postprocess_nodes(nodes, QUERY)
    assert err.value.document_id == "blank"
    assert err.value.index == 1
    assert err.value.field == "text"
    assert "on_unreadable" in str(err.value)


def test_metadata_mode_chooses_the_scored_text(scored_nodes):
    seen: list[str] = []

    def scorer(pairs):
        seen.extend(text for _, text in pairs)
        return [1.0] * len(pairs)

    CrossRankRerank(scorer=scorer).postprocess_nodes(scored_nodes[:1], QUERY)
    # default: MetadataMode.EMBED, as the sbert, FlagEmbedding and Cohere postprocessors
    assert seen == [scored_nodes[0].node.get_content(metadata_mode=MetadataMode.EMBED)]
    assert seen == ["source: doc0.txt\npage: 0\n\npassage 0 about wings s=0.2"]
    seen.clear()
    CrossRankRerank(scorer=scorer, metadata_mode=MetadataMode.NONE).postprocess_nodes(
        scored_nodes[:1], QUERY
    )
    assert seen == ["passage 0 about wings s=0.2"]
    seen.clear()
    CrossRankRerank(scorer=scorer, metadata_mode=MetadataMode.ALL).postprocess_nodes(
        scored_nodes[:1], QUERY
    )
    assert "source: doc0.txt" in seen[0]
    assert "page: 0" in seen[0]


def test_a_ready_reranker_is_used(scored_nodes, known_scorer):
    engine = Reranker(scorer=known_scorer, top_k=2)
    rerank = CrossRankRerank(reranker=engine)
    assert rerank.reranker is engine
    assert rerank.top_n == 2
    assert rerank.scorer is known_scorer
    assert [n.node.node_id for n in rerank.postprocess_nodes(scored_nodes, QUERY)] == ["n1", "n3"]
    assert CrossRankRerank(reranker=engine, top_n=4).top_n == 4
    with pytest.raises(ValueError, match="either a ready reranker or engine settings"):
        CrossRankRerank(reranker=engine, model="other")


def test_a_ready_reranker_with_its_own_field_paths_still_reads_nodes(scored_nodes, known_scorer):
    engine = Reranker(scorer=known_scorer, document_field="body.text", original_score_field="s")
    out = CrossRankRerank(reranker=engine, top_n=1).postprocess_nodes(scored_nodes, QUERY)
    assert [(n.node.node_id, n.node.metadata["original_score"]) for n in out] == [("n1", 0.9)]


def test_built_by_model_validate_too(scored_nodes, known_scorer):
    rerank = CrossRankRerank.model_validate({"scorer": known_scorer, "top_n": 1})
    assert rerank.postprocess_nodes(scored_nodes, QUERY)[0].node.node_id == "n1"


def test_changing_a_setting_takes_effect(scored_nodes, known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer)
    rerank.scorer = lambda pairs: [-s for s in known_scorer(pairs)]
    assert rerank.postprocess_nodes(scored_nodes, QUERY)[0].node.node_id == "n4"


def test_round_trips_through_to_dict_and_json():
    rerank = CrossRankRerank(
        model="/models/my-reranker",
        top_n=7,
        batch_size=8,
        max_length=256,
        device="cpu",
        dtype="float32",
        activation="none",
        trust_remote_code=True,
        long_documents="chunk",
        chunk_overlap=16,
        chunk_pooling="mean",
        max_chunks_per_document=3,
        tokenizer="/models/my-tokenizer",
        metadata_mode=MetadataMode.EMBED,
    )
    data = rerank.to_dict()
    assert data["class_name"] == "CrossRankRerank"
    again = CrossRankRerank.from_dict(data)
    assert again.to_dict() == data
    assert again.reranker.config == rerank.reranker.config
    assert again.metadata_mode is MetadataMode.EMBED
    from_json = CrossRankRerank.from_json(rerank.to_json())
    assert from_json.to_dict() == data
    url = CrossRankRerank(scorer="http://localhost:9/score", top_n=3)
    assert CrossRankRerank.from_json(url.to_json()).scorer == "http://localhost:9/score"


def test_copies_share_the_engine_but_not_the_settings(scored_nodes, known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer, top_n=2)
    for clone in (copy.deepcopy(rerank), rerank.model_copy(deep=True)):
        assert clone.reranker is rerank.reranker
        clone.top_n = 4
        assert rerank.top_n == 2
        assert len(clone.postprocess_nodes(scored_nodes, QUERY)) == 4
        assert len(rerank.postprocess_nodes(scored_nodes, QUERY)) == 2


def test_events_name_the_model_or_the_endpoint(scored_nodes, tiny_model, rerank_events):
    CrossRankRerank(model=tiny_model, device="cpu").postprocess_nodes([], QUERY)
    CrossRankRerank(scorer="http://localhost:9/score").postprocess_nodes([], QUERY)
    names = [e.model_name for e in rerank_events if isinstance(e, ReRankStartEvent)]
    assert names == [tiny_model, "http://localhost:9/score"]


def test_a_python_scorer_cannot_be_written_to_json(known_scorer):
    rerank = CrossRankRerank(scorer=known_scorer)
    assert rerank.to_dict()["scorer"] is known_scorer
    with pytest.raises(Exception, match="cannot be written to JSON"):
        rerank.to_json()


def test_sync_and_async_agree_on_a_real_model(scored_nodes, tiny_model):
    rerank = CrossRankRerank(model=tiny_model, top_n=4, device="cpu")
    sync = rerank.postprocess_nodes(scored_nodes, QUERY)
    asynchronous = asyncio.run(rerank.apostprocess_nodes(scored_nodes, QUERY))
    assert dump(sync) == dump(asynchronous)
    assert len(sync) == 4
    scores = [n.score for n in sync]
    assert scores == sorted(scores, reverse=True)
    assert all(type(s) is float for s in scores)


def test_long_nodes_can_be_chunked(tiny_model):
    long_text = "the wing " * 40 + "s=1"
    nodes = [
        NodeWithScore(node=TextNode(id_="long", text=long_text), score=0.3),
        NodeWithScore(node=TextNode(id_="short", text="a short passage"), score=0.2),
    ]
    rerank = CrossRankRerank(
        model=tiny_model, device="cpu", max_length=32, long_documents="chunk", top_n=2
    )
    assert rerank.reranker.config.long_documents == "chunk"
    out = rerank.postprocess_nodes(nodes, QUERY)
    assert sorted(n.node.node_id for n in out) == ["long", "short"]
    assert all(type(n.score) is float for n in out)


def test_fifty_concurrent_async_calls_all_succeed(scored_nodes, tiny_model):
    rerank = CrossRankRerank(model=tiny_model, top_n=3, device="cpu")
    queries = [QueryBundle(f"wing query {i % 5}") for i in range(50)]
    expected = {q.query_str: dump(rerank.postprocess_nodes(scored_nodes, q)) for q in queries}
    before = copy.deepcopy(scored_nodes)

    async def run_all():
        return await asyncio.gather(*(rerank.apostprocess_nodes(scored_nodes, q) for q in queries))

    results = asyncio.run(run_all())
    assert [dump(r) for r in results] == [expected[q.query_str] for q in queries]
    assert dump(scored_nodes) == dump(before)


def test_async_does_not_block_the_event_loop(scored_nodes):
    release = threading.Event()

    def blocking_scorer(pairs):
        # Waits for the event loop to say it is still running; a blocked loop never does.
        assert release.wait(timeout=60), "the event loop was blocked while scoring"
        return [1.0] * len(pairs)

    async def main():
        task = asyncio.create_task(
            CrossRankRerank(scorer=blocking_scorer).apostprocess_nodes(scored_nodes, QUERY)
        )
        await asyncio.sleep(0)  # the rerank starts and reaches the scorer
        release.set()  # only runs if the loop is free while the scorer waits
        return await task

    assert len(asyncio.run(main())) == len(scored_nodes)


def test_an_async_scorer_is_awaited_on_the_callers_loop(scored_nodes, known_scorer):
    async def main():
        caller_loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        async def async_scorer(pairs):
            if asyncio.get_running_loop() is not caller_loop:
                raise AssertionError("the async scorer ran on another event loop")
            await ready.wait()  # set by the caller's loop below, while the rerank waits
            return known_scorer(pairs)

        rerank = CrossRankRerank(scorer=async_scorer, top_n=2)
        task = asyncio.create_task(rerank.apostprocess_nodes(scored_nodes, QUERY))
        await asyncio.sleep(0)
        ready.set()
        return await task

    assert [n.node.node_id for n in asyncio.run(main())] == ["n1", "n3"]


def test_events_fire_in_pairs_inside_the_postprocessor_span(
    scored_nodes, known_scorer, rerank_events
):
    spans = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(spans)
    try:
        rerank = CrossRankRerank(scorer=known_scorer, top_n=2)
        sync = rerank.postprocess_nodes(scored_nodes, QUERY)
        empty = rerank.postprocess_nodes([], QUERY)

        async def run_async():
            return await asyncio.gather(
                *(rerank.apostprocess_nodes(scored_nodes, QUERY) for _ in range(3))
            )

        asynchronous = asyncio.run(run_async())
    finally:
        root.span_handlers.remove(spans)

    assert len(rerank_events) == 10
    sequential = [type(e) for e in rerank_events[:4]]
    assert sequential == [ReRankStartEvent, ReRankEndEvent, ReRankStartEvent, ReRankEndEvent]
    by_span: dict[str, list] = {}
    for event in rerank_events:
        by_span.setdefault(event.span_id, []).append(event)
    assert len(by_span) == 5  # five calls, five spans, one start and one end in each
    span_names = {s.id_ for s in spans.completed_spans}
    results = [sync, empty, *asynchronous]
    for span_id, (start, end) in by_span.items():
        assert isinstance(start, ReRankStartEvent)
        assert isinstance(end, ReRankEndEvent)
        assert span_id in span_names
        assert span_id.startswith(
            ("CrossRankRerank._postprocess_nodes-", "CrossRankRerank._apostprocess_nodes-")
        )
        assert start.query == QUERY
        assert start.top_n == 2
        assert start.model_name.endswith("_known_scorer")
        assert dump(end.nodes) in [dump(r) for r in results]
    assert [e.nodes for e in rerank_events if isinstance(e, ReRankStartEvent)][1] == []
