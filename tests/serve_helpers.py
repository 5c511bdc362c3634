"""A real `crossrank serve` app on uvicorn, in a thread, on 127.0.0.1 and a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from crossrank.server import ServerSettings, build_app


@contextmanager
def running_server(engine, settings: ServerSettings | None = None, **app_options) -> Iterator:
    """Yields (base URL, app) once the model is loaded; always stopped on exit."""
    settings = settings or ServerSettings(port=0)
    app = build_app(engine, settings, **app_options)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        assert app.state.server.wait_ready(120), app.state.server.state
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
