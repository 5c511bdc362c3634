"""`Reranker`: the rerank stage. Reads documents, scores them once, returns them reordered.

Data flow of one call:
    documents --read text/id/score (documents.py)--> unique texts
    unique texts --(query, text) pairs--> scorer --check_scores--> one float per unique text
    scores --fan out to duplicates, stable sort, cut at top_k--> ranked
    ranked --score_threshold, min_results, max_context_tokens (context.py)--> RankedList
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from crossrank.bounds import CharBudget, bounded_documents, check_query
from crossrank.config import RerankConfig, check_top_k, config_from_settings
from crossrank.context import ContextCounter, context_counter, select
from crossrank.context import report as report_selection
from crossrank.credentials import check_stage_key_env
from crossrank.documents import describe, document_id, document_text, original_score, text_problem
from crossrank.errors import ConfigError, DocumentError, QueryError
from crossrank.long_documents import Expansion, expand, token_counter
from crossrank.long_documents import report as report_truncation
from crossrank.models import ModelScorer
from crossrank.results import RankedDocument, RankedList
from crossrank.scorers import check_scores, make_scorer
from crossrank.scorers.base import scorer_name
from crossrank.stage import StageSpec, parse_stage, resolve_query, stage_config

logger = logging.getLogger("crossrank")

# Beyond this many candidates a cross-encoder stage costs seconds to minutes per query on CPU;
# it still works (up to `max_documents`, crossrank.bounds), but the caller is told once per call.
PRACTICAL_MAX_CANDIDATES = 1000

# The warning about unreadable documents names at most this many of them (and counts the rest);
# its log record carries all of them under this attribute: [(index, document_id), ...].
NAMED_UNREADABLE = 10
UNREADABLE_RECORD = "crossrank_unreadable"

# The score of a document ranked last for want of text (on_unreadable="last"): a plain float
# below every finite score, so any sort or threshold keeps it last.
UNSCORED = float("-inf")

_UNSET: Any = object()


@dataclass(frozen=True)
class _Prepared:
    """A call's inputs, read and checked, before scoring."""

    documents: list[Any]
    ids: list[Any]
    pairs: list[tuple[str, str]]  # what the scorer scores: one per unique text, or per window
    text_slot: list[int | None]  # document i is unique text text_slot[i]; None: unreadable
    original_scores: list[Any]  # read before scoring: a document that cannot be read fails early
    top_k: int | None
    expansion: Expansion  # unique texts -> pairs (windows when chunking) and back
    unreadable: dict[int, str]  # document index -> its problem (on_unreadable skip / last)
    texts: list[str]  # the unique texts (text_slot indexes them)
    context: ContextCounter | None  # counts max_context_tokens; None without a budget


