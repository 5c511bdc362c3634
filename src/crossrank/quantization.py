"""`crossrank quantize`: a calibrated static int8 OpenVINO model, with its fidelity report.

    crossrank quantize --model M --calibration DATA --out FOLDER

DATA is query/document pairs as JSON Lines (`{"query": ..., "document": ...}` or
`[query, document]` per line), or a BEIR-layout folder (corpus.jsonl, queries.jsonl and
qrels: each query with its judged documents and as many random others). Queries are split in
two, with a fixed seed: most calibrate, the rest are held apart to measure fidelity (a model
is not judged on the pairs it was calibrated on). From a BEIR folder the documents are split
in two as well, so the held-apart pairs share neither queries nor documents with calibration.

Steps: the model's float32 IR (the cached conversion `backend="openvino"` uses) → NNCF 3.4
post-training static quantisation (`nncf.quantize`, `ModelType.TRANSFORMER`: int8 weights and
activations, with the ops that lose most kept in float) on the calibration pairs, padded as
crossrank pads them → a folder (`models/quantized.py` says what is in it) that `model=`
loads → the fidelity report, measured by loading that folder like a user would: per held-apart
query, Kendall tau and top-10 overlap against torch float32, and the max and mean score
difference. The report is printed, kept in the folder's marker and saved beside the folder
(`FOLDER.fidelity.json`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import ConfigError, CrossrankError
from crossrank.models.quantized import QUANTIZED_IR, QUANTIZED_MARKER

logger = logging.getLogger("crossrank")

Pair = tuple[str, str]
FORMAT = 1


class CalibrationError(CrossrankError, ValueError):
    """The calibration data cannot be read, or is too small to calibrate and to measure."""


# -- calibration data ---------------------------------------------------------------------------


def _pair_from(row: Any, where: str) -> Pair:
    if isinstance(row, list) and len(row) == 2:
        query, document = row
    elif isinstance(row, dict) and "query" in row and ("document" in row or "text" in row):
        query, document = row["query"], row.get("document", row.get("text"))
    else:
        raise CalibrationError(
            f'{where}: expected {{"query": ..., "document": ...}} or [query, document]'
        )
    if not isinstance(query, str) or not isinstance(document, str) or not query or not document:
        raise CalibrationError(f"{where}: query and document must be non-empty strings")
    return query, document


def read_pairs_jsonl(path: Path) -> dict[str, list[str]]:
    """Query -> its documents, in file order, from a JSON Lines file of pairs."""
    grouped: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CalibrationError(f"{where}: not valid JSON ({exc})") from exc
            query, document = _pair_from(row, where)
            grouped.setdefault(query, []).append(document)
    return grouped


def _beir_files(folder: Path) -> tuple[Path, Path, Path]:
    qrels = [folder / "qrels.tsv", folder / "qrels" / "test.tsv", folder / "qrels" / "dev.tsv"]
    found = next((q for q in qrels if q.is_file()), None)
    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    missing = [str(p.name) for p in (corpus, queries) if not p.is_file()]
    if missing or found is None:
        raise CalibrationError(
            f"{folder} is not a BEIR folder: it needs corpus.jsonl, queries.jsonl and "
            f"qrels.tsv (or qrels/test.tsv); missing: {', '.join(missing) or 'qrels'}"
        )
    return corpus, queries, found


def _judged(qrels: Path) -> dict[str, list[str]]:
    """Query id -> judged document ids, whatever the judgement (all that matters here)."""
    import csv

    judged: dict[str, list[str]] = {}
    with open(qrels, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if len(row) == 4:  # TREC qrels: qid iter docid rel
                row = [row[0], row[2], row[3]]
            if len(row) != 3 or (number == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            judged.setdefault(row[0], []).append(row[1])
    return judged


def read_beir(
    folder: Path, *, samples: int, eval_queries: int, candidates: int, seed: int
) -> tuple[list[Pair], dict[str, list[str]]]:
    """Calibration pairs and held-apart queries (query -> candidates) from a BEIR folder."""
    from crossrank.evaluation import _read_jsonl, document_text

    corpus_file, queries_file, qrels_file = _beir_files(folder)
    corpus = {str(r["_id"]): document_text(r) for r in _read_jsonl(corpus_file, "document")}
    queries = {str(r["_id"]): str(r.get("text", "")) for r in _read_jsonl(queries_file, "query")}
    judged = _judged(qrels_file)
    rng = random.Random(seed)
    qids = [q for q in queries if queries[q].strip()]
    rng.shuffle(qids)
    if len(qids) < 2 or len(corpus) < 4:
        raise CalibrationError(f"{folder}: needs at least 2 queries and 4 documents")
    held_q = qids[: min(eval_queries, len(qids) // 2)]
    calib_q = qids[len(held_q) :]
    doc_ids = list(corpus)
    rng.shuffle(doc_ids)
    held_docs = set(doc_ids[: len(doc_ids) // 2])  # the held-apart queries' candidate pool
    held_pool = [d for d in doc_ids if d in held_docs]
    calib_pool = [d for d in doc_ids if d not in held_docs]

    held: dict[str, list[str]] = {}
    for q in held_q:
        ids = [d for d in judged.get(q, []) if d in held_docs][: candidates // 2]
        ids += [d for d in rng.sample(held_pool, min(candidates, len(held_pool))) if d not in ids]
        held[queries[q]] = [corpus[d] for d in ids[:candidates]]
    calibration: list[Pair] = []
    for q in calib_q:
        ids = [d for d in judged.get(q, []) if d in corpus and d not in held_docs][:4]
        ids += rng.sample(calib_pool, min(4, len(calib_pool)))
        calibration += [(queries[q], corpus[d]) for d in ids]
        if len(calibration) >= samples:
            break
    return calibration[:samples], held


def read_calibration(
    path: str | Path, *, samples: int, eval_queries: int, candidates: int, seed: int
) -> tuple[list[Pair], dict[str, list[str]]]:
    """(calibration pairs, held-apart query -> candidate documents) from DATA."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_beir(
            path, samples=samples, eval_queries=eval_queries, candidates=candidates, seed=seed
        )
    if not path.is_file():
        raise CalibrationError(f"calibration data {str(path)!r}: no such file or folder")
    grouped = read_pairs_jsonl(path)
    queries = list(grouped)
    if len(queries) < 2:
        raise CalibrationError(
            f"{path}: needs pairs of at least 2 different queries (some calibrate, the rest "
            f"measure fidelity); it has {len(queries)}"
        )
    random.Random(seed).shuffle(queries)
    held_q = queries[: max(1, min(eval_queries, len(queries) // 5))]
    held = {q: grouped[q][:candidates] for q in held_q}
    calibration = [(q, d) for q in queries[len(held_q) :] for d in grouped[q]]
    return calibration[:samples], held


# -- fidelity -----------------------------------------------------------------------------------


@dataclass
class Fidelity:
    """Int8 against torch float32 on the held-apart queries."""

    queries: int
    pairs: int
    kendall_tau_mean: float
    kendall_tau_min: float
    top10_overlap_mean: float
    top10_overlap_min: float
    max_abs_diff: float
    mean_abs_diff: float

    def table(self) -> str:
        rows = [
            ("held-apart queries / pairs", f"{self.queries} / {self.pairs}"),
            ("Kendall tau (mean, min)", f"{self.kendall_tau_mean:.4f}, {self.kendall_tau_min:.4f}"),
            (
                "top-10 overlap (mean, min)",
                f"{self.top10_overlap_mean:.3f}, {self.top10_overlap_min:.3f}",
            ),
            ("score diff (max, mean)", f"{self.max_abs_diff:.4g}, {self.mean_abs_diff:.4g}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def rank_agreement(got: Sequence[float], reference: Sequence[float], k: int = 10) -> tuple:
    """Kendall tau and top-k overlap (k capped at the number of candidates)."""
    from scipy.stats import kendalltau

    k = min(k, len(reference))
    top = lambda s: set(np.argsort(-np.asarray(s), kind="stable")[:k])  # noqa: E731
    tau = kendalltau(got, reference).statistic if len(reference) > 1 else 1.0
    return float(1.0 if np.isnan(tau) else tau), len(top(got) & top(reference)) / k


def measure(int8: Any, reference: Any, held: dict[str, list[str]]) -> Fidelity:
    taus, overlaps, diffs = [], [], []
    for query, documents in held.items():
        pairs = [(query, d) for d in documents]
        got, exact = int8.score(pairs), reference.score(pairs)
        tau, overlap = rank_agreement(got, exact)
        taus.append(tau)
        overlaps.append(overlap)
        diffs += list(np.abs(np.asarray(got) - np.asarray(exact)))
    return Fidelity(
        queries=len(held),
        pairs=len(diffs),
        kendall_tau_mean=float(np.mean(taus)),
        kendall_tau_min=float(np.min(taus)),
        top10_overlap_mean=float(np.mean(overlaps)),
        top10_overlap_min=float(np.min(overlaps)),
        max_abs_diff=float(np.max(diffs)),
        mean_abs_diff=float(np.mean(diffs)),
    )


# -- quantising ---------------------------------------------------------------------------------


def _calibration_items(scorer: Any, pairs: list[Pair]) -> list[dict[str, Any]]:
    """One padded single-pair input per calibration pair, as the runtime will see it."""
    from crossrank.models.batching import pad_batch

    loaded, family = scorer.model, scorer.family
    names = family.input_names(loaded)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    rows = scorer.encode(pairs)
    left = family.padding_side == "left"
    return [{n: a for n, a in pad_batch([r], pad_id, left).items() if n in names} for r in rows]


def quantize_model(
    model: str,
    calibration: str | Path,
    out: str | Path,
    *,
    samples: int = 300,
    eval_queries: int = 5,
    candidates: int = 50,
    max_length: int | None = None,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> Fidelity:
    """Write the calibrated int8 folder `out` for `model`; returns its fidelity report."""
    try:
        import nncf
    except ImportError as exc:
        raise CrossrankError(
            "crossrank quantize needs NNCF: pip install 'crossrank[quantize]'"
        ) from exc
    from crossrank.models import ModelScorer
    from crossrank.models.runtimes import openvino as ov_runtime

    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {str(out)!r} already exists; give a new folder")
    pairs, held = read_calibration(
        calibration, samples=samples, eval_queries=eval_queries, candidates=candidates, seed=seed
    )
    if not pairs or not held:
        raise CalibrationError(f"{calibration}: no calibration pairs or no held-apart queries")
    settings: dict[str, Any] = {"device": "cpu", "max_length": max_length}
    settings["trust_remote_code"] = trust_remote_code
    reference = ModelScorer(model, backend="torch", **settings)
    source = ModelScorer(model, backend="openvino", **settings)
    runner = source.runner  # the float32 IR, converted (or found in the cache)
    items = _calibration_items(source, pairs)
    logger.info(
        "quantising %s on %d calibration pairs (NNCF %s)", model, len(items), nncf.__version__
    )
    ov_model = ov_runtime.core().read_model(str(runner.path))
    quantized = nncf.quantize(
        ov_model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=out.parent))
    try:
        source.model.cross_encoder.save_pretrained(str(work))  # config, tokenizer, activation
        (work / QUANTIZED_IR).parent.mkdir()
        openvino = ov_runtime.require_openvino()
        openvino.save_model(quantized, str(work / QUANTIZED_IR), compress_to_fp16=False)
        marker: dict[str, Any] = {
            "format": FORMAT,
            "runtime": "openvino",
            "quantize": "int8",
            "source_model": model,
            "family": source.family.name,
            "inputs": runner.input_names,
            "calibration": {"data": str(calibration), "pairs": len(items), "seed": seed},
            "nncf": nncf.__version__,
            "openvino": openvino.__version__,
        }
        (work / QUANTIZED_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        int8 = ModelScorer(str(work), backend="openvino", **settings)
        fidelity = measure(int8, reference, held)
        marker["fidelity"] = asdict(fidelity)
        (work / QUANTIZED_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    report = {"model": str(out), "source_model": model, **marker["calibration"]}
    report["fidelity_vs_float32"] = asdict(fidelity)
    out.with_name(f"{out.name}.fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    return fidelity


__all__ = ["CalibrationError", "Fidelity", "quantize_model", "read_calibration"]
