"""The server's one engine: a `Reranker` on the served settings, called from a thread pool.

The server adds no scoring of its own: every endpoint ends in `Reranker.rerank(query, texts)`,
so scores, truncation, long-document windows and ties are exactly the in-process ones. Calls
run in a pool of `max_concurrent_requests` threads, so concurrent requests reach the model at
the same time and its micro-batcher (`models/microbatch.py`, on by default here) merges them
into shared forward passes bounded by the engine's `token_budget`.

A request's bad input (an empty query, a document with no readable text) comes back as a
`BadRequest` naming the field and the item in the request's own terms (`texts[3]`,
`pairs[7]`), never as a 500.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from crossrank import __version__
from crossrank.config import EngineSettings, RerankConfig
from crossrank.errors import ConfigError, DocumentError, QueryError, ScorerError
from crossrank.models import ModelScorer
from crossrank.reranker import Reranker
from crossrank.scorers.engine import group_by_query
from crossrank.server.protocols import BadRequest

logger = logging.getLogger("crossrank.server")

SELF_CHECK = ("what does the server check at start?", ["it scores one pair end to end"])


def engine_config(settings: EngineSettings | RerankConfig | Reranker) -> RerankConfig:
    """The served `RerankConfig`: the engine settings, none of a stage's per-call ones
    (a request brings its own query and documents and gets every score), micro-batching on
    unless it was set."""
    if isinstance(settings, Reranker):
        settings = settings.config
    values = {name: getattr(settings, name) for name in EngineSettings.model_fields}
    if "microbatch" not in settings.model_fields_set:
        values["microbatch"] = True  # concurrent requests share forward passes
    if values["on_unreadable"] != "raise":
        raise ConfigError(
            "the server answers a document with no readable text with HTTP 422 naming it; "
            f"on_unreadable={values['on_unreadable']!r} does not apply to serving, leave it "
            "at 'raise'"
        )
    return RerankConfig(**values)


class Engine:
    """One served model (or scorer) and the pool its calls run in."""

    def __init__(self, settings: EngineSettings | RerankConfig | Reranker, threads: int) -> None:
        self.config = engine_config(settings)
        self.reranker = Reranker(self.config)
        self._raw: Reranker | None = None  # activation "none", for TEI's raw_scores
        self._raw_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crossrank-serve")

    # -- start and info --------------------------------------------------------------------------

    def self_check(self) -> None:
        """Load the model and score one pair end to end (the runtime's own self-check runs
        when it loads); raises when the engine cannot serve."""
        query, texts = SELF_CHECK
        self.reranker.rerank(query, texts)

    def info(self) -> dict[str, Any]:
        config = self.config
        scorer = self.reranker.scorer
        info: dict[str, Any] = {
            "version": __version__,
            "model": config.model if config.scorer is None else None,
            "scorer": None if config.scorer is None else type(scorer).__name__,
        }
        if isinstance(scorer, ModelScorer):
            runner = scorer.runner
            info.update(
                family=scorer.family.name,
                runtime=type(runner).__module__.rsplit(".", 1)[-1],
                dtype=scorer.compute_dtype,
                device=scorer.key.device,
                max_length=scorer.max_length,
                token_budget=scorer.token_budget,
                batch_size=scorer.batch_size,
                microbatch=scorer.microbatch,
                quantize=config.quantize,
            )
        info["long_documents"] = config.long_documents
        return info

    # -- calls -----------------------------------------------------------------------------------

    def _raw_reranker(self) -> Reranker:
        if self.config.scorer is not None:
            raise BadRequest(
                422,
                "raw_scores: this server scores through a custom scorer, which returns final "
                "scores only; send raw_scores false",
            )
        with self._raw_lock:
            if self._raw is None:  # the same loaded model (process-wide cache), no activation
                self._raw = Reranker(self.config.model_copy(update={"activation": "none"}))
        return self._raw

    def rank(
        self, query: str, texts: list[str], field: str, raw: bool = False
    ) -> list[tuple[int, float]]:
        """`(index, score)` best first (ties in input order): `Reranker.rerank`'s order."""
        reranker = self._raw_reranker() if raw else self.reranker
        try:
            results = reranker.rerank(query, texts, top_k=None)
        except QueryError as exc:
            raise BadRequest(422, _query_reason(exc)) from None
        except DocumentError as exc:
            raise BadRequest(422, f"{field}[{exc.index}]: {_reason(exc)}") from None
        return [(r.index, r.score) for r in results]

    def score(self, pairs: list[list[str]]) -> list[float]:
        """One score per pair, in input order. Pairs are grouped by query, one `rerank` per
        query; several queries are scored together (`arerank`), so their pairs share the
        micro-batcher's rounds instead of one round after another."""
        groups = group_by_query([(q, d) for q, d in pairs])
        if len(groups) == 1:
            query, indices = groups[0]
            outcomes: list[Any] = [self._rerank_group(query, [pairs[i][1] for i in indices])]
        else:
            outcomes = asyncio.run(self._rerank_groups(pairs, groups))
        scores = [0.0] * len(pairs)
        for (_, indices), outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, QueryError):
                raise BadRequest(422, f"pairs[{indices[0]}][0] (the query): {outcome}") from None
            if isinstance(outcome, DocumentError):
                where = indices[outcome.index] if outcome.index is not None else indices[0]
                raise BadRequest(422, f"pairs[{where}][1]: {_reason(outcome)}") from None
            if isinstance(outcome, BaseException):
                raise outcome
            for r in outcome:
                scores[indices[r.index]] = r.score
        return scores

    def _rerank_group(self, query: str, texts: list[str]) -> Any:
        try:
            return self.reranker.rerank(query, texts, top_k=None)
        except (QueryError, DocumentError) as exc:
            return exc

    async def _rerank_groups(
        self, pairs: list[list[str]], groups: list[tuple[str, list[int]]]
    ) -> list[Any]:
        calls = [
            self.reranker.arerank(query, [pairs[i][1] for i in indices], top_k=None)
            for query, indices in groups
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _query_reason(exc: QueryError) -> str:
    text = str(exc)  # "query is empty ...": it names the field already
    return text if text.startswith("query") else f"query: {text}"


def _reason(exc: DocumentError) -> str:
    """The document error without its own 'document N (id N)' prefix: the caller's field
    name replaces it."""
    text = str(exc)
    _, sep, rest = text.partition(": ")
    reason = rest if sep and text.startswith("document") else text
    if exc.field:  # a plain string document has no field: the text itself is meant
        reason = reason.replace(f"field {exc.field!r} ", "the text ", 1)
    return reason.split("; or set on_unreadable", 1)[0]


def describe_failure(exc: BaseException) -> tuple[int, str, str]:
    """(status, message, TEI error_type) for an engine failure that is not the request's fault."""
    if isinstance(exc, ScorerError):
        return 502, "the scorer behind this server failed", "Backend"
    return 500, "internal error while scoring", "Backend"
