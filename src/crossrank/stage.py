"""Rerank stage configs as retrieval pipelines write them.

Two forms circulate, and both are read unchanged:

    {"stage_name": "rerank", "stage_type": "sort",
     "config": {"stage_id": "rerank", "parameters": {...}}}
    {"stage_type": "sort", "stage_id": "rerank", "parameters": {...}}

Parameters are `RerankConfig`'s settings under their own names, plus the names pipelines use:
`inference_name` (= `model`), `top_n` (= `top_k`) and `feature_uri` (= `scorer`). Model names
go through `resolve_model_name` (known aliases such as `BAAI__bge_reranker_v2_m3` or
`bge-reranker-v2-m3`; anything else passes through as a Hugging Face id or a path). `query`
may be a template, `{{INPUT.question}}`, filled from the `inputs` of each call
(`resolve_query`). An unknown parameter is an error listing the known ones.

`stage_config(config, spec)` writes a stage back: the form, envelope, parameter names and
model spelling it was read with, so reading and writing a stage gives back an equal JSON.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crossrank import jsonio
from crossrank.config import RerankConfig
from crossrank.credentials import check_stage_key_env
from crossrank.documents import _REFUSED, PATH_RULE, ReadError, absent, lookup, safe_repr
from crossrank.errors import ConfigError, QueryError
from crossrank.scorers.hosted import hosted_model

STAGE_TYPE = "sort"

# -- model names ------------------------------------------------------------------------------

KNOWN_MODELS = (
    "BAAI/bge-reranker-v2-m3",
    "BAAI/bge-reranker-base",
    "BAAI/bge-reranker-large",
    "BAAI/bge-reranker-v2-gemma",
    "jinaai/jina-reranker-v2-base-multilingual",
    "jinaai/jina-reranker-v1-turbo-en",
    "jinaai/jina-reranker-v1-tiny-en",
    "cross-encoder/ms-marco-MiniLM-L-2-v2",
    "cross-encoder/ms-marco-MiniLM-L-4-v2",
    "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "cross-encoder/ms-marco-MiniLM-L-12-v2",
    "cross-encoder/ms-marco-TinyBERT-L-2-v2",
    "mixedbread-ai/mxbai-rerank-xsmall-v1",
    "mixedbread-ai/mxbai-rerank-base-v1",
    "mixedbread-ai/mxbai-rerank-large-v1",
    "mixedbread-ai/mxbai-rerank-base-v2",
    "mixedbread-ai/mxbai-rerank-large-v2",
    "Qwen/Qwen3-Reranker-0.6B",
    "Qwen/Qwen3-Reranker-4B",
    "Qwen/Qwen3-Reranker-8B",
)

# Short names that are not just a known id without its organisation (those resolve anyway).
MODEL_ALIASES = {
    "bge-reranker": "BAAI/bge-reranker-v2-m3",
    "bge-reranker-m3": "BAAI/bge-reranker-v2-m3",
    "jina-reranker-v2": "jinaai/jina-reranker-v2-base-multilingual",
    "jina-reranker-v2-multilingual": "jinaai/jina-reranker-v2-base-multilingual",
    "jina-reranker-v1-turbo": "jinaai/jina-reranker-v1-turbo-en",
    "jina-reranker-v1-tiny": "jinaai/jina-reranker-v1-tiny-en",
    "ms-marco-minilm": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "ms-marco-minilm-l6": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "ms-marco-minilm-l12": "cross-encoder/ms-marco-MiniLM-L-12-v2",
    "ms-marco-minilm-l4": "cross-encoder/ms-marco-MiniLM-L-4-v2",
    "ms-marco-minilm-l2": "cross-encoder/ms-marco-MiniLM-L-2-v2",
    "mxbai-rerank-xsmall": "mixedbread-ai/mxbai-rerank-xsmall-v1",
    "mxbai-rerank-base": "mixedbread-ai/mxbai-rerank-base-v1",
    "mxbai-rerank-large": "mixedbread-ai/mxbai-rerank-large-v1",
}


def _key(name: str) -> str:
    """Spelling-blind key: `BAAI__bge_reranker_v2_m3` and `baai/bge-reranker-v2-m3` agree."""
    return re.sub(r"[^a-z0-9/]", "", name.replace("__", "/").lower())


_BY_KEY: dict[str, str] = {}
for _id in KNOWN_MODELS:
    _BY_KEY[_key(_id)] = _id
    _BY_KEY.setdefault(_key(_id.split("/", 1)[1]), _id)
for _alias, _id in MODEL_ALIASES.items():
    _BY_KEY.setdefault(_key(_alias), _id)


def resolve_model_name(name: str) -> str:
    """The Hugging Face id a stage's model name stands for.

    An existing local path is kept as it is; a known model or alias (in any spelling:
    `BAAI__bge_reranker_v2_m3`, `bge-reranker-v2-m3`, `jina-reranker-v2`,
    `ms-marco-MiniLM-L-6-v2`, `mxbai-rerank-base`) becomes its id; anything else passes
    through unchanged, as a Hugging Face id or a path. A hosted model's name
    (`cohere-rerank-v3`, `Cohere_Rerank_V3`) becomes its one spelling in `HOSTED_MODELS`.
    """
    if os.path.exists(os.path.expanduser(name)):
        return name
    hosted = hosted_model(name)
    if hosted is not None:  # cohere-rerank-v3 and kin: scorers/hosted.py
        return hosted.name
    return _BY_KEY.get(_key(name), name)


# -- query templates --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_INPUT = re.compile(r"^\s*INPUT\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")


def template_fields(template: str) -> list[str]:
    """The input names a query template uses (`{{INPUT.question}}` -> ['question'])."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        field_match = _INPUT.match(match.group(1))
        if field_match is None:
            raise ConfigError(
                f"query template {template!r}: {match.group(0)!r} is not a placeholder "
                "crossrank knows; use {{INPUT.name}} (dotted names reach into nested inputs)"
            )
        names.append(field_match.group(1))
    return names


