"""Long documents: truncation is counted and reported; chunking scores every window and pools.

The scorers here are callables whose behaviour the test controls. The "model-like" one reads
a pair the way a cross-encoder does: it tokenizes (query, document) with the same tokenizer,
truncates to max_length, and can only see the text that survives.
"""

from __future__ import annotations

import copy
import itertools
import logging

import pytest

from crossrank import ConfigError, RankedDocument, Reranker
from crossrank.long_documents import pool, split_windows

NEEDLE = "the answer is needle"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_short: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_short)
    assert tok.model_max_length == 32
    return tok


def filler(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def visible_text(tokenizer, query: str, text: str, max_length: int = 32) -> str:
    """The part of `text` a cross-encoder with this tokenizer and limit actually reads."""
    enc = tokenizer(
        query, text, truncation=True, max_length=max_length, return_offsets_mapping=True
    )
    pieces = zip(enc["offset_mapping"], enc.sequence_ids(), strict=True)
    ends = [end for (_, end), seq in pieces if seq == 1]
    return text[: max(ends)] if ends else ""


def model_like_scorer(tokenizer, query: str, calls: list | None = None):
    def score(pairs):
        if calls is not None:
            calls.append(list(pairs))
        out = []
        for q, d in pairs:
            seen = visible_text(tokenizer, q, d)
            out.append(1.0 if "needle" in seen else (0.5 if "decoy" in seen else 0.0))
        return out

    return score


def token_spans(tokenizer, text: str, windows: list[str]) -> list[tuple[int, int]]:
    """Each window's [start, end) in the document's own tokens (windows are exact slices)."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    spans = []
    for w in windows:
        char_start = text.index(w)
        char_end = char_start + len(w)
        start = next(i for i, (s, _) in enumerate(offsets) if s >= char_start)
        end = max(i for i, (_, e) in enumerate(offsets) if e <= char_end) + 1
        spans.append((start, end))
    return sorted(spans)


def test_chunk_finds_a_sentence_past_max_length_that_truncate_misses(tokenizer, tiny_model_short):
    query = "where is it"
    long_doc = filler(40) + " " + NEEDLE
    # Tokenizer-level check: the needle lies past what a 32-token pair can hold.
    assert "needle" in long_doc
    assert "needle" not in visible_text(tokenizer, query, long_doc)
    docs = [
        {"id": "decoy", "content": "a short decoy passage"},
        {"id": "long", "content": long_doc},
    ]
    scorer = model_like_scorer(tokenizer, query)

    truncating = Reranker(scorer=scorer, tokenizer=tiny_model_short)
    ranked = truncating.rerank(query, docs)
    assert [r.document_id for r in ranked] == ["decoy", "long"]
    assert ranked[1].score == 0.0
    assert [r.truncated for r in ranked] == [False, True]
    assert all(r.best_chunk is None for r in ranked)

    # Enough windows for the whole text: the tiny tokenizer splits words into characters.
    chunking = Reranker(
        scorer=scorer,
        tokenizer=tiny_model_short,
        long_documents="chunk",
        max_chunks_per_document=64,
    )
    ranked = chunking.rerank(query, docs)
    assert [r.document_id for r in ranked] == ["long", "decoy"]
    assert ranked[0].score == 1.0
    assert [r.truncated for r in ranked] == [False, False]
    assert ranked[0].best_chunk > 0  # the needle is not in the first window
    assert ranked[1].best_chunk == 0


@pytest.mark.parametrize("overlap", [0, 3, 7])
def test_windows_cover_every_token_fit_the_model_and_honour_overlap(
    tokenizer, tiny_model_short, overlap
):
    query = "q1 q2"
    text = filler(70)
    calls: list = []
    rr = Reranker(
        scorer=model_like_scorer(tokenizer, query, calls),
        tokenizer=tiny_model_short,
        long_documents="chunk",
        chunk_overlap=overlap,
        max_chunks_per_document=50,
    )
    [result] = rr.rerank(query, [text])
    assert result.truncated is False
    windows = [d for _, d in calls[0]]
    assert len(windows) > 2
    window = 32 - len(tokenizer(query, add_special_tokens=False)["input_ids"]) - 3
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    spans = token_spans(tokenizer, text, windows)
    assert spans[0][0] == 0 and spans[-1][1] == n_tokens  # every token is covered
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end - next_start == overlap  # consecutive windows share exactly `overlap`
    for w, (start, end) in zip(windows, spans, strict=True):
        assert end - start <= window
        # the whole window fits beside the query: the model reads all of it
        assert visible_text(tokenizer, query, w) == w


def test_windows_of_all_documents_are_scored_in_one_batch(tokenizer, tiny_model_short):
    calls: list = []
    docs = [filler(50, "a"), "short one", filler(50, "b")]
    rr = Reranker(
        scorer=model_like_scorer(tokenizer, "q", calls),
        tokenizer=tiny_model_short,
        long_documents="chunk",
    )
    ranked = rr.rerank("q", docs)
    assert [r.truncated for r in ranked] == [False, False, False]
    assert len(calls) == 1
    texts = [d for _, d in calls[0]]
    # A window is an exact slice of its document (it may start inside a word), and no window
    # of one long document is a slice of the other: "a" and "b" words share no letters.
    from_a = [t for t in texts if t in docs[0]]
    from_b = [t for t in texts if t in docs[2]]
    assert len(from_a) > 1 and len(from_b) > 1
    assert "short one" in texts
    assert len(texts) == len(from_a) + 1 + len(from_b)
    # The one call holds every window of both long documents: together they cover each one.
    for doc, windows in ((docs[0], from_a), (docs[2], from_b)):
        spans = token_spans(tokenizer, doc, windows)
        n_tokens = len(tokenizer(doc, add_special_tokens=False)["input_ids"])
        assert spans[0][0] == 0 and spans[-1][1] == n_tokens


@pytest.mark.parametrize("pooling", ["max", "mean", "first"])
def test_pooling(tokenizer, tiny_model_short, pooling):
    query = "q"
    text = filler(60)
    table: dict[str, float] = {}

    def score(pairs):  # a window's score depends on where it starts in the document
        out = []
        for _, d in pairs:
            # The window's first token in the document (a window may start inside a word).
            [(first, _end)] = token_spans(tokenizer, text, [d])
            table[d] = [0.2, 0.9, 0.4, 0.7, 0.1][first % 5] + first / 1000
            out.append(table[d])
        return out

    rr = Reranker(
        scorer=score,
        tokenizer=tiny_model_short,
        long_documents="chunk",
        chunk_pooling=pooling,
        chunk_overlap=2,
    )
    [result] = rr.rerank(query, [text])
    assert result.truncated is False
    ordered = [table[w] for w in sorted(table, key=text.index)]
    assert len(ordered) >= 3
    assert ordered.index(max(ordered)) > 0  # the best window is not the first
    expected = {
        "max": max(ordered),
        "mean": sum(ordered) / len(ordered),
        "first": ordered[0],
    }[pooling]
    assert result.score == pytest.approx(expected)
    assert result.best_chunk == ordered.index(max(ordered))


def test_pool_function():
    assert pool([0.1, 0.8, 0.8, 0.3], "max") == (0.8, 1)
    assert pool([0.2, 0.6], "mean") == (pytest.approx(0.4), 1)
    assert pool([0.2, 0.6], "first") == (0.2, 1)


def test_split_windows_cover_with_exact_overlap():
    for n in range(1, 60):
        for window in (1, 4, 10):
            for overlap in range(window):
                spans, cut = split_windows(n, window, overlap, max_chunks=1000)
                assert not cut
                assert spans[0][0] == 0 and spans[-1][1] == n
                assert all(0 < e - s <= window for s, e in spans)
                assert all(a[1] - b[0] == overlap for a, b in itertools.pairwise(spans))
    spans, cut = split_windows(100, 10, 0, max_chunks=3)
    assert cut and spans == [(0, 10), (10, 20), (20, 30)]


def test_max_chunks_caps_the_work_and_counts_it_once(tokenizer, tiny_model_short, caplog):
    calls: list = []
    docs = [filler(80, "a"), filler(80, "b"), "short"]
    rr = Reranker(
        scorer=model_like_scorer(tokenizer, "q", calls),
        tokenizer=tiny_model_short,
        long_documents="chunk",
        max_chunks_per_document=2,
    )
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ranked = rr.rerank("q", docs)
    assert len(calls[0]) == 2 + 2 + 1
    assert {r.document: r.truncated for r in ranked} == {
        docs[0]: True,
        docs[1]: True,
        "short": False,
    }
    warnings = [r for r in caplog.records if r.name == "crossrank"]
    assert len(warnings) == 1
    assert "2 of 3" in warnings[0].getMessage()
    assert "max_chunks_per_document=2" in warnings[0].getMessage()


def test_model_scorer_counts_truncation_with_one_warning(tiny_model_short, caplog):
    docs = [{"id": i, "content": filler(60, f"x{i}")} for i in range(3)] + [{"content": "short"}]
    before = copy.deepcopy(docs)
    rr = Reranker(model=tiny_model_short)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ranked = rr.rerank("a query", docs)
    assert docs == before
    assert sorted((r.index, r.truncated) for r in ranked) == [
        (0, True),
        (1, True),
        (2, True),
        (3, False),
    ]
    warnings = [r for r in caplog.records if r.name == "crossrank"]
    assert len(warnings) == 1
    assert "3 of 4" in warnings[0].getMessage() and "32-token" in warnings[0].getMessage()


def test_model_scorer_chunks_with_its_own_tokenizer(tiny_model_short):
    docs = [filler(60, "x"), "short"]
    # Enough windows for the whole text: the tiny tokenizer splits words into characters.
    rr = Reranker(model=tiny_model_short, long_documents="chunk", max_chunks_per_document=64)
    ranked = rr.rerank("a query", docs)
    assert {r.document: r.truncated for r in ranked} == {docs[0]: False, "short": False}
    assert {r.document: r.best_chunk is not None for r in ranked} == {docs[0]: True, "short": True}
    assert [r.rerank_position for r in ranked] == [0, 1]


async def test_arerank_chunks(tokenizer, tiny_model_short):
    query = "where is it"
    docs = ["a short decoy passage", filler(40) + " " + NEEDLE]
    rr = Reranker(
        scorer=model_like_scorer(tokenizer, query),
        tokenizer=tiny_model_short,
        long_documents="chunk",
        max_chunks_per_document=64,  # enough windows for the whole (character-level) text
    )
    ranked = await rr.arerank(query, docs)
    assert [r.index for r in ranked] == [1, 0]
    assert ranked[0].score == 1.0 and ranked[0].truncated is False
    assert ranked[0].best_chunk > 0  # the needle is not in the first window


def test_custom_scorer_without_tokenizer_cannot_measure_truncation():
    [result] = Reranker(scorer=lambda pairs: [1.0] * len(pairs)).rerank("q", ["text"])
    assert result.truncated is None and result.best_chunk is None


def test_chunk_with_custom_scorer_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="tokenizer"):
        Reranker(scorer=lambda pairs: [1.0] * len(pairs), long_documents="chunk")


def test_overlap_must_be_smaller_than_the_window(tiny_model_short):
    rr = Reranker(
        scorer=lambda pairs: [1.0] * len(pairs),
        tokenizer=tiny_model_short,
        long_documents="chunk",
        chunk_overlap=40,
    )
    with pytest.raises(ConfigError, match="chunk_overlap=40"):
        rr.rerank("q", [filler(80)])


def test_ranked_document_stays_backwards_compatible():
    r = RankedDocument(
        document="d", document_id=0, score=1.0, original_score=None, rerank_position=0, index=0
    )
    assert r.truncated is None and r.best_chunk is None
    assert set(r.contract_fields()) == {"document_id", "score", "original_score", "rerank_position"}


def test_cli_rerank_chunks_and_reports_long_document_fields(tiny_model_short, tmp_path, capsys):
    import json

    from crossrank.cli import main

    source = tmp_path / "in.jsonl"
    docs = [{"id": "long", "content": filler(60)}, {"id": "short", "content": "short text"}]
    source.write_text("".join(json.dumps(d) + "\n" for d in docs))
    args = ["rerank", "-q", "a query", "-i", str(source), "--model", tiny_model_short]
    assert main(args) == 0
    records = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["long"]["truncated"] is True and "best_chunk" not in records["long"]
    assert main([*args, "--long-documents", "chunk", "--max-chunks-per-document", "2"]) == 0
    records = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["long"]["truncated"] is True  # 60 words need more than 2 windows
    assert records["long"]["best_chunk"] in (0, 1)
    assert records["short"] | {"truncated": False, "best_chunk": 0} == records["short"]
