"""Stage configs as retrieval pipelines write them: both forms, aliases, templates, round trips."""

from __future__ import annotations

import json

import pytest
from fake_engines import EngineServer, known_score

from crossrank import ConfigError, QueryError, Reranker
from crossrank.cli import EXIT_CONFIG, EXIT_INPUT, main
from crossrank.scorers import CohereScorer, TeiScorer, register_scorer, unregister_scorer
from crossrank.stage import known_parameters, resolve_model_name

NESTED = """{"stage_name": "rerank", "stage_type": "sort",
 "config": {"stage_id": "rerank", "parameters": {"inference_name": "BAAI__bge_reranker_v2_m3",
 "query": "{{INPUT.question}}", "top_k": 20, "document_field": "content"}}}"""
FLAT = """{"stage_type": "sort", "stage_id": "rerank",
 "parameters": {"model": "bge-reranker-v2-m3", "top_n": 10}}"""

DOCS = [
    {"id": "a", "content": "apples and pears", "score": 3.0},
    {"id": "b", "content": "how a cross encoder reranks", "score": 2.0},
    {"id": "c", "content": "rerank rerank", "score": 1.0},
]


def record_scorer(seen: list):
    def fn(pairs):
        seen.extend(pairs)
        return [known_score(q, t) for q, t in pairs]

    return fn


@pytest.fixture
def scorer_name():
    seen: list = []
    register_scorer("test-recorder", record_scorer(seen))
    yield "test-recorder", seen
    unregister_scorer("test-recorder")


def test_nested_form_as_written():
    rr = Reranker.from_stage(json.loads(NESTED))
    c = rr.config
    assert (c.model, c.top_k, c.query, c.document_field) == (
        "BAAI/bge-reranker-v2-m3",
        20,
        "{{INPUT.question}}",
        "content",
    )


def test_flat_form_as_written():
    c = Reranker.from_stage(FLAT).config  # JSON text
    assert (c.model, c.top_k) == ("BAAI/bge-reranker-v2-m3", 10)


@pytest.mark.parametrize("text", [NESTED, FLAT])
def test_stage_round_trips_to_the_same_json(text, tmp_path):
    path = tmp_path / "stage.json"
    path.write_text(text)
    rr = Reranker.from_stage(path)
    assert rr.to_stage() == json.loads(text)
    again = Reranker.from_stage(json.dumps(rr.to_stage()))
    assert again.config == rr.config and again.to_stage() == rr.to_stage()


def test_to_stage_of_a_plain_reranker_reads_back_equal():
    rr = Reranker(model="cross-encoder/ms-marco-MiniLM-L-6-v2", top_k=4, query="q", batch_size=8)
    stage = rr.to_stage()
    assert stage["stage_type"] == "sort" and stage["parameters"]["top_k"] == 4
    assert Reranker.from_stage(stage).config == rr.config


def test_to_stage_with_a_python_scorer_says_it_cannot():
    with pytest.raises(ConfigError, match="cannot be written"):
        Reranker(scorer=lambda pairs: [0.0] * len(pairs)).to_stage()


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("BAAI__bge_reranker_v2_m3", "BAAI/bge-reranker-v2-m3"),
        ("bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3"),
        ("BAAI/bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3"),
        ("jina-reranker-v2", "jinaai/jina-reranker-v2-base-multilingual"),
        ("jinaai__jina_reranker_v2_base_multilingual", "jinaai/jina-reranker-v2-base-multilingual"),
        ("ms-marco-MiniLM-L-6-v2", "cross-encoder/ms-marco-MiniLM-L-6-v2"),
        ("cross-encoder__ms_marco_MiniLM_L_12_v2", "cross-encoder/ms-marco-MiniLM-L-12-v2"),
        ("mxbai-rerank-base", "mixedbread-ai/mxbai-rerank-base-v1"),
        ("mxbai-rerank-large-v1", "mixedbread-ai/mxbai-rerank-large-v1"),
        ("acme/private-reranker", "acme/private-reranker"),
        ("acme__private_reranker", "acme__private_reranker"),
    ],
)
def test_model_aliases(name, model_id):
    assert resolve_model_name(name) == model_id
    stage = {"stage_type": "sort", "parameters": {"inference_name": name}}
    assert Reranker.from_stage(stage).config.model == model_id


