"""A scorer that returns something other than one finite number per pair is a clear
`ScorerError`, through `rerank` and `arerank`, for plain functions, async functions, scorer
objects and the model itself: never a silent reorder, never a partial result."""

from __future__ import annotations

import asyncio
import copy
import math
import shutil
from decimal import Decimal

import numpy as np
import pytest
import torch

from crossrank import Reranker, ScorerError

DOCS = [{"id": f"d{i}", "content": f"passage {i}", "score": i / 10} for i in range(5)]
N = len(DOCS)
GOOD = [0.3, 0.1, 0.5, 0.2, 0.4]

BAD = {
    "nan": ([0.1, math.nan, 0.3, 0.4, 0.5], "nan"),
    "inf": ([0.1, 0.2, math.inf, 0.4, 0.5], "inf"),
    "-inf": ([-math.inf, 0.2, 0.3, 0.4, 0.5], "-inf"),
    "numpy nan": (np.array([0.1, 0.2, 0.3, np.nan, 0.5]), "nan"),
    "numpy float16 inf": (np.array([np.inf, 0, 0, 0, 0], dtype=np.float16), "inf"),
    "torch inf": (torch.tensor([0.1, 0.2, 0.3, 0.4, float("inf")]), "inf"),
    "too few": (GOOD[:4], "4 scores for 5 pairs"),
    "too many": ([*GOOD, 0.9], "6 scores for 5 pairs"),
    "none at all": ([], "0 scores for 5 pairs"),
    "strings": (["0.3", "0.1", "0.5", "0.2", "0.4"], "non-numeric"),
    "a None": ([0.1, None, 0.3, 0.4, 0.5], "non-numeric"),
    "bools": ([True, False, True, False, True], "non-numeric"),
    "complex": ([1j, 0, 0, 0, 0], "non-numeric"),
    "decimal": ([Decimal("0.1")] * 5, "non-numeric"),
    "two columns": (np.zeros((5, 2)), "non-numeric"),
    "int too big for a float": ([10**400, 0, 0, 0, 0], "inf"),
    "a scalar": (0.5, "expected a list of 5 numbers"),
    "a string": ("0.1 0.2 0.3 0.4 0.5", "expected a list of 5 numbers"),
    "a dict": ({"scores": GOOD}, "expected a list of 5 numbers"),
    "None": (None, "expected a list of 5 numbers"),
    "a generator": ((x for x in GOOD), "expected a list of 5 numbers"),
}


def _fixed(value):
    def fn(pairs):
        return copy.copy(value) if not hasattr(value, "__next__") else value

    return fn


def _afixed(value):
    async def fn(pairs):
        return value

    return fn


class ScoreObject:
    def __init__(self, value):
        self.value = value

    def score(self, pairs):
        return self.value


def _call(rr, mode):
    docs = copy.deepcopy(DOCS)
    try:
        if mode == "sync":
            return rr.rerank("q", docs)
        return asyncio.run(rr.arerank("q", docs))
    finally:
        assert docs == DOCS  # the caller's documents are untouched even on failure


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["function", "async function", "object"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scores_are_a_clear_error(case, kind, mode):
    value, words = BAD[case]
    scorer = {"function": _fixed, "async function": _afixed, "object": ScoreObject}[kind](value)
    with pytest.raises(ScorerError, match=words):
        _call(Reranker(scorer=scorer), mode)


@pytest.mark.parametrize(
    "value",
    [
        GOOD,
        tuple(GOOD),
        np.array(GOOD, dtype=np.float32),
        np.array(GOOD).reshape(-1, 1),  # an (n, 1) array of logits
        torch.tensor(GOOD),
        [np.float64(x) for x in GOOD],
        [int(x * 10) for x in GOOD],
    ],
    ids=["list", "tuple", "float32", "n-by-1", "tensor", "numpy scalars", "ints"],
)
def test_valid_score_containers_become_plain_floats(value):
    ranked = _call(Reranker(scorer=lambda pairs: value), "sync")
    assert [r.document["id"] for r in ranked] == ["d2", "d4", "d0", "d3", "d1"]
    assert all(type(r.score) is float for r in ranked)


def test_a_model_that_outputs_nan_is_an_error(tiny_model, tmp_path):
    """The model path goes through the same check: NaN weights give NaN scores."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "nan-model"
    shutil.copytree(tiny_model, folder)
    state = load_file(folder / "model.safetensors")
    bias = next(name for name in state if name.startswith("classifier") and "bias" in name)
    state[bias] = torch.full_like(state[bias], float("nan"))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    rr = Reranker(model=str(folder))
    with pytest.raises(ScorerError, match="nan"):
        _call(rr, "sync")
    with pytest.raises(ScorerError, match="nan"):
        _call(rr, "async")
