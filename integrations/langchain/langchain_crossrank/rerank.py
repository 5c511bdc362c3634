"""`CrossRankReranker`: crossrank's rerank stage as a LangChain document compressor.

Mapping between LangChain `Document`s and the crossrank stage contract:

- text: `page_content` by default; `document_field` may name a metadata key instead, as
  ``"metadata.body"`` or just ``"body"`` (anything other than ``page_content`` is read from
  `metadata`; dotted paths reach into nested metadata dicts);
- id: `Document.id` (errors name the document by its position and this id);
- previous score: the input's `metadata["relevance_score"]` when it has one (a previous
  reranker's score, which this stage replaces, so it is moved to `original_score` rather
  than lost), else `metadata[original_score_key]` when that key is set and present, else None.

Each returned `Document` is a new object (same class, same `id` and `page_content`) whose
metadata is a deep copy of the input's with three keys written: `relevance_score` (plain
float), `original_score` and `rerank_position` (0-based). The caller's documents are never
modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from crossrank import DEFAULT_MODEL, RankedDocument, RerankConfig, Reranker
from crossrank.config import ENGINE_SETTINGS, Activation, DType, ModelFamily

if TYPE_CHECKING:
    from langchain_core.retrievers import RetrieverLike

    from langchain_crossrank.retrievers import CrossRankRetriever

RELEVANCE_SCORE = "relevance_score"
ORIGINAL_SCORE = "original_score"
RERANK_POSITION = "rerank_position"
OUTPUT_KEYS = (RELEVANCE_SCORE, ORIGINAL_SCORE, RERANK_POSITION)

PAGE_CONTENT = "page_content"

_UNSET: Any = object()

# Settings of the scoring engine itself: given with a ready `reranker`, they would be ignored.
_ENGINE_SETTINGS = ("top_k", *ENGINE_SETTINGS)


def _text_path(document_field: str) -> str:
    """The crossrank dotted path for a LangChain `document_field`."""
    if document_field == PAGE_CONTENT or document_field.startswith("metadata."):
        return document_field
    return f"metadata.{document_field}"


def _copy_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, so that changing a result never reaches the caller's document.

    A value that cannot be deep-copied (a lock, a client, a generator) is shared as it is
    rather than failing the whole rerank.
    """
    try:
        return copy.deepcopy(metadata)
    except Exception:
        copied: dict[str, Any] = {}
        for key, value in metadata.items():
            try:
                copied[key] = copy.deepcopy(value)
            except Exception:
                copied[key] = value
        return copied


def _top_k(top_k: Any) -> dict[str, Any]:
    """The engine's `top_k` keyword for one call: absent when unset (the setting applies)."""
    return {} if top_k is _UNSET else {"top_k": top_k}


def _metadata_value(metadata: dict[str, Any], key: str) -> Any:
    """`metadata[key]` (or, for a dotted key absent as such, the nested value); else None."""
    if key in metadata:
        return metadata[key]
    value: Any = metadata
    for name in key.split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


