"""crossrank for LlamaIndex: ``from llama_index.postprocessor.crossrank import CrossRankRerank``."""

from llama_index.postprocessor.crossrank.base import (
    CONTRACT_METADATA_KEYS,
    ORIGINAL_SCORE_KEY,
    RERANK_POSITION_KEY,
    CrossRankRerank,
)

__all__ = [
    "CONTRACT_METADATA_KEYS",
    "ORIGINAL_SCORE_KEY",
    "RERANK_POSITION_KEY",
    "CrossRankRerank",
]
