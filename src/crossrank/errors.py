"""Exceptions raised by crossrank.

Every error says *what* went wrong and *where*: which document (input index and id), which
field, which model or endpoint. Catch `CrossrankError` to handle them all.
"""

from __future__ import annotations

from typing import Any


class CrossrankError(Exception):
    """Base class of every error crossrank raises on purpose."""


class ConfigError(CrossrankError, ValueError):
    """The stage contract was given a value it cannot accept."""


class DocumentError(CrossrankError, ValueError):
    """A candidate document cannot be scored as given.

    Attributes name the document (`index` in the input list, `document_id` when it has one)
    and the `field` that was read, so a caller can find the offending record.
    """

    def __init__(self, message: str, *, index: int, document_id: Any, field: str) -> None:
        self.index = index
        self.document_id = document_id
        self.field = field
        super().__init__(message)


class QueryError(CrossrankError, ValueError):
    """The query is missing, empty or not a string."""


class ScorerError(CrossrankError):
    """A scorer returned something that is not one finite number per pair, or failed."""


class ScorerResponseError(ScorerError):
    """A remote scorer answered, but not with a valid ``{"scores": [...]}`` body."""


class ScorerUnavailableError(ScorerError):
    """A remote scorer could not be reached or kept failing after the allowed retries."""


class ModelLoadError(CrossrankError):
    """A cross-encoder model could not be loaded; the message says where it looked."""
