"""`crossrank demo`: rerank BM25 candidates for a few Cranfield queries and show what changed.

The data ships with the package (data/cranfield_sample.json, written by
scripts/make_demo_sample.py): for each query, BM25's top 10 with their BM25 scores and the
collection's relevance judgements (code 1 = complete answer .. 4 = minimum interest; -1 = the
document the query was written from; none = not judged).
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from typing import Any

from crossrank.cli.exit_codes import EXIT_MODEL
from crossrank.errors import ModelLoadError
from crossrank.long_documents import DropTruncationWarnings, logger
from crossrank.reranker import Reranker

MODEL_ENV = "CROSSRANK_MODEL"


def load_sample() -> list[dict[str, Any]]:
    text = resources.files("crossrank").joinpath("data/cranfield_sample.json").read_text("utf-8")
    return json.loads(text)


def _judged(code: int | None) -> str:
    return "-" if code is None else ("src" if code == -1 else str(code))


def _relevant_in_top(candidates: list[dict[str, Any]], k: int) -> int:
    return sum(1 for c in candidates[:k] if c["relevance_code"] in (1, 2, 3, 4))


def run_demo(model: str, out: Any = None, long_documents: str = "truncate") -> int:
    out = out or sys.stdout
    # Truncation is counted and reported once at the end, in the demo's own words: one
    # warning per query would repeat itself five times.
    quiet = DropTruncationWarnings()
    logger.addFilter(quiet)
    try:
        return _run(model, out, long_documents)
    finally:
        logger.removeFilter(quiet)


def _run(model: str, out: Any, long_documents: str) -> int:
    sample = load_sample()
    reranker = Reranker(model=model, long_documents=long_documents)
    print(f"crossrank demo: reranking BM25 top-10 for {len(sample)} Cranfield queries", file=out)
    print(f"model: {model}", file=out)
    try:
        reranker.rerank("warm-up", ["load the model once before timing"])
    except ModelLoadError as exc:
        print(
            f"\ncrossrank demo: the model {model!r} could not be loaded, so nothing was "
            f"reranked.\n{exc}\nSet {MODEL_ENV} to a local cross-encoder folder and run again, "
            f"e.g. {MODEL_ENV}=/path/to/reranker make demo",
            file=sys.stderr,
        )
        return EXIT_MODEL
    before_total = after_total = truncated = candidates = 0
    for item in sample:
        started = time.perf_counter()
        ranked = reranker.rerank(item["query"], item["candidates"])
        elapsed = time.perf_counter() - started
        print(f"\nquery {item['query_id']}: {item['query']}", file=out)
        print(
            f"  {'new':>3} {'bm25':>4} {'bm25 score':>10} {'rerank score':>12} judged  text",
            file=out,
        )
        for r in ranked:
            c = r.document
            print(
                f"  {r.rerank_position:>3} {c['bm25_rank']:>4} {r.original_score:>10.3f} "
                f"{r.score:>12.4f} {_judged(c['relevance_code']):>6}  {c['content'][:60]}...",
                file=out,
            )
        truncated += sum(1 for r in ranked if r.truncated)
        candidates += len(ranked)
        before = _relevant_in_top(item["candidates"], 3)
        after = _relevant_in_top([r.document for r in ranked], 3)
        before_total, after_total = before_total + before, after_total + after
        print(
            f"  judged relevant in top 3: BM25 {before}, reranked {after} "
            f"({len(ranked)} candidates in {elapsed * 1000:.0f} ms)",
            file=out,
        )
    print(
        f"\nall queries: judged relevant in top 3: BM25 {before_total}, reranked {after_total}. "
        "(positions are 0-based; 'src' marks the document the query was written from)",
        file=out,
    )
    if truncated:
        limit = getattr(reranker.scorer, "max_length", None)
        what = f"{limit}-token limit" if limit else "token limit"
        advice = (
            "past their last window was not scored"
            if long_documents == "chunk"
            else "past it was not scored; `crossrank demo --long-documents chunk` scores all of it"
        )
        print(
            f"{truncated} of {candidates} candidates were longer than the model's {what} "
            f"(with the query): their text {advice}.",
            file=out,
        )
    return 0
