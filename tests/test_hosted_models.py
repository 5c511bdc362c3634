"""A stage naming `cohere-rerank-v3` calls Cohere's hosted rerank API (v2), here a strict fake
of it on 127.0.0.1 (`fake_cohere.py`), reached through `CO_API_URL` as a proxy would be.

Covered: the stage JSON works end to end (sync and async, split into requests, merged in
order); the key comes from CO_API_KEY or the variable scorer_api_key_env names and is sent;
it never appears in logs, errors, reprs or tracebacks, even when the server echoes it; a
missing key fails before any request and names the variable; local-model settings are
refused for a hosted model; the name resolves in any spelling and round-trips.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest
from fake_cohere import CohereApiServer, cohere_score
from local_server import free_port

from crossrank import (
    ConfigError,
    Reranker,
    ScorerError,
    ScorerResponseError,
    ScorerUnavailableError,
)
from crossrank.scorers import make_scorer
from crossrank.scorers.hosted import HOSTED_MODELS, CohereRerankApi
from crossrank.stage import resolve_model_name

KEY = "co-test-9f8e7d6c5b4a3210"
QUERY = "cross encoder reranking"
TEXTS = [
    "a bi-encoder embeds texts apart",
    "a cross encoder reads query and passage together",
    "reranking with a cross encoder",
    "bm25 is a lexical ranking function",
    "weather today is sunny",
    "encoder models for reranking",
]
DOCS = [{"id": f"d{i}", "content": t, "score": i / 10} for i, t in enumerate(TEXTS)]


def stage(**parameters) -> str:
    """The stage JSON a retrieval pipeline writes."""
    return json.dumps(
        {
            "stage_name": "rerank",
            "stage_type": "sort",
            "config": {
                "stage_id": "rerank",
                "parameters": {"inference_name": "cohere-rerank-v3", **parameters},
            },
        }
    )


def expected(texts=TEXTS, query=QUERY) -> list[int]:
    scores = [cohere_score(query, t) for t in texts]
    return sorted(range(len(texts)), key=lambda i: -scores[i])


@pytest.fixture
def cohere(monkeypatch):
    """The fake API with CO_API_URL pointing at it and CO_API_KEY holding its key."""
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with CohereApiServer(KEY) as server:
        monkeypatch.setenv("CO_API_URL", server.url)
        yield server


def test_the_stage_naming_cohere_rerank_v3_ranks_with_cohere(cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", KEY)
    reranker = Reranker.from_stage(stage(top_n=3))
    ranked = reranker.rerank(QUERY, DOCS)
    assert [r.index for r in ranked] == expected()[:3]
    for r in ranked:
        assert r.score == pytest.approx(cohere_score(QUERY, r.document["content"]))
        assert r.original_score == r.document["score"]
    [(path, headers, body)] = cohere.requests
    assert path == "/v2/rerank"
    assert headers["Authorization"] == f"Bearer {KEY}"  # the key is sent
    # Cohere's model name, every document back (top_k is cut here), nothing v2 does not take
    assert body == {
        "model": "rerank-english-v3.0",
        "query": QUERY,
        "documents": TEXTS,
        "top_n": len(TEXTS),
    }
    assert reranker.to_stage() == json.loads(stage(top_n=3))


async def test_async_rerank_and_requests_of_100_documents(cohere, monkeypatch):
    """250 documents go as 100 + 100 + 50 (one search unit each), merged in input order."""
    monkeypatch.setenv("CO_API_KEY", KEY)
    texts = [f"doc {i} {'reranking ' * (i % 7)}{'encoder' if i % 3 else ''}" for i in range(250)]
    ranked = await Reranker.from_stage(stage()).arerank(QUERY, texts)
    # sent concurrently, so in any order
    assert sorted(len(b["documents"]) for b in cohere.bodies) == [50, 100, 100]
    scores = {r.index: r.score for r in ranked}
    assert [scores[i] for i in range(250)] == [pytest.approx(cohere_score(QUERY, t)) for t in texts]


def test_batch_size_and_max_length_reach_the_request(cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", KEY)
    Reranker.from_stage(stage(batch_size=4, max_length=512)).rerank(QUERY, TEXTS)
    assert [len(b["documents"]) for b in cohere.bodies] == [4, 2]
    assert {b["max_tokens_per_doc"] for b in cohere.bodies} == {512}


@pytest.mark.parametrize(
    "name, api_model",
    [
        ("cohere-rerank-v3", "rerank-english-v3.0"),
        ("Cohere_Rerank_V3", "rerank-english-v3.0"),
        ("cohere-rerank-multilingual-v3", "rerank-multilingual-v3.0"),
        ("cohere-rerank-v3.5", "rerank-v3.5"),
        ("cohere-rerank-v4-pro", "rerank-v4.0-pro"),
        ("cohere-rerank-v4-fast", "rerank-v4.0-fast"),
    ],
)
def test_each_stage_name_sends_its_cohere_model(cohere, monkeypatch, name, api_model):
    monkeypatch.setenv("CO_API_KEY", KEY)
    reranker = Reranker.from_stage(stage(inference_name=name))
    assert reranker.config.model == resolve_model_name(name) in HOSTED_MODELS
    reranker.rerank(QUERY, TEXTS[:2])
    assert cohere.bodies[-1]["model"] == api_model


def test_the_key_can_come_from_the_variable_the_stage_names(cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", "not-this-one")
    monkeypatch.setenv("CROSSRANK_COHERE_API_KEY", KEY)
    reranker = Reranker.from_stage(stage(scorer_api_key_env="CROSSRANK_COHERE_API_KEY"))
    assert len(reranker.rerank(QUERY, TEXTS)) == len(TEXTS)
    assert cohere.requests[0][1]["Authorization"] == f"Bearer {KEY}"


def test_the_key_can_be_given_in_python(cohere):
    reranker = Reranker(model="cohere-rerank-v3", api_key=KEY)  # CO_API_KEY is not set
    assert len(reranker.rerank(QUERY, TEXTS)) == len(TEXTS)
    assert cohere.requests[0][1]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(reranker) + repr(vars(reranker)) + repr(reranker.scorer)


# -- no key: refused before any request ---------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_a_missing_key_fails_before_any_request_and_names_co_api_key(cohere, monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("CO_API_KEY", value)
    reranker = Reranker.from_stage(stage())
    with pytest.raises(ConfigError, match="CO_API_KEY") as info:
        reranker.rerank(QUERY, DOCS)
    assert "Nothing was sent" in str(info.value)
    assert cohere.requests == []


async def test_a_missing_named_key_fails_before_any_request_and_names_it(cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", KEY)  # not used: the stage names another variable
    monkeypatch.delenv("CROSSRANK_COHERE_API_KEY", raising=False)
    reranker = Reranker.from_stage(stage(scorer_api_key_env="CROSSRANK_COHERE_API_KEY"))
    with pytest.raises(ConfigError, match=r"CROSSRANK_COHERE_API_KEY .*not set"):
        await reranker.arerank(QUERY, DOCS)
    assert cohere.requests == []


def test_a_key_a_header_cannot_carry_is_refused_naming_its_variable(cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", "co-test 9f8e\x07d6c5")
    with pytest.raises(ConfigError, match="CO_API_KEY") as info:
        Reranker.from_stage(stage()).rerank(QUERY, DOCS)
    assert "9f8e" not in str(info.value)
    assert cohere.requests == []


# -- the key is never printed -------------------------------------------------------------------


def _everything_printed(info: pytest.ExceptionInfo, caplog, *objects) -> str:
    """The error with its whole chain and traceback, every log line, and the reprs."""
    exc = info.value
    chain = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join([chain, repr(exc), caplog.text, *map(repr, objects)])


@pytest.mark.parametrize(
    "fault",
    [
        "wrong key echoed",
        "server error echoing the key",
        "bad answer echoing the key",
        "unreachable",
    ],
)
def test_the_key_is_never_logged_or_shown_in_errors(cohere, monkeypatch, caplog, fault):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    sent = KEY
    if fault == "wrong key echoed":
        sent = "co-wrong-5e4d3c2b1a09"
        cohere.echo_credentials = True
        expected_error = ScorerResponseError
    elif fault == "server error echoing the key":
        cohere.faults = [(500, {"message": f"upstream failed for Bearer {KEY}"})] * 5
        expected_error = ScorerUnavailableError
    elif fault == "bad answer echoing the key":
        results = [{"index": i, "relevance_score": 0.5} for i in range(1, len(DOCS))]
        cohere.faults = [(200, {"results": [{"index": 0, "relevance_score": KEY}, *results]})]
        expected_error = ScorerError
    else:
        monkeypatch.setenv("CO_API_URL", f"http://127.0.0.1:{free_port()}")
        expected_error = ScorerUnavailableError
    monkeypatch.setenv("CO_API_KEY", sent)
    reranker = Reranker.from_stage(stage())
    scorer = make_scorer(reranker.config)
    scorer.backoff = scorer.max_backoff = 0.0  # no waiting between the retries
    reranker._scorer = scorer
    with pytest.raises(expected_error) as info:
        reranker.rerank(QUERY, DOCS)
    printed = _everything_printed(info, caplog, reranker, scorer, reranker.config)
    assert sent not in printed
    assert sent[6:] not in printed  # nor the tail of it
    if fault != "unreachable":
        assert "***" in str(info.value)  # the server did echo it: masked
    if fault == "wrong key echoed":
        assert "CO_API_KEY" in str(info.value) and "HTTP 401" in str(info.value)
        assert len(cohere.requests) == 1  # a refused key is not retried
    if fault == "unreachable":
        assert cohere.requests == []


# -- what a hosted model refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"device": "cpu"},
        {"dtype": "bfloat16"},
        {"backend": "onnx"},
        {"trust_remote_code": True},
        {"cache_size": 100},
        {"activation": "sigmoid"},
    ],
)
def test_local_model_settings_are_refused_for_a_hosted_model(setting):
    (name,) = setting
    with pytest.raises(ConfigError, match=f"hosted API .*{name}.* do not apply"):
        Reranker.from_stage(stage(**setting))


def test_settings_left_at_their_defaults_are_accepted(monkeypatch, cohere):
    """Integrations pass every setting, at its default: that is not a local setting."""
    monkeypatch.setenv("CO_API_KEY", KEY)
    assert len(Reranker(model="cohere-rerank-v3", device="auto", dtype="auto").rerank(QUERY, TEXTS))


def test_chunking_a_hosted_model_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="needs `tokenizer`"):
        Reranker.from_stage(stage(long_documents="chunk"))


def test_a_stage_cannot_choose_the_server_the_key_goes_to():
    with pytest.raises(ConfigError, match=r"unknown parameter.*base_url"):
        Reranker.from_stage(stage(base_url="https://collector.example"))


def test_a_bad_base_url_names_its_variable(monkeypatch):
    monkeypatch.setenv("CO_API_KEY", KEY)
    monkeypatch.setenv("CO_API_URL", "api.cohere.com")
    with pytest.raises(ConfigError, match="CO_API_URL"):
        Reranker.from_stage(stage()).rerank(QUERY, TEXTS)


def test_base_url_in_python_and_a_copied_version_suffix(cohere):
    scorer = CohereRerankApi("rerank-v3.5", api_key=KEY, base_url=cohere.url + "/v2/")
    assert scorer.url == cohere.url + "/v2/rerank"
    assert scorer.score([(QUERY, TEXTS[2]), (QUERY, TEXTS[4])]) == [
        pytest.approx(cohere_score(QUERY, TEXTS[2])),
        pytest.approx(cohere_score(QUERY, TEXTS[4])),
    ]
    assert KEY not in repr(scorer)


def test_a_local_folder_of_that_name_is_a_local_model(tiny_model, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "cohere-rerank-v3")
    reranker = Reranker.from_stage(stage(device="cpu"))
    assert reranker.config.model == "cohere-rerank-v3"
    assert len(reranker.rerank(QUERY, TEXTS)) == len(TEXTS)  # the tiny model, no key needed
