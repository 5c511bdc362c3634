"""The built-in scorer: a Hugging Face cross-encoder, loaded through sentence-transformers.

Ownership: `load_cross_encoder` owns loading and the process-wide model cache (one model per
`ModelKey`, loaded once even when many threads ask at the same time); `_construct` turns every
way loading fails (no weights, pickle-only weights, a tokenizer that does not match the
weights, custom code not trusted, an unreachable hub) into a `ModelLoadError` at load time.
`CrossEncoderScorer` owns the scoring path:

1. the score cache (optional, `scorers/cache.py`) answers the pairs it has seen;
2. the rest are tokenized once with the model's tokenizer (`truncation="only_second"`: the
   document is cut, never the query, unless the query alone is over the limit);
3. the micro-batcher (`scorers/microbatch.py`) may merge them with other concurrent calls;
4. `score_encoded` sorts by token length, cuts batches by a padded-token budget, runs the
   forward pass (torch under `inference_mode`, or ONNX Runtime), halves a batch that runs out
   of memory, and returns raw outputs in input order;
5. the activation is applied as `CrossEncoder.predict` applies it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.errors import ModelLoadError, ScorerError
from crossrank.scorers.base import Pair, check_scores
from crossrank.scorers.cache import CacheInfo, ScoreCache, text_key
from crossrank.scorers.microbatch import MicroBatcher

logger = logging.getLogger("crossrank")


def resolve_device(device: str) -> str:
    """'auto' becomes cuda when available, then mps, then cpu."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' is float16 on CUDA (what rerankers are served in) and float32 elsewhere."""
    if dtype != "auto":
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


@dataclass(frozen=True)
class ModelKey:
    """What makes two loaded models interchangeable."""

    name: str
    device: str
    dtype: str
    max_length: int | None
    trust_remote_code: bool
    allow_pickle_weights: bool = False


_models: dict[ModelKey, Any] = {}
_load_locks: dict[ModelKey, threading.Lock] = {}
_registry_lock = threading.Lock()
load_count = 0  # how many models this process has loaded; tests use it to prove sharing


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _is_hub_id(name: str) -> bool:
    """'org/name' or 'name': what the hub accepts; anything else can only be a folder."""
    return bool(_HUB_ID.match(name)) and ".." not in name


