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

    default_max_length: ClassVar[int | None] = None
    """The pair length the model card scores at, used when `max_length` is not set (a causal
    LM declares tens of thousands of positions; its card reranks at far fewer)."""

    def max_length(self, loaded: LoadedModel) -> int:
        """Tokens per pair, everything included: the setting, else the model's and the card's."""
        if loaded.max_length_set or self.default_max_length is None:
            return loaded.max_length
        return min(loaded.max_length, self.default_max_length)

    @abstractmethod
    def prompt_tokens(self, tokenizer: Any, query: str, instruction: str | None) -> int:
        """Tokens of a pair that are not the document: prompt, suffix, query, special tokens.

        Long-document windows are `max_length` minus this; it may count one token too many
        (where the document's first token merges with the prompt's last), never too few.
        """

    @abstractmethod
    def encode(
        self, loaded: LoadedModel, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Encoded]:
        """Token ids for each pair, at most `max_length(loaded)` long; only documents are cut."""

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
