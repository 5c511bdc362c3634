"""Model loading fails early and clearly: every broken model is a `ModelLoadError` at load
time that says what is wrong and what to do, never an error deep in torch at score time.

Covered: a hub name that cannot be reached offline, a folder without weights, pickle-only
weights (refused unless the caller opts in), a tokenizer that does not match the weights, a
`max_length` longer than the model can read, and custom model code (`trust_remote_code`, off
unless the caller turns it on).
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from crossrank import ModelLoadError, RerankConfig, Reranker
from crossrank.models import loading
from crossrank.testing import tiny_vocab


def _copy(tiny_model: str, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_model, folder)
    return folder


def _load_error(model: str, **settings) -> ModelLoadError:
    before = loading.load_count
    with pytest.raises(ModelLoadError) as info:
        Reranker(model=model, **settings).rerank("wind tunnel", ["abc", "xyz"])
    assert loading.load_count == before  # nothing half-loaded was counted or cached
    return info.value


def test_tiny_tokenizer_reads_characters(tiny_model):
    """The tiny test model tokenises real text (it once mapped every character to [UNK])."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids = tokenizer("abc xyz 123")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert len(tokenizer) == len(tiny_vocab())


# -- hub names that cannot be reached ------------------------------------------------------------


def test_hub_name_offline_is_an_immediate_clear_error():
    # conftest sets HF_HUB_OFFLINE=1, as on an offline machine
    message = str(_load_error("some-org/not-a-cached-reranker"))
    assert "some-org/not-a-cached-reranker" in message
    assert "HF_HUB_OFFLINE" in message
    assert "local folder" in message and "Reranker(model=" in message


def test_hub_unreachable_without_offline_flag(monkeypatch):
    """Not in offline mode, but the hub does not answer: one probe, then a clear error."""
    from huggingface_hub import constants

    with socket.socket() as sock:  # a port on which nothing listens: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    message = str(_load_error("some-org/not-a-cached-reranker"))
    assert "could not be reached" in message
    assert "--local-dir" in message


def test_missing_folder_path():
    message = str(_load_error("./no/such/model-folder/"))
    assert "no such folder" in message


# -- broken folders --------------------------------------------------------------------------


def test_folder_without_weights(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path, "no-weights")
    (folder / "model.safetensors").unlink()
    message = str(_load_error(str(folder)))
    assert str(folder) in message
    assert "no model weights" in message and "model.safetensors" in message


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no model weights" in str(_load_error(str(tmp_path / "empty")))


def test_folder_with_broken_config(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path, "broken-config")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    message = str(_load_error(str(folder)))
    assert str(folder) in message and "config.json" in message


def test_failed_load_is_not_cached(tiny_model, tmp_path):
    """After the folder is fixed, the same Reranker loads it: an error is not sticky."""
    folder = _copy(tiny_model, tmp_path, "fixed-later")
    weights = folder / "model.safetensors"
    weights.rename(tmp_path / "aside.safetensors")
    rr = Reranker(model=str(folder))
    with pytest.raises(ModelLoadError):
        rr.rerank("q", ["abc"])
    (tmp_path / "aside.safetensors").rename(weights)
    assert len(rr.rerank("q", ["abc", "xyz"])) == 2


def _with_bigger_tokenizer(tiny_model: str, tmp_path: Path) -> Path:
    """A folder whose tokenizer knows 200 more tokens than the model has embeddings for."""
    from transformers import BertTokenizerFast

    folder = _copy(tiny_model, tmp_path, "tokenizer-mismatch")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    extra = [chr(c) for c in range(0x4E00, 0x4E00 + 200)]  # CJK characters
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab() + extra) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert len(tokenizer) == len(tiny_vocab()) + 200
    tokenizer.save_pretrained(folder)
    return folder


def test_tokenizer_mismatch_is_caught_at_load(tiny_model, tmp_path):
    """Without the load-time check this would score 'abc' fine and hit an IndexError in torch
    only when a document contains one of the extra characters."""
    folder = _with_bigger_tokenizer(tiny_model, tmp_path)
    message = str(_load_error(str(folder)))  # plain ASCII documents: fails anyway, at load
    assert "tokenizer" in message and "embedding" in message
    assert "copy them from the same model as the weights" in message


def test_max_length_longer_than_the_model_can_read(tiny_model_short):
    message = str(_load_error(tiny_model_short, max_length=64))
    assert "max_length=64" in message and "32" in message
    # within the model's limit it loads and truncates long texts
    ranked = Reranker(model=tiny_model_short, max_length=32).rerank("q", ["word " * 200, "abc"])
    assert len(ranked) == 2


# -- pickle weights and safetensors ------------------------------------------------------------