def test_an_existing_folder_is_never_taken_for_an_alias(tmp_path, monkeypatch):
    (tmp_path / "bge-reranker-v2-m3").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_name("bge-reranker-v2-m3") == "bge-reranker-v2-m3"


def test_unknown_parameter_lists_the_known_ones():
    stage = {"stage_type": "sort", "stage_id": "rr", "parameters": {"model": "m", "topk": 3}}
    with pytest.raises(ConfigError) as info:
        Reranker.from_stage(stage)
    message = str(info.value)
    assert "stage 'rr'" in message and "'topk'" in message
    for name in ("inference_name", "top_k", "top_n", "feature_uri", "query", "document_field"):
        assert name in message
    assert set(known_parameters()) >= {"model", "inference_name", "top_n", "feature_uri"}


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"stage_type": "filter", "parameters": {}}, "stage_type 'filter' is not a rerank"),
        ({"stage_type": "sort", "parameters": {"top_k": 5, "top_n": 6}}, "'top_k' and 'top_n'"),
        ({"stage_type": "sort", "parameters": {"top_n": 0}}, "top_n: "),
        ({"stage_type": "sort", "stage_id": "x", "params": {}}, "unknown key.*'params'"),
        ({"stage_type": "sort"}, '"parameters" must be an object'),
        ({"stage_type": "sort", "parameters": {"query": "{{question}}"}}, "{{INPUT.name}}"),
        ({"stage_type": "sort", "parameters": {"feature_uri": "nobody"}}, "registered"),
        ("no-such-stage.json", "'no-such-stage.json' cannot be read"),
        ('{"stage_type": ', "not valid JSON"),
    ],
)
def test_bad_stages_are_clear_errors(stage, message):
    with pytest.raises(ConfigError, match=message):
        Reranker.from_stage(stage)


def test_top_k_and_top_n_that_agree_are_fine():
    stage = {"stage_type": "sort", "parameters": {"top_k": 5, "top_n": 5}}
    assert Reranker.from_stage(stage).config.top_k == 5


def test_query_template_is_filled_from_inputs(scorer_name):
    name, seen = scorer_name
    stage = json.loads(NESTED)
    stage["config"]["parameters"]["feature_uri"] = name
    rr = Reranker.from_stage(stage)
    ranked = rr.rerank(inputs={"question": "rerank"}, documents=DOCS)
    assert {q for q, _ in seen} == {"rerank"}
    assert [r.document_id for r in ranked] == ["c", "b", "a"]
    for position, r in enumerate(ranked):
        fields = r.contract_fields()
        assert set(fields) == {"document_id", "score", "original_score", "rerank_position"}
        assert fields["rerank_position"] == position
        assert fields["original_score"] == r.document["score"]
    assert rr.to_stage()["config"]["parameters"]["feature_uri"] == name


async def test_query_template_async_with_nested_inputs(scorer_name):
    name, seen = scorer_name
    rr = Reranker(scorer=name, query="about {{ INPUT.user.topic }}")
    await rr.arerank(inputs={"user": {"topic": "pears"}}, documents=DOCS)
    assert {q for q, _ in seen} == {"about pears"}


def test_missing_input_is_named(scorer_name):
    rr = Reranker(scorer=scorer_name[0], query="{{INPUT.question}}")
    with pytest.raises(QueryError, match=r"needs input 'question'.*inputs given: 'q'"):
        rr.rerank(inputs={"q": "x"}, documents=DOCS)
    with pytest.raises(QueryError, match=r"pass the input.*'question'"):
        rr.rerank(documents=DOCS)
    with pytest.raises(QueryError, match=r"input 'question'.*list"):
        rr.rerank(inputs={"question": ["x"]}, documents=DOCS)


