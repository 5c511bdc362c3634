"""Every error the core promises: clear, naming the document and field, never a silent reorder."""

from __future__ import annotations

import asyncio
import math

import pytest

from crossrank import (
    ConfigError,
    CrossrankError,
    DocumentError,
    ModelLoadError,
    QueryError,
    Reranker,
    ScorerError,
)


def constant(pairs):
    return [1.0] * len(pairs)


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        (
            {"id": "x7", "text": "no content key"},
            "content",
            r"document 1 \(id 'x7'\) has no field 'content'",
        ),
        (
            {"id": "x7", "content": None},
            "content",
            r"document 1 \(id 'x7'\): field 'content' is NoneType",
        ),
        ({"id": "x7", "content": 42}, "content", "field 'content' is int, not a string"),
        ({"id": "x7", "content": ["a"]}, "content", "is list"),
        ({"id": "x7", "content": ""}, "content", "empty or whitespace only"),
        ({"id": "x7", "content": " \n\t "}, "content", "empty or whitespace only"),
        ({"id": "x7", "meta": {"other": "t"}}, "meta.body", "has no field 'meta.body'"),
        ({"id": "x7", "meta": "not a dict"}, "meta.body", "has no field 'meta.body'"),
    ],
)
def test_bad_document_text_names_the_document_and_field(doc, field, message):
    docs = [{"id": "ok", "content": "fine", "meta": {"body": "fine"}}, doc]
    with pytest.raises(DocumentError, match=message) as info:
        Reranker(scorer=constant, document_field=field).rerank("q", docs)
    assert info.value.index == 1
    assert info.value.document_id == "x7"
    assert info.value.field == field


def test_a_document_without_id_is_named_by_its_index():
    with pytest.raises(DocumentError, match=r"document 2 \(no id\)"):
        Reranker(scorer=constant).rerank("q", [{"content": "a"}, {"content": "b"}, {"c": 1}])


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_an_empty_query_is_an_error(query):
    with pytest.raises(QueryError, match="empty"):
        Reranker(scorer=constant).rerank(query, ["doc"])


def test_a_missing_query_is_an_error():
    with pytest.raises(QueryError, match="no query"):
        Reranker(scorer=constant).rerank(None, ["doc"])


def test_a_non_string_query_is_an_error():
    with pytest.raises(QueryError, match="must be a string"):
        Reranker(scorer=constant).rerank(123, ["doc"])  # type: ignore[arg-type]


@pytest.mark.parametrize("documents", ["a single string", {"content": "a dict"}, None, 42])
def test_documents_must_be_a_list(documents):
    with pytest.raises(TypeError, match="list of documents"):
        Reranker(scorer=constant).rerank("q", documents)


async def test_documents_none_is_named_on_the_async_path_too():
    with pytest.raises(TypeError, match="documents is None"):
        await Reranker(scorer=constant).arerank("q", None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"top_kk": 3}, "unknown setting 'top_kk' (did you mean 'top_k'?)"),
        ({"modle": "x"}, "unknown setting 'modle' (did you mean 'model'?)"),
        ({"batchsize": 8}, "unknown setting 'batchsize' (did you mean 'batch_size'?)"),
        ({"zzz": 1}, "unknown setting 'zzz' (known settings: activation, "),
        ({"top_k": 0}, "top_k=0: Input should be greater than 0"),
        ({"device": "gpu"}, "device='gpu': device 'gpu' is not one of"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(settings, message):
    with pytest.raises(ConfigError) as info:
        Reranker(**settings)
    assert message in str(info.value)
    assert isinstance(info.value, CrossrankError) and isinstance(info.value, ValueError)
    with pytest.raises(ConfigError) as again:
        Reranker(dict(settings))  # a settings mapping is checked the same way
    assert message in str(again.value)


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        Reranker(top_kk=3, batch_size=0)
    assert "'top_kk'" in str(info.value) and "batch_size=0" in str(info.value)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda n: [1.0] * (n - 1), "returned 2 scores for 3 pairs"),
        (lambda n: [1.0] * (n + 1), "returned 4 scores for 3 pairs"),
        (lambda n: [1.0, math.nan, 2.0], "returned nan for pair 1"),
        (lambda n: [1.0, 2.0, math.inf], "returned inf for pair 2"),
        (lambda n: [1.0, -math.inf, 2.0], "returned -inf for pair 1"),
        (lambda n: ["1.0", 2.0, 3.0], "non-numeric score for pair 0"),
        (lambda n: [1.0, None, 3.0], "non-numeric score for pair 1"),
        (lambda n: [1.0, True, 3.0], "non-numeric score for pair 1"),
        (lambda n: "0.1 0.2 0.3", "expected a list of 3 numbers"),
        (lambda n: None, "expected a list of 3 numbers"),
        (lambda n: {"scores": [1, 2, 3]}, "expected a list of 3 numbers"),
    ],
)
def test_bad_scorer_output_is_an_error_never_a_reorder(output, message):
    def scorer(pairs):
        return output(len(pairs))

    with pytest.raises(ScorerError, match=message):
        Reranker(scorer=scorer).rerank("q", ["a", "b", "c"])


