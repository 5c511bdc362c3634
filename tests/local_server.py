"""A real scorer endpoint for tests: stdlib `ThreadingHTTPServer` on 127.0.0.1, port 0.

`ScorerServer(behaviour)` runs in a daemon thread inside a `with` block and is always shut
down on exit. Every request is recorded (headers, parsed body, arrival time). `behaviour`
decides each answer from the request number and the request; the default scores each pair
with `hash_score`, the same function tests use as a callable scorer to know the right answer.
Delays wait on an event that shutdown sets, so a slow answer never holds up the test run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def hash_score(text: str) -> float:
    """A deterministic score in [0, 1) for any text (unicode, surrogates and all)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:6], "big") / 2**48


def hash_scorer(pairs: list[tuple[str, str]]) -> list[float]:
    return [hash_score(text) for _, text in pairs]


@dataclass
class Request:
    number: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes when it is not JSON
    arrived: float

    @property
    def pairs(self) -> list[list[str]]:
        return self.body["pairs"]


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = None  # bytes/str sent as is; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def scores_reply(request: Request) -> Reply:
    return Reply(body={"scores": [hash_score(text) for _, text in request.pairs]})


class ScorerServer:
    def __init__(self, behaviour: Callable[[Request], Reply] = scores_reply) -> None:
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                with server._lock:
                    request = Request(
                        len(server.requests), dict(self.headers.items()), body, time.monotonic()
                    )
                    server.requests.append(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.behaviour(request)
                    if reply.delay:
                        server._stop.wait(reply.delay)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                payload = reply.body
                if isinstance(payload, str):
                    payload = payload.encode("utf-8")
                elif not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/rerank"

    def __enter__(self) -> ScorerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def scripted(*replies: Reply, then: Callable[[Request], Reply] = scores_reply):
    """Answer the first requests with `replies` in turn, the rest with `then`."""

    def behaviour(request: Request) -> Reply:
        if request.number < len(replies):
            return replies[request.number]
        return then(request)

    return behaviour


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connecting to it is refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DripServer:
    """A hostile endpoint on 127.0.0.1 that answers one byte every `every` seconds.

    `phase="body"` sends the status line and headers at once, then drips a body that never
    ends (a huge Content-Length); `phase="headers"` drips the header block itself. Each
    connection drips for at most `for_at_most` seconds (a bounded loop), then closes; exit
    stops every connection at once.
    """

    def __init__(self, phase: str = "body", every: float = 0.1, for_at_most: float = 20.0):
        self.phase = phase
        self.every = every
        self.for_at_most = for_at_most
        self.connections = 0
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.connections += 1
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                if server.phase == "body":
                    self.wfile.write(head + b"Content-Length: 100000000\r\n\r\n")
                    drip = b'{"scores": [' + b" " * 10**6
                else:
                    drip = head + b"X-Slow: " + b"a" * 10**6
                ends = time.monotonic() + server.for_at_most
                try:
                    for byte in drip:
                        if server._stop.wait(server.every) or time.monotonic() > ends:
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client gave up: what the test wants
                    pass
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/rerank"

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
