#!/usr/bin/env bash
# The CUDA paths a CPU machine cannot run, in under 8 minutes on one GPU: bf16 and fp16
# training, the feature caches on the GPU, gradient checkpointing and its memory saving,
# trainer.auto_batch_size against a real CUDA out-of-memory, no host syncs in the hot loop,
# one GPU per parallel sweep job, and runner vs the HF Trainer throughput. One line per
# check: PASS|FAIL|SKIP name: numbers.
# Exit code 1 if a check failed (124 if it ran past 8 minutes).
#
#   make .venv/.installed TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
#   benchmarks/gpu_check.sh                        # uses .venv, or PYTHON=/path/to/python
#   GPU_CHECK_DEVICE=cpu benchmarks/gpu_check.sh   # smoke mode on a CPU: what can run, small
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "no $PY: install first (make .venv/.installed TORCH=...), or set PYTHON=<python with runner installed>" >&2
  exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, installed or not
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1 TRANSFORMERS_VERBOSITY=error
export RUNNER_CACHE_DIR="${RUNNER_CACHE_DIR:-$(mktemp -d)}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py
