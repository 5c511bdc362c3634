"""The ONNX Runtime runtime (`backend="onnx"`, optional extra `crossrank[onnx]`).

A family's scoring module is exported once with `torch.onnx.export` (dynamic batch and
sequence axes), fused with ONNX Runtime's transformer optimizer when it knows the
architecture, and cached on disk through the export path it shares
with OpenVINO (`export.py`: the folder is ``$CROSSRANK_ONNX_CACHE``, else
``$CROSSRANK_EXPORT_CACHE/onnx``, default ``~/.cache/crossrank/onnx``, keyed by a hash of the
model, family, settings and library versions, written atomically). Later processes load the
cached file in well under a second. Runs on CPU with every graph optimisation on.
"""

from __future__ import annotations

import logging
import shutil
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

ONNX_CACHE_ENV = "CROSSRANK_ONNX_CACHE"
OPSET = 17
_FORMAT = 4  # bump when the export recipe changes, so old cached files are not reused


def onnx_cache_root() -> Path:
    return cache_root("onnx")


def onnx_export_key(name: str, family: str, trust_remote_code: bool) -> str:
    import onnxruntime

    settings = {
        "trust_remote_code": trust_remote_code,
        "opset": OPSET,
        "format": _FORMAT,
    }
    return export_key(name, family, settings, {"onnxruntime": onnxruntime.__version__})


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            "backend='onnx' needs ONNX Runtime: pip install 'crossrank[onnx]' "
            "(onnxruntime and onnx)"
        ) from exc
    return onnxruntime


def _export(module: Any, hf_model: Any, input_names: list[str], path: Path) -> None:
    """torch.onnx.export of a family's scoring module, with dynamic batch and sequence axes."""
    import torch

    example = example_batch(input_names)
    with eager_attention(hf_model), torch.no_grad():
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in input_names}
            | {"logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def _fuse(path: Path, out: Path, config: Any) -> bool:
    """ORT's transformer optimizer: fused attention, layer norm and GELU where it can."""
    fusable = {"bert": "bert", "xlm-roberta": "bert", "roberta": "bert"}
    model_type = fusable.get(getattr(config, "model_type", ""))
    if model_type is None:
        return False
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            str(path),
            model_type=model_type,
            num_heads=getattr(config, "num_attention_heads", 0),
            hidden_size=getattr(config, "hidden_size", 0),
            opt_level=1,
        )
        fused.save_model_to_file(str(out))
        return True
    except Exception as exc:  # the plain graph still works; ORT optimises it at load
        logger.info("ONNX transformer fusion skipped: %s: %s", type(exc).__name__, exc)
        return False


def build_onnx(family: Family, loaded: LoadedModel, key: ModelKey, input_names: list[str]) -> Path:
    """The cached ONNX file for this model and settings, exported on first use."""
    _require_onnxruntime()
    key_hash = onnx_export_key(key.name, family.name, key.trust_remote_code)

    def build(work: Path) -> None:
        hf_model = loaded.hf_model
        logger.info("exporting %s to ONNX (once; cached in %s)", key.name, onnx_cache_root())
        raw = work / "raw.onnx"
        _export(family.scoring_module(loaded), hf_model, input_names, raw)
        fp32 = work / "model.onnx"
        if not _fuse(raw, fp32, hf_model.config):
            shutil.copyfile(raw, fp32)
        raw.unlink()

    marker = {"model": key.name, "family": family.name, "opset": OPSET}
    return cached_export("onnx", key_hash, build, marker) / "model.onnx"


class OnnxRunner:
    """Runs padded batches through an ONNX Runtime session; returns float32 raw outputs."""

    def __init__(
        self,
        family: Family,
        loaded: LoadedModel,
        key: ModelKey,
        *,
        num_threads: int | None,
    ) -> None:
        ort = _require_onnxruntime()
        self.input_names = family.input_names(loaded)
        self.path = build_onnx(family, loaded, key, self.input_names)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, features: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        feed = {name: features[name] for name in self.input_names}
        (logits,) = self.session.run(["logits"], feed)
        return np.asarray(logits, dtype=np.float32)
