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
    - `truncated`: whether text of the document was not scored because it was longer than
      the model's token limit (with `long_documents="chunk"`: longer than
      `max_chunks_per_document` windows); None when it could not be measured (a custom
      scorer with no `tokenizer` set).
    - `best_chunk`: with `long_documents="chunk"`, the 0-based index of the document's
      highest-scoring window (0 for a document that fits in one); otherwise None.
    - `unreadable`: None for a scored document. With `on_unreadable="last"`, a document that
      had no readable text is returned after the scored ones with `score` -inf (a plain float
      below every real score, so sorting and thresholds keep it last) and here the problem,
      naming the document and the field.
    """

    document: Any
    document_id: Any
    score: float
    original_score: Any
    rerank_position: int
    index: int
    truncated: bool | None = None
    best_chunk: int | None = None
    unreadable: str | None = None

    CONTRACT_FIELDS = ("document_id", "score", "original_score", "rerank_position")

    def contract_fields(self) -> dict[str, Any]:
        """The fields a rerank stage adds to each document, as a dict."""
        return {name: getattr(self, name) for name in self.CONTRACT_FIELDS}
