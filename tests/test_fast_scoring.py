"""Issue 5 (fast scoring) and the out-of-memory part of issue 7.

No timing here: speed lives in benchmarks/. These tests pin the behaviour the speed relies on:
token-budget batching returns the same scores in input order, the query is never truncated,
an out-of-memory batch is halved and retried, the score cache counts hits and misses,
concurrent calls are coalesced into fewer forward passes, and the faster modes stay close to
float32.
"""

from __future__ import annotations

import asyncio
import random
import threading

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from crossrank import RerankConfig, Reranker, ScorerError
from crossrank.models import CrossEncoderScorer, clear_model_cache
from crossrank.models.batching import plan_batches
from crossrank.models.families.sequence_classification import encode_pairs

WORDS = [
    "wing",
    "lift",
    "drag",
    "flow",
    "boundary",
    "layer",
    "shock",
    "heat",
    "transfer",
    "pressure",
    "plate",
    "cylinder",
    "supersonic",
    "mach",
    "number",
    "turbulent",
    "laminar",
    "jet",
    "nozzle",
]


def make_pairs(n: int, seed: int = 0, query: str = "what is the lift of a wing") -> list:
    rng = random.Random(seed)
    return [(query, " ".join(rng.choices(WORDS, k=rng.randint(1, 60)))) for _ in range(n)]


@pytest.fixture(autouse=True)
def _fresh_models():
    clear_model_cache()
    yield
    clear_model_cache()


def count_forwards(scorer: CrossEncoderScorer, monkeypatch, fail_above: int | None = None):
    """Wrap the underlying HF model's forward: count calls, optionally simulate OOM.

    The forward is torch's: the scorer must run `backend="torch"` (OpenVINO runs its own IR).
    """
    assert scorer.backend == "torch"
    hf = scorer.model.hf_model
    original = hf.forward
    calls: list[int] = []
    lock = threading.Lock()

    def forward(*args, **kwargs):
        size = kwargs["input_ids"].shape[0]
        with lock:
            calls.append(size)
        if fail_above is not None and size > fail_above:
            raise torch.OutOfMemoryError(f"simulated: CUDA out of memory at {size} pairs")
        return original(*args, **kwargs)

    monkeypatch.setattr(hf, "forward", forward)
    return calls


# -- fidelity of the default mode ---------------------------------------------------------------


@pytest.mark.parametrize("budget", [64, 512, 4096])
def test_default_mode_equals_cross_encoder_predict(tiny_model, budget):
    pairs = make_pairs(40)
    reference = CrossEncoder(tiny_model, device="cpu").predict(pairs, show_progress_bar=False)
    scorer = CrossEncoderScorer(tiny_model, device="cpu", token_budget=budget, microbatch=False)
    np.testing.assert_allclose(scorer.score(pairs), reference, rtol=0, atol=1e-5)
    shuffled = list(range(len(pairs)))
    random.Random(1).shuffle(shuffled)
    again = scorer.score([pairs[i] for i in shuffled])
    np.testing.assert_allclose(again, reference[shuffled], rtol=0, atol=1e-5)


