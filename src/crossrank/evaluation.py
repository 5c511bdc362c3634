"""`crossrank eval`: does the reranker help? First stage vs reranked, on judged data.

Data in the BEIR layout: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`,
`text`) and `qrels.tsv` (`query-id`, `corpus-id`, `score`, a header line). The first stage is
BM25 (`bm25s`, Lucene defaults, English stopwords and stemmer, documents = title + " " + text)
or a TREC run file (`qid Q0 docid rank score tag`). Each configuration reranks the first
stage's top `depth` per query with crossrank; the metrics of every ranking come from
`ir-measures` (trec_eval's implementation through pytrec_eval), never from code written here:

- NDCG@10 (gain: the judged grade, as trec_eval's `ndcg_cut.10`, or `2^grade - 1` with
  `ndcg_gain="exponential"`, as ranx's `ndcg_burges`), MRR@10, Recall@10, Recall@depth.

A ranking is evaluated in the order crossrank produced it: each document is handed to the
metric library with a score derived from its rank, so ties are never re-broken by document id.

Choosing a `score_threshold` (`thresholds=`, `crossrank eval --thresholds 0.1,0.3,0.5`): each
configuration's reranked lists are cut at each threshold as the engine would (scores at or
above it, inclusive; the configuration's `min_results` floor), and for each threshold the
report gives the mean number of documents kept per query, precision (the share of all kept
documents that are judged relevant) and recall (per query, the judged relevant documents kept
over all judged relevant ones, averaged; so at most the first stage's recall at `depth`).
These are counts over the judgements, not ranking metrics, so they are computed here.

Judgement codes that are not gains (Cranfield: 1 = most relevant .. 4, and -1) are mapped
with a gain mapping such as ``1=4,2=3,3=2,4=1,-1=drop``; every code in the qrels must then be
mapped. Queries without a positive judgement are left out (they cannot be scored).

Needs the `eval` extra (`pip install "crossrank[eval]"`); `--plot` needs `crossrank[plot]`.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossrank.config import RerankConfig
from crossrank.errors import CrossrankError
from crossrank.long_documents import DropTruncationWarnings
from crossrank.reranker import Reranker

logger = logging.getLogger("crossrank")

NDCG_CUTOFF = 10
MRR_CUTOFF = 10


class EvalDataError(CrossrankError, ValueError):
    """An evaluation input (corpus, queries, qrels, run file, gain mapping) cannot be used."""


def require(module: str, extra: str = "eval") -> Any:
    """Import an optional dependency, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CrossrankError(
            f"crossrank eval needs {module!r}; install it with: pip install 'crossrank[{extra}]'"
        ) from exc


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Collection:
    """A judged collection: document texts, query texts and graded judgements (gains)."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> document id -> gain (0 = not relevant)

    @property
    def evaluated_queries(self) -> list[str]:
        """Queries with a text and at least one positive judgement, in the queries' order."""
        return [q for q in self.queries if any(g > 0 for g in self.qrels.get(q, {}).values())]


def parse_gain(spec: str | None) -> dict[int, int | None] | None:
    """``"1=4,2=3,3=2,4=1,-1=drop"`` -> {1: 4, 2: 3, 3: 2, 4: 1, -1: None}."""
    if spec is None:
        return None
    mapping: dict[int, int | None] = {}
    for item in spec.split(","):
        code, sep, gain = item.strip().partition("=")
        try:
            if not sep:
                raise ValueError
            value = None if gain.strip() == "drop" else int(gain)
            if value is not None and value < 0:
                raise ValueError
            mapping[int(code)] = value
        except ValueError:
            raise EvalDataError(
                f"--gain item {item.strip()!r} is not CODE=GAIN (GAIN a non-negative integer "
                "or 'drop'); e.g. for Cranfield: 1=4,2=3,3=2,4=1,-1=drop"
            ) from None
    return mapping


def _read_jsonl(path: str | Path, what: str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}, line {number}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict) or "_id" not in row:
                raise EvalDataError(f'{path}, line {number}: a {what} needs an "_id" field')
            rows.append(row)
    return rows


