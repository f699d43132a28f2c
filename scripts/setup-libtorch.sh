#!/usr/bin/env bash
# Make the project-local libtorch: .venv with torch==2.13.0 from PyPI (what tch 0.26 needs).
#   lean (default without a GPU): torch --no-deps + the two CUDA wheels libtorch_cpu needs (~1.2 GB)
#   full (default with nvidia-smi, or LADDER_TORCH=full): torch with every nvidia-* wheel (~4.7 GB);
#        needed for CUDA and for the Python reference in bench/ (`import torch`).
# Idempotent: does nothing when the requested install is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0
mode="${1:-${LADDER_TORCH:-auto}}"
if [ "$mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=full; else mode=lean; fi
fi
case "$mode" in lean|full) ;; *) echo "setup: unknown mode '$mode' (expected lean or full)" >&2; exit 2;; esac

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null; then echo "setup: $PY not found; install Python 3 (3.10 to 3.13)" >&2; exit 1; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp=".venv/.ladder-$mode-$TORCH_VERSION"
if [ -f "$stamp" ] || { [ "$mode" = lean ] && [ -f ".venv/.ladder-full-$TORCH_VERSION" ]; }; then
  :
else
  echo "setup: installing torch==$TORCH_VERSION ($mode) into .venv ..." >&2
  if [ "$mode" = lean ]; then
    .venv/bin/pip install -q --disable-pip-version-check --no-deps "torch==$TORCH_VERSION" \
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  else
    .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy
  fi
  touch "$stamp"
fi
# The full install also gets the headers the NCCL backend of `dist` compiles against (CUDA's
# crt headers and CCCL; header-only wheels, ~20 MB): see crates/dist/build.rs.
if [ "$mode" = full ] && [ ! -f "$site/nvidia/cu13/include/crt/host_config.h" ]; then
  echo "setup: installing the CUDA headers NCCL needs (nvidia-cuda-crt, nvidia-cuda-cccl) ..." >&2
  .venv/bin/pip install -q --disable-pip-version-check --no-deps \
    nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85
fi
ln -sfn "$site/torch" .venv/libtorch
[ -f .venv/libtorch/lib/libtorch_cpu.so ] || { echo "setup: .venv/libtorch/lib/libtorch_cpu.so missing; remove .venv and run again" >&2; exit 1; }