def test_a_callers_query_is_used_verbatim(scorer_name):
    name, seen = scorer_name
    rr = Reranker(scorer=name, query="{{INPUT.question}}")
    rr.rerank("{{INPUT.secret}}", DOCS, inputs={"secret": "s3cr3t", "question": "q"})
    assert {q for q, _ in seen} == {"{{INPUT.secret}}"}


def test_documents_are_required(scorer_name):
    with pytest.raises(TypeError, match="needs the documents"):
        Reranker(scorer=scorer_name[0]).rerank("q")


@pytest.mark.parametrize(("scheme", "cls"), [("tei+", TeiScorer), ("cohere+", CohereScorer)])
def test_feature_uri_selects_a_serving_engine(scheme, cls):
    stage = {"stage_type": "sort", "parameters": {"model": "m", "feature_uri": scheme + "http://h"}}
    rr = Reranker.from_stage(stage)
    assert isinstance(rr.scorer, cls) and rr.scorer.url == "http://h/rerank"


def test_stage_on_a_cohere_engine_end_to_end():
    with EngineServer("cohere") as server:
        stage = {
            "stage_type": "sort",
            "stage_id": "rerank",
            "parameters": {
                "model": "jina-reranker-v2",
                "query": "{{INPUT.question}}",
                "top_n": 2,
                "feature_uri": f"cohere+{server.url}/v1/rerank",
            },
        }
        ranked = Reranker.from_stage(stage).rerank(inputs={"question": "rerank"}, documents=DOCS)
        assert [r.document_id for r in ranked] == ["c", "b"]
        assert server.bodies()[0]["model"] == "jinaai/jina-reranker-v2-base-multilingual"


