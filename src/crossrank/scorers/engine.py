"""The shared base of serving engines' rerank APIs: one query and many texts per request.

text-embeddings-inference (`scorers/tei.py`) and the Cohere-compatible servers
(`scorers/cohere.py`: infinity, vLLM, Jina) take a single query with a list of texts and answer
with `(index, score)` items, not the `{"pairs"}` -> `{"scores"}` stage plugin contract. This
base maps one onto the other and keeps everything else of `HttpScorer`: requests split to at
most `max_pairs_per_request` texts, bounded retries with backoff honouring `Retry-After`, one
pooled `httpx.Client` / `httpx.AsyncClient` (per event loop), the API key never printed.

Mapping: the pairs are grouped by query (a `Reranker` call always has one query, so one
group); each group is split into requests, and the scores are put back in the pairs' order.
An answer must give every index of its request exactly once, or it is a `ScorerResponseError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crossrank.errors import ScorerResponseError
from crossrank.scorers.base import Pair, check_scores
from crossrank.scorers.http import HttpScorer

DEFAULT_PATH = "/rerank"


def endpoint_url(url: str, default_path: str = DEFAULT_PATH) -> str:
    """`url` with `default_path` when it names only a server (`http://host:8080` or `.../`)."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=default_path)
    return urlunsplit(parts)


def group_by_query(pairs: Sequence[Pair]) -> list[tuple[str, list[int]]]:
    """(query, indices of its pairs), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, (query, _) in enumerate(pairs):
        groups.setdefault(query, []).append(i)
    return list(groups.items())


def scores_by_index(
    items: Any, expected: int, score_key: str, source: str, where: str = "the answer"
) -> list[float]:
    """Scores in request order from `[{"index": i, score_key: s}, ...]`, checked.

    Every index in `range(expected)` must appear exactly once; anything else would mean a
    document silently scored as another, so it is a `ScorerResponseError`.
    """
    if not isinstance(items, list):
        raise ScorerResponseError(
            f"{source}: {where} is {type(items).__name__}, expected a list of "
            f'{{"index", "{score_key}"}} objects'
        )
    raw: list[Any] = [None] * expected
    seen = [False] * expected
    for n, item in enumerate(items):
        if not isinstance(item, dict) or "index" not in item or score_key not in item:
            raise ScorerResponseError(
                f'{source}: item {n} of {where} is not an {{"index", "{score_key}"}} object: '
                f"{item!r:.200}"
            )
        index = item["index"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < expected:
            raise ScorerResponseError(
                f"{source}: item {n} of {where} has index {index!r}, outside 0..{expected - 1}"
            )
        if seen[index]:
            raise ScorerResponseError(f"{source}: {where} gives index {index} twice")
        seen[index] = True
        raw[index] = item[score_key]
    if not all(seen):
        missing = [i for i, s in enumerate(seen) if not s]
        raise ScorerResponseError(
            f"{source}: {where} has {len(items)} scores for {expected} texts; "
            f"missing indices {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    return check_scores(raw, expected, source)


class QueryTextsScorer(HttpScorer):
    """Base of the engine scorers; subclasses set `protocol`, `_payload` and `_scores`."""

    protocol = "engine"

    def __init__(self, url: str, **options: Any) -> None:
        """`url` as for `HttpScorer` (a server without a path gets `/rerank`); `options` are
        `HttpScorer`'s: timeout, max_pairs_per_request, retries, api_key, api_key_env, ..."""
        super().__init__(endpoint_url(url), **options)
        self.name = f"{self.protocol} endpoint {self.url}"

    def __repr__(self) -> str:  # never shows the Authorization header
        return (
            f"{type(self).__name__}(url={self.url!r}, "
            f"max_pairs_per_request={self.max_pairs_per_request})"
        )

    @staticmethod
    def _query_and_texts(chunk: list[list[str]]) -> tuple[str, list[str]]:
        return chunk[0][0], [text for _, text in chunk]

    def _groups(self, pairs: Sequence[Pair]) -> Iterable[list[int]]:
        return (indices for _, indices in group_by_query(pairs))

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        groups = list(self._groups(pairs))
        parent = super()
        results = [parent.score([pairs[i] for i in g]) for g in groups]
        return _merge(len(pairs), groups, results)

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        groups = list(self._groups(pairs))
        parent = super()
        results = await asyncio.gather(*(parent.ascore([pairs[i] for i in g]) for g in groups))
        return _merge(len(pairs), groups, results)


def _merge(n: int, groups: list[list[int]], results: Sequence[list[float]]) -> list[float]:
    """Each group's scores put back at its pairs' places."""
    scores: list[float] = [0.0] * n
    for indices, group_scores in zip(groups, results, strict=True):
        for i, value in zip(indices, group_scores, strict=True):
            scores[i] = value
    return scores
