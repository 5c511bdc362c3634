"""`crossrank rerank`: rank candidate documents for one query, written as JSON Lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from crossrank.cli.exit_codes import InputError, UsageError, epilog
from crossrank.cli.options import add_settings_arguments, settings_from
from crossrank.cli.records import json_line, output_record, read_documents
from crossrank.config import RerankConfig
from crossrank.reranker import Reranker

NAME = "rerank"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="rerank candidate documents for one query",
        description=(
            "Score every candidate against the query and write them best first as JSON Lines, "
            "each with document_id, score (the reranker's), original_score (the previous "
            "stage's) and rerank_position (0-based) added. Every setting is a flag and a "
            "CROSSRANK_* environment variable: a flag given > the variable > the --stage "
            "file > the default."
        ),
        epilog=epilog(),
    )
    p.add_argument(
        "--query", "-q", help="the query to rank the documents for (or the --stage's query)"
    )
    p.add_argument(
        "--stage",
        help="a rerank stage config (JSON file) as retrieval pipelines write it; flags and "
        "CROSSRANK_* variables given beside it override its parameters",
    )
    p.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="an input for the stage's query template {{INPUT.NAME}} (repeatable)",
    )
    p.add_argument(
        "--input",
        "-i",
        default="-",
        help="candidates as a JSON list or JSON Lines file; '-' (default) reads stdin",
    )
    p.add_argument("--output", "-o", help="write the ranked JSON Lines here (default: stdout)")
    p.add_argument(
        "--nest",
        action="store_true",
        help="write each document whole under 'document' instead of adding fields beside its own",
    )
    # `query` stays --query above: it is this call's query, not an engine setting.
    add_settings_arguments(
        p,
        RerankConfig,
        exclude=("query",),
        short={"model": "-m", "top_k": "-k"},
        title="settings (each also a CROSSRANK_<NAME> environment variable)",
    )
    return p


def _reranker(args: argparse.Namespace) -> Reranker:
    if not args.stage:
        return Reranker(settings_from(args, RerankConfig, owner="Reranker"))
    stage = Reranker.from_stage(args.stage)
    config = settings_from(args, RerankConfig, base=stage.config, owner="Reranker")
    if config == stage.config:
        return stage
    reranker = Reranker(config)
    reranker._stage = stage._stage  # keep the stage's form and {{INPUT.x}} query template
    return reranker


def _progress_callback(total: int) -> Any:
    if not sys.stderr.isatty() or total < 64:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="scoring", unit="pair", file=sys.stderr)
    return bar.update, bar


def _inputs(pairs: list[str] | None) -> dict[str, str] | None:
    """`--var name=value` flags as the inputs a stage's `{{INPUT.name}}` query reads."""
    if not pairs:
        return None
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE, e.g. --var question='...'")
        inputs[name] = value
    return inputs


def run(args: argparse.Namespace) -> int:
    reranker = _reranker(args)
    if args.query is None and reranker.config.query is None:  # before waiting on stdin
        raise UsageError(
            'no query: pass --query "..." (or a --stage whose parameters include a query)'
        )
    if args.input == "-":
        documents = read_documents(sys.stdin, "stdin", reranker.config.document_field)
    else:
        try:
            with open(args.input, "rb") as f:
                documents = read_documents(f, args.input, reranker.config.document_field)
        except OSError as exc:
            raise InputError(f"{args.input}: cannot be read ({exc.strerror or exc})") from None
    update, bar = _progress_callback(len(documents))
    try:
        results = reranker.rerank(args.query, documents, inputs=_inputs(args.var), progress=update)
    finally:
        if bar is not None:
            bar.close()
    # Build every record first: a collision error must not leave a half-written output.
    lines = [
        json_line(output_record(r, reranker.config.original_score_field, args.nest))
        for r in results
    ]
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
    else:
        sys.stdout.writelines(line + "\n" for line in lines)
    return 0
