"""What a rerank returns: the caller's document, untouched, with the contract fields beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


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
    - `context_tokens`: with `max_context_tokens`, the tokens of the document's text counted
      with `context_tokenizer` (what it takes of the budget); otherwise None.
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
    context_tokens: int | None = None

    CONTRACT_FIELDS = ("document_id", "score", "original_score", "rerank_position")

    def contract_fields(self) -> dict[str, Any]:
        """The fields a rerank stage adds to each document, as a dict."""
        return {name: getattr(self, name) for name in self.CONTRACT_FIELDS}


class RankedList(list[T]):
    """A call's results: a plain list (of `RankedDocument`s for `Reranker.rerank`; of
    LangChain `Document`s or LlamaIndex `NodeWithScore`s in the integrations, whose methods
    return lists too), plus what the call left out.

    - `dropped`: how many of the documents passed were left out, by the setting that dropped
      them: `on_unreadable` (skipped for want of text), `top_k`, `score_threshold`,
      `max_context_tokens`; `len(result) + sum(result.dropped.values())` is the number passed.
    - `context_tokens`: with `max_context_tokens`, the tokens the kept texts take (counted with
      `context_tokenizer`); otherwise None.
    """

    def __init__(
        self,
        items: Any = (),
        *,
        dropped: dict[str, int] | None = None,
        context_tokens: int | None = None,
    ) -> None:
        super().__init__(items)
        self.dropped: dict[str, int] = dict(dropped or {})
        self.context_tokens = context_tokens

    def __repr__(self) -> str:
        return f"RankedList({list.__repr__(self)}, dropped={self.dropped})"
