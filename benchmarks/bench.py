"""crossrank speed benchmark: one run, the same passages, crossrank's modes against the peers.

Run it through `benchmarks/run.sh` (`make bench`: creates .venv-bench with the peers) or, for a
GPU, `benchmarks/gpu.sh`. It prints a table and writes JSON (default
benchmarks/results/latest.json). What it measures, per model and N:

- median latency of one rerank call of N candidates, after one warm-up call, every contender
  timed once per round in interleaved rounds (the order rotates each round) so that the load
  of a shared machine drifting during the run hits all alike;
- each contender runs in its own process (benchmarks/worker.py): its peak resident memory is
  its own, a peer that needs other library versions runs from its own venv, and the on-disk
  cache it writes (ONNX export, OpenVINO IR) is measured in a fresh HOME;
- the ratio to `sentence_transformers.CrossEncoder.predict` with its defaults, and the share
  of the matmul peak measured in the same run (torch fp32 / bf16 matmul, best sample taken
  between rounds) that the useful FLOPs on real (unpadded) tokens reach;
- fidelity against CrossEncoder.predict (torch float32): Kendall tau, top-10 overlap, max
  absolute score difference;
- concurrent load: 32 queries of 50 candidates through `arerank` at once versus the same
  calls one after another.

Calibration pairs for the int8 mode come from other queries and other documents than the
measured ones. The load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "benchmarks" / "worker.py"
BASELINE = "CrossEncoder.predict (defaults)"
CAUSAL_BASELINE = "CrossEncoder.predict (card prompt)"
SRC = [str(ROOT / "src")]  # set from --src: what the workers (and quantize) import
# sentence-transformers' own backends need optimum-intel (OpenVINO) and optimum-onnx (ONNX),
# which pin transformers (and so sentence-transformers) to other versions than crossrank's:
# run.sh gives each a venv of its own.
ST_OPENVINO_PYTHON = ROOT / ".venv-bench-st-openvino" / "bin" / "python"
ST_ONNX_PYTHON = ROOT / ".venv-bench-st-onnx" / "bin" / "python"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    models = ROOT.parent / "shared" / "models"
    p.add_argument(
        "--model",
        default=os.environ.get("CROSSRANK_MODEL") or str(models / "minilm-l6-scifact-ce"),
        help="MiniLM-sized cross-encoder; a random-weights one of its shape is built if absent",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--preset",
        choices=["cpu", "gpu"],
        default=None,
        help="contender set: cpu (default on cpu) or gpu (torch fp16/bf16; default on cuda)",
    )
    p.add_argument("--sizes", default="10,100", help="candidate counts N, MiniLM")
    p.add_argument("--large-sizes", default="10", help="N for the XLM-R-large-sized model")
    p.add_argument("--causal-sizes", default="", help="N for the 0.6B causal-LM reranker")
    p.add_argument("--causal-lm", default="", help="folder of a Qwen3-Reranker-sized model")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds per cell (median)")
    p.add_argument("--large-repeats", type=int, default=3, help="rounds, large models")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every contender")
    p.add_argument(
        "--max-other-load",
        type=float,
        default=(os.cpu_count() or 2) / 2,
        help="cores busy with other work than the benchmark above which a round is noisy "
        "(default: half the cores)",
    )
    p.add_argument(
        "--noisy-retries",
        type=int,
        default=3,
        help="times a noisy round is repeated before it is kept and its cell marked noisy",
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--concurrent-n", type=int, default=50)
    p.add_argument("--concurrent-rounds", type=int, default=1)
    p.add_argument(
        "--concurrent-modes",
        default="crossrank default (auto)",
        help="comma-separated mode names (as in the table) for the concurrency part",
    )
    p.add_argument(
        "--calibration-pairs",
        type=int,
        default=160,
        help="pairs written for `crossrank quantize` (it holds 5 queries of 8 apart)",
    )
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--skip-main", action="store_true", help="only the concurrency part")
    p.add_argument("--skip-concurrency", action="store_true")
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--skip-int8", action="store_true", help="no calibrated int8 mode")
    p.add_argument("--quick", action="store_true", help="N=10 only, 2 rounds, no large model")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    p.add_argument("--work", default="", help="folder for built models and caches (temp)")
    p.add_argument(
        "--src",
        default=str(ROOT / "src"),
        help="the crossrank source the contenders import (another checkout's, to compare)",
    )
    args = p.parse_args(argv)
    if args.preset is None:
        args.preset = "gpu" if args.device.startswith("cuda") else "cpu"
    if args.quick:
        args.sizes, args.repeats, args.skip_large = "10", 2, True
        args.large_repeats, args.concurrency, args.concurrent_n = 1, 4, 10
        args.calibration_pairs = min(args.calibration_pairs, 64)
    return args


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# -- data ----------------------------------------------------------------------------------------


def load_data(folder: Path) -> tuple[list[str], list[str]]:
    """Cranfield passages and queries; synthetic ones of the same lengths where it is absent."""
    if not (folder / "corpus.jsonl").is_file():
        return synthetic_data()
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").open()]
    texts = [f"{d.get('title', '')} {d['text']}".strip() for d in docs]
    return [t for t in texts if t], queries  # a few Cranfield records are empty


SYNTHETIC_WORDS = [
    "flow",
    "boundary",
    "layer",
    "pressure",
    "wing",
    "shock",
    "heat",
    "transfer",
    "supersonic",
    "body",
    "surface",
    "mach",
    "number",
    "velocity",
    "plate",
    "theory",
    "results",
    "solution",
    "experimental",
    "method",
    "cylinder",
    "nose",
    "temperature",
    "wave",
    "compressible",
    "viscous",
    "laminar",
    "turbulent",
    "edge",
    "cone",
    "angle",
    "attack",
    "free",
    "stream",
    "gas",
    "effect",
    "distribution",
    "region",
    "separation",
    "jet",
    "shell",
    "buckling",
    "load",
    "stress",
]


def synthetic_data() -> tuple[list[str], list[str]]:
    """1400 passages of 80 to 260 words and 225 queries of 8 to 20 words, fixed seed.

    Cranfield's shape (its passages run ~180 tokens): on a fresh GPU machine only the token
    counts matter, and scores of a random-weights model mean nothing anyway.
    """
    rng = random.Random(0)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(rng.randint(lo, hi)))

    return [text(80, 260) for _ in range(1400)], [text(8, 20) for _ in range(225)]


# -- models --------------------------------------------------------------------------------------


def build_minilm_sized(folder: Path) -> str:
    """A random-weights BERT of MiniLM-L6's shape (6 layers, hidden 384, vocab 30522).

    Its word-level tokenizer knows the synthetic words, so token counts match real text.
    """
    if (folder / "config.json").is_file():
        return str(folder)
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + sorted(set(SYNTHETIC_WORDS))
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    tok.model_max_length = 512
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=1,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def build_large_model(folder: Path, tokenizer_from: str) -> str:
    """XLM-RoBERTa large (24 layers, hidden 1024), random weights: bge-reranker-v2-m3's shape.

    The hub is unreachable, so the tokenizer is the MiniLM model's (the vocabulary size only
    changes the embedding table, not the compute per token).
    """
    if (folder / "config.json").is_file():
        return str(folder)
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    config = XLMRobertaConfig(
        vocab_size=len(tok),
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


def build_causal_lm(folder: Path, tokenizer_from: str) -> str:
    """Qwen3-Reranker-0.6B's shape (Qwen3, 28 layers, hidden 1024, GQA 16/8, vocabulary
    151,936, tied embeddings: 0.6B parameters), random weights.

    The hub is unreachable, so the tokenizer is the MiniLM model's WordPiece (about as many
    tokens per word as Qwen's BPE) plus the chat tokens of the Qwen3 prompt, adding no
    [CLS]/[SEP] (like Qwen's); only the ids it produces are used, all inside the embedding
    table. (The recipe of issue 11's causal-LM benchmark.)
    """
    if (folder / "config.json").is_file():
        return str(folder)
    import copy

    import torch
    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    wordpiece = AutoTokenizer.from_pretrained(tokenizer_from)
    inner = copy.deepcopy(wordpiece._tokenizer)
    inner.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=inner,
        pad_token=wordpiece.pad_token,
        unk_token=wordpiece.unk_token,
        model_max_length=8192,  # the card's length, not the MiniLM tokenizer's
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


def has_causal_family() -> bool:
    """Whether this crossrank has the Qwen3-Reranker family (issue 11)."""
    try:
        from crossrank.models.families import qwen3_reranker  # noqa: F401
    except ImportError:
        return False
    return True


def max_length_of(model: str) -> int:
    from crossrank.models import ModelScorer

    return ModelScorer(model, device="cpu").max_length


# -- measuring -----------------------------------------------------------------------------------


def matmul_peak(dtype: Any, device: str = "cpu", n: int = 0, repeats: int = 5) -> float:
    """GFLOP/s (GOP/s for int8) of an n x n matrix product (best of `repeats`): torch.matmul,
    or for int8 `torch._int_mm` (int8 x int8 -> int32, oneDNN's VNNI kernel on this CPU),
    the roof an int8 IR's matmuls can reach."""
    import torch

    n = n or (2048 if device == "cpu" else 8192)  # a GPU needs larger ones to reach its peak
    if dtype == torch.int8:
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)

        def product() -> Any:
            return torch._int_mm(a, b)
    else:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)

        def product() -> Any:
            return torch.matmul(a, b)

    product()
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        product()
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def pair_flops(lengths: list[int], config: Any) -> float:
    """Useful forward FLOPs of a transformer on real (unpadded) tokens."""
    if getattr(config, "model_type", "") in ("qwen2", "qwen3", "gemma", "llama"):
        return causal_flops(lengths, config)
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


def folder_mb(folder: Path) -> float:
    if not folder.exists():
        return 0.0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class OtherLoad:
    """How many cores other processes than this benchmark kept busy during a span.

    The load average cannot tell the benchmark's own threads from the rest of a shared
    machine, and it lags by a minute. Here: the machine's busy CPU time (psutil, /proc/stat)
    over the span, less the CPU time this process and its workers used, divided by the
    wall time. A round taken while other work held more than `--max-other-load` cores is
    repeated (torch's thread pool suffers far more from that than OpenVINO's, so a noisy
    round skews every ratio to `predict`).
    """

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()

    def _own(self) -> float:
        total = 0.0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except self.psutil.Error:  # a child that ended in between
                continue
            total += t.user + t.system
        return total

    def _busy(self) -> float:
        t = self.psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)

    def start(self) -> None:
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()

    def stop(self) -> float:
        wall = max(time.perf_counter() - self.t0, 1e-6)
        other = (self._busy() - self.busy0) - (self._own() - self.own0)
        return round(max(other, 0.0) / wall, 2)


