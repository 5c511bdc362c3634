"""Write cranfield_sample.jsonl and cranfield_queries.jsonl for notebooks/langchain_rag.ipynb.

A small, fixed slice of the Cranfield collection (BEIR layout, ../shared/data/cranfield): a few
queries with their relevance judgements, every document judged for them, and unjudged
distractors drawn with a fixed seed, so the notebook runs offline in seconds.
Run once by a developer; the output is committed.

    python notebooks/data/make_cranfield_sample.py [path/to/cranfield]
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERY_IDS = ["1", "8", "29", "56", "100"]
SIZE = 200
SEED = 0


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared/data/cranfield")
    with open(source / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    with open(source / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    judged: dict[str, dict[str, int]] = {q: {} for q in QUERY_IDS}
    with open(source / "qrels.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["query-id"] in judged:
                judged[row["query-id"]][row["corpus-id"]] = int(row["code"])
    keep = {doc_id for codes in judged.values() for doc_id in codes}
    others = sorted((d["_id"] for d in corpus if d["_id"] not in keep), key=int)
    keep |= set(random.Random(SEED).sample(others, SIZE - len(keep)))
    with open(HERE / "cranfield_sample.jsonl", "w", encoding="utf-8") as out:
        for doc in corpus:
            if doc["_id"] in keep:
                record = {"id": doc["_id"], "title": doc["title"], "text": doc["text"]}
                out.write(json.dumps(record) + "\n")
    with open(HERE / "cranfield_queries.jsonl", "w", encoding="utf-8") as out:
        for qid in QUERY_IDS:
            record = {"id": qid, "text": queries[qid], "judged": judged[qid]}
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