def document_text(row: dict[str, Any]) -> str:
    """What is retrieved and reranked: title + " " + text (BEIR's convention)."""
    title = (row.get("title") or "").strip()
    text = row.get("text") or ""
    return f"{title} {text}" if title else text


def load_beir(
    corpus: str | Path,
    queries: str | Path,
    qrels: str | Path,
    gain: dict[int, int | None] | None = None,
) -> Collection:
    """Read a BEIR-layout collection; `gain` maps judgement codes to gains (None drops)."""
    docs = {str(r["_id"]): document_text(r) for r in _read_jsonl(corpus, "document")}
    query_texts = {str(r["_id"]): str(r.get("text", "")) for r in _read_jsonl(queries, "query")}
    judged: dict[str, dict[str, int]] = {}
    with open(qrels, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if not row or (number == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line, or the header
            if len(row) == 4:  # TREC qrels: qid iter docid rel
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                raise EvalDataError(
                    f"{qrels}, line {number}: expected query-id, corpus-id, score "
                    f"(tab-separated), got {len(row)} fields"
                )
            qid, docid, code_text = row
            try:
                code = int(code_text)
            except ValueError:
                raise EvalDataError(
                    f"{qrels}, line {number}: judgement {code_text!r} is not an integer"
                ) from None
            if gain is not None:
                if code not in gain:
                    raise EvalDataError(
                        f"{qrels}, line {number}: judgement code {code} is not in the --gain "
                        f"mapping {_show_gain(gain)}; map it to a gain or to 'drop'"
                    )
                mapped = gain[code]
                if mapped is None:
                    continue
                code = mapped
            elif code < 0:
                raise EvalDataError(
                    f"{qrels}, line {number}: judgement {code} is negative; pass --gain to say "
                    "what each code is worth (e.g. Cranfield: 1=4,2=3,3=2,4=1,-1=drop)"
                )
            judged.setdefault(qid, {})[docid] = code
    return Collection(docs, query_texts, judged)


def _show_gain(gain: dict[int, int | None]) -> str:
    return ",".join(f"{c}={'drop' if g is None else g}" for c, g in gain.items())


# -- first stage ----------------------------------------------------------------------------------

Ranking = dict[str, list[tuple[str, float]]]  # query id -> [(document id, score)], best first


def bm25_first_stage(
    collection: Collection, query_ids: Sequence[str], depth: int
) -> tuple[Ranking, float]:
    """BM25 top `depth` per query (bm25s, see the module docstring) and seconds per query."""
    bm25s = require("bm25s")
    stemmer_module = require("Stemmer")
    stemmer = stemmer_module.Stemmer("english")
    doc_ids = list(collection.corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(
            [collection.corpus[d] for d in doc_ids],
            stopwords="en",
            stemmer=stemmer,
            show_progress=False,
        ),
        show_progress=False,
    )
    started = time.perf_counter()
    tokens = bm25s.tokenize(
        [collection.queries[q] for q in query_ids],
        stopwords="en",
        stemmer=stemmer,
        show_progress=False,
    )
    hits, scores = retriever.retrieve(tokens, k=min(depth, len(doc_ids)), show_progress=False)
    elapsed = time.perf_counter() - started
    ranking = {
        q: [(doc_ids[int(i)], float(s)) for i, s in zip(hits[n], scores[n], strict=True)]
        for n, q in enumerate(query_ids)
    }
    return ranking, elapsed / max(1, len(query_ids))


def read_trec_run(path: str | Path, depth: int) -> Ranking:
    """A TREC run file (`qid Q0 docid rank score tag`), best first (score, then rank), cut."""
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise EvalDataError(
                    f"{path}, line {number}: a TREC run line has 6 fields "
                    f"(qid Q0 docid rank score tag), this one has {len(parts)}"
                )
            qid, _, docid, rank, score, _ = parts
            try:
                rows.setdefault(qid, []).append((-float(score), int(rank), number, docid))
            except ValueError:
                raise EvalDataError(
                    f"{path}, line {number}: rank {rank!r} or score {score!r} is not a number"
                ) from None
    ranking: Ranking = {}
    for q, items in rows.items():
        seen: set[str] = set()
        ranked = ranking[q] = []
        for neg, _, _, docid in sorted(items):  # a document listed twice keeps its best line
            if docid not in seen and len(ranked) < depth:
                seen.add(docid)
                ranked.append((docid, -neg))
    return ranking


# -- metrics --------------------------------------------------------------------------------------


def metric_names(depth: int) -> list[str]:
    ks = sorted({10, depth})
    return [f"NDCG@{NDCG_CUTOFF}", f"MRR@{MRR_CUTOFF}", *(f"R@{k}" for k in ks)]


def evaluate_ranking(
    qrels: dict[str, dict[str, int]],
    ranking: dict[str, list[str]],
    query_ids: Sequence[str],
    depth: int,
    ndcg_gain: str = "linear",
) -> dict[str, float]:
    """Mean metrics over `query_ids` (a query with no ranked document counts as 0).

    Every value comes from ir-measures; documents are passed with rank-derived scores, so the
    library evaluates exactly the order given.
    """
    ir_measures = require("ir_measures")
    from ir_measures import RR, R, nDCG

    wanted = set(query_ids)
    run = {
        q: {d: float(len(docs) - r) for r, d in enumerate(docs)}
        for q, docs in ranking.items()
        if q in wanted and docs
    }
    judged = {q: dict(qrels.get(q, {})) for q in query_ids}
    if ndcg_gain == "exponential":
        ndcg_qrels = {q: {d: 2**g - 1 for d, g in j.items()} for q, j in judged.items()}
    elif ndcg_gain == "linear":
        ndcg_qrels = judged
    else:
        raise ValueError(f"ndcg_gain must be 'linear' or 'exponential', not {ndcg_gain!r}")
    names = metric_names(depth)
    totals = dict.fromkeys(names, 0.0)
    measures = {f"MRR@{MRR_CUTOFF}": RR @ MRR_CUTOFF}
    measures.update({n: R @ int(n[2:]) for n in names if n.startswith("R@")})
    by_measure = {m: n for n, m in measures.items()}
    for result in ir_measures.iter_calc(list(measures.values()), judged, run):
        totals[by_measure[result.measure]] += result.value
    for result in ir_measures.iter_calc([nDCG @ NDCG_CUTOFF], ndcg_qrels, run):
        totals[f"NDCG@{NDCG_CUTOFF}"] += result.value
    n = max(1, len(query_ids))
    return {name: value / n for name, value in totals.items()}


# -- the evaluation -------------------------------------------------------------------------------


@dataclass
class ConfigResult:
    """One row of the comparison: a ranking's metrics and what it cost per query."""

    name: str
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    truncated_documents: int | None = None
    thresholds: list[dict[str, Any]] = field(default_factory=list)  # ThresholdRow dicts


@dataclass
class EvalReport:
    queries: int
    depth: int
    first_stage: str
    ndcg_gain: str
    results: list[ConfigResult]

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "depth": self.depth,
            "first_stage": self.first_stage,
            "ndcg_gain": self.ndcg_gain,
            "results": [vars(r) for r in self.results],
        }


def _latency(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"mean": statistics.fmean(ms), "p50": statistics.median(ms), "p95": p95}


def _settings(config: RerankConfig) -> dict[str, Any]:
    """The non-default settings of a configuration, JSON-safe."""
    out = {}
    for name, value in config:
        if value != RerankConfig.model_fields[name].default:
            out[name] = value if isinstance(value, str | int | float | bool) else repr(value)
    return out


@dataclass(frozen=True)
class ThresholdRow:
    """What one score threshold keeps, over the evaluated queries."""

    threshold: float
    kept_per_query: float  # mean number of documents kept per query
    precision: float | None  # share of all kept documents that are relevant; None: none kept
    recall: float  # mean over queries of (relevant kept / relevant judged)
    empty_queries: int  # queries left with no document


def threshold_sweep(
    qrels: dict[str, dict[str, int]],
    scored: dict[str, list[tuple[str, float]]],
    query_ids: Sequence[str],
    thresholds: Sequence[float],
    min_results: int = 0,
) -> list[ThresholdRow]:
    """Each threshold applied to each query's reranked (document, score) list, best first, by
    the engine's rule (crossrank.context): scores >= threshold, at least `min_results`."""
    rows = []
    for threshold in thresholds:
        kept_total = relevant_kept = empty = 0
        recall = 0.0
        for q in query_ids:
            ranked = scored.get(q, [])
            above = sum(1 for _, s in ranked if s >= threshold)  # best first: a prefix
            kept = [d for d, _ in ranked[: max(above, min(min_results, len(ranked)))]]
            relevant = {d for d, g in qrels.get(q, {}).items() if g > 0}
            hits = sum(1 for d in kept if d in relevant)
            kept_total += len(kept)
            relevant_kept += hits
            empty += not kept
            recall += hits / len(relevant) if relevant else 0.0
        n = max(1, len(query_ids))
        rows.append(
            ThresholdRow(
                threshold,
                kept_total / n,
                relevant_kept / kept_total if kept_total else None,
                recall / n,
                empty,
            )
        )
    return rows


def rerank_first_stage(
    reranker: Reranker,
    collection: Collection,
    first_stage: Ranking,
    query_ids: Sequence[str],
    progress: Callable[[int], None] | None = None,
    scored: dict[str, list[tuple[str, float]]] | None = None,
) -> tuple[dict[str, list[str]], list[float], int]:
    """Each query's first-stage candidates reranked: rankings, seconds per query, truncated.
    `scored`, if given, receives each query's (document id, score) list, best first."""
    rankings: dict[str, list[str]] = {}
    seconds: list[float] = []
    truncated = 0
    # Truncation is summed in the report: one warning per query would bury the table.
    quiet = DropTruncationWarnings()
    logger.addFilter(quiet)
    try:
        for q in query_ids:
            truncated += _rerank_one(
                reranker, collection, first_stage, q, rankings, seconds, scored
            )
            if progress is not None:
                progress(1)
    finally:
        logger.removeFilter(quiet)
    return rankings, seconds, truncated


def _rerank_one(
    reranker: Reranker,
    collection: Collection,
    first_stage: Ranking,
    q: str,
    rankings: dict[str, list[str]],
    seconds: list[float],
    scored: dict[str, list[tuple[str, float]]] | None = None,
) -> int:
    candidates = [
        {"id": d, "content": collection.corpus[d], "score": s}
        for d, s in first_stage.get(q, [])
        if d in collection.corpus
    ]
    started = time.perf_counter()
    ranked = reranker.rerank(collection.queries[q], candidates)
    seconds.append(time.perf_counter() - started)
    rankings[q] = [r.document_id for r in ranked]
    if scored is not None:
        scored[q] = [(r.document_id, r.score) for r in ranked]
    return sum(1 for r in ranked if r.truncated)


def run_evaluation(
    collection: Collection,
    first_stage: str | Ranking,
    configs: Sequence[tuple[str, RerankConfig]],
    *,
    depth: int = 100,
    ndcg_gain: str = "linear",
    max_queries: int | None = None,
    progress_factory: Callable[[str, int], Any] | None = None,
    thresholds: Sequence[float] = (),
) -> EvalReport:
    """Evaluate the first stage and each reranking configuration on the same queries.

    `thresholds`: score thresholds to sweep for each configuration (`threshold_sweep`).

    `first_stage` is "bm25" or a ready ranking (e.g. from `read_trec_run`). `progress_factory`
    (name, total) may return an object with `update(n)` and `close()` (a tqdm bar).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    query_ids = collection.evaluated_queries
    if max_queries is not None:
        query_ids = query_ids[:max_queries]
    if not query_ids:
        raise EvalDataError(
            "no query has both a text and a positive judgement; check that the qrels' "
            "query ids match queries.jsonl and that --gain maps relevant codes above 0"
        )
    if first_stage == "bm25":
        ranking, per_query = bm25_first_stage(collection, query_ids, depth)
        label, first_latency = "bm25", {"mean": per_query * 1000}
    elif isinstance(first_stage, str):
        raise ValueError(f"first_stage must be 'bm25' or a ranking, not {first_stage!r}")
    else:
        ranking = {q: docs[:depth] for q, docs in first_stage.items()}
        label, first_latency = "run file", {}
    first_ids = {q: [d for d, _ in docs] for q, docs in ranking.items()}
    results = [
        ConfigResult(
            f"first stage ({label})",
            evaluate_ranking(collection.qrels, first_ids, query_ids, depth, ndcg_gain),
            first_latency,
        )
    ]
    for name, config in configs:
        reranker = Reranker(config)
        if config.scorer is None:  # load the model first: loading is not a query's latency
            reranker.rerank("warm-up", ["load the model before timing"])
        bar = progress_factory(name, len(query_ids)) if progress_factory else None
        scored: dict[str, list[tuple[str, float]]] = {}
        try:
            rankings, seconds, truncated = rerank_first_stage(
                reranker, collection, ranking, query_ids, bar.update if bar else None, scored
            )
        finally:
            if bar is not None:
                bar.close()
        results.append(
            ConfigResult(
                name,
                evaluate_ranking(collection.qrels, rankings, query_ids, depth, ndcg_gain),
                _latency(seconds),
                _settings(config),
                truncated,
                [
                    vars(row)
                    for row in threshold_sweep(
                        collection.qrels, scored, query_ids, thresholds, config.min_results
                    )
                ],
            )
        )
    return EvalReport(len(query_ids), depth, label, ndcg_gain, results)


# -- output ---------------------------------------------------------------------------------------


def format_table(report: EvalReport) -> str:
    names = list(report.results[0].metrics)
    width = max(len(r.name) for r in report.results)
    head = f"{'configuration':<{width}}  " + "  ".join(f"{n:>7}" for n in names)
    head += f"  {'ms/query':>9}  {'truncated':>9}"
    lines = [head, "-" * len(head)]
    for r in report.results:
        cells = "  ".join(f"{r.metrics[n]:>7.4f}" for n in names)
        latency = f"{r.latency_ms['mean']:>9.1f}" if "mean" in r.latency_ms else f"{'-':>9}"
        truncated = "-" if r.truncated_documents is None else str(r.truncated_documents)
        lines.append(f"{r.name:<{width}}  {cells}  {latency}  {truncated:>9}")
    gain = "2^g - 1" if report.ndcg_gain == "exponential" else "g"
    if len(report.results) == 1:  # --first-stage-only: say so, nothing was reranked
        lines.append(
            f"{report.queries} queries, first stage only (top {report.depth}, nothing "
            f"reranked); NDCG gain {gain}; ms/query: retrieval time"
        )
        return "\n".join(lines)
    lines.append(
        f"{report.queries} queries, top {report.depth} of the first stage reranked; NDCG gain "
        f"{gain}; ms/query: mean rerank time (first stage: retrieval); truncated: candidate "
        "documents (summed over queries) whose text was not all scored"
    )
    return "\n".join(lines)


def format_thresholds(report: EvalReport) -> str:
    """The threshold sweep of each configuration as a table ('' when none was asked)."""
    blocks = []
    for r in report.results:
        if not r.thresholds:
            continue
        head = (
            f"{'threshold':>9}  {'kept/query':>10}  {'precision':>9}  {'recall':>7}  {'empty':>5}"
        )
        lines = [f"score thresholds, {r.name}:", head, "-" * len(head)]
        for row in r.thresholds:
            precision = "-" if row["precision"] is None else f"{row['precision']:.4f}"
            lines.append(
                f"{row['threshold']:>9g}  {row['kept_per_query']:>10.2f}  {precision:>9}  "
                f"{row['recall']:>7.4f}  {row['empty_queries']:>5}"
            )
        blocks.append("\n".join(lines))
    if not blocks:
        return ""
    blocks.append(
        f"kept/query: mean documents at or above the threshold per query (of the top "
        f"{report.depth} reranked); precision: share of kept documents judged relevant; "
        "recall: judged relevant documents kept, per query, averaged; empty: queries left "
        "with nothing"
    )
    return "\n\n".join(blocks)


def plot_report(report: EvalReport, path: str | Path) -> None:
    """A grouped bar chart of every metric per configuration (needs `crossrank[plot]`)."""
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.results[0].metrics)
    n = len(report.results)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names) + n), 4))
    for i, r in enumerate(report.results):
        xs = [m + (i - (n - 1) / 2) * width for m in range(len(names))]
        ax.bar(xs, [r.metrics[k] for k in names], width, label=r.name)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"{report.queries} queries, top {report.depth} reranked")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
