"""End to end against a real infinity-emb server serving a locally built model.

The test setup installs infinity-emb in its own venv (scripts/setup_infinity.sh: it pins
dependencies that differ from crossrank's), starts it on a loopback port, offline, serving a
tiny cross-encoder built on disk, and stops it at the end. The test skips, saying why, only
when infinity-emb cannot be installed here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.infinity_process import InfinityServer, infinity_executable

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup_infinity.sh"
SERVED = "tiny-reranker"
DOCS = [
    {"id": f"d{i}", "content": text}
    for i, text in enumerate(
        [
            "a cross encoder reads query and passage together",
            "bi-encoders embed texts apart",
            "bm25 ranks by term statistics",
            "the weather is sunny today",
            "rerankers reorder candidates",
            "dense retrieval finds candidates",
            "tokenizers split words into pieces",
            "what is a cross-encoder?",
            "apples and pears",
            "sequence classification heads output logits",
        ]
    )
]
QUERY = "what is a cross-encoder?"


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory, tiny_model: str):
    venv = os.environ.get("CROSSRANK_INFINITY_VENV") or str(ROOT / ".venv-infinity")
    log = tmp_path_factory.mktemp("infinity") / "setup.log"
    try:
        with open(log, "wb") as out:  # idempotent: returns at once when already installed
            done = subprocess.run(
                ["bash", str(SETUP)],
                env={**os.environ, "CROSSRANK_INFINITY_VENV": venv},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1200,
                check=False,
            )
    except subprocess.TimeoutExpired:
        pytest.skip("infinity-emb could not be installed: scripts/setup_infinity.sh took > 20 min")
    if done.returncode != 0 or not infinity_executable(venv).exists():
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if not line.startswith("WARNING: Location")
        ]
        pytest.skip(
            "infinity-emb could not be installed (scripts/setup_infinity.sh exited "
            f"{done.returncode}): {' | '.join(lines[-5:]) or 'it printed nothing'}"
        )
    with InfinityServer(tiny_model, served_name=SERVED, venv=venv) as server:
        yield server


def scores_by_id(ranked) -> dict[str, float]:
    return {r.document_id: r.score for r in ranked}


def test_reranks_on_a_real_infinity_server(infinity, tiny_model):
    local = Reranker(model=tiny_model, device="cpu").rerank(QUERY, DOCS)
    remote = Reranker(model=SERVED, scorer=f"cohere+{infinity.url}", batch_size=4)
    ranked = remote.rerank(QUERY, DOCS)  # 10 texts in requests of 4, 4 and 2, merged
    # The same model in-process and on the server: the same score for every document (the
    # tiny random model has near-ties, so batching noise may swap equal-looking neighbours).
    assert scores_by_id(ranked) == pytest.approx(scores_by_id(local), abs=1e-5)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert [r.rerank_position for r in ranked] == list(range(len(DOCS)))


async def test_stage_on_a_real_infinity_server_async(infinity, tiny_model):
    stage = {
        "stage_name": "rerank",
        "stage_type": "sort",
        "config": {
            "stage_id": "rerank",
            "parameters": {
                "inference_name": SERVED,
                "query": "{{INPUT.question}}",
                "top_k": 3,
                "feature_uri": f"infinity+{infinity.url}/rerank",
            },
        },
    }
    rr = Reranker.from_stage(stage)
    ranked = await rr.arerank(inputs={"question": QUERY}, documents=DOCS)
    local = scores_by_id(Reranker(model=tiny_model, device="cpu").rerank(QUERY, DOCS))
    assert len(ranked) == 3
    for r in ranked:
        assert r.score == pytest.approx(local[r.document_id], abs=1e-5)
    assert ranked[-1].score >= sorted(local.values(), reverse=True)[2] - 1e-5
    assert rr.to_stage() == stage
