"""CrossRankReranker through its public API: the metadata contract, top_k, errors, settings."""

from __future__ import annotations

import copy
import threading

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankReranker

from crossrank import DocumentError, QueryError, Reranker, ScorerError


def _order(docs):
    return [d.id for d in docs]


def test_order_follows_the_scores_the_scorer_gave(documents, keyword_scorer):
    query = "what is a cross-encoder passage"
    ranked = CrossRankReranker(scorer=keyword_scorer).compress_documents(documents, query)
    given = [keyword_scorer.given[(query, d.page_content)] for d in documents]
    expected = [documents[i].id for i in sorted(range(len(given)), key=lambda i: -given[i])]
    assert _order(ranked) == expected
    assert [d.metadata["relevance_score"] for d in ranked] == sorted(given, reverse=True)
    assert [d.metadata["rerank_position"] for d in ranked] == list(range(len(documents)))


def test_metadata_contract_keeps_keys_adds_three_and_keeps_ids(documents, keyword_scorer):
    by_id = {d.id: d for d in documents}
    ranked = CrossRankReranker(
        scorer=keyword_scorer, original_score_key="score"
    ).compress_documents(documents, "cross-encoder passage")
    for position, doc in enumerate(ranked):
        source = by_id[doc.id]
        assert doc is not source
        assert doc.page_content == source.page_content
        assert set(doc.metadata) == set(source.metadata) | {
            "relevance_score",
            "original_score",
            "rerank_position",
        }
        for key, value in source.metadata.items():
            assert doc.metadata[key] == value
        assert type(doc.metadata["relevance_score"]) is float
        assert doc.metadata["original_score"] == source.metadata["score"]
        assert doc.metadata["rerank_position"] == position


def test_inputs_are_not_mutated_and_outputs_do_not_share_metadata(documents, keyword_scorer):
    documents[0].metadata["relevance_score"] = 0.5
    before = copy.deepcopy(documents)
    ranked = CrossRankReranker(scorer=keyword_scorer).compress_documents(documents, "passage")
    assert documents == before
    assert [d.metadata for d in documents] == [d.metadata for d in before]
    # Writing to a result (even into nested metadata) never reaches the caller's documents.
    for doc in ranked:
        doc.metadata.get("tags", []).append("x")
        doc.metadata.get("nested", {})["body"] = "changed"
        doc.metadata["source"] = "changed"
    assert documents == before


def test_metadata_that_cannot_be_deep_copied_is_shared_not_fatal(keyword_scorer):
    lock = threading.Lock()  # cannot be deep-copied
    docs = [Document(page_content="a passage", metadata={"lock": lock, "tags": ["t"]})]
    (ranked,) = CrossRankReranker(scorer=keyword_scorer).compress_documents(docs, "passage")
    assert ranked.metadata["lock"] is lock
    assert (
        ranked.metadata["tags"] == ["t"] and ranked.metadata["tags"] is not docs[0].metadata["tags"]
    )


def test_old_relevance_score_becomes_original_score(documents, keyword_scorer):
    documents[1].metadata["relevance_score"] = 0.77  # a previous reranker's score
    ranked = CrossRankReranker(
        scorer=keyword_scorer, original_score_key="score"
    ).compress_documents(documents, "cross-encoder")
    b = next(d for d in ranked if d.id == "b")
    assert b.metadata["original_score"] == 0.77
    assert b.metadata["relevance_score"] == keyword_scorer.given[("cross-encoder", b.page_content)]
    assert b.metadata["score"] == 0.85  # the first-stage score key is kept as it was
    others = [d for d in ranked if d.id != "b"]
    assert all(d.metadata["original_score"] == d.metadata["score"] for d in others)


def test_original_score_is_none_without_a_previous_score(documents, keyword_scorer):
    ranked = CrossRankReranker(scorer=keyword_scorer).compress_documents(documents, "passage")
    assert all(d.metadata["original_score"] is None for d in ranked)
    assert all("score" in d.metadata for d in ranked)  # kept, but not read without the key


def test_original_score_key_reads_nested_and_dotted_keys(keyword_scorer):
    docs = [
        Document(page_content="one passage", metadata={"ret": {"score": 3}}),
        Document(page_content="two passage", metadata={"ret.score": 4}),
    ]
    ranked = CrossRankReranker(
        scorer=keyword_scorer, original_score_key="ret.score"
    ).compress_documents(docs, "passage")
    assert sorted(d.metadata["original_score"] for d in ranked) == [3, 4]


