"""`CrossRankRerank`: crossrank's rerank stage as a LlamaIndex node postprocessor.

This module only maps LlamaIndex objects onto the engine's contract and back:

    NodeWithScore list --node.get_content(metadata_mode)--> {"id", "content"} documents
    documents --crossrank.Reranker.rerank / arerank--> RankedDocument list (best first)
    RankedDocument --copy of the node, contract keys in its metadata--> new NodeWithScore

The returned nodes are copies: the caller's `NodeWithScore` objects and their nodes are never
written to. Each copy's `score` is the rerank score (a plain float); the previous score and the
0-based `rerank_position` go into the copy's metadata under `original_score` /
`rerank_position` (and the previous score under `retrieval_score` too, the peers' key, with
`keep_retrieval_score=True`); these keys are excluded from the embed and LLM views of the node.

A node is scored on ``get_content(metadata_mode)``, but whether it *can* be scored is decided on
its own text (``get_content(MetadataMode.NONE)``): a node with no text, such as an `ImageNode`,
is unreadable even when its metadata would fill the EMBED view, and `on_unreadable` applies.

The engine settings are not repeated here: `CrossRankRerank` inherits them from
`crossrank.config.EngineSettings`, the definition `crossrank.RerankConfig` inherits too. So
the context settings are postprocessor fields beside `top_n`: `score_threshold` (inclusive,
after `top_n`), `min_results`, `max_context_tokens` with `context_tokenizer` (which counts the
scored text, `get_content(metadata_mode)`; each kept node's count is under
`context_tokens`, excluded like the other keys). The returned list (a `crossrank.RankedList`)
counts what each setting left out in `.dropped`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_serializer
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from crossrank import DocumentError, QueryError, RankedList, RerankConfig, Reranker
from crossrank.config import ENGINE_SETTINGS, EngineSettings
from crossrank.context import DROP_REASONS
from crossrank.documents import text_problem
from crossrank.scorers.base import scorer_name

dispatcher = get_dispatcher(__name__)

ORIGINAL_SCORE_KEY = "original_score"
RERANK_POSITION_KEY = "rerank_position"
RETRIEVAL_SCORE_KEY = "retrieval_score"  # the peers' key (sbert, FlagEmbedding, Cohere)
UNREADABLE_KEY = "unreadable"  # on_unreadable="last": why the node was not scored
CONTEXT_TOKENS_KEY = "context_tokens"  # max_context_tokens: the scored text's tokens
CONTRACT_METADATA_KEYS = (ORIGINAL_SCORE_KEY, RERANK_POSITION_KEY)

# The postprocessor fields that are engine settings: inherited from EngineSettings.
_ENGINE_FIELDS = ENGINE_SETTINGS

_NOT_JSON = (
    "this CrossRankRerank has a Python scorer object, which cannot be written to JSON; only an "
    "http(s) endpoint URL can (to_dict keeps the object itself)"
)


class CrossRankRerank(EngineSettings, BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder (crossrank's stage contract).

    ``CrossRankRerank(top_n=5)`` or ``CrossRankRerank(reranker=crossrank.Reranker(...))``.
    The engine settings are crossrank's own (inherited from `crossrank.config.EngineSettings`:
    the same types, defaults, validation and descriptions as `crossrank.RerankConfig`);
    `top_n` (alias `top_k`) is how many nodes to return, None keeps all, reordered. The text
    scored is ``node.get_content(metadata_mode)``, by default `MetadataMode.EMBED` as in the
    sbert, FlagEmbedding and Cohere postprocessors, so a switch keeps the scored text.
    Unknown keywords are refused, naming them.
    """

    top_n: int | None = Field(
        default=None,
        gt=0,
        description="How many nodes to return, best first; None keeps all, reordered.",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Which metadata goes into the scored text (node.get_content(mode)); EMBED, "
        "as the peer rerankers, prefixes the metadata the embedding model saw.",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Also write the previous score under metadata['retrieval_score'], the "
        "peers' key (it is always under 'original_score').",
    )

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _reranker: Reranker | None = PrivateAttr(default=None)
    _built_from: dict[str, Any] | None = PrivateAttr(default=None)

    def __init__(
        self,
        reranker: Reranker | None = None,
        *,
        top_k: int | None = None,
        **data: Any,
    ) -> None:
        if top_k is not None:
            if data.get("top_n") is not None and data["top_n"] != top_k:
                raise ValueError(
                    f"top_k ({top_k}) and top_n ({data['top_n']}) disagree; top_k is an alias "
                    "of top_n, give one of them"
                )
            data["top_n"] = top_k
        if reranker is not None:
            if not isinstance(reranker, Reranker):
                raise TypeError(
                    f"reranker must be a crossrank.Reranker, not {type(reranker).__name__}"
                )
            given = sorted(name for name in _ENGINE_FIELDS if name in data)
            if given:
                raise ValueError(
                    f"pass either a ready reranker or engine settings, not both (got reranker "
                    f"and {', '.join(given)}); set them on the Reranker instead"
                )
            config = reranker.config
            given_there = config.model_fields_set & set(_ENGINE_FIELDS)
            data.update({name: getattr(config, name) for name in given_there})
            if data.get("top_n") is None:
                data["top_n"] = config.top_k
            # Nodes reach the engine as {"id", "content"}: its field paths must read those.
            fields = {"document_field": "content", "original_score_field": "score"}
            if any(getattr(config, k) != v for k, v in fields.items()):
                reranker = Reranker(config.model_copy(update=fields), api_key=reranker._api_key)
        super().__init__(**data)
        if reranker is None:
            reranker = Reranker(self._engine_config())  # validates device, dtype, scorer, ...
        self._reranker = reranker
        self._built_from = self._engine_settings()

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    @field_serializer("scorer", when_used="json")
    def _serialise_scorer(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise TypeError(_NOT_JSON)

    def to_json(self, **kwargs: Any) -> str:
        if self.scorer is not None and not isinstance(self.scorer, str):
            raise TypeError(_NOT_JSON)
        return super().to_json(**kwargs)

    # -- the engine ----------------------------------------------------------------------------

    def _engine_settings(self) -> dict[str, Any]:
        # Only what was given: defaults are the contract's own, and the engine must see which
        # settings were set (a Cohere-compatible endpoint is sent `model` only when set).
        return {
            name: getattr(self, name) for name in _ENGINE_FIELDS if name in self.model_fields_set
        }

    def _engine_config(self) -> RerankConfig:
        return RerankConfig(**self._engine_settings())

    @property
    def reranker(self) -> Reranker:
        """The `crossrank.Reranker` doing the work (rebuilt if a setting was changed)."""
        settings = self._engine_settings()
        if self._reranker is None or settings != self._built_from:
            self._reranker = Reranker(self._engine_config())
            self._built_from = settings
        return self._reranker

    def _model_name(self) -> str:
        if self.scorer is None:
            return self.model
        return self.scorer if isinstance(self.scorer, str) else scorer_name(self.scorer)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> CrossRankRerank:
        """A copy with its own settings that shares the engine (thread-safe; it may hold a
        loaded model, which is not copied)."""
        clone = self.model_copy()
        if memo is not None:
            memo[id(self)] = clone
        return clone

    # -- mapping LlamaIndex objects onto the contract and back --------------------------------

    def _query(self, query_bundle: QueryBundle | None) -> str:
        if query_bundle is None:
            raise QueryError(
                "CrossRankRerank needs the query: call postprocess_nodes(nodes, "
                "query_bundle=QueryBundle(...)) or postprocess_nodes(nodes, query_str=...); "
                "a query engine passes it for you"
            )
        query = query_bundle.query_str
        if not isinstance(query, str) or not query.strip():
            raise QueryError("CrossRankRerank: the query bundle's query_str is empty")
        return query

    def _documents(self, nodes: Sequence[NodeWithScore]) -> list[dict[str, Any]]:
        """One engine document per node: its id and the text to score.

        A node without text of its own (an `ImageNode`, an empty node) fails here, naming it,
        with on_unreadable="raise"; otherwise its own (unreadable) text goes to the engine,
        which skips it or ranks it last by the same rule (`crossrank.documents.text_problem`).
        """
        documents = []
        for i, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                raise TypeError(
                    f"node {i} is a {type(item).__name__}; CrossRankRerank takes NodeWithScore "
                    "objects (wrap a node as NodeWithScore(node=node))"
                )
            node_id = item.node.node_id
            own = item.node.get_content(metadata_mode=MetadataMode.NONE)
            problem = (
                f"is {type(own).__name__}, not a string"
                if not isinstance(own, str)
                else text_problem(own)
            )
            if problem is None:
                text = item.node.get_content(metadata_mode=self.metadata_mode)
            elif self.on_unreadable == "raise":
                raise DocumentError(
                    f"node {i} (id {node_id!r}, {type(item.node).__name__}) has no text to "
                    f"score: its text {problem}, and metadata alone is not scored; drop such "
                    "nodes, or set on_unreadable='skip' or 'last' to rank without them",
                    index=i,
                    document_id=node_id,
                    field="text",
                )
            else:
                text = own  # unreadable: the engine skips it or ranks it last
            documents.append({"id": node_id, "content": text})
        return documents

    def _to_nodes(
        self,
        nodes: Sequence[NodeWithScore],
        ranked: RankedList[Any],
        out: RankedList[NodeWithScore],
    ) -> None:
        """New NodeWithScore objects over copies of the nodes, into `out` (a list, as
        postprocessors return, with the engine's drop counts); the inputs stay untouched."""
        out.dropped = dict(ranked.dropped)
        out.context_tokens = ranked.context_tokens
        for result in ranked:
            source = nodes[result.index]
            node = source.node.model_copy(deep=True)
            previous = _plain_score(source.score)
            written: dict[str, Any] = {
                ORIGINAL_SCORE_KEY: previous,
                RERANK_POSITION_KEY: result.rerank_position,
            }
            if self.keep_retrieval_score:
                written[RETRIEVAL_SCORE_KEY] = previous
            if result.unreadable is not None:
                written[UNREADABLE_KEY] = result.unreadable
            if result.context_tokens is not None:
                written[CONTEXT_TOKENS_KEY] = result.context_tokens
            node.metadata = {**node.metadata, **written}
            node.excluded_embed_metadata_keys = _with_keys(
                node.excluded_embed_metadata_keys, written
            )
            node.excluded_llm_metadata_keys = _with_keys(node.excluded_llm_metadata_keys, written)
            out.append(NodeWithScore(node=node, score=float(result.score)))

    def _start(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> None:
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=len(nodes) if self.top_n is None else self.top_n,
                model_name=self._model_name(),
            )
        )

    def _callback_payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self._model_name(),
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }

    # -- BaseNodePostprocessor ------------------------------------------------------------------

    def _begin(
        self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[NodeWithScore], list[dict[str, Any]]]:
        """Check the input, then dispatch the start event: (query, nodes, documents).

        Input is checked before the start event, so events always come in pairs unless the
        scorer itself fails (the dispatcher span then records the error).
        """
        query = self._query(query_bundle)
        nodes = list(nodes)
        documents = self._documents(nodes)
        self._start(nodes, query_bundle)
        return query, nodes, documents

    @contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query: str
    ) -> Iterator[RankedList[NodeWithScore]]:
        """The callback event around one rerank; the caller fills the yielded list, which is
        then reported in the callback's end payload and in the end event."""
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:
            new_nodes = RankedList[NodeWithScore](dropped=dict.fromkeys(DROP_REASONS, 0))
            yield new_nodes
            event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, nodes, documents = self._begin(nodes, query_bundle)
        with self._reranking(nodes, query) as new_nodes:
            if documents:
                ranked = self.reranker.rerank(query, documents, top_k=self.top_n)
                self._to_nodes(nodes, ranked, new_nodes)
        return new_nodes

    async def apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
        query_str: str | None = None,
    ) -> list[NodeWithScore]:
        """Rerank without blocking the event loop (the model runs in a worker thread)."""
        if query_str is not None and query_bundle is not None:
            raise ValueError("Cannot specify both query_str and query_bundle")
        if query_str is not None:
            query_bundle = QueryBundle(query_str)
        return await self._apostprocess_nodes(nodes, query_bundle)

    @dispatcher.span
    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, nodes, documents = self._begin(nodes, query_bundle)
        with self._reranking(nodes, query) as new_nodes:
            if documents:
                ranked = await self.reranker.arerank(query, documents, top_k=self.top_n)
                self._to_nodes(nodes, ranked, new_nodes)
        return new_nodes


def _with_keys(keys: list[str], written: dict[str, Any]) -> list[str]:
    """A new list: `keys` plus the keys this postprocessor wrote that it lacks."""
    return [*keys, *(k for k in written if k not in keys)]


def _plain_score(score: Any) -> Any:
    """The previous score as a plain float (a numpy float would break json.dumps), or None."""
    if isinstance(score, numbers.Real) and not isinstance(score, bool):
        return float(score)
    return score
