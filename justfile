# Ladder: `just --list` shows every recipe. Recipes that need libtorch create the
# project-local .venv on demand (scripts/setup-libtorch.sh, idempotent).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Create .venv with torch==2.13.0 (lean CPU install; `just setup full` for CUDA / bench/).
setup mode="auto":
    @scripts/setup-libtorch.sh {{mode}}

# Build every crate (release).
build: setup
    cargo build --release --workspace --all-targets

# The whole test suite, with the same format and lint gates as CI.
test: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Format the code.
fmt:
    cargo fmt --all

# Lint (clippy with warnings as errors).
lint: setup
    cargo clippy --workspace --all-targets -- -D warnings

# The speed ladder (the main job): five rungs + the unpadded side row on synthetic data,
# then results/speed/{summary.csv,README.md,chart.svg,machine.json}. Each phase has a time
# budget (--max-seconds, 30 by default), so it takes bounded time on any machine. Extra
# args go to every rung, e.g. `just speed-ablation --preset gpt2_124m --max-seconds 60`.
speed-ablation *ARGS: setup
    #!/usr/bin/env bash
    set -euo pipefail
    start=$(date +%s)
    cargo build --release -p experiments --bins
    built=$(date +%s)
    for rung in 1_original 2_bf16 3_flash 4_kv_cache 5_gqa; do
        target/release/speed_$rung {{ARGS}}
    done
    target/release/speed_report --command "just speed-ablation {{ARGS}}" --wall-s $(( $(date +%s) - start )) --build-s $(( built - start )) > /dev/null
    echo "speed ladder: results/speed/README.md"

# The speed ladder as curves (issue #12): attention (naive vs SDPA) vs sequence length, decode
# (MHA, GQA-4, MQA) vs context × batch beside the bandwidth roofline, into results/speed/sweep/
# and docs/speed.md; each point in its own process within --point-seconds. Add --real-size for
# GPT-2 small's decode point (then in results/speed/README.md), --only attention|decode|real-size
# for one family, --quick for a seconds-long check (written to a temp folder, not results/).
speed-sweep *ARGS: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p experiments --bins
    target/release/speed_sweep --command "just speed-sweep {{ARGS}}" {{ARGS}}
    if [ -f results/speed/rungs/1_original.csv ] && [ -f results/speed/sweep/real_size.md ]; then
        target/release/speed_report --no-docs > /dev/null
    fi

# Per-token overhead, decode kernels and the training step (issue #16): stories260K greedy
# decode at 1 and 2 threads against llama2.c's speed, GPT-2 124M decode with the default vs the
# machine-tuned matmul kernels, and a gpt2_speed_cpu training step with the plain, chunked or fused
# cross-entropy and the per-tensor vs flat AdamW (fp32, and bf16 where native), into
# results/speed/overhead/ (~5 min; `--decode-only --kernel-runs 0` for seconds). Keep the
# machine idle while it runs.
speed-overhead *ARGS: setup
    cargo build --release -p experiments --bin speed_overhead
    target/release/speed_overhead --command "just speed-overhead {{ARGS}}" {{ARGS}}

# The accuracy ladder: four rungs (+ the optional GQA rung with `--gqa`) trained from scratch
# on Tiny Shakespeare; e.g. `just accuracy-ablation --seeds 3`.
accuracy-ablation *ARGS: setup
    cargo build --release -p experiments --bins
    for rung in 1_original 2_rope 3_rmsnorm 4_swiglu; do \
        target/release/accuracy_$rung {{ARGS}}; \
    done
    target/release/accuracy_report --command "just accuracy-ablation {{ARGS}}" > /dev/null
    @echo "accuracy ladder: results/accuracy/README.md"

# The optional fifth accuracy rung (GQA with n_head / 2 KV heads), then the report again.
accuracy-gqa *ARGS: setup
    cargo build --release -p experiments --bins
    target/release/accuracy_5_gqa {{ARGS}}
    target/release/accuracy_report --command "just accuracy-gqa {{ARGS}} (rungs 1-4: as last recorded by just accuracy-ablation)" > /dev/null

