"""The `crossrank` command line.

    crossrank rerank --query "..." --input candidates.jsonl [--top-k 10] [--model ...]
    crossrank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv [...]
    crossrank quantize --model M --calibration DATA --out FOLDER
    crossrank demo

`rerank` reads documents as a JSON list or JSON Lines (a file, or stdin with `-`), and writes
one ranked document per line: the caller's fields, with the contract fields added
(`document_id`, `score`, `original_score`, `rerank_position`). A progress bar is shown when
stderr is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import ValidationError

from crossrank import __version__
from crossrank.config import DEFAULT_MODEL
from crossrank.errors import CrossrankError, ModelLoadError
from crossrank.reranker import Reranker
from crossrank.results import RankedDocument

MODEL_ENV = "CROSSRANK_MODEL"


class InputError(CrossrankError, ValueError):
    """The candidates file is not JSON or JSON Lines of documents."""


def read_documents(stream: TextIO, name: str) -> list[Any]:
    """Documents from a JSON list (or {"documents": [...]}) or from JSON Lines."""
    text = stream.read()
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] in "[{" and not _looks_like_jsonl(stripped):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            if not isinstance(data.get("documents"), list):
                raise InputError(f'{name}: a JSON object input needs a "documents" list')
            data = data["documents"]
        return data
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}, line {number}: not valid JSON ({exc})") from exc
    return docs


def _looks_like_jsonl(text: str) -> bool:
    """Several non-empty lines that each start a JSON object: JSON Lines, not one document."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and lines[0].lstrip().startswith("{") and lines[0].rstrip().endswith("}")


def output_record(result: RankedDocument, original_score_field: str, nest: bool) -> dict[str, Any]:
    """The caller's document with the contract fields added, losing nothing.

    A document field that the contract would overwrite is an error (use `--nest`), except the
    previous stage's score field, whose value is kept in `original_score`.
    """
    fields = result.contract_fields()
    for name in ("truncated", "best_chunk", "unreadable"):  # facts, when known
        if getattr(result, name) is not None:
            fields[name] = getattr(result, name)
    if result.unreadable is not None:
        fields["score"] = None  # JSON has no -inf: an unscored document (--on-unreadable last)
    doc = result.document
    if nest or not isinstance(doc, dict):
        return {"document": doc, **fields}
    for name in fields:
        if name in doc and name != original_score_field and doc[name] != fields[name]:
            raise InputError(
                f"document {result.index} (id {result.document_id!r}) already has a field "
                f"{name!r}, which the output would overwrite; rerun with --nest to keep "
                "each document whole under 'document'"
            )
    return {**doc, **fields}


