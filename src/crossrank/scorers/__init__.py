"""Scorers: what turns (query, text) pairs into scores. `make_scorer` picks one for a config."""

from __future__ import annotations

from typing import Any

from crossrank.scorers.base import CallableScorer, Pair, Scorer, check_scores
from crossrank.scorers.cohere import CohereScorer
from crossrank.scorers.hosted import CohereRerankApi, hosted_model, hosted_scorer
from crossrank.scorers.http import DEFAULT_API_KEY_ENV, HttpScorer
from crossrank.scorers.registry import (
    register_scorer,
    registered_scorers,
    scorer_from_string,
    unregister_scorer,
)
from crossrank.scorers.tei import TeiScorer

__all__ = [
    "CallableScorer",
    "CohereRerankApi",
    "CohereScorer",
    "CrossEncoderScorer",
    "HttpScorer",
    "ModelScorer",
    "Pair",
    "Scorer",
    "TeiScorer",
    "check_scores",
    "clear_model_cache",
    "make_scorer",
    "register_scorer",
    "registered_scorers",
    "unregister_scorer",
]


def __getattr__(name: str) -> Any:
    # The model scorer lives in crossrank.models, which imports this package's base module;
    # importing it lazily here keeps the old import paths working without an import cycle.
    if name in ("CrossEncoderScorer", "ModelScorer", "clear_model_cache"):
        import crossrank.models

        return getattr(crossrank.models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_scorer(config: Any, *, api_key: str | None = None) -> Any:
    """The scorer a `RerankConfig` asks for: its custom `scorer` if set, else its `model`.

    `api_key` (an endpoint scorer's key, given directly) overrides the key variable."""
    custom = config.scorer
    if custom is None:
        hosted = hosted_model(config.model)
        if hosted is not None:  # e.g. cohere-rerank-v3: the provider's API, not a local model
            return hosted_scorer(hosted, config, api_key=api_key)
        from crossrank.models import ModelScorer

        return ModelScorer(
            config.model,
            device=config.device,
            dtype=config.dtype,
            max_length=config.max_length,
            batch_size=config.batch_size,
            activation=config.activation,
            trust_remote_code=config.trust_remote_code,
            allow_pickle_weights=config.allow_pickle_weights,
            model_family=config.model_family,
            instruction=config.instruction,
            backend=config.backend,
            quantize=config.quantize,
            token_budget=config.token_budget,
            num_threads=config.num_threads,
            cache_size=config.cache_size,
            microbatch=config.microbatch,
            microbatch_wait_ms=config.microbatch_wait_ms,
        )
    if isinstance(custom, str):  # an endpoint URL (scorers/registry.py) or a registered name
        custom = scorer_from_string(
            custom,
            model=config.model if "model" in config.model_fields_set else None,
            max_pairs_per_request=config.batch_size,
            api_key_env=config.scorer_api_key_env or DEFAULT_API_KEY_ENV,
            api_key=api_key,
        )
    if callable(getattr(custom, "score", None)):
        return custom
    return CallableScorer(custom)
