"""The server's limits and its key check, in the words the peers' clients understand.

- pairs per request (`max_client_batch_size`): HTTP 413 with text-embeddings-inference's
  message, `batch size N > maximum allowed batch size M`, which crossrank's own `tei+`
  client (`scorers/tei.py`) reads to split its requests and score again;
- requests at once (`max_concurrent_requests`): HTTP 429 with `Retry-After`, TEI's
  "Model is overloaded", which every crossrank HTTP client retries after the wait asked;
- request body bytes (`max_request_bytes`): HTTP 413 before the body is read past the limit;
- the API key: `Authorization: Bearer <key>`, compared with `hmac.compare_digest` (constant
  time), on every route but `/health`.
"""

from __future__ import annotations

import hmac
import threading

from starlette.requests import Request

from crossrank.server.protocols import BadRequest


def check_batch_size(size: int, limit: int) -> None:
    if size > limit:
        # TEI's words exactly: crossrank's tei+ client (and TEI's own users) parse them.
        raise BadRequest(413, f"batch size {size} > maximum allowed batch size {limit}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, "Content-Length is not a number of bytes")
        # a 5000-digit length would not even convert to int (Python's 4300-digit limit)
        if len(declared) > len(str(limit)) or int(declared) > limit:
            raise BadRequest(413, f"request body of {declared} bytes > limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(413, f"request body > limit of {limit} bytes")
    return bytes(body)


class Gate:
    """Counts the requests being scored; one past `limit` is refused (429), not queued.

    A request holds its place until its work has finished, even when its client has gone or
    its deadline has passed, so the limit bounds the work in the pool, not only the waiting.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight, False when `timeout` passed first."""
        with self._lock:
            return self._idle.wait_for(lambda: self.in_flight == 0, timeout)


def authorized(request: Request, key: bytes | None) -> bool:
    """Whether the request carries the key (always, when the server has none)."""
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    # compare_digest: the time taken does not tell how much of a guess was right.
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), key)
