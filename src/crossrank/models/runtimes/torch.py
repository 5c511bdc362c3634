"""The torch runtime: the family's scoring module, run as it is, under `inference_mode`.

The model is loaded in the requested dtype (a converted model: on CPU, bfloat16 weights run
about 2x faster than `torch.autocast` over float32 weights, which re-casts the weights every
pass, for the same rank agreement). Outputs are upcast to float32 before the activation, as
`CrossEncoder.predict` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from crossrank.models.families.base import Family
    from crossrank.models.loading import LoadedModel


class TorchRunner:
    """Runs padded batches through a family's scoring module with torch (cpu, cuda, mps)."""

    def __init__(self, family: Family, loaded: LoadedModel, device: str) -> None:
        import torch

        self.module = family.scoring_module(loaded)
        self.input_names = family.input_names(loaded)
        self.device = device
        self._torch = torch

    def __call__(self, features: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        torch = self._torch
        tensors = [torch.from_numpy(features[name]).to(self.device) for name in self.input_names]
        with torch.inference_mode():
            return self.module(*tensors).float().cpu().numpy()
