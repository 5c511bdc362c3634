"""Long documents: count truncation, or split documents into token windows and pool.

A cross-encoder reads at most `max_length` tokens of (query, document). Everything past that
is cut off before the model sees it, so an answer in the second half of a long passage scores
as if it were not there. This module makes that visible and, on request, avoids it:

- `long_documents="truncate"`: documents are scored as they are (the model truncates), but
  each one is measured: `RankedDocument.truncated` says whether its text was cut, and one
  warning per call (through `logging`) says how many were.
- `long_documents="chunk"`: a document that does not fit beside the query is split into
  windows of `max_length - query tokens - special tokens` tokens (for a causal-LM reranker,
  minus its whole prompt: template, instruction and query, `Family.prompt_tokens`),
  consecutive windows sharing `chunk_overlap` tokens. Every window becomes a (query, window)
  pair; the pairs of all documents go to the scorer together, in one `score` call, so they
  are batched together.
  The window scores are pooled into the document's score (`max`, `mean` or `first`), and
  `RankedDocument.best_chunk` is the index of the highest-scoring window. At most
  `max_chunks_per_document` windows are scored; text past them is truncated and counted.

The work happens at the pair level (documents -> windows -> pairs -> pooled scores), so it
works for any scorer. It needs a tokenizer: the loaded model's own for the built-in scorer,
or the one named by the `tokenizer` setting (custom scorers: callables, HTTP endpoints).
A window's text is the exact slice of the document between its first and last token
(through the fast tokenizer's offsets), so the scorer reads the caller's text, not a
detokenised approximation. The scorer re-tokenises that slice; where a slice starts inside a
word, a tokenizer may split its first word differently, by a token or so, which the default
overlap (a quarter of the window) absorbs.

With a custom scorer and no `tokenizer`, truncation cannot be measured: `truncated` is None
("not measured"), and chunking is refused by the config.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import ConfigError, QueryError

logger = logging.getLogger("crossrank")

Pair = tuple[str, str]

# The truncation warning's log record carries the count under this attribute, so a caller
# that reports truncation itself (crossrank eval) can filter the per-call warnings out.
TRUNCATION_RECORD = "crossrank_truncated"


class DropTruncationWarnings(logging.Filter):
    """A filter for the `crossrank` logger that drops the per-call truncation warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, TRUNCATION_RECORD)


# A tokenizer's `model_max_length` above this is the "no limit declared" sentinel (1e30).
_NO_DECLARED_LIMIT = 1_000_000


