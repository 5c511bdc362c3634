"""crossrank speed benchmark: one run, the same passages, crossrank's modes against the peers.

Run it through `benchmarks/run.sh` (creates .venv-bench with the peers). It prints a table and
writes JSON (default benchmarks/results/latest.json). What it measures, per model and N:

- median latency of one rerank call of N candidates (after one warm-up call; the contenders
  are timed in interleaved rounds so that load drift hits all alike), pairs/s,
  real (unpadded) tokens/s, peak extra resident memory during the calls;
- the ratio of each mode's throughput to `sentence_transformers.CrossEncoder.predict` with
  its defaults, and the fraction of this machine's measured matmul peak that the useful
  FLOPs reach (fp32 for float32 modes, bf16 for bf16 modes; the best of measurements taken
  between the rounds);
- fidelity against float32 (Kendall tau, top-10 overlap) for every crossrank mode;
- concurrent load: 32 queries of 50 candidates, micro-batched `arerank` versus the same calls
  one after another.

This machine is shared and noisy: medians, and the load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    models = ROOT.parent / "shared" / "models"
    p.add_argument("--model", default=str(models / "minilm-l6-scifact-ce"))
    p.add_argument("--sizes", default="10,50,100,200,500", help="candidate counts N")
    p.add_argument("--large-sizes", default="10,50", help="N for the XLM-R-large-sized model")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
    p.add_argument("--large-repeats", type=int, default=2, help="timed calls, large model")
    p.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--concurrent-n", type=int, default=50)
    p.add_argument("--concurrent-modes", default="fp32,bf16", help="fp32 and/or bf16")
    p.add_argument("--causal-sizes", default="10", help="N for the Qwen3-Reranker-0.6B-sized LM")
    p.add_argument("--causal-repeats", type=int, default=2, help="timed calls, causal LM")
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--skip-causal", action="store_true")
    p.add_argument("--only-causal", action="store_true", help="only the causal-LM rows (slow)")
    p.add_argument("--skip-main", action="store_true", help="only the concurrency part")
    p.add_argument("--skip-concurrency", action="store_true")
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--quick", action="store_true", help="N=100 only, 3 repeats, no large model")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = p.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.skip_large, args.skip_causal = "100", 3, True, True
    if args.only_causal:
        args.skip_main = args.skip_large = args.skip_concurrency = True
    return args


# -- data ----------------------------------------------------------------------------------------


def load_data(folder: Path) -> tuple[list[str], list[str]]:
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").open()]
    texts = [f"{d.get('title', '')} {d['text']}".strip() for d in docs]
    return [t for t in texts if t], queries  # a few Cranfield records are empty


# -- measuring ---------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident memory above the starting point while the block runs (sampled)."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def timed(fn: Any, repeats: int) -> tuple[float, Any, float]:
    """Median seconds of `repeats` calls after one warm-up, the last result, peak extra MB."""
    result = fn()
    times = []
    with PeakRSS() as mem:
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times), result, mem.extra_mb


def matmul_peak(dtype: Any, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of torch.matmul on n x n matrices (best of `repeats`)."""
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def pair_flops(lengths: list[int], config: Any) -> float:
    """Useful forward FLOPs of an encoder on real (unpadded) tokens."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for length in lengths:
        dense = 2 * length * (4 * h * h + 2 * h * inter)
        attention = 4 * length * length * h
        total += layers * (dense + attention)
    return total


def causal_flops(lengths: list[int], config: Any) -> float:
    """Useful forward FLOPs of a decoder with grouped-query attention, and one vocabulary row."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * head, config.num_key_value_heads * head
    total = 0.0
    for length in lengths:
        dense = 2 * length * (2 * h * q + 2 * h * kv + 3 * h * inter)
        attention = 2 * length * length * q  # causal: half of the full QK^T and AV
        total += layers * (dense + attention) + 2 * h * config.vocab_size  # last position only
    return total


