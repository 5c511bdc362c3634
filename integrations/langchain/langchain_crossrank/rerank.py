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
float), `original_score` and `rerank_position` (0-based); with `on_unreadable="last"`, a
document without readable text also gets `unreadable` (its problem) and a `relevance_score`
of -inf; with `max_context_tokens`, each gets `context_tokens` (its text's tokens, counted with
`context_tokenizer`). The caller's documents are never modified.

Context selection (`score_threshold`, inclusive and after `top_n` as in FlashrankRerank;
`min_results`; `max_context_tokens`) is the engine's, inherited with the other settings. The
compressor returns a list (a `crossrank.RankedList`) whose `.dropped` counts what each setting
left out.

The engine settings are not repeated here: `CrossRankReranker` inherits them from
`crossrank.config.EngineSettings`, the definition `crossrank.RerankConfig` inherits too.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.utils import secret_from_env
from pydantic import ConfigDict, Field, PositiveInt, PrivateAttr, SecretStr, model_validator

from crossrank import RankedDocument, RankedList, RerankConfig, Reranker
from crossrank.config import ENGINE_SETTINGS, EngineSettings
from crossrank.scorers.http import DEFAULT_API_KEY_ENV

if TYPE_CHECKING:
    from langchain_core.retrievers import RetrieverLike

    from langchain_crossrank.retrievers import CrossRankRetriever

RELEVANCE_SCORE = "relevance_score"
ORIGINAL_SCORE = "original_score"
RERANK_POSITION = "rerank_position"
UNREADABLE = "unreadable"
CONTEXT_TOKENS = "context_tokens"  # with max_context_tokens: the text's share of the budget
OUTPUT_KEYS = (RELEVANCE_SCORE, ORIGINAL_SCORE, RERANK_POSITION)

PAGE_CONTENT = "page_content"
# Where `rerank()` reads a dict document's text: the key the peers' rerank APIs read
# (Cohere, Jina: {"text": ...}).
DICT_TEXT_KEY = "text"

_UNSET: Any = object()

# Given with a ready `reranker`, these would be ignored: the reranker's own apply.
_ENGINE_SETTINGS = (*ENGINE_SETTINGS, "api_key")


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


def top_n_alias(data: Any) -> Any:
    """Constructor keywords with `top_k` (crossrank's name) folded into `top_n` (LangChain's)."""
    if isinstance(data, dict) and "top_k" in data:
        data = dict(data)
        top_k = data.pop("top_k")
        if "top_n" in data and data["top_n"] != top_k:
            raise ValueError(
                f"top_k ({top_k}) and top_n ({data['top_n']}) disagree; top_k is an alias of "
                "top_n, give one of them"
            )
        data["top_n"] = top_k
    return data


def call_top_n(top_n: Any, top_k: Any) -> Any:
    """One call's `top_n` (or its alias `top_k`); `_UNSET` when neither is given."""
    if top_k is _UNSET:
        return top_n
    if top_n is not _UNSET and top_n != top_k:
        raise ValueError(
            f"top_k ({top_k}) and top_n ({top_n}) disagree; top_k is an alias of top_n, give one"
        )
    return top_k


