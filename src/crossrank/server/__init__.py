"""`crossrank serve`: the rerank service (see docs/serving.md).

`build_app(engine_settings, server_settings)` is the ASGI app (Starlette); `serve` runs it on
uvicorn with a draining shutdown; `crossrank.server.ray` wraps the same app for Ray Serve.
The web dependencies are the `crossrank[serve]` extra. `ServerSettings` needs none of them
(the `crossrank` command derives `serve`'s flags from it), so `build_app` is imported only
when asked for.
"""

from typing import Any

from crossrank.server.settings import ServerSettings

__all__ = ["ServerSettings", "build_app"]


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from crossrank.server.app import build_app

        return build_app
    raise AttributeError(f"module 'crossrank.server' has no attribute {name!r}")
