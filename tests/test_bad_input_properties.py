"""Bad input, property-based: for any documents, either a clear error that names the field and
the document, or a correct result, and the caller's documents are never changed.

Documents are generated together with what a correct reader must find in them (`Case`), so
every example has an exact expected outcome:

- some document's text is missing, not a string, empty or invisible-only, or not valid
  Unicode -> `DocumentError` naming the *first* such document (index and id) and the field;
- otherwise -> exactly `min(top_k, N)` results, each input document at most once, the right
  ids, scores and original scores, best first with ties in input order;
- in both cases the inputs are unchanged (`repr` of a deep copy, and object identity).

The text policy tested here is the documented one: empty, whitespace-only or invisible-only
text (whitespace, control, format characters, separators, and every default-ignorable code
point of the Unicode tables: joiners, variation selectors, tag characters, fillers) is a
`DocumentError`, and such a query a `QueryError`.

Hostile inputs get their own strategies: ids that are 4300+-digit ints (whose `repr` raises),
documents whose attributes reach the interpreter (`__class__`, `__init__.__globals__`, bound
methods, modules), and template inputs that are huge ints.

Most examples use a deterministic hash scorer; smaller runs go through the tiny real model
(real tokenisation of odd unicode) and a real local HTTP endpoint (JSON round trip).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import sys
import unicodedata
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from local_server import ScorerServer, hash_score, hash_scorer
from pydantic import ValidationError

from crossrank import DocumentError, QueryError, RerankConfig, Reranker

_DI = regex.compile(r"\p{Default_Ignorable_Code_Point}")
# Every default-ignorable code point, from the Unicode tables (about 4,000, most unassigned).
DEFAULT_IGNORABLE = "".join(c for c in map(chr, range(0x110000)) if _DI.match(c))

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- text --------------------------------------------------------------------------------------

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
DIRECTION = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROL = "".join(map(chr, range(32))) + "\x7f\x85"
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2003\u2028\u2029\u202f\u3000"
RTL = "שלום עולם مرحبا بالعالم"
EMOJI = "🙂👍🏽👨‍👩‍👧‍👦🏳️‍🌈🇯🇵🔥"

any_char = st.characters(codec=None, exclude_categories=[])  # every plane, surrogates too
ignorable_char = st.sampled_from(DEFAULT_IGNORABLE)
odd_char = st.one_of(
    st.sampled_from(ZERO_WIDTH + DIRECTION + CONTROL + WHITESPACE + RTL + EMOJI), ignorable_char
)
texts = st.one_of(
    st.text(any_char, max_size=40),
    st.text(st.one_of(any_char, odd_char), max_size=40),
    st.text(odd_char, max_size=20),
    st.text(st.sampled_from(ZERO_WIDTH + DIRECTION + CONTROL + WHITESPACE), max_size=10),
    st.text(st.one_of(ignorable_char, st.sampled_from(WHITESPACE)), max_size=10),
    st.just(""),
    st.sampled_from(["plain text", "Ünïcödé façade", "日本語のテキスト", RTL, EMOJI]),
    st.builds(lambda s, n: s * n, st.text(any_char, min_size=1, max_size=5), st.integers(1, 4000)),
)
valid_char = st.characters(codec="utf-8")  # every plane, no surrogates
visible_char = st.characters(
    codec="utf-8", exclude_categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs"]
).filter(lambda c: not c.isspace() and not _DI.match(c))
good_texts = st.tuples(
    st.text(st.one_of(valid_char, odd_char), max_size=20),
    st.text(visible_char, min_size=1, max_size=4),
    st.one_of(
        st.text(st.one_of(valid_char, odd_char), max_size=20),
        st.builds(
            lambda s, n: s * n, st.text(valid_char, min_size=1, max_size=5), st.integers(1, 4000)
        ),
    ),
).map("".join)
not_strings = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


def expected_problem(value: Any) -> bool:
    """Independent statement of the policy: can this value be scored?"""
    if not isinstance(value, str):
        return True
    if all(
        c.isspace() or unicodedata.category(c) in {"Cc", "Cf", "Zs", "Zl", "Zp"} or _DI.match(c)
        for c in value
    ):
        return True
    return any(unicodedata.category(c) == "Cs" for c in value)


# -- documents ---------------------------------------------------------------------------------

MISSING = object()
SEGMENTS = ["content", "body", "metadata", "text", "a", "b"]
paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(".".join)
HUGE = 10**4300  # past Python's int <-> str conversion limit: repr() of it raises
# Built from small draws: hypothesis itself reprs its choices, and cannot repr these.
huge_ints = st.builds(
    lambda sign, n: sign * (HUGE + n), st.sampled_from([1, -1]), st.integers(0, 10**6)
)
ids = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["x", "y", "", "dup"]), huge_ints)


@dataclass
class Case:
    document: Any
    text: Any  # what a correct reader finds at the path (MISSING when nothing is there)
    doc_id: Any = MISSING  # the id a correct reader finds (MISSING: falls back to the index)
    score: Any = None


@dataclass
class Obj:
    """An attribute-style document (like a LangChain Document or a pydantic model)."""

    fields: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)


@st.composite
def nest(draw, path: str, leaf: Any) -> Any:
    """`leaf` at `path`, each level a dict, a SimpleNamespace or an attribute object."""
    value = leaf
    for segment in reversed(path.split(".")):
        extra = draw(st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(), max_size=2))
        level = {**extra, segment: value}
        kind = draw(st.sampled_from(["dict", "namespace", "object"]))
        value = {"dict": level, "namespace": SimpleNamespace(**level), "object": Obj(level)}[kind]
    return value


@st.composite
def cases(draw, path: str, good: bool) -> Case:
    kinds = ["text", "text", "string document"]
    if not good:
        kinds += ["not a string", "missing"]
    kind = draw(st.sampled_from(kinds))
    text_values = good_texts if good else texts
    if kind == "string document":  # a plain string is its own text; the path does not apply
        text = draw(text_values)
        return Case(text, text)
    value = draw(text_values) if kind == "text" else draw(not_strings)
    if kind == "missing":
        doc = draw(
            st.one_of(
                st.none(),
                st.integers(),
                st.just({}),
                st.builds(dict, st.dictionaries(st.sampled_from(["x", "y"]), st.integers())),
                nest(path + ".deeper", "unreachable"),  # the path ends in a dict, not text
                nest(path.split(".")[0], "a string where a dict should be")
                if "." in path
                else st.just(SimpleNamespace()),
            )
        )
        return Case(doc, MISSING)
    doc = draw(nest(path, value))
    if isinstance(doc, dict):  # ids and previous scores live at the top level
        case = Case(doc, value)
        id_field = draw(st.sampled_from(["id", "_id", "document_id", None]))
        if id_field is not None and id_field not in path.split(".")[:1]:
            doc_id = draw(ids)
            doc[id_field] = doc_id
            case.doc_id = MISSING if doc_id is None else doc_id
        if "score" not in doc and draw(st.booleans()):
            case.score = doc["score"] = draw(st.floats(allow_nan=True) | st.text(max_size=3))
        return case
    return Case(doc, value)


@st.composite
def inputs(draw) -> tuple[str, list[Case], int | None]:
    path = draw(paths)
    good = draw(st.booleans())  # half the examples: only readable documents
    base = draw(st.lists(cases(path, good), max_size=12))
    items = list(base)
    if base and draw(st.booleans()):  # the same objects again, and equal copies
        for _ in range(draw(st.integers(1, 4))):
            item = draw(st.sampled_from(base))
            if draw(st.booleans()):
                item = Case(copy.deepcopy(item.document), item.text, item.doc_id, item.score)
            items.insert(draw(st.integers(0, len(items))), item)
    top_k = draw(st.none() | st.integers(1, 20))
    return path, items, top_k


# -- the property ------------------------------------------------------------------------------


def snapshot(documents: list[Any]) -> tuple[str, list[int]]:
    # Only for this test's own repr of huge-int ids; crossrank runs under the default limit.
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return repr(copy.deepcopy(documents)), [id(d) for d in documents]
    finally:
        sys.set_int_max_str_digits(limit)


def check(rr, query, path, items: list[Case], top_k, mode: str, scores, exact: bool = True):
    """`exact`: the oracle gives the very scores the reranker sees (not only close ones), so
    the order must match exactly, ties included."""
    documents = [c.document for c in items]
    before = snapshot(documents)
    bad = [i for i, c in enumerate(items) if c.text is MISSING or expected_problem(c.text)]
    try:
        if mode == "sync":
            ranked = rr.rerank(query, documents, top_k=top_k)
        else:
            ranked = asyncio.run(rr.arerank(query, documents, top_k=top_k))
    except DocumentError as exc:
        event("refused")
        assert bad, f"unexpected DocumentError: {exc}"
        first = bad[0]
        assert exc.index == first
        assert exc.field == path
        message = str(exc)
        assert f"document {first} " in message and repr(path) in message
        expected_id = items[first].doc_id
        if isinstance(items[first].document, dict) and expected_id is not MISSING:
            assert exc.document_id == expected_id
            if isinstance(expected_id, int) and abs(expected_id) >= HUGE:
                assert "digits" in message  # described, not a crash
            else:
                assert repr(expected_id) in message
        return
    finally:
        assert snapshot(documents) == before, "the caller's documents changed"
    assert not bad, f"document {bad[0]} should have been refused"

    n = len(documents)
    event(f"ranked {min(n, 3)}+ documents")
    expect_scores = [scores(c.text) for c in items]
    order = sorted(range(n), key=lambda i: -expect_scores[i])  # stable: ties keep input order
    if top_k is not None:
        order = order[:top_k]
    assert len(ranked) == (n if top_k is None else min(top_k, n))
    if exact:
        assert [r.index for r in ranked] == order
    elif ranked:  # float noise between batch sizes may swap near-ties: check the cut instead
        left_out = set(range(n)) - {r.index for r in ranked}
        assert all(expect_scores[i] <= ranked[-1].score + 1e-5 for i in left_out)
    assert len({r.index for r in ranked}) == len(ranked)  # each input document at most once
    for position, r in enumerate(ranked):
        case = items[r.index]
        assert r.rerank_position == position
        assert r.document is documents[r.index]
        assert type(r.score) is float and math.isfinite(r.score)
        assert r.score == pytest.approx(expect_scores[r.index], abs=1e-5)
        want_id = r.index if case.doc_id is MISSING else case.doc_id
        if isinstance(case.document, dict):
            assert r.document_id == want_id
            if "score" in case.document:
                assert r.original_score is case.document["score"]
    assert all(a.score >= b.score for a, b in itertools.pairwise(ranked))


@pytest.mark.parametrize("mode", ["sync", "async"])
@SETTINGS
@given(data=inputs())
def test_any_documents_hash_scorer(mode, data):
    path, items, top_k = data
    rr = Reranker(scorer=hash_scorer, document_field=path)
    check(rr, "a query", path, items, top_k, mode, hash_score)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs())
def test_any_documents_tiny_model(tiny_model, data):
    """Real tokenisation of odd unicode: never a crash, always finite scores."""
    path, items, top_k = data
    rr = Reranker(model=tiny_model, document_field=path, max_length=64)
    readable = {c.text for c in items if c.text is not MISSING and not expected_problem(c.text)}
    unique = sorted(readable)  # another order and batching than the reranker's: scores agree
    model_scores = dict(zip(unique, rr.scorer.score([("a query", t) for t in unique]), strict=True))
    check(rr, "a query", path, items, top_k, "sync", model_scores.get, exact=False)


@pytest.fixture(scope="module")
def endpoint():
    with ScorerServer() as server:
        yield server


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs())
def test_any_documents_http_endpoint(endpoint, data):
    """Odd unicode survives the JSON round trip: the server scores exactly the caller's text."""
    path, items, top_k = data
    rr = Reranker(scorer=endpoint.url, document_field=path)
    check(rr, "a query ✓ שלום", path, items, top_k, "sync", hash_score)


