#!/usr/bin/env bash
# The GPU benchmark grid, from a fresh machine with one CUDA GPU and python3 (with pip).
#
#   benchmarks/gpu.sh                        # registry access: installs what is missing
#   benchmarks/gpu.sh --wheels DIR           # no registry: installs from wheels in DIR only
#   benchmarks/gpu.sh --download-wheels DIR  # on a machine WITH registry access and the same
#                                            # OS / CPU / Python: fills DIR for the above
#   benchmarks/gpu.sh --device cpu --quick   # the same path on a CPU (checks the script runs)
#
# It makes .venv-gpu (or uses the system python where `venv` is missing), installs a CUDA
# build of torch if the python has none (PyPI's Linux torch wheels are CUDA builds), then
# runs benchmarks/bench.py --preset gpu: CrossEncoder.predict (fp32 and fp16) against
# crossrank's default (torch fp16 on CUDA), bf16 and fp32, at N=10, 100, 500, for MiniLM-L6
# (the trained fixture if ../shared has it, else a random-weights model of its shape), the
# XLM-R-large-sized model (bge-reranker-v2-m3's shape) and the Qwen3-Reranker-0.6B-sized
# causal LM (where crossrank has that family). Writes benchmarks/results/gpu-latest.json and
# prints the table. Meant to finish in under 5 minutes on one recent GPU; extra options are
# passed to bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-gpu}
DEVICE=cuda
QUICK=0
WHEELS=""
DOWNLOAD=""
EXTRA=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --wheels) WHEELS=$(cd "$2" && pwd); shift 2 ;;
    --download-wheels) DOWNLOAD=$2; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

if [ -n "$DOWNLOAD" ]; then
  mkdir -p "$DOWNLOAD"
  "$PYTHON" -m pip download -d "$DOWNLOAD" torch -r benchmarks/requirements-gpu.txt
  echo "wheels in $DOWNLOAD; on the GPU machine: benchmarks/gpu.sh --wheels $DOWNLOAD"
  exit 0
fi

# A venv where the python can make one; the system python otherwise (pip --user).
if [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
  PY="$VENV/bin/python"
  PIP=("$PY" -m pip install -q)
else
  echo "note: '$PYTHON -m venv' is unavailable; installing into the user site" >&2
  PY=$PYTHON
  PIP=("$PY" -m pip install -q --user --break-system-packages)
fi
if [ -n "$WHEELS" ]; then
  PIP+=(--no-index --find-links "$WHEELS")
fi

if [ "$DEVICE" = cpu ]; then
  want_torch='import torch'
  # The CPU check installs the project's pinned CPU torch, not a multi-GB CUDA build.
  PIP+=(-c constraints.txt)
else
  want_torch='import torch, sys; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)'
fi
if ! "$PY" -c "$want_torch" >/dev/null 2>&1; then
  echo "installing torch ($DEVICE)..." >&2
  "${PIP[@]}" torch
  "$PY" -c "$want_torch" || { echo "torch has no usable CUDA device here" >&2; exit 1; }
fi
if ! "$PY" -c 'import transformers, sentence_transformers, scipy, psutil, pydantic, httpx' \
  >/dev/null 2>&1; then
  "${PIP[@]}" -r benchmarks/requirements-gpu.txt
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
ARGS=(--device "$DEVICE" --preset gpu --skip-peers --skip-concurrency --skip-int8
  --threads "$(nproc)" --out benchmarks/results/gpu-latest.json)
if [ "$QUICK" = 1 ]; then
  # The whole path (every model built and run), at N=10 and one round: a check, not figures.
  ARGS+=(--sizes 10 --large-sizes 10 --causal-sizes 10 --repeats 1 --large-repeats 1
    --out benchmarks/results/gpu-quick.json)
else
  ARGS+=(--sizes 10,100,500 --large-sizes 10,100,500 --causal-sizes 10,100,500
    --repeats 5 --large-repeats 3)
fi
start=$(date +%s)
"$PY" benchmarks/bench.py "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
echo "gpu.sh: done in $(($(date +%s) - start)) s"