def test_cli_runs_a_stage(tmp_path, capsys, scorer_name):
    name, _ = scorer_name
    stage = json.loads(NESTED)
    stage["config"]["parameters"].update(feature_uri=name, top_k=2)
    (tmp_path / "stage.json").write_text(json.dumps(stage))
    (tmp_path / "docs.json").write_text(json.dumps(DOCS))
    argv = ["rerank", "--stage", str(tmp_path / "stage.json"), "-i", str(tmp_path / "docs.json")]
    assert main([*argv, "--var", "question=rerank"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["document_id"] for d in lines] == ["c", "b"]
    assert [d["rerank_position"] for d in lines] == [0, 1]
    assert [d["original_score"] for d in lines] == [1.0, 2.0]
    assert all(d["score"] == pytest.approx(known_score("rerank", d["content"])) for d in lines)
    # A flag beside the stage overrides its parameter; a missing input is a clear error.
    assert main([*argv, "--var", "question=rerank", "--top-k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(argv) == EXIT_INPUT
    assert "question" in capsys.readouterr().err


# -- malformed stage configs are ConfigErrors, whatever the bytes -------------------------------

MALFORMED = {
    "invalid utf-8": b'{"stage_type": "sort", "parameters": {"query": "caf\xe9"}}',
    "utf-16": '{"stage_type": "sort", "parameters": {}}'.encode("utf-16"),
    "deep nesting": '{"stage_type": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "deep object": '{"stage_type": "sort", "parameters": '
    + '{"a": ' * 100_000
    + "1"
    + "}" * 100_001,
    "huge number": '{"stage_type": "sort", "parameters": {"top_n": ' + "9" * 5000 + "}}",
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("given_as", ["value", "file"])
def test_malformed_stage_configs_are_config_errors(case, given_as, tmp_path):
    source = MALFORMED[case]
    if given_as == "file":
        path = tmp_path / "stage.json"
        path.write_bytes(source if isinstance(source, bytes) else source.encode())
        source = str(path)
    with pytest.raises(ConfigError):
        Reranker.from_stage(source)


def test_a_malformed_stage_file_is_one_line_on_the_command_line(tmp_path, capsys):
    (tmp_path / "stage.json").write_bytes(MALFORMED["invalid utf-8"])
    (tmp_path / "docs.json").write_text(json.dumps(DOCS))
    argv = ["rerank", "--stage", str(tmp_path / "stage.json"), "-i", str(tmp_path / "docs.json")]
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "not UTF-8" in err and len(err.strip().splitlines()) == 1


# -- context selection: crossrank's extensions to the seed's parameters --------------------------

CONTEXT_STAGE = {
    "stage_name": "rerank",
    "stage_type": "sort",
    "config": {
        "stage_id": "rerank",
        "parameters": {
            "feature_uri": "test-recorder",
            "top_n": 2,
            "score_threshold": 0.5,
            "min_results": 1,
        },
    },
}


def test_a_stage_takes_the_context_settings_and_writes_them_back(scorer_name):
    stage = json.loads(json.dumps(CONTEXT_STAGE))
    rr = Reranker.from_stage(stage)
    assert (rr.config.score_threshold, rr.config.min_results) == (0.5, 1)
    assert rr.to_stage() == CONTEXT_STAGE
    # known_score: b 2.027, a 0.016, c 0.013 -> top_n keeps b, a; the threshold keeps b.
    ranked = rr.rerank("cross encoder", DOCS)
    assert [r.document_id for r in ranked] == ["b"]
    assert ranked.dropped["top_k"] == 1 and ranked.dropped["score_threshold"] == 1


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"score_threshold": 1e9}, []),  # empty: min_results defaults to 0
        ({"score_threshold": 1e9, "min_results": 2}, ["b", "c"]),  # the floor holds
        ({"score_threshold": 1e9, "min_results": 2, "top_n": 1}, ["b"]),  # top_n caps it
    ],
)
def test_stage_threshold_floor_and_top_n(scorer_name, parameters, expected):
    rr = Reranker.from_stage(
        {"stage_type": "sort", "parameters": {"feature_uri": "test-recorder", **parameters}}
    )
    ranked = rr.rerank("how does a cross encoder rerank", DOCS)
    by_score = sorted(
        DOCS, key=lambda d: -known_score("how does a cross encoder rerank", d["content"])
    )
    assert [r.document_id for r in ranked] == expected
    assert [d["id"] for d in by_score][: len(expected)] == expected  # the best, in order


def test_stage_token_budget_with_a_named_tokenizer(scorer_name, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    count = {d["id"]: len(tok(d["content"], add_special_tokens=False)["input_ids"]) for d in DOCS}
    stage = {
        "stage_type": "sort",
        "stage_id": "rerank",
        "parameters": {
            "feature_uri": "test-recorder",
            "max_context_tokens": count["b"] + count["a"],  # b, a fit; c does not
            "context_tokenizer": tiny_model,
        },
    }
    rr = Reranker.from_stage(stage)
    assert rr.to_stage() == stage
    ranked = rr.rerank("cross encoder", DOCS)
    assert [(r.document_id, r.context_tokens) for r in ranked] == [
        ("b", count["b"]),
        ("a", count["a"]),
    ]
    assert ranked.dropped["max_context_tokens"] == 1


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"max_context_tokens": -1, "context_tokenizer": "cl100k_base"}, "max_context_tokens"),
        ({"score_threshold": "NaN"}, "score_threshold"),
        ({"min_results": -2}, "min_results"),
        ({"max_context_tokens": 50}, "needs context_tokenizer"),
    ],
)
def test_bad_context_parameters_are_config_errors(scorer_name, parameters, named):
    stage = {"stage_type": "sort", "parameters": {"feature_uri": "test-recorder", **parameters}}
    with pytest.raises(ConfigError, match=named):
        Reranker.from_stage(stage)