@SETTINGS
@given(query=texts)
def test_any_query(query):
    docs = ["first", "second"]
    # `texts` reaches 20,000 characters, past the default max_query_chars (tested on its own
    # in test_input_bounds.py); here the text policy is under test, not the length bound.
    reranker = Reranker(scorer=hash_scorer, max_query_chars=20_000)
    if expected_problem(query):
        with pytest.raises(QueryError):
            reranker.rerank(query, docs)
        with pytest.raises(ValidationError, match="query"):  # same rule in the config
            RerankConfig(query=query)
    else:
        assert len(reranker.rerank(query, docs)) == 2
        assert RerankConfig(query=query).query == query


# -- the text policy, spelled out ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "\t\n", "\u00a0\u3000", "\u200b", "\ufeff\u200d", "\u202e\u200f", "\x00\x01 \x7f"],
    ids=["empty", "space", "tab-newline", "nbsp", "zwsp", "bom-zwj", "rtl-marks", "controls"],
)
def test_empty_or_invisible_text_is_an_error(text):
    docs = [{"id": "ok", "content": "fine"}, {"id": "blank", "content": text}]
    with pytest.raises(DocumentError) as info:
        Reranker(scorer=hash_scorer).rerank("q", docs)
    assert info.value.index == 1 and info.value.document_id == "blank"
    assert info.value.field == "content"
    assert "no visible characters" in str(info.value) and "'blank'" in str(info.value)


