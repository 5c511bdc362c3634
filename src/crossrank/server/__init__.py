"""`crossrank serve`: the rerank service (see docs/serving.md).

`build_app(engine_settings, server_settings)` is the ASGI app (Starlette); `serve` runs it on
uvicorn with a draining shutdown; `crossrank.server.ray` wraps the same app for Ray Serve.
The web dependencies are the `crossrank[serve]` extra, imported only here.
"""

from crossrank.server.app import build_app
from crossrank.server.settings import ServerSettings

__all__ = ["ServerSettings", "build_app"]
