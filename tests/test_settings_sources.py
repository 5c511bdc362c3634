"""Settings flags and CROSSRANK_* variables come from the settings models, with one precedence."""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path

import pytest

from crossrank.cli import EXIT_CONFIG, build_parser, main
from crossrank.cli.options import add_settings_arguments, env_table, settings_from
from crossrank.config import EngineSettings, RerankConfig
from crossrank.errors import ConfigError


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _parse(model, argv, **kwargs):
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, model, **kwargs)
    return parser.parse_args(argv)


@pytest.mark.parametrize("command", ["rerank", "eval"])
def test_every_engine_setting_is_a_flag(command):
    dests = {a.dest for a in _subparser(command)._actions}
    missing = set(EngineSettings.model_fields) - dests
    assert not missing, f"EngineSettings fields without a `crossrank {command}` flag: {missing}"


def test_every_engine_setting_derives_a_flag():
    args = _parse(EngineSettings, [])
    assert vars(args).keys() == {"_crossrank_settings"}  # nothing given, nothing set
    parser = argparse.ArgumentParser()
    assert set(add_settings_arguments(parser, EngineSettings)) == set(EngineSettings.model_fields)


def test_env_var_is_read_and_a_flag_beats_it():
    env = {"CROSSRANK_BATCH_SIZE": "7", "CROSSRANK_MICROBATCH": "true"}
    s = settings_from(_parse(EngineSettings, []), EngineSettings, env=env)
    assert (s.batch_size, s.microbatch) == (7, True)
    s = settings_from(
        _parse(EngineSettings, ["--batch-size", "9", "--no-microbatch"]), EngineSettings, env=env
    )
    assert (s.batch_size, s.microbatch) == (9, False)
    assert settings_from(_parse(EngineSettings, []), EngineSettings, env={}).batch_size == 32


def test_env_beats_stage_and_flag_beats_stage():
    stage = {"batch_size": 3, "max_length": 64}
    args = _parse(EngineSettings, ["--max-length", "128"])
    s = settings_from(args, EngineSettings, env={"CROSSRANK_BATCH_SIZE": "5"}, base=stage)
    assert (s.batch_size, s.max_length) == (5, 128)
    s = settings_from(_parse(EngineSettings, []), EngineSettings, env={}, base=stage)
    assert (s.batch_size, s.max_length) == (3, 64)


@pytest.mark.parametrize("value", ["lots", "0", "true"])
def test_bad_env_value_is_a_config_error_naming_the_variable(value):
    with pytest.raises(ConfigError, match="CROSSRANK_BATCH_SIZE"):
        settings_from(
            _parse(EngineSettings, []), EngineSettings, env={"CROSSRANK_BATCH_SIZE": value}
        )


def test_bad_env_value_exits_with_the_config_code(monkeypatch, tmp_path, capsys):
    source = tmp_path / "c.jsonl"
    source.write_text('{"content": "a"}\n')
    monkeypatch.setenv("CROSSRANK_DTYPE", "float8")
    assert main(["rerank", "-q", "q", "-i", str(source)]) == EXIT_CONFIG
    assert "CROSSRANK_DTYPE" in capsys.readouterr().err


def test_flag_beats_the_stage_file_in_the_command(tmp_path, tiny_model, capsys):
    stage = tmp_path / "stage.json"
    stage.write_text(
        json.dumps({"stage_type": "sort", "parameters": {"model": tiny_model, "top_n": 1}})
    )
    source = tmp_path / "c.jsonl"
    source.write_text("".join(json.dumps({"content": t}) + "\n" for t in "abc"))
    assert main(["rerank", "-q", "q", "-i", str(source), "--stage", str(stage)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["rerank", "-q", "q", "-i", str(source), "--stage", str(stage), "-k", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_literal_choices_come_from_the_model():
    action = next(a for a in _subparser("rerank")._actions if a.dest == "long_documents")
    expected = typing.get_args(EngineSettings.model_fields["long_documents"].annotation)
    assert tuple(action.metavar.strip("{}").split(",")) == expected
    with pytest.raises(SystemExit):
        _parse(EngineSettings, ["--long-documents", "summarise"])


def test_help_shows_the_field_descriptions(capsys):
    with pytest.raises(SystemExit):
        main(["rerank", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("max_chunks_per_document", "on_unreadable"):
        description = EngineSettings.model_fields[name].description
        assert " ".join(description.split())[:40] in out


def test_docs_table_is_the_generated_one():
    page = (Path(__file__).parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert env_table(RerankConfig, exclude=("query",)) in page