def timed_rounds(
    names: list[str],
    repeats: int,
    call: Any,
    args: argparse.Namespace,
    meter: OtherLoad,
) -> tuple[dict[str, list[dict[str, Any]]], list[float], int]:
    """`repeats` interleaved rounds of `call(name)` (order rotating), each repeated while
    other work held more than `args.max_other_load` cores, up to `args.noisy_retries` times;
    a round still noisy after that is kept, counted in the third value."""
    replies: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    loads: list[float] = []
    noisy = 0
    for r in range(repeats):
        shift = r % max(1, len(names))
        order = names[shift:] + names[:shift]
        for attempt in range(args.noisy_retries + 1):
            meter.start()
            got = {name: call(name) for name in order}
            other = meter.stop()
            if other <= args.max_other_load or attempt == args.noisy_retries:
                break
            print(f"  round {r + 1}: other load {other} cores, repeating", flush=True)
        noisy += other > args.max_other_load
        loads.append(other)
        for name, reply in got.items():
            replies[name].append(reply)
    return replies, loads, noisy


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# -- the contenders -------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    python: str = sys.executable
    model: str | None = None  # another model folder than the cell's (the int8 one)
    note: str = ""
    max_n: int | None = None  # timed only up to this N (a slow wrapper of predict)


def cpu_crossrank_modes(int8_folder: str | None) -> list[Contender]:
    modes = [
        Contender("crossrank default (auto)", "crossrank"),
        Contender("crossrank torch fp32", "crossrank", {"backend": "torch"}),
        Contender("crossrank torch bf16", "crossrank", {"backend": "torch", "dtype": "bfloat16"}),
        Contender("crossrank onnx fp32", "crossrank", {"backend": "onnx"}),
        Contender("crossrank openvino f32", "crossrank", {"backend": "openvino"}),
        Contender(
            "crossrank openvino bf16", "crossrank", {"backend": "openvino", "dtype": "bfloat16"}
        ),
    ]
    if int8_folder:
        modes.append(
            Contender(
                "crossrank openvino int8 (calibrated)",
                "crossrank",
                {"backend": "openvino"},
                model=int8_folder,
            )
        )
    return modes


