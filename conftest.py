"""Every code block of README.md, of the docs pages (docs/*.md) and of the integrations' READMEs
runs as a test (sybil).

What runs, by the block's language:
- `python`: in a fresh namespace, so a block must define or import everything it uses (a reader
  copies one block, not the page);
- `bash`: with `bash -euo pipefail`, the environment's `bin/` first on PATH (the `crossrank`
  command); files a block writes stay for the next blocks of the same README, as in a terminal;
- `json`: a stage config: `Reranker.from_stage` must read it and `to_stage()` give it back;
- anything else (`text`: sample output) is shown, not run.

`<!-- skip: next "why" -->` just above a block keeps it from running; pytest lists it as
skipped with that reason. It is only for blocks that install software, download from the hub or
need data outside the repository (see README's Development section).

Each README runs in its own temporary working folder, offline, with a temporary Hugging Face
cache in which every hub id in `HUB_MODELS` is a tiny real cross-encoder
(`crossrank.testing.build_tiny_cross_encoder`): `model="BAAI/bge-reranker-v2-m3"` loads as a
user's cached download would. `models/bge-reranker-v2-m3` in the working folder is the folder
README's `hf download` line writes. The scores are meaningless; every code path is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
from sybil import Example, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser, SkipParser

# Hub ids the READMEs' blocks load; a block naming another one fails offline, by design.
HUB_MODELS = ("BAAI/bge-reranker-v2-m3",)
# Folders the READMEs' skipped `hf download` blocks would have written.
DOWNLOADED_FOLDERS = ("models/bge-reranker-v2-m3",)
_SNAPSHOT = "0" * 40  # the commit hash a cache snapshot is filed under

_tiny_model: Path | None = None


def _tiny_model_folder() -> Path:
    """One tiny cross-encoder per test session, built on first use."""
    global _tiny_model
    if _tiny_model is None:
        from crossrank.testing import build_tiny_cross_encoder

        _tiny_model = build_tiny_cross_encoder(Path(tempfile.mkdtemp(prefix="readme-model-")))
    return _tiny_model


def _fill_hub_cache(cache: Path, model: Path) -> None:
    """Lay `model` out in the Hugging Face cache layout under each of HUB_MODELS."""
    for hub_id in HUB_MODELS:
        repo = cache / ("models--" + hub_id.replace("/", "--"))
        shutil.copytree(model, repo / "snapshots" / _SNAPSHOT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(_SNAPSHOT)


def _setup(namespace: dict[str, Any]) -> None:
    from huggingface_hub import constants

    workdir = Path(tempfile.mkdtemp(prefix="readme-"))
    cache = workdir.with_name(workdir.name + "-hf-cache")
    model = _tiny_model_folder()
    _fill_hub_cache(cache, model)
    for folder in DOWNLOADED_FOLDERS:
        shutil.copytree(model, workdir / folder)
    namespace["_readme"] = {
        "workdir": workdir,
        "cache": cache,
        "old_cwd": os.getcwd(),
        "old_cache": constants.HF_HUB_CACHE,
    }
    # huggingface_hub and transformers read this attribute on every lookup.
    constants.HF_HUB_CACHE = str(cache)
    os.chdir(workdir)


def _teardown(namespace: dict[str, Any]) -> None:
    from huggingface_hub import constants

    from crossrank.models import clear_model_cache

    state = namespace["_readme"]
    os.chdir(state["old_cwd"])
    constants.HF_HUB_CACHE = state["old_cache"]
    clear_model_cache()  # later tests must not find the tiny model under a hub id
    shutil.rmtree(state["workdir"], ignore_errors=True)
    shutil.rmtree(state["cache"], ignore_errors=True)


def _run_python(example: Example) -> None:
    source = pad(example.parsed, example.line + example.parsed.line_offset)
    exec(compile(source, example.path, "exec", dont_inherit=True), {"__name__": "__main__"})


# Commands a README block may show but a test must never run: they change the environment or
# reach the network. Such a block needs a skip marker; forgetting it fails here, before running.
_NEVER_RUN = ("pip install", "hf download", "make ")


def _run_bash(example: Example) -> None:
    state = example.namespace["_readme"]
    for command in _NEVER_RUN:
        if command in str(example.parsed):
            raise AssertionError(
                f"{example.path}, line {example.line}: a block running {command.strip()!r} "
                'needs <!-- skip: next "why" --> above it'
            )
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_CACHE"] = str(state["cache"])
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", str(example.parsed)],
        cwd=state["workdir"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{example.path}, line {example.line}: the bash block exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


def _check_stage_json(example: Example) -> None:
    from crossrank import Reranker

    stage = json.loads(str(example.parsed))
    assert Reranker.from_stage(stage).to_stage() == stage, "to_stage() changed the stage"


def _readme_sybil() -> Sybil:
    return Sybil(
        parsers=[
            SkipParser(),
            CodeBlockParser("python", _run_python),
            CodeBlockParser("bash", _run_bash),
            CodeBlockParser("json", _check_stage_json),
        ],
        patterns=["README.md", "docs/*.md"],
        setup=_setup,
        teardown=_teardown,
    )


pytest_collect_file = _readme_sybil().pytest()


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory):
    """Model exports (the default backend converts to OpenVINO) stay in the session's folder."""
    from crossrank.testing import isolated_export_cache

    yield from isolated_export_cache(tmp_path_factory)