def test_chained_rerankers_keep_the_previous_stage_score(documents, keyword_scorer):
    first = CrossRankReranker(scorer=keyword_scorer, original_score_key="score")
    second = CrossRankReranker(scorer=lambda pairs: [float(len(t)) for _, t in pairs])
    once = first.compress_documents(documents, "cross-encoder passage")
    twice = second.compress_documents(once, "cross-encoder passage")
    first_scores = {d.id: d.metadata["relevance_score"] for d in once}
    for doc in twice:
        assert doc.metadata["original_score"] == first_scores[doc.id]
        assert doc.metadata["relevance_score"] == float(len(doc.page_content))


def test_ids_and_document_subclass_are_kept(keyword_scorer):
    class MyDocument(Document):
        pass

    docs = [MyDocument(page_content="a passage", id="x"), Document(page_content="passage two")]
    ranked = CrossRankReranker(scorer=keyword_scorer).compress_documents(docs, "passage")
    assert {type(d) for d in ranked} == {MyDocument, Document}
    assert sorted(d.id or "" for d in ranked) == ["", "x"]


@pytest.mark.parametrize("top_k, expected", [(1, 1), (2, 2), (4, 4), (10, 4), (None, 4)])
def test_top_k(documents, keyword_scorer, top_k, expected):
    full = CrossRankReranker(scorer=keyword_scorer).compress_documents(documents, "passage")
    ranked = CrossRankReranker(scorer=keyword_scorer, top_k=top_k).compress_documents(
        documents, "passage"
    )
    assert len(ranked) == expected
    assert _order(ranked) == _order(full)[:expected]


def test_per_call_top_n_overrides_the_setting(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer, top_n=1)
    assert len(reranker.rerank_documents(documents, "passage", top_n=3)) == 3
    assert len(reranker.rerank_documents(documents, "passage", top_n=None)) == 4
    assert len(reranker.rerank_documents(documents, "passage")) == 1


def test_empty_input_returns_empty_without_scoring(keyword_scorer):
    assert CrossRankReranker(scorer=keyword_scorer).compress_documents([], "query") == []
    assert keyword_scorer.calls == []


@pytest.mark.parametrize(
    "field, text_of",
    [
        ("page_content", lambda d: d.page_content),
        ("body", lambda d: d.metadata["body"]),
        ("metadata.body", lambda d: d.metadata["body"]),
        ("deep.text", lambda d: d.metadata["deep"]["text"]),
    ],
)
def test_document_field(keyword_scorer, field, text_of):
    docs = [
        Document(
            page_content=f"page {i}",
            metadata={"body": f"body text {i}", "deep": {"text": f"deep text {i}"}},
        )
        for i in range(3)
    ]
    CrossRankReranker(scorer=keyword_scorer, document_field=field).compress_documents(docs, "q")
    assert keyword_scorer.calls == [[("q", text_of(d)) for d in docs]]


def test_missing_text_names_the_document_and_field(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer, document_field="body")
    with pytest.raises(DocumentError) as info:
        reranker.compress_documents(documents, "query")
    message = str(info.value)
    assert "document 0 (id 'a')" in message
    assert "'metadata.body'" in message
    assert info.value.document_id == "a"
    assert info.value.field == "metadata.body"


@pytest.mark.parametrize("bad", ["", "   \n", None])
def test_unreadable_text_names_the_document(documents, keyword_scorer, bad):
    documents[2].metadata["body"] = bad
    for i, doc in enumerate(documents):
        if i != 2:
            doc.metadata["body"] = "fine text"
    with pytest.raises(DocumentError, match=r"document 2 \(id 'c'\).*'metadata\.body'"):
        CrossRankReranker(scorer=keyword_scorer, document_field="body").compress_documents(
            documents, "query"
        )


def test_empty_page_content_names_the_document(keyword_scorer):
    docs = [Document(page_content="fine"), Document(page_content=" ", id="blank")]
    with pytest.raises(DocumentError, match=r"document 1 \(id 'blank'\).*'page_content'"):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(docs, "query")


def test_document_without_id_is_named_by_position(keyword_scorer):
    docs = [Document(page_content="fine"), Document(page_content="")]
    with pytest.raises(DocumentError, match=r"document 1 \(no id\)"):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(docs, "query")


