"""The three scorer kinds: the cross-encoder model, a plain callable, an HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from crossrank import CrossEncoderScorer, HttpScorer, Reranker, ScorerError
from crossrank.errors import ScorerResponseError, ScorerUnavailableError
from crossrank.models import loading

PASSAGES = [
    "a cross-encoder reads the query and the passage together",
    "bi-encoders embed them separately",
    "short",
    "the aerodynamic heating of a hypersonic wing leading edge was measured in a shock tunnel "
    "over a range of mach numbers and reynolds numbers " * 3,
    "vitamin d and calcium supplementation in older adults",
    "x",
    "a medium length passage about rerankers and retrieval augmented generation pipelines",
]


def predict_reference(model_path: str, query: str, texts: list[str], **kwargs) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(model_path, **kwargs).predict([(query, t) for t in texts])


# -- the model scorer ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 3, 32])
def test_model_scores_equal_cross_encoder_predict_whatever_the_batching(tiny_model, batch_size):
    query = "what is a cross-encoder?"
    expected = predict_reference(tiny_model, query, PASSAGES)
    ranked = Reranker(model=tiny_model, batch_size=batch_size).rerank(query, PASSAGES)
    got = {r.index: r.score for r in ranked}
    assert [got[i] for i in range(len(PASSAGES))] == pytest.approx(expected.tolist(), abs=1e-5)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)


def test_model_scorer_returns_scores_in_input_order_despite_length_sorting(tiny_model):
    scorer = CrossEncoderScorer(tiny_model, batch_size=2)
    pairs = [("q", t) for t in PASSAGES]
    forward = scorer.score(pairs)
    backward = scorer.score(pairs[::-1])
    assert forward == pytest.approx(backward[::-1], abs=1e-6)


def test_activation_none_gives_raw_logits_and_sigmoid_maps_them(tiny_model):
    import torch

    query = "q"
    logits = predict_reference(tiny_model, query, PASSAGES, activation_fn=torch.nn.Identity())
    raw = Reranker(model=tiny_model, activation="none").rerank(query, PASSAGES)
    assert sorted(r.score for r in raw) == pytest.approx(sorted(logits.tolist()), abs=1e-5)
    squashed = Reranker(model=tiny_model, activation="sigmoid").rerank(query, PASSAGES)
    assert sorted(r.score for r in squashed) == pytest.approx(
        sorted((1 / (1 + np.exp(-logits))).tolist()), abs=1e-5
    )
    assert any(r.score < 0 or r.score > 1 for r in raw)  # the tiny model's logits spread out


def test_max_length_truncates_like_cross_encoder(tiny_model):
    expected = predict_reference(tiny_model, "query", PASSAGES, max_length=16)
    ranked = Reranker(model=tiny_model, max_length=16).rerank("query", PASSAGES)
    got = {r.index: r.score for r in ranked}
    assert [got[i] for i in range(len(PASSAGES))] == pytest.approx(expected.tolist(), abs=1e-5)


def test_the_trained_model_ranks_the_relevant_passage_first(trained_model):
    query = "Vitamin D supplementation reduces the risk of fractures in elderly people."
    docs = [
        "The aerodynamic heating of a hypersonic wing leading edge was measured in a shock tunnel.",
        "Vitamin D and calcium supplementation to prevent fractures in older adults: a randomized "
        "controlled trial showed a reduction in hip fractures among elderly women receiving "
        "vitamin D.",
        "Deep learning models for image classification achieve high accuracy on ImageNet.",
    ]
    expected = predict_reference(trained_model, query, docs)
    ranked = Reranker(model=trained_model, batch_size=2).rerank(query, docs)
    assert ranked[0].index == 1
    assert ranked[0].score == pytest.approx(0.886, abs=0.01)  # the fixture README's figure
    got = {r.index: r.score for r in ranked}
    assert [got[i] for i in range(3)] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_model_loads_once_and_is_shared_by_rerankers_and_threads(tmp_path):
    from crossrank.testing import build_tiny_cross_encoder

    path = str(build_tiny_cross_encoder(tmp_path / "shared-model", seed=3))
    before = loading.load_count
    rerankers = [Reranker(model=path) for _ in range(4)]
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        results[i] = [r.score for r in rerankers[i % 4].rerank(f"query {i % 2}", PASSAGES)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loading.load_count - before == 1
    assert results[0] == results[2] == results[4] == results[6]
    assert results[1] == results[3] == results[5] == results[7]


def test_model_scorer_runs_in_a_worker_thread_on_the_async_path(tiny_model):
    async def main():
        rr = Reranker(model=tiny_model)
        return await rr.arerank("q", PASSAGES), rr.rerank("q", PASSAGES)

    async_result, sync_result = asyncio.run(main())
    assert [(r.index, r.score) for r in async_result] == [(r.index, r.score) for r in sync_result]


# -- callables -------------------------------------------------------------------------------


def test_a_scorer_object_with_a_score_method_is_used_as_is():
    class LengthScorer:
        def score(self, pairs):
            return [float(len(text)) for _, text in pairs]

    ranked = Reranker(scorer=LengthScorer()).rerank("q", ["aa", "a", "aaa"])
    assert [r.document for r in ranked] == ["aaa", "aa", "a"]


def test_an_async_callable_works_on_both_paths():
    async def scorer(pairs):
        await asyncio.sleep(0)
        return [float(len(text)) for _, text in pairs]

    rr = Reranker(scorer=scorer)
    assert [r.document for r in rr.rerank("q", ["a", "aaa", "aa"])] == ["aaa", "aa", "a"]
    ranked = asyncio.run(rr.arerank("q", ["a", "aaa", "aa"]))
    assert [r.document for r in ranked] == ["aaa", "aa", "a"]


async def test_arerank_does_not_block_the_event_loop():
    def slow_scorer(pairs):
        time.sleep(0.3)  # a blocking model call
        return [1.0] * len(pairs)

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await Reranker(scorer=slow_scorer).arerank("q", ["a", "b"])
    task.cancel()
    assert ticks >= 5  # the loop kept running while the scorer blocked its thread


async def test_concurrent_arerank_calls_all_get_their_own_results():
    def scorer(pairs):
        time.sleep(0.001)
        return [float(len(q) * 10 + len(t)) for q, t in pairs]

    rr = Reranker(scorer=scorer)
    queries = ["q" * (i + 1) for i in range(50)]
    results = await asyncio.gather(*(rr.arerank(q, ["a", "bbb", "cc"]) for q in queries))
    for q, ranked in zip(queries, results, strict=True):
        assert [r.score for r in ranked] == [len(q) * 10 + 3, len(q) * 10 + 2, len(q) * 10 + 1]


# -- the HTTP endpoint -------------------------------------------------------------------------


@contextmanager
def serve(handler_fn) -> Iterator[tuple[str, list]]:
    """A real HTTP server on 127.0.0.1 that answers with handler_fn(body) -> (status, body)."""
    requests: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length))
            requests.append({"body": body, "headers": dict(self.headers)})
            status, payload = handler_fn(body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score", requests
    finally:
        server.shutdown()
        server.server_close()


def length_scores(body):
    return 200, {"scores": [float(len(doc)) for _, doc in body["pairs"]]}


def test_http_scorer_speaks_the_pairs_contract():
    with serve(length_scores) as (url, requests):
        ranked = Reranker(scorer=url).rerank("the query", ["bb", "a", "ccc"])
    assert [r.document for r in ranked] == ["ccc", "bb", "a"]
    assert requests[0]["body"] == {
        "pairs": [["the query", "bb"], ["the query", "a"], ["the query", "ccc"]]
    }


async def test_http_scorer_async_path_and_request_splitting():
    docs = [f"doc {'x' * i}" for i in range(10)]
    with serve(length_scores) as (url, requests):
        rr = Reranker(scorer=HttpScorer(url, max_pairs_per_request=3))
        async_ranked = await rr.arerank("q", docs)
        sync_ranked = rr.rerank("q", docs)
    sizes = [len(r["body"]["pairs"]) for r in requests]
    # ascore sends its chunks concurrently, so they may reach the server in any order.
    assert sorted(sizes[:4]) == [1, 3, 3, 3]
    assert sizes[4:] == [3, 3, 3, 1]
    assert [r.index for r in async_ranked] == list(range(9, -1, -1))
    assert [r.score for r in async_ranked] == [r.score for r in sync_ranked]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ((200, {"scores": [1.0]}), ScorerError, "returned 1 scores for 2 pairs"),
        ((200, {"scores": [1.0, "high"]}), ScorerError, "non-numeric score for pair 1"),
        ((200, {"scores": [1.0, None]}), ScorerError, "non-numeric"),
        ((200, {"result": [1.0, 2.0]}), ScorerResponseError, 'without a "scores" list'),
        ((200, b"not json"), ScorerResponseError, "not JSON"),
        ((400, {"error": "bad pairs"}), ScorerResponseError, "HTTP 400"),
        ((503, {"error": "busy"}), ScorerUnavailableError, "HTTP 503 after 2 attempt"),
    ],
)
def test_http_scorer_bad_answers_are_clear_errors(answer, error, message):
    with serve(lambda body: answer) as (url, _):
        scorer = HttpScorer(url, max_retries=1, backoff=0.01)
        with pytest.raises(error, match=message):
            Reranker(scorer=scorer).rerank("q", ["a", "b"])


def test_http_scorer_timeout_is_a_clear_error():
    def slow(body):
        time.sleep(1.0)
        return length_scores(body)

    with serve(slow) as (url, _):
        scorer = HttpScorer(url, timeout=0.2, max_retries=0)
        with pytest.raises(ScorerUnavailableError, match="could not be reached after 1 attempt"):
            Reranker(scorer=scorer).rerank("q", ["a"])


def test_http_scorer_sends_the_api_key_from_the_environment_and_never_shows_it(monkeypatch):
    monkeypatch.setenv("CROSSRANK_SCORER_API_KEY", "sekrit-token")
    with serve(lambda body: (500, {"error": "boom"})) as (url, requests):
        scorer = HttpScorer(url, max_retries=0)
        with pytest.raises(ScorerUnavailableError) as info:
            Reranker(scorer=scorer).rerank("q", ["a"])
    assert requests[0]["headers"]["Authorization"] == "Bearer sekrit-token"
    assert "sekrit" not in str(info.value)
    assert "sekrit" not in repr(scorer)
