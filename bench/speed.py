"""Training throughput of the PyTorch reference GPT (bench/gpt.py): forward + backward +
AdamW step on synthetic token ids, the number `just speed-vs-pytorch` puts beside Ladder's.

    python bench/speed.py --preset speed_cpu --dtype bf16 --attention sdpa --batch 8 --seq-len 256
    python bench/speed.py --n-layer 6 --n-head 6 --n-embd 384 --vocab-size 50304 --block-size 256

One step = zero_grad + forward (mean cross-entropy) + backward + AdamW step (foreach=False,
no clipping), on one fixed random batch (data loading is not timed).

`--impl nano-gpt` times a third-party peer instead of our reference: the `nano-gpt` package
from PyPI (Allen Porter's packaging of Karpathy's build-nanogpt GPT-2: SDPA attention,
tanh GELU, tied head, biases, its own `configure_optimizers` AdamW), the nearest thing to
nanoGPT a package registry offers (`just speed-peers` installs it). `--compile` wraps either
model in `torch.compile` (compilation happens in the untimed warm-up). bf16 is autocast, as
nanoGPT does it. `--warmup` steps run
first untimed; then `--repeats` timings of `--steps` steps each; tokens/sec is reported as
the median (min, max) over the repeats. One CSV row is appended to `--csv` (header written
when the file is new):
impl,phase,dtype,attention,n_kv_heads,vocab_size,batch,seq_len,tokens_per_sec,
tokens_per_sec_min,tokens_per_sec_max,ms_per_step,threads,torch_version,device,timestamp,
page_faults_per_step (minor page faults per timed step: fresh pages the kernel maps and zeroes)
"""

from __future__ import annotations

import argparse
import csv
import resource
import datetime as dt
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from gpt import GPT, PRESETS, GPTConfig, configure_optimizer

COLUMNS = ["impl", "phase", "dtype", "attention", "n_kv_heads", "vocab_size", "batch", "seq_len",
           "tokens_per_sec", "tokens_per_sec_min", "tokens_per_sec_max", "ms_per_step", "threads",
           "torch_version", "device", "timestamp", "page_faults_per_step"]


def nano_gpt_peer(cfg: GPTConfig, device: str):
    """The nano-gpt package's model and optimizer at our shape (SDPA attention only)."""
    if cfg.attention != "sdpa":
        sys.exit("error: --impl nano-gpt has SDPA attention only (use --attention sdpa)")
    if cfg.n_kv_heads != cfg.n_head or cfg.intermediate_size not in (None, 4 * cfg.n_embd):
        sys.exit("error: --impl nano-gpt is GPT-2 only: no --n-kv-heads, no --intermediate-size")
    try:
        from nano_gpt.config import GPTConfig as PeerConfig
        from nano_gpt.model import GPT as PeerGPT
    except ImportError as e:
        sys.exit(f"error: --impl nano-gpt needs the nano-gpt package "
                 f"(pip install nano-gpt==0.1.0): {e}")
    peer = PeerConfig(block_size=cfg.block_size, vocab_size=cfg.vocab_size, n_layer=cfg.n_layer,
                      n_head=cfg.n_head, n_embd=cfg.n_embd)
    model = PeerGPT(peer, tokenizer=None).to(device)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4, use_fused=False)
    return model, opt