# The extension past Llama 3 (issue #14; docs/beyond-llama3.md): 5_gqa, then +untied head
# (6_untied), +q/k/v biases (7_qkv_bias), +mixture of experts (8_moe: 4 experts top-2 at
# the same active parameters) and +sliding window (9_sliding_window: W = block_size / 4),
# each on top of the one before; then the report again (rungs 1-4: as last recorded). About
# 6 minutes per seed per rung on an idle CPU (8_moe and 9_sliding_window more);
# e.g. `just accuracy-ablation-extended --seeds 3`.
accuracy-ablation-extended *ARGS: setup
    cargo build --release -p experiments --bins
    for rung in 5_gqa 6_untied 7_qkv_bias 8_moe 9_sliding_window; do \
        target/release/accuracy_$rung {{ARGS}}; \
    done
    target/release/accuracy_report --command "just accuracy-ablation-extended {{ARGS}} (rungs 1-4: as last recorded by just accuracy-ablation)" > /dev/null
    @echo "accuracy ladder: results/accuracy/README.md"

# The quantization ladder: dense (bf16 where the CPU has native bf16, else fp32) → int8 →
# int4 g128 → int4 g32, weight-only, on GPT-2-124M's shape and stories260K, then
# results/quant/{summary.csv,README.md,chart.svg}; e.g. `just quant-ablation --repeats 5`.
quant-ablation *ARGS: setup
    #!/usr/bin/env bash
    set -euo pipefail
    start=$(date +%s)
    cargo build --release -p experiments --bins
    for rung in 1_baseline 2_int8 3_int4_g128 4_int4_g32; do
        target/release/quant_$rung {{ARGS}}
    done
    target/release/quant_report --command "just quant-ablation {{ARGS}}" --wall-s $(( $(date +%s) - start )) > /dev/null
    echo "quant ladder: results/quant/README.md"

# Train any TOML config: `just train experiments/shakespeare_char_cpu.toml --set train.max_iters=300`.
train CONFIG *ARGS: setup
    cargo run --release -p experiments --bin train -- {{CONFIG}} {{ARGS}}

# Gloo on 127.0.0.1 with the environment torchrun sets, the cores split between the ranks; same as
# `torchrun --no-python --nproc-per-node N target/release/train CONFIG` (docs/distributed.md).
# Data-parallel training on N local processes: `just train-ddp 2 experiments/shakespeare_char_cpu.toml`.
train-ddp N CONFIG *ARGS: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p experiments --bin train
    n={{N}}
    threads=$(( $(nproc) / n )); (( threads >= 1 )) || threads=1
    export WORLD_SIZE=$n MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29500}
    export OMP_NUM_THREADS=$threads
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
    for (( r = 0; r < n; r++ )); do
        RANK=$r LOCAL_RANK=$r target/release/train {{CONFIG}} --set train.threads=$threads {{ARGS}} &
        pids+=($!)
    done
    # Like torchrun: the first rank to fail stops the others.
    status=0
    for (( r = 0; r < n; r++ )); do
        if ! wait -n; then status=1; kill "${pids[@]}" 2>/dev/null || true; fi
    done
    trap - EXIT
    exit $status

# Writes results/ddp/{README.md,allreduce.csv,train.csv} with the cost model (a few minutes).
# What DDP costs here: Gloo loopback all-reduce GB/s, 1x2 vs 2x1 training tokens/sec.
ddp-bench *ARGS: setup
    cargo build --release -p experiments --bin train --bin ddp_bench
    target/release/ddp_bench {{ARGS}}

# Generate text / measure inference: `just infer --kv-cache --gqa 4` (see `just infer --help`).
infer *ARGS: setup
    cargo run --release -p infer -- {{ARGS}}

# Tokenise a corpus into data-cache/ (default: Tiny Shakespeare, character level).
prepare *ARGS: setup
    cargo run --release -p data --bin prepare -- {{ARGS}}

# Download Tiny Shakespeare to data/tinyshakespeare.txt when ../shared does not have it.
data:
    #!/usr/bin/env bash
    set -euo pipefail
    shared="${LADDER_SHARED:-../shared}/data/tinyshakespeare.txt"
    if [ -f "$shared" ]; then echo "Tiny Shakespeare is already at $shared"; exit 0; fi
    mkdir -p data
    url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
    if curl -fsSL --max-time 60 -o data/tinyshakespeare.txt.tmp "$url"; then
        mv data/tinyshakespeare.txt.tmp data/tinyshakespeare.txt
        echo "downloaded data/tinyshakespeare.txt; use it with LADDER_DATA=$PWD/data/tinyshakespeare.txt"
    else
        rm -f data/tinyshakespeare.txt.tmp
        echo "could not download $url (no network?)." >&2
        echo "Copy the file there by hand, or point LADDER_DATA (or --data) at any UTF-8 text file." >&2
        exit 1
    fi