def resolve_query(template: str | None, inputs: Mapping[str, Any] | None) -> str | None:
    """`template` with each `{{INPUT.name}}` replaced by that input; a plain query as it is."""
    if template is None or not template_fields(template):
        return template
    if inputs is None:
        names = ", ".join(repr(n) for n in template_fields(template))
        raise QueryError(
            f"the query is the template {template!r}: pass the input(s) {names} with the "
            "call, e.g. rerank(inputs={...}, documents=...)"
        )
    if not isinstance(inputs, Mapping):
        raise QueryError(f"inputs must be a mapping of names to values, not {type(inputs)}")

    def fill(match: re.Match[str]) -> str:
        name = _INPUT.match(match.group(1)).group(1)  # type: ignore[union-attr]
        try:
            value = lookup(inputs, name)
        except ReadError as exc:
            raise QueryError(
                f"query template {template!r}: reading input {name!r} raised "
                f"{type(exc.__cause__).__name__}"
            ) from exc.__cause__
        if absent(value):
            given = ", ".join(safe_repr(k, 40) for k in list(inputs)[:20]) or "none"
            hint = f" ({PATH_RULE})" if value is _REFUSED else ""
            raise QueryError(
                f"query template {template!r} needs input {name!r}, which the inputs do not "
                f"have{hint} (inputs given: {given})"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise QueryError(
                f"input {name!r} for query template {template!r} is "
                f"{type(value).__name__}; it must be a string (or a number)"
            )
        try:
            return str(value)
        except ValueError:  # an int past Python's 4300-digit conversion limit
            raise QueryError(
                f"input {name!r} for query template {template!r} is an int too long to write "
                f"as text ({safe_repr(value)})"
            ) from None

    return _PLACEHOLDER.sub(fill, template)


# -- reading and writing a stage --------------------------------------------------------------

# Stage parameter -> RerankConfig field, for the names pipelines use.
PARAMETER_ALIASES = {"inference_name": "model", "top_n": "top_k", "feature_uri": "scorer"}
_NESTED_KEYS = ("stage_name", "stage_type", "config")
_NESTED_CONFIG_KEYS = ("stage_id", "parameters")
_FLAT_KEYS = ("stage_name", "stage_type", "stage_id", "parameters")


def known_parameters() -> list[str]:
    """Every parameter name a stage may use, sorted."""
    return sorted(set(PARAMETER_ALIASES) | set(RerankConfig.model_fields))


@dataclass(frozen=True)
class StageSpec:
    """How a stage was written: enough to write it back the same way."""

    nested: bool = False
    envelope: dict[str, Any] = field(default_factory=dict)  # top-level keys but parameters
    inner: dict[str, Any] = field(default_factory=dict)  # the nested form's config keys
    names: dict[str, str] = field(default_factory=dict)  # config field -> parameter name
    model_spelling: str | None = None


def _load(source: Any) -> Any:
    """The parsed stage; every way it can be malformed (bytes or a file that are not UTF-8,
    JSON that is invalid, nested past what the parser can follow, or holds a number too long
    to read) is a `ConfigError`."""
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"stage config: the bytes are not UTF-8 (byte {exc.start}); a stage is JSON text"
            ) from None
    if isinstance(source, str) and source.lstrip().startswith("{"):
        where, text = "stage config", source
    elif isinstance(source, str | os.PathLike):
        where = safe_repr(str(source), 200)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"stage config {where} is not UTF-8 text (byte {exc.start}); a stage is JSON"
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise ConfigError(
                f"stage config {where} cannot be read "
                f"({getattr(exc, 'strerror', None) or exc}); pass a dict, JSON text, or the "
                "path of a JSON file"
            ) from exc
    else:
        raise ConfigError(
            "a stage config is a dict, JSON text, or the path of a JSON file, "
            f"not {type(source).__name__}"
        )
    try:  # the one JSON reader of untrusted text (the CLI and the server read with it too)
        return jsonio.loads(text, where)
    except jsonio.JsonInputError as exc:
        raise ConfigError(str(exc)) from None


