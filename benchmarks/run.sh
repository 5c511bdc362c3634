#!/usr/bin/env bash
# Builds the benchmark's venvs and runs benchmarks/bench.py (`make bench`).
#   benchmarks/run.sh                      # full run, writes benchmarks/results/latest.json
#   benchmarks/run.sh --quick              # N=10 only, 2 rounds, no large model
# Any other option is passed to benchmarks/bench.py (see --help).
#
# .venv-bench            crossrank[onnx] + openvino/nncf + the peers of benchmarks/requirements.txt
# .venv-bench-st-onnx     sentence-transformers' ONNX backend (optimum-onnx pins transformers)
# .venv-bench-st-openvino sentence-transformers' OpenVINO backend (optimum-intel)
# A peer that cannot be installed does not stop the others: the table says it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

make_venv() {  # make_venv FOLDER REQUIREMENTS [extra pip args...]
  local venv=$1 reqs=$2
  shift 2
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  fi
  if [ "$#" -gt 0 ]; then
    "$venv/bin/python" -m pip install -q -c constraints.txt "$@"
  fi
  if [ ! -f "$venv/.bench-installed" ] || [ "$reqs" -nt "$venv/.bench-installed" ]; then
    while read -r pkg; do
      case "$pkg" in '' | \#*) continue ;; esac
      "$venv/bin/python" -m pip install -q -c constraints.txt "$pkg" >/dev/null 2>&1 \
        || echo "note: could not install $pkg into $venv; the benchmark reports it" >&2
    done <"$reqs"
    # optimum-intel pulls a torchvision that does not match the pinned torch; nothing
    # here needs it and a mismatched one breaks `import transformers`.
    "$venv/bin/python" -m pip uninstall -q -y torchvision >/dev/null 2>&1 || true
    touch "$venv/.bench-installed"
  fi
}

# crossrank itself (editable), again whenever pyproject.toml changes its dependencies.
if [ ! -f .venv-bench/.crossrank-installed ] || [ pyproject.toml -nt .venv-bench/.crossrank-installed ]; then
  make_venv .venv-bench benchmarks/requirements.txt -e ".[onnx,quantize]"
  touch .venv-bench/.crossrank-installed
else
  make_venv .venv-bench benchmarks/requirements.txt
fi
make_venv .venv-bench-st-onnx benchmarks/requirements-st-onnx.txt
make_venv .venv-bench-st-openvino benchmarks/requirements-st-openvino.txt
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv-bench/bin/python benchmarks/bench.py "$@"
