"""What a scorer *string* in the stage contract means: an endpoint URL or a registered name.

    http://host/score            the stage plugin contract {"pairs"} -> {"scores"} (HttpScorer)
    pairs+http://host/score      the same, said explicitly
    tei+http://host:8080         text-embeddings-inference, POST /rerank (TeiScorer)
    cohere+http://host:7997      a Cohere-compatible POST /rerank: infinity, vLLM, Jina
    cohere+https://host/v1/rerank   (CohereScorer; `infinity+`, `vllm+`, `jina+` are aliases)
    my-scorer                    a scorer registered with `register_scorer("my-scorer", ...)`

Each scheme also takes `https`. An engine URL without a path gets `/rerank`; with a path it
is used as given. A string stays a string in the config, so a stage with any of these
round-trips through JSON.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from crossrank.credentials import check_url_credentials
from crossrank.scorers.cohere import CohereScorer
from crossrank.scorers.http import DEFAULT_API_KEY_ENV, HttpScorer
from crossrank.scorers.tei import TeiScorer

PROTOCOLS: dict[str, str] = {
    "pairs": "pairs",
    "tei": "tei",
    "cohere": "cohere",
    "infinity": "cohere",
    "vllm": "cohere",
    "jina": "cohere",
}
_URL = re.compile(r"^(?:(?P<protocol>[a-z]+)\+)?(?P<url>https?://\S+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")

_registry: dict[str, Any] = {}
_lock = threading.Lock()


def register_scorer(name: str, scorer: Any) -> None:
    """Make `scorer` (an object with `score(pairs)` or a callable) selectable by `name`.

    A stage config then names it: `{"feature_uri": "my-scorer"}` or `scorer="my-scorer"`.
    Registering a name again replaces the scorer it stands for.
    """
    if not isinstance(name, str) or not _NAME.match(name) or "://" in name:
        raise ValueError(
            f"scorer name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '.', ':' and '-'"
        )
    if not (callable(scorer) or callable(getattr(scorer, "score", None))):
        raise TypeError(
            f"scorer {name!r} must be a callable or an object with a score(pairs) method, "
            f"not {type(scorer).__name__}"
        )
    with _lock:
        _registry[name] = scorer


def unregister_scorer(name: str) -> None:
    """Forget a registered scorer (no error when it is not registered)."""
    with _lock:
        _registry.pop(name, None)


def registered_scorers() -> list[str]:
    """The names registered so far, sorted."""
    with _lock:
        return sorted(_registry)


def parse_endpoint(value: str) -> tuple[str, str] | None:
    """(protocol, http(s) URL) for an endpoint string, or None when it is not a URL."""
    match = _URL.match(value)
    if match is None:
        return None
    check_url_credentials(match.group("url"))  # refused before the URL is stored anywhere
    protocol = match.group("protocol") or "pairs"
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"scorer {value!r}: unknown protocol {protocol!r}; use one of "
            f"{', '.join(p + '+http(s)://' for p in PROTOCOLS)} or a plain http(s):// URL"
        )
    return PROTOCOLS[protocol], match.group("url")


def check_scorer_string(value: str) -> str:
    """`value` if it is an endpoint URL or a registered name, else a `ValueError` saying why."""
    if parse_endpoint(value) is not None:
        return value
    with _lock:
        if value in _registry:
            return value
        known = sorted(_registry)
    raise ValueError(
        f"scorer {value!r} is neither an http(s):// URL (optionally with a protocol: "
        "tei+http://, cohere+http://) nor a registered scorer name "
        f"(registered: {', '.join(known) if known else 'none'}; see register_scorer)"
    )


def scorer_from_string(
    value: str,
    *,
    model: str | None = None,
    max_pairs_per_request: int = 32,
    api_key_env: str = DEFAULT_API_KEY_ENV,
    api_key: str | None = None,
) -> Any:
    """The scorer a scorer string stands for (a new endpoint scorer, or the registered one).

    `model` is sent to Cohere-compatible servers as the served model's name; `api_key`, when
    given, is the endpoint's key instead of the one in the `api_key_env` variable.
    """
    endpoint = parse_endpoint(value)
    if endpoint is None:
        with _lock:
            if value in _registry:
                return _registry[value]
        check_scorer_string(value)  # raises, naming what is registered
    protocol, url = endpoint  # type: ignore[misc]
    options: dict[str, Any] = {
        "max_pairs_per_request": max_pairs_per_request,
        "api_key_env": api_key_env,
        "api_key": api_key,
    }
    if protocol == "tei":
        return TeiScorer(url, **options)
    if protocol == "cohere":
        return CohereScorer(url, model=model, **options)
    return HttpScorer(url, **options)
