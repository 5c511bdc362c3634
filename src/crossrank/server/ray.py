"""The same app as a Ray Serve deployment, for more than one machine.

    serve run crossrank.server.ray:app_builder model=BAAI/bge-reranker-v2-m3 num_replicas=4
    serve run crossrank.server.ray:app_builder stage=stage.json min_replicas=1 max_replicas=8

or from Python: `serve.run(app_builder({"model": ..., "num_replicas": 2}))`.

Each replica builds the app of `build_app` (the routes, limits, key check and metrics of
`crossrank serve`) and loads its model before Ray routes a request to it; Ray's health check
asks the replica's own readiness. Requests within a replica are batched by crossrank's
micro-batcher (concurrent requests share forward passes), not `@serve.batch`: it merges
requests of any API and size into token-budget batches, which `@serve.batch` (a fixed count
of calls) cannot. Ray replaces a replica that dies; a request it was serving fails with a 5xx
that crossrank's clients retry.

`args` (strings from `serve run`, or values from Python) are split by name: the engine's
settings (`EngineSettings` fields, or `stage` for a stage file), the server's (`ServerSettings`
fields; host and port are Ray's), and the deployment's: `num_replicas`, `min_replicas`,
`max_replicas`, `target_ongoing_requests` (autoscaling when min or max is given),
`num_cpus`, `num_gpus` (per replica). Ray sends a replica at most `max_concurrent_requests`
requests at once and queues the rest itself.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from crossrank.config import EngineSettings
from crossrank.errors import ConfigError
from crossrank.server.app import build_app
from crossrank.server.settings import ServerSettings

DEPLOYMENT_ARGS = (
    "num_replicas",
    "min_replicas",
    "max_replicas",
    "target_ongoing_requests",
    "num_cpus",
    "num_gpus",
)


@serve.ingress()
class CrossrankDeployment:
    """One replica: the crossrank app over one loaded model."""

    def __init__(self, engine: dict[str, Any], server: dict[str, Any], stage: Any = None) -> None:
        if stage is not None:
            from crossrank.reranker import Reranker

            source: Any = Reranker.from_stage(stage)
        else:
            source = EngineSettings(**engine)
        self._crossrank_app = build_app(source, ServerSettings(**server))
        self._crossrank = self._crossrank_app.state.server
        self._crossrank.load()  # Ray routes requests only once the constructor returns
        if self._crossrank.state != "ready":
            raise RuntimeError("the model failed to load or to pass its self-check")

    def __serve_build_asgi_app__(self) -> Any:
        return self._crossrank_app

    def check_health(self) -> None:
        if self._crossrank.state not in ("ready", "draining"):
            raise RuntimeError(f"replica is {self._crossrank.state}")


def app_builder(args: dict[str, Any]) -> Any:
    """The Ray Serve application for `args` (see the module docstring)."""
    args = dict(args)
    stage = args.pop("stage", None)
    deployment = {k: args.pop(k) for k in DEPLOYMENT_ARGS if k in args}
    server = {k: args.pop(k) for k in list(args) if k in ServerSettings.model_fields}
    for name in ("host", "port"):
        if name in server:
            raise ConfigError(f"{name} is Ray Serve's (serve start --http-host/--http-port)")
    engine = {k: args.pop(k) for k in list(args) if k in EngineSettings.model_fields}
    if args:
        known = sorted(
            [*EngineSettings.model_fields, *ServerSettings.model_fields, *DEPLOYMENT_ARGS, "stage"]
        )
        raise ConfigError(f"unknown argument(s) {sorted(args)}; known: {', '.join(known)}")
    if stage is not None and engine:
        raise ConfigError("give either stage or engine settings, not both")
    settings = ServerSettings(**server)  # checked here, before any replica starts
    if stage is not None:
        from pathlib import Path

        from crossrank.reranker import Reranker

        if isinstance(stage, str) and not stage.lstrip().startswith("{"):
            stage = Path(stage).read_text(encoding="utf-8")  # replicas may not see the file
        Reranker.from_stage(stage)  # a bad stage fails here, not in every replica
    else:
        EngineSettings(**engine)
    options: dict[str, Any] = {"max_ongoing_requests": settings.max_concurrent_requests}
    actor: dict[str, Any] = {}
    for name in ("num_cpus", "num_gpus"):
        if name in deployment:
            actor[name] = float(deployment.pop(name))
    if actor:
        options["ray_actor_options"] = actor
    if "min_replicas" in deployment or "max_replicas" in deployment:
        options["autoscaling_config"] = {
            "min_replicas": int(deployment.pop("min_replicas", 1)),
            "max_replicas": int(deployment.pop("max_replicas", 1)),
            "target_ongoing_requests": float(deployment.pop("target_ongoing_requests", 8)),
        }
    if "num_replicas" in deployment:
        options["num_replicas"] = int(deployment.pop("num_replicas"))
    if deployment:  # target_ongoing_requests alone
        raise ConfigError("target_ongoing_requests needs min_replicas or max_replicas")
    return (
        serve.deployment(CrossrankDeployment, name="crossrank")
        .options(**options)
        .bind(engine, server, stage)
    )
