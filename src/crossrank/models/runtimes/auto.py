"""`backend="auto"`, the default: the fastest runtime that gives the exact scores.

On CPU that is OpenVINO, when it is installed and passes a fidelity self-check at load: a few
fixed pairs (short and long, so padding is exercised) are scored by torch and by the
converted model in float32, and every raw output must agree within `SELF_CHECK_ATOL`.
Passing the raw outputs (logits) within 1e-4 keeps the scores within 1e-4 under any
activation (a sigmoid only shrinks differences). Otherwise, and on a GPU, it is torch; a
fallback says why in one logged warning. `backend="openvino"` runs the same check and
refuses the model (a `ModelLoadError`) where `auto` would fall back: a converted graph that
does not reproduce torch is never served (a traced SDPA kernel, for one, gave NaN for a
causal LM's left padding until `export.eager_attention`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.models.batching import pad_batch

if TYPE_CHECKING:
    from crossrank.models.batching import Encoded
    from crossrank.models.families.base import Family
    from crossrank.models.loading import LoadedModel, ModelKey
    from crossrank.scorers.base import Pair

logger = logging.getLogger("crossrank")

SELF_CHECK_ATOL = 1e-4
SELF_CHECK_PAIRS: tuple[tuple[str, str], ...] = (
    ("what is lift", "Lift is the force that holds an aircraft in the air."),
    ("boundary layer", "a thin layer"),
    (
        "heat transfer in hypersonic flow",
        "Experimental measurements of heat transfer to a blunt body in hypersonic flow "
        "show that the stagnation point heating rate depends on the nose radius and on the "
        "free stream density; the results agree with the boundary layer theory within the "
        "scatter of the data, except near the shoulder where the flow separates.",
    ),
    ("Wie funktioniert ein Flügel?", "Ein Flügel erzeugt Auftrieb durch Druckunterschiede."),
)


def self_check(
    family: Family,
    loaded: LoadedModel,
    candidate: Callable[[dict[str, Any]], Any],
    encode: Callable[[Sequence[Pair]], list[Encoded]],
) -> float:
    """The largest |torch - candidate| raw output on the self-check pairs, in one batch."""
    from crossrank.models.runtimes.torch import TorchRunner

    rows = encode(list(SELF_CHECK_PAIRS))
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    features = pad_batch(rows, pad_id, left=family.padding_side == "left")
    reference = np.asarray(TorchRunner(family, loaded, "cpu")(features), dtype=np.float64)
    got = np.asarray(candidate(features), dtype=np.float64)
    if got.shape != reference.shape or not np.isfinite(got).all():
        return float("inf")
    return float(np.max(np.abs(got - reference)))


class SelfCheckFailed(Exception):
    """The converted model does not reproduce torch on the self-check pairs; says by how much."""


def checked_openvino_runner(
    family: Family,
    loaded: LoadedModel,
    key: ModelKey,
    *,
    dtype: str,
    num_threads: int | None,
    encode: Callable[[Sequence[Pair]], list[Encoded]],
) -> Any:
    """The OpenVINO runner for `dtype`, once its float32 model has passed the self-check.

    Raises `SelfCheckFailed`, or the conversion's own `ModelLoadError`.
    """
    from crossrank.models.runtimes.openvino import forget_compiled, openvino_runner

    exact = openvino_runner(family, loaded, key, dtype="float32", num_threads=num_threads)
    diff = self_check(family, loaded, exact, encode)
    if not diff <= SELF_CHECK_ATOL:
        forget_compiled(exact)
        shown = "not finite" if diff == float("inf") else f"max abs diff {diff:.2e}"
        raise SelfCheckFailed(
            f"OpenVINO failed the fidelity self-check on the {family.name} model ({shown} > "
            f"{SELF_CHECK_ATOL:.0e} against torch float32)"
        )
    if dtype == "float32":
        return exact
    forget_compiled(exact)  # compiled only for the check: bf16 compiles the same IR again
    return openvino_runner(family, loaded, key, dtype=dtype, num_threads=num_threads)


def auto_runner(
    family: Family,
    loaded: LoadedModel,
    key: ModelKey,
    *,
    dtype: str,
    num_threads: int | None,
    encode: Callable[[Sequence[Pair]], list[Encoded]],
    torch_runner: Callable[[str], Any],
) -> Any:
    """OpenVINO if it is installed and passes the self-check on this model, else torch.

    `torch_runner(reason)` builds the torch fallback (in `dtype`) and logs `reason`.
    """
    if key.device != "cpu":
        return torch_runner("")  # a GPU runs torch: nothing to say
    if dtype not in ("float32", "bfloat16"):
        return torch_runner(f"OpenVINO on CPU runs float32 or bfloat16, not {dtype}")
    try:
        import openvino  # noqa: F401
    except ImportError:
        return torch_runner("OpenVINO is not installed (pip install openvino)")
    try:
        return checked_openvino_runner(
            family, loaded, key, dtype=dtype, num_threads=num_threads, encode=encode
        )
    except SelfCheckFailed as failed:
        return torch_runner(str(failed))
    except Exception as exc:  # conversion or compilation failed: torch still works
        return torch_runner(f"OpenVINO could not run this model ({type(exc).__name__}: {exc})")


__all__ = [
    "SELF_CHECK_ATOL",
    "SELF_CHECK_PAIRS",
    "SelfCheckFailed",
    "auto_runner",
    "checked_openvino_runner",
    "self_check",
]