class CrossRankReranker(EngineSettings, BaseDocumentCompressor):
    """Rerank LangChain `Document`s with a cross-encoder (crossrank).

    Example:
        ```python
        from langchain_crossrank import CrossRankReranker

        reranker = CrossRankReranker(model="BAAI/bge-reranker-v2-m3", top_n=5)
        ranked = reranker.compress_documents(documents, "what is a cross-encoder?")
        ranked[0].metadata["relevance_score"]  # a plain float
        retriever = reranker.as_retriever(vector_store.as_retriever(search_kwargs={"k": 20}))
        ```

    Settings: every setting of crossrank's stage contract (`model`, `scorer`, `device`,
    `on_unreadable`, ... inherited from `crossrank.config.EngineSettings`, so each has the
    contract's type, default, validation and description), or a ready `crossrank.Reranker`
    as `reranker` (then leave those settings unset: the reranker's own apply). `top_n` (alias
    `top_k`) is how many to return: None (the default) keeps all, reordered, where the
    LangChain peers default to 3 to 5. `document_field` and `original_score_key` say where a
    LangChain `Document` keeps its text and its previous score, and apply in both cases.

    Nothing loads at construction; the model loads on the first call and is then shared by
    every call, thread and coroutine, and by copies. `acompress_documents` never blocks the
    event loop. Copies (`copy.deepcopy`, `model_copy(deep=True)`) and pickles work: a pickle
    leaves the engine behind, and the model comes back from crossrank's process-wide cache.
    """

    top_n: PositiveInt | None = Field(
        default=None,
        description="How many documents to return, best first; None keeps all, reordered. "
        "Alias: top_k. Larger than N returns all.",
    )
    document_field: str = Field(
        default=PAGE_CONTENT,
        description="Where the text lives: page_content, or a metadata key ('body' or "
        "'metadata.body'; dotted paths reach into nested metadata).",
    )
    original_score_key: str | None = Field(
        default=None,
        description="Metadata key holding the first-stage score (for example 'score'), copied "
        "to original_score when the input has no relevance_score.",
    )
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(DEFAULT_API_KEY_ENV, default=None),
        description=f"An endpoint scorer's API key (default: ${DEFAULT_API_KEY_ENV}; or name "
        "another variable with scorer_api_key_env). Sent only to the `scorer` URL, never "
        "printed.",
    )
    reranker: Reranker | None = Field(
        default=None,
        description="A ready crossrank.Reranker to score with, instead of the settings above.",
    )

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    _engine: Reranker | None = PrivateAttr(default=None)
    _built_from: dict[str, Any] | None = PrivateAttr(default=None)
    _dict_engine: Reranker | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _top_k_alias(cls, data: Any) -> Any:
        data = top_n_alias(data)
        ready = data.get("reranker") if isinstance(data, dict) else None
        if isinstance(ready, Reranker) and "top_n" not in data:
            data = {**data, "top_n": ready.config.top_k}  # the ready reranker's own count
        return data

    @model_validator(mode="after")
    def _check_engine(self) -> CrossRankReranker:
        if self.reranker is not None:
            given = sorted(set(_ENGINE_SETTINGS) & self.model_fields_set)
            if given:
                raise ValueError(
                    f"pass either a ready `reranker` or engine settings, not both: "
                    f"{', '.join(given)} would be ignored; set them on the crossrank.Reranker"
                )
        self._engine_now()  # builds the engine config: the engine's own checks run here
        return self

    # -- the engine (built lazily, rebuilt when a setting changed) --------------------------

    def _settings(self) -> dict[str, Any]:
        # Only what was given: defaults are the contract's own, and the engine must see which
        # settings were set (a Cohere-compatible endpoint is sent `model` only when set).
        return {
            name: getattr(self, name) for name in ENGINE_SETTINGS if name in self.model_fields_set
        }

    def _build(self, document_field: str, original_score_field: str) -> Reranker:
        paths = {"document_field": document_field, "original_score_field": original_score_field}
        if self.reranker is not None:
            config = self.reranker.config
            if all(getattr(config, k) == v for k, v in paths.items()):
                return self.reranker  # share its scorer (an HTTP client, a loaded model)
            # The same settings read through this mapping; the scorer comes along (a model
            # from crossrank's process-wide cache).
            return Reranker(config.model_copy(update=paths), api_key=self.reranker._api_key)
        key = self.api_key if "api_key" in self.model_fields_set else None
        return Reranker(RerankConfig(**self._settings(), **paths), api_key=key)

    def _engine_now(self) -> Reranker:
        built_from = {
            **self._settings(),
            "document_field": self.document_field,
            "api_key": self.api_key if "api_key" in self.model_fields_set else None,
            "reranker": self.reranker,
        }
        if self._engine is None or built_from != self._built_from:
            # The previous score is mapped here (see _original_score); the engine reads text.
            path = _text_path(self.document_field)
            self._engine = self._build(path, f"metadata.{RELEVANCE_SCORE}")
            self._dict_engine = None
            self._built_from = built_from
        return self._engine

    def _engine_for_dicts(self) -> Reranker:
        self._engine_now()  # drops a dict engine built from settings since changed
        if self._dict_engine is None:
            self._dict_engine = self._build(DICT_TEXT_KEY, "score")
        return self._dict_engine

    def __getstate__(self) -> dict[Any, Any]:
        # A built engine holds locks and clients: leave it behind, rebuild on first use.
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private.update(_engine=None, _built_from=None, _dict_engine=None)
        state["__pydantic_private__"] = private
        return state

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> CrossRankReranker:
        """A copy with its own settings that shares the engine (thread-safe; it may hold a
        loaded model, which is not copied); changing a setting of the copy gives it its own."""
        clone = self.model_copy()
        if memo is not None:
            memo[id(self)] = clone
        return clone

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
        if ranked.unreadable is not None:
            metadata[UNREADABLE] = ranked.unreadable
        if ranked.context_tokens is not None:
            metadata[CONTEXT_TOKENS] = ranked.context_tokens
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

    def _top_k(self, top_n: Any) -> int | None:
        return self.top_n if top_n is _UNSET else top_n

    def _to_documents(self, ranked: RankedList[RankedDocument]) -> RankedList[Document]:
        # A list, as LangChain's compressors return, carrying the engine's drop counts.
        return RankedList(
            (self._to_document(r) for r in ranked),
            dropped=ranked.dropped,
            context_tokens=ranked.context_tokens,
        )

    def rerank_documents(
        self, documents: Sequence[Document], query: str, *, top_n: int | None = _UNSET
    ) -> RankedList[Document]:
        """`compress_documents` with a per-call `top_n` (None keeps all)."""
        docs = self._check_documents(documents)
        ranked = self._engine_now().rerank(query, docs, top_k=self._top_k(top_n))
        return self._to_documents(ranked)

    async def arerank_documents(
        self, documents: Sequence[Document], query: str, *, top_n: int | None = _UNSET
    ) -> RankedList[Document]:
        """`rerank_documents` for async code: scoring runs off the event loop."""
        docs = self._check_documents(documents)
        ranked = await self._engine_now().arerank(query, docs, top_k=self._top_k(top_n))
        return self._to_documents(ranked)

    # -- the peers' rerank(): indexes and scores ----------------------------------------------

    def _plain_inputs(self, documents: Sequence[str | Document | dict]) -> tuple[Reranker, list]:
        if isinstance(documents, str | bytes | Document | dict):
            raise TypeError(
                f"documents must be a sequence of str, Document or dict, not a single "
                f"{type(documents).__name__}"
            )
        docs = list(documents)
        kinds = set()
        for i, doc in enumerate(docs):
            if isinstance(doc, Document):
                kinds.add(Document)
            elif isinstance(doc, dict):
                kinds.add(dict)
            elif not isinstance(doc, str):
                raise TypeError(
                    f"document {i} is a {type(doc).__name__}; rerank() takes str, Document or "
                    "dict documents"
                )
        if kinds == {Document, dict}:
            raise TypeError(
                "rerank() got both Documents and dicts: give one kind per call (a dict's text "
                f"is its {DICT_TEXT_KEY!r} key, a Document's is document_field)"
            )
        engine = self._engine_for_dicts() if dict in kinds else self._engine_now()
        return engine, docs

    @staticmethod
    def _index_scores(ranked: list[RankedDocument]) -> list[dict[str, Any]]:
        return [{"index": r.index, RELEVANCE_SCORE: r.score} for r in ranked]

    def rerank(
        self,
        documents: Sequence[str | Document | dict],
        query: str,
        *,
        top_n: int | None = _UNSET,
    ) -> list[dict[str, Any]]:
        """Score `documents` against `query`, as the LangChain peers' `rerank()` does:
        ``[{"index": i, "relevance_score": s}, ...]``, best first, `index` into `documents`.

        Documents are strings, `Document`s (text at `document_field`) or dicts (text at
        their ``"text"`` key, as the Cohere and Jina APIs read one). `top_n` overrides the
        setting for this call; None keeps all.
        """
        engine, docs = self._plain_inputs(documents)
        return self._index_scores(engine.rerank(query, docs, top_k=self._top_k(top_n)))

    async def arerank(
        self,
        documents: Sequence[str | Document | dict],
        query: str,
        *,
        top_n: int | None = _UNSET,
    ) -> list[dict[str, Any]]:
        """`rerank` for async code: scoring runs off the event loop (or on an async scorer)."""
        engine, docs = self._plain_inputs(documents)
        return self._index_scores(await engine.arerank(query, docs, top_k=self._top_k(top_n)))

    # -- BaseDocumentCompressor ---------------------------------------------------------------

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank `documents` against `query`: new `Document`s, best first, at most `top_n`,
        then those `score_threshold` (inclusive, as FlashrankRerank's), `min_results` and
        `max_context_tokens` keep. The list's `.dropped` counts what each setting left out.

        A document whose text is missing, not a string or empty is handled as
        `on_unreadable` says (default: `crossrank.DocumentError`, naming the document and the
        field); `crossrank.QueryError` for an empty query; `crossrank.ScorerError` when the
        scorer misbehaves.
        """
        return self.rerank_documents(documents, query)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """`compress_documents` without blocking the event loop; safe to call concurrently."""
        return await self.arerank_documents(documents, query)

    def as_retriever(self, base_retriever: RetrieverLike, **kwargs: Any) -> CrossRankRetriever:
        """A retriever that fetches with `base_retriever` and reranks with this compressor.

        `base_retriever` is any retriever (or runnable) from a query to `Document`s; `kwargs`
        go to `CrossRankRetriever` (`top_n` or `top_k`, `tags`, `metadata`, ...).
        """
        from langchain_crossrank.retrievers import CrossRankRetriever

        return CrossRankRetriever(base_retriever=base_retriever, reranker=self, **kwargs)


__all__ = ["OUTPUT_KEYS", "CrossRankReranker"]
