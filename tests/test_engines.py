"""Serving-engine scorers against real local HTTP servers (127.0.0.1, port 0) that speak
text-embeddings-inference's, the Cohere-compatible and the stage plugin protocols."""

from __future__ import annotations

import pytest
from fake_engines import EngineServer, known_score

from crossrank import (
    ConfigError,
    Reranker,
    ScorerError,
    ScorerResponseError,
    ScorerUnavailableError,
)
from crossrank.scorers import CohereScorer, HttpScorer, TeiScorer

QUERY = "cross encoder reranking"
DOCS = [
    {"id": f"d{i}", "content": text, "score": i / 10}
    for i, text in enumerate(
        [
            "a bi-encoder embeds texts apart",
            "a cross encoder reads query and passage together",
            "reranking with a cross encoder: cross attention over both",
            "bm25 is a lexical ranking function",
            "weather today is sunny",
            "encoder models for reranking",
            "reranking reranking reranking",
            "nothing relevant here at all",
            "the cross product of two vectors",
            "dense retrieval then reranking with a cross encoder",
        ]
    )
]


def expected_order(docs=DOCS, query=QUERY) -> list[str]:
    scores = [known_score(query, d["content"]) for d in docs]
    order = sorted(range(len(docs)), key=lambda i: -scores[i])  # stable, like crossrank
    return [docs[i]["id"] for i in order]


def check_ranked(ranked, top_k=None) -> None:
    want = expected_order()[:top_k]
    assert [r.document_id for r in ranked] == want
    assert [r.rerank_position for r in ranked] == list(range(len(want)))
    for r in ranked:
        assert r.score == pytest.approx(known_score(QUERY, r.document["content"]))
        assert r.original_score == r.document["score"]


# -- text-embeddings-inference ---------------------------------------------------------------


def test_tei_splits_to_the_servers_limit_and_merges_in_order():
    with EngineServer("tei", max_batch=4) as server:
        rr = Reranker(scorer=f"tei+{server.url}", top_k=5)
        check_ranked(rr.rerank(QUERY, DOCS), top_k=5)
        sizes = [len(body["texts"]) for body in server.bodies()]
        # One request of 10 refused (413, "maximum allowed batch size 4"), then 4 + 4 + 2.
        assert sizes == [10, 4, 4, 2]
        assert all(path == "/rerank" for path, _, _ in server.requests)
        body = server.bodies()[1]
        assert body == {
            "query": QUERY,
            "texts": [d["content"] for d in DOCS[:4]],
            "truncate": True,
            "raw_scores": False,
        }
        # The limit is remembered: the next call goes straight to requests of 4.
        rr.rerank(QUERY, DOCS)
        assert [len(b["texts"]) for b in server.bodies()[4:]] == [4, 4, 2]


async def test_tei_async_splits_and_merges():
    with EngineServer("tei", max_batch=3) as server:
        rr = Reranker(scorer=f"tei+{server.url}/rerank")
        check_ranked(await rr.arerank(QUERY, DOCS))
        accepted = sorted(len(b["texts"]) for b in server.bodies() if len(b["texts"]) <= 3)
        assert accepted == [1, 3, 3, 3]


def test_tei_request_size_follows_batch_size():
    with EngineServer("tei") as server:
        check_ranked(Reranker(scorer=f"tei+{server.url}", batch_size=3).rerank(QUERY, DOCS))
        assert [len(b["texts"]) for b in server.bodies()] == [3, 3, 3, 1]


def test_tei_refusal_without_a_limit_halves_the_request():
    with EngineServer("tei") as server:
        server.faults.append((413, b"payload too large", {}))
        check_ranked(TeiScorer_rerank(server.url))
        assert [len(b["texts"]) for b in server.bodies()] == [10, 5, 5]


def TeiScorer_rerank(url: str):
    return Reranker(scorer=TeiScorer(url, max_retries=0)).rerank(QUERY, DOCS)