@pytest.mark.parametrize("bad", ["just a string", {"page_content": "a dict"}, 42])
def test_non_documents_are_rejected_by_position(keyword_scorer, bad):
    docs = [Document(page_content="fine"), bad]
    with pytest.raises(TypeError, match=r"document 1 is a \w+, not a langchain Document"):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(docs, "query")


def test_a_single_document_instead_of_a_list_is_rejected(keyword_scorer):
    with pytest.raises(TypeError, match="sequence of Documents, not a single Document"):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(
            Document(page_content="x"), "query"
        )


def test_empty_query_is_an_error(documents, keyword_scorer):
    with pytest.raises(QueryError):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(documents, "  ")


def test_a_bad_scorer_never_reorders_silently(documents):
    reranker = CrossRankReranker(scorer=lambda pairs: [float("nan")] * len(pairs))
    with pytest.raises(ScorerError):
        reranker.compress_documents(documents, "query")


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"top_k": 0}, "top_n"),
        ({"top_n": 0}, "top_n"),
        ({"on_unreadable": "drop"}, "on_unreadable"),
        ({"batch_size": -1}, "batch_size"),
        ({"dtype": "float64"}, "dtype"),
        ({"device": "gpu"}, "device"),
        ({"scorer": "ftp://nope"}, "scorer"),
        ({"document_field": "metadata..body"}, "field path"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_invalid_settings_are_rejected_at_construction(settings, match):
    with pytest.raises(ValueError, match=match):
        CrossRankReranker(**settings)


def test_construction_loads_nothing(tmp_path):
    # A folder that does not exist would fail to load; construction must not try.
    CrossRankReranker(model=str(tmp_path / "missing-model"), top_k=3)


def test_a_ready_reranker_can_be_passed_in(documents, keyword_scorer):
    core = Reranker(scorer=keyword_scorer, top_k=2)  # core default document_field: "content"
    ranked = CrossRankReranker(reranker=core).compress_documents(documents, "cross-encoder")
    direct = CrossRankReranker(scorer=keyword_scorer, top_k=2).compress_documents(
        documents, "cross-encoder"
    )
    assert [(d.id, d.metadata) for d in ranked] == [(d.id, d.metadata) for d in direct]
    assert len(ranked) == 2


def test_a_ready_reranker_with_the_langchain_mapping_is_used_as_is(documents, keyword_scorer):
    core = Reranker(
        scorer=keyword_scorer,
        document_field="page_content",
        original_score_field="metadata.relevance_score",
    )
    lc = CrossRankReranker(reranker=core)
    assert lc.compress_documents(documents, "passage")
    assert lc._engine is core  # shares its scorer


def test_a_ready_reranker_and_engine_settings_conflict(keyword_scorer):
    with pytest.raises(ValueError, match="batch_size"):
        CrossRankReranker(reranker=Reranker(scorer=keyword_scorer), batch_size=3)


def test_top_n_given_beside_a_ready_reranker_overrides_its_count(documents, keyword_scorer):
    core = Reranker(scorer=keyword_scorer, top_k=1)
    assert CrossRankReranker(reranker=core).top_n == 1
    assert len(CrossRankReranker(reranker=core, top_n=3).compress_documents(documents, "q")) == 3


def test_real_tiny_model_scores_are_plain_floats(documents, tiny_model):
    ranked = CrossRankReranker(model=tiny_model).compress_documents(documents, "cross-encoder")
    scores = [d.metadata["relevance_score"] for d in ranked]
    assert all(type(s) is float for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_engine_settings_reach_the_engine(keyword_scorer):
    # chunking with a custom scorer needs a tokenizer: the engine's own check must fire.
    with pytest.raises(ValueError, match="tokenizer"):
        CrossRankReranker(scorer=keyword_scorer, long_documents="chunk")
    with pytest.raises(ValueError, match="crossrank quantize"):
        CrossRankReranker(model="some/model", quantize="int8")


def test_a_scorer_url_with_credentials_is_refused_without_showing_them():
    """pydantic shows a model's input in its errors; this one holds a password."""
    with pytest.raises(ValueError, match="credentials") as info:
        CrossRankReranker(scorer="http://alice:pw-9Zq2Lk4@127.0.0.1:9/score")
    assert "pw-9Zq2Lk4" not in str(info.value) and "alice" not in str(info.value)
