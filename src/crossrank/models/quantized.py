"""What a calibrated int8 model folder (written by `crossrank quantize`) is, and finding one.

The folder is the source model saved as it is (config, tokenizer, sentence-transformers
settings, float32 weights: so the family, the tokenizer, the activation and every load-time
check work unchanged) plus its int8 OpenVINO IR in `openvino-int8/` and a marker,
`crossrank-quantized.json`, that records where it came from and how faithful it is. The IR
is what runs; the float32 weights are only read, never run, by the int8 path.

This module imports nothing heavy: the stage contract uses it to validate settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUANTIZED_MARKER = "crossrank-quantized.json"
QUANTIZED_IR = "openvino-int8/openvino_model.xml"


@dataclass(frozen=True)
class QuantizedModel:
    folder: Path
    ir: Path
    input_names: list[str]
    info: dict[str, Any]


def is_quantized_folder(name: str) -> bool:
    """Whether `name` is a folder written by `crossrank quantize`."""
    try:
        return (Path(name).expanduser() / QUANTIZED_MARKER).is_file()
    except (OSError, ValueError):  # not a usable path: a hub id, or an odd string
        return False


def quantized_model(name: str) -> QuantizedModel | None:
    """The int8 model in folder `name`, or None when it is not a quantized folder."""
    from crossrank.errors import ModelLoadError

    if not is_quantized_folder(name):
        return None
    folder = Path(name).expanduser()
    try:
        info = json.loads((folder / QUANTIZED_MARKER).read_text(encoding="utf-8"))
        inputs = [str(n) for n in info["inputs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{str(folder / QUANTIZED_MARKER)!r} is not a readable crossrank-quantized marker "
            f"({type(exc).__name__}: {exc}); write the folder again with `crossrank quantize`"
        ) from exc
    ir = folder / QUANTIZED_IR
    if not ir.is_file() or not ir.with_suffix(".bin").is_file():
        raise ModelLoadError(
            f"quantized model folder {str(folder)!r} has no int8 IR ({QUANTIZED_IR} and its "
            ".bin); write it again with `crossrank quantize`"
        )
    return QuantizedModel(folder=folder, ir=ir, input_names=inputs, info=info)


INT8_REFUSAL = (
    "quantize='int8' needs a calibrated int8 model: run `crossrank quantize --model M "
    "--calibration DATA --out FOLDER` (DATA: query/document pairs as JSON Lines, or a BEIR "
    "folder) and pass model=FOLDER (it runs on OpenVINO, backend 'auto' or 'openvino'). "
    "Uncalibrated int8 (ONNX dynamic) is no longer offered: it ranked worse and ran slower "
    "than OpenVINO bf16 and calibrated int8 (see README, Runtimes)"
)
