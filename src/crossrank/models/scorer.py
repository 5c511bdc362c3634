"""`ModelScorer`: the built-in scorer over a local (or hub) reranker model.

Ownership: `loading.py` finds, checks and loads the model once per process; the model's
family (`families/`) turns pairs into token ids and raw outputs into scores; a runtime
(`runtimes/`) executes the family's scoring module; `batching.py` plans and runs the forward
passes. This module composes them and owns what is shared per loaded model:

1. the score cache (optional, `cache.py`) answers the pairs it has seen;
2. the rest are encoded once by the family (only the document is ever cut);
3. the micro-batcher (`microbatch.py`) may merge them with other concurrent calls;
4. `score_encoded` runs the token-budget batches through the runner, halving on OOM;
5. the family applies the activation.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.models import loading
from crossrank.models.batching import Encoded, default_token_budget, run_batches
from crossrank.models.cache import CacheInfo, ScoreCache, text_key
from crossrank.models.families import (
    Family,
    check_instruction,
    check_supported,
    resolve_family,
)
from crossrank.models.loading import LoadedModel, ModelKey, resolve_device, resolve_dtype
from crossrank.models.microbatch import MicroBatcher
from crossrank.models.quantized import is_quantized_folder
from crossrank.models.runtimes import make_runner
from crossrank.scorers.base import Pair, check_scores

logger = logging.getLogger("crossrank")

# -- shared state per loaded model --------------------------------------------------------------

# One lock per loaded model: Hugging Face fast tokenizers are not safe to call from several
# threads at once ("Already borrowed"), and on CPU two forwards at once only fight for cores.
_forward_locks: dict[int, threading.Lock] = {}
_tokenizer_locks: dict[int, threading.Lock] = {}
_batchers: dict[Any, MicroBatcher] = {}
_runners: dict[Any, Any] = {}
_shared_lock = threading.Lock()


def _lock_for(table: dict[int, threading.Lock], loaded: LoadedModel) -> threading.Lock:
    with _shared_lock:
        return table.setdefault(id(loaded), threading.Lock())


_threads_set: int | None = None


def _set_num_threads(n: int | None) -> None:
    """torch's intra-op thread count is process-wide: set it only when asked, and once per n."""
    global _threads_set
    if n is None or n == _threads_set:
        return
    import torch

    torch.set_num_threads(n)
    _threads_set = n


def clear_model_cache() -> None:
    """Forget every loaded model and runner, and stop the micro-batch workers."""
    loading.forget_models()
    with _shared_lock:
        for batcher in _batchers.values():
            batcher.close()
        _batchers.clear()
        _runners.clear()
        _forward_locks.clear()
        _tokenizer_locks.clear()
    openvino_runtime = sys.modules.get("crossrank.models.runtimes.openvino")
    if openvino_runtime is not None:  # its compiled models, only if it was ever used
        openvino_runtime.forget_compiled()


