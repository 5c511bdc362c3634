"""`crossrank serve`'s flags and variables, derived from EngineSettings and ServerSettings."""

from __future__ import annotations

import argparse
import json

import pytest

from crossrank.cli import serve as command
from crossrank.cli.options import settings_from
from crossrank.errors import ConfigError
from crossrank.server import ServerSettings
from crossrank.server.engine import engine_config


def parse(argv):
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_every_setting_is_a_flag_and_a_variable(monkeypatch, tiny_model, tmp_path):
    monkeypatch.setenv("CROSSRANK_MAX_CLIENT_BATCH_SIZE", "77")
    monkeypatch.setenv("CROSSRANK_BATCH_SIZE", "8")
    stage = tmp_path / "stage.json"
    stage.write_text(
        json.dumps(
            {
                "stage_type": "sort",
                "parameters": {
                    "inference_name": tiny_model,
                    "top_n": 3,
                    "token_budget": 1024,
                    "batch_size": 4,
                },
            }
        )
    )
    args = parse(["--stage", str(stage), "--port", "0", "--num-threads", "1"])
    server = settings_from(args, ServerSettings)
    assert (server.host, server.port, server.max_client_batch_size) == ("127.0.0.1", 0, 77)
    engine = command.engine_settings(args)
    # flag > variable > stage > default
    assert (engine.model, engine.token_budget, engine.num_threads) == (tiny_model, 1024, 1)
    assert engine.batch_size == 8
    assert engine_config(engine).microbatch is True  # on unless set
    assert engine_config(command.engine_settings(parse(["--no-microbatch"]))).microbatch is False


def test_a_bad_value_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="max_concurrent_requests"):
        settings_from(parse(["--max-concurrent-requests", "0"]), ServerSettings, owner="serve")
