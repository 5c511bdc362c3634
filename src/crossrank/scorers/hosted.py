"""Models a stage can name that run on a provider's hosted API, not on this machine.

    {"model": "cohere-rerank-v3"}   ->   POST https://api.cohere.com/v2/rerank
        Authorization: Bearer $CO_API_KEY
        {"model": "rerank-english-v3.0", "query", "documents", "top_n"}
        ->  {"id", "results": [{"index", "relevance_score"}, ...], "meta"}

`HOSTED_MODELS` maps each stage name to the provider's model name (README, "Hosted models").
The scorer is `CohereRerankApi`, a `CohereScorer` (so `HttpScorer`'s splitting, bounded
retries and deadlines, its client, and its `Redactor`, through which every error and log line
passes, apply unchanged) that speaks Cohere's v2 body: no
`return_documents` (v2 never returns documents), and `max_length` sent as
`max_tokens_per_doc`.

Where the key and the server come from, and why not from the stage:
- the key: `CO_API_KEY` (Cohere's own variable), or the variable `scorer_api_key_env` names;
  without one the scorer is refused when it is built, before any request, naming the variable;
- the server: `https://api.cohere.com`, or `CO_API_URL` (the Cohere SDK's variable), or the
  `base_url` argument in Python (tests, proxies). A stage read from JSON cannot move it: a
  stage that could pick the server would send the operator's Cohere key wherever it liked.

Requests carry at most `COHERE_DOCUMENTS_PER_REQUEST` (100) documents unless `batch_size` is
set to something else than its default: Cohere bills one search unit per query with up to
100 documents, so the local default of 32 per forward pass would cost four units for 100
documents instead of one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

from crossrank.credentials import clean_api_key
from crossrank.errors import ConfigError, ScorerResponseError
from crossrank.scorers.cohere import CohereScorer

COHERE_KEY_ENV = "CO_API_KEY"
COHERE_URL_ENV = "CO_API_URL"
COHERE_BASE_URL = "https://api.cohere.com"
COHERE_RERANK_PATH = "/v2/rerank"
COHERE_DOCUMENTS_PER_REQUEST = 100  # one Cohere search unit


@dataclass(frozen=True)
class HostedModel:
    """A stage model name that stands for a provider's hosted model."""

    name: str  # the stage name, e.g. "cohere-rerank-v3"
    provider: str  # "cohere"
    api_model: str  # the provider's own name, e.g. "rerank-english-v3.0"


HOSTED_MODELS: dict[str, HostedModel] = {
    m.name: m
    for m in (
        # "Rerank 3" is the English model; multilingual text wants the multilingual one or 3.5+.
        HostedModel("cohere-rerank-v3", "cohere", "rerank-english-v3.0"),
        HostedModel("cohere-rerank-english-v3", "cohere", "rerank-english-v3.0"),
        HostedModel("cohere-rerank-multilingual-v3", "cohere", "rerank-multilingual-v3.0"),
        HostedModel("cohere-rerank-v3.5", "cohere", "rerank-v3.5"),
        HostedModel("cohere-rerank-v4-pro", "cohere", "rerank-v4.0-pro"),
        HostedModel("cohere-rerank-v4-fast", "cohere", "rerank-v4.0-fast"),
    )
}


def _key(name: str) -> str:
    """Spelling-blind key, as stage model names use (`Cohere_Rerank_V3` = `cohere-rerank-v3`);
    the dot stays, so that v3 and v3.5 remain two models."""
    return re.sub(r"[^a-z0-9.]", "", name.lower())


_BY_KEY = {_key(name): model for name, model in HOSTED_MODELS.items()}


def hosted_model(name: Any) -> HostedModel | None:
    """The hosted model a stage model name stands for, or None (a local or hub model).

    An existing local folder of that name is a local model: a path always wins.
    """
    if not isinstance(name, str):
        return None
    model = _BY_KEY.get(_key(name))
    if model is None or os.path.exists(os.path.expanduser(name)):
        return None
    return model


# Settings that mean something for a hosted model; every other one is the local model's
# (device, dtype, backend, cache...) and is refused when set, rather than silently ignored.
HOSTED_SETTINGS = frozenset(
    {
        "model",
        "scorer",
        "top_k",
        "query",
        "document_field",
        "original_score_field",
        "batch_size",  # documents per request
        "max_length",  # sent as max_tokens_per_doc
        "long_documents",
        "chunk_overlap",
        "chunk_pooling",
        "max_chunks_per_document",
        "tokenizer",
        "scorer_api_key_env",
        "on_unreadable",
        # Input bounds (crossrank.bounds): checked before anything is sent.
        "max_documents",
        "max_document_chars",
        "max_query_chars",
        "max_total_chars",
    }
)