def test_tei_other_validation_error_is_reported_not_retried():
    with EngineServer("tei") as server:
        server.faults.append((422, {"error": "input is empty", "error_type": "Validation"}, {}))
        with pytest.raises(ScorerResponseError, match=r"tei endpoint .*/rerank.* HTTP 422"):
            Reranker(scorer=f"tei+{server.url}").rerank(QUERY, DOCS)
        assert len(server.requests) == 1


def test_tei_groups_pairs_by_query():
    with EngineServer("tei", max_batch=2) as server:
        scorer = TeiScorer(server.url)
        pairs = [("alpha", "alpha beta"), ("beta", "beta beta"), ("alpha", "x"), ("beta", "y")]
        assert scorer.score(pairs) == pytest.approx([known_score(q, t) for q, t in pairs])
        assert sorted((b["query"], tuple(b["texts"])) for b in server.bodies()) == [
            ("alpha", ("alpha beta", "x")),
            ("beta", ("beta beta", "y")),
        ]


# -- Cohere-compatible (infinity, vLLM, Jina) ------------------------------------------------


@pytest.mark.parametrize("path", ["", "/rerank", "/v1/rerank"])
def test_cohere_routes_split_and_merge(path):
    with EngineServer("cohere") as server:
        rr = Reranker(model="my-reranker", scorer=f"cohere+{server.url}{path}", batch_size=4)
        check_ranked(rr.rerank(QUERY, DOCS, top_k=3), top_k=3)
        assert {p for p, _, _ in server.requests} == {path or "/rerank"}
        bodies = server.bodies()
        assert [len(b["documents"]) for b in bodies] == [4, 4, 2]
        assert bodies[0] == {
            "model": "my-reranker",
            "query": QUERY,
            "documents": [d["content"] for d in DOCS[:4]],
            "top_n": 4,
            "return_documents": False,
        }


async def test_cohere_async_and_model_left_out_when_not_set():
    with EngineServer("cohere") as server:
        rr = Reranker(scorer=f"infinity+{server.url}", batch_size=3)
        check_ranked(await rr.arerank(QUERY, DOCS))
        assert all("model" not in b for b in server.bodies())
        assert len(server.requests) == 4


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"results": [{"index": 0, "relevance_score": 0.5}]}, "missing indices"),
        (
            {"results": [{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 2}]},
            "index 0 twice",
        ),
        (
            {"results": [{"index": 7, "relevance_score": 1}, {"index": 1, "relevance_score": 2}]},
            "index 7, outside 0..1",
        ),
        (
            {
                "results": [
                    {"index": 0, "relevance_score": "high"},
                    {"index": 1, "relevance_score": 2},
                ]
            },
            "non-numeric",
        ),
        ({"data": []}, 'without a "results" list'),
        (b"<html>oops</html>", "not JSON"),
    ],
)
def test_cohere_malformed_answers_are_errors(answer, problem):
    with EngineServer("cohere") as server:
        server.faults.append((200, answer, {}))
        with pytest.raises(ScorerError, match=problem):
            Reranker(scorer=f"cohere+{server.url}").rerank("q", ["one", "two"])


# -- the stage plugin contract, retries, keys ------------------------------------------------


@pytest.mark.parametrize("scheme", ["", "pairs+"])
def test_pairs_protocol(scheme):
    with EngineServer("pairs") as server:
        check_ranked(
            Reranker(scorer=f"{scheme}{server.url}/score", batch_size=4).rerank(QUERY, DOCS)
        )
        assert [len(b["pairs"]) for b in server.bodies()] == [4, 4, 2]


@pytest.mark.parametrize("protocol", ["tei", "cohere", "pairs"])
def test_busy_server_is_retried_after_retry_after(protocol):
    with EngineServer(protocol) as server:
        server.faults.append((503, {"error": "overloaded"}, {"Retry-After": "0"}))
        server.faults.append((429, {"error": "slow down"}, {"Retry-After": "0"}))
        check_ranked(Reranker(scorer=f"{protocol}+{server.url}").rerank(QUERY, DOCS))
        assert len(server.requests) == 3


