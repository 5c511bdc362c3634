"""Context selection: which of a call's ranked documents reach an LLM's context.

`top_k` keeps the best k documents even when the third is already irrelevant, and says
nothing of how many tokens they take. After `top_k`, in this order:

1. `score_threshold`: keep documents whose score is at least the threshold (inclusive, so
   ties at the threshold are kept). Ranked best first, so this keeps a prefix of the list.
2. `min_results`: a floor under the threshold: the best N scored documents stay even when
   they score below it (never more than `top_k` kept; unreadable documents are not scored,
   so never floor-kept).
3. `max_context_tokens`: documents are kept best first while the sum of their texts' tokens
   fits; the first that does not fit ends the selection (nothing is cut, and no smaller
   document further down is taken in its place, so the result is still the best prefix).
   The budget is the LLM's limit, so it holds even against `min_results` (a warning says so).
   Tokens are counted with `context_tokenizer` (a tiktoken encoding, or a Hugging Face
   tokenizer), by default the reranker's own; each kept document records its count.

What each setting dropped is counted on the call's result (`RankedList.dropped`) and in one
log line per call (INFO, on the `crossrank` logger) when a context setting is set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import ConfigError

logger = logging.getLogger("crossrank")

# The log record of a call's selection carries the dropped counts under this attribute.
SELECTION_RECORD = "crossrank_dropped"

# The keys of `RankedList.dropped`: what removed a document the caller passed.
DROP_REASONS = ("on_unreadable", "top_k", "score_threshold", "max_context_tokens")


# -- the tokenizer that counts the budget --------------------------------------------------------


@dataclass
class ContextCounter:
    """Counts the tokens of texts as an LLM's context holds them (no special tokens added)."""

    name: str  # for messages: the encoding, tokenizer name or folder
    _count: Callable[[list[str]], list[int]]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, texts: list[str]) -> list[int]:
        # Hugging Face fast tokenizers must not be called from two threads at once.
        with self._lock:
            return self._count(texts)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(name)


def tiktoken_encodings() -> list[str]:
    """The encoding names tiktoken knows here ([] when tiktoken is not installed)."""
    try:
        import tiktoken
    except ImportError:
        return []
    return list(tiktoken.list_encoding_names())


def check_tokenizer_name(name: str) -> str:
    """The config-time check of a `context_tokenizer` (nothing is loaded: that is at the first
    call, before scoring): a folder given as a path must exist."""
    if name in tiktoken_encodings():
        return name
    if _looks_like_path(name) and not os.path.isdir(os.path.expanduser(name)):
        raise ValueError(
            f"{name!r} is not a folder; give a tokenizer folder, a Hugging Face tokenizer name, "
            f"or a tiktoken encoding ({', '.join(tiktoken_encodings()) or 'needs tiktoken'})"
        )
    return name


_lock = threading.Lock()
_loaded: dict[str, ContextCounter] = {}


def load_counter(name: str, setting: str = "context_tokenizer") -> ContextCounter:
    """The counter for a tiktoken encoding or a Hugging Face tokenizer, loaded once per process;
    a `ConfigError` naming `setting` when it cannot be loaded."""
    with _lock:
        counter = _loaded.get(name)
    if counter is not None:
        return counter
    if name in tiktoken_encodings():
        counter = _tiktoken_counter(name, setting)
    else:
        counter = _hf_counter(name, setting)
    with _lock:
        return _loaded.setdefault(name, counter)


def _tiktoken_counter(name: str, setting: str) -> ContextCounter:
    import tiktoken

    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as exc:  # the BPE file is downloaded on first use
        raise ConfigError(
            f"could not load tiktoken encoding {name!r} (setting `{setting}`): "
            f"{type(exc).__name__}: {exc}. tiktoken downloads an encoding's file on first use; "
            "offline, point TIKTOKEN_CACHE_DIR at a folder holding it"
        ) from exc

    def count(texts: list[str]) -> list[int]:
        # ordinary: a document's "<|endoftext|>" is text to count, not a control token (and
        # never an error: documents are untrusted).
        return [len(ids) for ids in encoding.encode_ordinary_batch(texts)]

    return ContextCounter(name, count)


def _hf_counter(name: str, setting: str) -> ContextCounter:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(os.path.expanduser(name))
    except Exception as exc:
        known = ", ".join(tiktoken_encodings()) or "install tiktoken for OpenAI encodings"
        raise ConfigError(
            f"could not load tokenizer {name!r} (setting `{setting}`): {type(exc).__name__}: "
            f"{exc}. Give a local tokenizer folder, a Hugging Face name in the local cache, or "
            f"a tiktoken encoding ({known})"
        ) from exc
    return ContextCounter(name, lambda texts: _hf_count(tokenizer, texts))