def _json_line(record: dict[str, Any]) -> str:
    """One output line: UTF-8 as it reads, or \\u escapes where a document holds a lone
    surrogate (a bad decode upstream) that UTF-8 cannot encode, so nothing is lost."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record)
    return line


def _progress_callback(total: int) -> Any:
    if not sys.stderr.isatty() or total < 64:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="scoring", unit="pair", file=sys.stderr)
    return bar.update, bar


def _cmd_rerank(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {
        "model": args.model,
        "document_field": args.document_field,
        "original_score_field": args.original_score_field,
        "batch_size": args.batch_size,
        "device": args.device,
        "on_unreadable": args.on_unreadable,
    }
    if args.top_k is not None:
        settings["top_k"] = args.top_k
    if args.scorer:
        settings["scorer"] = args.scorer
    if args.max_length:
        settings["max_length"] = args.max_length
    settings.update(_long_document_settings(args))
    reranker = _stage_reranker(args.stage, settings) if args.stage else Reranker(**settings)
    if args.input == "-":
        documents = read_documents(sys.stdin, "stdin")
    else:
        with open(args.input, encoding="utf-8") as f:
            documents = read_documents(f, args.input)
    update, bar = _progress_callback(len(documents))
    try:
        results = reranker.rerank(args.query, documents, inputs=_inputs(args.var), progress=update)
    finally:
        if bar is not None:
            bar.close()
    # Build every record first: a collision error must not leave a half-written output.
    lines = [
        _json_line(output_record(r, reranker.config.original_score_field, args.nest))
        for r in results
    ]
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
    else:
        sys.stdout.writelines(line + "\n" for line in lines)
    return 0


def _long_document_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"long_documents": args.long_documents}
    for name in ("chunk_overlap", "chunk_pooling", "max_chunks_per_document", "tokenizer"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return settings


def _add_long_document_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--long-documents",
        choices=["truncate", "chunk"],
        default="truncate",
        help="documents longer than the token limit: truncate (default; counted and reported) "
        "or chunk (score overlapping token windows and pool)",
    )
    p.add_argument(
        "--chunk-overlap", type=int, help="tokens shared by windows (default: a quarter)"
    )
    p.add_argument(
        "--chunk-pooling", choices=["max", "mean", "first"], help="window pooling (default max)"
    )
    p.add_argument(
        "--max-chunks-per-document",
        type=int,
        help="windows scored per document at most (default 8); the rest is truncated",
    )
    p.add_argument(
        "--tokenizer",
        help="tokenizer name or folder for counting/splitting tokens with --scorer "
        "(default: the model's own)",
    )


def _parse_compare(spec: str) -> tuple[str | None, dict[str, Any]]:
    """'name=int8,model=./m,long_documents=chunk' -> ('int8', {...settings})."""
    settings: dict[str, Any] = {}
    for item in spec.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise InputError(
                f"--compare item {item.strip()!r} is not KEY=VALUE; e.g. "
                "--compare 'model=./my-reranker,long_documents=chunk'"
            )
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings.pop("name", None), settings


def _cmd_eval(args: argparse.Namespace) -> int:
    from crossrank import evaluation as ev
    from crossrank.config import RerankConfig

    base: dict[str, Any] = {
        "model": args.model,
        "batch_size": args.batch_size,
        "device": args.device,
        **_long_document_settings(args),
    }
    if args.scorer:
        base["scorer"] = args.scorer
    if args.max_length:
        base["max_length"] = args.max_length
    configs: list[tuple[str, RerankConfig]] = []
    for spec in args.compare or [None]:
        name, overrides = _parse_compare(spec) if spec else (None, {})
        config = RerankConfig(**{**base, **overrides})
        if name is None:
            name = spec or (
                args.scorer or os.path.basename(os.path.normpath(args.model)) or args.model
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
    )
    print(ev.format_table(report))
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


def _stage_reranker(path: str, settings: dict[str, Any]) -> Reranker:
    """The stage in `path`, with the settings given as flags (not left at defaults) on top."""
    reranker = Reranker.from_stage(path)
    defaults = vars(build_parser().parse_args(["rerank"]))
    overrides = {k: v for k, v in settings.items() if v != defaults.get(k)}
    if not overrides:
        return reranker
    return Reranker({**reranker.config.model_dump(exclude_unset=True), **overrides})


def _inputs(pairs: list[str] | None) -> dict[str, str] | None:
    """`--var name=value` flags as the inputs a stage's `{{INPUT.name}}` query reads."""
    if not pairs:
        return None
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--var {pair!r}: expected NAME=VALUE, e.g. --var question='...'")
        inputs[name] = value
    return inputs


