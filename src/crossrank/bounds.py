"""Input bounds: how many documents, and how many characters, one call may hand the engine.

Documents, queries and stage calls are untrusted: without a bound, one 50 MB document or a
million short ones take gigabytes before anything is scored, and a tokenizer that runs out
of memory aborts the whole process (Rust's allocator does not raise). The bounds are settings
(`EngineSettings.max_documents`, `max_document_chars`, `max_query_chars`, `max_total_chars`)
and are checked here, in `Reranker._prepare`, before any text is tokenized or sent:

- a query longer than `max_query_chars` is a `QueryError`;
- more than `max_documents` documents is a `DocumentError` (an iterator is read only one past
  the bound, so an endless generator is refused too);
- a document longer than `max_document_chars`, or the document that takes the call past
  `max_total_chars`, is a `DocumentError` naming it (index and id) and the setting.

Each refuses the whole call, whatever `on_unreadable` says: a document past a bound is
readable, and leaving it out would be a silently different ranking. Characters are Python
string characters (code points), so the check costs nothing. Within the bounds, memory stays
bounded because a long document is tokenized only as far as it can be scored
(`crossrank.long_documents`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sized
from typing import Any

from crossrank.documents import describe
from crossrank.errors import DocumentError, QueryError


def check_query(query: str, config: Any) -> None:
    """A `QueryError` when the query is longer than `max_query_chars`."""
    if len(query) > config.max_query_chars:
        raise QueryError(
            f"the query is {len(query):,} characters long, past max_query_chars="
            f"{config.max_query_chars:,}; shorten it, or raise max_query_chars"
        )


def bounded_documents(documents: Iterable[Any], config: Any) -> list[Any]:
    """The documents as a list, or a `DocumentError` when there are more than `max_documents`.

    A sized collection is measured before it is copied; any other iterable is read at most
    one document past the bound.
    """
    limit = config.max_documents
    if isinstance(documents, Sized):
        count = len(documents)
        if count > limit:
            _too_many(f"{count:,}", limit)
        return list(documents)
    docs = list(itertools.islice(documents, limit + 1))
    if len(docs) > limit:
        _too_many(f"more than {limit:,}", limit)
    return docs


def _too_many(count: str, limit: int) -> None:
    raise DocumentError(
        f"{count} documents in one call, past max_documents={limit:,}; rerank a smaller "
        "first-stage depth (or split the call), or raise max_documents",
        index=limit,  # the first document past the bound
        document_id=None,
        field="documents",
    )


class CharBudget:
    """Checks each document's length, and the running total of a call's texts."""

    def __init__(self, config: Any) -> None:
        self.per_document = config.max_document_chars
        self.total_limit = config.max_total_chars
        self.field = config.document_field
        self.total = 0

    def check(self, text: str, index: int, doc_id: Any) -> None:
        """A `DocumentError` naming the document when it is past a character bound."""
        size = len(text)
        if size > self.per_document:
            raise DocumentError(
                f"{describe(index, doc_id)}: field {self.field!r} is {size:,} characters long, "
                f"past max_document_chars={self.per_document:,}; cut or split it before "
                "reranking, or raise max_document_chars (a long document is scored on its first "
                "max_length tokens, or its first max_chunks_per_document windows)",
                index=index,
                document_id=doc_id,
                field=self.field,
            )
        self.total += size
        if self.total > self.total_limit:
            raise DocumentError(
                f"{describe(index, doc_id)} takes the call's documents to {self.total:,} "
                f"characters, past max_total_chars={self.total_limit:,}; rerank fewer or "
                "shorter documents per call, or raise max_total_chars",
                index=index,
                document_id=doc_id,
                field=self.field,
            )
