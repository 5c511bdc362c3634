"""One benchmark contender in its own process, driven by benchmarks/bench.py over a pipe.

Why a process per contender: peak memory is then the contender's own (not the sum of
everything loaded before it in a shared interpreter), a peer that needs other library
versions runs from its own venv (sentence-transformers' OpenVINO backend needs optimum-intel,
which pins transformers and sentence-transformers down), and each runtime's on-disk cache is
measured on its own (HOME points at a fresh folder per contender).

Protocol: JSON lines. The first line on stdin names the contender
    {"kind": ..., "model": ..., "threads": ..., "device": ..., "settings": {...}}
and is answered {"ok": true, "load_s": ..., "rss_mb": ...} or {"ok": false, "error": ...}.
Each later line is a request:
    {"op": "score", "query": ..., "texts": [...]}   -> {"seconds", "scores", "peak_rss_mb"}
    {"op": "concurrency", "jobs": [[query, texts], ...], "rounds": R}  -> serial vs together
Scores come back in input order, on the contender's own scale (a probability for every
contender of the fixture, whose config says sigmoid).
Only the standard library is imported at module level: the peer venvs lack crossrank.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mb() -> float:
    """The process's high-water mark (load included): what a user has to provision."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakSampler:
    """Peak resident memory while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakSampler:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def one_line(exc: BaseException) -> str:
    """The error as one short line for the table (the full traceback goes to the log)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:300]


# -- the contenders: each returns `score(query, texts) -> list[float]` in input order --------


def crossrank_contender(spec: dict[str, Any]) -> Any:
    from crossrank import Reranker

    settings = dict(spec.get("settings", {}))
    rr = Reranker(
        model=spec["model"], device=spec["device"], num_threads=spec["threads"], **settings
    )

    def score(query: str, texts: list[str]) -> list[float]:
        scores = [0.0] * len(texts)
        for r in rr.rerank(query, texts):
            scores[r.index] = r.score
        return scores

    score.reranker = rr  # type: ignore[attr-defined]
    return score


