"""Hugging Face text-embeddings-inference (TEI) as a scorer.

    POST <server>/rerank   {"query", "texts", "truncate", "raw_scores"}  ->  [{"index", "score"}]

TEI refuses a request with more texts than its `--max-client-batch-size` (32 by default) with
HTTP 413 (422 in some versions) and `batch size N > maximum allowed batch size M`. Requests
are split to `max_pairs_per_request` texts (32 by default); when TEI still refuses one, the
scorer lowers its request size to the limit TEI named (or halves it when TEI named none),
remembers it, and scores the pairs again in smaller requests, merging the answers in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from crossrank.errors import ScorerResponseError
from crossrank.scorers.base import Pair
from crossrank.scorers.engine import QueryTextsScorer, scores_by_index

_LIMIT = re.compile(r"maximum allowed batch size (\d+)")
TOO_LARGE_STATUS = frozenset({413, 422})


class _RequestTooLarge(Exception):
    def __init__(self, size: int, limit: int | None, text: str) -> None:
        self.size = size
        self.limit = limit
        self.text = text


class TeiScorer(QueryTextsScorer):
    """Scores pairs with a text-embeddings-inference server's `/rerank` route.

    `truncate` (default True) lets TEI cut a pair longer than the model's limit instead of
    refusing it, like the in-process model does. `raw_scores` (default False) keeps TEI's own
    activation (a sigmoid for one-logit rerankers), so scores match the in-process default.
    """

    protocol = "tei"
    expected_body = '[{"index": ..., "score": ...}, ...]'

    def __init__(
        self, url: str, *, truncate: bool = True, raw_scores: bool = False, **options: Any
    ) -> None:
        super().__init__(url, **options)
        self.truncate = truncate
        self.raw_scores = raw_scores

    def _payload(self, chunk: list[list[str]]) -> Any:
        query, texts = self._query_and_texts(chunk)
        return {
            "query": query,
            "texts": texts,
            "truncate": self.truncate,
            "raw_scores": self.raw_scores,
        }

    def _scores(self, body: Any, expected: int) -> list[float]:
        return scores_by_index(body, expected, "score", self.name)

    def _refused(self, response: httpx.Response, expected: int) -> None:
        if response.status_code not in TOO_LARGE_STATUS or expected < 2:
            return
        match = _LIMIT.search(response.text)
        if response.status_code == 422 and match is None:
            return  # some other validation error: reported as it is
        raise _RequestTooLarge(expected, int(match.group(1)) if match else None, response.text)

    def _shrink(self, refusal: _RequestTooLarge) -> None:
        """Lower the request size after a refusal, or raise when it cannot get smaller."""
        limit = refusal.limit if refusal.limit is not None else refusal.size // 2
        if limit < 1 or limit >= refusal.size:
            raise ScorerResponseError(
                f"{self.name} refused a request of {refusal.size} texts as too large "
                f"(limit {refusal.limit}), and a smaller request is not possible: "
                f"{self.redactor.excerpt(refusal.text)!r}"
            )
        self.max_pairs_per_request = min(self.max_pairs_per_request, limit)

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        while True:
            try:
                return super().score(pairs)
            except _RequestTooLarge as refusal:
                self._shrink(refusal)

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        while True:
            try:
                return await super().ascore(pairs)
            except _RequestTooLarge as refusal:
                self._shrink(refusal)
