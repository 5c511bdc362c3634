"""Bounded load benchmark of `crossrank serve` (127.0.0.1 only). Not a test.

    .venv/bin/python benchmarks/load_serve.py                       # the MiniLM fixture, 30 s
    .venv/bin/python benchmarks/load_serve.py --model <folder> --seconds 10 --clients 1 8

Starts `python -m crossrank.server` on 127.0.0.1 serving `--model` (default: the trained
MiniLM fixture in ../shared, else a tiny model built on the spot), then for each client count
runs that many concurrent clients (threads, one keep-alive connection each), each sending
TEI-style `/rerank` requests of `--candidates` documents back to back for `--seconds`.
Reports per client count: requests/s, pairs/s, p50 / p99 latency, errors, 429s, and the
server's peak resident memory; and the baseline: the same calls in-process, one after another,
for the same time (`Reranker.rerank`). Bounded: a fixed duration, every request with a
timeout, the server stopped at the end. Results go to `benchmarks/results/serve_load.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from crossrank import Reranker
from crossrank.testing import build_tiny_cross_encoder

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "models" / "minilm-l6-scifact-ce"
WORDS = [
    "cross",
    "encoder",
    "rerank",
    "query",
    "passage",
    "retrieval",
    "token",
    "attention",
    "model",
    "score",
]


def request_body(n: int, seed: int) -> dict:
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(20, 80))) for _ in range(n)]
    return {"query": "which passage explains reranking?", "texts": texts}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_clients(url: str, clients: int, seconds: float, candidates: int, server) -> dict:
    latencies: list[float] = []
    errors = refused = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    peak = 0

    def client(seed: int) -> None:
        nonlocal errors, refused
        body = request_body(candidates, seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    answer = http.post("/rerank", json=body)
                except httpx.TransportError:
                    with lock:
                        errors += 1
                    continue
                took = time.perf_counter() - started
                with lock:
                    if answer.status_code == 200:
                        latencies.append(took)
                    elif answer.status_code == 429:
                        refused += 1
                    else:
                        errors += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, server.memory_info().rss)
        time.sleep(0.2)
    return {
        "clients": clients,
        "requests_per_s": len(latencies) / seconds,
        "pairs_per_s": len(latencies) * candidates / seconds,
        "p50_s": statistics.median(latencies) if latencies else None,
        "p99_s": percentile(latencies, 99),
        "errors": errors,
        "429s": refused,
        "server_peak_rss_mib": peak / 2**20,
    }


def serial_baseline(model: str, seconds: float, candidates: int) -> dict:
    reranker = Reranker(model=model)
    body = request_body(candidates, 0)
    reranker.rerank(body["query"], body["texts"])  # load and warm up
    done = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        reranker.rerank(body["query"], body["texts"])
        done += 1
    return {"requests_per_s": done / seconds, "pairs_per_s": done * candidates / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: the MiniLM fixture)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = parser.parse_args()
    model = args.model or (str(FIXTURE) if FIXTURE.is_dir() else None)
    if model is None:
        model = str(build_tiny_cross_encoder(Path(tempfile.mkdtemp()) / "tiny"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "crossrank.server", "--model", model, "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.5)
        server = psutil.Process(process.pid)
        for clients in args.clients:
            rows.append(run_clients(url, clients, args.seconds, args.candidates, server))
            print(json.dumps(rows[-1]))
    finally:
        process.terminate()
        process.wait(60)
    baseline = serial_baseline(model, args.seconds, args.candidates)
    print("in-process, serial:", json.dumps(baseline))
    print("\n| clients | req/s | x serial | p50 ms | p99 ms | errors | 429s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = (
            r["requests_per_s"] / baseline["requests_per_s"] if baseline["requests_per_s"] else 0
        )
        p50 = (r["p50_s"] or 0) * 1000
        print(
            f"| {r['clients']} | {r['requests_per_s']:.1f} | {ratio:.2f} | {p50:.0f} | "
            f"{r['p99_s'] * 1000:.0f} | {r['errors']} | {r['429s']} | "
            f"{r['server_peak_rss_mib']:.0f} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"model": model, "rows": rows, "serial": baseline}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
