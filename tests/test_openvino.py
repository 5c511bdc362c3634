"""Issue 12: the OpenVINO runtime and `backend="auto"`, the default.

Fidelity against torch (float32 within 1e-4, bf16 rank agreement), the on-disk IR cache
(reused, written once when two processes convert at once), `auto`'s self-check and its
fallback, `num_threads`, concurrency, and the settings that are refused. No timing: speed is
measured in benchmarks/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from crossrank import RerankConfig, Reranker
from crossrank.errors import ModelLoadError
from crossrank.models import ModelScorer, clear_model_cache
from crossrank.models.runtimes import openvino as ov_runtime
from crossrank.models.runtimes.export import EXPORT_CACHE_ENV, MARKER
from crossrank.models.runtimes.openvino import OpenVinoRunner
from crossrank.models.runtimes.torch import TorchRunner

pytest.importorskip("openvino")

WORDS = ["wing", "lift", "drag", "flow", "boundary", "layer", "shock", "heat", "plate", "mach"]


def make_pairs(n: int, seed: int = 0, query: str = "what is the lift of a wing") -> list:
    rng = random.Random(seed)
    return [(query, " ".join(rng.choices(WORDS, k=rng.randint(1, 60)))) for _ in range(n)]


@pytest.fixture(autouse=True)
def _fresh_models():
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """This test's own export cache, so what it converts is visible and nothing else is."""
    monkeypatch.setenv(EXPORT_CACHE_ENV, str(tmp_path / "exports"))
    return tmp_path / "exports" / "openvino"


def ir_folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []


def test_openvino_float32_matches_torch_and_is_cached(tiny_model, cache):
    pairs = make_pairs(24, seed=1)
    expected = ModelScorer(tiny_model, backend="torch").score(pairs)
    scorer = ModelScorer(tiny_model, backend="openvino", token_budget=256)
    assert isinstance(scorer.runner, OpenVinoRunner)
    np.testing.assert_allclose(scorer.score(pairs), expected, rtol=0, atol=1e-4)
    [folder] = ir_folders(cache)
    assert (folder / "openvino_model.xml").is_file() and (folder / MARKER).is_file()
    stamp = (folder / "openvino_model.bin").stat().st_mtime_ns

    # A fresh process (simulated: nothing loaded, nothing compiled) reuses the IR on disk.
    clear_model_cache()
    again = ModelScorer(tiny_model, backend="openvino", token_budget=256)
    assert again.score(pairs) == scorer.score(pairs)  # bit for bit, the same batches
    assert ir_folders(cache) == [folder]
    assert (folder / "openvino_model.bin").stat().st_mtime_ns == stamp


def test_a_second_load_does_not_convert_again(tiny_model, cache, monkeypatch):
    ModelScorer(tiny_model, backend="openvino").score(make_pairs(3))
    clear_model_cache()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the IR is cached")

    monkeypatch.setattr(ov_runtime, "convert", no_conversion)
    assert len(ModelScorer(tiny_model, backend="openvino").score(make_pairs(3))) == 3


def test_auto_is_the_default_and_runs_openvino_on_cpu(tiny_model):
    pairs = make_pairs(30, seed=2)
    reranker = Reranker(model=tiny_model, device="cpu")
    assert reranker.config.backend == "auto"
    assert isinstance(reranker.scorer.runner, OpenVinoRunner)
    got = reranker.rerank(pairs[0][0], [d for _, d in pairs])
    exact = Reranker(model=tiny_model, device="cpu", backend="torch").rerank(
        pairs[0][0], [d for _, d in pairs]
    )
    assert [r.index for r in got] == [r.index for r in exact]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in exact], atol=1e-4)


def test_auto_is_reproducible_bit_for_bit(tiny_model):
    pairs = make_pairs(40, seed=3)
    first = ModelScorer(tiny_model).score(pairs)
    assert ModelScorer(tiny_model).score(pairs) == first
    clear_model_cache()
    assert ModelScorer(tiny_model).score(pairs) == first


