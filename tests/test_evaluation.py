"""`crossrank eval`: metrics on a small BEIR-layout set written here, checked by hand.

The collection (depth 3):

    q1: judged d1 = 2, d3 = 1     first stage: d2, d3, d1 (then d4, cut by depth)
    q2: judged d4 = 1             first stage: d1, d5, d4
    q3: judged d2 = 0 only        left out (no positive judgement)

The scorer scores documents by a table the test sets: d1 .9, d4 .8, d3 .5, d5 .2, d2 .1, so
the reranked lists are q1: d1, d3, d2 and q2: d1, d4, d5.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from crossrank import RerankConfig
from crossrank.cli import EXIT_USAGE, main
from crossrank.evaluation import (
    EvalDataError,
    format_thresholds,
    load_beir,
    parse_gain,
    read_trec_run,
    run_evaluation,
)

TEST_DATA_ENV = "CROSSRANK_TEST_DATA"
TEXTS = {f"d{i}": f"document number {i} text" for i in range(1, 6)}
TABLE = {"d1": 0.9, "d2": 0.1, "d3": 0.5, "d4": 0.8, "d5": 0.2}


def table_scorer(pairs):
    return [TABLE[next(k for k, t in TEXTS.items() if text.endswith(t))] for _, text in pairs]


def dcg(gains):
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    with open(tmp_path / "corpus.jsonl", "w") as f:
        for doc_id, text in TEXTS.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with open(tmp_path / "queries.jsonl", "w") as f:
        for qid in ("q1", "q2", "q3"):
            f.write(json.dumps({"_id": qid, "text": f"query {qid}"}) + "\n")
    (tmp_path / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td4\t1\nq3\td2\t0\n"
    )
    run = [("q1", "d2", 5), ("q1", "d3", 4), ("q1", "d1", 3), ("q1", "d4", 2)]
    run += [("q2", "d1", 3), ("q2", "d5", 2), ("q2", "d4", 1)]
    (tmp_path / "run.tsv").write_text(
        "".join(f"{q} Q0 {d} {r} {s} bm25\n" for r, (q, d, s) in enumerate(run))
    )
    return tmp_path


def collection(folder: Path, gain=None):
    return load_beir(
        folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels.tsv", gain=gain
    )


# Hand-computed, linear gain.
FIRST_NDCG = (dcg([0, 1, 2]) / dcg([2, 1]) + dcg([0, 0, 1]) / dcg([1])) / 2
RERANKED_NDCG = (1.0 + dcg([0, 1, 0]) / dcg([1])) / 2


def test_metrics_match_hand_computed_values(beir):
    data = collection(beir)
    report = run_evaluation(
        data,
        read_trec_run(beir / "run.tsv", depth=3),
        [("table", RerankConfig(scorer=table_scorer))],
        depth=3,
    )
    assert report.queries == 2  # q3 has no positive judgement
    first, reranked = report.results
    assert first.name == "first stage (run file)"
    assert first.metrics == pytest.approx(
        {"NDCG@10": FIRST_NDCG, "MRR@10": (1 / 2 + 1 / 3) / 2, "R@3": 1.0, "R@10": 1.0}
    )
    assert pytest.approx(0.559954, abs=1e-6) == FIRST_NDCG
    assert reranked.name == "table"
    assert reranked.metrics == pytest.approx(
        {"NDCG@10": RERANKED_NDCG, "MRR@10": (1 + 1 / 2) / 2, "R@3": 1.0, "R@10": 1.0}
    )
    assert set(reranked.latency_ms) == {"mean", "p50", "p95"}


def test_threshold_sweep_matches_hand_counted_values(beir):
    report = run_evaluation(
        collection(beir),
        read_trec_run(beir / "run.tsv", depth=3),
        [
            ("table", RerankConfig(scorer=table_scorer)),
            ("floor", RerankConfig(scorer=table_scorer, min_results=1)),
        ],
        depth=3,
        thresholds=[0.5, 0.8, 0.95],
    )
    # q1 reranked: d1 .9 (rel), d3 .5 (rel), d2 .1; q2: d1 .9, d4 .8 (rel), d5 .2.
    table, floor = report.results[1].thresholds, report.results[2].thresholds
    assert table == [
        {"threshold": 0.5, "kept_per_query": 2.0, "precision": 0.75, "recall": 1.0,
         "empty_queries": 0},
        # d4 at exactly 0.8 is kept (inclusive, as the engine's score_threshold).
        {"threshold": 0.8, "kept_per_query": 1.5, "precision": pytest.approx(2 / 3),
         "recall": 0.75, "empty_queries": 0},
        {"threshold": 0.95, "kept_per_query": 0.0, "precision": None, "recall": 0.0,
         "empty_queries": 2},
    ]  # fmt: skip
    assert floor[2] == {  # min_results=1 keeps each query's best: d1, relevant for q1 only
        "threshold": 0.95,
        "kept_per_query": 1.0,
        "precision": 0.5,
        "recall": 0.25,
        "empty_queries": 0,
    }
    assert report.results[0].thresholds == []  # the first stage has no scores to cut
    text = format_thresholds(report)
    assert "score thresholds, table:" in text and "score thresholds, floor:" in text
    assert "     0.95        0.00          -   0.0000      2" in text
    json.dumps(report.to_json())  # None, not NaN: valid JSON


def test_no_sweep_without_thresholds(beir):
    report = run_evaluation(
        collection(beir),
        read_trec_run(beir / "run.tsv", depth=3),
        [("table", RerankConfig(scorer=table_scorer))],
        depth=3,
    )
    assert report.results[1].thresholds == [] and format_thresholds(report) == ""


def test_exponential_gain(beir):
    report = run_evaluation(
        collection(beir), read_trec_run(beir / "run.tsv", 3), [], depth=3, ndcg_gain="exponential"
    )
    expected = (dcg([0, 1, 3]) / dcg([3, 1]) + dcg([0, 0, 1]) / dcg([1])) / 2
    assert report.results[0].metrics["NDCG@10"] == pytest.approx(expected)


def test_ties_are_evaluated_in_crossranks_order_not_by_document_id(beir):
    # A constant scorer leaves the first-stage order (stable sort); a metric library that
    # re-sorted equal scores by document id would put q1's d3 before d2 and change NDCG.
    report = run_evaluation(
        collection(beir),
        read_trec_run(beir / "run.tsv", 3),
        [("flat", RerankConfig(scorer=lambda pairs: [0.5] * len(pairs)))],
        depth=3,
    )
    assert report.results[1].metrics == pytest.approx(report.results[0].metrics)


def test_gain_mapping(tmp_path, beir):
    (beir / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tcode\nq1\td1\t1\nq1\td3\t2\nq1\td2\t-1\nq2\td4\t2\n"
    )
    gain = parse_gain("1=2,2=1,-1=drop")
    data = collection(beir, gain)
    assert data.qrels == {"q1": {"d1": 2, "d3": 1}, "q2": {"d4": 1}}
    with pytest.raises(EvalDataError, match="code -1 is not in the --gain mapping"):
        collection(beir, parse_gain("1=2,2=1"))
    with pytest.raises(EvalDataError, match="--gain"):
        collection(beir)  # a negative code without a mapping
    with pytest.raises(EvalDataError, match="CODE=GAIN"):
        parse_gain("1=best")


def test_run_file_order_and_depth(beir, tmp_path):
    run = read_trec_run(beir / "run.tsv", depth=2)
    assert run == {"q1": [("d2", 5.0), ("d3", 4.0)], "q2": [("d1", 3.0), ("d5", 2.0)]}
    twice = tmp_path / "twice.run"
    twice.write_text("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 3.0 x\nq1 Q0 d1 3 2.0 x\n")
    assert read_trec_run(twice, depth=5) == {"q1": [("d2", 3.0), ("d1", 2.0)]}
    twice.write_text("q1 Q0 d1 1\n")
    with pytest.raises(EvalDataError, match="line 1: a TREC run line has 6 fields"):
        read_trec_run(twice, depth=5)


def test_cli_eval_compares_configurations_and_writes_json(beir, tiny_model, tmp_path, capsys):
    out = tmp_path / "results" / "run.json"  # a folder that does not exist yet is created
    chart = tmp_path / "results" / "chart.png"
    code = main(
        [
            "eval",
            "--corpus",
            str(beir / "corpus.jsonl"),
            "--queries",
            str(beir / "queries.jsonl"),
            "--qrels",
            str(beir / "qrels.tsv"),
            "--first-stage",
            str(beir / "run.tsv"),
            "--depth",
            "3",
            "--model",
            tiny_model,
            "--compare",
            "name=plain",
            "--compare",
            "name=chunked,long_documents=chunk,chunk_pooling=mean",
            "--json",
            str(out),
            "--plot",
            str(chart),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "NDCG@10" in printed and "chunked" in printed and "first stage (run file)" in printed
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["results"]] == ["first stage (run file)", "plain", "chunked"]
    assert report["results"][0]["metrics"]["NDCG@10"] == pytest.approx(FIRST_NDCG)
    assert report["results"][2]["settings"]["long_documents"] == "chunk"
    for row in report["results"][1:]:
        assert row["metrics"]["R@3"] == 1.0  # reranking the top 3 keeps the same 3
        assert row["latency_ms"]["mean"] > 0
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_cli_eval_rejects_a_bad_compare_item(beir, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--corpus",
            str(beir / "corpus.jsonl"),
            "--queries",
            str(beir / "queries.jsonl"),
            "--qrels",
            str(beir / "qrels.tsv"),
            "--compare",
            "long_documents",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == EXIT_USAGE
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cranfield() -> Path:
    root = os.environ.get(TEST_DATA_ENV)
    if not root:
        pytest.skip(f"{TEST_DATA_ENV} is not set (CI points it at ../shared/data)")
    folder = Path(root) / "cranfield"
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{TEST_DATA_ENV}={root} has no cranfield/corpus.jsonl")
    return folder


CRANFIELD_GAIN = "1=4,2=3,3=2,4=1,-1=drop"


def test_cranfield_bm25_matches_the_collections_readme(cranfield):
    # ../shared/data/cranfield/README.md: BM25 NDCG@10 0.363 (exponential gain, ranx's
    # ndcg_burges) and 0.374 (linear gain, trec_eval's ndcg_cut.10).
    data = collection(cranfield, parse_gain(CRANFIELD_GAIN))
    assert len(data.evaluated_queries) == 225
    linear = run_evaluation(data, "bm25", [], depth=100).results[0].metrics
    exponential = run_evaluation(data, "bm25", [], depth=100, ndcg_gain="exponential")
    assert round(linear["NDCG@10"], 2) == round(0.374, 2)
    assert round(exponential.results[0].metrics["NDCG@10"], 2) == round(0.363, 2)


@pytest.mark.trained_model
def test_cranfield_rerank_with_the_trained_model(cranfield, trained_model):
    data = collection(cranfield, parse_gain(CRANFIELD_GAIN))
    report = run_evaluation(
        data, "bm25", [("minilm", RerankConfig(model=trained_model))], depth=10, max_queries=3
    )
    first, reranked = report.results
    assert report.queries == 3
    assert reranked.metrics["R@10"] == pytest.approx(first.metrics["R@10"])
    assert 0 < reranked.metrics["NDCG@10"] <= 1


def test_cli_eval_first_stage_only_says_nothing_was_reranked(beir, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--corpus",
            str(beir / "corpus.jsonl"),
            "--queries",
            str(beir / "queries.jsonl"),
            "--qrels",
            str(beir / "qrels.tsv"),
            "--first-stage",
            str(beir / "run.tsv"),
            "--depth",
            "3",
            "--first-stage-only",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "first stage only" in printed and "nothing reranked" in printed
    assert "of the first stage reranked" not in printed


@pytest.mark.trained_model
def test_cranfield_threshold_sweep_with_the_trained_model(cranfield, trained_model):
    data = collection(cranfield, parse_gain(CRANFIELD_GAIN))
    thresholds = [0.01, 0.1, 0.5, 0.9]
    report = run_evaluation(
        data,
        "bm25",
        [("minilm", RerankConfig(model=trained_model))],
        depth=10,
        max_queries=5,
        thresholds=thresholds,
    )
    rows = report.results[1].thresholds
    assert [r["threshold"] for r in rows] == thresholds
    kept = [r["kept_per_query"] for r in rows]
    recall = [r["recall"] for r in rows]
    assert kept == sorted(kept, reverse=True) and recall == sorted(recall, reverse=True)
    assert 0 < kept[0] <= 10 and all(r["empty_queries"] <= 5 for r in rows)
    # The lowest threshold keeps (almost) everything: recall is the first stage's R@10 or less.
    assert recall[0] <= report.results[0].metrics["R@10"] + 1e-9


def test_cli_eval_sweeps_score_thresholds(beir, tiny_model, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--corpus", str(beir / "corpus.jsonl"), "--queries"]
    args += [str(beir / "queries.jsonl"), "--qrels", str(beir / "qrels.tsv")]
    args += ["--first-stage", str(beir / "run.tsv"), "--depth", "3", "--model", tiny_model]
    code = main([*args, "--thresholds=-1e9,1e9", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "score thresholds" in printed and "kept/query" in printed
    rows = json.loads(out.read_text())["results"][1]["thresholds"]
    assert [r["threshold"] for r in rows] == [-1e9, 1e9]
    assert rows[0]["kept_per_query"] == 3 and rows[1]["kept_per_query"] == 0  # all, then none
    with pytest.raises(SystemExit):
        main([*args, "--thresholds", "0.1,nan"])
    assert "--thresholds" in capsys.readouterr().err
