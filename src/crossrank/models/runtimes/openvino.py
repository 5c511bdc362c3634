"""The OpenVINO runtime (`backend="openvino"`, and what `backend="auto"` picks on CPU).

A family's scoring module is converted once with `openvino.convert_model` (traced from the
loaded torch model with the example batch and the eager attention the ONNX export uses,
dynamic batch and sequence axes) and saved as IR (`openvino_model.xml` / `.bin`, float32
weights) through the export path shared with ONNX (`export.py`: hash-keyed folder, atomic,
safe across processes).
The precision is chosen when compiling, not when converting: `dtype="bfloat16"` sets
`INFERENCE_PRECISION_HINT=bf16` on the same IR, `float32` keeps every op in f32.

One compiled model per process and settings (`_compiled`), compiled with the LATENCY hint (one
stream over `INFERENCE_NUM_THREADS` = `num_threads`, or every core), so a lone call gets the
whole CPU. Each concurrent call takes its own infer request from a pool: the inference itself
runs outside the GIL and outside crossrank's per-model lock, so concurrent calls' tokenising,
padding and activation overlap their forward passes, and OpenVINO queues the requests on its
streams. Outputs are copied out of the request before it goes back to the pool.

A folder written by `crossrank quantize` carries its own int8 IR; it is compiled as it is.
"""

from __future__ import annotations

import logging
import queue
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.errors import ModelLoadError
from crossrank.models.runtimes.export import (
    cache_root,
    cached_export,
    eager_attention,
    example_batch,
    export_key,
)

if TYPE_CHECKING:
    from crossrank.models.families.base import Family
    from crossrank.models.loading import LoadedModel, ModelKey

logger = logging.getLogger("crossrank")

IR_FILE = "openvino_model.xml"
_FORMAT = 2  # bump when the conversion recipe changes, so old cached IR is not reused
PRECISION = {"float32": "f32", "bfloat16": "bf16"}

_core: Any = None
_compiled: dict[tuple[Any, ...], Any] = {}
_compile_lock = threading.Lock()


def require_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(
            "backend='openvino' needs OpenVINO, a crossrank dependency on x86-64 and ARM64 "
            "Linux, Windows and macOS: pip install openvino"
        ) from exc
    return openvino


def core() -> Any:
    """The process's OpenVINO `Core` (it loads the device plugins once)."""
    global _core
    if _core is None:
        _core = require_openvino().Core()
    return _core


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512-BF16 or AMX)."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def ir_export_key(name: str, family: str, trust_remote_code: bool) -> str:
    openvino = require_openvino()
    settings = {"trust_remote_code": trust_remote_code, "format": _FORMAT}
    return export_key(name, family, settings, {"openvino": openvino.__version__})


def convert(module: Any, hf_model: Any, input_names: list[str]) -> Any:
    """`openvino.convert_model` of a scoring module, its inputs named, its output `logits`."""
    import torch

    openvino = require_openvino()
    # Tracing warns about every Python branch on a shape; the graph is still dynamic in both
    # axes (the fidelity tests and `auto`'s self-check run other shapes than the example's).
    with eager_attention(hf_model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = openvino.convert_model(module, example_input=example_batch(input_names))
    for port, name in zip(model.inputs, input_names, strict=True):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def build_ir(family: Family, loaded: LoadedModel, key: ModelKey, input_names: list[str]) -> Path:
    """The cached IR of this model's scoring module, converted on first use."""
    openvino = require_openvino()
    key_hash = ir_export_key(key.name, family.name, key.trust_remote_code)

    def build(work: Path) -> None:
        where = cache_root("openvino")
        logger.info("converting %s to OpenVINO (once; cached in %s)", key.name, where)
        try:
            model = convert(family.scoring_module(loaded), loaded.hf_model, input_names)
        except Exception as exc:
            raise ModelLoadError(
                f"OpenVINO could not convert the {family.name} scoring module of "
                f"{key.name!r}: {type(exc).__name__}: {exc}. Use backend='torch' for this model."
            ) from exc
        openvino.save_model(model, str(work / IR_FILE), compress_to_fp16=False)

    marker = {"model": key.name, "family": family.name, "inputs": input_names}
    return cached_export("openvino", key_hash, build, marker) / IR_FILE


def compiled_model(xml: Path, precision: str, num_threads: int | None) -> Any:
    """One compiled model per process for an IR file and settings."""
    cache_key = (str(xml), precision, num_threads)
    compiled = _compiled.get(cache_key)
    if compiled is not None:
        return compiled
    with _compile_lock:
        compiled = _compiled.get(cache_key)
        if compiled is None:
            config: dict[str, Any] = {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": PRECISION[precision],
            }
            if num_threads is not None:
                config["INFERENCE_NUM_THREADS"] = num_threads
            compiled = core().compile_model(str(xml), "CPU", config)
            _compiled[cache_key] = compiled
    return compiled


def forget_compiled(runner: OpenVinoRunner | None = None) -> None:
    """Drop one runner's compiled model (or all of them) from the process's cache."""
    with _compile_lock:
        if runner is None:
            _compiled.clear()
            return
        for key in [k for k, v in _compiled.items() if v is runner.compiled]:
            del _compiled[key]


class OpenVinoRunner:
    """Runs padded batches through a compiled OpenVINO model; float32 raw outputs."""

    concurrent = True  # callers need not serialise: each call takes its own infer request

    def __init__(
        self, xml: Path, input_names: list[str], *, dtype: str, num_threads: int | None
    ) -> None:
        if dtype not in PRECISION:
            raise ModelLoadError(
                f"backend='openvino' runs float32 or bfloat16 on CPU, not dtype={dtype!r}"
            )
        if dtype == "bfloat16" and not cpu_has_bf16():
            logger.warning(
                "dtype='bfloat16': this CPU has no native bf16 (AVX512-BF16 or AMX), so "
                "OpenVINO runs the model in float32"
            )
        self.path = xml
        self.dtype = dtype
        self.input_names = input_names
        self.compiled = compiled_model(xml, dtype, num_threads)
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.requests_made = 0  # infer requests created: at most the peak of concurrent calls

    def _request(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            self.requests_made += 1
            return self.compiled.create_infer_request()

    def __call__(self, features: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        request = self._request()
        try:
            request.infer({name: features[name] for name in self.input_names})
            # the output tensor is the request's own memory, reused by its next inference
            return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
        finally:
            self._idle.put(request)


def openvino_runner(
    family: Family,
    loaded: LoadedModel,
    key: ModelKey,
    *,
    dtype: str,
    num_threads: int | None,
) -> OpenVinoRunner:
    """A runner over this model's cached IR (converted on first use)."""
    input_names = family.input_names(loaded)
    xml = build_ir(family, loaded, key, input_names)
    return OpenVinoRunner(xml, input_names, dtype=dtype, num_threads=num_threads)


__all__ = [
    "IR_FILE",
    "OpenVinoRunner",
    "build_ir",
    "compiled_model",
    "convert",
    "core",
    "openvino_runner",
    "require_openvino",
]