class Reranker:
    """A rerank stage: ``Reranker(model=..., top_k=...).rerank(query, documents)``.

    Construction is cheap and loads nothing; the model (or endpoint client) is created on the
    first call and then shared. Settings are those of `RerankConfig`; pass them as keywords
    or pass a ready config. One `Reranker` is safe to use from many threads and coroutines.

    `api_key` is an endpoint scorer's key given directly (it is not a contract setting: the
    contract names only the variable, `scorer_api_key_env`); it is never printed.

    Copies share the scorer (settings are frozen, the scorer is thread-safe); a pickled
    reranker leaves its scorer behind and builds it again on first use, a model coming back
    from the process-wide cache.
    """

    _stage: StageSpec | None = None  # how `from_stage` read it, so `to_stage` writes it back

    def __init__(
        self,
        config: RerankConfig | Mapping[str, Any] | None = None,
        /,
        *,
        api_key: str | SecretStr | None = None,
        **settings: Any,
    ):
        if config is None:
            config = config_from_settings(settings)
        elif settings:
            raise TypeError("pass either a config or keyword settings, not both")
        elif not isinstance(config, RerankConfig):
            config = config_from_settings(config)
        self._config = config
        self._api_key = _check_api_key(api_key, config)
        self._scorer: Any = None
        self._scorer_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # A built scorer holds locks, clients and threads: it is rebuilt after unpickling.
        state = self.__dict__.copy()
        state["_scorer"] = None
        del state["_scorer_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scorer_lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> Reranker:
        return self  # immutable: frozen settings and a shared, thread-safe scorer

    @property
    def config(self) -> RerankConfig:
        return self._config

    @classmethod
    def from_json(cls, text: str | bytes) -> Reranker:
        """A reranker from the JSON form of `RerankConfig`.

        JSON is untrusted like a stage: `scorer_api_key_env` must match `CROSSRANK_*API_KEY`
        (`crossrank.credentials`); name any other variable from Python.
        """
        config = RerankConfig.model_validate_json(text)
        check_stage_key_env(config.scorer_api_key_env, "RerankConfig JSON")
        return cls(config)

    @classmethod
    def from_stage(cls, stage: Any) -> Reranker:
        """A reranker from a pipeline's stage config: a dict, JSON text or a JSON file's path.

        Both circulating forms are read (see `crossrank.stage`); model aliases resolve,
        `top_n` means `top_k`, `feature_uri` selects a scorer, and a `{{INPUT.field}}` query
        is filled from `rerank(inputs=...)`. Unknown parameters are a `ConfigError`.
        """
        config, spec = parse_stage(stage)
        reranker = cls(config)
        reranker._stage = spec
        return reranker

    def to_stage(self) -> dict[str, Any]:
        """This stage as a stage config dict (the form it was read in, if from `from_stage`)."""
        return stage_config(self._config, self._stage)

    @property
    def scorer(self) -> Any:
        """The scorer this stage uses (built on first access; a model loads on first score)."""
        if self._scorer is None:
            with self._scorer_lock:
                if self._scorer is None:
                    key = None if self._api_key is None else self._api_key.get_secret_value()
                    self._scorer = make_scorer(self._config, api_key=key)
        return self._scorer

    def __repr__(self) -> str:
        c = self._config
        what = f"scorer={scorer_name(c.scorer)!r}" if c.scorer is not None else f"model={c.model!r}"
        return f"Reranker({what}, top_k={c.top_k})"

    # -- the two halves of a call, shared by rerank and arerank ---------------------------------

    def _prepare(
        self, query: str | None, documents: Any, top_k: Any, inputs: Mapping[str, Any] | None
    ) -> _Prepared:
        config = self._config
        if documents is _UNSET:
            raise TypeError("rerank() needs the documents to rank: rerank(query, documents)")
        if query is None:  # only the config's query is a template; a caller's is used verbatim
            query = resolve_query(config.query, inputs)
        if query is None:
            raise QueryError("no query: pass one to rerank() or set `query` in the config")
        if not isinstance(query, str):
            raise QueryError(f"query must be a string, not {type(query).__name__}")
        problem = text_problem(query)
        if problem is not None:
            raise QueryError(f"query {problem}")
        check_query(query, config)
        if documents is None:
            raise TypeError(
                "documents is None: pass a list of documents to rerank (an empty list gives [])"
            )
        if isinstance(documents, str | bytes | Mapping):
            raise TypeError(
                f"documents must be a list of documents, not a single {type(documents).__name__}"
            )
        if not isinstance(documents, Iterable):
            kind = type(documents).__name__
            raise TypeError(f"documents must be a list of documents, not {kind}")
        docs = bounded_documents(documents, config)
        top_k = config.top_k if top_k is _UNSET else check_top_k(top_k)
        if len(docs) > PRACTICAL_MAX_CANDIDATES:
            logger.warning(
                "reranking %d candidates in one call: past the practical range of a "
                "cross-encoder stage (about %d); consider a smaller first-stage depth",
                len(docs),
                PRACTICAL_MAX_CANDIDATES,
            )
        ids: list[Any] = []
        slots: list[int | None] = []
        slot_of_text: dict[str, int] = {}
        texts: list[str] = []
        unreadable: dict[int, str] = {}
        previous: list[Any] = []
        field = config.original_score_field
        budget = CharBudget(config)
        for i, doc in enumerate(docs):
            doc_id = document_id(doc, i)
            ids.append(doc_id)
            try:
                text = document_text(doc, config.document_field, i, doc_id)
            except DocumentError as exc:
                if config.on_unreadable == "raise":
                    raise DocumentError(
                        f"{exc}; or set on_unreadable='skip' or 'last' to rank without it",
                        index=exc.index,
                        document_id=exc.document_id,
                        field=exc.field,
                    ) from exc.__cause__  # what the document's own code raised, if anything
                unreadable[i] = str(exc)
                slots.append(None)
                previous.append(_previous_or_none(doc, field, i, doc_id))
                continue
            budget.check(text, i, doc_id)  # before any tokenizing (crossrank.bounds)
            previous.append(original_score(doc, field, i, doc_id))
            slot = slot_of_text.get(text)
            if slot is None:  # identical texts are scored once
                slot = slot_of_text[text] = len(texts)
                texts.append(text)
            slots.append(slot)
        _report_unreadable(unreadable, ids, len(docs), config.on_unreadable)
        # Long documents: count truncation, or split into windows (crossrank.long_documents).
        counter = token_counter(config, self.scorer) if texts else None
        expansion = expand(query, texts, config, counter)
        report_truncation(
            [expansion.truncated[s] for s in slots if s is not None],
            config,
            counter.max_length if counter else None,
        )
        # Loaded now, before scoring: a tokenizer that cannot be found fails before any work.
        context = context_counter(config, self.scorer)
        return _Prepared(
            docs,
            ids,
            expansion.pairs,
            slots,
            previous,
            top_k,
            expansion,
            unreadable,
            texts,
            context,
        )

    def _finish(self, prepared: _Prepared, raw_scores: Any) -> RankedList[RankedDocument]:
        if prepared.pairs:
            checked = check_scores(raw_scores, len(prepared.pairs), scorer_name(self.scorer))
            unique, best_chunk = prepared.expansion.fold(checked)
        else:  # nothing readable: nothing was scored
            unique, best_chunk = [], []
        slots = prepared.text_slot
        scored = [i for i, slot in enumerate(slots) if slot is not None]
        # sorted() is stable: equal scores keep their input order.
        order = sorted(scored, key=lambda i: -unique[slots[i]])  # type: ignore[index]
        if self._config.on_unreadable == "last":
            order += [i for i, slot in enumerate(slots) if slot is None]

        def score(i: int) -> float:
            slot = slots[i]
            return UNSCORED if slot is None else unique[slot]

        def text(i: int) -> str | None:
            slot = slots[i]
            return None if slot is None else prepared.texts[slot]

        skipped = len(prepared.unreadable) if self._config.on_unreadable == "skip" else 0
        chosen = select(order, score, text, self._config, prepared.top_k, prepared.context, skipped)
        report_selection(chosen, self._config, len(slots))
        tokens = chosen.tokens
        results = RankedList[RankedDocument](
            dropped=chosen.dropped,
            context_tokens=None if tokens is None else sum(tokens.values()),
        )
        for position, i in enumerate(chosen.order):
            slot = slots[i]
            results.append(
                RankedDocument(
                    document=prepared.documents[i],
                    document_id=prepared.ids[i],
                    score=UNSCORED if slot is None else unique[slot],
                    original_score=prepared.original_scores[i],
                    rerank_position=position,
                    index=i,
                    truncated=None if slot is None else prepared.expansion.truncated[slot],
                    best_chunk=None if slot is None else best_chunk[slot],
                    unreadable=prepared.unreadable.get(i),
                    context_tokens=None if tokens is None else tokens[i],
                )
            )
        return results

    # -- public API -----------------------------------------------------------------------------

    def rerank(
        self,
        query: str | None = None,
        documents: Iterable[Any] = _UNSET,
        *,
        inputs: Mapping[str, Any] | None = None,
        top_k: int | None = _UNSET,
        progress: Callable[[int], None] | None = None,
    ) -> RankedList[RankedDocument]:
        """Score every document against `query` and return the best `top_k`, best first,
        then those the context settings keep (`score_threshold`, `min_results`,
        `max_context_tokens`; see `crossrank.context`).

        `query` None uses the config's `query`, filling a `{{INPUT.name}}` template from
        `inputs` (`rerank(inputs={"question": ...}, documents=docs)`). `top_k` overrides the
        config's for this call (None keeps all). `progress`, if given, is called with the
        number of pairs done after each model batch. The result is a list of
        `RankedDocument`s (a `RankedList`: `.dropped` counts what each setting left out).
        Raises `DocumentError`, `QueryError` or `ScorerError` on bad input or a bad scorer;
        never returns a partial or silently reordered result.
        """
        prepared = self._prepare(query, documents, top_k, inputs)
        if not prepared.pairs:
            return self._finish(prepared, [])
        scorer = self.scorer
        if progress is not None and isinstance(scorer, ModelScorer):
            raw = scorer.score(prepared.pairs, progress=progress)
        else:
            raw = scorer.score(prepared.pairs)
        return self._finish(prepared, raw)

    async def arerank(
        self,
        query: str | None = None,
        documents: Iterable[Any] = _UNSET,
        *,
        inputs: Mapping[str, Any] | None = None,
        top_k: int | None = _UNSET,
    ) -> RankedList[RankedDocument]:
        """`rerank` for async code: the event loop is never blocked.

        A scorer with an async `ascore` (the HTTP scorer, async callables) is awaited directly;
        any other scorer, including the model, runs in a worker thread. So does the
        preparation when it needs a tokenizer (loading the model, counting tokens).
        """
        config = self._config
        loads = config.tokenizer is not None or config.max_context_tokens is not None
        if config.scorer is not None and not loads:
            prepared = self._prepare(query, documents, top_k, inputs)
        else:
            prepared = await asyncio.to_thread(self._prepare, query, documents, top_k, inputs)
        if not prepared.pairs:
            return self._finish(prepared, [])
        scorer = self.scorer
        ascore = getattr(scorer, "ascore", None)
        if ascore is not None:
            raw = await ascore(prepared.pairs)
        else:
            raw = await asyncio.to_thread(scorer.score, prepared.pairs)
        if config.max_context_tokens is not None:  # counting tokens is tokenizer work
            return await asyncio.to_thread(self._finish, prepared, raw)
        return self._finish(prepared, raw)


def _check_api_key(api_key: str | SecretStr | None, config: RerankConfig) -> SecretStr | None:
    """The key as a `SecretStr` (masked in every repr), or a `ConfigError` when nothing would
    send it: only an endpoint scorer URL or a hosted model (cohere-rerank-v3) takes a key."""
    if api_key is None:
        return None
    from crossrank.scorers.hosted import hosted_model
    from crossrank.scorers.registry import parse_endpoint

    endpoint = isinstance(config.scorer, str) and parse_endpoint(config.scorer) is not None
    hosted = config.scorer is None and hosted_model(config.model) is not None
    if not (endpoint or hosted):
        raise ConfigError(
            "api_key is sent to an endpoint scorer or a hosted model, but this reranker has "
            f"none (scorer is "
            f"{scorer_name(config.scorer) if config.scorer is not None else 'unset'}, model "
            f"{config.model!r}); set scorer to the endpoint's http(s) URL, or leave api_key unset"
        )
    if config.scorer_api_key_env is not None:
        raise ConfigError(
            f"give the endpoint's key either as api_key or in the variable scorer_api_key_env "
            f"names ({config.scorer_api_key_env}), not both"
        )
    return api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)


def _previous_or_none(doc: Any, field: str, index: int, doc_id: Any) -> Any:
    """An unreadable document's previous score, or None when that cannot be read either."""
    try:
        return original_score(doc, field, index, doc_id)
    except DocumentError:
        return None


def _report_unreadable(unreadable: dict[int, str], ids: list[Any], total: int, policy: str) -> None:
    """One warning per call naming the documents that had no readable text (never silent)."""
    if not unreadable:
        return
    named = [describe(i, ids[i]) for i in list(unreadable)[:NAMED_UNREADABLE]]
    more = len(unreadable) - len(named)
    what = (
        "left out of the results (on_unreadable='skip')"
        if policy == "skip"
        else "ranked last, unscored, with score -inf (on_unreadable='last')"
    )
    logger.warning(
        "%d of %d documents have no readable text and were %s: %s%s. First problem: %s",
        len(unreadable),
        total,
        what,
        ", ".join(named),
        f" and {more} more" if more else "",
        next(iter(unreadable.values())),
        extra={UNREADABLE_RECORD: [(i, ids[i]) for i in unreadable]},
    )
