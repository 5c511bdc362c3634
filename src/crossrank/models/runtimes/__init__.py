"""Runtimes: what executes a family's scoring module on padded batches.

Each runtime is a callable `features (name -> int64 array) -> raw outputs (batch, k)`, built
once per loaded model and settings by `make_runner`. `torch` runs the module itself;
`onnx` and `openvino` run a converted graph of the same module, exported through one shared
path (`export.py`); `auto` (the default) picks OpenVINO on CPU when it passes a fidelity
self-check, else torch (`auto.py`). A runner with `concurrent = True` may be called from
several threads at once. A new runtime is one module here, plus a fidelity test against torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from crossrank.errors import ModelLoadError
from crossrank.models.quantized import INT8_REFUSAL, quantized_model

if TYPE_CHECKING:
    from crossrank.models.batching import Encoded
    from crossrank.models.families.base import Family
    from crossrank.models.loading import LoadedModel, ModelKey
    from crossrank.scorers.base import Pair

logger = logging.getLogger("crossrank")

BACKENDS = ("auto", "torch", "onnx", "openvino")


def make_runner(
    backend: str,
    family: Family,
    loaded: LoadedModel,
    key: ModelKey,
    *,
    dtype: str,
    quantize: str,
    num_threads: int | None,
    encode: Callable[[Sequence[Pair]], list[Encoded]],
) -> Any:
    """The runner for `backend` over `family`'s scoring module of `loaded`.

    `dtype` is the compute precision (the loaded model may be float32 for a converting
    runtime); `encode` tokenises pairs for the self-check of `auto`.
    """
    from crossrank.models.runtimes.torch import TorchRunner

    quantized = quantized_model(key.name)
    if quantized is not None:
        if backend not in ("auto", "openvino") or key.device != "cpu":
            raise ModelLoadError(
                f"{str(quantized.folder)!r} is an int8 OpenVINO model (written by `crossrank "
                f"quantize`); it runs on CPU with backend='openvino' or 'auto', not "
                f"backend={backend!r} on {key.device}"
            )
        from crossrank.models.runtimes.openvino import OpenVinoRunner

        logger.info(
            "%s: running its calibrated int8 OpenVINO model (%s)", key.name, quantized.ir.name
        )
        return OpenVinoRunner(
            quantized.ir, quantized.input_names, dtype=dtype, num_threads=num_threads
        )
    if quantize == "int8":  # only a `crossrank quantize` folder is int8
        raise ModelLoadError(INT8_REFUSAL)
    if backend == "onnx":
        from crossrank.models.runtimes.onnx import OnnxRunner

        return OnnxRunner(family, loaded, key, num_threads=num_threads)
    if backend == "openvino":
        from crossrank.models.runtimes.auto import SelfCheckFailed, checked_openvino_runner

        try:
            return checked_openvino_runner(
                family, loaded, key, dtype=dtype, num_threads=num_threads, encode=encode
            )
        except SelfCheckFailed as failed:
            raise ModelLoadError(f"{key.name!r}: {failed}; use backend='torch'") from None
    if backend == "auto":
        from crossrank.models.runtimes.auto import auto_runner

        def fallback(reason: str) -> Any:
            if reason:
                logger.warning("backend='auto' runs torch for %s: %s", key.name, reason)
            return _torch_in(dtype, family, loaded, key)

        return auto_runner(
            family,
            loaded,
            key,
            dtype=dtype,
            num_threads=num_threads,
            encode=encode,
            torch_runner=fallback,
        )
    if backend != "torch":
        raise ModelLoadError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    return TorchRunner(family, loaded, key.device)


def _torch_in(dtype: str, family: Family, loaded: LoadedModel, key: ModelKey) -> Any:
    """A torch runner computing in `dtype`: the loaded model, or the same model converted."""
    from crossrank.models.loading import load_model
    from crossrank.models.runtimes.torch import TorchRunner

    if dtype != key.dtype:  # auto loaded float32 to convert it; torch bf16 runs bf16 weights
        loaded = load_model(replace(key, dtype=dtype))
    return TorchRunner(family, loaded, key.device)


__all__ = ["BACKENDS", "make_runner"]
