"""What a user coming from the LangChain peers expects: `top_n`, the peers' `rerank()`,
copies and pickles, `api_key`, one definition of the engine settings, `on_unreadable`."""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_crossrank import CrossRankReranker, CrossRankRetriever
from pydantic import SecretStr

from crossrank import DocumentError, RerankConfig, Reranker
from crossrank.config import CALL_SETTINGS, EngineSettings

# -- one definition of the engine settings --------------------------------------------------


def test_every_engine_setting_is_inherited_from_the_one_definition():
    assert issubclass(CrossRankReranker, EngineSettings)
    assert issubclass(RerankConfig, EngineSettings)
    for name, field in EngineSettings.model_fields.items():
        # The same type, default and description as the contract's, by construction.
        assert repr(CrossRankReranker.model_fields[name]) == repr(field)
        assert repr(RerankConfig.model_fields[name]) == repr(field)
    assert set(RerankConfig.model_fields) == set(EngineSettings.model_fields) | CALL_SETTINGS


def test_a_setting_added_to_the_definition_reaches_the_integration():
    class Extended(EngineSettings):
        new_setting: int = 3

    class ExtendedReranker(Extended, CrossRankReranker):
        pass

    assert "new_setting" in ExtendedReranker.model_fields
    assert set(EngineSettings.model_fields) <= set(CrossRankReranker.model_fields)


def test_the_engine_validators_run_here_too(keyword_scorer):
    with pytest.raises(ValueError, match="activation applies to the built-in model scorer"):
        CrossRankReranker(scorer=keyword_scorer, activation="sigmoid")
    with pytest.raises(ValueError, match="device 'tpu' is not one of"):
        CrossRankReranker(device="tpu")


# -- top_n, with top_k as its alias ------------------------------------------------------------


def test_top_n_is_the_name_and_top_k_its_alias(documents, keyword_scorer):
    assert CrossRankReranker().top_n is None  # the contract's default: all, reordered
    for reranker in (
        CrossRankReranker(scorer=keyword_scorer, top_n=2),
        CrossRankReranker(scorer=keyword_scorer, top_k=2),
    ):
        assert reranker.top_n == 2
        assert len(reranker.compress_documents(documents, "passage")) == 2
    with pytest.raises(ValueError, match=r"top_k .* and top_n .* disagree"):
        CrossRankReranker(top_n=2, top_k=3)


def test_changing_top_n_after_construction_takes_effect(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer, top_n=1)
    reranker.top_n = 3
    assert len(reranker.compress_documents(documents, "passage")) == 3


def test_changing_an_engine_setting_after_construction_takes_effect(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer)
    first = reranker.compress_documents(documents, "passage")[0].id
    reranker.scorer = lambda pairs: [-s for s in keyword_scorer.score(pairs)]
    assert reranker.compress_documents(documents, "passage")[-1].id == first


class ListRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query, *, run_manager):
        return list(self.docs)


def test_retriever_top_n_and_top_k_are_honoured(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer)
    base = ListRetriever(docs=documents)
    assert len(CrossRankRetriever(base_retriever=base, reranker=reranker, top_k=3).invoke("q")) == 3
    assert len(CrossRankRetriever(base_retriever=base, reranker=reranker, top_n=2).invoke("q")) == 2
    assert len(reranker.as_retriever(base, top_k=1).invoke("q")) == 1
    assert len(reranker.as_retriever(base, top_n=1).invoke("q", top_n=3)) == 3
    assert len(reranker.as_retriever(base).invoke("q")) == 4  # all, reordered
    # The reranker's own count applies when the retriever sets none.
    limited = CrossRankReranker(scorer=keyword_scorer, top_n=2)
    assert len(limited.as_retriever(base).invoke("q")) == 2
    assert len(limited.as_retriever(base, top_n=3).invoke("q")) == 3


def test_retriever_refuses_unknown_keywords(documents, keyword_scorer):
    with pytest.raises(ValueError, match="topk"):
        CrossRankReranker(scorer=keyword_scorer).as_retriever(ListRetriever(docs=documents), topk=1)


