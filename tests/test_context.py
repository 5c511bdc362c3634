"""Context selection through the Python API: score_threshold, min_results, max_context_tokens.

Token budgets are checked against a reference count made here with the named tokenizer.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest

from crossrank import ConfigError, RankedList, Reranker
from crossrank.context import SELECTION_RECORD
from crossrank.testing import build_tiny_bpe_tokenizer

SCORES = {"alpha": 0.9, "bravo": 0.5, "charlie": 0.5, "delta": 0.2, "echo": 0.1}
DOCS = [{"id": name, "content": name} for name in ["delta", "alpha", "echo", "bravo", "charlie"]]


def table_scorer(pairs):
    return [SCORES[text] for _, text in pairs]


def ids(ranked):
    return [r.document_id for r in ranked]


@pytest.fixture(scope="module")
def llm_tokenizer(tmp_path_factory) -> str:
    """An 'LLM tokenizer' folder: byte-level BPE, unlike the rerankers' BERT wordpieces."""
    folder = tmp_path_factory.mktemp("llm-tokenizer")
    build_tiny_bpe_tokenizer(["<|endoftext|>"], eos_token="<|endoftext|>").save_pretrained(folder)
    return str(folder)


def reference_counts(tokenizer_folder: str, texts: list[str]) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_folder)
    return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]


# -- score_threshold and min_results ---------------------------------------------------------------


def test_threshold_keeps_scores_at_or_above_it_and_ties_at_it():
    ranked = Reranker(scorer=table_scorer, score_threshold=0.5).rerank("q", DOCS)
    assert ids(ranked) == ["alpha", "bravo", "charlie"]  # both 0.5s: inclusive, input order
    assert isinstance(ranked, RankedList) and isinstance(ranked, list)
    assert ranked.dropped == {
        "on_unreadable": 0,
        "top_k": 0,
        "score_threshold": 2,
        "max_context_tokens": 0,
    }
    assert all(r.context_tokens is None for r in ranked)  # no budget: nothing counted
    assert ranked.context_tokens is None


def test_threshold_applies_after_top_k():
    ranked = Reranker(scorer=table_scorer, top_k=2, score_threshold=0.15).rerank("q", DOCS)
    assert ids(ranked) == ["alpha", "bravo"]
    assert ranked.dropped["top_k"] == 3 and ranked.dropped["score_threshold"] == 0
    ranked = Reranker(scorer=table_scorer, top_k=4, score_threshold=0.5).rerank("q", DOCS)
    assert ids(ranked) == ["alpha", "bravo", "charlie"]
    assert ranked.dropped["top_k"] == 1 and ranked.dropped["score_threshold"] == 1


def test_per_call_top_k_combines_with_the_threshold():
    reranker = Reranker(scorer=table_scorer, score_threshold=0.5)
    assert ids(reranker.rerank("q", DOCS, top_k=2)) == ["alpha", "bravo"]


def test_a_threshold_above_every_score_returns_an_empty_list():
    ranked = Reranker(scorer=table_scorer, score_threshold=0.95).rerank("q", DOCS)
    assert ranked == [] and ranked.dropped["score_threshold"] == 5


def test_the_floor_keeps_the_best_n_below_the_threshold():
    ranked = Reranker(scorer=table_scorer, score_threshold=0.95, min_results=2).rerank("q", DOCS)
    assert ids(ranked) == ["alpha", "bravo"]
    assert ranked.dropped["score_threshold"] == 3
    # More pass the threshold than the floor asks: the threshold decides.
    ranked = Reranker(scorer=table_scorer, score_threshold=0.5, min_results=1).rerank("q", DOCS)
    assert ids(ranked) == ["alpha", "bravo", "charlie"]


def test_the_floor_never_exceeds_top_k_or_the_documents():
    ranked = Reranker(scorer=table_scorer, top_k=2, score_threshold=0.95, min_results=4)
    assert ids(ranked.rerank("q", DOCS)) == ["alpha", "bravo"]
    few = Reranker(scorer=table_scorer, score_threshold=0.95, min_results=9).rerank("q", DOCS[:2])
    assert ids(few) == ["alpha", "delta"]


def test_unreadable_documents_are_never_floor_kept_and_every_drop_is_counted():
    docs = [*DOCS, {"id": "blank", "content": "   "}]
    last = Reranker(scorer=table_scorer, on_unreadable="last", score_threshold=0.95, min_results=9)
    ranked = last.rerank("q", docs)
    assert ids(ranked) == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert ranked.dropped["score_threshold"] == 1
    skip = Reranker(scorer=table_scorer, on_unreadable="skip", top_k=4, score_threshold=0.5)
    ranked = skip.rerank("q", docs)
    assert ranked.dropped == {
        "on_unreadable": 1,
        "top_k": 1,
        "score_threshold": 1,
        "max_context_tokens": 0,
    }
    assert len(ranked) + sum(ranked.dropped.values()) == len(docs)


