"""Batches of tokenized pairs: the token-budget plan, padding, and halving on out-of-memory.

A family turns pairs into `Encoded` rows; this module groups them into forward passes and
runs those through a runtime (`run_batches`), whatever the family and the runtime are.
Sorting by length keeps pairs of similar length together, so little of a batch is padding;
a batch that runs out of memory is halved and retried, down to one pair, so the result is
the same as an unconstrained run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossrank.errors import ScorerError

logger = logging.getLogger("crossrank")


@dataclass(frozen=True)
class Encoded:
    """One tokenized (query, document) pair, ready to be padded into a batch."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None

    def __len__(self) -> int:
        return len(self.input_ids)


DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "mps": 8192, "cuda": 32768}


def default_token_budget(device: str) -> int:
    return DEFAULT_TOKEN_BUDGET.get(device.split(":")[0], 4096)


def plan_batches(lengths: Sequence[int], token_budget: int, max_pairs: int) -> list[list[int]]:
    """Indices grouped into batches, longest first, each within the padded-token budget.

    A batch's cost is (pairs in it) x (its longest pair), the tokens the forward pass really
    computes once padded. Sorting by length keeps pairs of similar length together, so
    little of that is padding. A single pair longer than the budget still gets its own batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        length = lengths[i]
        if current and (
            len(current) >= max_pairs or max(longest, length) * (len(current) + 1) > token_budget
        ):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def pad_batch(
    rows: Sequence[Encoded], pad_id: int, left: bool = False
) -> dict[str, np.ndarray[Any, Any]]:
    """input_ids / attention_mask (/ token_type_ids) as int64 arrays, padded to the longest."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    with_types = rows[0].token_type_ids is not None
    types = np.zeros((len(rows), width), dtype=np.int64) if with_types else None
    for r, row in enumerate(rows):
        n = len(row)
        cols = slice(width - n, width) if left else slice(0, n)
        ids[r, cols] = row.input_ids
        mask[r, cols] = 1
        if types is not None:
            types[r, cols] = row.token_type_ids
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA/MPS/CPU allocation failure (worth retrying with a smaller batch)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
        if isinstance(exc, oom_type):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in message or "can't allocate memory" in message
    )


def empty_device_cache(device: str) -> None:
    try:
        import torch

        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif device == "mps":
            torch.mps.empty_cache()
    except Exception:  # pragma: no cover - best effort only
        pass


Runner = Callable[[dict[str, np.ndarray[Any, Any]]], Any]


def run_batches(
    rows: Sequence[Encoded],
    runner: Runner,
    *,
    pad_id: int,
    left_padding: bool,
    token_budget: int,
    max_pairs: int,
    device: str,
    name: str,
    progress: Callable[[int], None] | None = None,
    on_forward: Callable[[], None] | None = None,
) -> np.ndarray[Any, Any]:
    """Raw outputs (n, k) of `runner` for `rows`, in input order.

    Batches follow the token budget, longest first; a batch that runs out of memory is
    halved and retried (and every later batch is cut to that size), down to one pair.
    """
    if not rows:
        return np.zeros((0, 1), dtype=np.float32)
    batches = plan_batches([len(r) for r in rows], token_budget, max_pairs)
    out: np.ndarray[Any, Any] | None = None
    limit: int | None = None  # most pairs per forward pass once memory ran out
    pending = list(reversed(batches))  # a stack: pop() takes the longest batch first
    while pending:
        batch = pending.pop()
        if limit is not None and len(batch) > limit:
            pending.extend(reversed([batch[i : i + limit] for i in range(0, len(batch), limit)]))
            continue
        features = pad_batch([rows[i] for i in batch], pad_id, left_padding)
        try:
            if on_forward is not None:
                on_forward()
            raw = np.asarray(runner(features), dtype=np.float32)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            empty_device_cache(device)
            if len(batch) == 1:
                raise ScorerError(
                    f"{name} ran out of memory on a single pair of {len(rows[batch[0]])} "
                    f"tokens on {device}; lower max_length or use a device with more memory"
                ) from exc
            half = (len(batch) + 1) // 2
            limit = half
            logger.warning(
                "%s: out of memory on a batch of %d pairs; retrying in halves of %d",
                name,
                len(batch),
                half,
            )
            pending.extend([batch[half:], batch[:half]])
            continue
        if raw.ndim == 1:
            raw = raw[:, None]
        if out is None:
            out = np.zeros((len(rows), raw.shape[1]), dtype=np.float32)
        out[batch] = raw
        if progress is not None:
            progress(len(batch))
    assert out is not None
    return out
