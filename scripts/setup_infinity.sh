#!/usr/bin/env bash
# Install the infinity-emb rerank server in its own virtual environment.
#
#   scripts/setup_infinity.sh            -> .venv-infinity/bin/infinity_emb
#   CROSSRANK_INFINITY_VENV=DIR scripts/setup_infinity.sh
#
# infinity-emb pins dependencies that differ from crossrank's, so it gets a venv of its own.
# torch is held to the CPU build on this machine's disk by constraints.txt (never a CUDA
# download); scripts/infinity-constraints.txt pins the rest to versions known to work.
# Idempotent: a finished install is left alone (a stamp file records it).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CROSSRANK_INFINITY_VENV:-.venv-infinity}"
python="${PYTHON:-python3}"
stamp="$venv/.installed-infinity"
want="$(cat constraints.txt scripts/infinity-constraints.txt | sha256sum | cut -c1-16)"

if [ -x "$venv/bin/infinity_emb" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -c constraints.txt -c scripts/infinity-constraints.txt \
  "infinity-emb[server,torch]"
"$venv/bin/infinity_emb" --help > /dev/null
echo "$want" > "$stamp"
echo "infinity-emb installed in $venv"
