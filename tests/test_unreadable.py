"""`on_unreadable`: what a rerank does with a document that has no readable text.

"raise" (the default) stops with a `DocumentError` naming the document; "skip" leaves it out
and names it in one warning; "last" returns it after every scored document with score -inf
and its problem in `RankedDocument.unreadable`. Through `Reranker`, stage configs and the CLI.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import math
import pickle
import sys

import pytest
from local_server import ScorerServer
from pydantic import ValidationError

from crossrank import ConfigError, DocumentError, RerankConfig, Reranker
from crossrank.cli import EXIT_INPUT, main
from crossrank.reranker import UNREADABLE_RECORD

QUERY = "wing lift"


class LengthScorer:
    """Score = text length; records every text it was asked to score."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score(self, pairs):
        self.seen.extend(text for _, text in pairs)
        return [float(len(text)) for _, text in pairs]


def candidates() -> list[dict]:
    return [
        {"id": "a", "content": "short", "score": 0.9},
        {"id": "blank", "content": "  \u200b\n", "score": 0.8},  # only invisible characters
        {"id": "b", "content": "a longer passage", "score": 0.7},
        {"id": "missing", "body": "text in the wrong field", "score": 0.6},
        {"id": "number", "content": 42, "score": 0.5},
        {"id": "c", "content": "mid text", "score": 0.4},
        {"id": "surrogate", "content": "bad \ud800 decode", "score": 0.3},
    ]


UNREADABLE_IDS = ["blank", "missing", "number", "surrogate"]


def test_default_is_raise_naming_the_document_and_the_way_out():
    assert RerankConfig().on_unreadable == "raise"
    scorer = LengthScorer()
    with pytest.raises(DocumentError) as info:
        Reranker(scorer=scorer).rerank(QUERY, candidates())
    assert info.value.index == 1
    assert info.value.document_id == "blank"
    assert info.value.field == "content"
    assert "document 1 (id 'blank')" in str(info.value)
    assert "on_unreadable='skip' or 'last'" in str(info.value)
    assert scorer.seen == []  # nothing was scored


def test_skip_leaves_them_out_and_names_every_one_in_a_warning(caplog):
    scorer = LengthScorer()
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ranked = Reranker(scorer=scorer, on_unreadable="skip").rerank(QUERY, candidates())
    assert [r.document_id for r in ranked] == ["b", "c", "a"]
    assert [r.rerank_position for r in ranked] == [0, 1, 2]
    assert [r.index for r in ranked] == [2, 5, 0]
    assert all(r.unreadable is None and math.isfinite(r.score) for r in ranked)
    assert sorted(scorer.seen) == sorted(["short", "a longer passage", "mid text"])
    (record,) = [r for r in caplog.records if hasattr(r, UNREADABLE_RECORD)]
    assert record.levelno == logging.WARNING
    assert getattr(record, UNREADABLE_RECORD) == [
        (1, "blank"),
        (3, "missing"),
        (4, "number"),
        (6, "surrogate"),
    ]
    message = record.getMessage()
    assert "4 of 7 documents" in message and "on_unreadable='skip'" in message
    for doc_id in UNREADABLE_IDS:
        assert f"(id '{doc_id}')" in message


def test_the_warning_names_ten_and_counts_the_rest(caplog):
    docs = [{"id": f"e{i}", "content": ""} for i in range(15)] + [{"id": "ok", "content": "x"}]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ranked = Reranker(scorer=LengthScorer(), on_unreadable="skip").rerank(QUERY, docs)
    assert [r.document_id for r in ranked] == ["ok"]
    (record,) = [r for r in caplog.records if hasattr(r, UNREADABLE_RECORD)]
    assert len(getattr(record, UNREADABLE_RECORD)) == 15
    assert "(id 'e9')" in record.getMessage()
    assert "(id 'e10')" not in record.getMessage()
    assert "and 5 more" in record.getMessage()


def test_last_keeps_them_after_the_scored_ones_in_input_order():
    ranked = Reranker(scorer=LengthScorer(), on_unreadable="last").rerank(QUERY, candidates())
    assert [r.document_id for r in ranked] == ["b", "c", "a", *UNREADABLE_IDS]
    assert [r.rerank_position for r in ranked] == list(range(7))
    scored, unscored = ranked[:3], ranked[3:]
    assert all(r.unreadable is None and math.isfinite(r.score) for r in scored)
    for r in unscored:
        assert type(r.score) is float and r.score == float("-inf")
        assert r.unreadable.startswith(f"document {r.index} (id '{r.document_id}')")
        assert r.truncated is None and r.best_chunk is None
    assert "not a string" in ranked[5].unreadable  # the number
    assert "no field 'content'" in ranked[4].unreadable
    assert "unpaired surrogate" in ranked[6].unreadable
    # The previous stage's score is kept for them too, and sorting by score keeps them last.
    assert [r.original_score for r in unscored] == [0.8, 0.6, 0.5, 0.3]
    assert sorted(ranked, key=lambda r: -r.score) == ranked


def test_last_with_top_k_cuts_after_the_scored_ones():
    reranker = Reranker(scorer=LengthScorer(), on_unreadable="last")
    assert [r.document_id for r in reranker.rerank(QUERY, candidates(), top_k=2)] == ["b", "c"]
    assert [r.document_id for r in reranker.rerank(QUERY, candidates(), top_k=4)] == [
        "b",
        "c",
        "a",
        "blank",
    ]


