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