def build_config(a: argparse.Namespace) -> GPTConfig:
    shape = dict(PRESETS[a.preset]) if a.preset else {}
    for key in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size"):
        if getattr(a, key) is not None:
            shape[key] = getattr(a, key)
    missing = [k for k in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size") if k not in shape]
    if missing:
        sys.exit(f"error: without --preset, pass --{' --'.join(m.replace('_', '-') for m in missing)}")
    shape.setdefault("bias", True)
    shape.setdefault("tie_embeddings", True)
    shape["intermediate_size"] = a.intermediate_size or shape.get("intermediate_size") or 4 * shape["n_embd"]
    # --n-kv-heads wins; a --n-head without it means MHA; else the preset's.
    shape["n_kv_heads"] = a.n_kv_heads or (shape["n_head"] if a.n_head else shape.get("n_kv_heads", shape["n_head"]))
    shape.update(attention=a.attention, dtype=a.dtype, dropout=0.0)
    try:
        return GPTConfig.from_dict(shape)
    except ValueError as e:
        sys.exit(f"error: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), help="model shape; flags below override it")
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--n-head", type=int)
    ap.add_argument("--n-embd", type=int)
    ap.add_argument("--vocab-size", type=int)
    ap.add_argument("--block-size", type=int)
    ap.add_argument("--intermediate-size", type=int, help="default: 4·n_embd")
    ap.add_argument("--n-kv-heads", type=int, help="default: n_head (MHA)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--attention", default="sdpa", choices=["naive", "sdpa"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, help="default: block_size")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    ap.add_argument("--threads", type=int, default=0, help="0 = os.cpu_count()")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--csv", type=Path, help="append the result row here")
    ap.add_argument("--impl", default="pytorch", choices=["pytorch", "nano-gpt"],
                    help="pytorch: our reference (bench/gpt.py); nano-gpt: the PyPI package")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = ap.parse_args()

    cfg = build_config(a)
    T = a.seq_len or cfg.block_size
    if T > cfg.block_size:
        sys.exit(f"error: --seq-len {T} is longer than block_size {cfg.block_size}")
    if min(a.batch, a.repeats, a.steps) < 1 or a.warmup < 0:
        sys.exit("error: --batch, --repeats and --steps must be at least 1, --warmup at least 0")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    threads = a.threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)

    if a.impl == "nano-gpt":
        model, opt = nano_gpt_peer(cfg, device)
    else:
        model = GPT(cfg).to(device)
        opt = configure_optimizer(model, 6e-4, 0.1, (0.9, 0.95), 1e-8)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    impl = a.impl + ("+compile" if a.compile else "")
    if a.compile:
        # Compile in this process: inductor's pool of compile workers would otherwise still
        # be busy on the 2 cores while the timed steps run.
        import torch._inductor.config as inductor_config
        inductor_config.compile_threads = 1
        model = torch.compile(model)
    if a.warmup < 1 and a.compile:
        sys.exit("error: --compile needs --warmup 1 or more (the first step compiles)")
    ctx = torch.autocast(device, dtype=torch.bfloat16) if cfg.dtype == "bf16" else nullcontext()
    x = torch.randint(cfg.vocab_size, (a.batch, T), device=device)
    y = torch.randint(cfg.vocab_size, (a.batch, T), device=device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx:
            _, loss = model(x, y)
        loss.backward()
        opt.step()

    print(f"{impl} (torch {torch.__version__}) | {device} | threads {threads} | params {n_params:,} | "
          f"{cfg.dtype} {cfg.attention} n_kv_heads {cfg.n_kv_heads} | batch {a.batch} x seq {T}",
          flush=True)
    for _ in range(a.warmup):
        step()
    sync()
    rates, ms = [], []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for r in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        sync()
        elapsed = time.perf_counter() - t0
        rates.append(a.batch * T * a.steps / elapsed)
        ms.append(1000 * elapsed / a.steps)
        print(f"repeat {r + 1}/{a.repeats}: {rates[-1]:,.0f} tok/s, {ms[-1]:.1f} ms/step", flush=True)

    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / (a.repeats * a.steps)
    dev_name = "cpu" if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
    row = {
        "impl": impl, "phase": "train", "dtype": cfg.dtype, "attention": cfg.attention,
        "n_kv_heads": cfg.n_kv_heads, "vocab_size": cfg.vocab_size, "batch": a.batch, "seq_len": T,
        "tokens_per_sec": f"{statistics.median(rates):.1f}",
        "tokens_per_sec_min": f"{min(rates):.1f}", "tokens_per_sec_max": f"{max(rates):.1f}",
        "ms_per_step": f"{statistics.median(ms):.2f}", "threads": threads,
        "torch_version": torch.__version__, "device": dev_name,
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "page_faults_per_step": f"{faults:.0f}",
    }
    print(f"median {row['tokens_per_sec']} tok/s (min {row['tokens_per_sec_min']}, "
          f"max {row['tokens_per_sec_max']}), {row['ms_per_step']} ms/step, "
          f"{row['page_faults_per_step']} page faults/step")
    if a.csv:
        new = not a.csv.exists() or a.csv.stat().st_size == 0
        a.csv.parent.mkdir(parents=True, exist_ok=True)
        # An existing file keeps its own header (one written before a column was added).
        if new:
            fields = COLUMNS
        else:
            with open(a.csv, newline="") as f:
                fields = next(csv.reader(f))
        with open(a.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        print(f"appended to {a.csv}")


if __name__ == "__main__":
    main()
