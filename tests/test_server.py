"""`crossrank serve` against clients crossrank did not write, and crossrank's own.

A real server (uvicorn on 127.0.0.1, a free port) serves the tiny cross-encoder; every client
must give the same order, and scores within 1e-6, as an in-process `Reranker` on the model.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import cohere
import httpx
import pytest
from serve_helpers import running_server

from crossrank import Reranker
from crossrank.config import EngineSettings
from crossrank.server import ServerSettings, build_app

QUERY = "what is a panda bear?"
DOCS = [
    "the giant panda is a bear native to china",
    "pandas is a python library for data frames",
    "bears eat bamboo, fish and berries",
    "a red panda is not a bear",
    "paris is the capital of france",
    "the giant panda is a bear native to china",  # a duplicate scores as its first copy
    "bamboo forests of sichuan",
]


@pytest.fixture(scope="module")
def served(tiny_model):
    with running_server(EngineSettings(model=tiny_model)) as (url, app):
        yield url, app


@pytest.fixture(scope="module")
def expected(tiny_model):
    """(index, score) best first, in process."""
    return [(r.index, r.score) for r in Reranker(model=tiny_model).rerank(QUERY, DOCS)]


def assert_same(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cohere_python_sdk_unchanged(served, expected, version):
    url, _ = served
    if version == "v2":
        client = cohere.ClientV2(api_key="unused", base_url=url)
        answer = client.rerank(model="served", query=QUERY, documents=DOCS)
    else:
        client = cohere.Client(api_key="unused", base_url=url)
        answer = client.rerank(model="served", query=QUERY, documents=DOCS, return_documents=True)
        assert [r.document.text for r in answer.results] == [DOCS[r.index] for r in answer.results]
    assert_same([(r.index, r.relevance_score) for r in answer.results], expected)
    assert answer.id and answer.meta.api_version.version == version[1]
    top = client.rerank(model="served", query=QUERY, documents=DOCS, top_n=2)
    assert [r.index for r in top.results] == [i for i, _ in expected[:2]]


@pytest.mark.parametrize(
    "scorer",
    ["{url}/score", "pairs+{url}/score", "tei+{url}", "cohere+{url}", "cohere+{url}/v2/rerank"],
)
def test_crossranks_own_clients(served, expected, scorer):
    url, _ = served
    results = Reranker(scorer=scorer.format(url=url)).rerank(QUERY, DOCS)
    assert_same([(r.index, r.score) for r in results], expected)


def test_a_stage_whose_feature_uri_names_the_server(served, expected, tmp_path):
    url, _ = served
    stage = tmp_path / "stage.json"
    stage.write_text(
        json.dumps(
            {
                "stage_type": "sort",
                "stage_id": "rerank",
                "parameters": {"feature_uri": f"{url}/score", "top_n": 3},
            }
        )
    )
    results = Reranker.from_stage(str(stage)).rerank(QUERY, DOCS)
    assert_same([(r.index, r.score) for r in results], expected[:3])


def test_score_keeps_input_order_across_queries(served, tiny_model):
    url, _ = served
    pairs = [["q one", "alpha"], ["q two", "beta"], ["q one", "gamma"], ["q two", "alpha"]]
    got = httpx.post(f"{url}/score", json={"pairs": pairs}).json()["scores"]
    local = Reranker(model=tiny_model)
    for (query, text), score in zip(pairs, got, strict=True):
        assert score == pytest.approx(local.rerank(query, [text])[0].score, abs=1e-6)


def test_tei_body_and_answer(served, expected, tiny_model):
    url, _ = served
    answer = httpx.post(
        f"{url}/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True}
    ).json()
    assert_same([(a["index"], a["score"]) for a in answer], expected)
    assert all(a["text"] == DOCS[a["index"]] for a in answer)
    raw = httpx.post(f"{url}/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True})
    logits = Reranker(model=tiny_model, activation="none").rerank(QUERY, DOCS)
    assert_same(
        [(a["index"], a["score"]) for a in raw.json()], [(r.index, r.score) for r in logits]
    )


def test_health_info_metrics(served, tiny_model):
    url, _ = served
    assert httpx.get(f"{url}/health").json() == {"status": "ready"}
    info = httpx.get(f"{url}/info").json()
    assert info["model"] == tiny_model and info["family"] == "sequence-classification"
    assert info["limits"]["max_client_batch_size"] == 1000
    assert info["runtime"] in ("openvino", "torch") and info["max_length"] == 512
    httpx.post(f"{url}/score", json={"pairs": [["secret query words", "secret text"]]})
    metrics = httpx.get(f"{url}/metrics").text
    assert 'crossrank_requests_total{endpoint="/score",status="200"}' in metrics
    assert "crossrank_pairs_scored_total" in metrics
    assert "crossrank_request_duration_seconds_bucket" in metrics
    assert "crossrank_requests_in_flight" in metrics
    assert "secret" not in metrics


def test_an_empty_request_is_a_4xx_as_tei_and_cohere_answer(served):
    url, _ = served
    for path, body, field in [
        ("/score", {"pairs": []}, "pairs"),
        ("/v2/rerank", {"query": "q", "documents": []}, "documents"),
        ("/rerank", {"query": "q", "texts": []}, "texts"),
        ("/rerank", {"query": " ", "texts": ["a"]}, "query"),
        ("/v1/rerank", {"query": "", "documents": ["a"]}, "query"),
        ("/rerank", {"query": "q", "texts": ["a", "\u200b"]}, "texts[1]"),
        ("/score", {"pairs": [["q", "a"], ["q", 5]]}, "pairs[1][1]"),
    ]:
        response = httpx.post(url + path, json=body)
        assert response.status_code == 422, (path, body)
        assert response.json()["error"].startswith(field), response.json()


def test_too_many_pairs_is_teis_413_and_tei_client_splits(tiny_model, expected):
    settings = ServerSettings(max_client_batch_size=3)
    with running_server(EngineSettings(model=tiny_model), settings) as (url, _):
        response = httpx.post(f"{url}/rerank", json={"query": QUERY, "texts": DOCS})
        assert response.status_code == 413
        assert response.json()["error"] == "batch size 7 > maximum allowed batch size 3"
        # crossrank's TEI client reads the limit, splits its requests and scores again
        results = Reranker(scorer=f"tei+{url}").rerank(QUERY, DOCS)
        assert_same([(r.index, r.score) for r in results], expected)


def test_body_larger_than_the_limit_is_413(tiny_model):
    settings = ServerSettings(max_request_bytes=1000)
    with running_server(EngineSettings(model=tiny_model), settings) as (url, _):
        big = {"query": "q", "texts": ["x" * 2000]}
        assert httpx.post(f"{url}/rerank", json=big).status_code == 413

        def chunks():  # no Content-Length: refused while reading
            yield b'{"query": "q", "texts": ["'
            for _ in range(50):
                yield b"x" * 100
            yield b'"]}'

        assert httpx.post(f"{url}/rerank", content=chunks()).status_code == 413
        assert httpx.post(f"{url}/rerank", json={"query": "q", "texts": ["x"]}).status_code == 200


class Gatekeeper:
    """A scorer that holds every call until released (for concurrency limits)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, pairs):
        self.entered.set()
        self.release.wait(10)
        return [float(len(text)) for _, text in pairs]