# Rust/tch beside our PyTorch eager reference (bench/) on the same shapes and precision:
# training tokens/sec of rungs 1–3, then results/speed/pytorch.md (included in the README).
# Needs the full torch install (`import torch`), which this recipe makes.
speed-vs-pytorch *ARGS:
    scripts/setup-libtorch.sh full
    cargo build --release -p experiments --bins
    rm -rf results/speed/vs_pytorch && mkdir -p results/speed/vs_pytorch
    for rung in 1_original 2_bf16 3_flash; do \
        target/release/speed_$rung --phases train --out results/speed/vs_pytorch {{ARGS}}; \
    done
    for cfg in "fp32 naive" "bf16 naive" "bf16 sdpa"; do set -- $cfg; \
        .venv/bin/python bench/speed.py --n-layer 6 --n-head 12 --n-embd 384 --vocab-size 50304 \
            --block-size 512 --batch 8 --seq-len 256 --dtype $1 --attention $2 \
            --warmup 2 --repeats 5 --steps 1 --csv results/speed/vs_pytorch/pytorch.csv; \
    done
    target/release/speed_compare --command "just speed-vs-pytorch {{ARGS}}"
    if [ -f results/speed/rungs/1_original.csv ]; then target/release/speed_report > /dev/null; fi

# Ladder beside its peers on this machine (issue #16): training on the speed preset and on
# shakespeare_char_cpu vs our PyTorch eager reference (bench/) and the nano-gpt package from
# PyPI (a nanoGPT-style GPT-2, eager and torch.compile'd), GPT-2 124M decode vs HF
# transformers `generate` and the bandwidth roofline; bf16 too where the CPU runs it natively.
# ROUNDS rounds (about 12 minutes each on a 2-core CPU), each pair back to back with the order
# swapped every round; each verdict is the median of the rounds' ratios (the VM drifts). The
# torch.compile'd column (no target) runs in round 1 only. Rows in results/speed/peers/round*/,
# the table in results/speed/peers.md. Needs the full torch install, transformers and nano-gpt
# from PyPI (made here); keep the machine idle.
speed-peers ITERS="100" ROUNDS="3":
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/setup-libtorch.sh full
    .venv/bin/python -c "import transformers" 2>/dev/null \
        || .venv/bin/pip install -q --disable-pip-version-check transformers==5.24.0
    .venv/bin/python -c "import nano_gpt" 2>/dev/null \
        || .venv/bin/pip install -q --disable-pip-version-check nano-gpt==0.1.0
    cargo build --release -p experiments --bins
    out=results/speed/peers
    rm -rf "$out" runs/peers && mkdir -p "$out"
    dtypes=$(target/release/speed_peers --dtypes)
    decode_dtypes=$(target/release/speed_peers --decode-dtypes)
    echo "speed-peers: precisions on this CPU: $dtypes (decode: $decode_dtypes); {{ROUNDS}} rounds"
    bench() { .venv/bin/python bench/speed.py "$@"; }
    # A pair back to back: Ladder ($1) first in odd rounds, the peers ($2) first in even ones.
    pair() { if (( round % 2 )); then "$1"; "$2"; else "$2"; "$1"; fi; }
    for round in $(seq 1 {{ROUNDS}}); do
        r="$out/round$round" runs="runs/peers/round$round"
        mkdir -p "$r/char"
        echo "speed-peers: round $round of {{ROUNDS}}"
        # 1. The speed preset (6 layers, 12 heads, 384 wide, vocab 50,304, batch 8 x 256): each
        #    Ladder rung beside the peers on the same dtype and kernel. The nano-gpt peer has
        #    SDPA only: the fp32 rung also runs with --attention sdpa.
        preset=(--n-layer 6 --n-head 12 --n-embd 384 --vocab-size 50304 --block-size 512 --batch 8
                --seq-len 256 --warmup 2 --repeats 5 --steps 1 --csv "$r/train_preset/pytorch.csv")
        for cfg in "1_original fp32 naive" "1_original fp32 sdpa" "2_bf16 bf16 naive" "3_flash bf16 sdpa"; do
            set -- $cfg
            rung=$1 dt=$2 attn=$3
            [[ $dtypes == *$dt* ]] || continue
            ours() {
                if [[ $rung == 1_original && $attn == sdpa ]]; then
                    target/release/speed_$rung --phases train --attention sdpa --out "$r/train_preset/sdpa"
                else
                    target/release/speed_$rung --phases train --out "$r/train_preset"
                fi
            }
            theirs() {
                bench "${preset[@]}" --dtype $dt --attention $attn
                if [[ $attn == sdpa ]]; then
                    bench "${preset[@]}" --dtype $dt --attention sdpa --impl nano-gpt
                    (( round > 1 )) || bench "${preset[@]}" --dtype $dt --attention sdpa --impl nano-gpt --compile
                fi
            }
            pair ours theirs
        done
        # 2. shakespeare_char_cpu, {{ITERS}} steps each (eval cut to one batch: not timed anyway);
        #    the nano-gpt peer at the same shape, 5 x 10 timed steps on random ids.
        char=(--n-layer 4 --n-head 4 --n-embd 128 --vocab-size 65 --block-size 128 --batch 32
              --seq-len 128 --attention sdpa --impl nano-gpt --warmup 3 --repeats 5 --steps 10
              --csv "$r/char/nano_gpt.csv")
        for dt in $dtypes; do
            ours() {
                for attn in sdpa auto; do
                    local name=ladder_$dt
                    [[ $attn == sdpa ]] || name=ladder_auto_$dt
                    target/release/train experiments/shakespeare_char_cpu.toml --quiet \
                        --set train.max_iters={{ITERS}} --set train.eval_iters=1 --set model.dtype=$dt \
                        --set model.attention=$attn --set run.out_dir=$runs/$name
                    cp $runs/$name/metrics.csv "$r/char/$name.csv"
                    cp $runs/$name/summary.json "$r/char/$name.summary.json"
                done
            }
            theirs() {
                .venv/bin/python bench/train.py experiments/shakespeare_char_cpu.toml --max-iters {{ITERS}} \
                    --set train.eval_iters=1 --set model.dtype=$dt --set model.attention=sdpa --out $runs/pytorch_$dt
                cp $runs/pytorch_$dt/metrics.csv "$r/char/pytorch_$dt.csv"
                bench "${char[@]}" --dtype $dt
                (( round > 1 )) || bench "${char[@]}" --dtype $dt --compile
            }
            pair ours theirs
        done
        # 3. GPT-2 124M decode, batch 1, prompt 64 + 128 new tokens: fp32, and bf16 where it
        #    is native or the decode gemv is (the sweep's point runs fp32 and --dtype).
        fast=auto
        [[ $decode_dtypes != *bf16* ]] || fast=bf16
        ours() { target/release/speed_sweep --only real-size --real-size --dtype $fast --out "$r/decode" --command "just speed-peers"; }
        theirs() {
            for dt in $decode_dtypes; do
                .venv/bin/python bench/hf_generate.py --dtype $dt --csv "$r/decode/transformers.csv"
            done
        }
        pair ours theirs
    done
    target/release/speed_peers --command "just speed-peers {{ITERS}} {{ROUNDS}}"

