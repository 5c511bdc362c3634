"""Model families: how each kind of reranker reads a pair and yields a score.

`FAMILIES` maps each `model_family` setting to its family; `resolve_family` picks one for a
loaded model: the setting when it names one, else detection from the model (`auto`).
A new family is one module here, registered in `FAMILIES`, plus its detection rule.

Detection (`auto`) reads what the loaded model is and what it is called (the hub id or folder
path, and the `_name_or_path` in its config):

- a sequence-classification (or any non-causal) model: `sequence-classification`;
- a causal LM whose name says `qwen3-reranker` (a Qwen3 model): `qwen3-reranker`;
- a Gemma causal LM named `bge-reranker...`: `bge-reranker-gemma`;
- a Qwen2 causal LM named `mxbai-rerank...`: `mxbai-rerank-v2`;
- any other causal LM: a `ModelLoadError` asking for `model_family` (a causal LM read with the
  wrong prompt scores nonsense, so crossrank never guesses).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from crossrank.errors import ConfigError, ModelLoadError
from crossrank.models.families.base import Family
from crossrank.models.families.bge_reranker_gemma import BgeRerankerGemma
from crossrank.models.families.causal_lm import CausalLMReranker
from crossrank.models.families.mxbai_rerank_v2 import MxbaiRerankV2
from crossrank.models.families.qwen3_reranker import Qwen3Reranker
from crossrank.models.families.sequence_classification import SequenceClassification

if TYPE_CHECKING:
    from crossrank.models.loading import LoadedModel

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (SequenceClassification(), Qwen3Reranker(), BgeRerankerGemma(), MxbaiRerankV2())
}
MODEL_FAMILIES = ("auto", *FAMILIES)
"""Every value the `model_family` setting takes."""

# Causal-LM rerankers crossrank knows and does not run, and why (checked before loading).
UNSUPPORTED = {
    re.compile(r"minicpm-layerwise", re.I): (
        "bge-reranker-v2-minicpm-layerwise is not supported: it runs its own model code "
        "(trust_remote_code) and scores from a chosen intermediate layer (cutoff_layers), "
        "which no crossrank family reads. Use BAAI/bge-reranker-v2-gemma or "
        "Qwen/Qwen3-Reranker-0.6B, or serve it with FlagEmbedding behind an endpoint scorer"
    ),
    re.compile(r"gemma2-lightweight", re.I): (
        "bge-reranker-v2.5-gemma2-lightweight is not supported: it runs its own model code "
        "(trust_remote_code) and scores from chosen layers with token compression "
        "(cutoff_layers, compress_ratio), which no crossrank family reads. Use "
        "BAAI/bge-reranker-v2-gemma, or serve it with FlagEmbedding behind an endpoint scorer"
    ),
}

# (family, the name pattern, the model_type values it must have)
_CAUSAL_RULES = (
    ("qwen3-reranker", re.compile(r"qwen3-reranker", re.I), ("qwen3",)),
    ("bge-reranker-gemma", re.compile(r"bge-reranker", re.I), ("gemma",)),
    ("mxbai-rerank-v2", re.compile(r"mxbai-rerank", re.I), ("qwen2",)),
)


def check_supported(name: str) -> None:
    """Refuse, before any download or load, a model crossrank knows it cannot run."""
    for pattern, reason in UNSUPPORTED.items():
        if pattern.search(name):
            raise ModelLoadError(f"{name!r}: {reason}")


def is_causal_lm(loaded: LoadedModel) -> bool:
    return type(loaded.hf_model).__name__.endswith("ForCausalLM")


def detect_family(loaded: LoadedModel, name: str = "") -> Family:
    """The family of a loaded model, from its class, `model_type` and name (see the module)."""
    if not is_causal_lm(loaded):
        return FAMILIES["sequence-classification"]
    config = loaded.config
    text = f"{name} {getattr(config, '_name_or_path', '')}"
    check_supported(text)
    model_type = getattr(config, "model_type", "")
    for family, pattern, model_types in _CAUSAL_RULES:
        if pattern.search(text) and model_type in model_types:
            return FAMILIES[family]
    causal = ", ".join(n for n in FAMILIES if isinstance(FAMILIES[n], CausalLMReranker))
    raise ModelLoadError(
        f"model {name!r} is a causal LM ({type(loaded.hf_model).__name__}, model_type "
        f"{model_type!r}) that matches no known reranker family by its name, and crossrank "
        "does not guess a causal LM's prompt. Set model_family to the family whose prompt it "
        f"was trained with: one of {causal} (README, Models), or sequence-classification "
        "for a model converted to a classification head"
    )


def resolve_family(setting: str, loaded: LoadedModel, name: str = "") -> Family:
    """The family the `model_family` setting names, or the detected one for `auto`."""
    if setting == "auto":
        return detect_family(loaded, name)
    try:
        family = FAMILIES[setting]
    except KeyError:
        raise ConfigError(
            f"model_family={setting!r} is not one of {', '.join(MODEL_FAMILIES)}"
        ) from None
    if isinstance(family, CausalLMReranker) != is_causal_lm(loaded):
        kind = type(loaded.hf_model).__name__
        needs = (
            "a causal LM (*ForCausalLM)"
            if isinstance(family, CausalLMReranker)
            else ("a sequence-classification model")
        )
        raise ConfigError(
            f"model_family={setting!r} needs {needs}, but model {name!r} loaded as {kind}; "
            "set model_family='auto' or the model's own family"
        )
    return family


def check_instruction(family: Family, instruction: str | None) -> None:
    """Refuse an instruction the family's prompt has no place for."""
    if instruction is not None and not family.takes_instruction:
        takes = ", ".join(n for n, f in FAMILIES.items() if f.takes_instruction)
        raise ConfigError(
            f"instruction is set, but the {family.name} family takes no instruction (its model "
            f"reads the query and the document only); leave instruction unset, or use a model "
            f"of a family that takes one ({takes})"
        )


__all__ = [
    "FAMILIES",
    "MODEL_FAMILIES",
    "Family",
    "check_instruction",
    "check_supported",
    "detect_family",
    "resolve_family",
]
