"""Write notebooks/data/cranfield_llamaindex_sample.jsonl, the LlamaIndex notebook's documents.

A small slice of Cranfield (../shared/data/cranfield): every document judged for a few
queries, plus randomly drawn others (fixed seed) up to SIZE documents, so that the notebook
indexes a real document set in seconds. The queries and their judgements go into
notebooks/data/cranfield_llamaindex_queries.json. Run once by a developer; the output is
committed so the notebook needs no shared data.

    python scripts/make_llamaindex_sample.py [path/to/cranfield]
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY_IDS = ["1", "8", "29", "56", "100"]
SIZE = 120
SEED = 4


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/cranfield")
    with open(source / "corpus.jsonl", encoding="utf-8") as f:
        corpus = {d["_id"]: d for d in map(json.loads, f)}
    with open(source / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    with open(source / "qrels.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["code"])
    chosen = {doc_id for qid in QUERY_IDS for doc_id in qrels.get(qid, {})}
    rest = sorted(set(corpus) - chosen, key=int)
    random.Random(SEED).shuffle(rest)
    chosen |= set(rest[: max(0, SIZE - len(chosen))])
    out = ROOT / "notebooks/data/cranfield_llamaindex_sample.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for doc_id in sorted(chosen, key=int):
            d = corpus[doc_id]
            f.write(json.dumps({"id": doc_id, "title": d["title"], "text": d["text"]}) + "\n")
    query_file = ROOT / "notebooks/data/cranfield_llamaindex_queries.json"
    judged = [{"query_id": q, "query": queries[q], "qrels": qrels.get(q, {})} for q in QUERY_IDS]
    query_file.write_text(json.dumps(judged, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(chosen)} documents) and {query_file}")


if __name__ == "__main__":
    main()