def _check_keys(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(safe_repr(k) for k in unknown)}; "
            f"known: {', '.join(allowed)}"
        )


def parse_stage(source: Any) -> tuple[RerankConfig, StageSpec]:
    """A `RerankConfig` from a stage config (dict, JSON text or file), and how it was written."""
    stage = _load(source)
    if not isinstance(stage, Mapping):
        raise ConfigError(f"a stage config is a JSON object, not {type(stage).__name__}")
    nested = "config" in stage
    if nested:
        _check_keys(stage, _NESTED_KEYS, "stage config")
        inner_obj = stage["config"]
        if not isinstance(inner_obj, Mapping):
            raise ConfigError('stage config: "config" must be an object')
        _check_keys(inner_obj, _NESTED_CONFIG_KEYS, 'stage config "config"')
        envelope = {k: v for k, v in stage.items() if k != "config"}
        inner = {k: v for k, v in inner_obj.items() if k != "parameters"}
        parameters = inner_obj.get("parameters")
    else:
        _check_keys(stage, _FLAT_KEYS, "stage config")
        envelope = {k: v for k, v in stage.items() if k != "parameters"}
        inner = {}
        parameters = stage.get("parameters")
    stage_type = envelope.get("stage_type", STAGE_TYPE)
    if stage_type != STAGE_TYPE:
        raise ConfigError(
            f"stage_type {stage_type!r} is not a rerank stage; crossrank runs "
            f"stage_type {STAGE_TYPE!r}"
        )
    stage_id = inner.get("stage_id", envelope.get("stage_id", envelope.get("stage_name")))
    where = f"stage {safe_repr(stage_id)}" if stage_id is not None else "stage"
    if not isinstance(parameters, Mapping):
        raise ConfigError(f'{where}: "parameters" must be an object of rerank settings')

    known = known_parameters()
    unknown = [k for k in parameters if k not in known]
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter(s) {', '.join(safe_repr(k) for k in unknown)}; "
            f"known parameters: {', '.join(known)}"
        )
    settings: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, value in parameters.items():
        target = PARAMETER_ALIASES.get(name, name)
        if target in settings and settings[target] != value:
            raise ConfigError(
                f"{where}: parameters {names[target]!r} and {name!r} mean the same setting "
                f"but disagree ({safe_repr(settings[target])} vs {safe_repr(value)}); give "
                "one of them"
            )
        settings[target] = value
        names.setdefault(target, name)
    spelling = None
    if isinstance(settings.get("model"), str):
        spelling = settings["model"]
        settings["model"] = resolve_model_name(spelling)
    if isinstance(settings.get("query"), str):
        template_fields(settings["query"])  # a malformed template fails now, not per call
    # A stage from JSON is untrusted: it may not pick which secret goes to its scorer.
    check_stage_key_env(settings.get("scorer_api_key_env"), where)
    try:
        config = RerankConfig(**settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'parameters'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{where}: invalid parameter(s): {problems}") from exc
    return config, StageSpec(nested, envelope, inner, names, spelling)


def stage_config(config: RerankConfig, spec: StageSpec | None = None) -> dict[str, Any]:
    """The stage JSON (as a dict) for `config`, in the form and spelling `spec` recorded."""
    spec = spec or StageSpec(envelope={"stage_type": STAGE_TYPE, "stage_id": "rerank"})
    try:
        values = config.model_dump(mode="json", exclude_unset=True)
    except Exception as exc:  # pydantic wraps the serializer's TypeError
        raise ConfigError(f"this stage cannot be written as JSON: {exc}") from exc
    parameters: dict[str, Any] = {}
    for name, value in values.items():
        if (
            name == "model"
            and spec.model_spelling is not None
            and resolve_model_name(spec.model_spelling) == value
        ):
            value = spec.model_spelling
        parameters[spec.names.get(name, name)] = value
    if spec.nested:
        return {**spec.envelope, "config": {**spec.inner, "parameters": parameters}}
    return {**spec.envelope, "parameters": parameters}
