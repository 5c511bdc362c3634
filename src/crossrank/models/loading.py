"""Finding, checking and loading a local reranker model, once per process.

`load_model(key)` returns the shared `LoadedModel` for a `ModelKey`, loading it on first use
(once, even when many threads ask at the same time). `_construct` turns every way loading
fails (no weights, pickle-only weights, a tokenizer that does not match the weights, custom
code not trusted, an unreachable hub, weights too large for the device's free memory) into a
`ModelLoadError` at load time, before any pair is scored.

Every family loads through `sentence_transformers.CrossEncoder`: it reads sequence-
classification heads and causal LMs alike (and a model's saved activation), so the checks
below apply to all of them. What a family does with the loaded model lives in `families/`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.errors import ModelLoadError

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


@dataclass(frozen=True, eq=False)  # identity: it keys per-model locks and caches
class LoadedModel:
    """A loaded model and what every part of the scoring path reads from it."""

    cross_encoder: Any  # the sentence_transformers.CrossEncoder that loaded it
    hf_model: Any  # the transformers model inside (sequence classification or causal LM)
    tokenizer: Any
    max_length: int  # tokens per pair the model reads (max_length setting, or its own limit)
    max_length_set: bool = False  # the limit is the max_length setting, not the model's own

    @property
    def config(self) -> Any:
        return self.hf_model.config


def _declared_max_length(model: Any) -> int:
    limit = getattr(model, "max_seq_length", None)
    if limit:
        return int(limit)
    tokenizer_limit = getattr(model.tokenizer, "model_max_length", None) or 512
    # tokenizers without a declared limit report about 1e30
    return int(min(tokenizer_limit, 100_000))


def hf_model_of(model: Any) -> Any:
    """The transformers model inside a sentence-transformers CrossEncoder."""
    first = model[0] if hasattr(model, "__getitem__") else None
    for owner in (first, model):
        hf = getattr(owner, "auto_model", None) if owner is not None else None
        if hf is not None:
            return hf
    return model.model


_models: dict[ModelKey, LoadedModel] = {}
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


def _load_error(name: str, reason: str, *, hub_asked: bool) -> ModelLoadError:
    from huggingface_hub import constants

    local = Path(name).expanduser()
    looked = (
        f"Looked in: the local folder {str(local.resolve())!r} (not found), the Hugging Face "
        f"cache {constants.HF_HUB_CACHE!r}"
    )
    # Say what was really tried: offline or unreachable, the hub was never asked.
    looked += ", and the hub." if hub_asked else " (not there); the hub was not asked."
    return ModelLoadError(
        f"could not load cross-encoder {name!r}: {reason}.\n"
        f"{looked}\n"
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


# -- memory: weights that cannot fit are refused before loading starts ---------------------------

_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}  # safetensors dtype names
_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2}
_BYTES.update({"I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1})


def weight_bytes(folder: Path, dtype: str) -> int | None:
    """Bytes the weights in `folder` take once loaded in `dtype`, or None when unknown.

    From the safetensors headers (no tensor is read): floating-point tensors become `dtype`,
    as transformers casts them; others keep their stored size. Without safetensors, the
    pickle files' size on disk (their stored dtype cannot be known without unpickling).
    A file whose header cannot be read (a huge or non-JSON header, truncated data, offsets
    that do not match the shapes, a dtype crossrank cannot load) is a `ModelLoadError`
    naming it: a model folder is untrusted input.
    """
    files = sorted(folder.glob("*.safetensors"))  # one file, or every shard
    if files:
        itemsize = torch_dtype(dtype).itemsize
        return sum(_safetensors_bytes(path, itemsize) for path in files)
    pickles = [p for p in folder.glob("*") if p.is_file() and p.suffix in _PICKLE_SUFFIXES]
    return sum(p.stat().st_size for p in pickles) or None


def _safetensors_bytes(path: Path, itemsize: int) -> int:
    """One safetensors file's weight bytes, read from its header by the safetensors library
    (which checks the header length, the JSON, the shapes against the data offsets and the
    file size), or a `ModelLoadError` naming the file."""
    from safetensors import SafetensorError, safe_open

    def broken(reason: str) -> ModelLoadError:
        return ModelLoadError(
            f"could not load cross-encoder weights {str(path)!r}: {reason}. The file is not "
            "a valid safetensors file (damaged, truncated or not written by safetensors): "
            "download or convert the model again."
        )

    total = 0
    try:
        with safe_open(str(path), framework="np") as weights:
            for name in weights.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                tensor = weights.get_slice(name)
                stored = tensor.get_dtype()
                if stored not in _BYTES:
                    raise broken(
                        f"tensor {name!r} has dtype {stored!r}, which crossrank "
                        f"cannot load (known: {', '.join(sorted(_BYTES))})"
                    )
                count = 1
                for dim in tensor.get_shape():
                    count *= dim
                total += count * (itemsize if stored in _FLOAT_DTYPES else _BYTES[stored])
    except ModelLoadError:
        raise
    except (SafetensorError, OSError, ValueError, OverflowError, MemoryError) as exc:
        raise broken(f"{type(exc).__name__}: {exc}") from exc
    return total


def available_memory(device: str) -> tuple[int, str] | None:
    """(bytes free for weights on `device`, how that was measured), or None when unknown."""
    try:
        if device.startswith("cuda"):
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free), f"free on {device}"
        if device in ("cpu", "mps"):  # Apple GPUs share the system's memory
            import psutil

            return int(psutil.virtual_memory().available), "of available RAM"
    except Exception:  # no such device, no driver: loading will say so itself
        return None
    return None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def check_memory(key: ModelKey, folder: Path) -> None:
    """A `ModelLoadError`, before loading starts, when the weights cannot fit on the device.

    Only the weights are counted, not the activations of a batch: a model refused here can
    certainly not run, and one let through may still need a smaller `batch_size`.
    """
    needed = weight_bytes(folder, key.dtype)
    measured = available_memory(key.device)
    if needed is None or measured is None or needed <= measured[0]:
        return
    available, how = measured
    advice = []
    if key.dtype == "float32":
        half = weight_bytes(folder, "bfloat16") or needed // 2
        # OpenVINO (backend auto/openvino) converts float32 weights whatever the dtype, so
        # only torch loads bf16 weights
        advice.append(f"load it in bfloat16 (backend='torch', dtype='bfloat16': {_size(half)})")
    advice.append("pick a smaller model")
    if key.device.startswith("cuda"):
        advice.append("free GPU memory or use a GPU with more of it")
    else:
        advice.append("run it on a GPU with enough memory (device='cuda')")
    raise ModelLoadError(
        f"cross-encoder {key.name!r} does not fit: its weights need {_size(needed)} in "
        f"{key.dtype} on {key.device}, and there is only {_size(available)} {how}. "
        f"Nothing was loaded. To run it: {'; '.join(advice)}."
    )


# -- custom model code: what trust_remote_code allows ----------------------------------------------

# Hub rerankers known to ship their own modelling code. Offline, a model that is not cached has
# no config.json to read, so this list is how its need for trust_remote_code is known at once.
REMOTE_CODE_MODELS = frozenset(
    {
        "jinaai/jina-reranker-v2-base-multilingual",
        "jinaai/jina-reranker-v1-turbo-en",
        "jinaai/jina-reranker-v1-tiny-en",
    }
)
# The auto_map entries that replace the model itself (a custom tokenizer alone is not refused).
_MODEL_CLASSES = ("AutoModelForSequenceClassification", "AutoModelForCausalLM", "AutoModel")

REMOTE_CODE_ALLOWS = (
    "With trust_remote_code=True, transformers imports that code and runs it in this process, "
    "with your user's permissions: it can read and write files, use the network and start "
    "programs, every time the model loads. crossrank never runs a model's code unless you pass "
    "trust_remote_code=True; do that only for a model whose code you have read or whose source "
    "you trust (and pin the revision you read)."
)


def remote_code_files(folder: Path) -> list[str]:
    """The Python files a model folder's config.json maps its model classes to (`auto_map`)."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no or broken config: loading reports it
        return []
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not isinstance(auto_map, dict) or not any(c in auto_map for c in _MODEL_CLASSES):
        return []
    files = []
    for ref in auto_map.values():
        for item in ref if isinstance(ref, list) else [ref]:
            if isinstance(item, str) and "." in item:  # "[repo--]module.Class"
                module = item.split("--")[-1].rsplit(".", 1)[0]
                files.append(module.replace(".", "/") + ".py")
    return sorted(set(files))


