"""Reading a candidate document: its text, its id and its previous score.

Documents may be dicts or objects (dataclasses, pydantic models, LangChain `Document`s, ...).
A dotted path such as ``metadata.body`` walks through both: a mapping is indexed by key, any
other object is read by attribute. Nothing here writes to a document.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from crossrank.errors import DocumentError

_MISSING = object()
ID_FIELDS = ("id", "_id", "document_id")


# Characters a reader cannot see: whitespace, control characters (Cc), format characters such as
# zero-width spaces, joiners, direction marks and the BOM (Cf), and separators (Z*).
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def text_problem(text: str) -> str | None:
    """Why `text` cannot be scored, or None when it can.

    Empty means no visible character: only whitespace, control or zero-width characters (a
    cross-encoder would score the empty string). Unpaired surrogates (from a bad decode) are
    not text: tokenizers and JSON encoders reject them.
    """
    if not any(not c.isspace() and unicodedata.category(c) not in _INVISIBLE for c in text):
        return (
            "is empty or whitespace only (no visible characters: only whitespace, control or "
            "zero-width characters)"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"is not valid Unicode: unpaired surrogate {text[exc.start]!r} at character "
                f"{exc.start} (decode the source with errors='replace')"
            )
    return None


def _step(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, _MISSING)
    return getattr(obj, name, _MISSING)


def lookup(document: Any, path: str) -> Any:
    """Value at a dotted `path` in `document`, or `_MISSING` where any step is absent."""
    value = document
    for name in path.split("."):
        value = _step(value, name)
        if value is _MISSING:
            return _MISSING
    return value


def document_id(document: Any, index: int) -> Any:
    """The caller's id (`id`, `_id` or `document_id`, first one set), else the input index."""
    for name in ID_FIELDS:
        value = _step(document, name)
        if value is not _MISSING and value is not None:
            return value
    return index


def describe(index: int, doc_id: Any) -> str:
    """'document 3 (id 'abc')', the way every error names a document."""
    if type(doc_id) is int and doc_id == index:  # no `==` on arbitrary ids (numpy arrays)
        return f"document {index} (no id)"
    return f"document {index} (id {doc_id!r})"


def document_text(document: Any, path: str, index: int, doc_id: Any) -> str:
    """The text to score, or a `DocumentError` naming the document and the field.

    A plain string document is its own text (`path` does not apply to it).
    """
    value = document if isinstance(document, str) else lookup(document, path)
    where = describe(index, doc_id)
    if value is _MISSING:
        raise DocumentError(
            f"{where} has no field {path!r} to score; set document_field to where its text "
            f"lives (dotted paths like 'metadata.body' are allowed)",
            index=index,
            document_id=doc_id,
            field=path,
        )
    if not isinstance(value, str):
        raise DocumentError(
            f"{where}: field {path!r} is {type(value).__name__}, not a string",
            index=index,
            document_id=doc_id,
            field=path,
        )
    problem = text_problem(value)
    if problem is not None:
        raise DocumentError(
            f"{where}: field {path!r} {problem}; a cross-encoder cannot score it (drop or "
            "fix such documents before reranking)",
            index=index,
            document_id=doc_id,
            field=path,
        )
    return value


def original_score(document: Any, path: str) -> Any:
    """The previous stage's score at `path`, untouched, or None when the document has none."""
    value = lookup(document, path)
    return None if value is _MISSING else value
