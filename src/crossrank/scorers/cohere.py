"""Cohere-compatible rerank endpoints as a scorer: infinity, vLLM, Jina, Cohere itself.

    POST <server>/rerank (or /v1/rerank, as given)
        {"model", "query", "documents", "top_n", "return_documents": false}
        ->  {"results": [{"index", "relevance_score"}, ...]}

`top_n` is always the number of documents sent, so every document comes back with a score;
crossrank cuts at its own `top_k` after merging all requests. `model` is the served model's
name (a stage's `model` / `inference_name`); it is left out of the body when not given, which
servers that serve one model (vLLM, infinity with one model) accept.
"""

from __future__ import annotations

from typing import Any

from crossrank.errors import ScorerResponseError
from crossrank.scorers.engine import QueryTextsScorer, scores_by_index


class CohereScorer(QueryTextsScorer):
    """Scores pairs with a Cohere-compatible `/rerank` route (infinity, vLLM, Jina, Cohere)."""

    protocol = "cohere"
    expected_body = '{"results": [{"index": ..., "relevance_score": ...}, ...]}'

    def __init__(self, url: str, *, model: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self.model = model

    def _payload(self, chunk: list[list[str]]) -> Any:
        query, texts = self._query_and_texts(chunk)
        body: dict[str, Any] = {
            "query": query,
            "documents": texts,
            "top_n": len(texts),
            "return_documents": False,
        }
        if self.model is not None:
            body = {"model": self.model, **body}
        return body

    def _scores(self, body: Any, expected: int) -> list[float]:
        if not isinstance(body, dict) or "results" not in body:
            raise ScorerResponseError(
                f'{self.name} answered without a "results" list (got {type(body).__name__}'
                f"{' with keys ' + str(sorted(body)) if isinstance(body, dict) else ''})"
            )
        return scores_by_index(body["results"], expected, "relevance_score", self.name, '"results"')
