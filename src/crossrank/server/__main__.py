"""`python -m crossrank.server [--stage FILE] [--model M] [--host H] [--port P] ...`.

A small entry point of its own (the `crossrank serve` subcommand derives every engine and
server flag from the settings models); this one takes the server's settings as flags and
the engine from `--model` or a stage file, for containers and tests.
"""

from __future__ import annotations

import argparse
import logging
import sys

from crossrank.config import EngineSettings
from crossrank.errors import CrossrankError
from crossrank.server.app import build_app
from crossrank.server.run import serve
from crossrank.server.settings import ServerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank.server")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--model", help=EngineSettings.model_fields["model"].description)
    engine.add_argument("--stage", help="a rerank stage config (JSON file) to serve")
    for name, field in ServerSettings.model_fields.items():
        kind = type(field.default) if field.default is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=field.description)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        values = {
            name: getattr(args, name)
            for name in ServerSettings.model_fields
            if getattr(args, name) is not None
        }
        settings = ServerSettings(**values)
        if args.stage:
            from crossrank.reranker import Reranker

            source = Reranker.from_stage(args.stage)
        else:
            source = EngineSettings(**({"model": args.model} if args.model else {}))
        app = build_app(source, settings)
    except (CrossrankError, ValueError) as exc:
        print(f"crossrank serve: {exc}", file=sys.stderr)
        return 4
    return 0 if serve(app, settings) else 5  # 5: the model cannot be loaded (as the CLI)


if __name__ == "__main__":
    sys.exit(main())