def cpu_peers(model_dir: str, work: Path) -> list[Contender]:
    peers = [
        Contender(
            "sentence-transformers onnx", "predict", {"backend": "onnx"}, python=str(ST_ONNX_PYTHON)
        ),
        Contender(
            "sentence-transformers openvino",
            "predict",
            {"backend": "openvino"},
            python=str(ST_OPENVINO_PYTHON),
        ),
    ]
    flash = flashrank_folders(model_dir, work / "flashrank")
    for variant in ("fp32", "int8"):
        name = f"FlashRank {variant} (same model in its ONNX layout)"
        if "error" in flash:
            peers.append(Contender(name, "flashrank", note=flash["error"]))
            continue
        folder, model_file = flash[variant]
        settings = {"flashrank_dir": folder, "model_file": model_file}
        peers.append(Contender(name, "flashrank", settings))
    # These three call sentence-transformers' CrossEncoder.predict underneath (torch fp32), so
    # they are slower than the baseline at every N: timed at the smallest N only, to keep a
    # full run within half an hour on two cores.
    peers += [
        Contender("llama-index SentenceTransformerRerank", "llama-index", max_n=10),
        Contender("langchain CrossEncoderReranker", "langchain", max_n=10),
        Contender("rerankers (cross-encoder)", "rerankers", max_n=10),
    ]
    return peers


