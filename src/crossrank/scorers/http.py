"""A scorer behind an HTTP endpoint that speaks the stage plugin contract.

    POST <url>   {"pairs": [[query, text], ...]}   ->   {"scores": [float, ...]}

Pairs are sent in requests of at most `max_pairs_per_request` (servers such as
text-embeddings-inference refuse large requests). A request that fails in a way that may pass
(connection refused or reset, a timeout, HTTP 429/500/502/503/504) is retried (tenacity) with
exponential backoff, honouring `Retry-After`; a request that can never succeed
(`httpx.LocalProtocolError`, an unsupported URL, any other HTTP error) is not. Async scoring
keeps at most `max_concurrent_requests` requests in flight and stops the others as soon as one
chunk fails for good, so a failing server never sees a retry storm.

Deadlines (every byte a server sends is untrusted, its pace too):
- each request must be answered completely, connect to last byte, within `timeout` seconds;
- each call (`score` / `ascore`: all its requests, retries, waits and its queueing for a
  connection) ends within `max_retry_time` seconds. A `Retry-After` that would take it past
  that ends the call at once instead of being cut short.
Answers are read up to `max_response_bytes`; a larger one is an error.

Requests run on one shared event loop thread (`scorers/http_loop.py`), with one
`httpx.AsyncClient` per scorer, whatever thread or event loop calls it: nothing leaks per
caller loop. Each client keeps at most `max_connections` requests in flight; more wait for a
free connection on the client side (inside the call's deadline, outside the request's), so a
burst of calls queues here rather than timing out in the server's queue.

The `Authorization` header comes from `api_key` or from the environment variable named by
`api_key_env` (checked by `credentials.clean_api_key`: no whitespace or control characters).
Every error message and log line of the scorer passes through its `redactor`
(`credentials.Redactor`), which masks the key and custom header values raw, escaped and in
part, also when a server echoes them back. Credentials in the URL itself are refused.

Subclasses (serving engines, hosted APIs) override the hooks `_payload`, `_scores` and
`_refused`; they get the retries, deadlines, clients and masking unchanged. A subclass that
builds its own error text from server data passes it through `self.redactor.excerpt(...)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from crossrank.credentials import (
    Redactor,
    check_header_value,
    check_url_credentials,
    clean_api_key,
)
from crossrank.errors import ScorerError, ScorerResponseError, ScorerUnavailableError
from crossrank.scorers import http_loop
from crossrank.scorers.base import Pair, check_scores

logger = logging.getLogger("crossrank")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_API_KEY_ENV = "CROSSRANK_SCORER_API_KEY"
MAX_RESPONSE_BYTES = 16 * 2**20
# Faults that may pass on a later attempt. LocalProtocolError (an illegal header, say) and
# UnsupportedProtocol are ours and would fail the same way every time.
TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


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
        except (TypeError, ValueError, OverflowError):
            return None


class _Refusal(Exception):
    """An HTTP status that may pass (429, 5xx): retried, or reported when retries end."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _AttemptTimeout(Exception):
    """One request was not answered completely in time (retried like any timeout)."""

    def __init__(self, seconds: float, by_call: bool) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.by_call = by_call  # the call's deadline, not the request's, cut it


