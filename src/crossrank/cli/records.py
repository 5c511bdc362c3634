"""The `rerank` command's input and output: documents read from JSON, a JSON list or JSON
Lines as bytes, refused by line and field (not UTF-8, not JSON, too deep, numbers too long,
lone surrogates); each ranked document written as one JSON line with the contract fields
added, NaN and infinities as `null`."""

from __future__ import annotations

import json
import math
from typing import Any, TextIO

from crossrank.cli.exit_codes import InputError
from crossrank.documents import safe_repr
from crossrank.results import RankedDocument


def _parse_json(text: str, where: str) -> Any:
    """One JSON value; every way it can fail is an `InputError` naming `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer past Python's 4300-digit limit
        raise InputError(f"{where}: a number too long to read ({exc})") from None


def _surrogate_field(value: Any, text_field: str | None = None) -> str | None:
    """The first field path (`metadata.title`, `tags[2]`) but `text_field` whose string holds
    an unpaired surrogate, which cannot be written out as UTF-8; None when there is none. The
    text field is left to the reranker's own rule (a `DocumentError`, or `on_unreadable`)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if where and where == text_field:
            continue
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "(the document itself)"
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{where}.{key}" if where else str(key)
                if _surrogate_field(key) is not None:
                    return f"{name} (its name)"
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def _check_document(doc: Any, where: str, text_field: str | None) -> Any:
    field = _surrogate_field(doc, text_field)
    if field is not None:
        raise InputError(
            f"{where}: field {field!r} holds an unpaired surrogate (a \\ud800-\\udfff escape "
            "alone), which is not text and cannot be written as UTF-8"
        )
    return doc


def read_documents(stream: TextIO | Any, name: str, text_field: str | None = None) -> list[Any]:
    """Documents from a JSON list (or {"documents": [...]}), or from JSON Lines (one object
    per line; a single line is one document). `text_field` (the document_field) is exempt
    from the lone-surrogate check: the reranker's text rule decides about it."""
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise InputError(
                f"{name}, line {line}: not UTF-8 text (byte {exc.start}); the input must be "
                "JSON or JSON Lines"
            ) from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] in "[{" and not _looks_like_jsonl(stripped):
        one_line = len(stripped.rstrip().splitlines()) == 1
        data = _parse_json(stripped, f"{name}, line 1" if one_line else name)
        if isinstance(data, dict):  # {"documents": [...]}, or one object: JSON Lines of one line
            data = data["documents"] if isinstance(data.get("documents"), list) else [data]
        if not isinstance(data, list):
            raise InputError(f"{name}: expected a JSON list of documents or JSON Lines")
        return [_check_document(d, f"{name}, document {i}", text_field) for i, d in enumerate(data)]
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        docs.append(_check_document(_parse_json(line, where), where, text_field))
    return docs


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _looks_like_jsonl(text: str) -> bool:
    """Several non-empty lines that each start a JSON object: JSON Lines, not one document."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and lines[0].lstrip().startswith("{") and lines[0].rstrip().endswith("}")


def output_record(result: RankedDocument, original_score_field: str, nest: bool) -> dict[str, Any]:
    """The caller's document with the contract fields added, losing nothing.

    A document field that the contract would overwrite is an error (use `--nest`), except the
    previous stage's score field, whose value is kept in `original_score`.
    """
    fields = result.contract_fields()
    for name in ("truncated", "best_chunk", "unreadable"):  # facts, when known
        if getattr(result, name) is not None:
            fields[name] = getattr(result, name)
    if result.unreadable is not None:
        fields["score"] = None  # JSON has no -inf: an unscored document (--on-unreadable last)
    doc = result.document
    if nest or not isinstance(doc, dict):
        return {"document": doc, **fields}
    for name in fields:
        if name in doc and name != original_score_field and doc[name] != fields[name]:
            raise InputError(
                f"document {result.index} (id {safe_repr(result.document_id)}) already has a field "
                f"{name!r}, which the output would overwrite; rerun with --nest to keep "
                "each document whole under 'document'"
            )
    return {**doc, **fields}


def json_line(record: dict[str, Any]) -> str:
    """One output line: UTF-8 as it reads, or \\u escapes where a document's text holds a lone
    surrogate (a bad decode upstream, ranked with on_unreadable) that UTF-8 cannot encode, so
    nothing is lost; NaN and infinities, which JSON lacks, as null (`json_safe`)."""
    record = json_safe(record)
    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, allow_nan=False)
    return line
