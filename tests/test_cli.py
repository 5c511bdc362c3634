"""The `crossrank` command line, run as a user runs it (a real subprocess where it matters)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from crossrank.cli import main

CANDIDATES = [
    {"id": "d1", "content": "short", "score": 1.5, "tag": "x"},
    {"id": "d2", "content": "a much longer candidate text", "score": 0.5},
    {"id": "d3", "content": "mid length text", "score": 1.0},
]


def run_cli(args, stdin_text=None, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "crossrank.cli", *args],
        input=stdin_text,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_rerank_reads_jsonl_and_writes_ranked_jsonl_with_contract_fields(tiny_model, tmp_path):
    source = tmp_path / "candidates.jsonl"
    source.write_text("\n".join(json.dumps(c) for c in CANDIDATES) + "\n")
    out = tmp_path / "ranked.jsonl"
    code = main(
        [
            "rerank",
            "-q",
            "what is short",
            "-i",
            str(source),
            "-o",
            str(out),
            "-m",
            tiny_model,
            "-k",
            "2",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    assert [r["rerank_position"] for r in rows] == [0, 1]
    assert rows[0]["score"] >= rows[1]["score"]
    by_id = {c["id"]: c for c in CANDIDATES}
    for row in rows:
        original = by_id[row["document_id"]]
        assert row["original_score"] == original["score"]
        for key, value in original.items():  # nothing the caller had is lost
            if key != "score":
                assert row[key] == value


def test_rerank_reads_a_json_list_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(CANDIDATES)))
    code = main(["rerank", "-q", "q", "--scorer", "http://127.0.0.1:9/unused", "-k", "1"])
    # The endpoint is unreachable: a clear one-line error, not a traceback.
    assert code == 1
    assert "could not be reached" in capsys.readouterr().err


def test_nest_keeps_documents_whole_and_collisions_are_refused(tmp_path, tiny_model, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps([{"id": "a", "content": "t", "rerank_position": "mine"}]))
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == 1
    assert "already has a field 'rerank_position'" in capsys.readouterr().err
    out = tmp_path / "o.jsonl"
    assert (
        main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model, "--nest", "-o", str(out)])
        == 0
    )
    row = json.loads(out.read_text())
    assert row["document"] == {"id": "a", "content": "t", "rerank_position": "mine"}
    assert row["rerank_position"] == 0


def test_bad_documents_and_bad_json_are_named(tmp_path, tiny_model, capsys):
    source = tmp_path / "c.jsonl"
    source.write_text('{"id": "ok", "content": "x"}\n{"id": "bad", "body": "y"}\n')
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == 1
    assert "document 1 (id 'bad') has no field 'content'" in capsys.readouterr().err
    source.write_text('{"id": "ok", "content": "x"}\n{not json\n')
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == 1
    assert "line 2: not valid JSON" in capsys.readouterr().err


def test_invalid_settings_are_one_line_errors(tmp_path, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps(CANDIDATES))
    assert main(["rerank", "-q", "q", "-i", str(source), "-k", "0"]) == 1
    assert "top_k" in capsys.readouterr().err


def test_help_explains_every_option():
    result = run_cli(["rerank", "--help"])
    assert result.returncode == 0
    for option in [
        "--query",
        "--input",
        "--top-k",
        "--model",
        "--scorer",
        "--document-field",
        "--original-score-field",
        "--batch-size",
        "--max-length",
        "--device",
        "--nest",
    ]:
        assert option in result.stdout
    assert "0-based" in result.stdout


def test_version_names_the_installed_package(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"crossrank {metadata.version('crossrank')}"


def test_rerank_from_stdin_in_a_real_process(tiny_model):
    result = run_cli(
        ["rerank", "-q", "q", "-m", tiny_model, "--document-field", "content"],
        stdin_text="\n".join(json.dumps(c) for c in CANDIDATES),
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["document_id"] for r in rows) == ["d1", "d2", "d3"]


def test_demo_with_an_unreachable_model_gives_one_clear_message(tmp_path):
    result = run_cli(
        ["demo"],
        env_extra={
            "CROSSRANK_MODEL": "BAAI/bge-reranker-v2-m3",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "hf"),
        },
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "could not be loaded" in result.stderr
    assert "CROSSRANK_MODEL" in result.stderr


def test_demo_reranks_the_sample(tiny_model):
    result = run_cli(["demo"], env_extra={"CROSSRANK_MODEL": tiny_model})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("judged relevant in top 3") == 6  # 5 queries and the total


@pytest.mark.trained_model
def test_demo_on_the_trained_model(trained_model):
    result = run_cli(["demo", "--model", trained_model])
    assert result.returncode == 0, result.stderr
    assert "query 100" in result.stdout
