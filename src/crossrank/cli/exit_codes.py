"""The `crossrank` command's exit codes, the errors only the command raises, and which code
each error gets (`exit_code`)."""

from __future__ import annotations

from pydantic import ValidationError

from crossrank.errors import (
    ConfigError,
    CrossrankError,
    DocumentError,
    ModelLoadError,
    QueryError,
    ScorerError,
)

EXIT_OK = 0
EXIT_ERROR = 1  # a crossrank error of no other kind below
EXIT_USAGE = 2  # the command line itself (argparse's code)
EXIT_INPUT = 3  # the candidates, the query or a --var: unreadable or unscorable
EXIT_CONFIG = 4  # a setting (flag, CROSSRANK_* variable) or the --stage file
EXIT_MODEL = 5  # the model cannot be loaded
EXIT_SCORER = 6  # the scorer (an endpoint, a registered scorer) failed
EXIT_PIPE = 141  # stdout's reader went away (128 + SIGPIPE), as Unix tools exit
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_ERROR: "another crossrank error",
    EXIT_USAGE: "usage: an unknown option or a malformed flag",
    EXIT_INPUT: "bad input: candidates, query or --var",
    EXIT_CONFIG: "bad settings or stage config",
    EXIT_MODEL: "the model cannot be loaded",
    EXIT_SCORER: "the scorer failed",
    EXIT_PIPE: "stdout was closed early (quiet)",
}


class InputError(CrossrankError, ValueError):
    """The candidates file is not JSON or JSON Lines of documents."""


class UsageError(CrossrankError, ValueError):
    """A flag's value is malformed (`--var`, `--compare`)."""


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, InputError | DocumentError | QueryError):
        return EXIT_INPUT
    if isinstance(exc, ConfigError | ValidationError):
        return EXIT_CONFIG
    if isinstance(exc, ModelLoadError):
        return EXIT_MODEL
    if isinstance(exc, ScorerError):
        return EXIT_SCORER
    return EXIT_ERROR


def epilog() -> str:
    return "exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