def test_activation_none_returns_logits(tiny_model):
    pairs = make_pairs(8)
    reference = CrossEncoder(tiny_model, device="cpu").predict(
        pairs, activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    scorer = CrossEncoderScorer(tiny_model, device="cpu", activation="none", microbatch=False)
    np.testing.assert_allclose(scorer.score(pairs), reference, atol=1e-5)


# -- token-budget batching -----------------------------------------------------------------------


def test_plan_batches_respects_budget_and_covers_every_index():
    lengths = [5, 50, 7, 30, 30, 12, 3, 49, 100, 1]
    batches = plan_batches(lengths, token_budget=100, max_pairs=4)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 4
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 100
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first


def test_budget_decides_the_number_of_forward_passes(tiny_model, monkeypatch):
    pairs = make_pairs(30, seed=3)
    small = CrossEncoderScorer(
        tiny_model, device="cpu", backend="torch", token_budget=1, microbatch=False
    )
    calls = count_forwards(small, monkeypatch)
    one_by_one = small.score(pairs)
    assert calls == [1] * 30
    calls.clear()
    big = CrossEncoderScorer(
        tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        batch_size=1000,
        microbatch=False,
    )
    together = big.score(pairs)
    assert calls == [30]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_document_is_truncated_never_the_query(tiny_model_short):
    scorer = CrossEncoderScorer(tiny_model_short, device="cpu", microbatch=False)
    tokenizer = scorer.model.tokenizer
    query = "lift of a wing"
    long_doc = "pressure " * 40
    [row] = scorer.encode([(query, long_doc)])
    assert len(row) == scorer.max_length == 32
    query_ids = tokenizer(query)["input_ids"]
    assert list(row.input_ids[: len(query_ids)]) == query_ids


def test_query_longer_than_the_limit_falls_back(tiny_model_short):
    scorer = CrossEncoderScorer(tiny_model_short, device="cpu", microbatch=False)
    long_query = "boundary layer " * 20
    pairs = [(long_query, "short doc"), ("short query", "a doc " * 30)]
    rows = encode_pairs(scorer.model.tokenizer, pairs, 32)
    assert [len(r) for r in rows] == [32, 32]
    reference = CrossEncoder(tiny_model_short, device="cpu").predict(pairs, show_progress_bar=False)
    np.testing.assert_allclose(scorer.score(pairs), reference, atol=1e-5)


# -- out of memory: halve and retry --------------------------------------------------------------


def test_out_of_memory_halves_the_batch_and_gives_the_same_result(tiny_model, monkeypatch):
    pairs = make_pairs(25, seed=5)
    free = CrossEncoderScorer(
        tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        batch_size=64,
        microbatch=False,
    )
    expected = free.score(pairs)
    clear_model_cache()
    tight = CrossEncoderScorer(
        tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        batch_size=64,
        microbatch=False,
    )
    calls = count_forwards(tight, monkeypatch, fail_above=3)
    got = tight.score(pairs)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert calls[:4] == [25, 13, 7, 4]  # halved until it fits
    assert all(size <= 3 for size in calls[4:])  # then the rest runs at the size that fit
    assert sum(calls[4:]) == 25  # every pair scored exactly once


def test_out_of_memory_on_one_pair_fails_clearly(tiny_model, monkeypatch):
    scorer = CrossEncoderScorer(tiny_model, device="cpu", backend="torch", microbatch=False)
    count_forwards(scorer, monkeypatch, fail_above=0)
    with pytest.raises(ScorerError, match="out of memory on a single pair"):
        scorer.score(make_pairs(4))


def test_other_errors_are_not_retried(tiny_model, monkeypatch):
    scorer = CrossEncoderScorer(tiny_model, device="cpu", backend="torch", microbatch=False)
    hf = scorer.model.hf_model

    def broken(*args, **kwargs):
        raise ValueError("not a memory problem")

    monkeypatch.setattr(hf, "forward", broken)
    with pytest.raises(ValueError, match="not a memory problem"):
        scorer.score(make_pairs(4))


# -- score cache -----------------------------------------------------------------------------------


def test_score_cache_counts_hits_and_misses(tiny_model, monkeypatch):
    rr = Reranker(model=tiny_model, device="cpu", backend="torch", cache_size=100, microbatch=False)
    calls = count_forwards(rr.scorer, monkeypatch)
    docs = [d for _, d in make_pairs(10, seed=7)]
    first = rr.rerank("lift", docs)
    info = rr.scorer.cache_info()
    assert (info.hits, info.misses, info.size) == (0, len(set(docs)), len(set(docs)))
    n_calls = len(calls)
    second = rr.rerank("lift", docs)
    assert len(calls) == n_calls  # no forward pass at all
    assert rr.scorer.cache_info().hits == len(set(docs))
    assert [(r.index, r.score) for r in first] == [(r.index, r.score) for r in second]
    rr.rerank("drag", docs[:3])  # another query: misses
    assert rr.scorer.cache_info().misses == len(set(docs)) + len(set(docs[:3]))


def test_score_cache_is_bounded_lru(tiny_model):
    scorer = CrossEncoderScorer(tiny_model, device="cpu", cache_size=3, microbatch=False)
    pairs = make_pairs(5, seed=8)
    scorer.score(pairs)
    assert scorer.cache_info().size == 3
    scorer.score(pairs[-1:])  # the most recent entries survive
    assert scorer.cache_info().hits == 1


def test_cache_off_by_default(tiny_model):
    assert Reranker(model=tiny_model, device="cpu").scorer.cache_info() is None


# -- micro-batching ----------------------------------------------------------------------------


async def test_concurrent_arerank_calls_are_coalesced(tiny_model, monkeypatch):
    queries = [f"query number {i} about lift" for i in range(12)]
    docs = [d for _, d in make_pairs(20, seed=9)]
    serial = Reranker(
        model=tiny_model, device="cpu", backend="torch", microbatch=False, token_budget=100_000
    )
    serial_calls = count_forwards(serial.scorer, monkeypatch)
    expected = [serial.rerank(q, docs) for q in queries]
    assert len(serial_calls) == len(queries)
    clear_model_cache()

    rr = Reranker(
        model=tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        batch_size=10_000,
        microbatch=True,
        microbatch_wait_ms=50,
    )
    calls = count_forwards(rr.scorer, monkeypatch)
    results = await asyncio.gather(*(rr.arerank(q, docs) for q in queries))
    assert len(calls) < len(queries)  # shared forward passes
    assert sum(calls) == len(queries) * len(docs)
    for got, want in zip(results, expected, strict=True):
        assert [r.index for r in got] == [r.index for r in want]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)


