"""Command-line flags and `CROSSRANK_*` environment variables derived from a settings model.

Each setting has one definition, a field of a pydantic model (`EngineSettings`,
`RerankConfig`, a server's settings): `add_settings_arguments` makes one flag per field from
its name (`max_length` -> `--max-length`), type (int, float, str, a `Literal`'s choices, a
bool as `--x/--no-x`, `| None` optional), default and description; `settings_from` reads
them back with this precedence, highest first:

    a flag given > CROSSRANK_<NAME> environment variable > base (a --stage file) > the default

Flags not given are absent from the namespace (`argparse.SUPPRESS`), so a default never hides
a stage value or a variable. An environment variable set to the empty string counts as unset.
A setting that is optional and not a string takes `none` for None (`--max-length none`).

Why not pydantic-settings: its environment source reports a bad variable as a pydantic
`ValidationError` under the field's name (not the variable's), parses complex types as JSON,
and its CLI source builds its own parser with its own error text and exit status; keeping
crossrank's exit codes, its `ConfigError` messages, argparse's usage errors and the --stage
layer would take more code wrapped around it than this small derivation.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from crossrank.config import _describe, suggest_setting
from crossrank.documents import safe_repr
from crossrank.errors import ConfigError

ENV_PREFIX = "CROSSRANK_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Where add_settings_arguments records, in the parser's defaults, which fields it added for
# which model (and under which prefix), for settings_from to read back.
_RECORD = "_crossrank_settings"


@dataclass(frozen=True)
class SettingFlag:
    """How one field reads from the command line and from the environment."""

    name: str
    kind: Literal["bool", "choice", "value"]
    base_type: type
    choices: tuple[Any, ...] | None
    optional: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def env_var(self, prefix: str = ENV_PREFIX) -> str:
        return prefix + self.name.upper()

    def parse(self, text: str) -> Any:
        """The value `text` names, or ValueError saying what was expected."""
        word = text.strip()
        if self.optional and self.base_type is not str and word.lower() in ("none", "null"):
            return None
        if self.kind == "bool":
            if word.lower() in _TRUE:
                return True
            if word.lower() in _FALSE:
                return False
            raise ValueError("expected true or false (1/0, yes/no, on/off)")
        if self.kind == "choice":
            for choice in self.choices or ():
                if str(choice) == word:
                    return choice
            raise ValueError("expected one of " + ", ".join(map(str, self.choices or ())))
        try:
            return self.base_type(word)
        except ValueError:
            raise ValueError(
                f"expected {'an' if self.base_type is int else 'a'} {self.base_type.__name__}"
            ) from None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `Annotated[...]` and `| None`, and whether None was allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(members) < len(typing.get_args(annotation))
            if len(members) != 1:
                return annotation, optional
            annotation = members[0]
        else:
            return annotation, optional


def setting_flag(name: str, field: FieldInfo) -> SettingFlag | None:
    """The flag of one field, or None when the field cannot be written as text (a Python-only
    setting). `Any` (e.g. `scorer`: a URL or name, or a Python callable) is its string form."""
    annotation, optional = _unwrap(field.annotation)
    optional = optional or field.default is None
    if annotation is Any:
        return SettingFlag(name, "value", str, None, optional)
    if annotation is bool:
        return SettingFlag(name, "bool", bool, None, optional)
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return SettingFlag(name, "choice", type(choices[0]), choices, optional)
    if annotation in (int, float, str):
        return SettingFlag(name, "value", annotation, None, optional)
    return None


def setting_flags(
    model: type[BaseModel], *, include: Iterable[str] | None = None, exclude: Collection[str] = ()
) -> dict[str, SettingFlag]:
    """The flags of `model`'s fields (those in `include` if given, less `exclude`), in field
    order. A field named in `include` that cannot be a flag is a TypeError, not a silent gap."""
    fields = model.model_fields
    wanted = list(fields) if include is None else list(include)
    flags = {}
    for name in wanted:
        if name in exclude:
            continue
        if name not in fields:
            raise ValueError(
                f"{model.__name__} has no setting {name!r} ({suggest_setting(name, fields)})"
            )
        flag = setting_flag(name, fields[name])
        if flag is None:
            if include is not None:
                raise TypeError(f"{model.__name__}.{name} has a type no flag can carry")
            continue
        flags[name] = flag
    return flags


def _help(flag: SettingFlag, field: FieldInfo, prefix: str) -> str:
    default = field.get_default(call_default_factory=True)
    shown = "none" if default is None else str(default).lower() if flag.kind == "bool" else default
    text = (field.description or "").strip()
    # argparse formats help with %: a literal one must be doubled.
    return f"{text} (default: {shown}; env {flag.env_var(prefix)})".replace("%", "%%")


def add_settings_arguments(
    parser: argparse.ArgumentParser | Any,
    model: type[BaseModel],
    *,
    include: Iterable[str] | None = None,
    exclude: Collection[str] = (),
    env_prefix: str = ENV_PREFIX,
    short: Mapping[str, str | Sequence[str]] | None = None,
    title: str | None = None,
) -> tuple[str, ...]:
    """Add one flag per field of `model` (see the module docstring) to `parser`; returns the
    field names added. `short` gives extra option strings (`{"model": "-m"}`); `title` puts
    the flags in their own --help group. Call it once per model and parser; several models
    may share a parser when their field names do not collide."""
    flags = setting_flags(model, include=include, exclude=exclude)
    target = parser.add_argument_group(title) if title else parser
    for name, flag in flags.items():
        field = model.model_fields[name]
        extra = (short or {}).get(name, ())
        options = [*([extra] if isinstance(extra, str) else extra), flag.flag]
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": _help(flag, field, env_prefix),
        }
        if flag.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            # argparse names the type in "invalid <type> value": the field's, not "parse".
            kwargs["type"] = _named(flag.parse, flag.base_type.__name__)
            if flag.kind == "choice":
                kwargs["metavar"] = "{" + ",".join(map(str, flag.choices or ())) + "}"
            else:
                kwargs["metavar"] = name.upper()
        target.add_argument(*options, **kwargs)
    record = dict(parser.get_default(_RECORD) or {})
    record[model] = (tuple(flags), env_prefix)
    parser.set_defaults(**{_RECORD: record})
    return tuple(flags)


def _named(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return parse(text)

    convert.__name__ = name
    return convert


def parse_setting(model: type[BaseModel], name: str, text: str) -> Any:
    """`text` read as the value of `model`'s setting `name` (as its flag reads it), e.g. for
    eval's `--compare KEY=VALUE` items; a ConfigError for an unknown name or a bad value."""
    fields = model.model_fields
    if name not in fields:
        raise ConfigError(f"unknown setting {name!r} ({suggest_setting(name, fields)})")
    flag = setting_flag(name, fields[name])
    if flag is None:
        raise ConfigError(f"setting {name!r} cannot be given as text")
    try:
        return flag.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={safe_repr(text, 60)}: {exc}") from None


