"""Where a rerank call's time goes: per operator class, for torch and for OpenVINO.

The speed targets of the benchmark that are not reached are limited by what this shows: the
share of time in matrix multiplies (which bf16 and int8 speed up) against everything else
(softmax, layer norm, GELU, copies, tokenisation), which they do not.

- torch (fp32, bf16): torch's profiler over one rerank call of N candidates;
- OpenVINO (f32, bf16, and int8 when --int8 names a `crossrank quantize` folder): the
  runtime's own per-node performance counters over the same pairs, in length-sorted batches
  within crossrank's CPU token budget (4096 padded tokens), on the model converted with
  `openvino.convert_model`, as crossrank's OpenVINO runtime does.

    python benchmarks/profile_forward.py [--model ../shared/models/minilm-l6-scifact-ce]
        [--data ../shared/data/cranfield] [--n 100] [--threads 2] [--int8 FOLDER]
        [--runtimes torch,openvino]

Prints one table per mode and writes benchmarks/results/profile.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import load_data  # noqa: E402

MATMUL = ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")
GROUPS = {
    "matmul (linear, attention products)": MATMUL,
    "softmax / attention": ("aten::_softmax", "aten::softmax", "aten::_scaled_dot_product"),
    "layer norm": ("aten::layer_norm", "aten::native_layer_norm"),
    "gelu": ("aten::gelu",),
    "copies, casts, reshapes": (
        "aten::copy_",
        "aten::to",
        "aten::_to_copy",
        "aten::contiguous",
        "aten::clone",
        "aten::cat",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT.parent / "shared/models/minilm-l6-scifact-ce"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/cranfield"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--int8", default="", help="a `crossrank quantize` output folder")
    parser.add_argument("--runtimes", default="torch,openvino")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/profile.json"))
    args = parser.parse_args()
    runtimes = args.runtimes.split(",")

    import torch
    from torch.profiler import ProfilerActivity, profile

    from crossrank import Reranker

    texts, queries = load_data(Path(args.data))
    docs = random.Random(0).sample(texts, args.n)
    query = queries[0]
    report = {}
    torch_modes = {"torch fp32": {"backend": "torch"}, "torch bf16": {"dtype": "bfloat16"}}
    for label, settings in torch_modes.items() if "torch" in runtimes else ():
        settings = {"backend": "torch", **settings}
        rr = Reranker(model=args.model, device="cpu", num_threads=args.threads, **settings)
        rr.rerank(query, docs[:8])  # load and warm up
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            rr.rerank(query, docs)
        wall = time.perf_counter() - started
        ops = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
        total = sum(ops.values())
        shares = {
            group: sum(t for name, t in ops.items() if name.startswith(names)) / total
            for group, names in GROUPS.items()
        }
        shares["everything else"] = 1 - sum(shares.values())
        top = sorted(ops.items(), key=lambda kv: -kv[1])[:8]
        report[label] = {
            "wall_s": round(wall, 2),
            "shares": {k: round(v, 3) for k, v in shares.items()},
            "top_ops_ms": {k: round(v / 1000, 1) for k, v in top},
        }
        print(
            f"\n{label}: one call of N={args.n}, {wall:.2f} s wall (profiled), "
            f"torch threads {torch.get_num_threads()}"
        )
        for group, share in shares.items():
            print(f"  {group:<40} {share:6.1%}")
        print("  top operators (self CPU ms): " + ", ".join(f"{k} {v / 1000:.0f}" for k, v in top))
    if "openvino" in runtimes:
        report.update(profile_openvino(args, query, docs))
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


OV_GROUPS = {
    "matmul (linear, attention products)": ("MatMul", "FullyConnected", "Convolution"),
    "softmax / attention": ("Softmax", "ScaledDotProductAttention", "SDPA"),
    # OpenVINO's CPU plugin fuses attention (QK^T, softmax, V) and element-wise chains
    # (GELU, bias, scale) into generated kernels it reports as one "Subgraph" node.
    "fused subgraphs (attention, GELU, element-wise)": ("Subgraph",),
    "element-wise (add, multiply)": ("Add", "Multiply", "MulAdd", "Eltwise", "Subtract"),
    "layer norm": ("MVN", "NormalizeL2", "RMS"),
    "gelu": ("Gelu",),
    "copies, casts, reshapes": ("Reorder", "Convert", "Reshape", "Transpose", "Concat",
                                "Gather", "StridedSlice", "Broadcast"),
}  # fmt: skip


def profile_openvino(args: argparse.Namespace, query: str, docs: list[str]) -> dict:
    """OpenVINO's per-node counters over the call's batches, per precision."""
    import numpy as np
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    enc = tok([query] * len(docs), docs, truncation="only_second", max_length=512)
    order = sorted(range(len(docs)), key=lambda i: -len(enc["input_ids"][i]))
    batches, current = [], []
    for i in order:  # crossrank's plan: longest first, padded tokens within the budget
        longest = len(enc["input_ids"][current[0]]) if current else len(enc["input_ids"][i])
        if current and longest * (len(current) + 1) > 4096:
            batches.append(current)
            current = []
        current.append(i)
    batches.append(current)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

    def feed(batch: list[int]) -> dict:
        width = max(len(enc["input_ids"][i]) for i in batch)
        out = {}
        for n in names:
            rows = [enc[n][i] + [0] * (width - len(enc[n][i])) for i in batch]
            out[n] = np.asarray(rows, dtype=np.int64)
        return out

    core = ov.Core()
    models = {}
    hf = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    example = {k: torch.from_numpy(v) for k, v in feed(batches[0][:2]).items()}
    with torch.inference_mode():
        models["f32"] = models["bf16"] = ov.convert_model(hf, example_input=example)
    if args.int8:
        xml = next(Path(args.int8).rglob("*.xml"), None)
        if xml is not None:
            models["int8"] = core.read_model(xml)
    report = {}
    for label, model in models.items():
        precision = "bf16" if label == "bf16" else "f32"
        compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": precision,
                "INFERENCE_NUM_THREADS": args.threads,
                "PERF_COUNT": True,
            },
        )
        request = compiled.create_infer_request()
        inputs = {p.get_any_name(): None for p in compiled.inputs}
        request.infer({k: v for k, v in feed(batches[0]).items() if k in inputs})  # warm up
        per_type: dict[str, float] = {}
        started = time.perf_counter()
        for batch in batches:
            request.infer({k: v for k, v in feed(batch).items() if k in inputs})
            for info in request.profiling_info:
                us = info.real_time.total_seconds() * 1e6
                per_type[info.node_type] = per_type.get(info.node_type, 0.0) + us
        wall = time.perf_counter() - started
        total = sum(per_type.values()) or 1.0
        shares = {
            group: sum(t for k, t in per_type.items() if k.startswith(keys)) / total
            for group, keys in OV_GROUPS.items()
        }
        shares["everything else"] = 1 - sum(shares.values())
        top = sorted(per_type.items(), key=lambda kv: -kv[1])[:8]
        name = f"openvino {label}"
        report[name] = {
            "wall_s": round(wall, 2),
            "shares": {k: round(v, 3) for k, v in shares.items()},
            "top_ops_ms": {k: round(v / 1000, 1) for k, v in top},
        }
        print(f"\n{name}: the same N={len(docs)} pairs in {len(batches)} batches, {wall:.2f} s")
        for group, share in shares.items():
            print(f"  {group:<40} {share:6.1%}")
        print("  top node types (ms): " + ", ".join(f"{k} {v / 1000:.0f}" for k, v in top))
    return report


if __name__ == "__main__":
    main()
