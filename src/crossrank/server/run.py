"""Running the app on uvicorn, with a shutdown that loses nothing accepted.

uvicorn's own SIGTERM handling closes the listening socket at once, so a request arriving
while the others finish gets a refused connection. Here the first SIGTERM (or SIGINT) instead:

1. makes the app answer 503 + Retry-After to every new request (and `/health` 503, so a load
   balancer stops sending), while the requests in flight go on;
2. waits until none is in flight, or `shutdown_timeout` has passed;
3. then lets uvicorn stop (its graceful shutdown gets what is left of the deadline).

A second signal stops at once, as uvicorn does. A model that fails to load or to pass its
self-check stops the server too (`serve` returns False), rather than leaving a process that
answers 503 forever.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from crossrank.server.settings import ServerSettings

logger = logging.getLogger("crossrank.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette, settings: ServerSettings) -> None:
        super().__init__(config)
        self._rerank = app.state.server
        self._settings = settings
        self._draining = False
        self.load_failed = False
        threading.Thread(target=self._watch_load, name="crossrank-load-watch", daemon=True).start()

    def _watch_load(self) -> None:
        self._rerank.wait_ready()
        if self._rerank.state == "failed":
            self.load_failed = True
            self.should_exit = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._draining:  # the second signal: stop now
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._rerank.begin_drain()
        threading.Thread(target=self._drain, name="crossrank-drain", daemon=True).start()

    def _drain(self) -> None:
        deadline = time.monotonic() + self._settings.shutdown_timeout
        logger.info("draining: new requests get 503; waiting for those in flight")
        if not self._rerank.wait_idle(self._settings.shutdown_timeout):
            logger.warning("shutdown_timeout passed with requests still in flight")
        self.config.timeout_graceful_shutdown = max(1, int(deadline - time.monotonic()))
        self.should_exit = True


def serve(app: Starlette, settings: ServerSettings, log_level: str = "info") -> bool:
    """Serve `app` on `settings.host:port` until SIGTERM / SIGINT (blocking); False when the
    model failed to load."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # headers only; uvicorn's access log has the path and status, never a body
        timeout_graceful_shutdown=int(settings.shutdown_timeout) + 1,
        lifespan="on",
    )
    server = DrainingServer(config, app, settings)
    server.run()
    return not server.load_failed
