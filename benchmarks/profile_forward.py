"""Where a rerank call's time goes: torch's profiler over one N=100 call, per operator class.

The speed targets of the benchmark that are not reached are limited by what this shows: the
share of time in matrix multiplies (which bf16 speeds up) against everything else (softmax,
layer norm, GELU, copies, tokenisation), which bf16 does not.

    python benchmarks/profile_forward.py [--model ../shared/models/minilm-l6-scifact-ce]
        [--data ../shared/data/cranfield] [--n 100] [--threads 2]

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
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from crossrank import Reranker

    texts, queries = load_data(Path(args.data))
    docs = random.Random(0).sample(texts, args.n)
    query = queries[0]
    report = {}
    for label, settings in {"fp32 (default)": {}, "bf16": {"dtype": "bfloat16"}}.items():
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
    out = ROOT / "benchmarks/results/profile.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
