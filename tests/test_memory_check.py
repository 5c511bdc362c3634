"""Weights that cannot fit are a `ModelLoadError` before loading starts and before any scoring,
naming the model, the memory needed and available, and what to do.

The available figure is monkeypatched (psutil for RAM, torch.cuda for a GPU); the needed figure
is checked against the parameters of the model itself, loaded with plain transformers.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import psutil
import pytest
import sentence_transformers
import torch

from crossrank import ModelLoadError, Reranker
from crossrank.models import loading


def _parameter_count(folder: str) -> int:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return sum(p.numel() for p in model.state_dict().values())


@pytest.fixture
def model(tiny_model, tmp_path) -> str:
    """A copy of the tiny model no other test has loaded (a loaded model is not checked again)."""
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model, folder)
    return str(folder)


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if loading is even attempted."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although it cannot fit")

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", refuse)


def _ram(monkeypatch, available: int) -> None:
    real = psutil.virtual_memory()
    monkeypatch.setattr(
        psutil,
        "virtual_memory",
        lambda: SimpleNamespace(**{**real._asdict(), "available": available}),
    )


def _refusal(model: str, **settings) -> str:
    before = loading.load_count
    with pytest.raises(ModelLoadError) as info:
        Reranker(model=model, **settings).rerank("wind tunnel", ["abc", "xyz"])
    assert loading.load_count == before
    return str(info.value)


def test_weights_larger_than_free_ram_are_refused_before_loading(model, monkeypatch, no_loading):
    params = _parameter_count(model)
    _ram(monkeypatch, 1000)
    message = _refusal(model, device="cpu")
    assert repr(model) in message
    assert f"need {loading._size(params * 4)} in float32 on cpu" in message
    assert "only 1000 B of available RAM" in message
    # what to do: bf16 (with its figure), a smaller model, a GPU
    assert f"dtype='bfloat16': {loading._size(params * 2)}" in message
    assert "smaller model" in message and "device='cuda'" in message


def test_the_estimate_follows_the_dtype(model, monkeypatch, no_loading):
    params = _parameter_count(model)
    _ram(monkeypatch, params * 2 - 1)  # bfloat16 weights just do not fit
    # torch loads the weights in bfloat16; OpenVINO (the default on CPU) converts from float32
    # weights, so its estimate is the float32 one.
    message = _refusal(model, device="cpu", dtype="bfloat16", backend="torch")
    assert f"need {loading._size(params * 2)} in bfloat16" in message
    assert "dtype='bfloat16':" not in message  # already bf16: not advised again


def test_weights_that_fit_load(model, monkeypatch):
    params = _parameter_count(model)
    _ram(monkeypatch, params * 4)  # exactly enough
    assert len(Reranker(model=model, device="cpu").rerank("q", ["abc", "xyz"])) == 2


def test_free_gpu_memory_is_what_counts_on_cuda(model, monkeypatch, no_loading):
    params = _parameter_count(model)
    # a machine with one 80 GiB GPU that has 4 KiB free
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4096, 80 * 2**30))
    message = _refusal(model, device="cuda:0", dtype="float16")
    assert f"need {loading._size(params * 2)} in float16 on cuda:0" in message
    assert "only 4.0 KiB free on cuda:0" in message
    assert "free GPU memory" in message


def test_sharded_weights_are_all_counted(tiny_model, tmp_path):
    """A model saved in shards counts every shard (and the same total as one file)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    one_file = loading.weight_bytes(loading.Path(tiny_model), "float32")
    assert loading.weight_bytes(tmp_path, "float32") == one_file == _parameter_count(tiny_model) * 4


@pytest.mark.parametrize(
    "n, text", [(512, "512 B"), (3 * 2**20, "3.0 MiB"), (16 * 2**30, "16.0 GiB")]
)
def test_sizes_read_as_people_write_them(n, text):
    assert loading._size(n) == text