def settings_from(
    args: argparse.Namespace,
    model: type[BaseModel],
    *,
    env: Mapping[str, str] | None = None,
    base: BaseModel | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    owner: str | None = None,
) -> Any:
    """`model` built from the flags that `add_settings_arguments(parser, model, ...)` added:
    `overrides` (eval's --compare items) > a flag given > the `<prefix><NAME>` environment
    variable (from `env`, default `os.environ`) > `base` (a stage's config, or a mapping; only
    its explicitly set values when it is a model) > the model's default. Every refusal is a
    `ConfigError` ("invalid <owner> setting(s): ..."); a value from the environment is named
    by its variable."""
    record = getattr(args, _RECORD, None) or {}
    if model not in record:
        raise ValueError(f"add_settings_arguments(parser, {model.__name__}) was not called")
    names, prefix = record[model]
    flags = setting_flags(model, include=names)
    env = os.environ if env is None else env
    if isinstance(base, BaseModel):
        values = base.model_dump(exclude_unset=True)
    else:
        values = dict(base or {})
    from_env: dict[str, str] = {}
    for name, flag in flags.items():
        var = flag.env_var(prefix)
        text = env.get(var)
        if text is None or not text.strip():
            continue
        try:
            values[name] = flag.parse(text)
        except ValueError as exc:
            raise ConfigError(
                f"invalid {owner or model.__name__} setting(s): environment variable {var}="
                f"{safe_repr(text, 60)} ({name}): {exc}"
            ) from None
        from_env[name] = var
    for name in flags:
        if hasattr(args, name):
            values[name] = getattr(args, name)
            from_env.pop(name, None)
    for name in overrides or {}:
        from_env.pop(name, None)
    values.update(overrides or {})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else None
            described = _describe(error)
            if name in from_env:
                described = f"environment variable {from_env[name]} ({described})"
            problems.append(described)
        owner = owner or model.__name__
        raise ConfigError(f"invalid {owner} setting(s): " + "; ".join(problems)) from exc


def env_table(
    model: type[BaseModel],
    *,
    include: Iterable[str] | None = None,
    exclude: Collection[str] = (),
    env_prefix: str = ENV_PREFIX,
) -> str:
    """A Markdown table of `model`'s flags and variables (docs/cli.md holds one; a test
    keeps it equal to this)."""
    rows = ["| flag | environment variable | default | values |", "| --- | --- | --- | --- |"]
    for name, flag in setting_flags(model, include=include, exclude=exclude).items():
        default = model.model_fields[name].get_default(call_default_factory=True)
        if flag.kind == "bool":
            values, flag_text = "true, false", f"`{flag.flag}` / `--no-{flag.flag[2:]}`"
        else:
            flag_text = f"`{flag.flag}`"
            values = ", ".join(map(str, flag.choices)) if flag.choices else flag.base_type.__name__
        if flag.optional and flag.base_type is not str:
            values += ", none"
        shown = (
            "none" if default is None else str(default).lower() if flag.kind == "bool" else default
        )
        rows.append(f"| {flag_text} | `{flag.env_var(env_prefix)}` | `{shown}` | {values} |")
    return "\n".join(rows) + "\n"
