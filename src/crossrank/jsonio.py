"""The one JSON reader for untrusted bytes: stage configs, the CLI's input and HTTP bodies.

`json.loads` fails in four different ways on hostile input (bytes that are not UTF-8, invalid
JSON, nesting past the interpreter's recursion limit, an integer past Python's 4300-digit
limit), three of them not `JSONDecodeError`. `loads` turns every one into a `JsonInputError`
whose message says which, and where, without quoting the input (it may be a document's text).
"""

from __future__ import annotations

import json
from typing import Any


class JsonInputError(ValueError):
    """The bytes or text are not one readable JSON value; the message says why."""


def loads(data: bytes | bytearray | str, where: str = "input") -> Any:
    """One JSON value from `data`; a `JsonInputError` naming `where` for every failure."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        # msg and position only: str(exc) is the same, and never quotes the document
        raise JsonInputError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise JsonInputError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer past Python's 4300-digit limit
        raise JsonInputError(f"{where}: a number too long to read ({exc})") from None