class ModelScorer:
    """Scores pairs with a reranker model, loaded lazily and shared process-wide.

    Scores equal `sentence_transformers.CrossEncoder.predict` on the same pairs (float32,
    default settings) whatever the batch order, on the default `backend="auto"` (OpenVINO on
    CPU once it passes its self-check, else torch); the faster modes (`dtype="bfloat16"`, a
    `crossrank quantize` int8 folder) trade a little fidelity for speed (see README).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        activation: str = "default",
        trust_remote_code: bool = False,
        allow_pickle_weights: bool = False,
        model_family: str = "auto",
        instruction: str | None = None,
        backend: str = "auto",
        quantize: str = "none",
        token_budget: int | None = None,
        num_threads: int | None = None,
        cache_size: int = 0,
        microbatch: bool = False,
        microbatch_wait_ms: float = 2.0,
    ) -> None:
        if backend in ("onnx", "openvino") and device == "auto":
            device = "cpu"  # CPU runtimes, even on a machine with a GPU
        if backend == "auto" and device == "auto" and is_quantized_folder(model):
            device = "cpu"  # a `crossrank quantize` folder is an int8 OpenVINO (CPU) model
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        if backend == "onnx":
            resolved_device, resolved_dtype = "cpu", "float32"
        # OpenVINO converts the float32 torch model and sets its precision when compiling.
        converts = backend == "openvino" or (
            backend == "auto"
            and resolved_device == "cpu"
            and resolved_dtype in ("float32", "bfloat16")
        )
        self.key = ModelKey(
            name=model,
            device=resolved_device,
            dtype="float32" if converts else resolved_dtype,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            allow_pickle_weights=allow_pickle_weights,
        )
        self.compute_dtype = resolved_dtype
        self.model_family = model_family
        self.instruction = instruction
        self.backend = backend
        self.quantize = quantize
        self.batch_size = batch_size
        self.token_budget = token_budget or default_token_budget(resolved_device)
        self.num_threads = num_threads
        self.activation = activation
        self.microbatch = microbatch
        self.microbatch_wait_s = microbatch_wait_ms / 1000.0
        self.name = f"reranker {model!r}"
        # What changes a raw score: the cache namespace and the runner's identity.
        self.settings_key = (self.key, model_family, instruction, backend, quantize, resolved_dtype)
        self.cache = ScoreCache(cache_size) if cache_size > 0 else None
        self.forward_calls = 0  # batches run by this scorer's calls (not by other scorers')

    @property
    def model(self) -> LoadedModel:
        """The loaded model (its tokenizer, transformers model and token limit)."""
        check_supported(self.key.name)
        return loading.load_model(self.key)

    @property
    def family(self) -> Family:
        """The model's family: the `model_family` setting, or detected from the model."""
        family = resolve_family(self.model_family, self.model, self.key.name)
        check_instruction(family, self.instruction)
        return family

    def cache_info(self) -> CacheInfo | None:
        """Hits, misses and size of the score cache, or None when it is off."""
        return self.cache.info() if self.cache is not None else None

    @property
    def max_length(self) -> int:
        """Tokens per pair, prompt included (the setting, else the model's and its card's)."""
        return self.family.max_length(self.model)

    @property
    def runner(self) -> Callable[[dict[str, Any]], Any]:
        """The runtime for this model and settings, built once and shared."""
        key = self.settings_key
        runner = _runners.get(key)
        if runner is not None:
            return runner
        loaded = self.model
        # One export / set-up at a time per model; the tokenizer lock too, because building
        # a scoring module reads the tokenizer (answer token ids, input names) and a fast
        # tokenizer must not run on two threads at once.
        with _lock_for(_forward_locks, loaded), _lock_for(_tokenizer_locks, loaded):
            runner = _runners.get(key)
            if runner is None:
                _set_num_threads(self.num_threads)
                runner = make_runner(
                    self.backend,
                    self.family,
                    loaded,
                    self.key,
                    dtype=self.compute_dtype,
                    quantize=self.quantize,
                    num_threads=self.num_threads,
                    # the tokenizer lock is held here already
                    encode=lambda pairs: self.family.encode(loaded, pairs, self.instruction),
                )
                with _shared_lock:
                    _runners[key] = runner
        return runner

    def _batcher(self) -> MicroBatcher:
        key = (self.settings_key, self.token_budget, self.batch_size, self.microbatch_wait_s)
        with _shared_lock:
            batcher = _batchers.get(key)
            if batcher is None:
                batcher = MicroBatcher(
                    self.score_encoded, self.microbatch_wait_s, name=Path(self.key.name).name
                )
                _batchers[key] = batcher
        return batcher

    # -- scoring ---------------------------------------------------------------------------------

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        loaded = self.model
        family = self.family
        with _lock_for(_tokenizer_locks, loaded):
            return family.encode(loaded, pairs, self.instruction)

    def score_encoded(
        self, rows: Sequence[Encoded], progress: Callable[[int], None] | None = None
    ) -> np.ndarray[Any, Any]:
        """Raw outputs (n, k) for encoded pairs, in input order (see `batching.run_batches`)."""
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        loaded = self.model
        runner = self.runner
        tokenizer = loaded.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

        def counted() -> None:
            self.forward_calls += 1

        # A concurrent runner (OpenVINO: one infer request per call) needs no model-wide lock.
        lock = nullcontext() if getattr(runner, "concurrent", False) else None
        with lock or _lock_for(_forward_locks, loaded):
            return run_batches(
                rows,
                runner,
                pad_id=pad_id,
                left_padding=self.family.padding_side == "left",
                token_budget=self.token_budget,
                max_pairs=self.batch_size,
                device=self.key.device,
                name=self.name,
                progress=progress,
                on_forward=counted,
            )

    def _finish(self, raw: np.ndarray[Any, Any], expected: int) -> list[float]:
        scores = self.family.activate(self.model, raw, self.activation)
        return check_scores(scores, expected, self.name)

    def _lookup(self, pairs: Sequence[Pair]) -> tuple[list[Any], list[Any], list[int]]:
        """Cached raw outputs (None where missing), the keys, and the indices to compute."""
        if self.cache is None:
            return [None] * len(pairs), [], list(range(len(pairs)))
        keys = [text_key(self.settings_key, q, d) for q, d in pairs]
        cached = self.cache.get_many(keys)
        return cached, keys, [i for i, v in enumerate(cached) if v is None]

    def _merge(
        self, pairs: Sequence[Pair], cached: list[Any], keys: list[Any], todo: list[int], raw: Any
    ) -> list[float]:
        if todo:
            raw = np.asarray(raw, dtype=np.float32)
            if self.cache is not None:
                self.cache.put_many([keys[i] for i in todo], list(raw))
            for j, i in enumerate(todo):
                cached[i] = raw[j]
        return self._finish(np.stack(cached), len(pairs))

    def score(
        self, pairs: Sequence[Pair], progress: Callable[[int], None] | None = None
    ) -> list[float]:
        """One score per pair, in input order."""
        if not pairs:
            return []
        cached, keys, todo = self._lookup(pairs)
        raw = None
        if todo:
            rows = self.encode([pairs[i] for i in todo])
            if self.microbatch and progress is None:
                raw = self._batcher().submit(rows).result()
            else:
                raw = self.score_encoded(rows, progress=progress)
        elif progress is not None:
            progress(len(pairs))
        return self._merge(pairs, cached, keys, todo, raw)

    async def ascore(self, pairs: Sequence[Pair]) -> list[float]:
        """`score` for async code: the wait for the model does not hold a thread."""
        if not pairs:
            return []
        cached, keys, todo = self._lookup(pairs)
        raw = None
        if todo:
            rows = await asyncio.to_thread(self.encode, [pairs[i] for i in todo])
            if self.microbatch:
                raw = await asyncio.wrap_future(self._batcher().submit(rows))
            else:
                raw = await asyncio.to_thread(self.score_encoded, rows)
        return self._merge(pairs, cached, keys, todo, raw)

    def __repr__(self) -> str:
        k = self.key
        return (
            f"ModelScorer(model={k.name!r}, device={k.device!r}, dtype={self.compute_dtype!r}, "
            f"model_family={self.model_family!r}, backend={self.backend!r}, "
            f"quantize={self.quantize!r})"
        )


# The name it had before model families: the scorer is the same object.
CrossEncoderScorer = ModelScorer
