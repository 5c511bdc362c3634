"""Runtimes: what executes a family's scoring module on padded batches.

Each runtime is a callable `features (name -> int64 array) -> raw outputs (batch, k)`, built
once per loaded model and settings by `make_runner`. `torch` runs the module itself;
`onnx` runs an exported graph of the same module. A new runtime is one module here, plus a
fidelity test against torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossrank.models.families.base import Family
    from crossrank.models.loading import LoadedModel, ModelKey


def make_runner(
    backend: str,
    family: Family,
    loaded: LoadedModel,
    key: ModelKey,
    *,
    quantize: str,
    num_threads: int | None,
) -> Any:
    """The runner for `backend` over `family`'s scoring module of `loaded`."""
    if backend == "onnx":
        from crossrank.models.runtimes.onnx import OnnxRunner

        return OnnxRunner(family, loaded, key, quantize=quantize, num_threads=num_threads)
    from crossrank.models.runtimes.torch import TorchRunner

    return TorchRunner(family, loaded, key.device)


__all__ = ["make_runner"]
