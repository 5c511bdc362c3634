"""The HTTP scorer against a real local server: faults, retries, batching, no retry storm.

Every test starts its own server on 127.0.0.1 (tests/local_server.py) and checks what the
server saw (request count, sizes, concurrency) as well as what the caller got. Retries use
tiny backoffs so the suite stays fast; only request counts are asserted, except for
`Retry-After`, where the gap between two requests is checked from below.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import time

import psutil
import pytest
from local_server import DripServer, Reply, ScorerServer, free_port, hash_scorer, scripted

from crossrank import (
    HttpScorer,
    Reranker,
    ScorerError,
    ScorerResponseError,
    ScorerUnavailableError,
)

QUERY = "what limits the lift of a wing?"
DOCS = [{"id": f"d{i}", "content": f"document number {i} about wings"} for i in range(10)]
FAST = {"backoff": 0.01, "max_backoff": 0.05}


def run(rr: Reranker, mode: str, documents=DOCS, **kwargs):
    if mode == "sync":
        return rr.rerank(QUERY, documents, **kwargs)
    return asyncio.run(rr.arerank(QUERY, documents, **kwargs))


def expected(documents=DOCS):
    return Reranker(scorer=hash_scorer).rerank(QUERY, documents)


def same(got, want) -> bool:
    return [(r.index, r.score) for r in got] == [(r.index, r.score) for r in want]


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# -- batching ------------------------------------------------------------------------------------


def tei_like(limit: int):
    """Like text-embeddings-inference: more than `limit` texts in one request is refused."""

    def behaviour(request):
        if len(request.pairs) > limit:
            return Reply(413, {"error": f"batch size {len(request.pairs)} > {limit}"})
        return scripted()(request)

    return behaviour


@MODES
def test_pairs_are_sent_in_requests_of_the_configured_size(mode):
    docs = [f"passage {i}" for i in range(100)]
    with ScorerServer(tei_like(32)) as server:
        scorer = HttpScorer(server.url, max_pairs_per_request=32)
        ranked = run(Reranker(scorer=scorer), mode, docs)
    assert same(ranked, expected(docs))
    assert sorted(len(r.pairs) for r in server.requests) == [4, 32, 32, 32]
    sent = [tuple(p) for r in server.requests for p in r.pairs]
    assert sorted(sent) == sorted((QUERY, d) for d in docs)  # each pair sent exactly once


@MODES
def test_smaller_request_size(mode):
    with ScorerServer(tei_like(3)) as server:
        ranked = run(Reranker(scorer=HttpScorer(server.url, max_pairs_per_request=3)), mode)
    assert same(ranked, expected())
    assert sorted(len(r.pairs) for r in server.requests) == [1, 3, 3, 3]


def test_too_large_requests_fail_clearly_without_retry():
    with ScorerServer(tei_like(3)) as server:
        scorer = HttpScorer(server.url, max_pairs_per_request=10, **FAST)
        with pytest.raises(ScorerResponseError, match="HTTP 413"):
            Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert len(server.requests) == 1  # a 4xx is the caller's problem: not retried


def test_endpoint_url_as_scorer_setting():
    with ScorerServer(tei_like(32)) as server:
        ranked = Reranker(scorer=server.url).rerank(QUERY, [f"p{i}" for i in range(40)])
    assert len(ranked) == 40
    assert sorted(len(r.pairs) for r in server.requests) == [8, 32]


# -- retries: bounded in count and time, with backoff ----------------------------------------------


@MODES
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_errors_are_retried_then_succeed(mode, status):
    with ScorerServer(scripted(Reply(status, "busy"), Reply(status, "busy"))) as server:
        ranked = run(Reranker(scorer=HttpScorer(server.url, max_retries=3, **FAST)), mode)
    assert same(ranked, expected())
    assert len(server.requests) == 3


@MODES
@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_retries_are_bounded_in_count(mode, max_retries):
    with ScorerServer(lambda r: Reply(503, "down for maintenance")) as server:
        scorer = HttpScorer(server.url, max_retries=max_retries, **FAST)
        with pytest.raises(ScorerUnavailableError) as info:
            run(Reranker(scorer=scorer), mode)
    assert len(server.requests) == max_retries + 1
    message = str(info.value)
    assert "HTTP 503" in message and f"after {max_retries + 1} attempt(s)" in message
    assert server.url in message and "down for maintenance" in message


def test_retries_are_bounded_in_time():
    """A backoff longer than the time budget: give up now instead of sleeping past it."""
    with ScorerServer(lambda r: Reply(500, "boom")) as server:
        scorer = HttpScorer(server.url, max_retries=10, backoff=30.0, max_retry_time=1.0)
        with pytest.raises(ScorerUnavailableError, match="after 1 attempt"):
            Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(status):
    with (
        ScorerServer(lambda r: Reply(status, {"error": "nope"})) as server,
        pytest.raises(ScorerResponseError, match=f"HTTP {status}"),
    ):
        Reranker(scorer=HttpScorer(server.url, **FAST)).rerank(QUERY, DOCS)
    assert len(server.requests) == 1


@MODES
def test_retry_after_is_honoured(mode):
    """The server asks for 1 s; the configured backoff (10 ms) must not cut that short."""
    first = Reply(429, "slow down", headers={"Retry-After": "1"})
    with ScorerServer(scripted(first)) as server:
        ranked = run(Reranker(scorer=HttpScorer(server.url, **FAST)), mode)
    assert same(ranked, expected())
    assert len(server.requests) == 2
    assert server.requests[1].arrived - server.requests[0].arrived >= 0.9


def test_retry_after_as_http_date():
    when = email.utils.formatdate(time.time() + 1.5, usegmt=True)
    first = Reply(503, "later", headers={"Retry-After": when})
    with ScorerServer(scripted(first)) as server:
        Reranker(scorer=HttpScorer(server.url, **FAST)).rerank(QUERY, DOCS)
    assert len(server.requests) == 2
    assert server.requests[1].arrived - server.requests[0].arrived >= 0.4  # date: 1 s resolution


@MODES
def test_retry_after_beyond_the_budget_fails_at_once(mode):
    """Retrying sooner than asked would hammer the server; waiting an hour would hang the
    caller: stop after one request and say why."""
    reply = Reply(429, "quota exceeded", headers={"Retry-After": "3600"})
    with ScorerServer(lambda r: reply) as server, pytest.raises(ScorerUnavailableError) as info:
        run(Reranker(scorer=HttpScorer(server.url, **FAST)), mode)
    assert len(server.requests) == 1
    assert "retry after 3600 s" in str(info.value)


def test_no_retry_storm_under_async_fan_out():
    """320 pairs in 10 requests against a failing server: few requests at once, and none
    left retrying in the background once the call has failed."""
    docs = [f"passage {i}" for i in range(320)]

    async def main():
        scorer = HttpScorer(
            server.url, max_pairs_per_request=32, max_retries=2, max_concurrent_requests=2, **FAST
        )
        with pytest.raises(ScorerUnavailableError):
            await Reranker(scorer=scorer).arerank(QUERY, docs)
        seen = len(server.requests)
        await asyncio.sleep(0.3)  # anything still running would retry within 0.05 s
        return seen

    with ScorerServer(lambda r: Reply(503, "down", delay=0.05)) as server:
        seen = asyncio.run(main())
        assert len(server.requests) == seen
    assert server.max_in_flight <= 2
    assert len(server.requests) <= 2 * 3  # 2 at a time, 3 attempts each, then stop


@MODES
def test_concurrent_requests_are_limited(mode):
    docs = [f"passage {i}" for i in range(64)]
    with ScorerServer(_slow_scores) as server:
        scorer = HttpScorer(server.url, max_pairs_per_request=4, max_concurrent_requests=3)
        ranked = run(Reranker(scorer=scorer), mode, docs)
    assert same(ranked, expected(docs))
    assert len(server.requests) == 16
    assert server.max_in_flight <= 3


def _slow_scores(request):
    reply = scripted()(request)
    reply.delay = 0.02
    return reply


# -- transport faults --------------------------------------------------------------------------


@MODES
def test_connection_refused(mode):
    url = f"http://127.0.0.1:{free_port()}/rerank"
    scorer = HttpScorer(url, max_retries=2, **FAST)
    with pytest.raises(ScorerUnavailableError) as info:
        run(Reranker(scorer=scorer), mode)
    message = str(info.value)
    assert url in message and "could not be reached after 3 attempt(s)" in message
    assert "ConnectError" in message


@MODES
def test_timeout(mode):
    with ScorerServer(lambda r: Reply(delay=5.0)) as server:
        scorer = HttpScorer(server.url, timeout=0.2, max_retries=1, **FAST)
        with pytest.raises(ScorerUnavailableError) as info:
            run(Reranker(scorer=scorer), mode)
    assert len(server.requests) == 2
    assert "Timeout" in str(info.value) and "after 2 attempt(s)" in str(info.value)


@MODES
def test_slow_server_within_the_timeout(mode):
    def slow(request):
        reply = scripted()(request)
        reply.delay = 0.3
        return reply

    with ScorerServer(slow) as server:
        ranked = run(Reranker(scorer=HttpScorer(server.url, timeout=30.0)), mode)
    assert same(ranked, expected())


# -- malformed answers: a clear error, never a silent reorder ------------------------------------


BAD_BODIES = {
    "not json": (b"<html>oops</html>", ScorerResponseError, "not JSON"),
    "truncated json": (b'{"scores": [0.1, 0.2', ScorerResponseError, "not JSON"),
    "invalid utf-8": (b"\xff\xfe\xfa", ScorerResponseError, "not JSON"),
    "a list": ([0.1] * 10, ScorerResponseError, '"scores"'),
    "no scores key": ({"result": [0.1] * 10}, ScorerResponseError, "result"),
    "too few": ({"scores": [0.1] * 9}, ScorerError, "9 scores for 10 pairs"),
    "too many": ({"scores": [0.1] * 11}, ScorerError, "11 scores for 10 pairs"),
    "a NaN": (b'{"scores": [0.1, NaN, 1, 1, 1, 1, 1, 1, 1, 1]}', ScorerError, "nan"),
    "an infinity": (b'{"scores": [Infinity, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', ScorerError, "inf"),
    "a string": ({"scores": ["0.5"] * 10}, ScorerError, "non-numeric"),
    "a null": ({"scores": [None] * 10}, ScorerError, "non-numeric"),
    "a bool": ({"scores": [True] * 10}, ScorerError, "non-numeric"),
    "scores not a list": ({"scores": "0.1"}, ScorerError, "str"),
    "huge number": (b'{"scores": [1e999, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', ScorerError, "inf"),
}


@MODES
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_answers(mode, case):
    body, error, words = BAD_BODIES[case]
    with (
        ScorerServer(lambda r: Reply(200, body)) as server,
        pytest.raises(error, match=words) as info,
    ):
        run(Reranker(scorer=HttpScorer(server.url, **FAST)), mode)
    assert len(server.requests) == 1  # a wrong answer is not retried into a storm
    assert server.url in str(info.value)  # says which endpoint


def test_error_page_then_good_answer():
    """A proxy's HTML 502 page is a transient fault like any 502."""
    with ScorerServer(scripted(Reply(502, "<html>Bad Gateway</html>"))) as server:
        ranked = Reranker(scorer=HttpScorer(server.url, **FAST)).rerank(QUERY, DOCS)
    assert same(ranked, expected())


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="max_pairs_per_request"):
        HttpScorer("http://127.0.0.1:1/", max_pairs_per_request=0)
    with pytest.raises(ValueError, match="max_retries"):
        HttpScorer("http://127.0.0.1:1/", max_retries=-1)
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        HttpScorer("http://127.0.0.1:1/", max_concurrent_requests=0)


