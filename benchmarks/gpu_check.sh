#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py): on a CUDA machine the real recipe's shapes in under 5 minutes,
# on a CPU the same code at `tiny` dimensions in under a minute. Prints a table; exits non-zero when a check fails.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]     e.g. --device cpu, --ddp on, --skip script
#
# Python: $PYTHON, else the repository's .venv, else python3 (the CUDA image's interpreter). Wheels in .whl/ (packages
# the machine lacks, e.g. `datasets` for the training-script rows) are installed to /tmp/site first. The JSON of
# every row and figure goes to $OUT/gpu_check.json when OUT is set. GPU_CHECK_TIMEOUT (seconds, default 290) bounds
# the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
JSON=()
if [ -n "${OUT:-}" ]; then JSON=(--json "$OUT/gpu_check.json"); fi
exec timeout "${GPU_CHECK_TIMEOUT:-290}" "$PY" benchmarks/gpu_check.py "${JSON[@]}" "$@"
