"""Model families: how each kind of reranker reads a pair and yields a score.

`FAMILIES` maps each `model_family` setting to its family; `resolve_family` picks one for a
loaded model: the setting when it names one, else detection from the model (`auto`).
A new family is one module here, registered in `FAMILIES`, plus its detection rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossrank.errors import ConfigError
from crossrank.models.families.base import Family
from crossrank.models.families.sequence_classification import SequenceClassification

if TYPE_CHECKING:
    from crossrank.models.loading import LoadedModel

FAMILIES: dict[str, Family] = {f.name: f for f in (SequenceClassification(),)}


def detect_family(loaded: LoadedModel) -> Family:
    """The family of a loaded model, from its config."""
    return FAMILIES["sequence-classification"]


def resolve_family(setting: str, loaded: LoadedModel) -> Family:
    """The family the `model_family` setting names, or the detected one for `auto`."""
    if setting == "auto":
        return detect_family(loaded)
    try:
        return FAMILIES[setting]
    except KeyError:
        known = ", ".join(["auto", *FAMILIES])
        raise ConfigError(f"model_family={setting!r} is not one of {known}") from None


__all__ = ["FAMILIES", "Family", "detect_family", "resolve_family"]
