"""Faults around a serving request: a client that goes away, a request past its deadline,
SIGTERM under load. None of them disturbs the requests beside it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_helpers import running_server

from crossrank import Reranker
from crossrank.config import EngineSettings
from crossrank.server import ServerSettings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [f"document number {i} about {w}" for i, w in enumerate("abcdefghijklmnop")]


def test_a_client_that_disconnects_does_not_disturb_its_batch(tiny_model):
    # a long micro-batch wait: every request below joins the same shared round
    engine = EngineSettings(model=tiny_model, microbatch_wait_ms=300)
    expected = {r.index: r.score for r in Reranker(model=tiny_model).rerank("q", DOCS)}
    with running_server(engine) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        body = b'{"query": "q", "texts": ["document number 0 about a"]}'

        def leave_early():
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.05)  # gone before the round is scored

        def ask(_):
            return httpx.post(f"{url}/rerank", json={"query": "q", "texts": DOCS}, timeout=30)

        scorer = app.state.server.engine.reranker.scorer
        passes = scorer.forward_calls
        with ThreadPoolExecutor(8) as pool:
            pool.submit(leave_early)
            pool.submit(leave_early)
            answers = list(pool.map(ask, range(6)))
        for answer in answers:
            assert answer.status_code == 200
            got = {a["index"]: a["score"] for a in answer.json()}
            assert got == pytest.approx(expected, abs=1e-6)
        # 6 x 16 pairs in 32-pair passes: 3 passes when the requests shared a round, 6 if not
        assert scorer.forward_calls - passes <= 4
        assert app.state.server.wait_idle(10)  # the abandoned requests' places were given back
        assert httpx.get(f"{url}/health").status_code == 200


def test_a_request_past_its_deadline_gets_504_and_the_others_their_scores():
    release = threading.Event()

    def scorer(pairs):
        if any("slow" in text for _, text in pairs):
            release.wait(10)
        return [float(len(text)) for _, text in pairs]

    settings = ServerSettings(request_timeout=0.5)
    with running_server(EngineSettings(scorer=scorer), settings) as (url, app):
        with ThreadPoolExecutor(6) as pool:
            slow = pool.submit(httpx.post, f"{url}/score", json={"pairs": [["q", "slow one"]]})
            fast = [
                pool.submit(httpx.post, f"{url}/score", json={"pairs": [["q", "x" * n]]})
                for n in range(1, 6)
            ]
            assert slow.result().status_code == 504
            assert "request_timeout" in slow.result().json()["error"]
            for n, answer in enumerate(fast, start=1):
                assert answer.result().json() == {"scores": [float(n)]}
        assert app.state.server.gate.in_flight == 1  # the slow work still holds its place
        release.set()
        assert app.state.server.wait_idle(5)
        assert httpx.post(f"{url}/score", json={"pairs": [["q", "ab"]]}).json() == {"scores": [2.0]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_under_load_finishes_what_it_accepted(tiny_model):
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossrank.server",
            "--model",
            tiny_model,
            "--port",
            str(port),
            "--shutdown-timeout",
            "20",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)
        texts = [f"{d} " * 20 for d in DOCS] * 4  # 64 longer documents: each call takes a while
        expected = sorted(r.score for r in Reranker(model=tiny_model).rerank("q", texts))
        outcomes: list[str] = []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:  # a new connection each time (no keep-alive race at close)
                    answer = httpx.post(
                        f"{url}/rerank", json={"query": "q", "texts": texts}, timeout=60
                    )
                except httpx.ConnectError:
                    outcomes.append("refused")  # never accepted: the socket is closed
                    time.sleep(0.05)
                    continue
                except httpx.TransportError as exc:  # accepted, then lost: must not happen
                    outcomes.append(f"lost {exc!r}")
                    continue
                if answer.status_code == 200:
                    scores = sorted(a["score"] for a in answer.json())
                    assert scores == pytest.approx(expected, abs=1e-6)
                    outcomes.append("ok")
                else:
                    outcomes.append(str(answer.status_code))
                    time.sleep(0.05)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        while outcomes.count("ok") < 8:
            time.sleep(0.05)
        sent_term = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        exited_after = time.monotonic() - sent_term
        stop.set()
        for thread in threads:
            thread.join(60)
        assert code == 0, process.stderr.read()[-2000:]
        assert exited_after < 20
        assert not [o for o in outcomes if o.startswith("lost")], outcomes
        assert set(outcomes) <= {"ok", "503", "refused"}, outcomes
        assert outcomes.count("ok") >= 8
        log = process.stderr.read()
        assert "draining" in log
        assert not re.search(r"document number", log)  # no text in the log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_model_that_cannot_load_stops_the_server(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossrank.server",
            "--model",
            str(tmp_path / "nothing"),
            "--port",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 5
    assert "failed to load" in done.stderr