# -- the peers' rerank(): [{"index", "relevance_score"}] -------------------------------------


def test_rerank_returns_indexes_and_scores_like_the_peers(documents, keyword_scorer):
    query = "what is a cross-encoder passage"
    reranker = CrossRankReranker(scorer=keyword_scorer)
    results = reranker.rerank(documents, query)
    ranked = reranker.compress_documents(documents, query)
    assert [set(r) for r in results] == [{"index", "relevance_score"}] * 4
    assert [documents[r["index"]].id for r in results] == [d.id for d in ranked]
    assert [r["relevance_score"] for r in results] == [
        d.metadata["relevance_score"] for d in ranked
    ]
    assert all(type(r["relevance_score"]) is float for r in results)
    assert len(reranker.rerank(documents, query, top_n=2)) == 2


async def test_rerank_takes_strings_and_dicts_and_agrees_with_documents(keyword_scorer):
    texts = ["a cross-encoder passage", "wings", "what is a passage"]
    reranker = CrossRankReranker(scorer=keyword_scorer)
    from_docs = reranker.rerank([Document(page_content=t) for t in texts], "passage")
    assert reranker.rerank(texts, "passage") == from_docs
    assert reranker.rerank([{"text": t, "extra": 1} for t in texts], "passage") == from_docs
    assert await reranker.arerank(texts, "passage") == from_docs


def test_rerank_names_a_dict_without_text(keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer)
    with pytest.raises(DocumentError, match=r"document 1 \(no id\) has no field 'text'"):
        reranker.rerank([{"text": "fine"}, {"body": "elsewhere"}], "q")
    with pytest.raises(TypeError, match="one kind per call"):
        reranker.rerank([{"text": "fine"}, Document(page_content="fine")], "q")
    with pytest.raises(TypeError, match="document 0 is a int"):
        reranker.rerank([3], "q")


# -- copies and pickles --------------------------------------------------------------------


def _view(docs):
    return [(d.id, d.metadata) for d in docs]


@pytest.mark.parametrize(
    "make_copy",
    [copy.deepcopy, lambda r: r.model_copy(deep=True), lambda r: pickle.loads(pickle.dumps(r))],
    ids=["deepcopy", "model_copy", "pickle"],
)
def test_a_reranker_survives_copy_and_pickle(documents, tiny_model, make_copy):
    fresh = make_copy(CrossRankReranker(model=tiny_model, top_n=3))
    assert fresh.top_n == 3
    used = CrossRankReranker(model=tiny_model, top_n=3)
    expected = used.compress_documents(documents, "cross-encoder")
    clone = make_copy(used)  # after its model has loaded
    assert _view(clone.compress_documents(documents, "cross-encoder")) == _view(expected)
    clone.top_n = 1  # the copy's settings are its own
    assert len(used.compress_documents(documents, "cross-encoder")) == 3


def test_a_pickled_reranker_holds_no_lock_and_reloads_from_the_model_cache(documents, tiny_model):
    used = CrossRankReranker(model=tiny_model)
    used.compress_documents(documents, "q")
    # The engine (a scorer with locks) stays behind: pickling a lock would fail outright.
    assert used.__getstate__()["__pydantic_private__"]["_engine"] is None
    clone = pickle.loads(pickle.dumps(used))
    clone.compress_documents(documents, "q")
    assert clone._engine_now().scorer.model is used._engine_now().scorer.model


def test_a_retriever_survives_deepcopy_and_pickle(documents, keyword_scorer, tiny_model):
    retriever = CrossRankReranker(model=tiny_model).as_retriever(ListRetriever(docs=documents))
    expected = retriever.invoke("cross-encoder", top_n=2)
    for clone in (copy.deepcopy(retriever), pickle.loads(pickle.dumps(retriever))):
        assert _view(clone.invoke("cross-encoder", top_n=2)) == _view(expected)


