"""What a model family is: how a pair becomes input, and how the output becomes a score.

A family is one of the two halves of the local-model scorer; a runtime (`runtimes/`) is the
other. The family owns everything that depends on how the model was trained to read a
(query, document) pair: the prompt and special tokens, which side is padded, which tensor
the score is read from, and the activation. A runtime only executes the family's scoring
module on padded batches, so every family runs on every runtime that can execute its module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from crossrank.models.batching import Encoded
    from crossrank.models.loading import LoadedModel
    from crossrank.scorers.base import Pair


class Family(ABC):
    """One way of turning (query, document) pairs into scores with a loaded model."""

    name: ClassVar[str]
    """The `model_family` setting that selects it."""

    padding_side: ClassVar[Literal["left", "right"]] = "right"
    """Left for families that read the score at the last position (causal LMs)."""

    takes_instruction: ClassVar[bool] = False
    """Whether the family's prompt has a task instruction (the `instruction` setting)."""

    @abstractmethod
    def encode(
        self, loaded: LoadedModel, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Encoded]:
        """Token ids for each pair, at most `loaded.max_length` long; only documents are cut."""

    @abstractmethod
    def input_names(self, loaded: LoadedModel) -> list[str]:
        """The padded inputs the scoring module takes, in its positional order."""

    @abstractmethod
    def scoring_module(self, loaded: LoadedModel) -> Any:
        """A torch module: input tensors (in `input_names` order) -> raw outputs (batch, k).

        Raw outputs are what the score cache keeps and what a runtime exports; they do not
        depend on the activation.
        """

    @abstractmethod
    def activate(self, loaded: LoadedModel, raw: np.ndarray[Any, Any], activation: str) -> Any:
        """Raw outputs (n, k) -> scores (n,) under the `activation` setting."""