def flashrank_folders(model_dir: str, root: Path) -> dict[str, Any]:
    """The model exported to ONNX in the layout FlashRank loads from its cache_dir.

    FlashRank ships its own models (a zip per model from the hub, unreachable here), most of
    them dynamic-int8 ONNX files ("_Q"); the same fixture in its layout, as float32 and as
    dynamic int8 like those, makes the comparison one of runtimes, not of models. Returns
    {variant: (folder, model file)}, or {"error": why}.
    """
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        return {"error": f"unavailable: {exc}"}
    out: dict[str, Any] = {}
    tok = AutoTokenizer.from_pretrained(model_dir)
    for variant in ("fp32", "int8"):
        folder = root / f"fixture-{variant}"
        target = folder / f"flashrank-fixture-{variant}.onnx"
        out[variant] = (str(folder), target.name)
        if target.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(folder)
        special = folder / "special_tokens_map.json"
        if not special.is_file():  # transformers 5 no longer writes it; FlashRank reads it
            special.write_text(json.dumps(tok.special_tokens_map))
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        cfg.setdefault("model_max_length", tok.model_max_length)
        cfg.setdefault("pad_token", tok.pad_token)
        (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
        fp32 = root / "fixture-fp32" / "flashrank-fixture-fp32.onnx"
        if variant == "fp32":
            model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
            model.config.save_pretrained(folder)
            enc = tok(["a query"], ["a passage"], return_tensors="pt")
            names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
            axes = {n: {0: "batch", 1: "seq"} for n in names}
            with torch.inference_mode():
                torch.onnx.export(
                    model,
                    tuple(enc[n] for n in names),
                    str(target),
                    input_names=names,
                    output_names=["logits"],
                    dynamic_axes={**axes, "logits": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                )
        else:
            shutil.copy(fp32.parent / "config.json", folder / "config.json")
            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
    return out


# -- workers -------------------------------------------------------------------------------------


class Worker:
    """A contender's process: load once, then one request at a time."""

    def __init__(self, contender: Contender, spec: dict[str, Any], home: Path) -> None:
        self.contender = contender
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.endswith("_CACHE")}
        env.update(HOME=str(home), PYTHONPATH=SRC[0], PYTHONUNBUFFERED="1")
        # Libraries write their caches under HOME (crossrank's ONNX export and OpenVINO IR,
        # optimum's export): a fresh one per contender makes its size that contender's own.
        self.log = (home / "worker.log").open("w")
        self.proc = subprocess.Popen(
            [contender.python, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.loaded = self.request(spec)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            tail = (self.home / "worker.log").read_text()[-300:].strip().splitlines()
            return {"ok": False, "error": f"worker exited: {tail[-1] if tail else '?'}"}
        return json.loads(line)

    def cache_mb(self) -> float:
        return folder_mb(self.home / ".cache")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def start_workers(
    contenders: list[Contender], model: str, args: argparse.Namespace, work: Path, label: str
) -> tuple[dict[str, Worker], dict[str, str]]:
    live: dict[str, Worker] = {}
    failed: dict[str, str] = {}
    max_length = max_length_of(model)
    for i, c in enumerate(contenders):
        if c.note:
            failed[c.name] = c.note
            continue
        if not Path(c.python).is_file():
            failed[c.name] = f"unavailable: no {c.python} (benchmarks/run.sh builds it)"
            continue
        spec = {
            "kind": c.kind,
            "model": c.model or model,
            "threads": args.threads,
            "device": args.device,
            "settings": c.settings,
            "max_length": max_length,
        }
        worker = Worker(c, spec, work / "homes" / f"{label}-{i}")
        if worker.loaded.get("ok"):
            live[c.name] = worker
            print(f"  loaded {c.name} in {worker.loaded['load_s']} s", flush=True)
        else:
            failed[c.name] = worker.loaded.get("error", "failed to load")
            print(f"  {c.name}: {failed[c.name]}", flush=True)
            worker.close()
    return live, failed


# -- the run -------------------------------------------------------------------------------------


def bench_model(
    label: str,
    model: str,
    sizes: list[int],
    texts: list[str],
    query: str,
    args: argparse.Namespace,
    peaks: dict[str, float],
    contenders: list[Contender],
    repeats: int,
    work: Path,
) -> list[dict[str, Any]]:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    max_length = max_length_of(model)
    print(f"{label}: starting {len(contenders)} contenders", flush=True)
    live, failed = start_workers(contenders, model, args, work, label.replace(" ", "_"))
    pool = measured_pool(texts, max(sizes))
    rows: list[dict[str, Any]] = []
    meter = OtherLoad()
    try:
        for n in sizes:
            candidates = pool[:n]
            enc = tokenizer(
                [query] * n, candidates, truncation="only_second", max_length=max_length
            )["input_ids"]
            lengths = [len(x) for x in enc]
            flops = pair_flops(lengths, config)
            request = {"op": "score", "query": query, "texts": candidates}
            errors: dict[str, str] = {}
            replies: dict[str, list[dict[str, Any]]] = {}
            here = {c.name for c in contenders if c.max_n is None or n <= c.max_n}
            for name, w in live.items():  # warm-up
                if name not in here:
                    errors[name] = "skipped"
                    continue
                reply = w.request(request)
                if "error" in reply:
                    errors[name] = reply["error"]
                else:
                    replies[name] = []
            names = [n_ for n_ in live if n_ not in errors]
            got, loads, noisy = timed_rounds(
                names,
                repeats,
                lambda name, request=request: live[name].request(request),
                args,
                meter,
            )
            for name, answers in got.items():
                for reply in answers:
                    if "error" in reply:
                        errors[name] = reply["error"]
                    elif name not in errors:
                        replies[name].append(reply)
            sample_peaks(peaks, args.device)
            noise = {"other_load": statistics.median(loads) if loads else None, "noisy": noisy}
            rows += cell_rows(
                label,
                n,
                [c for c in contenders if c.name in here],
                live,
                failed,
                errors,
                replies,
                lengths,
                flops,
                peaks,
                noise,
            )
    finally:
        for w in live.values():
            w.close()
    return rows


def measured_pool(texts: list[str], n: int) -> list[str]:
    return random.Random(0).sample(texts, n)


def sample_peaks(peaks: dict[str, float], device: str) -> None:
    import torch

    for key, dtype in peak_dtypes(device).items():
        peaks[key] = max(peaks.get(key, 0.0), round(matmul_peak(dtype, device, repeats=2), 1))
    del torch


def peak_dtypes(device: str) -> dict[str, Any]:
    import torch

    if device == "cpu":
        peaks = {"fp32": torch.float32, "bf16": torch.bfloat16}
        if hasattr(torch, "_int_mm"):
            peaks["int8"] = torch.int8
        return peaks
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_key(name: str, settings: dict[str, Any]) -> str:
    dtype = str(settings.get("dtype", ""))
    if "bf16" in name or dtype == "bfloat16":
        return "bf16"
    if "fp16" in name or dtype == "float16":
        return "fp16"
    if "int8" in name:
        return "int8"
    return "fp32"


def cell_rows(
    label: str,
    n: int,
    contenders: list[Contender],
    live: dict[str, Worker],
    failed: dict[str, str],
    errors: dict[str, str],
    replies: dict[str, list[dict[str, Any]]],
    lengths: list[int],
    flops: float,
    peaks: dict[str, float],
    noise: dict[str, Any],
) -> list[dict[str, Any]]:
    rows = []
    # The baseline: predict; for a causal LM, predict fed the card's prompt; where neither ran,
    # crossrank's exact torch mode (the row says so).
    names = (BASELINE, CAUSAL_BASELINE, "crossrank torch fp32")
    base_name = next((n for n in names if replies.get(n)), BASELINE)
    base = replies.get(base_name)
    base_s = statistics.median(x["seconds"] for x in base) if base else None
    reference = base[-1]["scores"] if base else None
    for c in contenders:
        row: dict[str, Any] = {"model": label, "n": n, "mode": c.name}
        why = failed.get(c.name) or errors.get(c.name)
        if why or not replies.get(c.name):
            row["error"] = why or "no timed call"
            rows.append(row)
            print(f"{label:12} N={n:<4} {c.name:40} {row['error']}", flush=True)
            continue
        got = replies[c.name]
        w = live[c.name]
        seconds = statistics.median(x["seconds"] for x in got)
        key = peak_key(c.name, c.settings)
        row.update(
            latency_s=round(seconds, 4),
            seconds_all=[round(x["seconds"], 4) for x in got],
            pairs_per_s=round(n / seconds, 1),
            tokens_per_s=round(sum(lengths) / seconds),
            gflops=round(flops / seconds / 1e9, 1),
            # No fp16 peak is sampled on a CPU (the gpu preset's CPU check has fp16 modes).
            peak_fraction=round(flops / seconds / 1e9 / peaks[key], 3) if key in peaks else None,
            peak_used=key,
            peak_rss_mb=round(max(x["peak_rss_mb"] for x in got)),
            max_rss_mb=round(max(x["max_rss_mb"] for x in got)),
            load_s=w.loaded.get("load_s"),
            disk_cache_mb=round(w.cache_mb(), 1),
            other_load=noise["other_load"],
            noisy_rounds=noise["noisy"],
        )
        if base_s:
            row["x_predict"] = round(base_s / seconds, 2)
            if base_name not in (BASELINE, CAUSAL_BASELINE):
                row["baseline"] = base_name
        if reference is not None:
            scores = got[-1]["scores"]
            tau, overlap = rank_agreement(scores, reference)
            row.update(kendall_tau=round(tau, 4), top10_overlap=round(overlap, 2))
            if w.loaded.get("rank_only"):
                row["rank_only"] = True
            else:
                diffs = [abs(a - b) for a, b in zip(scores, reference, strict=True)]
                row.update(max_abs_diff=float(f"{max(diffs):.2g}"))
        rows.append(row)
        print(
            f"{label:12} N={n:<4} {c.name:40} {seconds * 1000:9.1f} ms "
            f"x{row.get('x_predict', float('nan')):.2f}  tau={row.get('kendall_tau', '-')}  "
            f"diff={row.get('max_abs_diff', '-')}  rss={row['peak_rss_mb']} MB  "
            f"load={load_average()}",
            flush=True,
        )
    return rows


def calibration_file(
    texts: list[str], queries: list[str], measured: set[str], count: int, out: Path
) -> Path:
    """JSON Lines pairs from other queries (not query 0) and other documents than measured."""
    rng = random.Random(7)
    others = [t for t in texts if t not in measured]
    per_query = 8  # `crossrank quantize` holds some of these queries apart to measure fidelity
    lines = []
    for q in queries[1:]:
        for d in rng.sample(others, per_query):
            lines.append(json.dumps({"query": q, "document": d}))
        if len(lines) >= count:
            break
    out.write_text("\n".join(lines[:count]) + "\n")
    return out


def quantize(model: str, calibration: Path, out: Path) -> dict[str, Any]:
    """`crossrank quantize` (the documented CLI), timed; its fidelity report if it wrote one."""
    if (out / "config.json").is_file() or any(out.glob("*.xml")):
        return {"folder": str(out), "cached": True}
    cmd = [
        sys.executable,
        "-m",
        "crossrank.cli",
        "quantize",
        "--model",
        model,
        "--calibration",
        str(calibration),
        "--out",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    info: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        info["error"] = " ".join(tail[-1].split()) if tail else f"exit {proc.returncode}"
        return info
    info["folder"] = str(out)
    info["stdout_tail"] = proc.stdout.strip().splitlines()[-8:]
    # The fidelity report: crossrank's marker in the folder, or a report file beside it.
    candidates = [out / "crossrank-quantized.json", *sorted(out.parent.glob(f"{out.name}*.json"))]
    for report in candidates:
        try:
            info["report"] = json.loads(report.read_text())
            break
        except (ValueError, OSError):
            continue
    info["folder_mb"] = round(folder_mb(out), 1)
    irs = {p.parent for p in out.rglob("*.xml")}
    info["ir_mb"] = round(sum(folder_mb(p) for p in irs), 1)
    return info


def bench_concurrency(
    model: str,
    texts: list[str],
    queries: list[str],
    args: argparse.Namespace,
    contenders: list[Contender],
    work: Path,
) -> dict[str, Any]:
    rng = random.Random(1)
    jobs = [[q, rng.sample(texts, args.concurrent_n)] for q in queries[: args.concurrency]]
    out: dict[str, Any] = {"queries": len(jobs), "candidates": args.concurrent_n, "modes": {}}
    wanted = [x.strip() for x in args.concurrent_modes.split(",") if x.strip()]
    for name in wanted:
        base = next((c for c in contenders if c.name == name), None)
        if base is None:
            out["modes"][name] = {"error": "no such mode in this preset"}
            continue
        for microbatch in (False, True):
            c = Contender(
                f"{name}, microbatch={microbatch}",
                base.kind,
                {**base.settings, "microbatch": microbatch},
                base.python,
                base.model,
            )
            live, failed = start_workers([c], model, args, work, "concurrency")
            if c.name in failed:
                out["modes"][c.name] = {"error": failed[c.name]}
                continue
            reply = live[c.name].request(
                {"op": "concurrency", "jobs": jobs, "rounds": args.concurrent_rounds}
            )
            live[c.name].close()
            out["modes"][c.name] = reply
            print(f"concurrent {c.name}: {reply}  load={load_average()}", flush=True)
    return out


def peak_text(row: dict[str, Any]) -> str:
    if row.get("peak_fraction") is None:
        return "-"
    return f"{100 * row['peak_fraction']:.0f}% {row['peak_used']}"


def noise_text(row: dict[str, Any]) -> str:
    """The median cores other work held during the cell's rounds; 'noisy' when some round
    stayed above --max-other-load after its retries."""
    if row.get("other_load") is None:
        return "-"
    text = f"{row['other_load']:g}"
    return f"{text} (noisy: {row['noisy_rounds']})" if row.get("noisy_rounds") else text


def print_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | N | mode | median ms | x predict | pairs/s | % of matmul peak | tau "
        "| top-10 | max abs diff | peak RSS MB | disk cache MB | load s | other load |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        if "error" in r:
            why = " ".join(r["error"].split()).replace("|", "/")[:90]
            lines.append(f"| {r['model']} | {r['n']} | {r['mode']} | {why} |||||||||||")
            continue
        lines.append(
            f"| {r['model']} | {r['n']} | {r['mode']} | {r['latency_s'] * 1000:.0f} "
            f"| {r.get('x_predict', '')}{' (vs ' + r['baseline'] + ')' if 'baseline' in r else ''} "
            f"| {r['pairs_per_s']:.0f} "
            f"| {peak_text(r)} "
            f"| {r.get('kendall_tau', '')} | {r.get('top10_overlap', '')} "
            f"| {r.get('max_abs_diff', 'ranks only')} | {r['peak_rss_mb']} "
            f"| {r['disk_cache_mb']:g} | {r['load_s']} | {noise_text(r)} |"
        )
    table = "\n".join(lines)
    print(table)
    return table


DEFAULT_MODE = "crossrank default (auto)"
BF16_MODE = "crossrank openvino bf16"
INT8_MODE = "crossrank openvino int8 (calibrated)"


def fidelity_class(row: dict[str, Any]) -> str:
    """exact (tau 1, diff <= 1e-4), bf16 (tau >= 0.98, top-10 >= 0.9), int8 (tau >= 0.95,
    top-10 >= 0.9) or lossy: the classes in which a peer is compared with crossrank."""
    tau, top = row.get("kendall_tau", 0.0), row.get("top10_overlap", 0.0)
    diff = row.get("max_abs_diff")
    same_scores = row.get("rank_only") or (diff is not None and diff <= 1e-4)
    if tau >= 0.9999 and top >= 1.0 and same_scores:
        return "exact"
    if tau >= 0.98 and top >= 0.9:
        return "bf16"
    if tau >= 0.95 and top >= 0.9:
        return "int8"
    return "lossy"


def check_targets(
    rows: list[dict[str, Any]], concurrency: dict[str, Any] | None, n_main: int = 100
) -> list[dict[str, Any]]:
    """The issue's targets against this run: what was asked, what was measured, met or not."""
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r:
            cells.setdefault((r["model"], r["n"]), {})[r["mode"]] = r
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    for model, n in (("MiniLM-L6", n_main), ("XLM-R-large", 10)):
        cell = cells.get((model, n))
        if not cell:
            continue
        where = f"{model} N={n}"
        # Issue 20's targets: the share of the roof measured in this run, not a ratio to a
        # baseline whose speed depends on the machine's load.
        d = cell.get(DEFAULT_MODE)
        if d:
            exact = d.get("kendall_tau", 0) >= 0.9999 and d.get("max_abs_diff", 1) <= 1e-4
            add(
                f"{where}: default exact (tau 1, diff <= 1e-4), >= 65% of the fp32 peak",
                f"{peak_text(d)}, {d['x_predict']}x predict, tau {d['kendall_tau']}, "
                f"diff {d.get('max_abs_diff')}",
                exact and (d.get("peak_fraction") or 0) >= 0.65,
            )
        b = cell.get(BF16_MODE)
        if b:
            ok = b["kendall_tau"] >= 0.99
            add(
                f"{where}: bf16 tau >= 0.99, >= 55% of the bf16 peak",
                f"{peak_text(b)}, {b['x_predict']}x predict, tau {b['kendall_tau']}",
                ok and (b.get("peak_fraction") or 0) >= 0.55,
            )
        q = cell.get(INT8_MODE)
        if q and b:
            ok = q["kendall_tau"] >= 0.97 and q["top10_overlap"] >= 0.9
            speed = round(b["latency_s"] / q["latency_s"], 2)
            add(
                f"{where}: int8 tau >= 0.97, top-10 >= 0.9, >= 1.4x the bf16 mode",
                f"{speed}x bf16 ({peak_text(q)}), tau {q['kendall_tau']}, "
                f"top-10 {q['top10_overlap']}",
                ok and speed >= 1.4,
            )
        # Peers: each against crossrank's mode of the same fidelity class.
        headline = {"exact": DEFAULT_MODE, "bf16": BF16_MODE, "int8": INT8_MODE}
        for name, peer in cell.items():
            if name.startswith(("crossrank", "CrossEncoder")):
                continue
            klass = fidelity_class(peer)
            if klass == "lossy":
                mine = max(
                    (r for k, r in cell.items() if k.startswith("crossrank")),
                    key=lambda r: r["x_predict"],
                )
            else:
                # The mode of the peer's class, else a more faithful one.
                order = ("exact", "bf16", "int8")
                ours = reversed(order[: order.index(klass) + 1])
                mine = next((cell[headline[k]] for k in ours if headline[k] in cell), None)
            if mine is None:
                continue
            add(
                f"{where}: crossrank at or above peer {name} ({klass})",
                f"{mine['mode']} {mine['x_predict']}x vs {peer['x_predict']}x",
                mine["x_predict"] >= peer["x_predict"],
            )
    for name, result in (concurrency or {}).get("modes", {}).items():
        if "speedup" in result:
            add(
                f"concurrency ({name}): 32 concurrent queries >= 1.5x serial",
                f"{result['speedup']}x ({result['serial_pairs_per_s']} -> "
                f"{result['concurrent_pairs_per_s']} pairs/s)",
                result["speedup"] >= 1.5,
            )
    return out


def print_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    text = "\n".join(lines)
    print(text)
    return text


def gpu_modes() -> list[Contender]:
    """On CUDA the default (`auto`) is torch in float16; bf16 and exact fp32 beside it."""
    return [
        Contender("crossrank default (auto: torch fp16)", "crossrank"),
        Contender("crossrank torch bf16", "crossrank", {"backend": "torch", "dtype": "bfloat16"}),
        Contender("crossrank torch fp32", "crossrank", {"backend": "torch", "dtype": "float32"}),
        Contender("CrossEncoder.predict fp16", "predict", {"dtype": "float16"}),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    SRC[0] = str(Path(args.src).resolve())
    sys.path.insert(0, SRC[0])
    os.environ["PYTHONPATH"] = SRC[0]  # `crossrank quantize` runs as a subprocess
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="crossrank-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "homes", ignore_errors=True)
    texts, queries = load_data(Path(args.data))
    data_note = "cranfield" if (Path(args.data) / "corpus.jsonl").is_file() else "synthetic"
    query = queries[0]
    model = args.model
    model_note = "trained fixture"
    if not (Path(model) / "config.json").is_file():
        model = build_minilm_sized(work / "minilm-sized-random")
        model_note = "random weights, MiniLM-L6 shape (fixture absent)"
    peaks: dict[str, float] = {}
    sample_peaks(peaks, args.device)
    print(f"matmul peak GFLOP/s: {peaks}  load={load_average()}", flush=True)
    sizes = ints(args.sizes)
    measured = set(measured_pool(texts, max(sizes)))
    baseline = Contender(BASELINE, "predict")
    rows: list[dict[str, Any]] = []
    quantized: dict[str, Any] = {}

    def contenders_for(
        label: str, model_dir: str, peers: bool, with_int8: bool = True
    ) -> list[Contender]:
        if args.preset == "gpu":
            return [baseline, *gpu_modes()]
        int8 = None
        if with_int8 and not args.skip_int8:
            calib = calibration_file(
                texts, queries, measured, args.calibration_pairs, work / f"calib-{label}.jsonl"
            )
            if label not in quantized:  # once per model: the concurrency part reuses it
                quantized[label] = quantize(model_dir, calib, work / f"int8-{label}")
                print(f"{label}: crossrank quantize -> {quantized[label]}", flush=True)
            info = quantized[label]
            int8 = info.get("folder")
        modes = [baseline, *cpu_crossrank_modes(int8)]
        if "error" in quantized.get(label, {}):
            modes.append(
                Contender(
                    "crossrank openvino int8 (calibrated)",
                    "crossrank",
                    note=f"crossrank quantize failed: {quantized[label]['error']}",
                )
            )
        if peers:
            modes += cpu_peers(model_dir, work)
        return modes

    if not args.skip_main:
        rows += bench_model(
            "MiniLM-L6",
            model,
            sizes,
            texts,
            query,
            args,
            peaks,
            contenders_for("MiniLM-L6", model, peers=not args.skip_peers),
            args.repeats,
            work,
        )
    if not args.skip_large and ints(args.large_sizes):
        large = build_large_model(work / "xlmr-large-sized", model)
        large_modes = [
            c
            for c in contenders_for("XLM-R-large", large, peers=False)
            # Exact modes that only repeat what MiniLM shows, at 12 s a call: the reference
            # is CrossEncoder.predict (torch fp32) itself.
            if c.name not in ("crossrank onnx fp32", "crossrank torch fp32")
        ]
        rows += bench_model(
            "XLM-R-large",
            large,
            ints(args.large_sizes),
            texts,
            query,
            args,
            peaks,
            large_modes,
            args.large_repeats,
            work,
        )
    causal, causal_note = "", ""
    if ints(args.causal_sizes):
        if not has_causal_family():
            causal_note = "this crossrank has no Qwen3-Reranker family (issue 11) yet"
        else:
            causal = args.causal_lm or build_causal_lm(work / "qwen3-reranker-0.6b-sized", model)
    if causal:
        causal_modes = [
            # sentence-transformers loads a causal LM with its LogitScore head; fed the card's
            # prompt, it is the same computation as crossrank's family.
            Contender(CAUSAL_BASELINE, "predict-causal"),
            *(
                c
                for c in contenders_for("Qwen3-0.6B", causal, peers=False, with_int8=False)[1:]
                if c.name not in ("crossrank onnx fp32", "CrossEncoder.predict fp16")
                and "int8" not in c.name
            ),
        ]
        for c in causal_modes:
            if c.kind == "crossrank":
                c.settings = {**c.settings, "model_family": "qwen3-reranker"}
        rows += bench_model(
            "Qwen3-0.6B",
            causal,
            ints(args.causal_sizes),
            texts,
            query,
            args,
            peaks,
            causal_modes,
            args.large_repeats,
            work,
        )
    concurrency = None
    if not args.skip_concurrency:
        concurrency = bench_concurrency(
            model, texts, queries, args, contenders_for("MiniLM-L6", model, False), work
        )
    table = print_table(rows)
    targets = check_targets(rows, concurrency, n_main=100 if 100 in sizes else max(sizes))
    targets_table = print_targets(targets) if args.preset == "cpu" else ""
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "argv": sys.argv[1:] if argv is None else argv,
        "data": data_note,
        "model": model_note,
        "causal_lm": causal or causal_note or "not run (--causal-sizes is empty)",
        "machine": machine_info(args),
        "matmul_peak_gflops": peaks,
        "quantize": quantized,
        "rows": rows,
        "concurrency": concurrency,
        "table_markdown": table,
        "targets": targets if args.preset == "cpu" else None,
        "targets_markdown": targets_table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} in {result['seconds']} s, load average {load_average()}")


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "device": args.device,
        "load_average_at_end": load_average(),
        "torch": torch.__version__,
    }
    if args.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    for pkg in ("openvino", "onnxruntime", "sentence_transformers", "transformers", "flashrank"):
        try:
            mod = __import__(pkg)
            info[pkg] = getattr(mod, "__version__", "?")
        except ImportError:
            info[pkg] = None
    return info


if __name__ == "__main__":
    main()