@pytest.mark.parametrize("text", ["a\u200bb", "\u200b x", "🙂", "\x00a", "שלום", "\U0001d11e"])
def test_text_with_something_visible_is_scored(text):
    assert len(Reranker(scorer=hash_scorer).rerank("q", [text])) == 1


def test_unpaired_surrogate_is_an_error_naming_the_document(tiny_model):
    """Without the check the tokenizer fails deep inside with 'TextInputSequence must be str'."""
    docs = [{"id": "ok", "content": "fine"}, {"id": "bad-decode", "content": "caf\udce9"}]
    for rr in (Reranker(scorer=hash_scorer), Reranker(model=tiny_model)):
        with pytest.raises(DocumentError, match="unpaired surrogate") as info:
            rr.rerank("q", docs)
        assert info.value.index == 1 and "'bad-decode'" in str(info.value)
    with pytest.raises(QueryError, match="unpaired surrogate"):
        Reranker(model=tiny_model).rerank("q\ud800", ["fine"])


@pytest.mark.parametrize(
    "doc_id",
    [np.array([1, 2]), np.int64(1), 1.0, True, [1], {"k": 1}, math.nan, "1"],
    ids=["array", "np-int", "float", "bool", "list", "dict", "nan", "str"],
)
def test_errors_name_documents_with_ids_of_any_type(doc_id):
    """An id is shown as given (it once crashed on a numpy array, or read as 'no id')."""
    docs = [{"content": "fine"}, {"id": doc_id, "content": "  "}]
    with pytest.raises(DocumentError) as info:
        Reranker(scorer=hash_scorer).rerank("q", docs)
    assert info.value.index == 1 and info.value.document_id is doc_id
    assert f"document 1 (id {doc_id!r})" in str(info.value)


