"""A scorer behind an HTTP endpoint that speaks the stage plugin contract.

    POST <url>   {"pairs": [[query, text], ...]}   ->   {"scores": [float, ...]}

Pairs are sent in requests of at most `max_pairs_per_request` (servers such as
text-embeddings-inference refuse large requests). A request that fails in a way that may pass
(connection refused, timeout, HTTP 429/500/502/503/504) is retried with exponential backoff,
honouring `Retry-After`; retries are bounded both in count and in total time, so a failing
server never sees a retry storm: async scoring keeps at most `max_concurrent_requests` requests
in flight and stops the others as soon as one chunk fails for good. A `Retry-After` longer
than the remaining time budget ends the call at once instead of being cut short.

The `Authorization` header comes from `api_key` or from the environment variable named by
`api_key_env`, and is never printed in errors or `repr` (header values are masked even when a
server echoes them back). Credentials in the URL itself are refused: URLs end up in logs.

Each client keeps at most `max_connections` requests in flight; more wait for a free
connection on the client side (no timeout runs while they wait), so a burst of calls queues
here rather than timing out in the server's queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from crossrank.errors import ScorerResponseError, ScorerUnavailableError
from crossrank.scorers.base import Pair, check_scores

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_API_KEY_ENV = "CROSSRANK_SCORER_API_KEY"


def _retry_after(response: httpx.Response | None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After`, as seconds or an HTTP date)."""
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class HttpScorer:
    """Scores pairs by POSTing them to `url`; see the module docstring for the contract."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_pairs_per_request: int = 32,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_time: float = 60.0,
        max_connections: int = 32,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        headers: dict[str, str] | None = None,
        max_concurrent_requests: int = 4,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"scorer URL {url!r} must start with http:// or https://")
        if urlsplit(url).password is not None:
            raise ValueError(
                "the scorer URL holds a password; URLs end up in logs and error messages, so "
                f"pass the key as api_key or in the environment variable {api_key_env} instead"
            )
        if max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        if max_pairs_per_request < 1:
            raise ValueError("max_pairs_per_request must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.url = url
        self.timeout = timeout
        self.max_pairs_per_request = max_pairs_per_request
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_time = max_retry_time
        self.max_concurrent_requests = max_concurrent_requests
        # At most this many requests in flight per client; the rest wait here, where no
        # timeout ticks, instead of queueing in the server until their read timeout ends.
        self._client_options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout, pool=None),
            "limits": httpx.Limits(max_connections=max_connections),
        }
        self.name = f"scorer endpoint {url}"
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        self._headers = dict(headers or {})
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # Header values (the key above, tokens in custom headers) masked in every message.
        self._secrets = sorted(
            {v for v in [key or "", *self._headers.values()] if len(v) >= 4}, key=len, reverse=True
        )
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        # One AsyncClient per event loop: an httpx.AsyncClient is bound to the loop it was
        # first used on, and callers may run several loops (threads, asyncio.run per call).
        self._aclients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:  # never shows the Authorization header
        return f"HttpScorer(url={self.url!r}, max_pairs_per_request={self.max_pairs_per_request})"

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- request/response, shared by the sync and async paths ---------------------------------

    def _chunks(self, pairs: Sequence[Pair]) -> list[list[list[str]]]:
        step = self.max_pairs_per_request
        return [[list(p) for p in pairs[i : i + step]] for i in range(0, len(pairs), step)]

    # Hooks a serving engine's protocol overrides (see scorers/engine.py): the request body for
    # one chunk, what a good answer looks like, scores from its body, and a look at a refusal.
    expected_body = '{"scores": [...]}'

    def _payload(self, chunk: list[list[str]]) -> Any:
        return {"pairs": chunk}

    def _refused(self, response: httpx.Response, expected: int) -> None:
        """Called with an HTTP error answer before it is retried or raised; may raise instead."""

    def _parse(self, response: httpx.Response, expected: int) -> list[float]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScorerResponseError(
                f"{self.name} answered HTTP {response.status_code} with a body that is not "
                f"JSON ({exc}); expected {self.expected_body}"
            ) from exc
        return self._scores(body, expected)

    def _scores(self, body: Any, expected: int) -> list[float]:
        if not isinstance(body, dict) or "scores" not in body:
            raise ScorerResponseError(
                f'{self.name} answered without a "scores" list (got {type(body).__name__}'
                f"{' with keys ' + str(sorted(body)) if isinstance(body, dict) else ''})"
            )
        return check_scores(body["scores"], expected, self.name)

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        asked = _retry_after(response)
        if asked is not None:  # never sooner than the server asked; the time budget still caps it
            return asked
        return min(self.backoff * (2**attempt), self.max_backoff)

    def _next_step(
        self,
        expected: int,
        attempt: int,
        started: float,
        response: httpx.Response | None,
        error: httpx.TransportError | None,
    ) -> list[float] | float:
        """After one attempt: the scores, or how long to wait before the next; raises if final."""
        if response is not None and response.status_code < 400:
            return self._parse(response, expected)
        if response is not None:
            self._refused(response, expected)
        wait = self._wait(attempt, response)
        retryable = response is None or response.status_code in RETRY_STATUS
        in_budget = time.monotonic() - started + wait <= self.max_retry_time
        if retryable and attempt < self.max_retries and in_budget:
            return wait
        attempts = f"after {attempt + 1} attempt(s)"
        if response is None:
            raise ScorerUnavailableError(
                self._mask(
                    f"{self.name} could not be reached {attempts}: {type(error).__name__}: {error}"
                )
            ) from error
        cls = (
            ScorerUnavailableError if response.status_code in RETRY_STATUS else ScorerResponseError
        )
        asked = _retry_after(response)
        later = f" (it asked to retry after {asked:.0f} s)" if asked and not in_budget else ""
        raise cls(
            self._mask(
                f"{self.name} answered HTTP {response.status_code} {attempts}{later}: "
                f"{response.text[:200]!r}"
            )
        )

    # -- sync ---------------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(headers=self._headers, **self._client_options)
            return self._client

    def _post(self, chunk: list[list[str]]) -> list[float]:
        client = self._sync_client()
        started = time.monotonic()
        attempt = 0
        while True:
            response, error = None, None
            try:
                response = client.post(self.url, json=self._payload(chunk))
            except httpx.TransportError as exc:
                error = exc
            step = self._next_step(len(chunk), attempt, started, response, error)
            if isinstance(step, list):
                return step
            time.sleep(step)
            attempt += 1

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        scores: list[float] = []
        for chunk in self._chunks(pairs):
            scores.extend(self._post(chunk))
        return scores

    # -- async --------------------------------------------------------------------------------

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = httpx.AsyncClient(headers=self._headers, **self._client_options)
            self._aclients[loop] = client
        return client

    async def _apost(self, chunk: list[list[str]]) -> list[float]:
        client = self._async_client()
        started = time.monotonic()
        attempt = 0
        while True:
            response, error = None, None
            try:
                response = await client.post(self.url, json=self._payload(chunk))
            except httpx.TransportError as exc:
                error = exc
            step = self._next_step(len(chunk), attempt, started, response, error)
            if isinstance(step, list):
                return step
            await asyncio.sleep(step)
            attempt += 1

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        """Chunks are sent concurrently, at most `max_concurrent_requests` at a time; when one
        fails for good the others are cancelled (no retries left running in the background)."""
        limit = asyncio.Semaphore(self.max_concurrent_requests)
        failed = False

        async def post(chunk: list[list[str]]) -> list[float]:
            nonlocal failed
            async with limit:
                if failed:  # another chunk failed for good: send nothing more
                    raise asyncio.CancelledError
                try:
                    return await self._apost(chunk)
                except BaseException:
                    failed = True
                    raise

        tasks = [asyncio.ensure_future(post(c)) for c in self._chunks(pairs)]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [s for chunk_scores in results for s in chunk_scores]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> Any:  # clients hold sockets; they are rebuilt on use
        state = self.__dict__.copy()
        state["_client"] = None
        state["_aclients"] = weakref.WeakKeyDictionary()
        state["_client_lock"] = None
        return state

    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()