def rank_agreement(fast: list[float], exact: list[float], k: int = 10) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import kendalltau

    tau = float(kendalltau(fast, exact).statistic)
    k = min(k, len(exact))
    top_fast = set(np.argsort(-np.asarray(fast), kind="stable")[:k])
    top_exact = set(np.argsort(-np.asarray(exact), kind="stable")[:k])
    return tau, len(top_fast & top_exact) / k


# -- the contenders --------------------------------------------------------------------------------


def crossrank_modes() -> dict[str, dict[str, Any]]:
    return {
        "crossrank fp32 (default)": {},
        "crossrank bf16": {"dtype": "bfloat16"},
        "crossrank onnx fp32": {"backend": "onnx"},
        "crossrank onnx int8": {"backend": "onnx", "quantize": "int8"},
    }


def make_crossrank(model: str, threads: int, **settings: Any) -> Any:
    from crossrank import Reranker

    rr = Reranker(model=model, device="cpu", num_threads=threads, **settings)

    def run(query: str, texts: list[str]) -> list[float]:
        ranked = rr.rerank(query, texts)
        scores = [0.0] * len(texts)
        for r in ranked:
            scores[r.index] = r.score
        return scores

    return run


def make_predict(model: str) -> Any:
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(model, device="cpu")

    def run(query: str, texts: list[str]) -> list[float]:
        return ce.predict([(query, t) for t in texts], show_progress_bar=False).tolist()

    return run


