"""Sequence classification: a reranker whose head outputs the relevance logit(s) directly.

bge-reranker-v2-m3, the ms-marco MiniLM models, mxbai-rerank v1 and the sequence-
classification conversions of Qwen3-Reranker. The pair is the tokenizer's own pair encoding
(`[CLS] query [SEP] document [SEP]` or the model's equivalent), padded on the right; the
score is the head's logits after the model's activation, exactly as
`sentence_transformers.CrossEncoder.predict` computes it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from crossrank.models.batching import Encoded
from crossrank.models.families.base import Family
from crossrank.models.loading import LoadedModel
from crossrank.scorers.base import Pair

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encode_pairs(tokenizer: Any, pairs: Sequence[Pair], max_length: int) -> list[Encoded]:
    """Tokenize every pair once; the document is truncated and the query is kept whole.

    Special-token strings in the query or document are plain text (`split_special_tokens`).
    `truncation="only_second"` cuts only the document. When the query alone (with the special
    tokens) is over `max_length`, that cannot work; such pairs fall back to `longest_first`,
    which cuts the query too, as `CrossEncoder.predict` would.
    """
    if not pairs:
        return []
    queries = [q for q, _ in pairs]
    docs = [d for _, d in pairs]
    kwargs: dict[str, Any] = {"max_length": max_length, "padding": False}
    kwargs["return_attention_mask"] = False
    # The query and document are the caller's text: a literal "[SEP]", "[CLS]" or "</s>" in
    # them is read as plain text, never as the special token (which would end the query or
    # the pair early), as the causal families read theirs (`causal_lm.token_ids`).
    kwargs["split_special_tokens"] = True
    try:
        enc = tokenizer(queries, docs, truncation="only_second", **kwargs)
        ids = list(enc["input_ids"])
        types = enc.get("token_type_ids")
        types = list(types) if types is not None else None
    except Exception:  # a query too long for only_second makes some tokenizers raise
        ids = [None] * len(pairs)  # type: ignore[list-item]
        types = None
    too_long = [i for i, row in enumerate(ids) if row is None or len(row) > max_length]
    if too_long:
        redo = tokenizer(
            [queries[i] for i in too_long],
            [docs[i] for i in too_long],
            truncation="longest_first",
            **kwargs,
        )
        redo_types = redo.get("token_type_ids")
        if types is None and redo_types is not None:
            types = [None] * len(pairs)
        for j, i in enumerate(too_long):
            ids[i] = redo["input_ids"][j]
            if types is not None and redo_types is not None:
                types[i] = redo_types[j]
        if types is not None and any(t is None for t in types):  # only after a raising batch
            enc_all = tokenizer(queries, docs, truncation="longest_first", **kwargs)
            return [
                Encoded(tuple(a), tuple(b))
                for a, b in zip(enc_all["input_ids"], enc_all["token_type_ids"], strict=True)
            ]
    if types is None:
        return [Encoded(tuple(row), None) for row in ids]
    return [Encoded(tuple(a), tuple(b)) for a, b in zip(ids, types, strict=True)]


class SequenceClassification(Family):
    name = "sequence-classification"
    padding_side = "right"

    def encode(
        self, loaded: LoadedModel, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Encoded]:
        return encode_pairs(loaded.tokenizer, pairs, self.max_length(loaded))

    def prompt_tokens(self, tokenizer: Any, query: str, instruction: str | None) -> int:
        """The query's tokens and the pair's special tokens (`[CLS] q [SEP] ... [SEP]`)."""
        query_ids = tokenizer(
            query,
            add_special_tokens=False,
            truncation=False,
            split_special_tokens=True,  # as `encode_pairs` reads the query
            verbose=False,
        )
        return len(query_ids["input_ids"]) + int(tokenizer.num_special_tokens_to_add(pair=True))

    def input_names(self, loaded: LoadedModel) -> list[str]:
        """The inputs the model's forward takes that the tokenizer produces for a pair."""
        accepted = set(inspect.signature(type(loaded.hf_model).forward).parameters)
        produced = loaded.tokenizer("a", "b")
        names = [n for n in _INPUTS if n in accepted and (n in produced or n == "attention_mask")]
        return names

    def scoring_module(self, loaded: LoadedModel) -> Any:
        import torch

        names = self.input_names(loaded)

        class Logits(torch.nn.Module):
            """The head's logits (batch, num_labels) from positional input tensors."""

            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *tensors: Any) -> Any:
                return self.inner(**dict(zip(names, tensors, strict=True))).logits

        return Logits(loaded.hf_model).eval()

    def activate(self, loaded: LoadedModel, raw: np.ndarray[Any, Any], activation: str) -> Any:
        """The model's own activation (`CrossEncoder.activation_fn`), sigmoid, or none."""
        import torch

        if activation == "sigmoid":
            fn: Any = torch.nn.Sigmoid()
        elif activation == "none":
            fn = torch.nn.Identity()
        else:
            fn = loaded.cross_encoder.activation_fn
        scores = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        if fn is not None:
            scores = fn(scores)
        if scores.ndim > 1 and scores.shape[-1] == 1:
            scores = scores.squeeze(-1)
        return scores.numpy()
