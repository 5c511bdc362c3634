"""The app as a Ray Serve deployment on a local Ray (127.0.0.1, 2 replicas): the same scores
as in-process, and a replica killed under load is replaced while every request succeeds
(crossrank's client retries the retryable statuses)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from crossrank import Reranker  # noqa: E402
from crossrank.errors import ConfigError  # noqa: E402
from crossrank.server.ray import app_builder  # noqa: E402

pytestmark = pytest.mark.slow

QUERY = "what is a panda bear?"
DOCS = [f"document {i}: the giant panda {'bamboo ' * (i % 5)}" for i in range(40)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_serve(tiny_model):
    import os

    port = _free_port()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={
            "env_vars": {
                "OMP_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1",
                "CROSSRANK_EXPORT_CACHE": os.environ["CROSSRANK_EXPORT_CACHE"],
            }
        },
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = app_builder({"model": tiny_model, "num_replicas": "2", "num_cpus": "0.5"})
        serve.run(app, name="crossrank", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_same_scores_as_in_process(ray_serve, tiny_model):
    expected = Reranker(model=tiny_model).rerank(QUERY, DOCS)
    for scorer in (f"{ray_serve}/score", f"tei+{ray_serve}", f"cohere+{ray_serve}/v2/rerank"):
        got = Reranker(scorer=scorer).rerank(QUERY, DOCS)
        assert [r.index for r in got] == [r.index for r in expected]
        assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)


def _replicas() -> list[str]:
    from ray.util import list_named_actors

    return [
        a["name"]
        for a in list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::crossrank")
    ]


def test_a_replica_killed_under_load_is_replaced_and_nothing_is_lost(ray_serve, tiny_model):
    expected = [r.score for r in Reranker(model=tiny_model).rerank(QUERY, DOCS)]
    before = _replicas()
    assert len(before) == 2
    client = Reranker(scorer=f"{ray_serve}/score")
    failures: list[BaseException] = []
    done = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                got = [r.score for r in client.rerank(QUERY, DOCS)]
                assert got == pytest.approx(expected, abs=1e-6)
                done.append(1)
            except BaseException as exc:  # every call must succeed, retries included
                failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    while len(done) < 10:
        time.sleep(0.05)
    ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    killed_at = len(done)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = _replicas()
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the killed replica was not replaced: {_replicas()}")
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    assert len(done) > killed_at


def test_builder_refuses_unknown_and_ray_owned_arguments(tiny_model):
    with pytest.raises(ConfigError, match="unknown argument"):
        app_builder({"model": tiny_model, "replicas": 2})
    with pytest.raises(ConfigError, match="Ray Serve's"):
        app_builder({"model": tiny_model, "port": 9000})
