"""Small real HTTP servers on 127.0.0.1 that speak the serving engines' rerank protocols.

`EngineServer(protocol)` starts a stdlib `ThreadingHTTPServer` on a free loopback port in a
thread and answers like the engine would:

- "pairs":  POST any path  {"pairs": [[q, t], ...]}  ->  {"scores": [...]}
- "tei":    POST /rerank   {"query", "texts", "truncate", "raw_scores"}  ->  [{"index", "score"}]
            sorted best first; more texts than `max_batch` -> HTTP 413 with TEI's message
- "cohere": POST /rerank or /v1/rerank  {"model", "query", "documents", "top_n", ...}
            -> {"results": [{"index", "relevance_score"}]} best first, cut at top_n

Scores come from `known_score(query, text)`, so a test can compute what to expect. `faults`
is a list of (status, body, headers) answered, in order, before the normal answers; every
request is recorded in `requests` as (path, body, headers); `most_in_flight` is the most
requests the server was answering at once.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def known_score(query: str, text: str) -> float:
    """How many of the query's words the text holds, plus a small length tie-breaker."""
    words = query.lower().split()
    return float(sum(text.lower().count(w) for w in words)) + len(text) / 1000.0


class EngineServer:
    def __init__(
        self,
        protocol: str,
        *,
        max_batch: int = 1000,
        api_key: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.protocol = protocol
        self.delay = delay  # seconds each answer takes, to see how many overlap
        self.in_flight = 0
        self.most_in_flight = 0
        self.max_batch = max_batch
        self.api_key = api_key
        self.faults: list[tuple[int, Any, dict[str, str]]] = []
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                with server._lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    status, answer, headers = server.answer(self.path, body, dict(self.headers))
                finally:
                    with server._lock:
                        server.in_flight -= 1
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EngineServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def answer(
        self, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((path, body, headers))
            if self.faults:
                return self.faults.pop(0)
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "unauthorized"}, {}
        if self.protocol == "pairs":
            return 200, {"scores": [known_score(q, t) for q, t in body["pairs"]]}, {}
        if self.protocol == "tei":
            if path != "/rerank":
                return 404, {"error": "not found"}, {}
            texts = body["texts"]
            if len(texts) > self.max_batch:
                message = f"batch size {len(texts)} > maximum allowed batch size {self.max_batch}"
                return 413, {"error": message, "error_type": "Validation"}, {}
            items = [
                {"index": i, "score": known_score(body["query"], t)} for i, t in enumerate(texts)
            ]
            return 200, sorted(items, key=lambda r: -r["score"]), {}
        if self.protocol == "cohere":
            if path not in ("/rerank", "/v1/rerank"):
                return 404, {"detail": "Not Found"}, {}
            docs = body["documents"]
            items = [
                {"index": i, "relevance_score": known_score(body["query"], d)}
                for i, d in enumerate(docs)
            ]
            items.sort(key=lambda r: -r["relevance_score"])
            return 200, {"results": items[: body.get("top_n") or len(items)]}, {}
        raise AssertionError(self.protocol)

    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.requests]
