"""crossrank for LlamaIndex: ``from llama_index.postprocessor.crossrank import CrossRankRerank``."""

from importlib import metadata

from llama_index.postprocessor.crossrank.base import (
    CONTRACT_METADATA_KEYS,
    ORIGINAL_SCORE_KEY,
    RERANK_POSITION_KEY,
    CrossRankRerank,
)

try:
    __version__ = metadata.version("llama-index-postprocessor-crossrank")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = ""

__all__ = [
    "CONTRACT_METADATA_KEYS",
    "ORIGINAL_SCORE_KEY",
    "RERANK_POSITION_KEY",
    "CrossRankRerank",
    "__version__",
]
