"""10,000 candidates in one call work, with a warning, and memory is bounded by the batch.

"Bounded by the batch": the model never sees more than `batch_size` pairs of at most
`max_length` tokens in one forward pass (its input tensor is what activation memory scales
with), and the HTTP scorer never sends more than `max_pairs_per_request` pairs in one request
nor keeps more than `max_concurrent_requests` in flight, however many candidates there are.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest
from local_server import ScorerServer, hash_score, hash_scorer

from crossrank import HttpScorer, Reranker
from crossrank.reranker import PRACTICAL_MAX_CANDIDATES

N = 10_000
QUERY = "what limits the lift of a wing?"
DOCS = [{"id": i, "content": f"passage {i} on wing lift and drag"} for i in range(N)]


def practical_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "practical range" in r.getMessage()]


def best(k: int) -> list[int]:
    scores = [hash_score(d["content"]) for d in DOCS]
    return sorted(range(N), key=lambda i: -scores[i])[:k]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_ten_thousand_candidates_with_a_warning(mode, caplog):
    caplog.set_level(logging.WARNING, logger="crossrank")
    before = copy.deepcopy(DOCS)
    rr = Reranker(scorer=hash_scorer, top_k=10)
    ranked = rr.rerank(QUERY, DOCS) if mode == "sync" else asyncio.run(rr.arerank(QUERY, DOCS))
    assert [r.index for r in ranked] == best(10)
    assert before == DOCS
    (warning,) = practical_warnings(caplog)
    assert "10000 candidates" in warning


def test_all_ten_thousand_come_back_once():
    ranked = Reranker(scorer=hash_scorer).rerank(QUERY, DOCS)
    assert sorted(r.index for r in ranked) == list(range(N))
    assert [r.rerank_position for r in ranked] == list(range(N))


@pytest.mark.parametrize(
    "n, warned", [(PRACTICAL_MAX_CANDIDATES, False), (PRACTICAL_MAX_CANDIDATES + 1, True)]
)
def test_warning_only_past_the_practical_range(n, warned, caplog):
    caplog.set_level(logging.WARNING, logger="crossrank")
    Reranker(scorer=hash_scorer).rerank(QUERY, DOCS[:n])
    assert bool(practical_warnings(caplog)) is warned


def test_model_forward_passes_are_bounded_by_the_batch(tiny_model, caplog):
    """Every pair is scored exactly once, in forward passes of at most batch_size pairs and
    max_length tokens: the same bound for 2,000 candidates as for 100. (2,000, not 10,000,
    to keep the suite fast on a small machine; 10,000 go through the other scorers above.)"""
    n = 2_000
    caplog.set_level(logging.WARNING, logger="crossrank")
    # the hook below sits on torch's embeddings: this stage runs torch, not OpenVINO
    rr = Reranker(model=tiny_model, backend="torch", batch_size=32, max_length=48, top_k=5)
    shapes: list[tuple[int, int]] = []
    embeddings = rr.scorer.model.hf_model.get_input_embeddings()
    hook = embeddings.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    try:
        small = rr.rerank(QUERY, DOCS[:100])
        small_shapes, shapes[:] = list(shapes), []
        ranked = rr.rerank(QUERY, DOCS[:n])
    finally:
        hook.remove()
    assert len(ranked) == 5 and len(small) == 5
    assert sum(rows for rows, _ in shapes) == n  # every pair once
    assert max(rows for rows, _ in shapes) <= 32
    assert max(tokens for _, tokens in shapes) <= 48
    largest = max(rows * tokens for rows, tokens in shapes)
    assert largest <= max(rows * tokens for rows, tokens in small_shapes) * 1.5
    assert len(practical_warnings(caplog)) == 1


def test_http_scorer_requests_are_bounded_by_the_batch():
    with ScorerServer() as server:
        scorer = HttpScorer(server.url, max_pairs_per_request=32, max_concurrent_requests=4)
        ranked = asyncio.run(Reranker(scorer=scorer, top_k=10).arerank(QUERY, DOCS))
    assert [r.index for r in ranked] == best(10)
    assert max(len(r.pairs) for r in server.requests) == 32
    assert sum(len(r.pairs) for r in server.requests) == N
    assert server.max_in_flight <= 4
