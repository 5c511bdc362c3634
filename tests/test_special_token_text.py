"""Special-token strings in a query or document are plain text (issue 17).

A literal "[SEP]" or "[CLS]" typed into a document must not end the pair early or start a new
segment: the sequence-classification family reads it as its characters, as the causal
families read theirs. With the tiny BERT tokenizer, "[SEP]" as text is "[", "s", "##e",
"##p", "]": exactly the tokens of "[ sep ]", so both must give the same ids and score.
"""

from __future__ import annotations

import pytest

from crossrank import Reranker


@pytest.fixture
def reranker(tiny_model) -> Reranker:
    return Reranker(model=tiny_model, device="cpu", backend="torch", activation="none")


def _special_count(reranker: Reranker, query: str, document: str) -> int:
    tokenizer = reranker.scorer.model.tokenizer
    special = set(tokenizer.all_special_ids)
    (row,) = reranker.scorer.encode([(query, document)])
    return sum(1 for t in row.input_ids if t in special)


@pytest.mark.parametrize("marker", ["[SEP]", "[CLS]", "[SEP] [CLS] [MASK] [PAD]"])
def test_a_special_token_string_in_a_document_is_plain_text(reranker, marker):
    document = f"wind tunnel {marker} flow"
    as_text = f"wind tunnel {marker.lower().replace('[', '[ ').replace(']', ' ]')} flow"
    (row,) = reranker.scorer.encode([("wind", document)])
    (text_row,) = reranker.scorer.encode([("wind", as_text)])
    assert row.input_ids == text_row.input_ids
    assert _special_count(reranker, "wind", document) == 3  # [CLS] q [SEP] d [SEP] only
    [ranked] = reranker.rerank("wind", [document])
    [plain] = reranker.rerank("wind", [as_text])
    assert ranked.score == pytest.approx(plain.score, abs=1e-6)


def test_a_special_token_string_in_a_query_is_plain_text(reranker):
    (row,) = reranker.scorer.encode([("wind [SEP] tunnel", "flow")])
    (text_row,) = reranker.scorer.encode([("wind [ sep ] tunnel", "flow")])
    assert row.input_ids == text_row.input_ids
    assert _special_count(reranker, "wind [SEP] tunnel", "flow") == 3
    [ranked] = reranker.rerank("wind [SEP] tunnel", ["flow"])
    [plain] = reranker.rerank("wind [ sep ] tunnel", ["flow"])
    assert ranked.score == pytest.approx(plain.score, abs=1e-6)


def test_chunk_windows_count_special_token_strings_as_text(tiny_model):
    """The window counter reads "[SEP]" as the family does (a guard: changing one and not the
    other would make windows that are cut when scored)."""
    from crossrank.long_documents import expand, token_counter

    settings = {"model": tiny_model, "device": "cpu", "backend": "torch"}
    reranker = Reranker(**settings, max_length=24, long_documents="chunk")
    uncut = Reranker(**settings, max_length=512)
    document = " ".join(["ab [SEP] cd"] * 12)
    counter = token_counter(reranker.config, reranker.scorer)
    pairs = expand("wind", [document], reranker.config, counter).pairs
    assert len(pairs) > 2
    assert reranker.scorer.encode(pairs) == uncut.scorer.encode(pairs)
