"""Load benchmark of `crossrank serve`: concurrent clients against the server, against the same
calls in-process one after another, and against infinity-emb serving the same model.

    .venv/bin/python benchmarks/load_server.py                      # fixture, 1/8/32/64 clients
    .venv/bin/python benchmarks/load_server.py --model M --seconds 30 --clients 1,8,32,64
    .venv/bin/python benchmarks/load_server.py --large               # the XLM-R-large-sized model
    .venv/bin/python benchmarks/load_server.py --soak 600 --clients 32   # memory over 10 minutes

Not a test, and bounded: every server is started on 127.0.0.1 and stopped at the end, every
phase lasts `--seconds`, every request has a timeout. Each client is an `httpx.AsyncClient`
loop that posts one Cohere v2 rerank of `--candidates` Cranfield passages (a new query each
time), waits for the answer and posts the next, for `--seconds`; the same client code drives
crossrank and infinity (both speak Cohere's body), so the comparison is one of servers. A 429
is counted and the client waits for its Retry-After; anything else that is not a 200 with one
score per document is an error.

Reported per server and client count: throughput (pairs/s), p50/p99 latency of one rerank,
errors, 429s, the server's peak RSS (sampled by psutil), the ratio to the serial in-process
rate (`Reranker.rerank` calls one after another, same model, same settings) and fidelity (the
largest score difference from in-process on one request). `--soak S` runs one client count
for S seconds and reports the server's RSS growth from the end of the first minute.
The machine's load average is printed with every phase: on a shared machine, quote it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SERVED_NAME = "bench-reranker"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def passages(data: Path) -> tuple[list[str], list[str]]:
    """Cranfield's abstracts and queries, or synthetic text of their lengths where absent."""
    corpus, queries = data / "corpus.jsonl", data / "queries.jsonl"
    if corpus.is_file() and queries.is_file():
        texts = [json.loads(line)["text"] for line in corpus.open() if line.strip()]
        asks = [json.loads(line)["text"] for line in queries.open() if line.strip()]
        return [t for t in texts if t.strip()], asks
    rng = random.Random(0)
    words = [
        "flow",
        "boundary",
        "layer",
        "shock",
        "wave",
        "heat",
        "transfer",
        "pressure",
        "wing",
        "mach",
        "number",
    ]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(80, 260))) for _ in range(1400)]
    return texts, [" ".join(rng.choice(words) for _ in range(12)) for _ in range(225)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class RssSampler:
    """The peak (and the last) resident memory of one process, sampled every `every` s."""

    def __init__(self, pid: int | None, every: float = 0.5) -> None:
        self.proc = psutil.Process(pid) if pid else psutil.Process()
        self.every, self.peak, self.samples = every, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.is_running())
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            rss = self._rss()
            self.peak = max(self.peak, rss)
            self.samples.append((time.monotonic(), rss))

    def __enter__(self) -> RssSampler:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Workload:
    """Requests of `n` passages with a query each, the same sequence for every server."""

    def __init__(self, texts: list[str], queries: list[str], n: int) -> None:
        self.texts, self.queries, self.n = texts, queries, n

    def request(self, i: int) -> tuple[str, list[str]]:
        rng = random.Random(i)
        return self.queries[i % len(self.queries)], rng.sample(self.texts, self.n)