def _hub_unreachable(name: str) -> str | None:
    """Why the Hugging Face hub cannot be used now, or None when it can be tried.

    Without this check an offline machine spends about a minute in the hub client's retries
    before failing; one short probe turns that into an immediate, clear error.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    import httpx

    try:
        httpx.head(constants.ENDPOINT, timeout=5.0)
    except httpx.HTTPError as exc:
        return f"{constants.ENDPOINT} could not be reached ({type(exc).__name__}: {exc})"
    return None


def _load_error(name: str, reason: str) -> ModelLoadError:
    from huggingface_hub import constants

    local = Path(name).expanduser()
    return ModelLoadError(
        f"could not load cross-encoder {name!r}: {reason}.\n"
        f"Looked in: the local folder {str(local.resolve())!r} (not found), the Hugging Face "
        f"cache {constants.HF_HUB_CACHE!r}, and the hub.\n"
        f"To use a model offline, download it where the hub is reachable "
        f"(`hf download {name} --local-dir ./my-reranker`), copy the folder here and pass its "
        "path: Reranker(model='./my-reranker') or CROSSRANK_MODEL=./my-reranker."
    )


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _check_folder(folder: Path, key: ModelKey) -> None:
    """Refuse, before loading, a folder without weights or with pickle-only weights.

    Pickle weights (`pytorch_model.bin`) can run code when unpickled; safetensors cannot.
    crossrank loads safetensors only unless the caller opts in with `allow_pickle_weights`.
    """
    where = str(folder.resolve())
    # the folder and one level below (sentence-transformers modules): never a deep walk
    files = [p for p in [*folder.glob("*"), *folder.glob("*/*")] if p.is_file()]
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if p.suffix in _PICKLE_SUFFIXES]
    if not safetensors and not pickles:
        raise ModelLoadError(
            f"could not load cross-encoder from folder {where!r}: it holds no model weights "
            "(no model.safetensors). The folder must hold a Hugging Face sequence-classification "
            "model (config.json, weights such as model.safetensors) and its tokenizer: point "
            "`model` at such a folder (e.g. the result of `hf download <model> --local-dir "
            "<folder>`), or copy the weights into it."
        )
    if not safetensors and not key.allow_pickle_weights:
        names = ", ".join(sorted(p.name for p in pickles)[:3])
        raise ModelLoadError(
            f"refusing to load cross-encoder from folder {where!r}: its weights ({names}) are "
            "pickle files, which can run arbitrary code when loaded, and it has no "
            "model.safetensors. Convert them to safetensors where you trust the source "
            "(e.g. load with transformers and `save_pretrained(folder)`), or pass "
            "allow_pickle_weights=True if you trust this folder."
        )


def _check_loaded(model: Any, key: ModelKey, where: str) -> None:
    """Catch at load time what would otherwise fail deep in torch at the first score."""
    hf_model = getattr(model, "model", None)
    hf_config = getattr(hf_model, "config", None)
    tokenizer = getattr(model, "tokenizer", None)
    get_embeddings = getattr(hf_model, "get_input_embeddings", None)
    if tokenizer is not None and callable(get_embeddings):
        try:
            rows = int(get_embeddings().num_embeddings)
            vocab = tokenizer.get_vocab()
            needed = max(vocab.values()) + 1 if vocab else 0
        except Exception:  # an unusual model or tokenizer: nothing to compare
            rows = needed = 0
        if needed > rows:
            raise ModelLoadError(
                f"cross-encoder {where} has a tokenizer that does not match its weights: the "
                f"tokenizer produces token ids up to {needed - 1}, but the model's embedding "
                f"table has only {rows} rows, so scoring would fail. The tokenizer files "
                "(tokenizer.json, vocab.txt, tokenizer_config.json) probably come from another "
                "model: copy them from the same model as the weights."
            )
    positions = getattr(hf_config, "max_position_embeddings", None)
    if key.max_length is not None and isinstance(positions, int) and key.max_length > positions:
        raise ModelLoadError(
            f"max_length={key.max_length} is longer than cross-encoder {where} can read "
            f"({positions} positions); set max_length to at most {positions} or leave it "
            "unset to use the model's own limit."
        )


def _remote_code_hint(exc: Exception) -> str:
    if "trust_remote_code" in str(exc):
        return (
            " This model needs its own Python code (trust_remote_code). crossrank does not "
            "run a model's code unless you pass trust_remote_code=True; do that only for a "
            "model whose code you have read or whose source you trust."
        )
    return ""


def _pickle_hint(exc: Exception, key: ModelKey) -> str:
    if key.allow_pickle_weights or "safetensors" not in str(exc):
        return ""
    return (
        " crossrank loads safetensors weights only; if this model has only pickle weights "
        "(pytorch_model.bin) and you trust it, pass allow_pickle_weights=True."
    )


def _cached_snapshot(name: str) -> Path | None:
    """The folder of `name` in the Hugging Face cache, when its config.json is there."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id for the cache: not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def _torch_dtype(dtype: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _construct(key: ModelKey) -> Any:
    """Build the `CrossEncoder`, turning every way loading fails into a `ModelLoadError`."""
    from sentence_transformers import CrossEncoder

    folder = Path(key.name).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and not _is_hub_id(key.name):
        raise ModelLoadError(
            f"could not load cross-encoder {key.name!r}: no such folder "
            f"({str(folder.resolve())!r}). Pass an existing local folder or a Hugging Face "
            "model id such as 'BAAI/bge-reranker-v2-m3'."
        )
    model_kwargs: dict[str, Any] = {"dtype": _torch_dtype(key.dtype)}
    if not key.allow_pickle_weights:
        model_kwargs["use_safetensors"] = True  # never fall back to pickle weights
    kwargs: dict[str, Any] = {
        "device": key.device,
        "trust_remote_code": key.trust_remote_code,
        "model_kwargs": model_kwargs,
    }
    if key.max_length is not None:
        kwargs["max_length"] = key.max_length
    if is_folder:
        where = repr(str(folder.resolve()))
        _check_folder(folder, key)
        try:
            model = CrossEncoder(str(folder), local_files_only=True, **kwargs)
        except Exception as exc:  # a folder that is not a usable model
            raise ModelLoadError(
                f"could not load cross-encoder from folder {where}: "
                f"{type(exc).__name__}: {exc}. The folder must hold a Hugging Face "
                "sequence-classification model (config.json, weights such as "
                f"model.safetensors) and its tokenizer.{_remote_code_hint(exc)}"
            ) from exc
        _check_loaded(model, key, f"folder {where}")
        return model
    try:  # a hub id already in the local cache loads without the network
        model = CrossEncoder(key.name, local_files_only=True, **kwargs)
    except Exception as cached_exc:
        reason = _hub_unreachable(key.name)
        if reason is not None:
            snapshot = _cached_snapshot(key.name)
            if snapshot is not None:  # it is in the cache but does not load: say why
                _check_folder(snapshot, key)
                raise ModelLoadError(
                    f"could not load cross-encoder {key.name!r} from the Hugging Face cache "
                    f"({str(snapshot)!r}): {type(cached_exc).__name__}: {cached_exc}."
                    f"{_remote_code_hint(cached_exc)}{_pickle_hint(cached_exc, key)}"
                ) from cached_exc
            raise _load_error(key.name, reason) from cached_exc
        try:
            model = CrossEncoder(key.name, **kwargs)
        except Exception as exc:
            hints = f"{_remote_code_hint(exc)}{_pickle_hint(exc, key)}"
            raise _load_error(key.name, f"{type(exc).__name__}: {exc}{hints}") from exc
    _check_loaded(model, key, repr(key.name))
    return model


