"""Child process for tests/test_input_bounds.py: oversized inputs under a memory ceiling.

Run as `python bounds_child.py MODEL_FOLDER HEADROOM_MB SCENARIO...`. It loads the model
(a warm-up call), then caps its own address space at what it uses plus HEADROOM_MB
(`RLIMIT_AS`), so a scenario that needs gigabytes fails here (MemoryError, or the tokenizer
aborting the process) instead of swapping the machine. For each scenario it prints one JSON
line: the outcome (the result's summary or the error's type and message), seconds taken and
peak resident memory growth in MB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from crossrank import CrossrankError, Reranker

MB = 1024 * 1024
BIG = 50 * MB  # characters of the one huge document
RAISED = {"max_document_chars": 2 * BIG, "max_total_chars": 2 * BIG}


def big_document() -> str:
    words = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    return (words * (BIG // len(words) + 1))[:BIG]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def main() -> None:
    model, headroom_mb, *scenarios = sys.argv[1:]
    base = {"model": model, "backend": "torch"}
    rerankers = {
        "default": Reranker(**base),
        "truncate": Reranker(**base, **RAISED),
        "chunk": Reranker(**base, **RAISED, long_documents="chunk"),
    }
    for reranker in rerankers.values():  # loads the model and the token counter
        reranker.rerank("warm up", ["a short document", "x " * 3000])
    inputs = {
        "truncate_50mb": lambda: rerankers["truncate"].rerank("lorem", [big_document(), "b"]),
        "chunk_50mb": lambda: rerankers["chunk"].rerank("lorem", [big_document(), "b"]),
        "default_50mb": lambda: rerankers["default"].rerank("lorem", [big_document()]),
        "query_10mb": lambda: rerankers["default"].rerank("q " * (5 * MB), ["a", "b"]),
    }
    million = [f"document {i}" for i in range(1_000_000)]  # made before the baseline
    inputs["documents_1m"] = lambda: rerankers["default"].rerank("document", million)
    inputs["generator_1m"] = lambda: rerankers["default"].rerank(
        "document", (f"document {i}" for i in range(1_000_000))
    )
    limit = vm_size() + int(headroom_mb) * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    for name in scenarios:
        before = peak_mb()
        start = time.perf_counter()
        try:
            results = inputs[name]()
            outcome = {
                "ok": True,
                "scores": [r.score for r in results],
                "truncated": [r.truncated for r in results],
                "best_chunk": [r.best_chunk for r in results],
            }
        except CrossrankError as exc:
            outcome = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        except MemoryError:
            outcome = {"ok": False, "error": "MemoryError", "message": ""}
        seconds = time.perf_counter() - start
        growth = peak_mb() - before
        print(
            json.dumps({"scenario": name, "seconds": seconds, "rss_growth_mb": growth, **outcome})
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