def make_peers(model: str) -> dict[str, Any]:
    """Each peer wrapper, or the reason it cannot run here."""
    peers: dict[str, Any] = {}
    try:
        from llama_index.core.postprocessor import SentenceTransformerRerank
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

        post = SentenceTransformerRerank(model=model, top_n=10_000, device="cpu")

        def llama(query: str, texts: list[str]) -> Any:
            nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in texts]
            return post.postprocess_nodes(nodes, query_bundle=QueryBundle(query))

        peers["llama-index SentenceTransformerRerank"] = llama
    except Exception as exc:
        peers["llama-index SentenceTransformerRerank"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder
        from langchain_core.documents import Document

        hf = HuggingFaceCrossEncoder(model_name=model, model_kwargs={"device": "cpu"})
        compressor = CrossEncoderReranker(model=hf, top_n=10_000)

        def langchain(query: str, texts: list[str]) -> Any:
            return compressor.compress_documents([Document(page_content=t) for t in texts], query)

        peers["langchain CrossEncoderReranker"] = langchain
    except Exception as exc:
        peers["langchain CrossEncoderReranker"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        from rerankers import Document as RDocument
        from rerankers import Reranker as RReranker

        ranker = RReranker(model, model_type="cross-encoder", device="cpu", verbose=0)

        def rerankers_run(query: str, texts: list[str]) -> Any:
            docs = [RDocument(text=t, doc_id=i) for i, t in enumerate(texts)]
            return ranker.rank(query=query, docs=docs)

        peers["rerankers (cross-encoder)"] = rerankers_run
    except Exception as exc:
        peers["rerankers (cross-encoder)"] = f"unavailable: {type(exc).__name__}: {exc}"
    return peers


def build_large_model(folder: Path, tokenizer_from: str) -> str:
    """XLM-RoBERTa large (24 layers, hidden 1024), random weights: bge-reranker-v2-m3's shape.

    The hub is unreachable, so the tokenizer is the MiniLM fixture's (the vocabulary size only
    changes the embedding table, not the compute per token).
    """
    if (folder / "config.json").is_file():
        return str(folder)
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    config = XLMRobertaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=2,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def build_causal_model(folder: Path, tokenizer_from: str) -> str:
    """Qwen3-Reranker-0.6B's shape (Qwen3, 28 layers, hidden 1024, GQA 16/8, vocabulary
    151,936, tied embeddings: 0.6B parameters), random weights.

    The hub is unreachable, so the tokenizer is the MiniLM fixture's WordPiece (about as many
    tokens per word as Qwen's BPE) plus the chat tokens of the Qwen3 prompt; only the ids it
    produces are used, and they all fall inside the model's embedding table.
    """
    if (folder / "config.json").is_file():
        return str(folder)
    import copy

    import torch
    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    wordpiece = AutoTokenizer.from_pretrained(tokenizer_from)
    inner = copy.deepcopy(wordpiece._tokenizer)
    # Like Qwen's tokenizer, add no [CLS]/[SEP] around a text or a pair (CrossEncoder.predict
    # tokenizes its pairs with them otherwise, and would read a different prompt).
    inner.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=inner,
        pad_token=wordpiece.pad_token,
        unk_token=wordpiece.unk_token,
        model_max_length=8192,  # the card's length, not the MiniLM tokenizer's 256
    )
    tok.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<think>", "</think>"]}
    )
    config = Qwen3Config(
        vocab_size=151_936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40_960,
        rope_theta=1_000_000,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def bench_causal(
    model: str, texts: list[str], query: str, args: argparse.Namespace, peaks: dict[str, float]
) -> list[dict[str, Any]]:
    """The causal-LM rows: crossrank (fp32, bf16) against CrossEncoder.predict fed the same
    Qwen3 card prompt (sentence-transformers loads a causal LM with its LogitScore head)."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoConfig

    from crossrank.models import ModelScorer
    from crossrank.models.families import qwen3_reranker as card

    label = "Qwen3-Reranker-0.6B-sized"
    config = AutoConfig.from_pretrained(model)
    family = {"model_family": "qwen3-reranker"}
    ce = CrossEncoder(model, device="cpu")

    def predict(q: str, docs: list[str]) -> list[float]:
        instruction = card.DEFAULT_INSTRUCTION
        pairs = [
            (card.PREFIX, card.BODY.format(instruction=instruction, query=q, doc=d) + card.SUFFIX)
            for d in docs
        ]
        return ce.predict(pairs, show_progress_bar=False).tolist()

    contenders = {
        "CrossEncoder.predict (card prompt)": predict,
        "crossrank fp32 (default)": make_crossrank(model, args.threads, **family),
        "crossrank bf16": make_crossrank(model, args.threads, dtype="bfloat16", **family),
    }
    rows: list[dict[str, Any]] = []
    pool = random.Random(0).sample(texts, max(int(x) for x in args.causal_sizes.split(",")))
    for n in [int(x) for x in args.causal_sizes.split(",")]:
        candidates = pool[:n]
        lengths = [
            len(r)
            for r in ModelScorer(model, device="cpu", **family).encode(
                [(query, t) for t in candidates]
            )
        ]
        flops = causal_flops(lengths, config)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        results = {name: fn(query, candidates) for name, fn in contenders.items()}  # warm-up
        memory = dict.fromkeys(contenders, 0.0)
        for _ in range(args.causal_repeats):
            for name, fn in contenders.items():
                with PeakRSS() as mem:
                    begin = time.perf_counter()
                    results[name] = fn(query, candidates)
                    times[name].append(time.perf_counter() - begin)
                memory[name] = max(memory[name], mem.extra_mb)
        base_rate = n / statistics.median(times["CrossEncoder.predict (card prompt)"])
        reference = results["crossrank fp32 (default)"]
        for name in contenders:
            seconds = statistics.median(times[name])
            peak_key = "bf16" if "bf16" in name else "fp32"
            row: dict[str, Any] = {
                "model": label,
                "n": n,
                "mode": name,
                "latency_s": round(seconds, 4),
                "pairs_per_s": round(n / seconds, 2),
                "tokens_per_s": round(sum(lengths) / seconds),
                "peak_extra_mb": round(memory[name], 1),
                "gflops": round(flops / seconds / 1e9, 1),
                "peak_fraction": round(flops / seconds / 1e9 / peaks[peak_key], 3),
                "peak_used": peak_key,
                "x_predict": round(n / seconds / base_rate, 2),
                "seconds_per_100_docs": round(seconds * 100 / n, 1),
                "mean_pair_tokens": round(sum(lengths) / n),
            }
            tau, overlap = rank_agreement(results[name], reference)
            row.update(kendall_tau=round(tau, 4), top10_overlap=round(overlap, 2))
            rows.append(row)
            print(
                f"{label} N={n:<4} {name:36} {seconds:8.2f} s  "
                f"{row['seconds_per_100_docs']} s/100 docs  x{row['x_predict']:.2f}  "
                f"tau={row['kendall_tau']}  load={load_average()}",
                flush=True,
            )
    return rows


# -- the run -------------------------------------------------------------------------------------


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def bench_model(
    label: str,
    model: str,
    sizes: list[int],
    texts: list[str],
    query: str,
    args: argparse.Namespace,
    peaks: dict[str, float],
    modes: dict[str, dict[str, Any]],
    with_peers: bool,
    repeats: int,
) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    from crossrank.models import ModelScorer

    max_length = ModelScorer(model, device="cpu").max_length
    contenders: dict[str, Any] = {"CrossEncoder.predict (defaults)": make_predict(model)}
    for name, settings in modes.items():
        contenders[name] = make_crossrank(model, args.threads, **settings)
    if with_peers:
        contenders.update(make_peers(model))
    rng = random.Random(0)
    pool = rng.sample(texts, max(sizes))
    rows: list[dict[str, Any]] = []
    for n in sizes:
        candidates = pool[:n]
        enc = tokenizer([query] * n, candidates, truncation="only_second", max_length=max_length)[
            "input_ids"
        ]
        lengths = [len(x) for x in enc]
        flops = pair_flops(lengths, config)
        reference: list[float] | None = None
        base_rate: float | None = None
        # Interleaved: every round times each contender once, so that the load of this
        # shared machine drifting during the run hits all of them alike.
        live: dict[str, Any] = {}
        failed: dict[str, str] = {}
        results: dict[str, Any] = {}
        times: dict[str, list[float]] = {}
        memory: dict[str, float] = {}
        for name, fn in contenders.items():
            if isinstance(fn, str):
                failed[name] = fn
                continue
            try:
                results[name] = fn(query, candidates)  # warm-up
                live[name], times[name], memory[name] = fn, [], 0.0
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
        for _ in range(repeats):
            for name, fn in live.items():
                with PeakRSS() as mem:
                    begin = time.perf_counter()
                    results[name] = fn(query, candidates)
                    times[name].append(time.perf_counter() - begin)
                memory[name] = max(memory[name], mem.extra_mb)
            peaks["fp32"] = max(peaks["fp32"], round(matmul_peak(torch.float32, repeats=2), 1))
            peaks["bf16"] = max(peaks["bf16"], round(matmul_peak(torch.bfloat16, repeats=2), 1))
        for name in contenders:
            row: dict[str, Any] = {"model": label, "n": n, "mode": name}
            if name in failed:
                row["error"] = failed[name]
                rows.append(row)
                print(f"{label:10} N={n:<4} {name:40} {failed[name]}", flush=True)
                continue
            seconds, result, mem = statistics.median(times[name]), results[name], memory[name]
            rate = n / seconds
            peak_key = "bf16" if "bf16" in name else "fp32"
            row.update(
                latency_s=round(seconds, 4),
                pairs_per_s=round(rate, 1),
                tokens_per_s=round(sum(lengths) / seconds),
                peak_extra_mb=round(mem, 1),
                gflops=round(flops / seconds / 1e9, 1),
                peak_fraction=round(flops / seconds / 1e9 / peaks[peak_key], 3),
                peak_used=peak_key,
            )
            if name.startswith("CrossEncoder.predict"):
                base_rate = rate
            if base_rate:
                row["x_predict"] = round(rate / base_rate, 2)
            if name.startswith("crossrank"):
                if reference is None:
                    reference = result
                tau, overlap = rank_agreement(result, reference)
                row.update(kendall_tau=round(tau, 4), top10_overlap=round(overlap, 2))
            rows.append(row)
            print(
                f"{label:10} N={n:<4} {name:40} {seconds * 1000:9.1f} ms "
                f"{rate:8.1f} pairs/s  x{row.get('x_predict', float('nan')):.2f}"
                f"  tau={row.get('kendall_tau', '-')}  load={load_average()}",
                flush=True,
            )
    return rows


def bench_concurrency(model: str, texts: list[str], queries: list[str], args: argparse.Namespace):
    from crossrank import Reranker
    from crossrank.scorers import clear_model_cache

    rng = random.Random(1)
    jobs = [(q, rng.sample(texts, args.concurrent_n)) for q in queries[: args.concurrency]]
    pairs = sum(len(d) for _, d in jobs)
    out: dict[str, Any] = {"queries": len(jobs), "candidates": args.concurrent_n}
    all_modes = {"fp32": {}, "bf16": {"dtype": "bfloat16"}}
    for label in args.concurrent_modes.split(","):
        settings = all_modes[label]
        serial = Reranker(
            model=model, device="cpu", num_threads=args.threads, microbatch=False, **settings
        )
        serial.rerank(*jobs[0])
        start = time.perf_counter()
        for q, d in jobs:
            serial.rerank(q, d)
        serial_s = time.perf_counter() - start

        batched = Reranker(
            model=model, device="cpu", num_threads=args.threads, microbatch=True, **settings
        )

        async def together() -> None:
            await asyncio.gather(*(batched.arerank(q, d) for q, d in jobs))  # noqa: B023

        asyncio.run(batched.arerank(*jobs[0]))  # warm-up: load the model
        start = time.perf_counter()
        asyncio.run(together())
        batched_s = time.perf_counter() - start
        out[label] = {
            "serial_pairs_per_s": round(pairs / serial_s, 1),
            "microbatched_pairs_per_s": round(pairs / batched_s, 1),
            "speedup": round(serial_s / batched_s, 2),
        }
        print(f"concurrent {label}: {out[label]}  load={load_average()}", flush=True)
        clear_model_cache()
    return out


def print_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | N | mode | median ms | pairs/s | tokens/s | peak MB | x predict "
        "| % of matmul peak | tau | top-10 |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['n']} | {r['mode']} | {r['error'][:60]} |||||||")
            continue
        lines.append(
            f"| {r['model']} | {r['n']} | {r['mode']} | {r['latency_s'] * 1000:.0f} "
            f"| {r['pairs_per_s']:.0f} | {r['tokens_per_s']} | {r['peak_extra_mb']:.0f} "
            f"| {r.get('x_predict', '')} | {100 * r['peak_fraction']:.0f}% ({r['peak_used']}) "
            f"| {r.get('kendall_tau', '')} | {r.get('top10_overlap', '')} |"
        )
    table = "\n".join(lines)
    print(table)
    return table


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    texts, queries = load_data(Path(args.data))
    query = queries[0]
    peaks = {
        "fp32": round(matmul_peak(torch.float32), 1),
        "bf16": round(matmul_peak(torch.bfloat16), 1),
    }
    print(f"matmul peak GFLOP/s: {peaks}  load={load_average()}", flush=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = (
        []
        if args.skip_main
        else bench_model(
            "MiniLM-L6",
            args.model,
            sizes,
            texts,
            query,
            args,
            peaks,
            crossrank_modes(),
            with_peers=not args.skip_peers,
            repeats=args.repeats,
        )
    )
    from crossrank.scorers import clear_model_cache

    clear_model_cache()
    if not args.skip_large:
        folder = Path(tempfile.gettempdir()) / "crossrank-bench-xlmr-large"
        large = build_large_model(folder, args.model)
        large_modes = {k: v for k, v in crossrank_modes().items() if "onnx" not in k}
        rows += bench_model(
            "XLM-R-large",
            large,
            [int(x) for x in args.large_sizes.split(",")],
            texts,
            query,
            args,
            peaks,
            large_modes,
            with_peers=False,
            repeats=args.large_repeats,
        )
        clear_model_cache()
    if not args.skip_causal:
        folder = Path(tempfile.gettempdir()) / "crossrank-bench-qwen3-reranker-0.6b"
        rows += bench_causal(build_causal_model(folder, args.model), texts, query, args, peaks)
        clear_model_cache()
    concurrency = (
        None if args.skip_concurrency else bench_concurrency(args.model, texts, queries, args)
    )
    table = print_table(rows)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "load_average_at_end": load_average(),
            "torch": torch.__version__,
        },
        "matmul_peak_gflops": peaks,
        "rows": rows,
        "concurrency": concurrency,
        "table_markdown": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