def _hf_count(tokenizer: Any, texts: list[str]) -> list[int]:
    ids = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    return [len(i) for i in ids]


def context_counter(config: Any, scorer: Any) -> ContextCounter | None:
    """The counter for a stage's `max_context_tokens` (None when no budget is set).

    `context_tokenizer` when set; else the reranker's own tokenizer: `tokenizer` when set,
    else the loaded model's (a private copy, as for long documents). The config refuses a
    budget that has neither (a custom scorer or a hosted model without `context_tokenizer`).
    """
    if config.max_context_tokens is None:
        return None
    if config.context_tokenizer is not None:
        return load_counter(config.context_tokenizer)
    if config.tokenizer is not None:
        return load_counter(config.tokenizer, "tokenizer")
    from crossrank.long_documents import _model_counter
    from crossrank.models import ModelScorer

    if not isinstance(scorer, ModelScorer):  # the config's rule; a scorer set some other way
        raise ConfigError(
            "max_context_tokens needs context_tokenizer with this scorer: it has no tokenizer "
            "of its own to count the budget with"
        )
    own = _model_counter(scorer.model.cross_encoder)
    return ContextCounter(
        "the reranker's tokenizer",
        lambda texts: [len(e["ids"]) for e in own.encode(texts, offsets=False)],
    )


# -- selecting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The kept documents (input indexes, best first), their token counts, and what each
    setting dropped."""

    order: list[int]
    tokens: dict[int, int] | None  # document index -> tokens of its text; None: no budget
    dropped: dict[str, int]


def select(
    ranked: Sequence[int],
    score: Callable[[int], float],
    text: Callable[[int], str | None],
    config: Any,
    top_k: int | None,
    counter: ContextCounter | None,
    skipped: int,
) -> Selection:
    """`ranked` (input indexes, best first) cut by top_k, then the context settings.

    `text(i)` is document i's text, None for an unreadable one (which has no score either);
    `skipped`: documents `on_unreadable="skip"` left out before ranking.
    """
    dropped = dict.fromkeys(DROP_REASONS, 0)
    dropped["on_unreadable"] = skipped
    order = list(ranked if top_k is None else ranked[:top_k])
    dropped["top_k"] = len(ranked) - len(order)
    floor = min(config.min_results, sum(1 for i in order if text(i) is not None))
    threshold = config.score_threshold
    if threshold is not None:
        # Best first: the documents at or above the threshold are a prefix of the list.
        above = next((n for n, i in enumerate(order) if not score(i) >= threshold), len(order))
        keep = max(above, floor)
        dropped["score_threshold"] = len(order) - keep
        order = order[:keep]
    tokens: dict[int, int] | None = None
    budget = config.max_context_tokens
    if budget is not None:
        assert counter is not None  # context_counter gives one whenever a budget is set
        readable = [i for i in order if text(i) is not None]
        unique = list(dict.fromkeys(text(i) for i in readable))
        counts = dict(zip(unique, counter.count(unique), strict=True))  # type: ignore[arg-type]
        tokens = {}
        used = 0
        kept: list[int] = []
        for i in order:
            t = text(i)
            if t is None or used + counts[t] > budget:
                break  # unreadable (nothing to count) or too long: the selection ends here
            used += counts[t]
            tokens[i] = counts[t]
            kept.append(i)
        dropped["max_context_tokens"] = len(order) - len(kept)
        if len(kept) < floor:
            logger.warning(
                "max_context_tokens=%d holds %d document(s), fewer than min_results=%d: the "
                "next document is %d tokens (counted with %s); the budget is a hard limit",
                budget,
                len(kept),
                config.min_results,
                counts[text(order[len(kept)])],  # type: ignore[index]
                counter.name,
            )
        order = kept
    return Selection(order, tokens, dropped)


def report(selection: Selection, config: Any, candidates: int) -> None:
    """One log line per call (INFO) saying what each setting dropped, when a context setting
    (score_threshold, max_context_tokens) is set; the counts are on the result too."""
    if config.score_threshold is None and config.max_context_tokens is None:
        return
    parts = [f"{name} {n}" for name, n in selection.dropped.items() if n]
    tokens = ""
    if selection.tokens is not None:
        tokens = f"; {sum(selection.tokens.values())} of {config.max_context_tokens} tokens"
    logger.info(
        "kept %d of %d documents (dropped: %s%s)",
        len(selection.order),
        candidates,
        ", ".join(parts) or "none",
        tokens,
        extra={SELECTION_RECORD: dict(selection.dropped)},
    )