def load_cross_encoder(key: ModelKey) -> Any:
    """The shared model for `key`, loading it on first use (once, even under many threads)."""
    global load_count
    with _registry_lock:
        model = _models.get(key)
        if model is not None:
            return model
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one loader per key; others wait here, then find the model cached
        model = _models.get(key)
        if model is None:
            logger.info("loading cross-encoder %s on %s (%s)", key.name, key.device, key.dtype)
            model = _construct(key)
            model.eval()
            with _registry_lock:
                _models[key] = model
                load_count += 1
    return model


def clear_model_cache() -> None:
    """Forget every loaded model (frees memory once no `Reranker` holds one)."""
    with _registry_lock:
        _models.clear()
        _load_locks.clear()

    with _batchers_lock:
        for batcher in _batchers.values():
            batcher.close()
        _batchers.clear()
        _runners.clear()


# -- tokenizing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One tokenized (query, document) pair, ready to be padded into a batch."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_pairs(tokenizer: Any, pairs: Sequence[Pair], max_length: int) -> list[Encoded]:
    """Tokenize every pair once; the document is truncated and the query is kept whole.

    `truncation="only_second"` cuts only the document. When the query alone (with the special
    tokens) is over `max_length`, that cannot work; such pairs fall back to `longest_first`,
    which cuts the query too, as `CrossEncoder.predict` would.
    """
    if not pairs:
        return []
    queries = [q for q, _ in pairs]
    docs = [d for _, d in pairs]
    kwargs: dict[str, Any] = {"max_length": max_length, "padding": False}
    kwargs["return_attention_mask"] = False
    try:
        enc = tokenizer(queries, docs, truncation="only_second", **kwargs)
        ids = list(enc["input_ids"])
        types = enc.get("token_type_ids")
        types = list(types) if types is not None else None
    except Exception:  # a query too long for only_second makes some tokenizers raise
        ids = [None] * len(pairs)  # type: ignore[list-item]
        types = None
    too_long = [i for i, row in enumerate(ids) if row is None or len(row) > max_length]
    if too_long:
        redo = tokenizer(
            [queries[i] for i in too_long],
            [docs[i] for i in too_long],
            truncation="longest_first",
            **kwargs,
        )
        redo_types = redo.get("token_type_ids")
        if types is None and redo_types is not None:
            types = [None] * len(pairs)
        for j, i in enumerate(too_long):
            ids[i] = redo["input_ids"][j]
            if types is not None and redo_types is not None:
                types[i] = redo_types[j]
        if types is not None and any(t is None for t in types):  # only after a raising batch
            enc_all = tokenizer(queries, docs, truncation="longest_first", **kwargs)
            return [
                Encoded(tuple(a), tuple(b))
                for a, b in zip(enc_all["input_ids"], enc_all["token_type_ids"], strict=True)
            ]
    if types is None:
        return [Encoded(tuple(row), None) for row in ids]
    return [Encoded(tuple(a), tuple(b)) for a, b in zip(ids, types, strict=True)]


# -- batching -----------------------------------------------------------------------------------

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


def _empty_device_cache(device: str) -> None:
    try:
        import torch

        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif device == "mps":
            torch.mps.empty_cache()
    except Exception:  # pragma: no cover - best effort only
        pass