def _pickle_only(tiny_model: str, tmp_path: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    folder = _copy(tiny_model, tmp_path, "pickle-only")
    state = load_file(folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_pickle_only_weights_are_refused_by_default(tiny_model, tmp_path):
    folder = _pickle_only(tiny_model, tmp_path)
    assert RerankConfig().allow_pickle_weights is False
    message = str(_load_error(str(folder)))
    assert "pytorch_model.bin" in message and "pickle" in message
    assert "allow_pickle_weights=True" in message and "safetensors" in message


def test_pickle_weights_load_when_the_caller_opts_in(tiny_model, tmp_path):
    folder = _pickle_only(tiny_model, tmp_path)
    docs = ["wind tunnel", "abc", "xyz 123"]
    opted_in = Reranker(model=str(folder), allow_pickle_weights=True).rerank("wind", docs)
    reference = Reranker(model=tiny_model).rerank("wind", docs)
    assert [r.index for r in opted_in] == [r.index for r in reference]
    assert [r.score for r in opted_in] == pytest.approx([r.score for r in reference], abs=1e-6)


@pytest.mark.parametrize("allow_pickle_weights", [False, True])
def test_safetensors_are_preferred_over_pickle(tiny_model, tmp_path, allow_pickle_weights):
    """With both present, the pickle file is never opened (here it is not even valid)."""
    folder = _copy(tiny_model, tmp_path, "both")
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle: must never be loaded")
    rr = Reranker(model=str(folder), allow_pickle_weights=allow_pickle_weights, max_length=100)
    assert len(rr.rerank("q", ["abc", "xyz"])) == 2


# -- custom model code -----------------------------------------------------------------------


def _custom_code_folder(tiny_model: str, tmp_path: Path) -> tuple[Path, Path]:
    """A model folder whose config asks for its own Python code, which leaves a marker."""
    folder = _copy(tiny_model, tmp_path, "custom-code")
    marker = tmp_path / "custom-code-ran"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "crossrank-custom-code-test"
    config["auto_map"] = {
        "AutoConfig": "custom_code.CustomConfig",
        "AutoModelForSequenceClassification": "custom_code.CustomModel",
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "custom_code.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "raise RuntimeError('custom model code ran')\n",
        encoding="utf-8",
    )
    return folder, marker


def test_custom_code_does_not_run_by_default(tiny_model, tmp_path):
    folder, marker = _custom_code_folder(tiny_model, tmp_path)
    assert RerankConfig().trust_remote_code is False
    message = str(_load_error(str(folder)))
    assert not marker.exists()
    assert "trust_remote_code=True" in message
    assert "only for a model whose code you have read" in message


def test_custom_code_runs_only_when_the_caller_says_so(tiny_model, tmp_path, monkeypatch):
    from transformers import dynamic_module_utils

    # keep transformers' copy of the custom module out of the user's cache
    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder, marker = _custom_code_folder(tiny_model, tmp_path)
    message = str(_load_error(str(folder), trust_remote_code=True))
    assert marker.exists()  # the flag reached transformers: the model's code was run
    assert "custom model code ran" in message


# -- hub names found in the local Hugging Face cache (offline) ----------------------------------


def _cache_model(folder: Path, cache: Path, repo: str) -> None:
    """Lay `folder` out as the hub cache does: models--org--name/{refs/main, snapshots/<sha>}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    sha = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    shutil.copytree(folder, root / "snapshots" / sha)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_cached_hub_name_loads_offline(tiny_model, tmp_path, hub_cache):
    repo = f"crossrank-test/cached-{tmp_path.name}"  # a name no other test has loaded
    _cache_model(Path(tiny_model), hub_cache, repo)
    assert len(Reranker(model=repo).rerank("q", ["abc", "xyz"])) == 2


def test_cached_pickle_only_model_says_so_not_offline(tiny_model, tmp_path, hub_cache):
    """Before, this said 'HF_HUB_OFFLINE is set', hiding that the cached model is pickle-only."""
    repo = f"crossrank-test/pickled-{tmp_path.name}"
    _cache_model(_pickle_only(tiny_model, tmp_path), hub_cache, repo)
    message = str(_load_error(repo))
    assert "HF_HUB_OFFLINE" not in message
    assert "pytorch_model.bin" in message and "allow_pickle_weights=True" in message
    ranked = Reranker(model=repo, allow_pickle_weights=True).rerank("q", ["abc", "xyz"])
    assert len(ranked) == 2


def test_cached_model_with_a_broken_tokenizer(tiny_model, tmp_path, hub_cache):
    repo = f"crossrank-test/mismatch-{tmp_path.name}"
    _cache_model(_with_bigger_tokenizer(tiny_model, tmp_path), hub_cache, repo)
    assert "does not match its weights" in str(_load_error(repo))