def test_concurrent_threads_share_batches(tiny_model, monkeypatch):
    rr = Reranker(
        model=tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        microbatch=True,
        microbatch_wait_ms=100,
    )
    calls = count_forwards(rr.scorer, monkeypatch)
    docs = [d for _, d in make_pairs(5, seed=10)]
    barrier = threading.Barrier(6)
    out: dict[int, list] = {}

    def work(i: int) -> None:
        barrier.wait()
        out[i] = rr.rerank(f"q{i} wing", docs)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 6
    assert len(calls) < 6
    for i in range(6):
        alone = CrossEncoderScorer(tiny_model, device="cpu", backend="torch", microbatch=False)
        np.testing.assert_allclose(
            sorted(r.score for r in out[i]),
            sorted(alone.score([(f"q{i} wing", d) for d in docs])),
            atol=1e-5,
        )


async def test_one_failing_call_does_not_fail_the_others(tiny_model, monkeypatch):
    rr = Reranker(
        model=tiny_model,
        device="cpu",
        backend="torch",
        token_budget=100_000,
        microbatch=True,
        microbatch_wait_ms=50,
    )
    hf = rr.scorer.model.hf_model
    original = hf.forward

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[1] > 40:  # only the long document's batch fails
            raise ValueError("poisoned batch")
        return original(*args, **kwargs)

    monkeypatch.setattr(hf, "forward", forward)
    good = rr.arerank("lift", ["wing lift"])
    bad = rr.arerank("lift", ["drag " * 20])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert results[0][0].document == "wing lift"


# -- the stage contract ----------------------------------------------------------------------------


def test_contract_fields_round_trip_and_validate():
    config = RerankConfig(backend="onnx", token_budget=2048, num_threads=2, cache_size=10)
    assert RerankConfig.model_validate_json(config.model_dump_json()) == config
    for backend in ("auto", "torch", "onnx", "openvino"):  # int8 is a calibrated model folder
        with pytest.raises(ValueError, match="crossrank quantize"):
            RerankConfig(backend=backend, quantize="int8")
    with pytest.raises(ValueError, match="backend='onnx' runs float32"):
        RerankConfig(backend="onnx", dtype="bfloat16")


def test_bfloat16_on_cpu_runs_a_converted_model(tiny_model):
    fast = CrossEncoderScorer(
        tiny_model, device="cpu", backend="torch", dtype="bfloat16", microbatch=False
    )
    exact = CrossEncoderScorer(tiny_model, device="cpu", backend="torch", microbatch=False)
    assert fast.model.hf_model.dtype == torch.bfloat16
    assert exact.model.hf_model.dtype == torch.float32
    pairs = make_pairs(6)
    np.testing.assert_allclose(fast.score(pairs), exact.score(pairs), atol=0.05)


# -- ONNX Runtime ----------------------------------------------------------------------------------


def test_onnx_float32_matches_torch(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("CROSSRANK_ONNX_CACHE", str(tmp_path))
    pairs = make_pairs(20, seed=11)
    expected = CrossEncoderScorer(
        tiny_model, device="cpu", backend="torch", microbatch=False
    ).score(pairs)
    onnx = CrossEncoderScorer(tiny_model, backend="onnx", token_budget=256, microbatch=False)
    np.testing.assert_allclose(onnx.score(pairs), expected, rtol=0, atol=1e-4)
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]  # no work folder left behind
    assert (folder / "model.onnx").is_file()
    # A second process (simulated: a fresh runner) loads the cached export, no new export.
    clear_model_cache()
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    again = CrossEncoderScorer(tiny_model, backend="onnx", microbatch=False).score(pairs)
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again, expected, rtol=0, atol=1e-4)


# -- fidelity of the fast modes on the trained model ---------------------------------------------


def rank_agreement(fast, exact, k=10):
    from scipy.stats import kendalltau

    tau = kendalltau(fast, exact).statistic
    top = lambda s: set(np.argsort(-np.asarray(s), kind="stable")[:k])  # noqa: E731
    return float(tau), len(top(fast) & top(exact)) / k


@pytest.fixture(scope="module")
def cranfield_pairs():
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cranfield"
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    docs = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()]
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    rng = random.Random(0)
    return [[(q, t) for t in rng.sample(texts, 50)] for q in queries[:3]]


@pytest.mark.trained_model
def test_bfloat16_ranks_like_float32_on_the_trained_model(trained_model, cranfield_pairs):
    exact = CrossEncoderScorer(trained_model, device="cpu", microbatch=False)
    fast = CrossEncoderScorer(
        trained_model, device="cpu", backend="torch", dtype="bfloat16", microbatch=False
    )
    for pairs in cranfield_pairs:
        tau, overlap = rank_agreement(fast.score(pairs), exact.score(pairs))
        assert tau >= 0.95 and overlap >= 0.9, (tau, overlap)


@pytest.mark.trained_model
def test_onnx_on_the_trained_model(trained_model, cranfield_pairs, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("CROSSRANK_ONNX_CACHE", str(tmp_path))
    exact = CrossEncoderScorer(trained_model, device="cpu", backend="torch", microbatch=False)
    onnx = CrossEncoderScorer(trained_model, backend="onnx", microbatch=False)
    for pairs in cranfield_pairs:
        reference = exact.score(pairs)
        np.testing.assert_allclose(onnx.score(pairs), reference, atol=1e-4)
