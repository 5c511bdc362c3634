"""The `crossrank` command line.

    crossrank rerank --query "..." --input candidates.jsonl [--top-k 10] [--model ...]
    crossrank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv [...]
    crossrank quantize --model M --calibration DATA --out FOLDER
    crossrank demo

One module per subcommand (`SUBCOMMANDS`): each has `NAME`, `add_parser(subparsers)` and
`run(args) -> int`; a new subcommand is one module and one entry in `SUBCOMMANDS`. Settings
flags and `CROSSRANK_*` variables come from the settings models (`crossrank.cli.options`).

`rerank` reads documents as a JSON list, `{"documents": [...]}` or JSON Lines (one line is
JSON Lines too) from a file, or stdin with `-`, and writes one ranked document per line: the
caller's fields, with the contract fields added (`document_id`, `score`, `original_score`,
`rerank_position`). JSON has no NaN or Infinity, so such a number anywhere in the output (a
previous score, one of the caller's fields) is written as `null`. A progress bar is shown
when stderr is a terminal.

Input that cannot be read (not UTF-8, not JSON, nested too deeply, a number too long, an
unpaired surrogate in any field but the text) is one line on stderr naming the input line
(or document) and the field. Exit codes (`EXIT_CODES`): 0 done, 2 usage, 3 bad input, 4 bad
settings or stage, 5 the model cannot be loaded, 6 the scorer failed, 1 any other crossrank
error, 141 (128 + SIGPIPE) when the reader of stdout went away (`| head -1`), quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from crossrank import __version__
from crossrank.cli import demo, eval, quantize, rerank, serve
from crossrank.cli.exit_codes import (
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SCORER,
    EXIT_USAGE,
    InputError,
    UsageError,
    exit_code,
)
from crossrank.cli.records import json_safe, output_record, read_documents
from crossrank.errors import CrossrankError, ModelLoadError

__all__ = [
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INPUT",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_SCORER",
    "EXIT_USAGE",
    "MODEL_ENV",
    "SUBCOMMANDS",
    "InputError",
    "UsageError",
    "build_parser",
    "json_safe",
    "main",
    "output_record",
    "read_documents",
]

MODEL_ENV = "CROSSRANK_MODEL"  # the `model` setting's variable (crossrank.cli.options)
SUBCOMMANDS = (rerank, eval, quantize, demo, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossrank",
        description="Re-rank retrieved documents with a cross-encoder.",
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def _quiet_broken_pipe() -> int:
    """Python's recipe: point stdout at devnull so the interpreter's last flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing to flush
        pass
    finally:
        os.close(devnull)
    return EXIT_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except ModelLoadError as exc:
        print(f"crossrank: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ValidationError as exc:
        print(f"crossrank: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CrossrankError as exc:
        print(f"crossrank: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:  # the output file, or a file a setting names
        print(f"crossrank: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