# -- hostile documents: paths that try to leave the data --------------------------------------

SECRET_VALUE = "never-read-this-2Wq9"


class Record:
    """A document whose attributes lead out of the data: dunders, methods, a module."""

    def __init__(self, content: str) -> None:
        import os

        self.content = content
        self.tools = os  # a module as a public attribute
        self.kind = Record  # a class
        self._hidden = SECRET_VALUE

    def text(self) -> str:
        return self.content

    @property
    def _secret(self) -> str:
        return SECRET_VALUE


DUNDERS = ["__class__", "__dict__", "__init__", "__globals__", "__module__", "__doc__"]
escaping_segments = st.one_of(
    st.sampled_from(DUNDERS),
    st.sampled_from(["_hidden", "_secret", "_private", "_"]),
    st.sampled_from(["text", "tools", "kind", "upper", "encode", "environ"]),
)


@st.composite
def escaping_paths(draw) -> str:
    """A path whose first step leaves the data (then anything, even real names)."""
    rest = draw(st.lists(st.one_of(escaping_segments, st.sampled_from(SEGMENTS)), max_size=3))
    return ".".join([draw(escaping_segments), *rest])


hostile_documents = st.builds(
    lambda text, kind: {
        "record": Record(text),
        "namespace": SimpleNamespace(content=text, _hidden=SECRET_VALUE, fn=len),
        "object": Obj({"content": text, "m": math}),
    }[kind],
    good_texts,
    st.sampled_from(["record", "namespace", "object"]),
)


