"""Fuzz every endpoint: whatever the body, a 4xx JSON answer (or a correct 200), never a 500,
and the server still scores correctly afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from crossrank import Reranker
from crossrank.config import EngineSettings
from crossrank.server import ServerSettings, build_app

ROUTES = ["/score", "/v1/rerank", "/v2/rerank", "/rerank"]
VALID = {
    "/score": {"pairs": [["a query", "a document"], ["a query", "another one"]]},
    "/v1/rerank": {"query": "a query", "documents": ["a document", {"text": "another one"}]},
    "/v2/rerank": {"model": "m", "query": "a query", "documents": ["a document", "another one"]},
    "/rerank": {"query": "a query", "texts": ["a document", "another one"]},
}


@pytest.fixture(scope="module")
def client(tiny_model):
    app = build_app(EngineSettings(model=tiny_model), ServerSettings())
    app.state.server.load()
    assert app.state.server.state == "ready"
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reference(tiny_model):
    return [
        r.score for r in Reranker(model=tiny_model).rerank("a query", ["a document", "another one"])
    ]


def check_refused(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]


def check_answer(route, response) -> None:
    """A 4xx, or a well-formed 200 (a mutation can leave a body valid)."""
    if response.status_code == 200:
        body = response.json()
        assert isinstance(body, list | dict)
        return
    check_refused(response)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw):
    """A valid body with one field dropped, retyped, or one item replaced."""
    route = draw(st.sampled_from(ROUTES))
    body = json.loads(json.dumps(VALID[route]))
    key = draw(st.sampled_from(sorted(body)))
    action = draw(st.sampled_from(["drop", "retype", "item", "extra"]))
    if action == "drop":
        del body[key]
    elif action == "retype":
        body[key] = draw(json_values)
    elif action == "item" and isinstance(body[key], list):
        body[key][draw(st.integers(0, len(body[key]) - 1))] = draw(json_values)
    else:
        body[draw(st.sampled_from(["top_n", "return_documents", "raw_scores", "truncate"]))] = draw(
            json_values
        )
    return route, body


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(case=mutated())
def test_mutated_bodies(client, case):
    route, body = case
    check_answer(route, client.post(route, json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), body=json_values)
def test_any_json_value(client, route, body):
    check_answer(route, client.post(route, json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), raw=st.binary(max_size=200))
def test_any_bytes(client, route, raw):
    check_answer(route, client.post(route, content=raw))


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_bodies_are_4xx(client, route, reference):
    valid = VALID[route]
    list_key = {"/score": "pairs", "/rerank": "texts"}.get(route, "documents")
    item = valid[list_key][0]
    hostile = [
        b"",
        b"\xff\xfe not utf-8",
        json.dumps(valid).encode()[:-3],  # cut short
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser follows
        ("{" + '"a":' * 50_000 + "1" + "}" * 50_000).encode(),
        b'{"query": ' + b"9" * 5000 + b"}",  # a number too long to read
        json.dumps({**valid, list_key: []}).encode(),  # 0 documents
        json.dumps({**valid, list_key: [item] * 100_000}).encode(),  # 100,000 documents
        json.dumps({**valid, list_key: [[[[[[[[[[item]]]]]]]]]]}).encode(),
        json.dumps(
            {**valid, list_key: ["\ud800"] if route != "/score" else [["q", "\ud800"]]}
        ).encode(),
        json.dumps({**valid, "query": "\udfff"}).encode()
        if route != "/score"
        else b'{"pairs": [["\\udfff", "x"]]}',
        b"null",
        b'"a string"',
        b"1e400",
    ]
    for raw in hostile:
        response = client.post(route, content=raw, headers={"content-type": "application/json"})
        check_refused(response)
    big = client.post(route, json={**valid, list_key: [item] * 100_000})
    assert big.status_code == 413 and "maximum allowed batch size 1000" in big.json()["error"]
    # and it still answers correctly
    answer = client.post("/score", json=VALID["/score"]).json()["scores"]
    assert answer == pytest.approx(reference, abs=1e-6)


def test_wrong_methods_and_routes_are_json_4xx(client):
    for method, path in [
        ("GET", "/score"),
        ("POST", "/health"),
        ("GET", "/nope"),
        ("PUT", "/rerank"),
    ]:
        check_refused(client.request(method, path))


def test_still_correct_after_the_fuzz(client, reference):
    answer = client.post("/score", json=VALID["/score"]).json()["scores"]
    assert answer == pytest.approx(reference, abs=1e-6)


@pytest.mark.parametrize("length", ["9" * 5000, "abc", "-1"])
def test_a_malformed_content_length_is_a_4xx(tiny_model, length):
    import asyncio

    import httpx

    app = build_app(EngineSettings(model=tiny_model))
    app.state.server.state = "ready"  # the check comes before any scoring

    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            request = client.build_request("POST", "/score", content=b"{}")
            request.headers["content-length"] = length
            return await client.send(request)

    assert 400 <= asyncio.run(call()).status_code < 500
