"""What crossrank promises about credentials, remote code and untrusted data.

- The HTTP scorer sends only what the caller configured: the pairs, and an `Authorization`
  header from `api_key` or the environment; the key never appears in `repr`, error messages,
  tracebacks or logs, even when a server echoes it back.
- No `eval`/`exec`, no pickle of data crossrank did not write (checked over the source).
Model-side promises (safetensors only by default, `trust_remote_code` off by default) are
tested in test_model_loading.py.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import traceback
from pathlib import Path

import pytest
from local_server import Reply, ScorerServer, free_port, scripted

import crossrank
from crossrank import (
    CrossrankError,
    HttpScorer,
    RerankConfig,
    Reranker,
    ScorerError,
)
from crossrank.scorers.http import DEFAULT_API_KEY_ENV

SECRET = "sk-test-7Hq2Zr9LwX4c"
QUERY = "q"
DOCS = ["first passage", "second passage", "third passage"]
FAST = {"backoff": 0.01, "max_backoff": 0.05, "max_retries": 1}


def everything_printed(exc: BaseException, *objects) -> str:
    """All a user could see: the message, the full chained traceback, reprs."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text + "".join(repr(o) + str(o) for o in objects)


# -- what is sent ----------------------------------------------------------------------------


def test_only_the_pairs_are_sent_without_a_key(monkeypatch):
    monkeypatch.delenv(DEFAULT_API_KEY_ENV, raising=False)
    with ScorerServer() as server:
        Reranker(scorer=server.url).rerank(QUERY, [{"content": "text", "secret_meta": "x"}])
    (request,) = server.requests
    assert request.body == {"pairs": [[QUERY, "text"]]}  # no other document fields
    assert "authorization" not in {name.lower() for name in request.headers}
    assert "cookie" not in {name.lower() for name in request.headers}


def test_api_key_from_config_is_sent_as_bearer_header():
    with ScorerServer() as server:
        Reranker(scorer=HttpScorer(server.url, api_key=SECRET)).rerank(QUERY, DOCS)
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv(DEFAULT_API_KEY_ENV, SECRET)
    with ScorerServer() as server:
        asyncio.run(Reranker(scorer=server.url).arerank(QUERY, DOCS))
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_api_key_from_a_named_environment_variable(monkeypatch):
    monkeypatch.setenv("MY_RERANK_KEY", SECRET)
    with ScorerServer() as server:
        scorer = HttpScorer(server.url, api_key_env="MY_RERANK_KEY")
        Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_redirects_are_not_followed():
    """A redirect could carry the Authorization header to another host: it is an error."""
    with ScorerServer() as elsewhere:
        moved = Reply(307, b"", headers={"Location": elsewhere.url})
        with ScorerServer(lambda r: moved) as server:
            scorer = HttpScorer(server.url, api_key=SECRET, **FAST)
            with pytest.raises(ScorerError):
                Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert elsewhere.requests == []


# -- the key never shows ----------------------------------------------------------------------


def test_key_not_in_repr():
    scorer = HttpScorer("http://127.0.0.1:9/rerank", api_key=SECRET)
    config = RerankConfig(scorer=scorer)
    for obj in (scorer, Reranker(config), config):
        assert SECRET not in repr(obj) and SECRET not in str(obj)


def _echo_auth(request):
    """A server that puts the header it received in its error page (some proxies do)."""
    return Reply(401, f"invalid credentials: {request.headers.get('Authorization')}")


FAULTS = {
    "401 echoing the header": _echo_auth,
    "503 until retries run out": lambda r: Reply(503, f"busy {r.headers.get('Authorization')}"),
    "malformed JSON": lambda r: Reply(200, b"<html>"),
    "wrong count": lambda r: Reply(200, {"scores": [1.0]}),
    "timeout": lambda r: Reply(delay=3.0),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_key_not_in_errors_or_logs(fault, mode, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    with ScorerServer(FAULTS[fault]) as server:
        scorer = HttpScorer(server.url, api_key=SECRET, timeout=0.3, **FAST)
        rr = Reranker(scorer=scorer)
        with pytest.raises(CrossrankError) as info:
            if mode == "sync":
                rr.rerank(QUERY, DOCS)
            else:
                asyncio.run(rr.arerank(QUERY, DOCS))
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # it was sent
    printed = everything_printed(info.value, scorer, rr)
    assert SECRET not in printed
    assert SECRET not in caplog.text
    if fault.startswith(("401", "503")):
        assert "***" in str(info.value)  # the echoed header was masked, the rest kept


def test_key_not_in_connection_errors(caplog):
    caplog.set_level(logging.DEBUG)
    scorer = HttpScorer(f"http://127.0.0.1:{free_port()}/", api_key=SECRET, **FAST)
    with pytest.raises(CrossrankError) as info:
        Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert SECRET not in everything_printed(info.value, scorer)
    assert SECRET not in caplog.text


def test_custom_header_values_are_masked_too():
    with ScorerServer(lambda r: Reply(403, f"bad key {r.headers.get('X-Api-Key')}")) as server:
        scorer = HttpScorer(server.url, headers={"X-Api-Key": SECRET}, **FAST)
        with pytest.raises(CrossrankError) as info:
            Reranker(scorer=scorer).rerank(QUERY, DOCS)
    assert server.requests[0].headers["X-Api-Key"] == SECRET
    assert SECRET not in everything_printed(info.value, scorer)


def test_credentials_in_the_url_are_refused():
    with pytest.raises(ValueError, match="api_key") as info:
        HttpScorer(f"http://user:{SECRET}@127.0.0.1:9/rerank")
    assert SECRET not in str(info.value)


def test_retried_key_still_sent_on_every_attempt():
    with ScorerServer(scripted(Reply(503, "busy"))) as server:
        Reranker(scorer=HttpScorer(server.url, api_key=SECRET, **FAST)).rerank(QUERY, DOCS)
    assert [r.headers["Authorization"] for r in server.requests] == [f"Bearer {SECRET}"] * 2


# -- no eval, no pickle of untrusted data ------------------------------------------------------

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"}
FORBIDDEN_ATTRIBUTES = {("torch", "load"), ("yaml", "load"), ("yaml", "unsafe_load")}


def _source_files() -> list[Path]:
    root = Path(crossrank.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 5
    return files


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: p.name)
def test_no_eval_or_pickle_in_the_source(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        name = (
            node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""
        )
        if name in FORBIDDEN_CALLS:
            problems.append(f"line {node.lineno}: {name}()")
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        problems += [
            f"line {node.lineno}: import {m}"
            for m in modules
            if m.split(".")[0] in FORBIDDEN_MODULES
        ]
        owner = (
            node.value.id
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            else ""
        )
        if (owner, getattr(node, "attr", "")) in FORBIDDEN_ATTRIBUTES:
            problems.append(f"line {node.lineno}: {owner}.{node.attr}")
        if isinstance(node, ast.keyword) and node.arg == "shell":
            problems.append(f"line {node.lineno}: shell=")
    assert problems == [], f"{path.name}: {problems}"
