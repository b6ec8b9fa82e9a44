#!/usr/bin/env bash
# Run on the lent GPU machine (see gpu_check_prepare.sh): install the carried wheels beside its own
# torch, then the check, with the table written to $OUT (the device tool brings it back).
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
timeout 345 python3 benchmarks/gpu_check.py --data .gpu_carry --out "${OUT:-/tmp}/gpu_check.md" 2>&1 | tee "${OUT:-/tmp}/gpu_check.log"
