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
import json
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_server import Reply, ScorerServer, free_port, hash_scorer, scripted

import crossrank
from crossrank import (
    ConfigError,
    CrossrankError,
    DocumentError,
    HttpScorer,
    QueryError,
    RerankConfig,
    Reranker,
    ScorerError,
    ScorerUnavailableError,
)
from crossrank.cli import main as cli_main
from crossrank.scorers import TeiScorer
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


# -- a hostile stage config cannot read the process's secrets ----------------------------------

ENV_SECRET = "env-secret-Qw3rTy9UiOp"


@dataclass
class Page:
    """An attribute document, like a LangChain Document or a pydantic model."""

    content: str
    metadata: dict

    def summary(self) -> str:
        return self.content[:10]

    @property
    def _private(self) -> str:
        return ENV_SECRET


ESCAPES = [
    "__init__.__globals__.sys.modules.os.environ.CROSSRANK_TEST_SECRET",
    "__class__.__init__.__globals__.os.environ.CROSSRANK_TEST_SECRET",
    "__dict__.content",
    "_private",
    "summary",  # a method: callable, not data
    "metadata.get",  # a mapping is indexed by key only, so this is the key 'get' (absent)
    "content.upper",
    "metadata.module.environ.CROSSRANK_TEST_SECRET",  # a module object inside the data
    "metadata.cls.__name__",
    "metadata.fn.__globals__",
]


def _page() -> Page:
    import os

    return Page("readable text", {"module": os, "cls": Page, "fn": _page, "_source": "es"})


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", ESCAPES)
def test_dotted_paths_reach_data_only(path, mode, monkeypatch):
    monkeypatch.setenv("CROSSRANK_TEST_SECRET", ENV_SECRET)
    with ScorerServer() as server:
        rr = Reranker(scorer=server.url, document_field=path)
        with pytest.raises(DocumentError) as info:
            if mode == "sync":
                rr.rerank(QUERY, [_page()])
            else:
                asyncio.run(rr.arerank(QUERY, [_page()]))
    assert server.requests == []  # nothing was sent anywhere
    assert ENV_SECRET not in everything_printed(info.value)
    assert info.value.field == path and "has no field" in str(info.value)


def test_mapping_keys_with_underscores_are_data():
    """`_source.text` (Elasticsearch hits) and `_id` keys are mapping keys, not attributes."""
    docs = [{"_id": "a", "_source": {"text": "first"}}, {"_id": "b", "_source": {"text": "2nd"}}]
    ranked = Reranker(scorer=hash_scorer, document_field="_source.text").rerank(QUERY, docs)
    assert sorted(r.document_id for r in ranked) == ["a", "b"]


def test_previous_score_paths_reach_data_only():
    rr = Reranker(scorer=hash_scorer, original_score_field="__class__.__name__")
    (ranked,) = rr.rerank(QUERY, [_page()])
    assert ranked.original_score is None  # a path out of the data reads as no score


@pytest.mark.parametrize(
    "template, inputs",
    [
        ("{{INPUT.q.__class__.__name__}}", {"q": "text"}),
        ("{{INPUT.q.upper}}", {"q": "text"}),
        ("{{INPUT.os.environ.CROSSRANK_TEST_SECRET}}", {"os": __import__("os")}),
        ("{{INPUT.page._private}}", {"page": Page("x", {})}),
    ],
)
def test_query_templates_reach_data_only(template, inputs, monkeypatch):
    monkeypatch.setenv("CROSSRANK_TEST_SECRET", ENV_SECRET)
    stage = {
        "stage_type": "sort",
        "parameters": {"query": template, "feature_uri": "http://127.0.0.1:9/"},
    }
    rr = Reranker.from_stage(stage)
    for call in (
        lambda: rr.rerank(inputs=inputs, documents=DOCS),
        lambda: asyncio.run(rr.arerank(inputs=inputs, documents=DOCS)),
    ):
        with pytest.raises(QueryError) as info:
            call()
        assert ENV_SECRET not in everything_printed(info.value)