async def test_bad_scorer_output_is_an_error_on_the_async_path_too():
    async def scorer(pairs):
        return [math.nan] * len(pairs)

    with pytest.raises(ScorerError, match="nan"):
        await Reranker(scorer=scorer).arerank("q", ["a", "b"])


def test_an_error_in_the_scorer_propagates_unchanged():
    def scorer(pairs):
        raise RuntimeError("scorer blew up")

    with pytest.raises(RuntimeError, match="scorer blew up"):
        Reranker(scorer=scorer).rerank("q", ["a"])


def test_a_hub_model_that_cannot_be_reached_says_which_where_and_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as info:
        Reranker(model="no-such-org/no-such-reranker").rerank("q", ["a"])
    message = str(info.value)
    assert "'no-such-org/no-such-reranker'" in message
    assert "HF_HUB_OFFLINE" in message
    assert "Hugging Face cache" in message
    assert "the hub was not asked" in message and "and the hub." not in message
    assert "CROSSRANK_MODEL" in message and "local-dir" in message


def test_cuda_on_a_torch_without_cuda_says_so_and_how_to_get_it(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError) as info:
        Reranker(model=tiny_model, device="cuda").rerank("q", ["a"])
    message = str(info.value)
    assert "CUDA is not available" in message and torch.__version__ in message
    assert "download.pytorch.org/whl/cu" in message and "device='cpu'" in message
    assert tiny_model not in message  # the folder is fine: it is not blamed


def test_a_missing_local_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelLoadError, match="no such folder"):
        Reranker(model=str(missing)).rerank("q", ["a"])


def test_a_folder_that_is_not_a_model_says_what_it_must_hold(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="must hold a Hugging Face") as info:
        Reranker(model=str(tmp_path)).rerank("q", ["a"])
    assert str(tmp_path) in str(info.value)


def test_every_error_is_a_crossrank_error():
    for cls in (ConfigError, DocumentError, QueryError, ScorerError, ModelLoadError):
        assert issubclass(cls, CrossrankError)


# -- nothing escapes "DocumentError or results" -------------------------------------------------


class Flaky:
    """A document whose properties raise, as ORM objects and lazy loaders do."""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    @property
    def content(self) -> str:
        if self.broken == "content":
            raise RuntimeError("lazy load failed: connection closed")
        return "readable"

    @property
    def id(self) -> str:
        if self.broken == "id":
            raise KeyError("no id column")
        return "flaky-1"

    @property
    def score(self) -> float:
        if self.broken == "score":
            raise ValueError("score not computed")
        return 0.5


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "broken, field, cause",
    [("content", "content", RuntimeError), ("id", "id", KeyError), ("score", "score", ValueError)],
)
def test_a_raising_property_is_a_document_error_that_chains_it(broken, field, cause, mode):
    docs = ["fine", Flaky(broken)]
    rr = Reranker(scorer=constant)
    with pytest.raises(DocumentError) as info:
        if mode == "sync":
            rr.rerank("q", docs)
        else:
            asyncio.run(rr.arerank("q", docs))
    assert info.value.index == 1 and info.value.field == field
    assert isinstance(info.value.__cause__, cause)
    assert cause.__name__ in str(info.value)


def test_a_document_with_nothing_broken_is_read():
    (ranked,) = Reranker(scorer=constant).rerank("q", [Flaky("nothing")])
    assert ranked.document_id == "flaky-1" and ranked.original_score == 0.5


def test_an_id_whose_repr_raises_is_described_not_a_crash():
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(DocumentError, match=r"document 0 \(id <Opaque object") as info:
        Reranker(scorer=constant).rerank("q", [{"id": Opaque(), "content": " "}])
    assert isinstance(info.value.document_id, Opaque)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_top_k_true_is_refused_everywhere(mode):
    """One rule for every way to give top_k: a positive int or None; True is not 1."""
    with pytest.raises(ValueError, match="top_k"):
        Reranker(top_k=True)
    with pytest.raises(ConfigError, match="top_n"):
        Reranker.from_stage({"stage_type": "sort", "parameters": {"top_n": True}})
    with pytest.raises(ConfigError, match="top_k"):
        Reranker.from_stage({"stage_type": "sort", "parameters": {"top_k": False}})
    with pytest.raises(ValueError, match="top_k"):
        Reranker.from_json('{"top_k": true}')
    rr = Reranker(scorer=constant)
    for bad in (True, False, 0, -1, 1.5, "3"):
        with pytest.raises(ValueError, match="top_k"):
            if mode == "sync":
                rr.rerank("q", ["a"], top_k=bad)
            else:
                asyncio.run(rr.arerank("q", ["a"], top_k=bad))


def test_other_counts_refuse_booleans_too():
    for name in ("batch_size", "max_length", "cache_size", "max_chunks_per_document"):
        with pytest.raises(ValueError, match=name):
            Reranker(**{name: True})
