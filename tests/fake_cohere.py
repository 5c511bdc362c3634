"""A fake of Cohere's hosted rerank API (v2) on 127.0.0.1, as strict as its reference.

    POST /v2/rerank   Authorization: Bearer <key>   Content-Type: application/json
        {"model", "query", "documents": [str, ...], "top_n"?, "max_tokens_per_doc"?, "priority"?}
    ->  200 {"id", "results": [{"index", "relevance_score"}, ...] best first, cut at top_n,
             "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": n}}}
    ->  401 {"id", "message": "invalid api token"} for a missing or wrong key
    ->  400 {"id", "message": ...} for any other field, a missing field, an unknown model,
             or a value of the wrong type; 404 for any other path

`relevance_score` is `cohere_score(query, document)`, so a test knows the right ranking.
Every request is recorded in `requests` (path, headers, body), so a test can count them.
`echo_credentials` makes a refusal quote the Authorization header it got (as some proxies
do), to prove the client masks what a server echoes. `faults` are (status, body) answered,
in order, before the normal answers.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COHERE_MODELS = {
    "rerank-english-v3.0",
    "rerank-multilingual-v3.0",
    "rerank-v3.5",
    "rerank-v4.0-pro",
    "rerank-v4.0-fast",
}
FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}


def cohere_score(query: str, document: str) -> float:
    """A relevance score in (0, 1): the share of query words the document holds, with a small
    length tie-breaker."""
    words = query.lower().split()
    hits = sum(1 for w in words if w in document.lower())
    return (hits + 1 / (2 + len(document))) / (len(words) + 1)


class CohereApiServer:
    def __init__(self, api_key: str, *, echo_credentials: bool = False) -> None:
        self.api_key = api_key
        self.echo_credentials = echo_credentials
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.faults: list[tuple[int, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                status, answer = server.answer(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CohereApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def bodies(self) -> list[Any]:
        return [body for _, _, body in self.requests]

    def answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((path, headers, body))
            if self.faults:
                return self.faults.pop(0)
        request_id = str(uuid.uuid4())

        def error(status: int, message: str) -> tuple[int, Any]:
            return status, {"id": request_id, "message": message}

        if path != "/v2/rerank":
            return error(404, f"{path} not found")
        given = {k.lower(): v for k, v in headers.items()}
        if given.get("authorization") != f"Bearer {self.api_key}":
            echo = f" (got {given.get('authorization')!r})" if self.echo_credentials else ""
            return error(401, f"invalid api token{echo}")
        if not given.get("content-type", "").startswith("application/json"):
            return error(400, "content-type must be application/json")
        if not isinstance(body, dict):
            return error(400, "invalid request: body must be a JSON object")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return error(400, f"invalid request: unknown field(s) {unknown}")
        missing = sorted({"model", "query", "documents"} - set(body))
        if missing:
            return error(400, f"invalid request: {missing} required")
        if body["model"] not in COHERE_MODELS:
            return error(404, f"model '{body['model']}' not found")
        docs = body["documents"]
        if not isinstance(body["query"], str) or not body["query"]:
            return error(400, "invalid request: query must be a non-empty string")
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            return error(400, "invalid request: documents must be a non-empty list of strings")
        for name in ("top_n", "max_tokens_per_doc"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or value < 1):
                return error(400, f"invalid request: {name} must be a positive integer")
        results = [
            {"index": i, "relevance_score": cohere_score(body["query"], d)}
            for i, d in enumerate(docs)
        ]
        results.sort(key=lambda r: -r["relevance_score"])
        top_n = body.get("top_n") or len(results)
        return 200, {
            "id": request_id,
            "results": results[:top_n],
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": math.ceil(len(docs) / 100)},
            },
        }
