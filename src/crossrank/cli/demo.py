"""`crossrank demo`: the subcommand; the demo itself is `crossrank.demo`."""

from __future__ import annotations

import argparse
from typing import Any

from crossrank.cli.options import add_settings_arguments, settings_from
from crossrank.config import EngineSettings

NAME = "demo"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    d = subparsers.add_parser(
        NAME,
        help="rerank a small Cranfield sample and show what changed",
        description="Rerank BM25 candidates for a few Cranfield queries and print before/after.",
    )
    add_settings_arguments(
        d, EngineSettings, include=("model", "long_documents"), short={"model": "-m"}
    )
    return d


def run(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    settings = settings_from(args, EngineSettings)
    return run_demo(settings.model, long_documents=settings.long_documents)
