"""What a rerank returns: the caller's document, untouched, with the contract fields beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RankedDocument:
    """One reranked document.

    - `document`: the caller's object itself, never modified.
    - `document_id`: its `id`, `_id` or `document_id` field when set, else `index`.
    - `score`: the reranker's score, a plain Python float (see `RerankConfig` for its meaning).
    - `original_score`: the previous stage's score, copied untouched (None when absent).
    - `rerank_position`: 0-based place in the reranked list (`ranked[i].rerank_position == i`).
    - `index`: the document's place in the input list.
    """

    document: Any
    document_id: Any
    score: float
    original_score: Any
    rerank_position: int
    index: int

    CONTRACT_FIELDS = ("document_id", "score", "original_score", "rerank_position")

    def contract_fields(self) -> dict[str, Any]:
        """The fields a rerank stage adds to each document, as a dict."""
        return {name: getattr(self, name) for name in self.CONTRACT_FIELDS}
