#!/usr/bin/env bash
# One command for a person with a GPU: after `make venv GPU=1` (the only install; nothing else
# is downloaded), check that JAX sees the GPU and write one CSV of SORL and FQL updates/s at the
# paper's sizes with 1, 2, 4 and 8 seeds in one program, plus one 50-episode evaluation, with
# the device name and versions (benchmarks/gpu_check.py). Ends within about 8 minutes.
# Without a GPU it says so and still writes the CSV, measured on the CPU with tiny counts.
#
#   benchmarks/gpu_check.sh [--out FILE.csv] [--quick] [--budget-s 420]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
if [ ! -x "$python" ]; then
    echo "gpu_check: $python not found; run 'make venv GPU=1' first (or set PYTHON)" >&2
    exit 1
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
    echo "gpu_check: nvidia-smi not found (no NVIDIA driver on this machine?)"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "$python" benchmarks/gpu_check.py "$@"