class _Rejected(Exception):
    """An HTTP error status that will not pass (400, 401, 404, ...): reported, not retried."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _OutOfTime(Exception):
    """The call's deadline passed before another request could start."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (_Refusal, _AttemptTimeout, *TRANSIENT_ERRORS))


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
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("the scorer URL must be a string starting with http:// or https://")
        check_url_credentials(url)
        try:
            httpx.URL(url)
        except Exception:  # httpx.InvalidURL; its message would quote the URL unmasked
            raise ValueError("the scorer URL is not a valid http(s) URL") from None
        if max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        if max_pairs_per_request < 1:
            raise ValueError("max_pairs_per_request must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        for name, value in (("timeout", timeout), ("max_retry_time", max_retry_time)):
            if not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds")
        if max_connections < 1 or max_response_bytes < 1:
            raise ValueError("max_connections and max_response_bytes must be at least 1")
        self.url = url
        self.timeout = float(timeout)
        self.max_pairs_per_request = max_pairs_per_request
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_time = float(max_retry_time)
        self.max_concurrent_requests = max_concurrent_requests
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self.name = f"scorer endpoint {url}"
        if api_key is not None:
            key = clean_api_key(api_key, "api_key")
        else:
            key = clean_api_key(os.environ.get(api_key_env), f"environment variable {api_key_env}")
        self._headers = {name: check_header_value(name, v) for name, v in (headers or {}).items()}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # The one place every message of this scorer is masked: the key and header values.
        self.redactor = Redactor([key, *self._headers.values()])
        # One AsyncClient on the shared loop (made there on first use), and its slots.
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:  # never shows the Authorization header
        return f"HttpScorer(url={self.url!r}, max_pairs_per_request={self.max_pairs_per_request})"

    # -- request/response hooks ------------------------------------------------------------------

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
            # Strings the server sent (keys too) are masked before any message can quote them.
            body = self.redactor.scrub(json.loads(response.content))
        except RecursionError:
            raise ScorerResponseError(
                f"{self.name} answered HTTP {response.status_code} with JSON nested too deeply "
                f"to read; expected {self.expected_body}"
            ) from None
        except ValueError as exc:  # not JSON, not UTF-8, or a number too long to read
            raise ScorerResponseError(
                f"{self.name} answered HTTP {response.status_code} with a body that is not "
                f"JSON ({self.redactor.excerpt(str(exc), 120)}); expected {self.expected_body}"
            ) from None
        return self._scores(body, expected)

    def _scores(self, body: Any, expected: int) -> list[float]:
        if not isinstance(body, dict) or "scores" not in body:
            keys = ""
            if isinstance(body, dict):
                keys = self.redactor.excerpt(str(sorted(map(str, body))))
            raise ScorerResponseError(
                f'{self.name} answered without a "scores" list (got {type(body).__name__}'
                f"{' with keys ' + keys if keys else ''})"
            )
        return check_scores(body["scores"], expected, self.name)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = _retry_after(error.response) if isinstance(error, _Refusal) else None
        if asked is not None:  # never sooner than the server asked; the deadline still caps it
            return asked
        return min(self.backoff * (2 ** (state.attempt_number - 1)), self.max_backoff)

    # -- one request, and one chunk with its retries (on the shared loop) ------------------------

    def _client_here(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        here = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not here:
            client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout, pool=None),
                limits=httpx.Limits(max_connections=self.max_connections),
            )
            self._client, self._client_loop = client, here
            self._slots = asyncio.Semaphore(self.max_connections)
            self._finalizer = weakref.finalize(self, http_loop.close_soon, client, here)
        return self._client, self._slots  # type: ignore[return-value]

    async def _request(self, client: httpx.AsyncClient, chunk: list[list[str]]) -> httpx.Response:
        """POST one chunk and read the whole answer (at most `max_response_bytes`)."""
        async with client.stream("POST", self.url, json=self._payload(chunk)) as response:
            data = bytearray()
            async for part in response.aiter_bytes():
                data += part
                if len(data) > self.max_response_bytes:
                    raise ScorerResponseError(
                        f"{self.name} answered HTTP {response.status_code} with more than "
                        f"{self.max_response_bytes} bytes; refused unread"
                    )
            kept = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            return httpx.Response(
                response.status_code, headers=kept, content=bytes(data), request=response.request
            )

    async def _attempt(self, chunk: list[list[str]], deadline: float) -> list[float]:
        client, slots = self._client_here()
        async with slots:  # waiting for a connection counts against the call, not the request
            left = deadline - time.monotonic()
            if left <= 0:
                raise _OutOfTime
            seconds = min(self.timeout, left)
            try:
                response = await asyncio.wait_for(self._request(client, chunk), seconds)
            except asyncio.TimeoutError:
                raise _AttemptTimeout(seconds, by_call=seconds < self.timeout) from None
        if response.status_code < 400:
            return self._parse(response, len(chunk))
        self._refused(response, len(chunk))
        if response.status_code in RETRY_STATUS:
            raise _Refusal(response)
        raise _Rejected(response)

    def _http_error(
        self, cls: type[ScorerError], response: httpx.Response, attempts: str, later: str
    ) -> ScorerError:
        return cls(
            f"{self.name} answered HTTP {response.status_code} {attempts}{later}: "
            f"{self.redactor.excerpt(response.text)!r}"
        )

    async def _post(self, chunk: list[list[str]], deadline: float) -> list[float]:
        attempts = 0

        def stop(state: RetryCallState) -> bool:
            late = time.monotonic() + (state.upcoming_sleep or 0.0) > deadline
            return state.attempt_number > self.max_retries or late

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            what = error.response.status_code if isinstance(error, _Refusal) else repr(error)
            logger.info(
                self.redactor.mask(
                    f"{self.name}: attempt {state.attempt_number} failed ({what}); retrying "
                    f"in {state.upcoming_sleep:.2f} s"
                )
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=self._wait,
            stop=stop,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await self._attempt(chunk, deadline)
        except _Refusal as refusal:
            response = refusal.response
            asked = _retry_after(response)
            later = ""
            if asked and time.monotonic() + asked > deadline:
                later = f" (it asked to retry after {asked:.0f} s)"
            raise self._http_error(
                ScorerUnavailableError, response, f"after {attempts} attempt(s)", later
            ) from None
        except _Rejected as rejected:
            raise self._http_error(
                ScorerResponseError, rejected.response, f"after {attempts} attempt(s)", ""
            ) from None
        except _AttemptTimeout as timeout:
            which = (
                f"the call's deadline (max_retry_time={self.max_retry_time:g} s)"
                if timeout.by_call
                else f"the request deadline (timeout={self.timeout:g} s)"
            )
            raise ScorerUnavailableError(
                f"{self.name} could not be reached after {attempts} attempt(s): TimeoutError: "
                f"no complete answer within {timeout.seconds:.3g} s, {which}"
            ) from None
        except _OutOfTime:
            raise ScorerUnavailableError(
                f"{self.name} could not be reached after {attempts - 1} attempt(s): the call's "
                f"deadline (max_retry_time={self.max_retry_time:g} s) passed while it waited"
            ) from None
        except httpx.HTTPError as error:
            raise ScorerUnavailableError(
                f"{self.name} could not be reached after {attempts} attempt(s): "
                f"{type(error).__name__}: {error}"
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _score_all(self, pairs: Sequence[Pair], concurrency: int) -> list[float]:
        """Every chunk, at most `concurrency` at a time, within one call deadline. When one
        fails for good the others are cancelled (no retries left running in the background).
        Every error leaves through the redactor."""
        deadline = time.monotonic() + self.max_retry_time
        limit = asyncio.Semaphore(concurrency)
        failed = False

        async def post(chunk: list[list[str]]) -> list[float]:
            nonlocal failed
            async with limit:
                if failed:  # another chunk failed for good: send nothing more
                    raise asyncio.CancelledError
                try:
                    return await self._post(chunk, deadline)
                except BaseException:
                    failed = True
                    raise

        tasks = [asyncio.ensure_future(post(c)) for c in self._chunks(pairs)]
        failure: BaseException | None = None
        try:
            results = await asyncio.gather(*tasks)
        except ScorerError as exc:
            failure = self._redacted(exc)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if failure is not None:
            raise failure  # outside the except block: the unmasked error is not its context
        return [s for chunk_scores in results for s in chunk_scores]

    def _redacted(self, exc: ScorerError) -> ScorerError:
        """`exc` with its message masked; its cause kept only when that shows no secret."""
        message = str(exc)
        masked = self.redactor.mask(message)
        cause = exc.__cause__
        safe_cause = cause is not None and self.redactor.mask(str(cause)) == str(cause)
        if masked == message and (cause is None or safe_cause):
            exc.__context__ = None
            return exc
        try:
            new = type(exc)(masked)
        except Exception:
            new = ScorerError(masked)
        new.__cause__ = cause if safe_cause else None
        new.__suppress_context__ = True
        return new.with_traceback(exc.__traceback__)

    # -- public API ------------------------------------------------------------------------------

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Chunks one after another (in order), on the shared loop; blocks until done."""
        return http_loop.run(self._score_all(list(pairs), 1))

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        """Chunks at most `max_concurrent_requests` at a time, on the shared loop."""
        return await http_loop.arun(self._score_all(list(pairs), self.max_concurrent_requests))

    def close(self) -> None:
        client, owner = self._client, self._client_loop
        self._client = self._client_loop = self._slots = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if client is not None and owner is not None and not owner.is_closed():
            if http_loop.in_loop_thread():
                http_loop.close_soon(client, owner)
            else:
                asyncio.run_coroutine_threadsafe(client.aclose(), owner).result(timeout=10)

    def __getstate__(self) -> Any:  # clients hold sockets; they are rebuilt on use
        state = self.__dict__.copy()
        state.update(_client=None, _client_loop=None, _slots=None, _finalizer=None)
        return state