@pytest.mark.parametrize("cls", [TeiScorer, CohereScorer])
def test_retries_are_bounded(cls):
    with EngineServer("tei") as server:
        server.faults.extend([(503, {"error": "down"}, {"Retry-After": "0"})] * 5)
        scorer = cls(server.url, max_retries=2, backoff=0.0)
        with pytest.raises(ScorerUnavailableError, match=r"HTTP 503 after 3 attempt"):
            scorer.score([("q", "t")])
        assert len(server.requests) == 3


def test_unreachable_engine_is_unavailable():
    with EngineServer("tei") as server:
        url = server.url
    scorer = TeiScorer(url, max_retries=1, backoff=0.0)
    with pytest.raises(ScorerUnavailableError, match="could not be reached after 2 attempt"):
        scorer.score([("q", "t")])


@pytest.mark.parametrize("protocol", ["tei", "cohere", "pairs"])
def test_api_key_from_environment_is_sent_and_never_printed(protocol, monkeypatch):
    secret = "sk-test-0123456789"
    monkeypatch.setenv("MY_ENGINE_KEY", secret)
    with EngineServer(protocol, api_key=secret) as server:
        rr = Reranker(scorer=f"{protocol}+{server.url}", scorer_api_key_env="MY_ENGINE_KEY")
        check_ranked(rr.rerank(QUERY, DOCS))
        assert secret not in repr(rr.scorer) and secret not in repr(rr)
        assert secret not in rr.config.model_dump_json()
        monkeypatch.setenv("MY_ENGINE_KEY", "wrong-key")
        with pytest.raises(ScorerResponseError, match="HTTP 401") as info:
            Reranker(scorer=f"{protocol}+{server.url}", scorer_api_key_env="MY_ENGINE_KEY").rerank(
                QUERY, DOCS
            )
        assert "wrong-key" not in str(info.value)


def test_api_key_given_in_python_is_sent():
    with EngineServer("tei", api_key="k-1") as server:
        scorer = TeiScorer(server.url, api_key="k-1")
        assert scorer.score([("q", "q t")]) == [pytest.approx(known_score("q", "q t"))]
        assert "k-1" not in repr(scorer)


@pytest.mark.parametrize("cls", [TeiScorer, CohereScorer, HttpScorer])
async def test_requests_in_flight_are_bounded(cls):
    with EngineServer(cls.__name__[:-6].lower().replace("http", "pairs"), delay=0.05) as server:
        scorer = cls(server.url, max_pairs_per_request=1, max_connections=2)
        pairs = [(QUERY, d["content"]) for d in DOCS]
        scores = await scorer.ascore(pairs)  # 10 requests at once; 2 on the wire at a time
        assert scores == pytest.approx([known_score(q, t) for q, t in pairs])
        assert len(server.requests) == 10
        assert server.most_in_flight <= 2


def test_engine_scorers_share_the_http_scorer_machinery():
    assert issubclass(TeiScorer, HttpScorer) and issubclass(CohereScorer, HttpScorer)


@pytest.mark.parametrize(
    "bad", ["grpc+http://127.0.0.1:1/rerank", "tei+ftp://host/rerank", "no-such-scorer"]
)
def test_bad_scorer_strings_are_rejected_at_config_time(bad):
    with pytest.raises(ConfigError, match="scorer"):
        Reranker(scorer=bad)


def test_engine_url_round_trips_through_json():
    rr = Reranker(scorer="tei+http://127.0.0.1:8080", top_k=3)
    again = Reranker.from_json(rr.config.model_dump_json())
    assert again.config == rr.config
    assert isinstance(again.scorer, TeiScorer)
    assert again.scorer.url == "http://127.0.0.1:8080/rerank"