# -- deadlines: a server's pace is untrusted too -------------------------------------------------


@MODES
@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_dripping_server_cannot_hold_a_call(mode, phase):
    """One byte every 0.1 s never trips a per-read timeout of 0.5 s; the request deadline
    (timeout) and the call deadline (max_retry_time) end the call anyway. The server would
    drip for 20 s; the bound below is far from both the deadline and the drip."""
    with DripServer(phase=phase, every=0.1, for_at_most=20.0) as server:
        scorer = HttpScorer(server.url, timeout=0.5, max_retries=1, max_retry_time=1.0, **FAST)
        started = time.monotonic()
        with pytest.raises(ScorerUnavailableError, match="TimeoutError") as info:
            run(Reranker(scorer=scorer), mode)
        took = time.monotonic() - started
    assert took < 10.0
    assert server.connections == 2  # the first attempt, and one retry
    assert "after 2 attempt(s)" in str(info.value)
    assert "deadline" in str(info.value)


@MODES
def test_the_call_deadline_covers_every_request_of_a_call(mode):
    """Each answer comes within `timeout`, but twenty of them do not fit the call's budget:
    the call ends at its deadline instead of taking twenty times as long."""
    docs = [f"passage {i}" for i in range(20)]
    with ScorerServer(_slow(0.4)) as server:
        scorer = HttpScorer(
            server.url,
            max_pairs_per_request=1,
            max_concurrent_requests=1,
            timeout=5.0,
            max_retry_time=1.0,
            **FAST,
        )
        with pytest.raises(ScorerUnavailableError, match="max_retry_time=1 s"):
            run(Reranker(scorer=scorer), mode, docs)
    assert len(server.requests) < 10