def test_past_max_concurrent_requests_is_429_with_retry_after_and_clients_retry():
    gate = Gatekeeper()
    settings = ServerSettings(max_concurrent_requests=1, retry_after=1)
    with running_server(EngineSettings(scorer=gate), settings) as (url, _):
        gate.release.set()  # the self-check passes
        gate.release.clear()
        first = threading.Thread(
            target=httpx.post, args=(f"{url}/score",), kwargs={"json": {"pairs": [["q", "aa"]]}}
        )
        gate.entered.clear()
        first.start()
        assert gate.entered.wait(5)
        refused = httpx.post(f"{url}/score", json={"pairs": [["q", "b"]]})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error_type"] == "Overloaded"
        # crossrank's client waits as asked and retries; the first call ends meanwhile
        threading.Timer(0.3, gate.release.set).start()
        started = time.monotonic()
        results = Reranker(scorer=f"{url}/score").rerank("q", ["bbb", "b"])
        assert [r.score for r in results] == [3.0, 1.0]
        assert time.monotonic() - started >= 0.9  # it honoured Retry-After: 1
        first.join(5)


def test_api_key_required_everywhere_but_health(tiny_model, monkeypatch, caplog, expected):
    monkeypatch.setenv("MY_SERVER_KEY", "s3cret-key-value")
    settings = ServerSettings(api_key_env="MY_SERVER_KEY")
    caplog.set_level(logging.DEBUG)
    with running_server(EngineSettings(model=tiny_model), settings) as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200
        for method, path in [("GET", "/info"), ("GET", "/metrics"), ("POST", "/score")]:
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
                response = httpx.request(
                    method, url + path, headers=headers, json={"pairs": [["q", "a"]]}
                )
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret-key-value"}
        assert httpx.get(f"{url}/info", headers=good).status_code == 200
        monkeypatch.setenv("CROSSRANK_SCORER_API_KEY", "s3cret-key-value")
        results = Reranker(scorer=f"tei+{url}").rerank(QUERY, DOCS)
        assert_same([(r.index, r.score) for r in results], expected)
        sdk = cohere.ClientV2(api_key="s3cret-key-value", base_url=url)
        assert len(sdk.rerank(model="m", query=QUERY, documents=DOCS).results) == len(DOCS)
        with pytest.raises(cohere.core.ApiError):
            cohere.ClientV2(api_key="wrong", base_url=url).rerank(
                model="m", query=QUERY, documents=DOCS
            )
    assert "s3cret" not in caplog.text
    assert QUERY not in caplog.text and DOCS[0] not in caplog.text