def check_remote_code(key: ModelKey, folder: Path | None) -> None:
    """A `ModelLoadError`, before loading, for a model that ships its own code, untrusted.

    Refused even when transformers has a built-in class of the same `model_type`: it would load
    the weights into that class, which is not the model its authors built (jina-reranker-v1's
    ALiBi attention in a plain BERT), and score silently wrong.
    """
    if key.trust_remote_code:
        return
    files = remote_code_files(folder) if folder is not None else []
    if not files and key.name not in REMOTE_CODE_MODELS:
        return
    what = f"its own Python code ({', '.join(files)})" if files else "its own Python code"
    raise ModelLoadError(
        f"cross-encoder {key.name!r} needs trust_remote_code=True: it ships {what}, which "
        f"builds the model in place of transformers' classes. {REMOTE_CODE_ALLOWS} "
        "Nothing was loaded."
    )


def _remote_code_hint(exc: Exception) -> str:
    if "trust_remote_code" in str(exc):
        return (
            f" This model needs its own Python code: pass trust_remote_code=True. "
            f"{REMOTE_CODE_ALLOWS}"
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


def _check_device(device: str) -> None:
    """Refuse a device this torch cannot use, before the loader blames the model for it."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        if torch.version.cuda is None:
            why = f"the installed torch {torch.__version__} is a CPU-only build"
        else:
            why = f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU"
        raise ModelLoadError(
            f"device={device!r}, but CUDA is not available: {why}. For a GPU, install a CUDA "
            "build of torch from PyTorch's index (e.g. `pip install torch --index-url "
            "https://download.pytorch.org/whl/cu128`; pick the CUDA version your driver "
            "supports on https://pytorch.org/get-started/locally/), or use device='auto' "
            "(cuda when available, else mps, else cpu) or device='cpu'."
        )
    if device.startswith("cuda:"):
        index, count = int(device.split(":", 1)[1]), torch.cuda.device_count()
        if index >= count:
            raise ModelLoadError(
                f"device={device!r}, but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1}); pick one of them or device='cuda'."
            )
    mps = getattr(torch.backends, "mps", None)
    if device == "mps" and not (mps is not None and mps.is_available()):
        raise ModelLoadError(
            "device='mps', but Apple's Metal backend (MPS) is not available to this torch "
            "(it needs an Apple-silicon Mac and a torch built with MPS); use device='auto' "
            "or device='cpu'."
        )


# Loading a model from disk: transformers draws a "Loading weights" bar on every load, which
# crossrank keeps quiet unless the crossrank logger is at INFO or below (the user asked to see
# what it does). transformers has one process-wide switch, so concurrent quiet loads share it:
# the first one turns the bars off, the last one restores what it found.
_quiet_lock = threading.Lock()
_quiet_loads = 0
_bars_were_on = False


@contextmanager
def _quiet_loading() -> Iterator[None]:
    global _quiet_loads, _bars_were_on
    if logger.isEnabledFor(logging.INFO):
        yield
        return
    from transformers.utils import logging as hf_logging

    with _quiet_lock:
        if _quiet_loads == 0:
            _bars_were_on = hf_logging.is_progress_bar_enabled()
            if _bars_were_on:
                hf_logging.disable_progress_bar()
        _quiet_loads += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_loads -= 1
            if _quiet_loads == 0 and _bars_were_on:
                hf_logging.enable_progress_bar()


def _construct(key: ModelKey) -> Any:
    """Build the `CrossEncoder`, turning every way loading fails into a `ModelLoadError`."""
    from sentence_transformers import CrossEncoder

    _check_device(key.device)
    folder = Path(key.name).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and not _is_hub_id(key.name):
        raise ModelLoadError(
            f"could not load cross-encoder {key.name!r}: no such folder "
            f"({str(folder.resolve())!r}). Pass an existing local folder or a Hugging Face "
            "model id such as 'BAAI/bge-reranker-v2-m3'."
        )
    model_kwargs: dict[str, Any] = {"dtype": torch_dtype(key.dtype)}
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
        check_remote_code(key, folder)
        check_memory(key, folder)
        try:
            with _quiet_loading():
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
    snapshot = _cached_snapshot(key.name)
    check_remote_code(key, snapshot)
    if snapshot is not None:  # a model still to download has no size here to check
        check_memory(key, snapshot)
    try:  # a hub id already in the local cache loads without the network
        with _quiet_loading():
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
            raise _load_error(key.name, reason, hub_asked=False) from cached_exc
        try:
            model = CrossEncoder(key.name, **kwargs)
        except Exception as exc:
            hints = f"{_remote_code_hint(exc)}{_pickle_hint(exc, key)}"
            raise _load_error(
                key.name, f"{type(exc).__name__}: {exc}{hints}", hub_asked=True
            ) from exc
    _check_loaded(model, key, repr(key.name))
    return model


def load_model(key: ModelKey) -> LoadedModel:
    """The shared model for `key`, loading it on first use (once, even under many threads)."""
    global load_count
    with _registry_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one loader per key; others wait here, then find the model cached
        loaded = _models.get(key)
        if loaded is None:
            logger.info("loading reranker %s on %s (%s)", key.name, key.device, key.dtype)
            model = _construct(key)
            model.eval()
            loaded = LoadedModel(
                cross_encoder=model,
                hf_model=hf_model_of(model),
                tokenizer=model.tokenizer,
                max_length=_declared_max_length(model),
                max_length_set=key.max_length is not None,
            )
            with _registry_lock:
                _models[key] = loaded
                load_count += 1
    return loaded


def forget_models() -> None:
    """Forget every loaded model (the scorer's `clear_model_cache` also stops its workers)."""
    with _registry_lock:
        _models.clear()
        _load_locks.clear()


def torch_dtype(dtype: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