def _slow(seconds: float):
    def behaviour(request):
        reply = scripted()(request)
        reply.delay = seconds
        return reply

    return behaviour


# -- clients and sockets: nothing leaks per event loop or per scorer -----------------------------


def open_fds() -> int:
    return psutil.Process().num_fds()


def test_one_event_loop_per_call_leaks_no_client_or_socket():
    """100 x asyncio.run(arerank) on one Reranker: the open files stay flat (once 100
    sockets and 101 clients were left behind, and the process died at its fd limit)."""
    with ScorerServer() as server:
        rr = Reranker(scorer=server.url)
        asyncio.run(rr.arerank(QUERY, DOCS))  # warm: the shared loop and one connection
        gc.collect()
        before = open_fds()
        for _ in range(100):
            asyncio.run(rr.arerank(QUERY, DOCS))
        gc.collect()
        after = open_fds()
        rr.scorer.close()
    assert after - before <= 2
    assert len(server.requests) == 101


def test_dropped_scorers_close_their_clients():
    with ScorerServer() as server:
        Reranker(scorer=server.url).rerank(QUERY, DOCS)  # warm the shared loop
        gc.collect()
        before = open_fds()
        for _ in range(30):
            rr = Reranker(scorer=server.url)
            rr.rerank(QUERY, DOCS)
            asyncio.run(rr.arerank(QUERY, DOCS))
            del rr
        gc.collect()
        for _ in range(100):  # closing runs on the shared loop: give it a moment, bounded
            if open_fds() - before <= 2:
                break
            time.sleep(0.05)
        assert open_fds() - before <= 2