# Where a training step's time goes: perf samples of Ladder's and PyTorch's training on the
# speed preset (fp32, naive attention) and on shakespeare_char_cpu (fp32, sdpa), grouped into
# kernel families, into results/speed/profile/. Needs `perf` and the full torch install (made
# here). Keep the machine idle.
profile-train:
    scripts/profile-train.sh

# Parity with our PyTorch reference on shakespeare_char_cpu, 3 seeds each: the Rust side is
# the accuracy ladder's first rung (run here if its 3-seed results are missing).
parity SEEDS="3":
    scripts/setup-libtorch.sh full
    cargo build --release -p experiments --bins
    if ! .venv/bin/python -c "import json,sys; sys.exit(len(json.load(open('results/accuracy/rungs/1_original.json'))['seeds']) < {{SEEDS}})" 2>/dev/null; then \
        target/release/accuracy_1_original --seeds {{SEEDS}}; \
    fi
    mkdir -p results/parity
    for i in $(seq 0 $(({{SEEDS}} - 1))); do s=$((1337 + i)); \
        .venv/bin/python bench/train.py experiments/shakespeare_char_cpu.toml --seed $s --out runs/pytorch/seed$s; \
        cp runs/pytorch/seed$s/eval.csv results/parity/pytorch_seed$s.csv; \
    done
    target/release/parity_report --command "just parity {{SEEDS}}" > /dev/null
    @echo "parity: results/parity/README.md"