async def run_clients(
    url: str, clients: int, seconds: float, work: Workload, headers: dict[str, str]
) -> dict[str, Any]:
    """`clients` closed-loop clients posting Cohere v2 reranks to `url` for `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    rejected = 0
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120.0, limits=limits, headers=headers) as http:
        deadline = time.monotonic() + seconds

        async def client() -> None:
            nonlocal rejected
            while time.monotonic() < deadline:
                query, docs = work.request(next(counter))
                body = {"model": SERVED_NAME, "query": query, "documents": docs}
                started = time.perf_counter()
                try:
                    reply = await http.post(url, json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if reply.status_code == 429:
                    rejected += 1
                    await asyncio.sleep(float(reply.headers.get("retry-after", "1")))
                    continue
                ok = reply.status_code == 200 and len(reply.json().get("results", [])) == len(docs)
                if not ok:
                    errors.append(f"HTTP {reply.status_code}: {reply.text[:200]}")
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "clients": clients,
        "reranks": len(latencies),
        "pairs_per_s": round(len(latencies) * work.n / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:3],
        "http_429": rejected,
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CrossrankServer:
    """`crossrank serve` as a subprocess on 127.0.0.1 (stopped with SIGTERM, then killed)."""

    def __init__(self, model: str, extra: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "crossrank", "serve", "--model", model]
        cmd += ["--port", str(self.port), *extra]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> CrossrankServer:
        try:
            wait_ready(f"{self.url}/health", self.proc, timeout=600)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def in_process_serial(model: str, seconds: float, work: Workload, settings: dict[str, Any]):
    """The serial in-process rate: `Reranker.rerank` calls one after another for `seconds`."""
    from crossrank import Reranker

    rr = Reranker(model=model, **settings)
    rr.rerank("warm up", ["a passage", "another passage"])
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    i = 0
    while time.monotonic() < deadline:
        query, docs = work.request(i)
        t = time.perf_counter()
        rr.rerank(query, docs)
        latencies.append(time.perf_counter() - t)
        i += 1
    wall = time.perf_counter() - started
    return rr, {
        "clients": 1,
        "reranks": len(latencies),
        "pairs_per_s": round(len(latencies) * work.n / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": 0,
        "http_429": 0,
    }


def fidelity(url: str, rr: Any, work: Workload, headers: dict[str, str]) -> float:
    """Largest |score difference| between the server and in-process on one request."""
    query, docs = work.request(10**6)
    body = {"model": SERVED_NAME, "query": query, "documents": docs}
    reply = httpx.post(url, json=body, headers=headers, timeout=120).json()
    served = {r["index"]: r["relevance_score"] for r in reply["results"]}
    local = rr.rerank(query, docs)
    by_index = {docs.index(r.document): r.score for r in local}
    return max(abs(served[i] - by_index[i]) for i in served)


def bench_server(
    name: str, url: str, pid: int, args: argparse.Namespace, work: Workload, rr: Any
) -> list[dict[str, Any]]:
    rows = []
    diff = fidelity(url, rr, work, {})
    for clients in args.client_counts:
        with RssSampler(pid) as rss:
            row = asyncio.run(run_clients(url, clients, args.seconds, work, {}))
        row.update(server=name, peak_rss_mb=round(rss.peak / 2**20), max_abs_diff=diff)
        row["load"] = load_average()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def soak(url: str, pid: int, args: argparse.Namespace, work: Workload) -> dict[str, Any]:
    clients = args.client_counts[-1]
    with RssSampler(pid, every=5.0) as rss:
        row = asyncio.run(run_clients(url, clients, args.soak, work, {}))
    after_warmup = [r for t, r in rss.samples if t - rss.samples[0][0] >= 60] or [rss.peak]
    growth = (after_warmup[-1] - after_warmup[0]) / after_warmup[0] if after_warmup[0] else 0.0
    row.update(
        server="crossrank serve (soak)",
        seconds=args.soak,
        rss_mb_first_minute=round(after_warmup[0] / 2**20),
        rss_mb_end=round(after_warmup[-1] / 2**20),
        rss_growth=round(growth, 4),
        load=load_average(),
    )
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict[str, Any]], serial: dict[str, Any]) -> str:
    lines = [
        "| server | clients | pairs/s | x serial in-process | p50 ms | p99 ms | p99/p50 "
        "| errors | 429s | peak RSS MB | max abs diff | load |",
        "|" + "---|" * 12,
    ]
    base = serial["pairs_per_s"]
    for r in [serial, *rows]:
        ratio = round(r["pairs_per_s"] / base, 2) if base else ""
        spread = round(r["p99_ms"] / r["p50_ms"], 2) if r.get("p50_ms") else ""
        lines.append(
            f"| {r['server']} | {r['clients']} | {r['pairs_per_s']} | {ratio} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {spread} | {r['errors']} | {r['http_429']} "
            f"| {r.get('peak_rss_mb', '')} | {r.get('max_abs_diff', '')} "
            f"| {r.get('load', '')} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fixture = SHARED / "models" / "minilm-l6-scifact-ce"
    p.add_argument("--model", default=os.environ.get("CROSSRANK_MODEL") or str(fixture))
    p.add_argument("--large", action="store_true", help="the XLM-R-large-sized model instead")
    p.add_argument("--data", default=str(SHARED / "data" / "cranfield"))
    p.add_argument("--clients", default="1,8,32,64")
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--soak", type=float, default=0.0, help="seconds of the memory soak (0: none)")
    p.add_argument("--skip-infinity", action="store_true")
    p.add_argument("--serve-args", default="", help="extra `crossrank serve` flags, one string")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load_server.json"))
    args = p.parse_args()
    args.client_counts = [int(x) for x in args.clients.split(",")]
    texts, queries = passages(Path(args.data))
    work = Workload(texts, queries, args.candidates)
    with tempfile.TemporaryDirectory(prefix="crossrank-load-") as tmp:
        model = args.model
        if args.large or not (Path(model) / "config.json").is_file():
            sys.path.insert(0, str(ROOT / "benchmarks"))
            import bench

            if args.large:
                model = bench.build_large_model(Path(tmp) / "large", args.model)
            else:
                model = bench.build_minilm_sized(Path(tmp) / "minilm-sized")
        print(f"model {model}; load {load_average()}", flush=True)
        rr, serial = in_process_serial(model, args.seconds, work, {})
        serial.update(server="in-process Reranker.rerank, serial", load=load_average())
        print(json.dumps(serial), flush=True)
        rows: list[dict[str, Any]] = []
        soaked = None
        extra = args.serve_args.split()
        with CrossrankServer(model, extra, Path(tmp) / "crossrank.log") as server:
            url = f"{server.url}/v2/rerank"
            rows += bench_server("crossrank serve", url, server.proc.pid, args, work, rr)
            if args.soak:
                soaked = soak(url, server.proc.pid, args, work)
        if not args.skip_infinity:
            try:
                from crossrank.infinity_process import InfinityServer
            except ImportError:  # before the settings refactor the module had another name
                from crossrank.serving import InfinityServer
            try:
                with InfinityServer(model, served_name=SERVED_NAME) as inf:
                    url = f"{inf.url}/rerank"
                    rows += bench_server("infinity-emb", url, inf.process.pid, args, work, rr)
            except Exception as exc:  # a missing .venv-infinity must not lose crossrank's rows
                print(f"infinity-emb not run: {type(exc).__name__}: {exc}", flush=True)
    text = table(rows, serial)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "argv": sys.argv[1:],
        "model": args.model if not args.large else "XLM-R-large-sized (random weights)",
        "candidates": args.candidates,
        "seconds": args.seconds,
        "serial": serial,
        "rows": rows,
        "soak": soaked,
        "table_markdown": text,
        "load_average_at_end": load_average(),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
