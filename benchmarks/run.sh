#!/usr/bin/env bash
# Creates .venv-bench (crossrank[onnx] + the peer libraries) and runs the benchmark.
#   benchmarks/run.sh                      # full run, writes benchmarks/results/latest.json
#   benchmarks/run.sh --quick              # N=100 only, fewer repeats
# Any other option is passed to benchmarks/bench.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --upgrade pip >/dev/null
  "$VENV/bin/pip" install -c constraints.txt -e ".[onnx]"
fi
# Peers one by one: one that cannot be installed must not stop the others.
while read -r pkg; do
  case "$pkg" in ''|\#*) continue ;; esac
  "$VENV/bin/pip" install -q -c constraints.txt "$pkg" >/dev/null 2>&1 \
    || echo "note: could not install $pkg; the benchmark reports it as missing" >&2
done < benchmarks/requirements.txt
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$VENV/bin/python" benchmarks/bench.py "$@"