def predict_contender(spec: dict[str, Any]) -> Any:
    """sentence_transformers.CrossEncoder.predict, defaults, or one of ST's own backends."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(spec["threads"])
    kwargs: dict[str, Any] = {}
    settings = spec.get("settings", {})
    if settings.get("backend"):
        kwargs["backend"] = settings["backend"]
    if settings.get("dtype"):  # GPU grid: the model itself in fp16 / bf16
        kwargs["model_kwargs"] = {"torch_dtype": getattr(torch, settings["dtype"])}
    ce = CrossEncoder(spec["model"], device=spec["device"], **kwargs)

    def score(query: str, texts: list[str]) -> list[float]:
        out = ce.predict([(query, t) for t in texts], show_progress_bar=False)
        return [float(x) for x in out]

    return score


def predict_causal_contender(spec: dict[str, Any]) -> Any:
    """CrossEncoder.predict on a causal-LM reranker, fed the Qwen3-Reranker card's prompt.

    sentence-transformers loads a causal LM with its LogitScore head (the yes/no logits of
    the last position); given the card's prefix and formatted body it computes what
    crossrank's family does, so it is the baseline of the causal-LM rows.
    """
    import torch
    from sentence_transformers import CrossEncoder

    from crossrank.models.families import qwen3_reranker as card

    torch.set_num_threads(spec["threads"])
    ce = CrossEncoder(spec["model"], device=spec["device"])

    def score(query: str, texts: list[str]) -> list[float]:
        body = card.BODY
        pairs = [
            (card.PREFIX, body.format(instruction=card.DEFAULT_INSTRUCTION, query=query, doc=t)
             + card.SUFFIX)
            for t in texts
        ]  # fmt: skip
        return [float(x) for x in ce.predict(pairs, show_progress_bar=False)]

    return score


def flashrank_contender(spec: dict[str, Any]) -> Any:
    """FlashRank running the same model: the fixture exported to ONNX in FlashRank's layout.

    FlashRank downloads its own zipped ONNX models; offline, a folder of the same layout
    (model file, tokenizer.json, config files) under its cache_dir is loaded as is.
    """
    from flashrank import Config, Ranker, RerankRequest

    folder = Path(spec["settings"]["flashrank_dir"])
    # FlashRank finds a model's file by name in its own table: register this folder's.
    Config.model_file_map[folder.name] = spec["settings"]["model_file"]
    ranker = Ranker(
        model_name=folder.name, cache_dir=str(folder.parent), max_length=spec["max_length"]
    )

    def score(query: str, texts: list[str]) -> list[float]:
        passages = [{"id": i, "text": t} for i, t in enumerate(texts)]
        out = ranker.rerank(RerankRequest(query=query, passages=passages))
        scores = [0.0] * len(texts)
        for p in out:
            scores[int(p["id"])] = float(p["score"])
        return scores

    return score


def llama_contender(spec: dict[str, Any]) -> Any:
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    post = SentenceTransformerRerank(model=spec["model"], top_n=10_000, device=spec["device"])

    def score(query: str, texts: list[str]) -> list[float]:
        nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)]
        out = post.postprocess_nodes(nodes, query_bundle=QueryBundle(query))
        scores = [0.0] * len(texts)
        for n in out:
            scores[int(n.node.node_id)] = float(n.score)
        return scores

    return score


def langchain_contender(spec: dict[str, Any]) -> Any:
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_core.documents import Document

    hf = HuggingFaceCrossEncoder(model_name=spec["model"], model_kwargs={"device": spec["device"]})
    compressor = CrossEncoderReranker(model=hf, top_n=10_000)

    def score(query: str, texts: list[str]) -> list[float]:
        # The compressor returns documents only; the ranking is what a user gets, so the
        # fidelity columns use rank positions (tau and top-10 need nothing else).
        docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
        out = compressor.compress_documents(docs, query)
        scores = [0.0] * len(texts)
        for rank, d in enumerate(out):
            scores[d.metadata["i"]] = float(len(out) - rank)
        return scores

    score.rank_only = True  # type: ignore[attr-defined]
    return score


def rerankers_contender(spec: dict[str, Any]) -> Any:
    from rerankers import Document as RDocument
    from rerankers import Reranker as RReranker

    ranker = RReranker(spec["model"], model_type="cross-encoder", device=spec["device"], verbose=0)

    def score(query: str, texts: list[str]) -> list[float]:
        docs = [RDocument(text=t, doc_id=i) for i, t in enumerate(texts)]
        out = ranker.rank(query=query, docs=docs)
        scores = [0.0] * len(texts)
        for r in out.results:
            # rerankers returns the raw logit; the sigmoid puts it on predict's scale (the
            # fixture's config asks for it), so the score difference column means something.
            scores[int(r.document.doc_id)] = 1 / (1 + math.exp(-float(r.score)))
        return scores

    return score


CONTENDERS = {
    "crossrank": crossrank_contender,
    "predict": predict_contender,
    "predict-causal": predict_causal_contender,
    "flashrank": flashrank_contender,
    "llama-index": llama_contender,
    "langchain": langchain_contender,
    "rerankers": rerankers_contender,
}


def concurrency(fn: Any, jobs: list[list[Any]], rounds: int) -> dict[str, Any]:
    """The same calls one after another, then all at once through `arerank`; interleaved."""
    import asyncio

    rr = fn.reranker
    pairs = sum(len(texts) for _, texts in jobs)
    serial, together = [], []

    async def gather() -> None:
        await asyncio.gather(*(rr.arerank(q, t) for q, t in jobs))

    asyncio.run(rr.arerank(*jobs[0]))  # warm the async path (executor, micro-batcher)
    for _ in range(rounds):
        start = time.perf_counter()
        for q, t in jobs:
            rr.rerank(q, t)
        serial.append(time.perf_counter() - start)
        start = time.perf_counter()
        asyncio.run(gather())
        together.append(time.perf_counter() - start)
    s, c = statistics.median(serial), statistics.median(together)
    return {
        "serial_pairs_per_s": round(pairs / s, 1),
        "concurrent_pairs_per_s": round(pairs / c, 1),
        "speedup": round(s / c, 2),
    }


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries that print must not corrupt the protocol
    try:
        if spec.get("device", "cpu") == "cpu":
            import torch

            torch.set_num_threads(spec["threads"])
        start = time.perf_counter()
        fn = CONTENDERS[spec["kind"]](spec)
        # crossrank loads (and converts, on a cold cache) at its first call: one tiny call
        # makes load_s the time to a ready model for every contender alike.
        fn("warm-up query", ["a warm-up passage"])
        load_s = time.perf_counter() - start
        reply: dict[str, Any] = {"ok": True, "load_s": round(load_s, 2), "rss_mb": rss_mb()}
        reply["rank_only"] = bool(getattr(fn, "rank_only", False))
    except Exception as exc:
        reply = {"ok": False, "error": one_line(exc)}
        traceback.print_exc()
        fn = None
    out.write(json.dumps(reply) + "\n")
    out.flush()
    if fn is None:
        return
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "score":
                with PeakSampler() as mem:
                    start = time.perf_counter()
                    scores = fn(req["query"], req["texts"])
                    seconds = time.perf_counter() - start
                # Every contender hands back host floats, so a GPU call is finished here.
                reply = {
                    "seconds": seconds,
                    "scores": scores,
                    "peak_rss_mb": round(mem.peak, 1),
                    "max_rss_mb": round(max_rss_mb(), 1),
                }
            elif req["op"] == "concurrency":
                reply = concurrency(fn, req["jobs"], req.get("rounds", 1))
            else:
                reply = {"error": f"unknown op {req['op']!r}"}
        except Exception as exc:
            traceback.print_exc()
            reply = {"error": one_line(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