def check_hosted_settings(config: Any) -> None:
    """A `ValueError` when a config naming a hosted model sets a local model's setting.

    A setting left at its default (as integrations pass every setting) is no problem.
    """
    model = hosted_model(config.model) if config.scorer is None else None
    if model is None:
        return
    from crossrank.config import EngineSettings

    # The engine's settings only: an integration's own fields (LangChain's top_n) are not ours.
    fields = EngineSettings.model_fields
    local = [
        name
        for name in fields
        if name not in HOSTED_SETTINGS and getattr(config, name) != fields[name].default
    ]
    if local:
        raise ValueError(
            f"model {config.model!r} runs on {model.provider.title()}'s hosted API "
            f"({model.api_model}), so the local model's setting(s) "
            f"{', '.join(local)} do not apply to it; leave them unset"
        )
    if config.long_documents == "chunk" and config.tokenizer is None:
        raise ValueError(
            f"long_documents='chunk' with the hosted model {config.model!r} needs `tokenizer` "
            "(a Hugging Face tokenizer name or folder) to split documents into windows, and "
            "max_length for the window size"
        )


def _base_url(base_url: str | None) -> tuple[str, str]:
    """The rerank URL and where its server came from."""
    if base_url is not None:
        where = "base_url"
    elif os.environ.get(COHERE_URL_ENV):
        base_url, where = os.environ[COHERE_URL_ENV], f"the environment variable {COHERE_URL_ENV}"
    else:
        base_url, where = COHERE_BASE_URL, "Cohere's default"
    base = base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(
            f"the Cohere API base URL from {where} must start with https:// (or http:// for a "
            "local proxy), e.g. https://api.cohere.com"
        )
    # The Cohere SDK takes the server without a version; a copied '/v1' or '/v2' is dropped.
    base = re.sub(r"/v[12]$", "", base)
    return base + COHERE_RERANK_PATH, where


class CohereRerankApi(CohereScorer):
    """Cohere's hosted rerank API (v2) as a scorer; see the module docstring."""

    protocol = "cohere-api"
    expected_body = '{"results": [{"index": ..., "relevance_score": ...}, ...]} (Cohere v2)'

    def __init__(
        self,
        api_model: str,
        *,
        api_key: str | None = None,
        api_key_env: str = COHERE_KEY_ENV,
        base_url: str | None = None,
        max_tokens_per_doc: int | None = None,
        max_pairs_per_request: int = COHERE_DOCUMENTS_PER_REQUEST,
        **options: Any,
    ) -> None:
        """`options` are `HttpScorer`'s (timeout, max_retries, max_retry_time, ...)."""
        if api_key is None:
            raw = os.environ.get(api_key_env)
            source = f"the environment variable {api_key_env}"
        else:
            raw, source = api_key, "api_key"
        # credentials.clean_api_key: stripped, and refused (naming the source, never the key)
        # when it holds what a header cannot carry; HttpScorer would name only "api_key".
        api_key = clean_api_key(raw, source)
        if api_key is None:
            hint = (
                f"set {api_key_env}"
                if api_key_env == COHERE_KEY_ENV
                else f"set {api_key_env} (named by scorer_api_key_env)"
            )
            raise ConfigError(
                f"Cohere's rerank API ({api_model}) needs an API key, and {source} is "
                f"{'empty' if raw is not None else 'not set'}: {hint}, or give the key in "
                "Python (api_key=...). Nothing was sent."
            )
        url, url_source = _base_url(base_url)
        super().__init__(
            url,
            model=api_model,
            api_key=api_key,
            api_key_env=api_key_env,
            max_pairs_per_request=max_pairs_per_request,
            **options,
        )
        self.key_source = source
        self.max_tokens_per_doc = max_tokens_per_doc
        # Where the server came from is part of the name: an overridden one shows in every error.
        via = f" (from {COHERE_URL_ENV})" if url_source.endswith(COHERE_URL_ENV) else ""
        self.name = f"Cohere rerank API ({api_model}) at {self.url}{via}"

    def __repr__(self) -> str:  # never shows the Authorization header
        return f"CohereRerankApi(model={self.model!r}, url={self.url!r})"

    def _payload(self, chunk: list[list[str]]) -> Any:
        query, texts = self._query_and_texts(chunk)
        body: dict[str, Any] = {
            "model": self.model,
            "query": query,
            "documents": texts,
            "top_n": len(texts),  # every document back with a score; top_k is cut locally
        }
        if self.max_tokens_per_doc is not None:
            body["max_tokens_per_doc"] = self.max_tokens_per_doc
        return body

    def _refused(self, response: httpx.Response, expected: int) -> None:
        if response.status_code in (401, 403):  # retrying cannot help; say which key it was
            raise ScorerResponseError(
                f"{self.name} refused the API key from {self.key_source} "
                f"(HTTP {response.status_code}): {self.redactor.excerpt(response.text)!r}"
            )


def hosted_scorer(model: HostedModel, config: Any, *, api_key: str | None = None) -> Any:
    """The scorer for a config naming a hosted model (`make_scorer` calls this)."""
    from crossrank.config import EngineSettings

    batch_default = EngineSettings.model_fields["batch_size"].default
    per_request = (
        config.batch_size if config.batch_size != batch_default else COHERE_DOCUMENTS_PER_REQUEST
    )
    return CohereRerankApi(
        model.api_model,
        api_key=api_key,
        api_key_env=config.scorer_api_key_env or COHERE_KEY_ENV,
        max_tokens_per_doc=config.max_length,
        max_pairs_per_request=per_request,
    )
