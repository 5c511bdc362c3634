"""acompress_documents: same results as the sync path, off the event loop, safe concurrently."""

from __future__ import annotations

import asyncio
import copy
import threading

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankReranker

from crossrank import DocumentError


def _view(docs):
    return [(d.id, d.page_content, d.metadata) for d in docs]


async def test_sync_and_async_agree_on_a_real_model(documents, tiny_model):
    reranker = CrossRankReranker(model=tiny_model, original_score_key="score", top_k=3)
    sync = reranker.compress_documents(documents, "what is a cross-encoder?")
    async_ = await reranker.acompress_documents(documents, "what is a cross-encoder?")
    assert _view(async_) == _view(sync)
    assert len(sync) == 3


async def test_fifty_concurrent_calls_all_get_their_own_correct_result(documents, tiny_model):
    reranker = CrossRankReranker(model=tiny_model, original_score_key="score")
    queries = [f"query number {i} about cross-encoders" for i in range(50)]
    # Each call gets its own documents (a different subset), so mixed-up results would show.
    inputs = [documents[i % 4 :] + documents[: i % 4] for i in range(50)]
    expected = [
        reranker.compress_documents(docs, q) for q, docs in zip(queries, inputs, strict=True)
    ]
    snapshot = copy.deepcopy(inputs)
    results = await asyncio.gather(
        *(reranker.acompress_documents(docs, q) for q, docs in zip(queries, inputs, strict=True))
    )
    assert [_view(r) for r in results] == [_view(e) for e in expected]
    assert inputs == snapshot


async def test_model_scoring_runs_off_the_event_loop(documents):
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def scorer(pairs):
        seen.append(threading.get_ident())
        return [float(len(t)) for _, t in pairs]

    await CrossRankReranker(scorer=scorer).acompress_documents(documents, "query")
    assert seen and loop_thread not in seen


async def test_async_scorer_is_awaited_on_the_loop_and_calls_overlap(documents):
    """An async scorer runs on the caller's loop, and 50 calls are in flight at once."""
    loop = asyncio.get_running_loop()
    arrived = 0
    all_arrived = asyncio.Event()

    async def scorer(pairs):
        nonlocal arrived
        if asyncio.get_running_loop() is not loop:
            raise AssertionError("the async scorer was not awaited on the caller's event loop")
        arrived += 1
        if arrived == 50:
            all_arrived.set()
        # Each call waits until all 50 have reached the scorer; the bound only turns a
        # serialised implementation into a failure instead of a hang.
        await asyncio.wait_for(all_arrived.wait(), timeout=60)
        return [float(len(t)) for _, t in pairs]

    reranker = CrossRankReranker(scorer=scorer)
    results = await asyncio.gather(
        *(reranker.acompress_documents(documents, "q") for _ in range(50))
    )
    assert arrived == 50
    assert all(_view(r) == _view(results[0]) for r in results)


async def test_async_errors_name_the_document(keyword_scorer):
    docs = [Document(page_content="fine", id="ok"), Document(page_content="", id="empty")]
    with pytest.raises(DocumentError, match=r"document 1 \(id 'empty'\)"):
        await CrossRankReranker(scorer=keyword_scorer).acompress_documents(docs, "q")


async def test_async_empty_input(keyword_scorer):
    assert await CrossRankReranker(scorer=keyword_scorer).acompress_documents([], "q") == []
