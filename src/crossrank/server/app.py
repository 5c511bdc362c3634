"""`build_app(engine, server) -> ASGI app`: the rerank service over one engine (Starlette).

Routes: `POST /score`, `/v1/rerank`, `/v2/rerank`, `/rerank` (see `protocols.py`),
`GET /health`, `/info`, `/metrics`. One scoring request goes:

    key? -> draining / loading? (503) -> body <= max_request_bytes (413) -> JSON (400)
    -> protocol model (422, field and item named) -> pairs <= max_client_batch_size (413)
    -> a place among max_concurrent_requests (429 + Retry-After)
    -> Engine call in the pool, within request_timeout of arrival (504) -> the API's answer

Every answer that is not a success is JSON: `{"error", "error_type", "message"}` (TEI's
`error`/`error_type`, and `message` as Cohere's clients read it). Nothing of a request's text
is logged or counted. The model loads in the background after start; `/health` says 200
only once it has loaded and scored a pair end to end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossrank import jsonio
from crossrank.config import EngineSettings, RerankConfig
from crossrank.credentials import clean_api_key
from crossrank.errors import ConfigError
from crossrank.reranker import Reranker
from crossrank.server import limits, protocols
from crossrank.server.engine import Engine, describe_failure
from crossrank.server.metrics import Metrics
from crossrank.server.protocols import BadRequest
from crossrank.server.settings import ServerSettings

logger = logging.getLogger("crossrank.server")


def _error(status: int, message: str, error_type: str, headers: dict[str, str] | None = None):
    body = {"error": message, "error_type": error_type, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


class RerankServer:
    """What one app holds: settings, the engine, its limits, metrics and readiness."""

    def __init__(
        self,
        engine: EngineSettings | RerankConfig | Reranker,
        settings: ServerSettings,
        api_key: str | None = None,
    ) -> None:
        self.settings = settings
        if api_key is None and settings.api_key_env is not None:
            api_key = os.environ.get(settings.api_key_env)
            if not api_key:
                raise ConfigError(
                    f"api_key_env names {settings.api_key_env}, which is not set or empty; "
                    "set it to the key clients must send, or leave api_key_env unset"
                )
        key = clean_api_key(api_key, "the server's API key") if api_key else None
        self._key = key.encode("utf-8") if key else None
        self.engine = Engine(engine, threads=settings.max_concurrent_requests)
        self.gate = limits.Gate(settings.max_concurrent_requests)
        self.metrics = Metrics(lambda: self.gate.in_flight)
        self.state = "loading"  # loading -> ready | failed; ready -> draining
        self._ready = threading.Event()
        self._info: dict[str, Any] | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and check it end to end; blocking (run in a thread)."""
        try:
            self.engine.self_check()
            self._info = self.engine.info()
        except Exception as exc:  # reported on /health and in the log, without any text
            logger.error("the model failed to load or to pass its self-check: %r", exc)
            self.state = "failed"
        else:
            if self.state == "loading":
                self.state = "ready"
            logger.info("crossrank server ready")
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout) and self.state == "ready"

    def begin_drain(self) -> None:
        """New requests get 503 from now on; the ones in flight finish."""
        self.state = "draining"

    def wait_idle(self, timeout: float) -> bool:
        return self.gate.wait_idle(timeout)

    # -- plumbing --------------------------------------------------------------------------------

    def _unavailable(self) -> Response | None:
        if self.state == "ready":
            return None
        retry = {"Retry-After": str(self.settings.retry_after)}
        if self.state == "draining":
            return _error(503, "the server is shutting down", "Unhealthy", retry)
        if self.state == "loading":
            return _error(503, "the model is loading", "Unhealthy", retry)
        return _error(503, "the model failed to load; see the server's log", "Unhealthy")

    def _unauthorized(self, request: Request) -> Response | None:
        if limits.authorized(request, self._key):
            return None
        return _error(
            401,
            "missing or wrong API key: send Authorization: Bearer <key>",
            "Unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )

    def _count(self, endpoint: str, status: int, started: float) -> None:
        self.metrics.requests.labels(endpoint, str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _score(
        self,
        request: Request,
        endpoint: str,
        prepare: Callable[[Any], tuple[int, Callable[[], Any], Callable[[Any], Any]]],
    ) -> Response:
        """The common path of every scoring route; `prepare(body)` parses the API's request
        and returns (pairs, the engine call, the answer from its result)."""
        started = time.perf_counter()
        response = await self._score_response(request, prepare, started)
        self._count(endpoint, response.status_code, started)
        return response

    async def _score_response(
        self,
        request: Request,
        prepare: Callable[[Any], tuple[int, Callable[[], Any], Callable[[Any], Any]]],
        started: float,
    ) -> Response:
        settings = self.settings
        refusal = self._unauthorized(request) or self._unavailable()
        if refusal is not None:
            return refusal
        try:
            raw = await limits.read_body(request, settings.max_request_bytes)
            try:
                body = jsonio.loads(raw, "body")
            except jsonio.JsonInputError as exc:
                raise BadRequest(400, str(exc)) from None
            size, call, answer = prepare(body)
            limits.check_batch_size(size, settings.max_client_batch_size)
        except BadRequest as exc:
            return _error(exc.status, exc.message, exc.error_type)
        if not self.gate.enter():
            return _error(
                429,
                "Model is overloaded: "
                f"{settings.max_concurrent_requests} requests are being scored; retry later",
                "Overloaded",
                {"Retry-After": str(settings.retry_after)},
            )
        try:
            future = self.engine.submit(call)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self.gate.leave()
            return _error(503, "the server is shutting down", "Unhealthy")
        # The place is given back when the work ends, not when the answer is sent.
        future.add_done_callback(lambda _: self.gate.leave())
        left = settings.request_timeout - (time.perf_counter() - started)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), max(left, 0.001))
        except asyncio.TimeoutError:
            return _error(
                504,
                f"the request was not scored within request_timeout "
                f"({settings.request_timeout:g} s)",
                "Backend",
            )
        except BadRequest as exc:
            return _error(exc.status, exc.message, exc.error_type)
        except Exception as exc:
            status, message, kind = describe_failure(exc)
            logger.error("scoring failed: %s", type(exc).__name__)  # no message: it may quote
            return _error(status, message, kind)
        self.metrics.pairs.inc(size)
        self.metrics.batch.observe(size)
        return JSONResponse(answer(result))

    # -- the APIs --------------------------------------------------------------------------------

    def _prepare_score(self, body: Any):
        req = protocols.parse(protocols.ScoreRequest, body)
        return len(req.pairs), lambda: self.engine.score(req.pairs), protocols.score_answer

    def _prepare_cohere(self, version: str):
        def prepare(body: Any):
            req = protocols.parse(protocols.CohereRequest, body)
            return (
                len(req.documents),
                lambda: self.engine.rank(req.query, req.documents, "documents"),
                lambda ranked: protocols.cohere_answer(req, ranked, version),
            )

        return prepare

    def _prepare_tei(self, body: Any):
        req = protocols.parse(protocols.TeiRequest, body)
        return (
            len(req.texts),
            lambda: self.engine.rank(req.query, req.texts, "texts", raw=req.raw_scores),
            lambda ranked: protocols.tei_answer(req, ranked),
        )

    def _prepare_rerank(self, body: Any):
        if protocols.rerank_kind(body) == "tei":
            return self._prepare_tei(body)
        return self._prepare_cohere("1")(body)

    async def score(self, request: Request) -> Response:
        return await self._score(request, "/score", self._prepare_score)

    async def v1_rerank(self, request: Request) -> Response:
        return await self._score(request, "/v1/rerank", self._prepare_cohere("1"))

    async def v2_rerank(self, request: Request) -> Response:
        return await self._score(request, "/v2/rerank", self._prepare_cohere("2"))

    async def rerank(self, request: Request) -> Response:
        return await self._score(request, "/rerank", self._prepare_rerank)

    async def health(self, request: Request) -> Response:
        started = time.perf_counter()
        ready = self.state == "ready"
        response = JSONResponse({"status": self.state}, status_code=200 if ready else 503)
        self._count("/health", response.status_code, started)
        return response

    async def info(self, request: Request) -> Response:
        started = time.perf_counter()
        response = self._unauthorized(request) or self._unavailable()
        if response is None:
            s = self.settings
            limits_info = {
                "max_client_batch_size": s.max_client_batch_size,
                "max_concurrent_requests": s.max_concurrent_requests,
                "max_request_bytes": s.max_request_bytes,
                "request_timeout": s.request_timeout,
            }
            response = JSONResponse({**(self._info or {}), "limits": limits_info})
        self._count("/info", response.status_code, started)
        return response

    async def metrics_route(self, request: Request) -> Response:
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        return Response(self.metrics.render(), media_type=self.metrics.content_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), "Validation", getattr(exc, "headers", None))


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error: %s", type(exc).__name__)
    return _error(500, "internal error", "Backend")


def build_app(
    engine: EngineSettings | RerankConfig | Reranker | None = None,
    settings: ServerSettings | None = None,
    *,
    api_key: str | None = None,
) -> Starlette:
    """The rerank service over `engine` (engine settings, a config or a `Reranker`; default
    `EngineSettings()`), with the server's `settings`. `api_key` (else the variable
    `settings.api_key_env` names) is required on every route but `/health` when given.

    The model loads in a background thread when the app starts (ASGI lifespan), or at once
    with `app.state.server.load()`; `app.state.server` is the `RerankServer`.
    """
    settings = settings or ServerSettings()
    server = RerankServer(engine if engine is not None else EngineSettings(), settings, api_key)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if server.state == "loading" and not server._ready.is_set():
            threading.Thread(target=server.load, name="crossrank-load", daemon=True).start()
        try:
            yield
        finally:
            server.engine.close()

    routes = [
        Route("/score", server.score, methods=["POST"]),
        Route("/v1/rerank", server.v1_rerank, methods=["POST"]),
        Route("/v2/rerank", server.v2_rerank, methods=["POST"]),
        Route("/rerank", server.rerank, methods=["POST"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/info", server.info, methods=["GET"]),
        Route("/metrics", server.metrics_route, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.server = server
    return app
