"""Build a tiny, real cross-encoder on disk, with no download.

For tests and offline experiments: `build_tiny_cross_encoder(folder)` writes a small
`BertForSequenceClassification` (random weights, fixed seed) and a character-level WordPiece
tokenizer, the layout `sentence_transformers.CrossEncoder(folder)` loads. Its scores carry no
meaning, but every code path (tokenisation, truncation, batching, the forward pass) is real.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = string.ascii_lowercase + string.digits + string.punctuation


def tiny_vocab() -> list[str]:
    """Special tokens, single characters, and their '##' continuations."""
    return _SPECIAL + list(_CHARS) + [f"##{c}" for c in _CHARS]


def build_tiny_cross_encoder(
    folder: str | Path,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    max_position_embeddings: int = 512,
    num_labels: int = 1,
    seed: int = 0,
) -> Path:
    """Write a tiny cross-encoder to `folder` and return its path."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt under every transformers version; the constructor's
    # keyword changed (`vocab_file` in 4.x, `vocab` in 5.x, which ignores `vocab_file` and
    # builds a tokenizer of the 5 special tokens only, mapping every character to [UNK]).
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    if len(tokenizer) != len(tiny_vocab()):
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, not {len(tiny_vocab())}")
    tokenizer.model_max_length = max_position_embeddings
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
        # Wider than BERT's 0.02 so that random scores spread out instead of all being ~0.5.
        initializer_range=0.3,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)  # safetensors by default
    tokenizer.save_pretrained(folder)
    return folder


TEST_MODEL_ENV = "CROSSRANK_TEST_MODEL"


def trained_model_or_skip() -> str:
    """The trained cross-encoder folder named by CROSSRANK_TEST_MODEL, or a pytest skip.

    One rule for every test suite in the repository (core and integrations): CI sets the
    variable; a user's machine without it skips those tests with this reason.
    """
    import os

    import pytest

    path = os.environ.get(TEST_MODEL_ENV)
    if not path:
        pytest.skip(f"{TEST_MODEL_ENV} is not set (CI points it at minilm-l6-scifact-ce)")
    if not Path(path).is_dir():
        pytest.skip(f"{TEST_MODEL_ENV}={path} is not a folder")
    return path


def isolated_export_cache(tmp_path_factory: Any) -> Iterator[Path]:
    """A pytest session's ONNX / OpenVINO export cache: a session folder, not ~/.cache.

    The default backend converts every model it scores, and test models live in fresh
    temporary folders (so their cache keys never repeat); keeping their exports in the
    session's folder leaves nothing behind. A `CROSSRANK_EXPORT_CACHE` set by the caller
    (a CI cache, say) is kept.
    """
    import os

    from crossrank.models.runtimes.export import EXPORT_CACHE_ENV

    given = os.environ.get(EXPORT_CACHE_ENV)
    if given:
        yield Path(given)
        return
    folder = tmp_path_factory.mktemp("export-cache")
    os.environ[EXPORT_CACHE_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(EXPORT_CACHE_ENV, None)


# -- tiny causal-LM rerankers (model families) ------------------------------------------------

# The special tokens each causal family's prompt uses, so that they stay single tokens.
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|endoftext|>"]
GEMMA_TOKENS = ["<bos>", "<eos>", "<pad>"]

# Text the byte-level BPE learns its merges from: the families' prompts and answer words, so
# that "yes", "no", "Yes" and the prompts' words become tokens as in the real vocabularies.
_BPE_CORPUS = [
    "yes", "no", "Yes", "No", "yes no yes no", "Yes No", "0", "1",
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".',
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query",
    "<Query>: what is a panda?\n<Document>: The giant panda is a bear species endemic to China.",
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'.",
    "A: query B: passage instruction: query: document:",
    "You are a search relevance expert who evaluates how well documents match search queries.",
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "system user assistant Relevance: the of and to in is that for on with as",
]  # fmt: skip


def build_tiny_bpe_tokenizer(
    special_tokens: list[str],
    *,
    vocab_size: int = 600,
    model_max_length: int = 512,
    **roles: str,
) -> object:
    """A byte-level BPE tokenizer (every text encodes, no unknown tokens) with `special_tokens`.

    Like the Qwen and Gemma tokenizers it has no post-processor: a text encodes to its own
    tokens only. `roles` name special tokens (`pad_token="<|endoftext|>"`, `bos_token=...`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_BPE_CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **roles)


def build_tiny_causal_reranker(
    folder: str | Path,
    family: str,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Write a tiny random causal LM of `family`'s architecture and its tokenizer to `folder`.

    `family`: "qwen3-reranker" (Qwen3ForCausalLM), "bge-reranker-gemma" (GemmaForCausalLM)
    or "mxbai-rerank-v2" (Qwen2ForCausalLM). The folder's name does not matter to crossrank
    (detection also reads the name; pass `model_family` for a folder named otherwise).
    """
    import torch
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if family == "bge-reranker-gemma":
        tokenizer: Any = build_tiny_bpe_tokenizer(
            GEMMA_TOKENS,
            model_max_length=max_position_embeddings,
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
        )
        config_class, model_class = transformers.GemmaConfig, transformers.GemmaForCausalLM
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    elif family in ("qwen3-reranker", "mxbai-rerank-v2"):
        tokenizer = build_tiny_bpe_tokenizer(
            CHAT_TOKENS,
            model_max_length=max_position_embeddings,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
        )
        if family == "qwen3-reranker":
            config_class, model_class = transformers.Qwen3Config, transformers.Qwen3ForCausalLM
        else:
            config_class, model_class = transformers.Qwen2Config, transformers.Qwen2ForCausalLM
        special = {
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    else:
        raise ValueError(f"no tiny model for family {family!r}")
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=max_position_embeddings,
        # Wider than the usual 0.02 so that random scores spread out.
        initializer_range=0.3,
        tie_word_embeddings=True,
        **special,
    )
    model = model_class(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
