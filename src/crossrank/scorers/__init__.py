"""Scorers: what turns (query, text) pairs into scores. `make_scorer` picks one for a config."""

from __future__ import annotations

from typing import Any

from crossrank.scorers.base import CallableScorer, Pair, Scorer, check_scores
from crossrank.scorers.cross_encoder import CrossEncoderScorer, clear_model_cache
from crossrank.scorers.http import HttpScorer

__all__ = [
    "CallableScorer",
    "CrossEncoderScorer",
    "HttpScorer",
    "Pair",
    "Scorer",
    "check_scores",
    "clear_model_cache",
    "make_scorer",
]


def make_scorer(config: Any) -> Any:
    """The scorer a `RerankConfig` asks for: its custom `scorer` if set, else its `model`."""
    custom = config.scorer
    if custom is None:
        return CrossEncoderScorer(
            config.model,
            device=config.device,
            dtype=config.dtype,
            max_length=config.max_length,
            batch_size=config.batch_size,
            activation=config.activation,
            trust_remote_code=config.trust_remote_code,
            backend=config.backend,
            quantize=config.quantize,
            token_budget=config.token_budget,
            num_threads=config.num_threads,
            cache_size=config.cache_size,
            microbatch=config.microbatch,
            microbatch_wait_ms=config.microbatch_wait_ms,
        )
    if isinstance(custom, str):
        return HttpScorer(custom)
    if callable(getattr(custom, "score", None)):
        return custom
    return CallableScorer(custom)