# -- api_key -----------------------------------------------------------------------------


SECRET = "sk-lc-test-91Xq"


def test_api_key_comes_from_the_environment_and_is_never_printed(monkeypatch):
    monkeypatch.setenv("CROSSRANK_SCORER_API_KEY", SECRET)
    reranker = CrossRankReranker(scorer="http://127.0.0.1:9/score")
    assert isinstance(reranker.api_key, SecretStr)
    assert reranker.api_key.get_secret_value() == SECRET
    shown = repr(reranker) + str(reranker) + str(reranker.model_dump()) + reranker.model_dump_json()
    assert SECRET not in shown


class _ScoreEndpoint(BaseHTTPRequestHandler):
    """crossrank's {"pairs"} -> {"scores"} endpoint, remembering each Authorization header."""

    seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = json.dumps({"scores": [float(len(t)) for _, t in body["pairs"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def endpoint():
    _ScoreEndpoint.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScoreEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score", _ScoreEndpoint.seen
    finally:
        server.shutdown()
        server.server_close()


def test_api_key_given_is_sent_to_the_endpoint(monkeypatch, endpoint):
    url, seen = endpoint
    monkeypatch.delenv("CROSSRANK_SCORER_API_KEY", raising=False)
    reranker = CrossRankReranker(scorer=url, api_key=SECRET)
    assert [r["index"] for r in reranker.rerank(["one", "three"], "q")] == [1, 0]
    assert seen == [f"Bearer {SECRET}"]
    CrossRankReranker(scorer=url).rerank(["one"], "q")  # no key anywhere: none sent
    assert seen[1] is None


def test_api_key_and_scorer_api_key_env_are_one_or_the_other(monkeypatch):
    with pytest.raises(ValueError, match="not both"):
        CrossRankReranker(scorer="http://127.0.0.1:9/s", api_key="k", scorer_api_key_env="MY_KEY")
    with pytest.raises(ValueError, match="has none"):
        CrossRankReranker(api_key="k")  # a local model sends no key
    with pytest.raises(ValueError, match="api_key"):
        CrossRankReranker(reranker=Reranker(scorer=lambda p: [0.0] * len(p)), api_key="k")
    # From the environment (not given), with the variable named: the named one applies.
    monkeypatch.setenv("CROSSRANK_SCORER_API_KEY", "other")
    CrossRankReranker(scorer="http://127.0.0.1:9/s", scorer_api_key_env="MY_KEY")


# -- on_unreadable ---------------------------------------------------------------------------


def _with_blank(documents):
    return [*documents[:2], Document(page_content="", id="blank"), *documents[2:]]


def test_an_empty_page_content_fails_by_default_naming_it(documents, keyword_scorer):
    with pytest.raises(DocumentError, match=r"document 2 \(id 'blank'\).*on_unreadable"):
        CrossRankReranker(scorer=keyword_scorer).compress_documents(_with_blank(documents), "q")


def test_skip_leaves_it_out_and_warns(documents, keyword_scorer, caplog):
    reranker = CrossRankReranker(scorer=keyword_scorer, on_unreadable="skip")
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ranked = reranker.compress_documents(_with_blank(documents), "passage")
    assert sorted(d.id for d in ranked) == ["a", "b", "c", "d"]
    assert "(id 'blank')" in caplog.text and "on_unreadable='skip'" in caplog.text


def test_last_keeps_it_last_with_its_problem(documents, keyword_scorer):
    reranker = CrossRankReranker(scorer=keyword_scorer, on_unreadable="last", top_n=5)
    ranked = reranker.compress_documents(_with_blank(documents), "passage")
    assert ranked[-1].id == "blank"
    assert ranked[-1].metadata["relevance_score"] == -math.inf
    assert "is empty" in ranked[-1].metadata["unreadable"]
    assert all("unreadable" not in d.metadata for d in ranked[:-1])
    assert [r["index"] for r in reranker.rerank(_with_blank(documents), "passage")][-1] == 2