def test_a_missing_key_variable_is_refused_at_build(monkeypatch, tiny_model):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
        build_app(EngineSettings(model=tiny_model), ServerSettings(api_key_env="NO_SUCH_KEY_VAR"))
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        ServerSettings(api_key_env="sk-live-1234 5678")


def test_not_ready_until_loaded(tiny_model):
    app = build_app(EngineSettings(model=tiny_model))  # no lifespan ran: nothing loaded
    transport = httpx.ASGITransport(app=app)

    async def calls():
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/health")
            score = await client.post("/score", json={"pairs": [["q", "a"]]})
            return health, score

    import asyncio

    health, score = asyncio.run(calls())
    assert health.status_code == 503 and health.json() == {"status": "loading"}
    assert score.status_code == 503 and "retry-after" in score.headers


def test_binds_this_machine_only_by_default():
    assert ServerSettings().host == "127.0.0.1"
    assert ServerSettings().max_client_batch_size == 1000
    assert ServerSettings().max_concurrent_requests >= 64


def test_serves_a_stage_config(tiny_model, tmp_path):
    stage = {
        "stage_type": "sort",
        "stage_id": "rerank",
        "parameters": {"inference_name": tiny_model, "top_n": 2, "document_field": "body"},
    }
    served = Reranker.from_stage(stage)
    expected = [(r.index, r.score) for r in Reranker(model=tiny_model).rerank(QUERY, DOCS)]
    with running_server(served) as (url, _):
        # the stage's per-call settings (top_n, document_field) are the caller's, not the server's
        answer = httpx.post(f"{url}/rerank", json={"query": QUERY, "texts": DOCS}).json()
        assert_same([(a["index"], a["score"]) for a in answer], expected)


def test_on_unreadable_other_than_raise_is_refused(tiny_model):
    with pytest.raises(ValueError, match="on_unreadable"):
        build_app(EngineSettings(model=tiny_model, on_unreadable="skip"))