class TorchRunner:
    """Runs padded batches through the underlying Hugging Face model with torch.

    The model is loaded in the requested dtype (a converted model: on CPU, bfloat16 weights
    run about 2x faster than `torch.autocast` over float32 weights, which re-casts the weights
    every pass, for the same rank agreement). Logits are upcast to float32 before the
    activation, as `CrossEncoder.predict` does. Always under `torch.inference_mode`.
    """

    def __init__(self, model: Any, device: str, dtype: str) -> None:
        import torch

        self.cross_encoder = model
        self.hf_model = _hf_model(model)
        self.device = device
        self.dtype = dtype
        self.autocast_dtype: Any = None  # set to a dtype to run autocast instead (experiments)
        names = set(inspect.signature(type(self.hf_model).forward).parameters)
        self.input_names = [
            n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names
        ]
        self._torch = torch

    def __call__(self, features: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        torch = self._torch
        inputs = {
            name: torch.from_numpy(features[name]).to(self.device)
            for name in self.input_names
            if name in features
        }
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast("cpu", dtype=self.autocast_dtype):
                    logits = self.hf_model(**inputs).logits
            else:
                logits = self.hf_model(**inputs).logits
            return logits.float().cpu().numpy()


def _hf_model(model: Any) -> Any:
    """The transformers model inside a sentence-transformers CrossEncoder."""
    first = model[0] if hasattr(model, "__getitem__") else None
    for owner in (first, model):
        hf = getattr(owner, "auto_model", None) if owner is not None else None
        if hf is not None:
            return hf
    return model.model


# -- shared state per loaded model --------------------------------------------------------------

# One lock per loaded model: Hugging Face fast tokenizers are not safe to call from several
# threads at once ("Already borrowed"), and on CPU two forwards at once only fight for cores.
_forward_locks: dict[int, threading.Lock] = {}
_tokenizer_locks: dict[int, threading.Lock] = {}
_batchers: dict[Any, MicroBatcher] = {}
_runners: dict[Any, Any] = {}
_batchers_lock = threading.Lock()


def _forward_lock(model: Any) -> threading.Lock:
    with _registry_lock:
        return _forward_locks.setdefault(id(model), threading.Lock())


def _tokenizer_lock(model: Any) -> threading.Lock:
    with _registry_lock:
        return _tokenizer_locks.setdefault(id(model), threading.Lock())


_threads_set: int | None = None


def _set_num_threads(n: int | None) -> None:
    """torch's intra-op thread count is process-wide: set it only when asked, and once per n."""
    global _threads_set
    if n is None or n == _threads_set:
        return
    import torch

    torch.set_num_threads(n)
    _threads_set = n


class CrossEncoderScorer:
    """Scores pairs with a Hugging Face cross-encoder, loaded lazily and shared.

    Scores equal `sentence_transformers.CrossEncoder.predict` on the same pairs (float32,
    default settings) whatever the batch order; the faster modes (`dtype="bfloat16"`,
    `backend="onnx"`, `quantize="int8"`) trade a little fidelity for speed (see README).
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
        backend: str = "torch",
        quantize: str = "none",
        token_budget: int | None = None,
        num_threads: int | None = None,
        cache_size: int = 0,
        microbatch: bool = False,
        microbatch_wait_ms: float = 2.0,
    ) -> None:
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        if backend == "onnx":
            resolved_device, resolved_dtype = "cpu", "float32"
        self.key = ModelKey(
            name=model,
            device=resolved_device,
            dtype=resolved_dtype,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            allow_pickle_weights=allow_pickle_weights,
        )
        self.compute_dtype = resolved_dtype
        self.backend = backend
        self.quantize = quantize
        self.batch_size = batch_size
        self.token_budget = token_budget or default_token_budget(resolved_device)
        self.num_threads = num_threads
        self.activation = activation
        self.microbatch = microbatch
        self.microbatch_wait_s = microbatch_wait_ms / 1000.0
        self.name = f"cross-encoder {model!r}"
        # What changes a raw score: the cache namespace and the runner's identity.
        self.settings_key = (self.key, backend, quantize, resolved_dtype)
        self.cache = ScoreCache(cache_size) if cache_size > 0 else None
        self.forward_calls = 0  # batches run by this scorer's calls (not by other scorers')

    @property
    def model(self) -> Any:
        """The loaded `sentence_transformers.CrossEncoder` (tokenizer, max_seq_length...)."""
        return load_cross_encoder(self.key)

    def cache_info(self) -> CacheInfo | None:
        """Hits, misses and size of the score cache, or None when it is off."""
        return self.cache.info() if self.cache is not None else None

    @property
    def max_length(self) -> int:
        model = self.model
        limit = getattr(model, "max_seq_length", None)
        if limit:
            return int(limit)
        tokenizer_limit = getattr(model.tokenizer, "model_max_length", None) or 512
        return int(min(tokenizer_limit, 100_000))

    # -- the runner (torch or ONNX Runtime), shared per model and settings ----------------------

    @property
    def runner(self) -> Callable[[dict[str, Any]], Any]:
        key = self.settings_key
        runner = _runners.get(key)
        if runner is not None:
            return runner
        model = self.model
        with _forward_lock(model):  # one export / set-up at a time per model
            runner = _runners.get(key)
            if runner is None:
                _set_num_threads(self.num_threads)
                if self.backend == "onnx":
                    from crossrank.scorers.onnx_backend import OnnxRunner

                    runner = OnnxRunner(
                        model, self.key, quantize=self.quantize, num_threads=self.num_threads
                    )
                else:
                    runner = TorchRunner(model, self.key.device, self.compute_dtype)
                with _batchers_lock:
                    _runners[key] = runner
        return runner

    def _batcher(self) -> MicroBatcher:
        key = (self.settings_key, self.token_budget, self.batch_size, self.microbatch_wait_s)
        with _batchers_lock:
            batcher = _batchers.get(key)
            if batcher is None:
                batcher = MicroBatcher(
                    self.score_encoded, self.microbatch_wait_s, name=Path(self.key.name).name
                )
                _batchers[key] = batcher
        return batcher

    # -- scoring ---------------------------------------------------------------------------------

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        model = self.model
        with _tokenizer_lock(model):
            return encode_pairs(model.tokenizer, pairs, self.max_length)

    def score_encoded(
        self, rows: Sequence[Encoded], progress: Callable[[int], None] | None = None
    ) -> np.ndarray[Any, Any]:
        """Raw model outputs (n, num_labels) for tokenized pairs, in input order.

        Batches follow the token budget; a batch that runs out of memory is halved and retried,
        down to one pair, so the result is the same as an unconstrained run.
        """
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        model = self.model
        runner = self.runner
        tokenizer = model.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        left = getattr(tokenizer, "padding_side", "right") == "left"
        batches = plan_batches([len(r) for r in rows], self.token_budget, self.batch_size)
        out: np.ndarray[Any, Any] | None = None
        limit: int | None = None  # most pairs per forward pass once memory ran out
        with _forward_lock(model):
            pending = [b for b in batches]
            pending.reverse()  # a stack: pop() takes the longest batch first
            while pending:
                batch = pending.pop()
                if limit is not None and len(batch) > limit:
                    pending.extend(
                        reversed([batch[i : i + limit] for i in range(0, len(batch), limit)])
                    )
                    continue
                features = pad_batch([rows[i] for i in batch], pad_id, left)
                try:
                    self.forward_calls += 1
                    logits = np.asarray(runner(features), dtype=np.float32)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    _empty_device_cache(self.key.device)
                    if len(batch) == 1:
                        raise ScorerError(
                            f"{self.name} ran out of memory on a single pair of "
                            f"{len(rows[batch[0]])} tokens on {self.key.device}; lower "
                            "max_length or use a device with more memory"
                        ) from exc
                    half = (len(batch) + 1) // 2
                    limit = half
                    logger.warning(
                        "%s: out of memory on a batch of %d pairs; retrying in halves of %d",
                        self.name,
                        len(batch),
                        half,
                    )
                    pending.extend([batch[half:], batch[:half]])
                    continue
                if logits.ndim == 1:
                    logits = logits[:, None]
                if out is None:
                    out = np.zeros((len(rows), logits.shape[1]), dtype=np.float32)
                out[batch] = logits
                if progress is not None:
                    progress(len(batch))
        assert out is not None
        return out

    def _activation_fn(self, model: Any) -> Callable[[Any], Any] | None:
        import torch

        if self.activation == "sigmoid":
            return torch.nn.Sigmoid()
        if self.activation == "none":
            return torch.nn.Identity()
        return model.activation_fn

    def _finish(self, raw: np.ndarray[Any, Any], expected: int) -> list[float]:
        import torch

        activation_fn = self._activation_fn(self.model)
        scores = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        if activation_fn is not None:
            scores = activation_fn(scores)
        if scores.ndim > 1 and scores.shape[-1] == 1:
            scores = scores.squeeze(-1)
        return check_scores(scores.numpy(), expected, self.name)

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
            f"CrossEncoderScorer(model={k.name!r}, device={k.device!r}, "
            f"dtype={self.compute_dtype!r}, backend={self.backend!r}, quantize={self.quantize!r})"
        )
