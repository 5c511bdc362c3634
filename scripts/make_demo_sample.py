"""Write src/crossrank/data/cranfield_sample.json, the demo's data, from ../shared/data/cranfield.

The sample: a few Cranfield queries, each with its BM25 top-10 (bm25s, Lucene defaults,
English stopwords and stemmer, as in the collection's README) and the judged relevance codes.
Run once by a developer; the output is committed so the demo needs no shared data.

    python scripts/make_demo_sample.py [path/to/cranfield]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import bm25s
import Stemmer

ROOT = Path(__file__).resolve().parents[1]
QUERY_IDS = ["1", "8", "29", "56", "100"]
DEPTH = 10


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/cranfield")
    with open(source / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    with open(source / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    with open(source / "qrels.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["code"])
    stemmer = Stemmer.Stemmer("english")
    texts = [d["title"] + " " + d["text"] for d in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False))
    sample = []
    for qid in QUERY_IDS:
        tokens = bm25s.tokenize(
            [queries[qid]], stopwords="en", stemmer=stemmer, show_progress=False
        )
        hits, scores = retriever.retrieve(tokens, k=DEPTH, show_progress=False)
        candidates = []
        for rank, (i, score) in enumerate(zip(hits[0], scores[0], strict=True)):
            doc = corpus[int(i)]
            code = qrels.get(qid, {}).get(doc["_id"])
            candidates.append(
                {
                    "id": doc["_id"],
                    "content": doc["text"],
                    "score": round(float(score), 4),
                    "bm25_rank": rank,
                    "relevance_code": code,
                }
            )
        sample.append({"query_id": qid, "query": queries[qid], "candidates": candidates})
    out = ROOT / "src/crossrank/data/cranfield_sample.json"
    out.write_text(json.dumps(sample, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(sample)} queries)")


if __name__ == "__main__":
    main()
