"""Reading a candidate document: its text, its id and its previous score.

Documents may be dicts or objects (dataclasses, pydantic models, LangChain `Document`s, ...).
A dotted path such as ``metadata.body`` walks through both: a mapping is indexed by key (any
key, `_source` included), any other object is read by *public data attribute* only. The path
comes from a stage config, which may be hostile, so a step never reads an attribute whose
name starts with `_`, and never reaches a callable (method, function, class) or interpreter
internals (module, frame, code, traceback, generator, coroutine): such a step reads as
missing. Without this, `__init__.__globals__.os.environ.SECRET` would turn a secret into
"text" and send it to the stage's scorer. Nothing here writes to a document.

Reading never lets an exception through: a property that raises becomes a `DocumentError`
that chains it, and describing a document (its id in a message) never fails (`safe_repr`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import regex

from crossrank.errors import DocumentError

_MISSING = object()  # nothing at the path
_REFUSED = object()  # the path tried to leave data: a private name, a callable, a module ...
ID_FIELDS = ("id", "_id", "document_id")
PATH_RULE = (
    "paths read mapping keys and public data attributes only: no attribute starting with '_', "
    "no method, function, class or module"
)

# A character a reader can see: not whitespace, not a control or format character, not a
# separator, and not a default-ignorable code point (Unicode's own list of what renders as
# nothing: joiners, variation selectors, tag characters, Hangul fillers, ...). Surrogates count
# as "visible" here so that text made of them gets the more precise message below.
_VISIBLE = regex.compile(r"[^\s\p{Cc}\p{Cf}\p{Z}\p{Default_Ignorable_Code_Point}]")


class ReadError(Exception):
    """Reading `path` raised; `__cause__` is what the document's own code raised."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def safe_repr(value: Any, limit: int = 100) -> str:
    """`repr(value)` cut to `limit` characters, or a description when repr itself fails
    (a 5000-digit int, an object whose `__repr__` raises)."""
    try:
        text = repr(value)
    except Exception:
        if isinstance(value, int):
            return f"<int of about {int(value.bit_length() * 0.30103) + 1} digits>"
        return f"<{type(value).__name__} object (repr failed)>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """'ValueError: message', cut short; never raises (even when `str(exc)` does)."""
    try:
        message = str(exc)
    except Exception:
        message = "(its message cannot be shown)"
    return f"{type(exc).__name__}: {safe_repr(message, 200)}"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be scored, or None when it can.

    Empty means no visible character: only whitespace, control, format or default-ignorable
    characters (a cross-encoder would score the empty string). Unpaired surrogates (from a
    bad decode) are not text: tokenizers and JSON encoders reject them.
    """
    if _VISIBLE.search(text) is None:
        return (
            "is empty or whitespace only (no visible characters: only whitespace, control, "
            "zero-width or other default-ignorable characters)"
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


def _is_data(value: Any) -> bool:
    return not (
        callable(value)
        or inspect.ismodule(value)
        or inspect.isframe(value)
        or inspect.iscode(value)
        or inspect.istraceback(value)
        or inspect.isgenerator(value)
        or inspect.iscoroutine(value)
        or inspect.isasyncgen(value)
    )


def _step(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        value = obj.get(name, _MISSING)
    elif name.startswith("_"):
        return _REFUSED
    else:
        value = getattr(obj, name, _MISSING)
    if value is not _MISSING and not _is_data(value):
        return _REFUSED
    return value


def lookup(document: Any, path: str) -> Any:
    """Value at a dotted `path` in `document`; `_MISSING` where a step is absent, `_REFUSED`
    where it would leave data (see the module docstring). Raises `ReadError` from whatever
    the document's own code raised while being read."""
    if not _is_data(document):
        return _REFUSED
    value = document
    try:
        for name in path.split("."):
            value = _step(value, name)
            if value is _MISSING or value is _REFUSED:
                return value
    except Exception as exc:
        raise ReadError(path) from exc
    return value


def absent(value: Any) -> bool:
    """True for what `lookup` returns when there is no readable value at the path."""
    return value is _MISSING or value is _REFUSED


def document_id(document: Any, index: int) -> Any:
    """The caller's id (`id`, `_id` or `document_id`, first one set), else the input index.

    A mapping's `_id` key counts (BEIR corpora); an object's `_id` attribute is private and
    does not. An id whose reading raises is a `DocumentError`.
    """
    for name in ID_FIELDS:
        try:
            value = lookup(document, name)
        except ReadError as exc:
            raise DocumentError(
                f"document {index}: reading its {name!r} raised "
                f"{describe_exception(exc.__cause__)}",
                index=index,
                document_id=index,
                field=name,
            ) from exc.__cause__
        if not absent(value) and value is not None:
            return value
    return index


def describe(index: int, doc_id: Any) -> str:
    """'document 3 (id 'abc')', the way every error names a document."""
    if type(doc_id) is int and doc_id == index:  # no `==` on arbitrary ids (numpy arrays)
        return f"document {index} (no id)"
    return f"document {index} (id {safe_repr(doc_id)})"


def document_text(document: Any, path: str, index: int, doc_id: Any) -> str:
    """The text to score, or a `DocumentError` naming the document and the field.

    A plain string document is its own text (`path` does not apply to it).
    """
    where = describe(index, doc_id)
    try:
        value = document if isinstance(document, str) else lookup(document, path)
    except ReadError as exc:
        raise DocumentError(
            f"{where}: reading field {path!r} raised {describe_exception(exc.__cause__)}",
            index=index,
            document_id=doc_id,
            field=path,
        ) from exc.__cause__
    if absent(value):
        hint = f" ({PATH_RULE})" if value is _REFUSED else ""
        raise DocumentError(
            f"{where} has no field {path!r} to score{hint}; set document_field to where its "
            f"text lives (dotted paths like 'metadata.body' are allowed)",
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


def original_score(document: Any, path: str, index: int, doc_id: Any) -> Any:
    """The previous stage's score at `path`, untouched, or None when the document has none
    (a path that would leave data reads as none); a `DocumentError` when reading raises."""
    try:
        value = lookup(document, path)
    except ReadError as exc:
        raise DocumentError(
            f"{describe(index, doc_id)}: reading field {path!r} raised "
            f"{describe_exception(exc.__cause__)}",
            index=index,
            document_id=doc_id,
            field=path,
        ) from exc.__cause__
    return None if absent(value) else value
