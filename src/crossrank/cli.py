"""The `crossrank` command line.

    crossrank rerank --query "..." --input candidates.jsonl [--top-k 10] [--model ...]
    crossrank eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv [...]
    crossrank quantize --model M --calibration DATA --out FOLDER
    crossrank demo

`rerank` reads documents as a JSON list, `{"documents": [...]}` or JSON Lines (one line is
JSON Lines too) from a file, or stdin with `-`, and writes one ranked document per line: the
caller's fields, with the contract fields added (`document_id`, `score`, `original_score`,
`rerank_position`). JSON has no NaN or Infinity, so such a number anywhere in the output (a
previous score, one of the caller's fields) is written as `null`. A progress bar is shown
when stderr is a terminal.

Input that cannot be read (not UTF-8, not JSON, nested too deeply, a number too long, an
unpaired surrogate in any field but the text) is one line on stderr naming the input line
(or document) and the field. Exit codes (`EXIT_CODES`): 0 done, 2 usage, 3 bad input, 4 bad
settings or stage, 5 the model cannot be loaded, 6 the scorer failed, 1 any other crossrank
error, 141 (128 + SIGPIPE) when the reader of stdout went away (`| head -1`), quietly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import ValidationError

from crossrank import __version__
from crossrank.config import DEFAULT_MODEL
from crossrank.documents import safe_repr
from crossrank.errors import (
    ConfigError,
    CrossrankError,
    DocumentError,
    ModelLoadError,
    QueryError,
    ScorerError,
)
from crossrank.reranker import Reranker
from crossrank.results import RankedDocument

MODEL_ENV = "CROSSRANK_MODEL"

EXIT_OK = 0
EXIT_ERROR = 1  # a crossrank error of no other kind below
EXIT_USAGE = 2  # the command line itself (argparse's code)
EXIT_INPUT = 3  # the candidates, the query or a --var: unreadable or unscorable
EXIT_CONFIG = 4  # a setting or the --stage file
EXIT_MODEL = 5  # the model cannot be loaded
EXIT_SCORER = 6  # the scorer (an endpoint, a registered scorer) failed
EXIT_PIPE = 141  # stdout's reader went away (128 + SIGPIPE), as Unix tools exit
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_ERROR: "another crossrank error",
    EXIT_USAGE: "usage: an unknown option or a malformed flag",
    EXIT_INPUT: "bad input: candidates, query or --var",
    EXIT_CONFIG: "bad settings or stage config",
    EXIT_MODEL: "the model cannot be loaded",
    EXIT_SCORER: "the scorer failed",
    EXIT_PIPE: "stdout was closed early (quiet)",
}


class InputError(CrossrankError, ValueError):
    """The candidates file is not JSON or JSON Lines of documents."""


class UsageError(CrossrankError, ValueError):
    """A flag's value is malformed (`--var`, `--compare`)."""


def _parse_json(text: str, where: str) -> Any:
    """One JSON value; every way it can fail is an `InputError` naming `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer past Python's 4300-digit limit
        raise InputError(f"{where}: a number too long to read ({exc})") from None


def _surrogate_field(value: Any, text_field: str | None = None) -> str | None:
    """The first field path (`metadata.title`, `tags[2]`) but `text_field` whose string holds
    an unpaired surrogate, which cannot be written out as UTF-8; None when there is none. The
    text field is left to the reranker's own rule (a `DocumentError`, or `on_unreadable`)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if where and where == text_field:
            continue
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "(the document itself)"
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{where}.{key}" if where else str(key)
                if _surrogate_field(key) is not None:
                    return f"{name} (its name)"
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def _check_document(doc: Any, where: str, text_field: str | None) -> Any:
    field = _surrogate_field(doc, text_field)
    if field is not None:
        raise InputError(
            f"{where}: field {field!r} holds an unpaired surrogate (a \\ud800-\\udfff escape "
            "alone), which is not text and cannot be written as UTF-8"
        )
    return doc


def read_documents(stream: TextIO | Any, name: str, text_field: str | None = None) -> list[Any]:
    """Documents from a JSON list (or {"documents": [...]}), or from JSON Lines (one object
    per line; a single line is one document). `text_field` (the document_field) is exempt
    from the lone-surrogate check: the reranker's text rule decides about it."""
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise InputError(
                f"{name}, line {line}: not UTF-8 text (byte {exc.start}); the input must be "
                "JSON or JSON Lines"
            ) from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] in "[{" and not _looks_like_jsonl(stripped):
        one_line = len(stripped.rstrip().splitlines()) == 1
        data = _parse_json(stripped, f"{name}, line 1" if one_line else name)
        if isinstance(data, dict):  # {"documents": [...]}, or one object: JSON Lines of one line
            data = data["documents"] if isinstance(data.get("documents"), list) else [data]
        if not isinstance(data, list):
            raise InputError(f"{name}: expected a JSON list of documents or JSON Lines")
        return [_check_document(d, f"{name}, document {i}", text_field) for i, d in enumerate(data)]
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        docs.append(_check_document(_parse_json(line, where), where, text_field))
    return docs


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


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
                f"document {result.index} (id {safe_repr(result.document_id)}) already has a field "
                f"{name!r}, which the output would overwrite; rerun with --nest to keep "
                "each document whole under 'document'"
            )
    return {**doc, **fields}