def _cmd_quantize(args: argparse.Namespace) -> int:
    from crossrank.quantization import quantize_model

    fidelity = quantize_model(
        args.model,
        args.calibration,
        args.out,
        samples=args.samples,
        eval_queries=args.eval_queries,
        max_length=args.max_length,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
    )
    out = os.path.normpath(args.out)
    print(f"int8 model written to {out} (load it with model={out!r})")
    print("fidelity against float32, on pairs held apart from calibration:")
    print(fidelity.table())
    print(f"report written to {out}.fidelity.json")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    return run_demo(args.model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossrank",
        description="Re-rank retrieved documents with a cross-encoder.",
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    default_model = os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    p = sub.add_parser(
        "rerank",
        help="rerank candidate documents for one query",
        description=(
            "Score every candidate against the query and write them best first as JSON Lines, "
            "each with document_id, score (the reranker's), original_score (the previous "
            "stage's) and rerank_position (0-based) added."
        ),
    )
    p.add_argument(
        "--query", "-q", help="the query to rank the documents for (or the --stage's query)"
    )
    p.add_argument(
        "--stage",
        help="a rerank stage config (JSON file) as retrieval pipelines write it; flags given "
        "beside it override its parameters",
    )
    p.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="an input for the stage's query template {{INPUT.NAME}} (repeatable)",
    )
    p.add_argument(
        "--input",
        "-i",
        default="-",
        help="candidates as a JSON list or JSON Lines file; '-' (default) reads stdin",
    )
    p.add_argument("--output", "-o", help="write the ranked JSON Lines here (default: stdout)")
    p.add_argument("--top-k", "-k", type=int, help="how many to keep (default: all, reordered)")
    p.add_argument(
        "--model",
        "-m",
        default=default_model,
        help=f"Hugging Face cross-encoder name or local folder (default: ${MODEL_ENV} or "
        f"{DEFAULT_MODEL})",
    )
    p.add_argument(
        "--scorer",
        help='an http(s) endpoint taking {"pairs": [[q, d], ...]} and returning '
        '{"scores": [...]}, a serving engine (tei+http://host:8080, cohere+http://host:7997) '
        "or a registered scorer name; overrides --model",
    )
    p.add_argument(
        "--document-field",
        default="content",
        help="field holding the text; dotted paths such as metadata.body reach into nesting "
        "(default: content)",
    )
    p.add_argument(
        "--original-score-field",
        default="score",
        help="field holding the previous stage's score, copied to original_score (default: score)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (default 32)")
    p.add_argument("--max-length", type=int, help="token limit per pair (default: the model's)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--on-unreadable",
        choices=["raise", "skip", "last"],
        default="raise",
        help="a document with no readable text: raise (default: stop with an error naming it), "
        "skip (leave it out, named in a warning) or last (after the scored ones, score null, "
        "its problem in 'unreadable')",
    )
    p.add_argument(
        "--nest",
        action="store_true",
        help="write each document whole under 'document' instead of adding fields beside its own",
    )
    _add_long_document_options(p)
    p.set_defaults(func=_cmd_rerank)

    e = sub.add_parser(
        "eval",
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
    e.add_argument("--model", "-m", default=default_model, help="cross-encoder name or folder")
    e.add_argument("--scorer", help="an http(s) scorer endpoint; overrides --model")
    e.add_argument(
        "--compare",
        action="append",
        metavar="KEY=VALUE,...",
        help="a configuration to evaluate, as settings overriding the options above, e.g. "
        "'model=./m,long_documents=chunk' or 'name=bf16,dtype=bfloat16'; repeat to compare "
        "several (any RerankConfig setting; 'name' labels the row)",
    )
    e.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (32)")
    e.add_argument("--max-length", type=int, help="token limit per pair (default: the model's)")
    e.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    e.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries")
    e.add_argument("--first-stage-only", action="store_true", help="evaluate the first stage alone")
    e.add_argument(
        "--json", default="crossrank-eval.json", help="write results here (crossrank-eval.json)"
    )
    e.add_argument("--plot", help="also draw a bar chart here, e.g. out.png (crossrank[plot])")
    _add_long_document_options(e)
    e.set_defaults(func=_cmd_eval)

    q = sub.add_parser(
        "quantize",
        help="write a calibrated int8 OpenVINO model folder, with its fidelity report",
        description=(
            "Calibrate static int8 quantisation (NNCF) of a cross-encoder on query/document "
            "pairs and write a model folder that model= loads (backend auto or openvino). "
            "Queries held apart from calibration measure fidelity against float32 (Kendall "
            "tau, top-10 overlap, score difference); the report is printed and saved as "
            "FOLDER.fidelity.json. Needs crossrank[quantize]."
        ),
    )
    q.add_argument("--model", "-m", default=default_model, help="cross-encoder name or folder")
    q.add_argument(
        "--calibration",
        required=True,
        help='pairs as JSON Lines ({"query": ..., "document": ...} or [query, document] per '
        "line), or a BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv)",
    )
    q.add_argument("--out", "-o", required=True, help="the new model folder to write")
    q.add_argument("--samples", type=int, default=300, help="calibration pairs at most (300)")
    q.add_argument(
        "--eval-queries", type=int, default=5, help="queries held apart to measure fidelity (5)"
    )
    q.add_argument("--max-length", type=int, help="token limit per pair (default: the model's)")
    q.add_argument("--seed", type=int, default=0, help="seed of the calibration/held-apart split")
    q.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model's own Python code"
    )
    q.set_defaults(func=_cmd_quantize)

    d = sub.add_parser(
        "demo",
        help="rerank a small Cranfield sample and show what changed",
        description="Rerank BM25 candidates for a few Cranfield queries and print before/after.",
    )
    d.add_argument("--model", "-m", default=default_model, help="cross-encoder name or folder")
    d.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelLoadError as exc:
        print(f"crossrank: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"crossrank: error: invalid setting: {exc}", file=sys.stderr)
        return 1
    except (CrossrankError, OSError) as exc:
        print(f"crossrank: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
