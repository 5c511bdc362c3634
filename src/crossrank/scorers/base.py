"""The scorer protocol and the checks every scorer's output goes through.

A scorer turns (query, text) pairs into one number per pair. Whatever it returns (a list, a
numpy array, a torch tensor), `check_scores` turns it into plain Python floats or raises a
`ScorerError`: a wrong count, a NaN, an infinity or a non-number must never reorder a
caller's documents silently.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from crossrank.errors import ScorerError

Pair = tuple[str, str]


@runtime_checkable
class Scorer(Protocol):
    """Anything with ``score(pairs) -> list[float]``.

    A scorer may also define ``async def ascore(pairs)``; the reranker's async path uses it
    when present and otherwise runs ``score`` in a worker thread.
    """

    def score(self, pairs: Sequence[Pair]) -> Sequence[float]: ...


def scorer_name(scorer: Any) -> str:
    name = getattr(scorer, "name", None)
    if isinstance(name, str):
        return name
    return getattr(scorer, "__qualname__", type(scorer).__name__)


def check_scores(raw: Any, expected: int, source: str) -> list[float]:
    """Plain finite floats, one per pair, or a `ScorerError` that names the problem."""
    if hasattr(raw, "tolist") and not isinstance(raw, list | tuple):
        raw = raw.tolist()  # numpy arrays and torch tensors
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ScorerError(
            f"{source} returned {type(raw).__name__}; expected a list of {expected} numbers"
        )
    if len(raw) != expected:
        raise ScorerError(
            f"{source} returned {len(raw)} scores for {expected} pairs; "
            "a scorer must return exactly one score per pair, in order"
        )
    scores: list[float] = []
    for i, value in enumerate(raw):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # an (n, 1) array of logits
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ScorerError(f"{source} returned a non-numeric score for pair {i}: {value!r:.200}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float (e.g. 10**400)
            number = math.inf if value > 0 else -math.inf
        if not math.isfinite(number):
            raise ScorerError(
                f"{source} returned {number} for pair {i}; scores must be finite numbers"
            )
        scores.append(number)
    return scores


class CallableScorer:
    """Wraps a plain function ``fn(pairs) -> scores`` (sync or async) as a scorer."""

    def __init__(self, fn: Callable[[list[Pair]], Any]) -> None:
        self.fn = fn
        self.name = f"scorer {scorer_name(fn)}"
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )

    def score(self, pairs: Sequence[Pair]) -> Sequence[float]:
        if self._is_async:
            # Called from sync code (or a worker thread): no loop is running in this thread.
            return asyncio.run(self.fn(list(pairs)))
        return self.fn(list(pairs))

    async def ascore(self, pairs: Sequence[Pair]) -> Sequence[float]:
        if self._is_async:
            return await self.fn(list(pairs))
        return await asyncio.to_thread(self.fn, list(pairs))

    def __repr__(self) -> str:
        return f"CallableScorer({self.fn!r})"
