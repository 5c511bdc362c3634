"""Issue 12: `crossrank quantize`, calibrated int8 on OpenVINO, end to end through the CLI.

A tiny model is calibrated on a small pairs file and on a small BEIR folder; the folder it
writes loads with `model=` and runs its int8 IR; the fidelity report is printed and saved
beside the folder; int8 without calibration is refused with a pointer to the command.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from crossrank import RerankConfig, Reranker
from crossrank.cli import EXIT_CONFIG, EXIT_INPUT, main
from crossrank.models import ModelScorer, clear_model_cache
from crossrank.models.quantized import QUANTIZED_IR, QUANTIZED_MARKER
from crossrank.models.runtimes.openvino import OpenVinoRunner

pytest.importorskip("openvino")
pytest.importorskip("nncf")

WORDS = ["wing", "lift", "drag", "flow", "boundary", "layer", "shock", "heat", "plate", "mach"]
REPORT_FIELDS = {"kendall_tau_mean", "top10_overlap_mean", "max_abs_diff", "mean_abs_diff"}


@pytest.fixture(autouse=True)
def _fresh_models():
    clear_model_cache()
    yield
    clear_model_cache()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("calibration") / "pairs.jsonl"
    with path.open("w") as f:
        for q in range(8):
            query = f"query {q} {text(rng, 3)}"
            for _ in range(12):
                row = {"query": query, "document": text(rng, rng.randint(3, 40))}
                f.write(json.dumps(row if q % 2 else [row["query"], row["document"]]) + "\n")
    return path


@pytest.fixture(scope="module")
def quantized(tiny_model, calibration_file, tmp_path_factory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["quantize", "--model", tiny_model, "--calibration", str(calibration_file),
                     "--out", str(out)])  # fmt: skip
    assert code == 0
    return out, stdout.getvalue()


def test_quantize_writes_a_folder_that_model_loads(quantized, tiny_model):
    out, printed = quantized
    assert (out / QUANTIZED_IR).is_file() and (out / "tokenizer.json").is_file()
    marker = json.loads((out / QUANTIZED_MARKER).read_text())
    assert marker["source_model"] == tiny_model and marker["quantize"] == "int8"
    report = json.loads(out.with_name("tiny-int8.fidelity.json").read_text())
    fidelity = report["fidelity_vs_float32"]
    assert set(fidelity) >= REPORT_FIELDS and fidelity == marker["fidelity"]
    assert fidelity["queries"] >= 1 and fidelity["pairs"] >= 10
    assert -1 <= fidelity["kendall_tau_mean"] <= 1 and 0 <= fidelity["top10_overlap_mean"] <= 1
    assert "Kendall tau" in printed and "held apart" in printed

    reranker = Reranker(model=str(out))  # backend auto: the folder's int8 IR
    runner = reranker.scorer.runner
    assert isinstance(runner, OpenVinoRunner) and runner.path == out / QUANTIZED_IR
    rng = random.Random(5)
    docs = [text(rng, rng.randint(2, 30)) for _ in range(20)]
    ranked = reranker.rerank("wing lift", docs)
    float32 = ModelScorer(tiny_model, backend="torch").score([("wing lift", d) for d in docs])
    got = [r.score for r in sorted(ranked, key=lambda r: r.index)]
    # int8 of a random tiny model is lossy, but it is the same model, not another one
    assert np.corrcoef(got, float32)[0, 1] > 0.5
    assert max(abs(a - b) for a, b in zip(got, float32, strict=True)) < 0.2
    assert Reranker(model=str(out), quantize="int8").rerank("wing", docs[:3])


def test_a_quantized_folder_is_refused_where_it_cannot_run(quantized):
    out, _ = quantized
    for backend in ("torch", "onnx"):
        with pytest.raises(ValueError, match="int8 OpenVINO model folder"):
            RerankConfig(model=str(out), backend=backend)
    with pytest.raises(ValueError, match="int8 OpenVINO model folder runs on CPU"):
        RerankConfig(model=str(out), device="cuda")


def test_quantize_on_a_beir_folder(tiny_model, tmp_path, capsys):
    rng = random.Random(1)
    beir = tmp_path / "beir"
    beir.mkdir()
    with (beir / "corpus.jsonl").open("w") as f:
        for d in range(40):
            f.write(json.dumps({"_id": f"d{d}", "title": text(rng, 2), "text": text(rng, 20)}))
            f.write("\n")
    with (beir / "queries.jsonl").open("w") as f:
        for q in range(10):
            f.write(json.dumps({"_id": f"q{q}", "text": text(rng, 4)}) + "\n")
    with (beir / "qrels.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in range(10):
            for d in rng.sample(range(40), 3):
                f.write(f"q{q}\td{d}\t{rng.choice([-1, 1, 2])}\n")
    out = tmp_path / "int8"
    code = main(["quantize", "--model", tiny_model, "--calibration", str(beir),
                 "--out", str(out), "--eval-queries", "3"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "int8.fidelity.json").read_text())
    assert report["fidelity_vs_float32"]["queries"] == 3
    assert report["pairs"] > 0
    assert len(Reranker(model=str(out)).rerank("lift", ["wing lift", "drag"])) == 2


def test_quantize_refuses_bad_calibration_and_an_existing_folder(tiny_model, tmp_path, capsys):
    one_query = tmp_path / "one.jsonl"
    one_query.write_text('{"query": "q", "document": "a"}\n{"query": "q", "document": "b"}\n')
    out = tmp_path / "out"
    assert main(["quantize", "--model", tiny_model, "--calibration", str(one_query),
                 "--out", str(out)]) == EXIT_INPUT  # fmt: skip
    assert "at least 2 different queries" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "q"}\n')
    assert main(["quantize", "--model", tiny_model, "--calibration", str(broken),
                 "--out", str(out)]) == EXIT_INPUT  # fmt: skip
    assert "line 1" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    assert main(["quantize", "--model", tiny_model, "--calibration", str(one_query),
                 "--out", str(tmp_path / "taken")]) == EXIT_CONFIG  # fmt: skip
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "taken" / "file").read_text() == "mine"
    assert not out.exists()


def test_int8_without_calibration_points_at_crossrank_quantize(tiny_model):
    with pytest.raises(ValueError) as info:
        Reranker(model=tiny_model, backend="openvino", quantize="int8")
    message = str(info.value)
    assert "crossrank quantize --model M --calibration DATA --out FOLDER" in message
