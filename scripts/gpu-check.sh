#!/usr/bin/env bash
# The GPU check, in one go (at most about 8 minutes on one GPU): the full CUDA install, the
# model and infer tests (their CUDA cases run where a GPU is visible), the CUDA paths
# exercised (infer on the reference checkpoints, compared with CPU; dist's NCCL collectives,
# which must say "Gloo and NCCL"), the speed ladder and a
# short speed sweep (+ the real-size point) on GPT-2 small's shape on CUDA into
# results/speed/cuda/ (with the GPU's facts in its machine.json). Refuses, with a clear
# message, where no GPU is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU visible (nvidia-smi missing or failing); run this on a GPU machine" >&2
  exit 2
fi
nvidia-smi -L
export PATH="$HOME/.cargo/bin:$PWD/.venv/bin:$PATH"
command -v just >/dev/null 2>&1 || { [ -x .venv/bin/python ] || python3 -m venv .venv; .venv/bin/pip install -q rust-just==1.59.0; }
scripts/setup-libtorch.sh full
cargo build --release -p infer -p experiments -p dist --bins
echo "== model and infer tests (CUDA cases included)"
CI=true timeout 240 cargo test --release -p model -p infer 2>&1 | { grep -E "^test result|FAILED|panicked|cuda" || true; } | tail -40
shared="${LADDER_SHARED:-../shared}"
echo "== infer on CUDA: stories260K greedy ids (fp32) must equal the CPU's"
cpu=$(target/release/infer --model "$shared/models/stories260K" --prompt-ids 1 --temperature 0 --kv-cache --dtype fp32 --device cpu --format json --max-new-tokens 60)
gpu=$(target/release/infer --model "$shared/models/stories260K" --prompt-ids 1 --temperature 0 --kv-cache --dtype fp32 --device cuda --format json --max-new-tokens 60)
python3 - "$cpu" "$gpu" <<'PY'
import json, sys
a, b = (json.loads(x)["ids"] for x in sys.argv[1:3])
same = sum(x == y for x, y in zip(a[0], b[0]))
print(f"stories260K: {same}/{len(a[0])} greedy ids agree between CPU and CUDA")
sys.exit(0 if same == len(a[0]) else 1)
PY
target/release/infer --kv-cache --gqa 4 --device cuda --dtype auto --max-new-tokens 128 --format json | head -c 600; echo
echo "== dist: Gloo and NCCL collectives on one GPU (world size 1; 2 ranks where 2 GPUs are visible)"
out_dist=$(mktemp -d)/dist_check
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ngpu=$(nvidia-smi -L | wc -l); world=$(( ngpu >= 2 ? 2 : 1 ))
pids=()
for r in $(seq 0 $((world - 1))); do
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    LADDER_DIST_TIMEOUT_S=60 target/release/dist_check > "$out_dist.$r" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { cat "$out_dist".*; exit 1; }; done
cat "$out_dist".*
grep -q "Gloo and NCCL" "$out_dist.0" || { echo "gpu-check: dist built without NCCL" >&2; exit 1; }
echo "== speed ladder on CUDA (gpt2_124m)"
out=results/speed/cuda
for rung in 1_original 2_bf16 3_flash 4_kv_cache 5_gqa; do
  target/release/speed_$rung --device cuda --preset gpt2_124m --batch 8 --seq-len 1024 \
    --prompt-len 128 --new-tokens 256 --max-seconds 10 --out "$out"
done
echo "== speed sweep on CUDA (gpt2_124m: T up to 1024, decode context 256; + real size), 2 minutes at most"
target/release/speed_sweep --device cuda --preset gpt2_124m --real-size --point-seconds 4 \
  --total-minutes 2 --out "$out/sweep" --no-docs --command "scripts/gpu-check.sh (speed_sweep)" | tail -20
target/release/speed_report --out "$out" --command "scripts/gpu-check.sh" --no-docs > /dev/null
echo "gpu-check: done; results in $out/ (sweep: $out/sweep/README.md)"