@pytest.mark.parametrize("mode", ["sync", "async"])
@SETTINGS
@given(path=escaping_paths(), documents=st.lists(hostile_documents, min_size=1, max_size=4))
def test_paths_out_of_the_data_read_nothing(mode, path, documents, monkeypatch_env):
    sent: list = []

    def scorer(pairs):
        sent.extend(pairs)
        return hash_scorer(pairs)

    rr = Reranker(scorer=scorer, document_field=path)
    with pytest.raises(DocumentError) as info:
        if mode == "sync":
            rr.rerank("q", documents)
        else:
            asyncio.run(rr.arerank("q", documents))
    assert info.value.index == 0 and info.value.field == path
    assert sent == []
    assert SECRET_VALUE not in str(info.value)


@pytest.fixture(scope="module")
def monkeypatch_env():
    """The secret also sits in the environment, where `tools.environ...` would find it."""
    import os

    os.environ["CROSSRANK_PROPERTY_SECRET"] = SECRET_VALUE
    yield
    os.environ.pop("CROSSRANK_PROPERTY_SECRET", None)


@SETTINGS
@given(value=st.one_of(st.integers(), huge_ints), mode=st.sampled_from(["sync", "async"]))
def test_any_int_in_a_template_is_a_query_or_a_query_error(value, mode):
    rr = Reranker(scorer=hash_scorer, query="about {{INPUT.n}}")

    def call():
        if mode == "sync":
            return rr.rerank(inputs={"n": value}, documents=["a", "b"])
        return asyncio.run(rr.arerank(inputs={"n": value}, documents=["a", "b"]))

    if abs(value) >= HUGE:
        with pytest.raises(QueryError, match="too long"):
            call()
    else:
        assert len(call()) == 2


@SETTINGS
@given(doc_id=huge_ints, good=st.booleans())
def test_huge_int_ids_are_kept_and_described(doc_id, good):
    docs = [{"id": doc_id, "content": "fine text" if good else "\u034f\ufe0f"}]
    if good:
        (ranked,) = Reranker(scorer=hash_scorer).rerank("q", docs)
        assert ranked.document_id is doc_id
    else:
        with pytest.raises(DocumentError, match="digits") as info:
            Reranker(scorer=hash_scorer).rerank("q", docs)
        assert info.value.document_id is doc_id


@SETTINGS
@given(text=st.text(st.one_of(ignorable_char, st.sampled_from(WHITESPACE)), min_size=1))
def test_default_ignorable_only_text_and_queries_are_refused(text):
    with pytest.raises(DocumentError, match="no visible characters"):
        Reranker(scorer=hash_scorer).rerank("q", [{"content": text}])
    with pytest.raises(QueryError, match="no visible characters"):
        Reranker(scorer=hash_scorer).rerank(text, ["fine"])
    with pytest.raises(ValidationError, match="no visible characters"):
        RerankConfig(query=text)
