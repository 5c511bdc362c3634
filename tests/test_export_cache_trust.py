"""The export cache checks what it loads (issue 17).

The cache key is a hash of the model's files, which anyone who can read them computes, so a
shared cache folder lets another user plant an IR under it. An entry is used only when this
user owns it, no one else can write it and its files match the digests recorded when it was
written; otherwise it is converted again with one warning. A planted lock-file symlink is a
`ModelLoadError` and its target is untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from crossrank import ModelLoadError, Reranker
from crossrank.models import clear_model_cache
from crossrank.models.runtimes.export import EXPORT_CACHE_ENV

pytest.importorskip("openvino")

PAIRS = [("wind tunnel", "flow over a wing"), ("wind tunnel", "heat"), ("lift", "drag")]


@pytest.fixture(autouse=True)
def _fresh_models():
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(EXPORT_CACHE_ENV, str(tmp_path / "exports"))
    return tmp_path / "exports" / "openvino"


def _scores(model: str, backend: str) -> list[float]:
    clear_model_cache()  # a fresh process: nothing loaded, nothing compiled
    return list(Reranker(model=model, device="cpu", backend=backend).scorer.score(PAIRS))


def _entry(cache: Path) -> Path:
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    return folder


def _plant(entry: Path) -> None:
    """Replace the IR's weights with other bytes of the same size (a planted backdoor)."""
    weights = entry / "openvino_model.bin"
    raw = weights.read_bytes()
    whole = len(raw) // 4 * 4
    data = np.frombuffer(raw[:whole], dtype=np.float32).copy()
    data[np.isfinite(data)] *= -3.0
    weights.write_bytes(data.tobytes() + raw[whole:])


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "export cache entry" in r.getMessage()]


def test_a_tampered_entry_is_never_used(tiny_model, cache, caplog):
    expected = _scores(tiny_model, "torch")
    np.testing.assert_allclose(_scores(tiny_model, "openvino"), expected, atol=1e-4)
    _plant(_entry(cache))
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        got = _scores(tiny_model, "openvino")
    np.testing.assert_allclose(got, expected, atol=1e-4)  # converted again, not the plant
    [warning] = _warnings(caplog)
    assert "differ from the digests" in warning and "openvino_model.bin" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crossrank"):  # the new entry is trusted
        np.testing.assert_allclose(_scores(tiny_model, "openvino"), expected, atol=1e-4)
    assert _warnings(caplog) == []


def test_an_entry_others_can_write_is_converted_again(tiny_model, cache, caplog):
    _scores(tiny_model, "openvino")
    entry = _entry(cache)
    (entry / "openvino_model.xml").chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        _scores(tiny_model, "openvino")
    [warning] = _warnings(caplog)
    assert "can be written by its group or by others" in warning
    assert (entry / "openvino_model.xml").stat().st_mode & 0o022 == 0


@pytest.mark.skipif(os.name != "posix", reason="file owners are a POSIX notion")
def test_an_entry_another_user_owns_is_converted_again(tiny_model, cache, caplog, monkeypatch):
    _scores(tiny_model, "openvino")
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # the entry now belongs to "another"
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        _scores(tiny_model, "openvino")
    [warning] = _warnings(caplog)
    assert f"owned by uid {me}, not by this user ({me + 1})" in warning


def test_an_untrusted_entry_that_cannot_be_removed_is_refused(tiny_model, cache, monkeypatch):
    _scores(tiny_model, "openvino")
    (_entry(cache) / "openvino_model.xml").chmod(0o666)
    monkeypatch.setattr("shutil.rmtree", lambda *a, **k: None)  # as another user's folder
    clear_model_cache()
    with pytest.raises(ModelLoadError, match=r"cannot be trusted .* and cannot be removed"):
        Reranker(model=tiny_model, device="cpu", backend="openvino").rerank("wind", ["flow"])


def test_a_planted_lock_symlink_is_a_model_load_error_and_never_followed(
    tiny_model, cache, tmp_path
):
    from crossrank.models.families.sequence_classification import SequenceClassification
    from crossrank.models.runtimes.openvino import ir_export_key

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    key = ir_export_key(tiny_model, SequenceClassification.name, False)
    cache.mkdir(parents=True)
    (cache / f"{key}.lock").symlink_to(victim)
    with pytest.raises(ModelLoadError, match="lock file is a symlink"):
        Reranker(model=tiny_model, device="cpu", backend="openvino").rerank("wind", ["flow"])
    assert victim.read_text() == "precious\n"