def test_raw_logits_take_a_negative_threshold():
    ranked = Reranker(scorer=lambda p: [-1.0, -3.0, 2.0], score_threshold=-1.0).rerank(
        "q", ["x", "y", "z"]
    )
    assert ids(ranked) == [2, 0]


def test_documents_are_untouched_and_positions_are_of_the_kept_list():
    docs = copy.deepcopy(DOCS)
    ranked = Reranker(scorer=table_scorer, score_threshold=0.5).rerank("q", docs)
    assert docs == DOCS
    assert [r.rerank_position for r in ranked] == [0, 1, 2]
    assert all(r.document is docs[r.index] for r in ranked)


def test_one_log_line_per_call_names_each_setting_that_dropped(caplog):
    reranker = Reranker(scorer=table_scorer, top_k=4, score_threshold=0.5)
    with caplog.at_level(logging.INFO, logger="crossrank"):
        reranker.rerank("q", DOCS)
    records = [r for r in caplog.records if hasattr(r, SELECTION_RECORD)]
    assert len(records) == 1
    assert records[0].getMessage() == (
        "kept 3 of 5 documents (dropped: top_k 1, score_threshold 1)"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crossrank"):
        Reranker(scorer=table_scorer, top_k=4).rerank("q", DOCS)
    assert not [r for r in caplog.records if hasattr(r, SELECTION_RECORD)]  # top_k alone: as before


def test_arerank_selects_the_same():
    reranker = Reranker(scorer=table_scorer, score_threshold=0.95, min_results=1)
    ranked = asyncio.run(reranker.arerank("q", DOCS))
    assert ids(ranked) == ["alpha"] and ranked.dropped["score_threshold"] == 4


# -- max_context_tokens ------------------------------------------------------------------------

TEXTS = {
    "a": "the boundary layer of a flat plate in supersonic flow",
    "b": "heat transfer",
    "c": "shock waves and the stagnation point of a blunt body at hypersonic speed",
    "d": "wing",
}
BUDGET_SCORES = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
BUDGET_DOCS = [{"id": k, "content": v} for k, v in TEXTS.items()]


def budget_scorer(pairs):
    by_text = {v: BUDGET_SCORES[k] for k, v in TEXTS.items()}
    return [by_text[t] for _, t in pairs]


def test_budget_counts_with_the_named_tokenizer(llm_tokenizer):
    counts = dict(zip(TEXTS, reference_counts(llm_tokenizer, list(TEXTS.values())), strict=True))
    assert counts["c"] > counts["d"]  # the case below needs a long 'c' and a short 'd'
    budget = counts["a"] + counts["b"] + counts["d"]  # room for d, not for c after a and b
    reranker = Reranker(
        scorer=budget_scorer, max_context_tokens=budget, context_tokenizer=llm_tokenizer
    )
    ranked = reranker.rerank("q", BUDGET_DOCS)
    # c does not fit and ends the selection: d, which would fit, is not taken in its place.
    assert ids(ranked) == ["a", "b"]
    assert [r.context_tokens for r in ranked] == [counts["a"], counts["b"]]
    assert ranked.context_tokens == counts["a"] + counts["b"]
    assert ranked.dropped["max_context_tokens"] == 2
    assert [r.document["content"] for r in ranked] == [TEXTS["a"], TEXTS["b"]]  # never cut
    # A budget the kept texts fill exactly: inclusive.
    exact = Reranker(
        scorer=budget_scorer,
        max_context_tokens=counts["a"] + counts["b"] + counts["c"],
        context_tokenizer=llm_tokenizer,
    ).rerank("q", BUDGET_DOCS)
    assert ids(exact) == ["a", "b", "c"]


def test_budget_combined_with_top_k_and_threshold(llm_tokenizer):
    counts = dict(zip(TEXTS, reference_counts(llm_tokenizer, list(TEXTS.values())), strict=True))
    reranker = Reranker(
        scorer=budget_scorer,
        top_k=3,
        score_threshold=0.75,
        max_context_tokens=counts["a"],
        context_tokenizer=llm_tokenizer,
    )
    ranked = reranker.rerank("q", BUDGET_DOCS)
    assert ids(ranked) == ["a"]
    assert ranked.dropped == {
        "on_unreadable": 0,
        "top_k": 1,
        "score_threshold": 1,
        "max_context_tokens": 1,
    }


def test_the_budget_defaults_to_the_rerankers_own_tokenizer(tiny_model, llm_tokenizer):
    texts = list(TEXTS.values())
    own = reference_counts(tiny_model, texts)
    assert own != reference_counts(llm_tokenizer, texts)  # the two tokenizers differ here
    ranked = Reranker(model=tiny_model, max_context_tokens=10_000).rerank("q", BUDGET_DOCS)
    assert {r.document_id: r.context_tokens for r in ranked} == dict(zip(TEXTS, own, strict=True))
    # With a custom scorer, the `tokenizer` setting is the reranker's own.
    custom = Reranker(scorer=budget_scorer, tokenizer=tiny_model, max_context_tokens=10_000)
    assert [r.context_tokens for r in custom.rerank("q", BUDGET_DOCS)] == own


def test_a_tiktoken_encoding_counts_the_budget(monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken import registry

    # The real encodings download their BPE file on first use (no network here): a small
    # byte-level encoding, registered as a tiktoken plugin would register one.
    tiktoken.list_encoding_names()  # loads the plugin constructors first
    spec = {
        "name": "test_bytes",
        "pat_str": r"\S+|\s+",
        "mergeable_ranks": {bytes([i]): i for i in range(256)} | {b"th": 256, b"the": 257},
        "special_tokens": {"<|endoftext|>": 258},
    }
    monkeypatch.setitem(registry.ENCODING_CONSTRUCTORS, "test_bytes", lambda: spec)
    encoding = tiktoken.get_encoding("test_bytes")
    texts = [*TEXTS.values(), "ends <|endoftext|> here"]
    counts = [len(encoding.encode(t, disallowed_special=())) for t in texts]
    docs = [*BUDGET_DOCS, {"id": "e", "content": texts[-1]}]
    ranked = Reranker(
        scorer=lambda pairs: [0.0] * len(pairs),
        max_context_tokens=sum(counts),
        context_tokenizer="test_bytes",
    ).rerank("q", docs)
    assert [r.context_tokens for r in ranked] == counts
    assert ranked.context_tokens == sum(counts)


def test_the_budget_below_the_floor_is_a_hard_limit_with_a_warning(llm_tokenizer, caplog):
    reranker = Reranker(
        scorer=budget_scorer,
        score_threshold=0.95,
        min_results=2,
        max_context_tokens=1,
        context_tokenizer=llm_tokenizer,
    )
    with caplog.at_level(logging.INFO, logger="crossrank"):
        ranked = reranker.rerank("q", BUDGET_DOCS)
    assert ranked == []
    assert ranked.dropped["score_threshold"] == 2 and ranked.dropped["max_context_tokens"] == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fewer than min_results=2" in warnings[0].getMessage()


def test_the_budget_in_the_log_line(llm_tokenizer, caplog):
    counts = reference_counts(llm_tokenizer, [TEXTS["a"]])
    reranker = Reranker(
        scorer=budget_scorer, max_context_tokens=counts[0], context_tokenizer=llm_tokenizer
    )
    with caplog.at_level(logging.INFO, logger="crossrank"):
        reranker.rerank("q", BUDGET_DOCS)
    (record,) = [r for r in caplog.records if hasattr(r, SELECTION_RECORD)]
    assert record.getMessage() == (
        f"kept 1 of 4 documents (dropped: max_context_tokens 3; {counts[0]} of {counts[0]} tokens)"
    )


# -- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_context_tokens": -5, "context_tokenizer": "cl100k_base"}, "max_context_tokens=-5"),
        ({"max_context_tokens": 0, "context_tokenizer": "cl100k_base"}, "max_context_tokens=0"),
        ({"max_context_tokens": True, "context_tokenizer": "cl100k_base"}, "max_context_tokens"),
        ({"score_threshold": float("nan")}, "score_threshold=nan"),
        ({"score_threshold": float("inf")}, "score_threshold=inf"),
        ({"score_threshold": "high"}, "score_threshold='high'"),
        ({"score_threshold": True}, "score_threshold=True"),
        ({"min_results": -1}, "min_results=-1"),
        ({"context_tokenizer": "cl100k_base"}, "context_tokenizer is set but max_context_tokens"),
        ({"max_context_tokens": 100}, "needs context_tokenizer"),
        (
            {"max_context_tokens": 100, "context_tokenizer": "/no/such/tokenizer"},
            "context_tokenizer='/no/such/tokenizer'",
        ),
    ],
)
def test_bad_values_are_config_errors_naming_the_setting(settings, named):
    with pytest.raises(ConfigError, match="invalid Reranker setting") as info:
        Reranker(scorer=table_scorer, **settings)
    assert named in str(info.value)


def test_a_tokenizer_that_cannot_be_found_fails_before_scoring():
    calls = []

    def scorer(pairs):
        calls.append(pairs)
        return [0.0] * len(pairs)

    reranker = Reranker(
        scorer=scorer, max_context_tokens=100, context_tokenizer="no-such-org/no-such-tokenizer"
    )
    with pytest.raises(ConfigError, match="setting `context_tokenizer`"):
        reranker.rerank("q", DOCS)
    assert calls == []  # at load time, not mid-call: nothing was scored


def test_a_hosted_model_needs_a_context_tokenizer():
    with pytest.raises(ConfigError, match="hosted model"):
        Reranker(model="cohere-rerank-v3", max_context_tokens=100)
