"""crossrank: re-rank retrieved documents with cross-encoders.

from crossrank import Reranker
ranked = Reranker(top_k=5).rerank("what is a cross-encoder?", documents)
"""

from crossrank.config import DEFAULT_MODEL, RerankConfig
from crossrank.errors import (
    ConfigError,
    CrossrankError,
    DocumentError,
    ModelLoadError,
    QueryError,
    ScorerError,
    ScorerResponseError,
    ScorerUnavailableError,
)
from crossrank.models import CrossEncoderScorer, ModelScorer
from crossrank.reranker import Reranker
from crossrank.results import RankedDocument, RankedList
from crossrank.scorers import CallableScorer, HttpScorer, Scorer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "CallableScorer",
    "ConfigError",
    "CrossEncoderScorer",
    "CrossrankError",
    "DocumentError",
    "HttpScorer",
    "ModelLoadError",
    "ModelScorer",
    "QueryError",
    "RankedDocument",
    "RankedList",
    "RerankConfig",
    "Reranker",
    "Scorer",
    "ScorerError",
    "ScorerResponseError",
    "ScorerUnavailableError",
    "__version__",
]