def _json_line(record: dict[str, Any]) -> str:
    """One output line: UTF-8 as it reads, or \\u escapes where a document's text holds a lone
    surrogate (a bad decode upstream, ranked with on_unreadable) that UTF-8 cannot encode, so
    nothing is lost; NaN and infinities, which JSON lacks, as null (`json_safe`)."""
    record = json_safe(record)
    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, allow_nan=False)
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
        "backend": args.backend,
        "dtype": args.dtype,
        "on_unreadable": args.on_unreadable,
    }
    if args.top_k is not None:
        settings["top_k"] = args.top_k
    if args.scorer:
        settings["scorer"] = args.scorer
    if args.scorer_api_key_env:
        settings["scorer_api_key_env"] = args.scorer_api_key_env
    if args.max_length:
        settings["max_length"] = args.max_length
    settings.update(_family_settings(args))
    settings.update(_long_document_settings(args))
    reranker = _stage_reranker(args.stage, settings) if args.stage else Reranker(**settings)
    if args.query is None and reranker.config.query is None:  # before waiting on stdin
        raise UsageError(
            'no query: pass --query "..." (or a --stage whose parameters include a query)'
        )
    if args.input == "-":
        documents = read_documents(sys.stdin, "stdin", reranker.config.document_field)
    else:
        try:
            with open(args.input, "rb") as f:
                documents = read_documents(f, args.input, reranker.config.document_field)
        except OSError as exc:
            raise InputError(f"{args.input}: cannot be read ({exc.strerror or exc})") from None
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


def _family_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, name)
        for name in ("model_family", "instruction")
        if getattr(args, name, None) is not None
    }


def _add_family_options(p: argparse.ArgumentParser) -> None:
    from crossrank.config import ModelFamily

    p.add_argument(
        "--model-family",
        choices=list(typing.get_args(ModelFamily)),
        help="how the model reads a pair (default: auto, detected from the model); needed for "
        "a causal-LM reranker whose folder name does not say which one it is",
    )
    p.add_argument(
        "--instruction",
        help="task instruction for rerankers that take one (qwen3-reranker, mxbai-rerank-v2, "
        "bge-reranker-gemma); default: the model card's",
    )


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
            raise UsageError(
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
        "backend": args.backend,
        "dtype": args.dtype,
        **_family_settings(args),
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
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE, e.g. --var question='...'")
        inputs[name] = value
    return inputs


def _cmd_quantize(args: argparse.Namespace) -> int:
    from crossrank.quantization import CalibrationError, quantize_model

    try:
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
    except CalibrationError as exc:  # the calibration data is this command's input
        raise InputError(str(exc)) from exc
    out = os.path.normpath(args.out)
    print(f"int8 model written to {out} (load it with model={out!r})")
    print("fidelity against float32, on pairs held apart from calibration:")
    print(fidelity.table())
    print(f"report written to {out}.fidelity.json")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    return run_demo(args.model, long_documents=args.long_documents)


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "openvino", "onnx"],
        help="runtime: auto (default: OpenVINO on CPU after a fidelity self-check, else torch)",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="precision: auto (default: float16 on cuda, float32 elsewhere), or one of these",
    )


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
        epilog="exit codes: "
        + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
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
        "--scorer-api-key-env",
        metavar="NAME",
        help="environment variable holding the --scorer endpoint's API key (default "
        "CROSSRANK_SCORER_API_KEY); any name is allowed here, while a --stage file may only "
        "name CROSSRANK_*API_KEY variables",
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
    _add_engine_arguments(p)
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
    _add_family_options(p)
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
    _add_engine_arguments(e)
    e.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries")
    e.add_argument("--first-stage-only", action="store_true", help="evaluate the first stage alone")
    e.add_argument(
        "--json", default="crossrank-eval.json", help="write results here (crossrank-eval.json)"
    )
    e.add_argument("--plot", help="also draw a bar chart here, e.g. out.png (crossrank[plot])")
    _add_family_options(e)
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
    d.add_argument(
        "--long-documents",
        choices=["truncate", "chunk"],
        default="truncate",
        help="candidates longer than the model's limit: truncate (default; counted) or chunk",
    )
    d.set_defaults(func=_cmd_demo)
    return parser


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, InputError | DocumentError | QueryError):
        return EXIT_INPUT
    if isinstance(exc, ConfigError | ValidationError):
        return EXIT_CONFIG
    if isinstance(exc, ModelLoadError):
        return EXIT_MODEL
    if isinstance(exc, ScorerError):
        return EXIT_SCORER
    return EXIT_ERROR


def _quiet_broken_pipe() -> int:
    """Python's recipe: point stdout at devnull so the interpreter's last flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing to flush
        pass
    finally:
        os.close(devnull)
    return EXIT_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except ModelLoadError as exc:
        print(f"crossrank: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ValidationError as exc:
        print(f"crossrank: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CrossrankError as exc:
        print(f"crossrank: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except OSError as exc:  # the output file, or a file a setting names
        print(f"crossrank: error: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