@pytest.mark.parametrize(
    "name", ["AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "HOME", "crossrank_x_api_key", ""]
)
def test_a_stage_from_json_names_only_crossrank_key_variables(name):
    stage = {
        "stage_type": "sort",
        "parameters": {"feature_uri": "http://127.0.0.1:9/", "scorer_api_key_env": name},
    }
    with pytest.raises(ConfigError, match="CROSSRANK_"):
        Reranker.from_stage(stage)
    with pytest.raises(ConfigError, match="CROSSRANK_"):
        Reranker.from_stage(json.dumps(stage))
    config = RerankConfig(scorer="http://127.0.0.1:9/", scorer_api_key_env=name)
    with pytest.raises(ConfigError, match="CROSSRANK_"):
        Reranker.from_json(config.model_dump_json())


def test_a_stage_may_name_a_crossrank_key_variable_and_code_any(monkeypatch):
    monkeypatch.setenv("CROSSRANK_RERANK_API_KEY", SECRET)
    monkeypatch.setenv("MY_OWN_KEY", SECRET + "2")
    with ScorerServer() as server:
        stage = {
            "stage_type": "sort",
            "parameters": {
                "feature_uri": server.url,
                "scorer_api_key_env": "CROSSRANK_RERANK_API_KEY",
            },
        }
        Reranker.from_stage(stage).rerank(QUERY, DOCS)
        Reranker(scorer=server.url, scorer_api_key_env="MY_OWN_KEY").rerank(QUERY, DOCS)
    assert [r.headers["Authorization"] for r in server.requests] == [
        f"Bearer {SECRET}",
        f"Bearer {SECRET}2",
    ]


def test_the_command_line_may_name_any_key_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MY_OWN_KEY", SECRET)
    (tmp_path / "docs.json").write_text(json.dumps(DOCS))
    with ScorerServer() as server:
        argv = ["rerank", "-q", QUERY, "-i", str(tmp_path / "docs.json"), "--scorer", server.url]
        assert cli_main([*argv, "--scorer-api-key-env", "MY_OWN_KEY"]) == 0
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in capsys.readouterr().out


# -- the key never leaks, whatever the server echoes and however it is rendered ----------------

ODD_KEY = "Zq9\\Xw7\"Lm'4Kp2Vb8-nR6"  # a backslash and quotes: escaped differently by repr and JSON


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every `size`-character piece of every way `secret` may be written."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], repr(repr(secret))[1:-1]}
    return {f[i : i + size] for f in forms for i in range(len(f) - size + 1)}


def echo(where: str):
    """A server that puts the Authorization header it got somewhere in its answer."""

    def behaviour(request):
        auth = request.headers.get("Authorization", "")
        n = len(request.pairs)
        bodies = {
            "score": {"scores": [auth] * n},
            "key": {auth: [0.5] * n},
            "nested": {"scores": [[auth]] * n},
            "across the cut": Reply(500, "x" * 190 + auth + " trailing"),
            "escaped json": Reply(503, json.dumps({"error": auth})),
            "repr": Reply(400, repr({"auth": auth})),
        }
        body = bodies[where]
        return body if isinstance(body, Reply) else Reply(200, body)

    return behaviour


def tei_echo(request):
    auth = request.headers.get("Authorization", "")
    texts = request.body["texts"]
    return Reply(200, [{"index": i, "score": auth} for i in range(len(texts))])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("key", [SECRET, ODD_KEY], ids=["plain", "backslash-and-quotes"])
@pytest.mark.parametrize(
    "where", ["score", "key", "nested", "across the cut", "escaped json", "repr", "tei"]
)
def test_an_echoed_key_is_masked_in_every_rendering(where, key, mode, caplog):
    caplog.set_level(logging.DEBUG)
    behaviour = tei_echo if where == "tei" else echo(where)
    with ScorerServer(behaviour) as server:
        cls = TeiScorer if where == "tei" else HttpScorer
        scorer = cls(server.url, api_key=key, **FAST)
        rr = Reranker(scorer=scorer)
        with pytest.raises(ScorerError) as info:
            if mode == "sync":
                rr.rerank(QUERY, DOCS)
            else:
                asyncio.run(rr.arerank(QUERY, DOCS))
    assert server.requests[0].headers["Authorization"] == f"Bearer {key}"  # it was sent
    printed = everything_printed(info.value, scorer, rr) + caplog.text
    leaked = [piece for piece in fragments(key) if piece in printed]
    assert leaked == [], printed
    assert "***" in str(info.value)


@pytest.mark.parametrize("raw", [SECRET + "\n", "  " + SECRET + "\r\n", "\t" + SECRET])
def test_a_key_read_with_surrounding_whitespace_is_stripped(raw, monkeypatch):
    """As read from a secrets file; httpx would raise with the key in its message and log."""
    monkeypatch.setenv(DEFAULT_API_KEY_ENV, raw)
    with ScorerServer() as server:
        Reranker(scorer=server.url).rerank(QUERY, DOCS)
        asyncio.run(Reranker(scorer=HttpScorer(server.url, api_key=raw)).arerank(QUERY, DOCS))
    assert [r.headers["Authorization"] for r in server.requests] == [f"Bearer {SECRET}"] * 2


@pytest.mark.parametrize(
    "bad", ["sk-a b-c1234", "sk-a\nb-c1234", "sk-\x01abc1234", "sk-é-abc1234", "sk-\x7fabcd"]
)
def test_a_key_with_whitespace_or_control_characters_inside_is_refused_before_any_request(
    bad, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(DEFAULT_API_KEY_ENV, bad)
    with ScorerServer() as server:
        for call in (
            lambda: Reranker(scorer=server.url).rerank(QUERY, DOCS),
            lambda: asyncio.run(Reranker(scorer=server.url).arerank(QUERY, DOCS)),
            lambda: HttpScorer(server.url, api_key=bad),
        ):
            with pytest.raises(ConfigError, match="API key from") as info:
                call()
            for piece in ("sk-a", "b-c1234", "abc1234", "abcd"):
                assert piece not in everything_printed(info.value) + caplog.text
    assert server.requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_local_protocol_error_is_not_retried(mode):
    """An illegal header name fails in httpx before anything is sent, every time: retrying
    it would only repeat it."""
    with ScorerServer() as server:
        scorer = HttpScorer(server.url, headers={"Bad Name": "v"}, **{**FAST, "max_retries": 3})
        with pytest.raises(ScorerUnavailableError, match=r"after 1 attempt.*LocalProtocolError"):
            if mode == "sync":
                Reranker(scorer=scorer).rerank(QUERY, DOCS)
            else:
                asyncio.run(Reranker(scorer=scorer).arerank(QUERY, DOCS))
    assert server.requests == []


# -- credentials in URLs are refused when the config is built ---------------------------------

URL_SECRETS = [
    ("http://alice:{s}@127.0.0.1:9/score", ["alice"]),
    ("http://{s}@127.0.0.1:9/score", []),
    ("https://{s}:@127.0.0.1/score", []),
    ("tei+http://{s}@127.0.0.1:8080", []),
    ("cohere+https://bob:{s}@127.0.0.1/v1/rerank", ["bob"]),
    ("http://{s}%40@127.0.0.1/score", []),
]


@pytest.mark.parametrize("template, names", URL_SECRETS)
def test_credentials_in_a_scorer_url_are_refused_at_config_time(template, names):
    url = template.format(s=SECRET)
    stage = {"stage_type": "sort", "parameters": {"feature_uri": url}}
    for build in (
        lambda: Reranker(scorer=url),
        lambda: RerankConfig(scorer=url),
        lambda: Reranker.from_stage(stage),
        lambda: HttpScorer(url.split("+")[-1]),
    ):
        with pytest.raises(ValueError, match="credentials") as info:
            build()
        printed = everything_printed(info.value)
        assert SECRET not in printed
        assert all(name not in printed for name in names)
