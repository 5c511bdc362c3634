"""Input bounds: oversized calls fail fast, and long documents are tokenized only as needed.

The size tests run in a child process (tests/bounds_child.py) under an address-space ceiling
of what the loaded model uses plus 1 GiB: without the bounds a 50 MB document made the
tokenizer abort that process (exit 134), and a 10 MB query or a million documents took
gigabytes. The token-id tests check the bounded path against tokenizing the whole text.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank import ConfigError, DocumentError, QueryError, Reranker

CHILD = Path(__file__).with_name("bounds_child.py")
SCENARIOS = [
    "truncate_50mb",
    "chunk_50mb",
    "default_50mb",
    "query_10mb",
    "documents_1m",
    "generator_1m",
]
HEADROOM_MB = 1024  # the child's address-space ceiling above what the loaded model uses
SECONDS = 10  # each scenario, on a busy shared machine (about 0.4 s when idle)
GROWTH_MB = 300  # peak resident growth per scenario; the 50 MB document itself is 50 MB


@pytest.fixture(scope="module")
def child_report(tiny_model: str) -> dict[str, dict]:
    proc = subprocess.run(
        [sys.executable, str(CHILD), tiny_model, str(HEADROOM_MB), *SCENARIOS],
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            report[entry["scenario"]] = entry
    for name in SCENARIOS:  # a scenario the child died in is reported with its exit status
        report.setdefault(
            name, {"died": proc.returncode, "stderr": proc.stderr[-2000:], "ok": None}
        )
    return report


def _within_caps(entry: dict) -> None:
    assert "died" not in entry, f"the child process died (exit {entry.get('died')}): {entry}"
    assert entry["seconds"] < SECONDS, entry
    assert entry["rss_growth_mb"] < GROWTH_MB, entry


def test_a_50mb_document_is_truncated_within_memory(child_report):
    entry = child_report["truncate_50mb"]
    _within_caps(entry)
    assert entry["ok"], entry
    assert entry["truncated"][entry["scores"].index(max(entry["scores"]))] in (True, False)
    assert sorted(entry["truncated"]) == [False, True]


def test_a_50mb_document_is_chunked_within_memory(child_report):
    entry = child_report["chunk_50mb"]
    _within_caps(entry)
    assert entry["ok"], entry
    assert sorted(entry["truncated"]) == [False, True]  # past max_chunks_per_document


def test_a_50mb_document_is_refused_by_default(child_report):
    entry = child_report["default_50mb"]
    _within_caps(entry)
    assert entry["error"] == "DocumentError", entry
    assert "max_document_chars=1,000,000" in entry["message"]
    assert "document 0" in entry["message"]


def test_a_10mb_query_is_refused(child_report):
    entry = child_report["query_10mb"]
    _within_caps(entry)
    assert entry["error"] == "QueryError", entry
    assert "max_query_chars=10,000" in entry["message"]


@pytest.mark.parametrize("scenario", ["documents_1m", "generator_1m"])
def test_a_million_documents_are_refused(child_report, scenario):
    entry = child_report[scenario]
    _within_caps(entry)
    assert entry["error"] == "DocumentError", entry
    assert "max_documents=10,000" in entry["message"]


# -- the bounds, in process (a custom scorer: no model, no tokenizer) -------------------------


def _echo(pairs):
    return [float(len(d)) for _, d in pairs]


def test_each_bound_names_its_setting_and_the_document():
    reranker = Reranker(scorer=_echo, max_documents=3, max_document_chars=10, max_total_chars=25)
    with pytest.raises(DocumentError, match=r"4 documents .* max_documents=3"):
        reranker.rerank("q", ["a", "b", "c", "d"])
    docs = [{"id": "x", "content": "short"}, {"id": "long-one", "content": "y" * 11}]
    with pytest.raises(DocumentError, match=r"document 1 \(id 'long-one'\).*max_document_chars=10"):
        reranker.rerank("q", docs)
    with pytest.raises(DocumentError, match=r"document 2 .*max_total_chars=25") as info:
        reranker.rerank("q", ["a" * 10, "b" * 10, "c" * 10])
    assert info.value.index == 2 and info.value.field == "content"
    with pytest.raises(QueryError, match="max_query_chars=5"):
        Reranker(scorer=_echo, max_query_chars=5).rerank("q" * 6, ["a"])
    # At the bounds exactly: scored.
    assert len(reranker.rerank("q", ["a" * 10, "b" * 10, "c" * 5])) == 3


def test_a_bound_refuses_whatever_on_unreadable_says():
    reranker = Reranker(scorer=_echo, max_document_chars=10, on_unreadable="skip")
    with pytest.raises(DocumentError, match="max_document_chars"):
        reranker.rerank("q", ["fine", "z" * 11])


def test_an_endless_iterator_is_read_only_past_the_bound():
    def endless():
        i = 0
        while True:
            yield f"document {i}"
            i += 1

    with pytest.raises(DocumentError, match="more than 5 documents"):
        Reranker(scorer=_echo, max_documents=5).rerank("q", endless())


@pytest.mark.parametrize(
    "setting", ["max_documents", "max_document_chars", "max_query_chars", "max_total_chars"]
)
@pytest.mark.parametrize("value", [0, -1, True])
def test_bounds_must_be_positive_counts(setting, value):
    with pytest.raises(ConfigError, match=setting):
        Reranker(scorer=_echo, **{setting: value})


def test_bounds_round_trip_through_json():
    reranker = Reranker(model="m", max_documents=50, max_query_chars=99)
    again = Reranker.from_json(reranker.config.model_dump_json())
    assert again.config.max_documents == 50 and again.config.max_query_chars == 99


# -- bounded tokenizing gives the ids of the whole text -----------------------------------------


def _texts() -> dict[str, str]:
    rng = random.Random(17)
    words = ["alpha", "beta", "Gamma,", "délta", "e\u0301psilon", "zeta.", "42", "x-ray", "naïve"]
    spaced = " ".join(rng.choice(words) for _ in range(6000))
    mixed_space = "".join(
        rng.choice(words) + rng.choice([" ", "  ", "\n", "\t", "\u3000"]) for _ in range(5000)
    )
    return {
        "words": spaced,
        "whitespace kinds": mixed_space,
        "no spaces": "".join(rng.choice("abcdefgh") for _ in range(30000)),
        "cjk": "".join(rng.choice("文字列検索順位付け") for _ in range(20000)),
        "emoji and digits": " ".join(
            rng.choice(["🙂🙂", "12345", "a1b2", "ok"]) for _ in range(8000)
        ),
        "one long word then words": "q" * 5000 + " " + spaced,
    }


def _tokenizer_folders(tmp_path_factory, tiny_model: str) -> dict[str, str]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from crossrank.testing import build_tiny_bpe_tokenizer

    folders = {"wordpiece (tiny model)": tiny_model}
    bpe = build_tiny_bpe_tokenizer(["<|endoftext|>"], pad_token="<|endoftext|>")
    bpe_folder = tmp_path_factory.mktemp("bpe")
    bpe.save_pretrained(bpe_folder)
    folders["byte-level bpe"] = str(bpe_folder)
    # A SentencePiece-like Unigram with Metaspace, as XLM-R (bge-reranker-v2-m3) tokenizes.
    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.NFKC()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "<unk>"], unk_token="<unk>"
    )
    unigram.train_from_iterator([" ".join(_texts().values())[:200000]], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="<unk>", pad_token="<pad>")
    uni_folder = tmp_path_factory.mktemp("unigram")
    fast.save_pretrained(uni_folder)
    folders["unigram metaspace"] = str(uni_folder)
    return folders


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, tiny_model):
    return _tokenizer_folders(tmp_path_factory, tiny_model)


MAX_LENGTH = 64


@pytest.mark.parametrize(
    "kind",
    ["wordpiece (tiny model)", "byte-level bpe", "unigram metaspace"],
)
def test_truncated_documents_give_the_ids_of_the_whole_text(tokenizers, kind):
    from transformers import AutoTokenizer

    folder = tokenizers[kind]
    tok = AutoTokenizer.from_pretrained(folder)
    seen: list[tuple[str, str]] = []

    def scorer(pairs):
        seen.extend(pairs)
        return [0.0] * len(pairs)

    texts = _texts()
    reranker = Reranker(scorer=scorer, tokenizer=folder, max_length=MAX_LENGTH)
    results = reranker.rerank("alpha beta", list(texts.values()))
    assert results[0].truncated  # (WordPiece reads 30,000 letters without a space as one [UNK])
    sent = dict(zip(texts, (d for _, d in seen), strict=True))

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"][:MAX_LENGTH]

    for name, text in texts.items():
        assert ids(sent[name]) == ids(text), name
        assert text.startswith(sent[name]), name
    # The bounded path was taken: text with spaces is sent (and tokenized) as a prefix only.
    assert len(sent["words"]) < len(texts["words"]) // 4


@pytest.mark.parametrize("kind", ["wordpiece (tiny model)", "byte-level bpe", "unigram metaspace"])
def test_chunk_windows_are_those_of_the_whole_text(tokenizers, kind):
    from transformers import AutoTokenizer

    folder = tokenizers[kind]
    tok = AutoTokenizer.from_pretrained(folder)
    seen: list[tuple[str, str]] = []

    def scorer(pairs):
        seen.extend(pairs)
        return [float(i) for i in range(len(pairs))]

    query = "alpha beta"
    text = _texts()["words"]
    chunks, overlap = 3, 8
    reranker = Reranker(
        scorer=scorer,
        tokenizer=folder,
        max_length=MAX_LENGTH,
        long_documents="chunk",
        max_chunks_per_document=chunks,
        chunk_overlap=overlap,
    )
    (result,) = reranker.rerank(query, [text])
    assert result.truncated
    # The reference: windows cut from the whole text's tokens.
    overhead = len(tok(query, add_special_tokens=False)["input_ids"])
    overhead += tok.num_special_tokens_to_add(pair=True)
    window = MAX_LENGTH - overhead
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    expected = []
    for k in range(chunks):
        start = k * (window - overlap)
        end = start + window
        expected.append(text[offsets[start][0] : offsets[end - 1][1]])
    assert [d for _, d in seen] == expected


def test_bounds_apply_to_a_hosted_model_too():
    # A hosted model refuses local-model settings; the bounds are checked before sending.
    reranker = Reranker(model="cohere-rerank-v3", max_documents=2)
    with pytest.raises(DocumentError, match="max_documents=2"):
        reranker.rerank("q", ["a", "b", "c"])