@dataclass
class TokenCounter:
    """A private tokenizer (never the one the model is running) and the pair token limit."""

    tokenizer: Any
    max_length: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The model family's count of a pair's tokens that are not the document (its prompt, the
    # query, special tokens): `Family.prompt_tokens(tokenizer, query)`. None: a plain pair.
    prompt_tokens: Callable[[Any, str], int] | None = None

    def special_tokens(self) -> int:
        return int(self.tokenizer.num_special_tokens_to_add(pair=True))

    def overhead(self, query: str) -> int:
        """Tokens of a pair with `query` besides the document's: what a window leaves out."""
        if self.prompt_tokens is not None:
            with self.lock:
                return int(self.prompt_tokens(self.tokenizer, query))
        query_tokens = len(self.encode([query], offsets=False)[0]["ids"])
        return query_tokens + self.special_tokens()

    def encode(self, texts: list[str], offsets: bool) -> list[dict[str, Any]]:
        """Token ids (and character offsets) of each text, without special tokens."""
        # Hugging Face fast tokenizers must not be called from two threads at once.
        with self.lock:
            enc = self.tokenizer(
                texts,
                add_special_tokens=False,
                truncation=False,
                return_offsets_mapping=offsets,
                return_attention_mask=False,
                return_token_type_ids=False,
                # special-token strings in a text count as the plain text every family
                # reads them as (so "[SEP]" in a document is its 5 text tokens here too)
                split_special_tokens=True,
                verbose=False,
            )
        ids = enc["input_ids"]
        if offsets:
            return [
                {"ids": i, "offsets": o} for i, o in zip(ids, enc["offset_mapping"], strict=True)
            ]
        return [{"ids": i} for i in ids]

    def encode_prefixes(
        self, texts: list[str], need: int, offsets: bool
    ) -> list[tuple[dict[str, Any], str]]:
        """Per text: the encoding of as much of it as `need` tokens take, and that text.

        A text longer than a guess of what `need` tokens take is cut to a prefix (see
        "Bounded tokenizing" below); its encoding then has at least `need + _MARGIN_TOKENS`
        tokens, of which the first `need` (ids and offsets) are those of the whole text. A
        shorter text is encoded whole and returned as it is.
        """
        results: list[tuple[dict[str, Any], str] | None] = [None] * len(texts)
        chars = max(need * _CHARS_PER_TOKEN, _MIN_PREFIX_CHARS)
        pending = list(range(len(texts)))
        while pending:
            jobs: list[tuple[int, str]] = []
            for i in pending:
                text = texts[i]
                cut = _cut_point(text, chars) if len(text) > chars * 3 // 2 else None
                jobs.append((i, text if cut is None else text[:cut]))
            encoded = self.encode([prefix for _, prefix in jobs], offsets)
            pending = []
            for (i, prefix), enc in zip(jobs, encoded, strict=True):
                if len(prefix) < len(texts[i]) and len(enc["ids"]) < need + _MARGIN_TOKENS:
                    pending.append(i)  # the guess was short (many characters per token)
                else:
                    results[i] = (enc, prefix)
            chars *= 2
        return results  # type: ignore[return-value]


# -- bounded tokenizing ------------------------------------------------------------------------
#
# A document is tokenized only as far as it can be scored: a 50 MB text tokenized whole takes
# gigabytes (the tokenizer keeps ids, offsets and token strings per token) and a tokenizer that
# runs out of memory aborts the process. A prefix of about `need * _CHARS_PER_TOKEN` characters
# is tokenized instead, doubled while it yields too few tokens.
#
# Why the prefix's first `need` ids are the whole text's: the prefix is cut where a word ends
# and a space follows. Tokenizers normalize text character by character (lowercasing,
# accents, Unicode normalization, which never composes across a space) and split it into
# pre-tokens at whitespace (WordPiece and BERT's pre-tokenizer, SentencePiece's Metaspace,
# byte-level BPE's regex, which attaches a space to the word after it), and tokenize each
# pre-token alone; so no token before the cut depends on text after it. `_MARGIN_TOKENS` more
# tokens than needed are read, so even a tokenizer that did look a little across the cut
# would change only tokens that are dropped. A text is never cut inside a "word" (a run
# without whitespace): a tokenizer may segment a whole run at once (SentencePiece's Unigram
# does), so a run is read to its end, and text without whitespace past the guess is
# tokenized whole (its size is bounded by `max_document_chars`).
# tests/test_input_bounds.py compares the ids with tokenizing the whole text, for several
# tokenizers and kinds of text.

_CHARS_PER_TOKEN = 8  # first guess; English averages about 4.5 characters per token
_MIN_PREFIX_CHARS = 2048
_MARGIN_TOKENS = 16
# A word's end: a character other than whitespace, then a plain space. Only a plain space: it
# splits pre-tokens in every tokenizer family, where a newline or tab does not in all of them
# (SentencePiece's Metaspace splits at spaces only).
_WORD_END = re.compile(r"\S(?= )")


def _cut_point(text: str, chars: int) -> int | None:
    """Where to cut `text` near `chars` characters: after the last word that ends in the second
    half of them, else after the first word that ends past them; None when no word ends
    there (the rest is one "word": the text is tokenized whole)."""
    last = None
    for last in _WORD_END.finditer(text, chars // 2, chars):  # noqa: B007 (the last match)
        pass
    if last is None:
        last = _WORD_END.search(text, chars)
    if last is None or last.end() >= len(text):
        return None
    return last.end()


# -- where the tokenizer comes from -------------------------------------------------------------

_lock = threading.Lock()
_named: dict[tuple[str, int | None], TokenCounter] = {}
_from_models: weakref.WeakKeyDictionary[Any, TokenCounter] = weakref.WeakKeyDictionary()


def _named_counter(name: str, max_length: int | None) -> TokenCounter:
    with _lock:
        counter = _named.get((name, max_length))
        if counter is not None:
            return counter
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise ConfigError(
            f"could not load tokenizer {name!r} (setting `tokenizer`): "
            f"{type(exc).__name__}: {exc}. Pass a local tokenizer folder or a Hugging Face name "
            "that is in the local cache."
        ) from exc
    limit = max_length
    if limit is None:
        declared = getattr(tokenizer, "model_max_length", None)
        if not isinstance(declared, int) or declared >= _NO_DECLARED_LIMIT:
            raise ConfigError(
                f"tokenizer {name!r} declares no token limit; set `max_length` to the pair "
                "token limit of the scorer's model"
            )
        limit = declared
    counter = TokenCounter(tokenizer, limit)
    with _lock:
        return _named.setdefault((name, max_length), counter)


def _model_counter(model: Any) -> TokenCounter:
    with _lock:
        counter = _from_models.get(model)
        if counter is not None:
            return counter
    # A copy: the model's own tokenizer is busy in forward passes on other threads.
    tokenizer = copy.deepcopy(model.tokenizer)
    # sentence-transformers >= 5 names the limit max_seq_length; older CrossEncoders max_length.
    limit = getattr(model, "max_seq_length", None)
    if limit is None:
        limit = getattr(model, "max_length", None) or getattr(tokenizer, "model_max_length", None)
    if not isinstance(limit, int) or limit >= _NO_DECLARED_LIMIT:
        raise ConfigError("the model declares no token limit; set `max_length`")
    counter = TokenCounter(tokenizer, limit)
    with _lock:
        return _from_models.setdefault(model, counter)


def token_counter(config: Any, scorer: Any) -> TokenCounter | None:
    """The tokenizer and token limit for a stage, or None when none can be known.

    `tokenizer` in the config wins (its limit: `max_length`, else the tokenizer's declared
    one); otherwise the built-in model scorer's loaded model supplies both (`max_length` in
    the config has already set the model's limit, and the model's family may cap it at its
    card's length). With the model scorer, the pair's non-document tokens are the family's
    count either way. A custom scorer without `tokenizer` has none.
    """
    from crossrank.models import ModelScorer

    model = scorer if isinstance(scorer, ModelScorer) else None
    if config.tokenizer is not None:
        counter = _named_counter(config.tokenizer, config.max_length)
    elif model is not None:
        counter = dataclasses.replace(
            _model_counter(model.model.cross_encoder), max_length=model.max_length
        )
    else:
        return None
    if model is None:
        return counter
    # The model's family says how long its prompt around the document is: a causal-LM
    # reranker's template, instruction and query all count against the window.
    count = functools.partial(model.family.prompt_tokens, instruction=model.instruction)
    return dataclasses.replace(counter, prompt_tokens=count)


# -- windows and pooling ------------------------------------------------------------------------


def resolve_overlap(overlap: int | None, window: int) -> int:
    """The configured overlap, or a quarter of the window; always smaller than the window."""
    if overlap is None:
        return window // 4
    if overlap >= window:
        raise ConfigError(
            f"chunk_overlap={overlap} must be smaller than the window, which is {window} "
            "tokens here (max_length minus the query's tokens and the special tokens)"
        )
    return overlap


def split_windows(
    n_tokens: int, window: int, overlap: int, max_chunks: int
) -> tuple[list[tuple[int, int]], bool]:
    """Token spans [start, end) covering `n_tokens`, and whether the cap cut the document.

    Spans are `window` tokens long (the last one ends at `n_tokens`), and consecutive spans
    share exactly `overlap` tokens. At most `max_chunks` spans; when more would be needed, the
    rest of the document is not covered and the flag is True.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 token, not {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window}), not {overlap}")
    if n_tokens <= window:
        return [(0, n_tokens)], False
    stride = window - overlap
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        spans.append((start, end))
        if end >= n_tokens:
            return spans, False
        if len(spans) == max_chunks:
            return spans, True
        start += stride


def pool(scores: Sequence[float], how: str) -> tuple[float, int]:
    """A document's score from its windows' scores, and the index of the best window."""
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # first of equal maxima
    if how == "max":
        return scores[best], best
    if how == "mean":
        return sum(scores) / len(scores), best
    if how == "first":
        return scores[0], best
    raise ValueError(f"unknown chunk_pooling {how!r}; use max, mean or first")


# -- a call's pairs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """The pairs to score for a call's unique texts, and how to fold their scores back."""

    pairs: list[Pair]
    windows: list[list[int]]  # unique text t is scored by pairs[windows[t][...]]
    truncated: list[bool | None]  # per unique text; None: not measured
    pooling: str | None  # None: one pair per text, no pooling

    def fold(self, scores: Sequence[float]) -> tuple[list[float], list[int | None]]:
        """Per unique text: its score, and its best window (None when not chunked)."""
        if self.pooling is None:
            return [scores[w[0]] for w in self.windows], [None] * len(self.windows)
        folded, best = [], []
        for slots in self.windows:
            value, index = pool([scores[s] for s in slots], self.pooling)
            folded.append(value)
            best.append(index)
        return folded, best


def expand(query: str, texts: list[str], config: Any, counter: TokenCounter | None) -> Expansion:
    """Pairs for `texts` under the config's long-document policy (see the module docstring)."""
    if counter is None:  # a custom scorer without a tokenizer: nothing can be measured
        return Expansion(
            [(query, t) for t in texts], [[i] for i in range(len(texts))], [None] * len(texts), None
        )
    chunk = config.long_documents == "chunk"
    prompt_tokens = counter.overhead(query)
    window = counter.max_length - prompt_tokens
    if not chunk:
        # The scorer keeps at most max_length of a document's tokens, so a prefix with that
        # many is all it needs; the pair holds the prefix, which the scorer cuts exactly as it
        # would cut the whole text (see "Bounded tokenizing").
        read = counter.encode_prefixes(texts, counter.max_length, offsets=False)
        truncated: list[bool | None] = [len(e["ids"]) > window for e, _ in read]
        return Expansion(
            [(query, prefix) for _, prefix in read],
            [[i] for i in range(len(texts))],
            truncated,
            None,
        )
    if window < 1:
        raise QueryError(
            f"the query (with the model's prompt and special tokens) is {prompt_tokens} tokens "
            "long, which leaves no room for a document "
            f"within max_length={counter.max_length} tokens; shorten the query or raise "
            "max_length to chunk documents"
        )
    overlap = resolve_overlap(config.chunk_overlap, window)
    # The windows' tokens, at most: only this much of a document is tokenized.
    covered = window + (config.max_chunks_per_document - 1) * (window - overlap)
    encoded = [e for e, _ in counter.encode_prefixes(texts, covered, offsets=True)]
    pairs: list[Pair] = []
    slot_of: dict[str, int] = {}
    windows: list[list[int]] = []
    truncated = []
    for text, enc in zip(texts, encoded, strict=True):
        spans, cut = split_windows(len(enc["ids"]), window, overlap, config.max_chunks_per_document)
        truncated.append(cut)
        offsets = enc["offsets"]
        slots = []
        for start, end in spans:
            if len(spans) == 1 and not cut:
                piece = text  # fits: scored as it is
            else:
                piece = text[offsets[start][0] : offsets[end - 1][1]]
            slot = slot_of.get(piece)
            if slot is None:
                slot = slot_of[piece] = len(pairs)
                pairs.append((query, piece))
            slots.append(slot)
        windows.append(slots)
    return Expansion(pairs, windows, truncated, config.chunk_pooling)


def report(truncated: Sequence[bool | None], config: Any, max_length: int | None) -> None:
    """One warning per call saying how many documents lost text (never one per document)."""
    count = sum(1 for t in truncated if t)
    if not count:
        return
    if config.long_documents == "chunk":
        logger.warning(
            "%d of %d documents needed more than max_chunks_per_document=%d windows; the text "
            "past their last window was not scored (raise max_chunks_per_document to score it)",
            count,
            len(truncated),
            config.max_chunks_per_document,
            extra={TRUNCATION_RECORD: count},
        )
    else:
        logger.warning(
            "%d of %d documents were longer than the model's %s-token limit (with the query) "
            "and were truncated: text past the limit was not scored. Set "
            "long_documents='chunk' to score all of it",
            count,
            len(truncated),
            max_length,
            extra={TRUNCATION_RECORD: count},
        )
