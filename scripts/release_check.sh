#!/usr/bin/env bash
# `make dist`: build the three packages (wheel + sdist each) into dist/, check them
# (twine check, then scripts/check_dist.py: licence, py.typed, contents, metadata), install the
# wheels into a fresh venv and rerank through each package (scripts/smoke_dist.py).
#
#   PYTHON=.venv/bin/python scripts/release_check.sh
#
# $PYTHON's environment needs the dev group (build, hatchling, twine): the builds run without
# isolation, so no build backend is downloaded per package. The fresh venv gets the wheels'
# dependencies from the package index (torch held to the CPU build by constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
python="${PYTHON:-.venv/bin/python}"
out="${DIST_DIR:-dist}"
venv="$(realpath -m "${SMOKE_VENV:-.venv-dist-smoke}")"

rm -rf "$out"
for project in . integrations/langchain integrations/llamaindex; do
  "$python" -m build --no-isolation --outdir "$out" "$project"
done
"$python" -m twine check --strict "$out"/*
"$python" scripts/check_dist.py "$out"

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -c constraints.txt "$out"/*.whl
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# From outside the repository, offline: nothing may come from the source tree or the hub.
(cd "$work" && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" \
  "$repo/scripts/smoke_dist.py")
