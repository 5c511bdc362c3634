"""`crossrank quantize`: a calibrated int8 OpenVINO model folder, with its fidelity report."""

from __future__ import annotations

import argparse
import os
from typing import Any

from crossrank.cli.exit_codes import EXIT_OK, InputError
from crossrank.cli.options import add_settings_arguments, settings_from
from crossrank.config import EngineSettings

NAME = "quantize"
_SETTINGS = ("model", "max_length", "trust_remote_code")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    q = subparsers.add_parser(
        NAME,
        help="write a calibrated int8 OpenVINO model folder, with its fidelity report",
        description=(
            "Calibrate static int8 quantisation (NNCF) of a cross-encoder on query/document "
            "pairs and write a model folder that model= loads (backend auto or openvino). "
            "Queries held apart from calibration measure fidelity against float32 (Kendall "
            "tau, top-10 overlap, score difference); the report is printed and saved as "
            "FOLDER.fidelity.json. Needs crossrank[quantize]."
        ),
    )
    q.add_argument(
        "--calibration",
        required=True,
        help='pairs as JSON Lines ({"query": ..., "document": ...} or [query, document] per '
        "line), or a BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv)",
    )
    q.add_argument("--out", "-o", required=True, help="the new model folder to write")
    q.add_argument("--samples", type=int, default=300, help="calibration pairs at most (300)")
    q.add_argument(
        "--eval-queries", type=int, default=5, help="queries held apart to measure fidelity (5)"
    )
    q.add_argument("--seed", type=int, default=0, help="seed of the calibration/held-apart split")
    add_settings_arguments(q, EngineSettings, include=_SETTINGS, short={"model": "-m"})
    return q


def run(args: argparse.Namespace) -> int:
    from crossrank.quantization import CalibrationError, quantize_model

    settings = settings_from(args, EngineSettings)
    try:
        fidelity = quantize_model(
            settings.model,
            args.calibration,
            args.out,
            samples=args.samples,
            eval_queries=args.eval_queries,
            max_length=settings.max_length,
            seed=args.seed,
            trust_remote_code=settings.trust_remote_code,
        )
    except CalibrationError as exc:  # the calibration data is this command's input
        raise InputError(str(exc)) from exc
    out = os.path.normpath(args.out)
    print(f"int8 model written to {out} (load it with model={out!r})")
    print("fidelity against float32, on pairs held apart from calibration:")
    print(fidelity.table())
    print(f"report written to {out}.fidelity.json")
    return EXIT_OK
