"""Many callers at once get exactly what serial calls get, and one model is loaded once.

8 threads and 100 coroutines rerank different queries against one shared model; each model
folder here is a fresh copy, so its loads can be counted (`loading.load_count`).
"""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest
from local_server import ScorerServer, hash_scorer

from crossrank import HttpScorer, Reranker
from crossrank.models import loading

DOCS = [
    {"id": f"d{i}", "content": text}
    for i, text in enumerate(
        [
            "the lift of a wing depends on its angle of attack",
            "boundary layer separation near the trailing edge",
            "supersonic flow over a cone",
            "heat transfer in laminar flow",
            "flutter of a cantilevered plate",
            "the drag of a sphere at low reynolds number",
            "shock waves ahead of a blunt body",
            "wing tip vortices and induced drag",
        ]
    )
]
QUERIES = [f"question {i}: what limits the lift of a wing?" for i in range(100)]


@pytest.fixture
def fresh_model(tiny_model, tmp_path):
    """A copy of the tiny model under a new path: a model key nothing has loaded yet."""
    return str(shutil.copytree(tiny_model, tmp_path / "model"))


def outcome(ranked):
    return [(r.document_id, r.score, r.rerank_position) for r in ranked]


def run_threads(n: int, work) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def target(i: int) -> None:
        try:
            barrier.wait()  # all threads start together, before the model is loaded
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


@pytest.mark.parametrize("shared", [True, False], ids=["one-reranker", "reranker-per-thread"])
def test_threads_share_one_model_and_match_serial(fresh_model, shared):
    before = loading.load_count
    common = Reranker(model=fresh_model, batch_size=4)

    def work(i: int):
        rr = common if shared else Reranker(model=fresh_model, batch_size=4)
        return [outcome(rr.rerank(q, DOCS, top_k=5)) for q in QUERIES[i * 3 : i * 3 + 3]]

    concurrent = run_threads(8, work)
    assert loading.load_count == before + 1  # loaded once, by one of the 8 threads
    serial = [
        [outcome(common.rerank(q, DOCS, top_k=5)) for q in QUERIES[i * 3 : i * 3 + 3]]
        for i in range(8)
    ]
    assert concurrent == serial
    assert loading.load_count == before + 1


def test_coroutines_share_one_model_and_match_serial(fresh_model):
    before = loading.load_count
    rr = Reranker(model=fresh_model, batch_size=8)  # one forward pass per query

    async def main():
        return await asyncio.gather(*(rr.arerank(q, DOCS) for q in QUERIES))

    concurrent = [outcome(r) for r in asyncio.run(main())]
    assert loading.load_count == before + 1
    assert concurrent == [outcome(rr.rerank(q, DOCS)) for q in QUERIES]
    assert loading.load_count == before + 1


def test_threads_and_coroutines_at_once(fresh_model):
    before = loading.load_count
    rr = Reranker(model=fresh_model)

    def work(i: int):
        if i == 0:  # one thread runs 50 coroutines while the others call rerank

            async def many():
                return await asyncio.gather(*(rr.arerank(q, DOCS) for q in QUERIES[:50]))

            return [outcome(r) for r in asyncio.run(many())]
        return [outcome(rr.rerank(q, DOCS)) for q in QUERIES[50 + i * 5 : 55 + i * 5]]

    concurrent = run_threads(4, work)
    assert loading.load_count == before + 1
    assert concurrent[0] == [outcome(rr.rerank(q, DOCS)) for q in QUERIES[:50]]
    for i in range(1, 4):
        assert concurrent[i] == [
            outcome(rr.rerank(q, DOCS)) for q in QUERIES[50 + i * 5 : 55 + i * 5]
        ]


def test_http_scorer_under_threads_and_coroutines():
    expected = {q: outcome(Reranker(scorer=hash_scorer).rerank(q, DOCS)) for q in QUERIES}
    with ScorerServer() as server:
        rr = Reranker(scorer=HttpScorer(server.url, max_pairs_per_request=3))

        async def main():
            return await asyncio.gather(*(rr.arerank(q, DOCS) for q in QUERIES))

        assert [outcome(r) for r in asyncio.run(main())] == [expected[q] for q in QUERIES]
        threaded = run_threads(8, lambda i: [outcome(rr.rerank(q, DOCS)) for q in QUERIES[i:40:8]])
        assert threaded == [[expected[q] for q in QUERIES[i:40:8]] for i in range(8)]


def test_callable_scorer_under_threads():
    rr = Reranker(scorer=hash_scorer, top_k=3)
    threaded = run_threads(8, lambda i: [outcome(rr.rerank(q, DOCS)) for q in QUERIES[i::8]])
    assert threaded == [[outcome(rr.rerank(q, DOCS)) for q in QUERIES[i::8]] for i in range(8)]