@pytest.mark.parametrize("policy, expected", [("skip", []), ("last", ["x", "y"])])
def test_when_nothing_is_readable_nothing_is_scored(policy, expected):
    scorer = LengthScorer()
    docs = [{"id": "x", "content": ""}, {"id": "y"}]
    ranked = Reranker(scorer=scorer, on_unreadable=policy).rerank(QUERY, docs)
    assert [r.document_id for r in ranked] == expected
    assert scorer.seen == []


@pytest.mark.parametrize("policy", ["skip", "last"])
def test_async_agrees_with_sync(policy):
    reranker = Reranker(scorer=LengthScorer(), on_unreadable=policy)
    sync = reranker.rerank(QUERY, candidates())
    asynchronous = asyncio.run(reranker.arerank(QUERY, candidates()))
    assert sync == asynchronous


def test_duplicates_of_a_readable_text_are_still_scored_once_beside_unreadable_ones():
    scorer = LengthScorer()
    docs = [{"content": "same"}, {"content": ""}, {"content": "same"}]
    ranked = Reranker(scorer=scorer, on_unreadable="last").rerank(QUERY, docs)
    assert scorer.seen == ["same"]
    assert [(r.index, r.score) for r in ranked] == [(0, 4.0), (2, 4.0), (1, float("-inf"))]


def test_a_real_model_ranks_unreadable_documents_last(tiny_model):
    docs = ["wing lift at low speed", "", "boundary layer transition"]
    ranked = Reranker(model=tiny_model, device="cpu", on_unreadable="last").rerank(QUERY, docs)
    assert [r.index for r in ranked][-1] == 1
    assert all(math.isfinite(r.score) for r in ranked[:2])


def test_an_unknown_policy_is_refused_naming_the_setting():
    with pytest.raises(ValidationError, match="on_unreadable"):
        RerankConfig(on_unreadable="drop")


def test_stage_parameter_reads_and_writes_back():
    stage = {"stage_type": "sort", "stage_id": "rr", "parameters": {"on_unreadable": "last"}}
    reranker = Reranker.from_stage(stage)
    assert reranker.config.on_unreadable == "last"
    assert reranker.to_stage() == stage
    with pytest.raises(ConfigError, match="on_unreadable"):
        Reranker.from_stage({"stage_type": "sort", "parameters": {"on_unreadable": "ignore"}})


def _cli_rows(monkeypatch, capsys, tiny_model, *flags):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(json.dumps(d) for d in candidates())))
    code = main(["rerank", "-q", QUERY, "-m", tiny_model, "--device", "cpu", *flags])
    out = capsys.readouterr().out
    # Strict JSON: no NaN or Infinity a non-Python reader would choke on.
    return code, [json.loads(line, parse_constant=_refuse) for line in out.splitlines()]


def _refuse(name):
    raise ValueError(f"{name} is not JSON")


def test_cli_last_writes_valid_json_with_a_null_score(monkeypatch, capsys, tiny_model):
    code, rows = _cli_rows(monkeypatch, capsys, tiny_model, "--on-unreadable", "last")
    assert code == 0
    assert [r["document_id"] for r in rows[3:]] == UNREADABLE_IDS
    assert all(r["score"] is None and "unreadable" in r for r in rows[3:])
    assert all(isinstance(r["score"], float) and "unreadable" not in r for r in rows[:3])
    assert rows[3]["original_score"] == 0.8  # the caller's score field is kept


def test_cli_on_unreadable_skip_and_the_default(monkeypatch, capsys, tiny_model):
    code, rows = _cli_rows(monkeypatch, capsys, tiny_model, "--on-unreadable", "skip")
    assert code == 0
    assert sorted(r["document_id"] for r in rows) == ["a", "b", "c"]
    code, rows = _cli_rows(monkeypatch, capsys, tiny_model)
    assert code == EXIT_INPUT and rows == []


# -- copies, pickles and an endpoint key given in Python ------------------------------------


def test_a_reranker_pickles_and_copies_after_it_has_scored(tiny_model):
    reranker = Reranker(model=tiny_model, device="cpu")
    before = reranker.rerank(QUERY, ["wing lift", "drag"])
    clone = pickle.loads(pickle.dumps(reranker))
    assert clone.config == reranker.config
    assert clone.rerank(QUERY, ["wing lift", "drag"]) == before
    # The model came back from the process-wide cache, not from the pickle.
    assert clone.scorer is not reranker.scorer
    assert clone.scorer.model is reranker.scorer.model
    assert copy.deepcopy(reranker) is reranker  # immutable: copies share the scorer


def test_api_key_given_in_python_is_sent_and_never_shown():
    secret = "sk-python-4Rt9"
    with ScorerServer() as server:
        reranker = Reranker(scorer=server.url, api_key=secret)
        reranker.rerank(QUERY, ["one", "two"])
        assert secret not in repr(reranker) + repr(vars(reranker))
    assert server.requests[0].headers["Authorization"] == f"Bearer {secret}"


@pytest.mark.parametrize(
    "settings, match",
    [
        ({}, "has none"),
        ({"scorer": lambda pairs: [0.0] * len(pairs)}, "has none"),
        ({"scorer": "http://127.0.0.1:9/s", "scorer_api_key_env": "K"}, "not both"),
    ],
)
def test_api_key_that_would_not_be_sent_is_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        Reranker(api_key="k", **settings)
