"""The rerank stage contract, through the public API: fields, top_k, ties, mutation, dedup."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from crossrank import DEFAULT_MODEL, ConfigError, RankedDocument, RerankConfig, Reranker


def table_scorer(table: dict[str, float], calls: list | None = None):
    """A callable scorer whose score for each text the test fixes in advance."""

    def score(pairs):
        if calls is not None:
            calls.append(list(pairs))
        return [table[text] for _, text in pairs]

    return score


DOCS = [
    {"id": "a", "content": "alpha", "score": 0.9, "extra": {"keep": [1, 2]}},
    {"id": "b", "content": "bravo", "score": 0.8},
    {"id": "c", "content": "charlie", "score": 0.7},
    {"id": "d", "content": "delta", "score": 0.6},
]
SCORES = {"alpha": 0.1, "bravo": 3.5, "charlie": -2.0, "delta": 1.25}


def test_results_carry_every_contract_field_in_score_order():
    ranked = Reranker(scorer=table_scorer(SCORES)).rerank("q", DOCS)
    assert [r.document_id for r in ranked] == ["b", "d", "a", "c"]
    assert [r.score for r in ranked] == [3.5, 1.25, 0.1, -2.0]
    assert [r.original_score for r in ranked] == [0.8, 0.6, 0.9, 0.7]
    assert [r.rerank_position for r in ranked] == [0, 1, 2, 3]  # 0-based
    assert [r.index for r in ranked] == [1, 3, 0, 2]
    assert all(r.document is DOCS[r.index] for r in ranked)
    assert all(type(r.score) is float for r in ranked)
    assert ranked[0].contract_fields() == {
        "document_id": "b",
        "score": 3.5,
        "original_score": 0.8,
        "rerank_position": 0,
    }


def test_scores_from_numpy_become_plain_floats_that_json_can_write():
    import numpy as np

    ranked = Reranker(scorer=lambda pairs: np.array([0.5, 0.25], dtype=np.float32)).rerank(
        "q", ["x", "y"]
    )
    assert all(type(r.score) is float for r in ranked)
    json.dumps([r.contract_fields() for r in ranked])


@pytest.mark.parametrize(
    ("top_k", "expected"),
    [
        (None, ["b", "d", "a", "c"]),
        (2, ["b", "d"]),
        (1, ["b"]),
        (4, ["b", "d", "a", "c"]),
        (99, ["b", "d", "a", "c"]),
    ],
)
def test_top_k_cuts_after_sorting(top_k, expected):
    ranked = Reranker(scorer=table_scorer(SCORES), top_k=top_k).rerank("q", DOCS)
    assert [r.document_id for r in ranked] == expected


def test_top_k_per_call_overrides_the_config():
    rr = Reranker(scorer=table_scorer(SCORES), top_k=1)
    assert len(rr.rerank("q", DOCS)) == 1
    assert len(rr.rerank("q", DOCS, top_k=3)) == 3
    assert len(rr.rerank("q", DOCS, top_k=None)) == 4


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_top_k_zero_or_negative_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=f"top_k={bad}"):
        Reranker(top_k=bad)
    with pytest.raises(ValueError, match="top_k"):
        Reranker(scorer=table_scorer(SCORES)).rerank("q", DOCS, top_k=bad)


def test_ties_keep_input_order():
    docs = [f"doc{i}" for i in range(8)]
    scores = {d: (1.0 if i % 2 else 2.0) for i, d in enumerate(docs)}
    ranked = Reranker(scorer=table_scorer(scores)).rerank("q", docs)
    assert [r.document for r in ranked] == [
        "doc0",
        "doc2",
        "doc4",
        "doc6",
        "doc1",
        "doc3",
        "doc5",
        "doc7",
    ]


def test_input_documents_are_never_mutated():
    docs = copy.deepcopy(DOCS)
    before = copy.deepcopy(docs)
    Reranker(scorer=table_scorer(SCORES), top_k=2).rerank("q", docs)
    assert docs == before
    assert json.dumps(docs, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_identical_texts_are_scored_once_and_fanned_out():
    calls: list = []
    docs = [
        {"id": 1, "content": "same"},
        {"id": 2, "content": "other"},
        {"id": 3, "content": "same"},
    ]
    ranked = Reranker(scorer=table_scorer({"same": 2.0, "other": 1.0}, calls)).rerank("q", docs)
    assert calls == [[("q", "same"), ("q", "other")]]
    assert [(r.document_id, r.score) for r in ranked] == [(1, 2.0), (3, 2.0), (2, 1.0)]


def test_dotted_document_field_reaches_into_dicts_and_attributes():
    @dataclass
    class Doc:
        metadata: dict = field(default_factory=dict)
        id: str | None = None

    docs = [
        Doc(metadata={"body": "bravo"}, id="x"),
        {"metadata": {"body": "alpha"}, "id": "y"},
    ]
    ranked = Reranker(scorer=table_scorer(SCORES), document_field="metadata.body").rerank("q", docs)
    assert [r.document_id for r in ranked] == ["x", "y"]
    assert ranked[0].document is docs[0]


def test_document_id_falls_back_through_id_fields_to_the_index():
    docs = [
        {"_id": "underscore", "content": "alpha"},
        {"document_id": "explicit", "content": "bravo"},
        {"id": None, "content": "charlie"},
        "delta",
    ]
    ranked = Reranker(scorer=table_scorer(SCORES)).rerank("q", docs)
    assert {r.index: r.document_id for r in ranked} == {0: "underscore", 1: "explicit", 2: 2, 3: 3}


def test_original_score_field_is_configurable_and_dotted():
    docs = [{"content": "alpha", "meta": {"bm25": 12.5}}, {"content": "bravo"}]
    ranked = Reranker(scorer=table_scorer(SCORES), original_score_field="meta.bm25").rerank(
        "q", docs
    )
    assert {r.index: r.original_score for r in ranked} == {0: 12.5, 1: None}


def test_default_query_comes_from_the_config_and_a_call_overrides_it():
    seen = []

    def scorer(pairs):
        seen.extend(q for q, _ in pairs)
        return [0.0] * len(pairs)

    rr = Reranker(scorer=scorer, query="configured")
    rr.rerank(None, ["x"])
    rr.rerank("per call", ["y"])
    assert seen == ["configured", "per call"]


def test_empty_document_list_returns_an_empty_list_without_scoring():
    calls: list = []
    assert Reranker(scorer=table_scorer({}, calls)).rerank("q", []) == []
    assert calls == []


def test_model_is_the_default_and_nothing_loads_at_construction():
    rr = Reranker(top_k=5)
    assert rr.config.model == DEFAULT_MODEL == "BAAI/bge-reranker-v2-m3"
    assert rr._scorer is None  # lazy


def test_config_round_trips_through_json():
    config = RerankConfig(
        model="some/model",
        top_k=7,
        query="q",
        document_field="metadata.body",
        original_score_field="meta.score",
        batch_size=8,
        max_length=256,
        device="cpu",
        dtype="bfloat16",
        activation="none",
    )
    again = RerankConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert Reranker.from_json(config.model_dump_json()).config == config
    url_config = RerankConfig(scorer="http://127.0.0.1:9/score")
    assert RerankConfig.model_validate_json(url_config.model_dump_json()) == url_config


def test_a_python_scorer_cannot_be_serialised_and_says_so():
    with pytest.raises(Exception, match="cannot be serialised"):
        RerankConfig(scorer=lambda pairs: []).model_dump_json()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"unknown": 1}, "unknown"),
        ({"document_field": "a..b"}, "field path"),
        ({"document_field": ""}, "field path"),
        ({"device": "gpu"}, "device"),
        ({"dtype": "int4"}, "dtype"),
        ({"scorer": "ftp://x"}, "http"),
        ({"scorer": 3}, "scorer"),
        ({"scorer": "http://x", "activation": "sigmoid"}, "activation"),
        ({"query": "   "}, "query"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_settings_are_validation_errors_naming_the_setting(settings, message):
    with pytest.raises(ValidationError, match=message):
        RerankConfig(**settings)


def test_ranked_document_is_immutable():
    ranked = Reranker(scorer=table_scorer(SCORES)).rerank("q", DOCS)
    assert isinstance(ranked[0], RankedDocument)
    with pytest.raises(AttributeError):
        ranked[0].score = 1.0  # type: ignore[misc]