def test_auto_falls_back_to_torch_when_the_self_check_fails(tiny_model, caplog, monkeypatch):
    original = OpenVinoRunner.__call__

    def drifted(self, features):  # a conversion that is off by 1e-3 on every output
        return original(self, features) + 1e-3

    monkeypatch.setattr(OpenVinoRunner, "__call__", drifted)
    pairs = make_pairs(10, seed=4)
    with caplog.at_level(logging.INFO, logger="crossrank"):
        scorer = ModelScorer(tiny_model)
        got = scorer.score(pairs)
    assert isinstance(scorer.runner, TorchRunner)
    [line] = [r for r in caplog.records if "backend='auto' runs torch" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "fidelity self-check" in line.getMessage() and "1.00e-03" in line.getMessage()
    assert got == ModelScorer(tiny_model, backend="torch").score(pairs)


def test_backend_openvino_refuses_a_model_that_fails_the_self_check(tiny_model, monkeypatch):
    original = OpenVinoRunner.__call__
    monkeypatch.setattr(OpenVinoRunner, "__call__", lambda self, f: original(self, f) * np.nan)
    with pytest.raises(ModelLoadError, match=r"self-check.*not finite.*backend='torch'"):
        ModelScorer(tiny_model, backend="openvino").score(make_pairs(2))


def test_auto_falls_back_to_torch_without_openvino(tiny_model, cache, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        scorer = ModelScorer(tiny_model)
        scorer.score(make_pairs(2))
    assert isinstance(scorer.runner, TorchRunner)
    [line] = [r.getMessage() for r in caplog.records if "runs torch" in r.getMessage()]
    assert "OpenVINO is not installed" in line
    assert ir_folders(cache) == []


def test_a_model_openvino_cannot_convert(tiny_model, cache, caplog, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("unsupported operation aten::frobnicate")

    monkeypatch.setattr(ov_runtime.require_openvino(), "convert_model", fails)
    with pytest.raises(ModelLoadError, match=r"could not convert.*backend='torch'"):
        ModelScorer(tiny_model, backend="openvino").score(make_pairs(2))
    assert ir_folders(cache) == []  # nothing half-written is left to be reused
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        scorer = ModelScorer(tiny_model)
        assert len(scorer.score(make_pairs(2))) == 2
    assert isinstance(scorer.runner, TorchRunner)
    assert any("aten::frobnicate" in r.getMessage() for r in caplog.records)


def test_bfloat16_on_openvino_stays_close(tiny_model, cache):
    pairs = make_pairs(12, seed=5)
    exact = ModelScorer(tiny_model, backend="torch").score(pairs)
    fast = ModelScorer(tiny_model, backend="openvino", dtype="bfloat16")
    assert fast.model.hf_model.dtype.is_floating_point  # the float32 model was converted
    assert fast.runner.dtype == "bfloat16"
    np.testing.assert_allclose(fast.score(pairs), exact, atol=0.05)
    assert len(ir_folders(cache)) == 1  # one IR; the precision is chosen when compiling
    auto = ModelScorer(tiny_model, dtype="bfloat16")  # self-checked in f32, then runs bf16
    assert isinstance(auto.runner, OpenVinoRunner) and auto.runner.dtype == "bfloat16"
    assert auto.score(pairs) == fast.score(pairs)


def test_num_threads_reaches_openvino(tiny_model):
    scorer = ModelScorer(tiny_model, backend="openvino", num_threads=1)
    assert scorer.runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_two_processes_converting_at_once_convert_once(tiny_model, tmp_path):
    script = textwrap.dedent(
        """
        import json, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from crossrank.models import ModelScorer
        pairs = [("wing lift", "lift of a wing " * k) for k in range(1, 6)]
        print(json.dumps(ModelScorer(sys.argv[1], backend="openvino").score(pairs)))
        """
    )
    env = {**os.environ, EXPORT_CACHE_ENV: str(tmp_path / "exports"), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, tiny_model],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    scores = [json.loads(out) for out, _ in outs]
    assert scores[0] == scores[1]
    conversions = sum(err.count("to OpenVINO (once") for _, err in outs)
    assert conversions == 1, [
        [ln for ln in err.splitlines() if "OpenVINO" in ln] for _, err in outs
    ]
    cache = tmp_path / "exports" / "openvino"
    [folder] = ir_folders(cache)  # no work folder left behind
    assert (folder / MARKER).is_file()


async def test_concurrent_calls_overlap_and_stay_correct(tiny_model, monkeypatch):
    """Two calls are inside the OpenVINO runner at the same time (no model-wide lock)."""
    queries = [f"q{i} wing lift" for i in range(6)]
    docs = [d for _, d in make_pairs(20, seed=6)]
    reranker = Reranker(model=tiny_model, backend="openvino", device="cpu")
    alone = [[r.score for r in reranker.rerank(q, docs)] for q in queries]

    both_inside = threading.Barrier(2, timeout=60)
    original = OpenVinoRunner.__call__
    entered = []
    count = threading.Lock()

    def meet(self, features):
        with count:
            entered.append(1)
            first_two = len(entered) <= 2
        if first_two:  # the first two batches to arrive must be inside the runner together
            both_inside.wait()
        return original(self, features)

    monkeypatch.setattr(OpenVinoRunner, "__call__", meet)
    results = await asyncio.gather(*(reranker.arerank(q, docs) for q in queries))
    assert [[r.score for r in res] for res in results] == alone
    assert reranker.scorer.runner.requests_made >= 2  # one infer request per concurrent call


# -- settings ------------------------------------------------------------------------------------


def test_settings_that_openvino_refuses():
    assert RerankConfig().backend == "auto"
    RerankConfig(backend="openvino", dtype="bfloat16")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        RerankConfig(backend="openvino", dtype="float16")
    with pytest.raises(ValueError, match="runs on CPU"):
        RerankConfig(backend="openvino", device="cuda")
    for backend in ("openvino", "auto"):
        with pytest.raises(ValueError, match="crossrank quantize --model M --calibration"):
            RerankConfig(backend=backend, quantize="int8")


# -- the trained fixture -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cranfield_pairs():
    data = Path(os.environ.get("CROSSRANK_TEST_DATA", "")) / "cranfield"
    if not (data / "corpus.jsonl").is_file():
        pytest.skip("CROSSRANK_TEST_DATA does not hold cranfield/")
    docs = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()]
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    rng = random.Random(0)
    return [[(q, t) for t in rng.sample(texts, 50)] for q in queries[:3]]


def rank_agreement(fast, exact, k=10):
    from scipy.stats import kendalltau

    top = lambda s: set(np.argsort(-np.asarray(s), kind="stable")[:k])  # noqa: E731
    return float(kendalltau(fast, exact).statistic), len(top(fast) & top(exact)) / k


@pytest.mark.trained_model
def test_trained_model_default_is_exact(trained_model, cranfield_pairs):
    """The default (auto → OpenVINO f32) ranks like `CrossEncoder.predict`, within 1e-4."""
    from sentence_transformers import CrossEncoder

    predict = CrossEncoder(trained_model, device="cpu")
    default = ModelScorer(trained_model)
    bf16 = ModelScorer(trained_model, backend="openvino", dtype="bfloat16")
    assert isinstance(default.runner, OpenVinoRunner)
    for pairs in cranfield_pairs:
        expected = predict.predict(pairs, batch_size=32)
        got = default.score(pairs)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        order = lambda s: list(np.argsort(-np.asarray(s), kind="stable"))  # noqa: E731
        assert order(got) == order(expected)
        tau, overlap = rank_agreement(bf16.score(pairs), expected)
        assert tau >= 0.95 and overlap >= 0.9, (tau, overlap)


def test_the_cli_passes_backend_and_dtype_through(tiny_model, tmp_path, capsys):
    from crossrank.cli import EXIT_CONFIG, main

    source = tmp_path / "candidates.jsonl"
    source.write_text("\n".join(json.dumps({"id": i, "content": d}) for i, d in
                                enumerate(["wing lift", "drag", "heat flow"])))  # fmt: skip
    outputs = {}
    for backend in ("torch", "openvino"):
        code = main(["rerank", "-q", "lift", "-i", str(source), "-m", tiny_model,
                     "--backend", backend, "--dtype", "float32"])  # fmt: skip
        assert code == 0
        outputs[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in outputs["torch"]] == [r["id"] for r in outputs["openvino"]]
    np.testing.assert_allclose(
        [r["score"] for r in outputs["torch"]], [r["score"] for r in outputs["openvino"]], atol=1e-4
    )
    assert main(["rerank", "-q", "lift", "-i", str(source), "--backend", "openvino",
                 "--dtype", "float16"]) == EXIT_CONFIG  # fmt: skip
    assert "float32 or bfloat16" in capsys.readouterr().err


def test_stage_parameters_carry_backend_and_dtype(tiny_model):
    stage = {
        "stage_type": "sort",
        "stage_id": "rerank",
        "parameters": {"inference_name": tiny_model, "backend": "openvino", "dtype": "bfloat16"},
    }
    reranker = Reranker.from_stage(stage)
    assert (reranker.config.backend, reranker.config.dtype) == ("openvino", "bfloat16")
    assert reranker.to_stage() == stage
    assert isinstance(reranker.scorer.runner, OpenVinoRunner)
    assert reranker.scorer.runner.dtype == "bfloat16"
    stage["parameters"]["quantize"] = "int8"
    with pytest.raises(ValueError, match="crossrank quantize"):
        Reranker.from_stage(stage)


@pytest.mark.parametrize("family", ["qwen3-reranker", "bge-reranker-gemma", "mxbai-rerank-v2"])
def test_causal_lm_families_convert_and_match_torch(family, tmp_path):
    """Left-padded, last-token scoring modules convert exactly (traced with eager attention)."""
    from crossrank.testing import build_tiny_causal_reranker

    folder = str(build_tiny_causal_reranker(tmp_path / family, family))
    pairs = make_pairs(6, seed=13)  # different lengths: the batch is left-padded
    expected = ModelScorer(folder, model_family=family, backend="torch").score(pairs)
    scorer = ModelScorer(folder, model_family=family)
    assert isinstance(scorer.runner, OpenVinoRunner)  # it passed auto's self-check
    np.testing.assert_allclose(scorer.score(pairs), expected, rtol=0, atol=1e-4)
