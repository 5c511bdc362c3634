"""`crossrank serve`: the subcommand; the server itself is `crossrank.server`.

Every engine setting (`EngineSettings`) and every server setting (`ServerSettings`) is a flag
and a `CROSSRANK_*` environment variable, derived by `crossrank.cli.options`; `--stage FILE`
takes the engine settings from a rerank stage config, which flags and variables override.
"""

from __future__ import annotations

import argparse
from typing import Any

from crossrank.cli.exit_codes import EXIT_MODEL, UsageError
from crossrank.config import EngineSettings
from crossrank.server.settings import ServerSettings

NAME = "serve"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from crossrank.cli.options import add_settings_arguments

    parser = subparsers.add_parser(
        NAME,
        help="serve a model over HTTP (stage plugin /score, Cohere and TEI rerank APIs)",
        description=(
            "Load one model and serve it on 127.0.0.1 (unless --host says otherwise): POST "
            "/score, /v1/rerank, /v2/rerank, /rerank; GET /health, /info, /metrics. "
            "See docs/serving.md. Needs crossrank[serve]."
        ),
    )
    parser.add_argument(
        "--stage", help="a rerank stage config (JSON file) whose engine settings to serve"
    )
    add_settings_arguments(parser, ServerSettings, title="server")
    add_settings_arguments(parser, EngineSettings, short={"model": "-m"}, title="engine")
    return parser


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The served engine: a stage's settings (if --stage) under the flags and variables."""
    from crossrank.cli.options import settings_from

    base: dict[str, Any] | None = None
    if getattr(args, "stage", None):
        from crossrank.stage import parse_stage

        config, _ = parse_stage(args.stage)
        given = config.model_dump(exclude_unset=True)
        base = {k: v for k, v in given.items() if k in EngineSettings.model_fields}
    return settings_from(args, EngineSettings, base=base, owner="serve")


def run(args: argparse.Namespace) -> int:
    from crossrank.cli.options import settings_from

    try:
        from crossrank.server.app import build_app
        from crossrank.server.run import serve
    except ImportError as exc:  # the web dependencies are an extra
        raise UsageError(
            f"crossrank serve needs the serve extra ({exc.name} is not installed): "
            'pip install "crossrank[serve]"'
        ) from None

    server = settings_from(args, ServerSettings, owner="serve")
    app = build_app(engine_settings(args), server)
    return 0 if serve(app, server) else EXIT_MODEL
