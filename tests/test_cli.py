"""The `crossrank` command line, run as a user runs it (a real subprocess where it matters)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from importlib import metadata

import pytest

from crossrank.cli import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SCORER,
    EXIT_USAGE,
    main,
)

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
    assert code == EXIT_SCORER
    assert "could not be reached" in capsys.readouterr().err


def test_nest_keeps_documents_whole_and_collisions_are_refused(tmp_path, tiny_model, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps([{"id": "a", "content": "t", "rerank_position": "mine"}]))
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == EXIT_INPUT
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
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == EXIT_INPUT
    assert "document 1 (id 'bad') has no field 'content'" in capsys.readouterr().err
    source.write_text('{"id": "ok", "content": "x"}\n{not json\n')
    assert main(["rerank", "-q", "q", "-i", str(source), "-m", tiny_model]) == EXIT_INPUT
    assert "line 2: not valid JSON" in capsys.readouterr().err


def test_invalid_settings_are_one_line_errors(tmp_path, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps(CANDIDATES))
    assert main(["rerank", "-q", "q", "-i", str(source), "-k", "0"]) == EXIT_CONFIG
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


def test_no_query_asks_for_the_query_option(tmp_path, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps(CANDIDATES))
    assert main(["rerank", "-i", str(source)]) == EXIT_USAGE  # a missing flag
    err = capsys.readouterr().err
    assert "--query" in err and "rerank()" not in err


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
    assert result.returncode == EXIT_MODEL
    assert "Traceback" not in result.stderr
    assert "could not be loaded" in result.stderr
    assert "CROSSRANK_MODEL" in result.stderr


def test_demo_reranks_the_sample(tiny_model):
    result = run_cli(["demo"], env_extra={"CROSSRANK_MODEL": tiny_model})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("judged relevant in top 3") == 6  # 5 queries and the total


def test_demo_reports_truncation_once_in_its_own_words(tiny_model_short, capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        assert main(["demo", "--model", tiny_model_short]) == 0
    assert not caplog.records  # no per-query warning suggesting a setting demo cannot take
    out = capsys.readouterr().out
    [note] = [line for line in out.splitlines() if "candidates were longer" in line]
    assert "32-token limit" in note and " of 50 candidates" in note
    assert "crossrank demo --long-documents chunk" in note


def test_demo_takes_the_setting_it_suggests(tiny_model, capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        assert main(["demo", "--model", tiny_model, "--long-documents", "chunk"]) == 0
    assert not caplog.records
    assert "--long-documents chunk" not in capsys.readouterr().out  # nothing left to suggest


@pytest.mark.trained_model
def test_demo_on_the_trained_model(trained_model):
    result = run_cli(["demo", "--model", trained_model])
    assert result.returncode == 0, result.stderr
    assert "query 100" in result.stdout


# -- hostile or odd input: one line naming the input line and field -----------------------------


@pytest.fixture
def endpoint():
    from local_server import ScorerServer

    with ScorerServer() as server:
        yield server.url


def test_one_line_of_json_lines_is_one_document(endpoint):
    result = run_cli(["rerank", "-q", "x", "--scorer", endpoint], stdin_text='{"content": "x"}\n')
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["content"] == "x" and row["rerank_position"] == 0


BAD_INPUTS = {
    "binary": (b'{"content": "ok"}\n\x89PNG\r\n\x1a\n\x00\xff', "line 2", "not UTF-8"),
    "deep json": (
        b'{"content": "ok"}\n' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        "line 2",
        "nested too deeply",
    ),
    "huge number": (b'{"content": "ok", "n": ' + b"7" * 5000 + b"}\n", "line 1", "number too long"),
    "lone surrogate": (
        b'{"content": "ok"}\n{"content": "ok", "meta": {"title": "\\ud800"}}\n',
        "line 2",
        "'meta.title'",
    ),
    "lone surrogate in a list": (
        b'[{"content": "ok", "tags": ["a", "\\udfff"]}]',
        "document 0",
        "'tags[1]'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_unreadable_input_is_one_line_naming_line_and_field(case, tmp_path, endpoint, capsys):
    data, line, words = BAD_INPUTS[case]
    source = tmp_path / "candidates.jsonl"
    source.write_bytes(data)
    assert main(["rerank", "-q", "x", "-i", str(source), "--scorer", endpoint]) == EXIT_INPUT
    out, err = capsys.readouterr()
    (message,) = err.strip().splitlines()
    assert line in message and words in message and str(source) in message
    assert out == ""


def test_nan_and_infinity_previous_scores_are_written_as_null(endpoint, tmp_path, capsys):
    lines = [
        '{"id": "a", "content": "first", "score": NaN}',
        '{"id": "b", "content": "second", "score": Infinity, "extra": {"x": -Infinity}}',
        '{"id": "c", "content": "third", "score": 1.5}',
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(lines))
    assert main(["rerank", "-q", "x", "-i", str(tmp_path / "c.jsonl"), "--scorer", endpoint]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        row = json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} written"))
        rows[row["document_id"]] = row
    assert rows["a"]["original_score"] is None and rows["b"]["original_score"] is None
    assert rows["b"]["extra"] == {"x": None}
    assert rows["c"]["original_score"] == 1.5


def test_a_closed_stdout_ends_quietly(endpoint):
    """`crossrank rerank ... | head -1`: the reader goes away after one line; no 'Broken
    pipe', no traceback. The output (about 1 MB) is far larger than a pipe's buffer."""
    docs = "\n".join(
        json.dumps({"id": i, "content": f"passage {i} " + "x" * 1200}) for i in range(900)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "crossrank.cli", "rerank", "-q", "x", "--scorer", endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(docs.encode())
    process.stdin.close()
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    err = process.stderr.read().decode()
    code = process.wait(timeout=300)
    assert json.loads(first)["rerank_position"] == 0
    assert err == ""
    assert code == EXIT_PIPE


def test_exit_codes_tell_failures_apart(tmp_path, endpoint, capsys):
    source = tmp_path / "c.json"
    source.write_text(json.dumps(CANDIDATES))
    base = ["rerank", "-q", "q", "-i", str(source)]
    assert main([*base, "--scorer", endpoint]) == EXIT_OK
    assert main([*base, "--scorer", "http://127.0.0.1:9/down"]) == EXIT_SCORER
    assert main([*base, "--model", str(tmp_path / "no-such-model")]) == EXIT_MODEL
    assert main([*base, "--scorer", endpoint, "--device", "tpu"]) == EXIT_CONFIG
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    assert (
        main(["rerank", "-q", "q", "-i", str(tmp_path / "bad.jsonl"), "--scorer", endpoint])
        == EXIT_INPUT
    )
    assert (
        main(["rerank", "-q", "q", "-i", str(tmp_path / "absent.json"), "--scorer", endpoint])
        == EXIT_INPUT
    )
    with pytest.raises(SystemExit) as usage:
        main(["rerank", "--no-such-flag"])
    assert usage.value.code == EXIT_USAGE
    codes = [EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_CONFIG, EXIT_MODEL, EXIT_SCORER, EXIT_PIPE]
    assert len(set(codes)) == len(codes)
    assert "exit codes" in run_cli(["rerank", "--help"]).stdout
