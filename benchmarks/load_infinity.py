"""Bounded load test: concurrent reranks against a local infinity-emb server.

    .venv/bin/python benchmarks/load_infinity.py             # 3 rounds x 200 reranks x 50
    .venv/bin/python benchmarks/load_infinity.py --rounds 5 --model <cross-encoder folder>

Starts infinity (scripts/setup_infinity.sh must have run) on 127.0.0.1 serving a local model
(a tiny cross-encoder built on the spot unless --model names a folder), then runs `--rounds`
rounds of `--concurrency` concurrent `Reranker.arerank` calls of `--candidates` documents each
through the Cohere-compatible scorer, all from one `Reranker` (one pooled AsyncClient).
Reports, per round and overall: reranks/s, pairs/s, p50/p99 latency of one rerank, errors,
and the resident memory of this process and of the server after each round (growth across
rounds would show a leak). Everything is bounded: a fixed number of calls, each with the
scorer's own timeout and retry limits, and the server is stopped at the end. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from crossrank import Reranker
from crossrank.infinity_process import InfinityServer
from crossrank.testing import build_tiny_cross_encoder

WORDS = [
    *("cross", "encoder", "rerank", "query", "passage", "retrieval", "dense", "sparse"),
    *("token", "attention", "model", "score", "document", "candidate", "relevance"),
    *("ranking", "vector", "index", "search", "answer", "question", "context"),
]


def candidates(n: int, seed: int) -> list[dict]:
    docs = []
    for i in range(n):
        words = [WORDS[(seed * 7 + i * 13 + k * 5) % len(WORDS)] for k in range(20 + i % 30)]
        docs.append({"id": f"q{seed}-d{i}", "content": " ".join(words), "score": float(n - i)})
    return docs


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def one_round(rr: Reranker, concurrency: int, n: int, round_no: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []

    async def call(i: int) -> None:
        docs = candidates(n, round_no * concurrency + i)
        started = time.perf_counter()
        try:
            query = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]}"
            ranked = await rr.arerank(query, docs)
            if len(ranked) != n:
                errors.append(f"call {i}: {len(ranked)} results for {n} documents")
        except Exception as exc:  # every failure counts as an error, whatever its kind
            errors.append(f"call {i}: {type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "round": round_no,
        "reranks": concurrency,
        "wall_s": round(wall, 3),
        "reranks_per_s": round(len(latencies) / wall, 1),
        "pairs_per_s": round(len(latencies) * n / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


async def run(args: argparse.Namespace, server: InfinityServer) -> list[dict]:
    rr = Reranker(model="bench-reranker", scorer=f"cohere+{server.url}", batch_size=args.batch)
    await rr.arerank("warm up", candidates(4, 0))
    rounds = []
    for r in range(args.rounds):
        result = await one_round(rr, args.concurrency, args.candidates, r)
        result["client_rss_mb"] = round(rss_bytes() / 2**20, 1)
        server_rss = server.rss_bytes()
        result["server_rss_mb"] = round(server_rss / 2**20, 1) if server_rss else None
        print(json.dumps(result), flush=True)
        rounds.append(result)
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32, help="texts per request")
    parser.add_argument("--model", help="a local cross-encoder folder (default: a tiny one)")
    parser.add_argument("--venv", help="infinity's venv (default .venv-infinity)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_cross_encoder(Path(tmp) / "tiny"))
        log = Path(tmp) / "server.log"
        with InfinityServer(
            model, served_name="bench-reranker", venv=args.venv, log_path=log
        ) as server:
            rounds = asyncio.run(run(args, server))
        # Each rerank of N candidates is ceil(N / batch) requests; more means retries.
        sent = log.read_text(errors="replace").count('"POST /rerank')
    latencies_ok = [r for r in rounds if r["p50_ms"] is not None]
    summary = {
        "summary": True,
        "model": args.model or "tiny cross-encoder (crossrank.testing)",
        "rounds": len(rounds),
        "reranks": sum(r["reranks"] for r in rounds),
        "candidates": args.candidates,
        "errors": sum(r["errors"] for r in rounds),
        "requests_expected": 1 + len(rounds) * args.concurrency * -(-args.candidates // args.batch),
        "requests_served": sent,
        "reranks_per_s": round(statistics.mean(r["reranks_per_s"] for r in rounds), 1),
        "pairs_per_s": round(statistics.mean(r["pairs_per_s"] for r in rounds), 1),
        "p50_ms_worst_round": max((r["p50_ms"] for r in latencies_ok), default=None),
        "p99_ms_worst_round": max((r["p99_ms"] for r in latencies_ok), default=None),
        "client_rss_mb": [r["client_rss_mb"] for r in rounds],
        "server_rss_mb": [r["server_rss_mb"] for r in rounds],
    }
    print(json.dumps(summary))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
