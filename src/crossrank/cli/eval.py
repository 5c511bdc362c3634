"""`crossrank eval`: whether reranking improves a first-stage ranking (crossrank[eval])."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from crossrank.cli.exit_codes import UsageError
from crossrank.cli.options import add_settings_arguments, parse_setting, settings_from
from crossrank.config import ENGINE_SETTINGS, RerankConfig

NAME = "eval"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    e = subparsers.add_parser(
        NAME,
        help="measure whether reranking improves a first-stage ranking (needs crossrank[eval])",
        description=(
            "On a BEIR-layout collection, rerank the first stage's top --depth per query with "
            "each configuration and print NDCG@10, MRR@10 and Recall for the first stage and "
            "every configuration side by side, with the rerank time per query. Metrics come "
            "from ir-measures (trec_eval). Results are also written as JSON."
        ),
    )
    e.add_argument("--corpus", required=True, help="corpus.jsonl (_id, title, text)")
    e.add_argument("--queries", required=True, help="queries.jsonl (_id, text)")
    e.add_argument("--qrels", required=True, help="qrels.tsv (query-id, corpus-id, score)")
    e.add_argument(
        "--first-stage",
        default="bm25",
        help="'bm25' (default; bm25s, English stopwords and stemmer) or a TREC run file",
    )
    e.add_argument("--depth", type=int, default=100, help="candidates reranked per query (100)")
    e.add_argument(
        "--gain",
        help="map judgement codes to gains when they are not gains, e.g. Cranfield: "
        "'1=4,2=3,3=2,4=1,-1=drop' (every code in the qrels must be mapped)",
    )
    e.add_argument(
        "--ndcg-gain",
        choices=["linear", "exponential"],
        default="linear",
        help="NDCG gain: the grade (linear, trec_eval's ndcg_cut; default) or 2^grade - 1 "
        "(exponential, ranx's ndcg_burges)",
    )
    e.add_argument(
        "--compare",
        action="append",
        metavar="KEY=VALUE,...",
        help="a configuration to evaluate, as settings overriding the options above, e.g. "
        "'model=./m,long_documents=chunk' or 'name=bf16,dtype=bfloat16'; repeat to compare "
        "several (any engine setting, values as its flag takes them; 'name' labels the row)",
    )
    e.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries")
    e.add_argument("--first-stage-only", action="store_true", help="evaluate the first stage alone")
    e.add_argument(
        "--json", default="crossrank-eval.json", help="write results here (crossrank-eval.json)"
    )
    e.add_argument("--plot", help="also draw a bar chart here, e.g. out.png (crossrank[plot])")
    e.add_argument(
        "--thresholds",
        type=parse_thresholds,
        metavar="T,T,...",
        help="also sweep these score thresholds for each configuration, e.g. 0.1,0.3,0.5: "
        "documents kept per query, precision and recall at each (see docs/evaluation.md)",
    )
    add_settings_arguments(
        e,
        RerankConfig,
        include=ENGINE_SETTINGS,
        short={"model": "-m"},
        title="settings (each also a CROSSRANK_<NAME> environment variable)",
    )
    return e


def parse_thresholds(spec: str) -> list[float]:
    """'0.1,0.3,0.5' -> [0.1, 0.3, 0.5]: finite numbers, as `score_threshold` takes them."""
    values = []
    for item in spec.split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not a finite number; e.g. --thresholds 0.1,0.3,0.5"
            )
        values.append(value)
    return values


def parse_compare(spec: str) -> tuple[str | None, dict[str, Any]]:
    """'name=int8,model=./m,long_documents=chunk' -> ('int8', {...settings}), each value read
    as its flag reads it (`cache_size=64` an int, `microbatch=true` a bool)."""
    settings: dict[str, Any] = {}
    name = None
    for item in spec.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise UsageError(
                f"--compare item {item.strip()!r} is not KEY=VALUE; e.g. "
                "--compare 'model=./my-reranker,long_documents=chunk'"
            )
        key = key.strip().replace("-", "_")
        if key == "name":
            name = value.strip()
        else:
            settings[key] = parse_setting(RerankConfig, key, value.strip())
    return name, settings


def run(args: argparse.Namespace) -> int:
    from crossrank import evaluation as ev

    base = settings_from(args, RerankConfig)
    configs: list[tuple[str, RerankConfig]] = []
    for spec in args.compare or [None]:
        name, overrides = parse_compare(spec) if spec else (None, {})
        config = settings_from(args, RerankConfig, overrides=overrides) if overrides else base
        if name is None:
            name = spec or (
                base.scorer or os.path.basename(os.path.normpath(base.model)) or base.model
            )
        configs.append((name, config))
    if args.plot:  # fail before the long part, not after it
        ev.require("matplotlib", "plot")
    collection = ev.load_beir(args.corpus, args.queries, args.qrels, ev.parse_gain(args.gain))
    first_stage: Any = "bm25"
    if args.first_stage != "bm25":
        first_stage = ev.read_trec_run(args.first_stage, args.depth)

    def progress_factory(name: str, total: int) -> Any:
        if not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=name, unit="query", file=sys.stderr)

    report = ev.run_evaluation(
        collection,
        first_stage,
        [] if args.first_stage_only else configs,
        depth=args.depth,
        ndcg_gain=args.ndcg_gain,
        max_queries=args.max_queries,
        progress_factory=progress_factory,
        thresholds=args.thresholds or (),
    )
    print(ev.format_table(report))
    if args.thresholds:
        print(ev.format_thresholds(report))
    for path in (args.json, args.plot):  # e.g. --json results/run.json into a new folder
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(report.to_json(), out, indent=1)
        out.write("\n")
    print(f"results written to {args.json}")
    if args.plot:
        ev.plot_report(report, args.plot)
        print(f"chart written to {args.plot}")
    return 0