class CrossRankReranker(BaseDocumentCompressor):
    """Rerank LangChain `Document`s with a cross-encoder (crossrank).

    Example:
        ```python
        from langchain_crossrank import CrossRankReranker

        reranker = CrossRankReranker(model="BAAI/bge-reranker-v2-m3", top_k=5)
        ranked = reranker.compress_documents(documents, "what is a cross-encoder?")
        ranked[0].metadata["relevance_score"]  # a plain float
        retriever = reranker.as_retriever(vector_store.as_retriever(search_kwargs={"k": 20}))
        ```

    Settings are crossrank's stage contract (`model`, `scorer`, `top_k`, `batch_size`,
    `max_length`, `device`, `dtype`, `activation`, `trust_remote_code`), or a ready
    `crossrank.Reranker` as `reranker` (then leave those settings unset: the reranker's own
    apply). `document_field` and `original_score_key` say where a LangChain `Document` keeps
    its text and its previous score, and apply in both cases.

    Nothing loads at construction; the model loads on the first call and is then shared by
    every call, thread and coroutine. `acompress_documents` never blocks the event loop.
    """

    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    """Hugging Face cross-encoder name or local folder."""

    scorer: Any = None
    """Custom scorer overriding `model`: an http(s) endpoint URL, a callable
    ``fn(pairs) -> scores`` (sync or async), or an object with ``score(pairs)``."""

    top_k: PositiveInt | None = None
    """How many documents to return, best first; None keeps all. Larger than N returns all."""

    document_field: str = PAGE_CONTENT
    """Where the text lives: ``page_content``, or a metadata key (``"body"`` or
    ``"metadata.body"``; dotted paths reach into nested metadata)."""

    original_score_key: str | None = None
    """Metadata key holding the first-stage score (for example ``"score"``), copied to
    `original_score` when the input has no `relevance_score`."""

    batch_size: PositiveInt = 32
    """Pairs per forward pass."""

    max_length: PositiveInt | None = None
    """Token limit per (query, document) pair; None uses the model's own."""

    device: str = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``."""

    dtype: DType = "auto"
    """``auto``: float16 on cuda, float32 elsewhere."""

    activation: Activation = "default"
    """``default`` (the model's own, a sigmoid for one-logit rerankers), ``sigmoid``, ``none``."""

    trust_remote_code: bool = False
    """Let a model repository run its own Python code (only when you trust it)."""

    model_family: ModelFamily = "auto"
    """How the model reads a pair: ``auto`` (detected), ``sequence-classification``,
    ``qwen3-reranker``, ``bge-reranker-gemma``, ``mxbai-rerank-v2``."""

    instruction: str | None = None
    """Task instruction for rerankers that take one; None: the model card's default."""

    allow_pickle_weights: bool = False
    """Load pickle weights (``pytorch_model.bin``) of a model without safetensors (trusted only)."""

    scorer_api_key_env: str | None = None
    """Environment variable holding an endpoint scorer's API key (never stored or printed)."""

    long_documents: Literal["truncate", "chunk"] = "truncate"
    """Texts past ``max_length``: ``truncate`` (counted) or ``chunk`` (token windows, pooled)."""

    chunk_overlap: NonNegativeInt | None = None
    """Tokens shared by consecutive windows; None: a quarter of a window."""

    chunk_pooling: Literal["max", "mean", "first"] = "max"
    """How window scores become the document's score."""

    max_chunks_per_document: PositiveInt = 8
    """Windows scored per document at most; the rest is truncated and counted."""

    tokenizer: str | None = None
    """Tokenizer name or folder for chunking with a custom scorer."""

    backend: Literal["torch", "onnx"] = "torch"
    """``torch``, or ``onnx`` (ONNX Runtime on CPU; the ``crossrank[onnx]`` extra)."""

    quantize: Literal["none", "int8"] = "none"
    """``int8``: dynamic int8 quantisation with ``backend="onnx"`` (lossy)."""

    token_budget: PositiveInt | None = None
    """Most padded tokens per forward pass; None: a default per device."""

    num_threads: PositiveInt | None = None
    """CPU threads for the forward pass (process-wide in torch)."""

    cache_size: NonNegativeInt = 0
    """Entries of the LRU score cache; 0 is off."""

    microbatch: bool = False
    """Concurrent calls on one model share batches."""

    microbatch_wait_ms: NonNegativeFloat = 2.0
    """How long a call waits for others to join its batch."""

    reranker: Reranker | None = None
    """A ready `crossrank.Reranker` to score with, instead of the settings above."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    _engine: Reranker = PrivateAttr()

    @model_validator(mode="after")
    def _build_engine(self) -> CrossRankReranker:
        path = _text_path(self.document_field)
        if self.reranker is not None:
            given = sorted(set(_ENGINE_SETTINGS) & self.model_fields_set)
            if given:
                raise ValueError(
                    f"pass either a ready `reranker` or engine settings, not both: "
                    f"{', '.join(given)} would be ignored; set them on the crossrank.Reranker"
                )
            settings = dict(self.reranker.config)
        else:
            settings = {name: getattr(self, name) for name in _ENGINE_SETTINGS}
        # The previous score is mapped here (see _original_score); the engine reads the text.
        settings.update(document_field=path, original_score_field=f"metadata.{RELEVANCE_SCORE}")
        try:
            config = RerankConfig(**settings)
        except ValidationError as exc:
            raise ValueError(f"invalid crossrank setting: {exc}") from None
        if self.reranker is not None and config == self.reranker.config:
            self._engine = self.reranker  # share its scorer (an HTTP client, a loaded model)
        else:
            # Same scorer object; a model comes from crossrank's process-wide cache.
            self._engine = Reranker(config)
        return self

    # -- mapping ----------------------------------------------------------------------------

    def _original_score(self, document: Document) -> Any:
        metadata = document.metadata
        if metadata.get(RELEVANCE_SCORE) is not None:
            return metadata[RELEVANCE_SCORE]
        if self.original_score_key is not None:
            return _metadata_value(metadata, self.original_score_key)
        return None

    def _to_document(self, ranked: RankedDocument) -> Document:
        source: Document = ranked.document
        metadata = _copy_metadata(source.metadata)
        original = self._original_score(source)
        metadata[RELEVANCE_SCORE] = ranked.score
        metadata[ORIGINAL_SCORE] = original
        metadata[RERANK_POSITION] = ranked.rerank_position
        # model_copy keeps the class, `id`, `page_content` and any extra fields.
        return source.model_copy(update={"metadata": metadata})

    @staticmethod
    def _check_documents(documents: Sequence[Document]) -> list[Document]:
        if isinstance(documents, str | bytes | Document | dict):
            raise TypeError(
                f"documents must be a sequence of Documents, not a single "
                f"{type(documents).__name__}"
            )
        docs = list(documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, Document):
                raise TypeError(
                    f"document {i} is a {type(doc).__name__}, not a langchain Document; "
                    "wrap it as Document(page_content=...)"
                )
            if not isinstance(doc.metadata, dict):
                raise TypeError(f"document {i} (id {doc.id!r}): metadata is not a dict")
        return docs

    # -- public API -------------------------------------------------------------------------

    def rerank(
        self, documents: Sequence[Document], query: str, *, top_k: int | None = _UNSET
    ) -> list[Document]:
        """Rerank `documents` against `query`; `top_k` overrides the setting for this call."""
        docs = self._check_documents(documents)
        ranked = self._engine.rerank(query, docs, **_top_k(top_k))
        return [self._to_document(r) for r in ranked]

    async def arerank(
        self, documents: Sequence[Document], query: str, *, top_k: int | None = _UNSET
    ) -> list[Document]:
        """`rerank` for async code: scoring runs off the event loop (or on an async scorer)."""
        docs = self._check_documents(documents)
        ranked = await self._engine.arerank(query, docs, **_top_k(top_k))
        return [self._to_document(r) for r in ranked]

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank `documents` against `query`: new `Document`s, best first, at most `top_k`.

        Raises `crossrank.DocumentError` (naming the document and the field) for a document
        whose text is missing, not a string, or empty; `crossrank.QueryError` for an empty
        query; `crossrank.ScorerError` when the scorer misbehaves.
        """
        return self.rerank(documents, query)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """`compress_documents` without blocking the event loop; safe to call concurrently."""
        return await self.arerank(documents, query)

    def as_retriever(self, base_retriever: RetrieverLike, **kwargs: Any) -> CrossRankRetriever:
        """A retriever that fetches with `base_retriever` and reranks with this compressor.

        `base_retriever` is any retriever (or runnable) from a query to `Document`s; `kwargs`
        go to `CrossRankRetriever` (`tags`, `metadata`, ...).
        """
        from langchain_crossrank.retrievers import CrossRankRetriever

        return CrossRankRetriever(base_retriever=base_retriever, reranker=self, **kwargs)


__all__ = ["OUTPUT_KEYS", "CrossRankReranker"]
