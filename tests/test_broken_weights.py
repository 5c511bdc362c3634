"""Every broken model folder is a `ModelLoadError` naming the file (issue 17).

A model folder is untrusted input: its safetensors header is read before loading (the memory
check), so a damaged header must fail there as cleanly as the loader fails on damaged weights.
Each folder is a copy of the tiny model with one thing broken in `model.safetensors`.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from crossrank import ModelLoadError, Reranker


def _split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _join(header: dict | bytes, body: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _first_tensor(header: dict) -> str:
    return next(name for name in header if name != "__metadata__")


def _huge_header_length(data: bytes) -> bytes:
    return struct.pack("<Q", 2**62) + data[8:]


def _not_json(data: bytes) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    return data[:8] + b"{not json" + b" " * (length - 9) + data[8 + length :]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _huge_shape(data: bytes) -> bytes:
    header, body = _split(data)
    header[_first_tensor(header)]["shape"] = [2**40, 2**40]
    return _join(header, body)


def _unknown_dtype(data: bytes) -> bytes:
    header, body = _split(data)
    tensor = header[_first_tensor(header)]
    start, end = tensor["data_offsets"]
    tensor["dtype"] = "F8_E8M0"  # one byte per element: the offsets still match the shape
    tensor["shape"] = [end - start]
    return _join(header, body)


@pytest.mark.parametrize(
    "breaking",
    [_huge_header_length, _not_json, _truncated, _huge_shape, _unknown_dtype],
    ids=["header-length-2**62", "non-json-header", "truncated-data", "shape-2**40", "F8_E8M0"],
)
def test_a_broken_safetensors_file_is_a_model_load_error_naming_it(tiny_model, tmp_path, breaking):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(breaking(weights.read_bytes()))
    with pytest.raises(ModelLoadError) as info:
        Reranker(model=str(folder), device="cpu").rerank("wind tunnel", ["abc", "xyz"])
    assert str(weights) in str(info.value)


def test_a_sound_copy_still_loads(tiny_model, tmp_path):
    folder = Path(shutil.copytree(tiny_model, tmp_path / "sound"))
    assert len(Reranker(model=str(folder), device="cpu").rerank("wind", ["abc", "xyz"])) == 2
