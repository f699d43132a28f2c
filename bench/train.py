"""Train Ladder's GPT from one of our TOML configs in plain PyTorch: the reference the Rust
trainer is checked against (results/parity/) and timed against.

The loop is nanoGPT's (Karpathy, `train.py`): random windows, cosine schedule with linear
warmup, grad accumulation, global-norm clipping, AdamW; periodic evaluation on both splits.

    python bench/train.py experiments/shakespeare_char_cpu.toml [--seed N] [--out DIR]
        [--set section.key=value ...] [--max-iters N] [--device auto|cpu|cuda]

RNG order after `torch.manual_seed(seed)` (the global CPU generator; a Rust port that wants
the same numbers draws in this order): model init (gpt.py), then for every step:
at an eval step, eval_iters batches of train then eval_iters of val; then grad_accum
training batches, each one `torch.randint(len(split) - block_size, (batch_size,))`
(dropout, if any, draws from the same generator).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
import tomllib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from gpt import GPT, GPTConfig, configure_optimizer

ROOT = Path(__file__).resolve().parent.parent  # the workspace root

# Every key the Rust trainer accepts; anything else is an error, as there.
SCHEMA = {
    "run": {"name", "seed", "out_dir"},
    "data": {"tokenizer", "corpus", "cache_dir"},
    "model": {f for f in GPTConfig.__dataclass_fields__ if f != "vocab_size"},
    "train": {"batch_size", "grad_accum", "max_iters", "lr", "min_lr", "warmup_iters",
              "lr_decay_iters", "beta1", "beta2", "eps", "weight_decay", "grad_clip",
              "eval_interval", "eval_iters", "log_interval", "threads"},
}


def parse_value(text: str):
    """A TOML value (`3e-4`, `true`, `"sdpa"`); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: Path, overrides: list[str]) -> dict:
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError:
        sys.exit(f"error: config file {path} not found")
    except tomllib.TOMLDecodeError as e:
        sys.exit(f"error: {path} is not valid TOML: {e}")
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            sys.exit(f"error: --set expects section.key=value, got '{item}'")
        cfg.setdefault(section, {})[name] = parse_value(value)
    for section, keys in cfg.items():
        if section not in SCHEMA:
            sys.exit(f"error: {path}: unknown section [{section}] (expected {sorted(SCHEMA)})")
        if not isinstance(keys, dict):
            sys.exit(f"error: {path}: '{section}' must be a table")
        unknown = sorted(set(keys) - SCHEMA[section])
        if unknown:
            sys.exit(f"error: {path}: unknown key(s) {unknown} in [{section}] "
                     f"(expected some of {sorted(SCHEMA[section])})")
    for section in ("run", "data", "train"):  # [model] is checked by GPTConfig.from_dict
        missing = sorted(SCHEMA[section] - set(cfg.get(section, {})))
        if missing:
            sys.exit(f"error: {path}: missing key(s) {missing} in [{section}]")
    for key, value in cfg["train"].items():
        positive = key in ("batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval")
        is_int = key in INT_KEYS
        if isinstance(value, bool) or not isinstance(value, int if is_int else (int, float)) \
                or value < (1 if positive else 0):
            kind = "integer" if is_int else "number"
            sys.exit(f"error: [train].{key} must be a {'positive' if positive else 'non-negative'} "
                     f"{kind}, got {value!r}")
    if cfg["train"]["lr_decay_iters"] <= cfg["train"]["warmup_iters"]:
        sys.exit("error: [train].lr_decay_iters must be greater than warmup_iters (nanoGPT's schedule)")
    return cfg


INT_KEYS = {"batch_size", "grad_accum", "max_iters", "warmup_iters", "lr_decay_iters",
            "eval_interval", "eval_iters", "log_interval", "threads"}


def data_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/<corpus file stem>_<tokenizer>`, the layout `data prepare` writes."""
    corpus = data_cfg["corpus"] or os.environ.get("LADDER_DATA") or ""
    if not corpus:
        shared = os.environ.get("LADDER_SHARED") or str(ROOT.parent / "shared")
        corpus = str(Path(shared) / "data" / "tinyshakespeare.txt")
    return Path(data_cfg["cache_dir"]) / f"{Path(corpus).stem}_{data_cfg['tokenizer']}"


def load_tokens(folder: Path, tokenizer: str):
    if not folder.is_dir():
        sys.exit(f"error: token folder {folder.resolve()} not found; prepare it with\n"
                 f"    cargo run -p data --bin prepare -- --tokenizer {tokenizer}")
    try:
        meta = json.loads((folder / "meta.json").read_text())
        dtype = {"u16": np.uint16, "u32": np.uint32}[meta["dtype"]]
        vocab = int(meta["vocab_size"])
    except FileNotFoundError:
        sys.exit(f"error: {folder / 'meta.json'} not found (run the prepare tool again)")
    except (KeyError, ValueError) as e:
        sys.exit(f"error: {folder / 'meta.json'}: expected \"dtype\": \"u16\"|\"u32\" and "
                 f"an integer \"vocab_size\" ({e!r})")
    splits = {}
    for split in ("train", "val"):
        f = folder / f"{split}.bin"
        if not f.is_file():
            sys.exit(f"error: {f} not found (run the prepare tool again)")
        splits[split] = np.memmap(f, dtype=np.dtype(dtype).newbyteorder("<"), mode="r")
    return splits, vocab


def get_lr(it: int, t: dict) -> float:
    """nanoGPT's schedule: linear warmup, cosine decay to min_lr, then min_lr."""
    if it < t["warmup_iters"]:
        return t["lr"] * (it + 1) / (t["warmup_iters"] + 1)
    if it > t["lr_decay_iters"]:
        return t["min_lr"]
    ratio = (it - t["warmup_iters"]) / (t["lr_decay_iters"] - t["warmup_iters"])
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return t["min_lr"] + coeff * (t["lr"] - t["min_lr"])


def auto_dtype(device: str) -> str:
    """`dtype = "auto"`, the rule Ladder's `runtime::precision` applies: bf16 where the hardware
    runs it natively (CUDA compute capability >= 8.0; a CPU whose measured bf16 matmul rate is
    at least its fp32 one), fp32 otherwise (an AVX2-only CPU emulates bf16, 60x slower)."""
    if device == "cuda":
        native = torch.cuda.get_device_capability()[0] >= 8
    else:
        def rate(dtype: torch.dtype) -> float:
            n, best = 512, 0.0
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            a @ b  # warm-up
            for _ in range(3):
                t = time.perf_counter()
                a @ b
                best = max(best, 2 * n**3 / (time.perf_counter() - t))
            return best
        native = rate(torch.bfloat16) >= rate(torch.float32)
    choice = "bf16" if native else "fp32"
    print(f"dtype auto -> {choice} ({'native' if native else 'no native'} bf16 on {device})", file=sys.stderr)
    return choice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--seed", type=int, help="default: [run].seed")
    ap.add_argument("--out", type=Path, help="default: runs/pytorch/<run.name>/seed<N>")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--max-iters", type=int, help="override [train].max_iters")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()

    cfg = load_config(args.config, args.set)
    run, t = cfg["run"], cfg["train"]
    if args.max_iters is not None:
        t["max_iters"] = args.max_iters
    seed = args.seed if args.seed is not None else int(run["seed"])
    out = args.out or Path("runs/pytorch") / run["name"] / f"seed{seed}"
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = int(t["threads"]) or os.cpu_count()
    torch.set_num_threads(threads)

    splits, vocab = load_tokens(data_dir(cfg["data"]), cfg["data"]["tokenizer"])
    try:
        model = dict(cfg.get("model", {}))
        if model.get("dtype", "auto") == "auto":
            model["dtype"] = auto_dtype(device)
        mcfg = GPTConfig.from_dict({**model, "vocab_size": vocab})
    except (TypeError, ValueError) as e:
        sys.exit(f"error: {args.config}: [model]: {e}")
    B, T, accum = int(t["batch_size"]), mcfg.block_size, int(t["grad_accum"])
    for split, data in splits.items():
        if len(data) <= T:
            sys.exit(f"error: {split}.bin holds {len(data)} tokens, fewer than block_size+1 = {T + 1}")

    torch.manual_seed(seed)
    model = GPT(mcfg).to(device)
    opt = configure_optimizer(model, t["lr"], t["weight_decay"], (t["beta1"], t["beta2"]), t["eps"])
    ctx = (torch.autocast(device, dtype=torch.bfloat16) if mcfg.dtype == "bf16" else nullcontext())
    params = [p for p in model.parameters()]
    clip = float(t["grad_clip"]) if t["grad_clip"] > 0 else float("inf")  # inf: norm only

    def get_batch(split: str):
        data = splits[split]
        ix = torch.randint(len(data) - T, (B,))
        x = torch.from_numpy(np.stack([data[i:i + T] for i in ix.tolist()]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[i + 1:i + 1 + T] for i in ix.tolist()]).astype(np.int64))
        return x.to(device), y.to(device)

    @torch.no_grad()
    def estimate_loss() -> dict:
        model.eval()
        losses = {}
        for split in ("train", "val"):
            total = 0.0
            for _ in range(int(t["eval_iters"])):
                x, y = get_batch(split)
                with ctx:
                    total += model(x, y)[1].item()
            losses[split] = total / int(t["eval_iters"])
        model.train()
        return losses

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    out.mkdir(parents=True, exist_ok=True)
    eval_f = open(out / "eval.csv", "w", newline="")
    metrics_f = open(out / "metrics.csv", "w", newline="")
    eval_w, metrics_w = csv.writer(eval_f), csv.writer(metrics_f)
    eval_w.writerow(["step", "train_loss", "val_loss", "lr"])
    metrics_w.writerow(["step", "lr", "train_loss", "grad_norm", "tokens_per_sec", "ms_per_step"])
    print(f"torch {torch.__version__} | device {device} | threads {threads} | "
          f"params {model.num_params():,} | {B}x{T}x{accum} = {B * T * accum} tokens/step | out {out}")

    max_iters, tokens_per_step = int(t["max_iters"]), B * T * accum
    interval_s, interval_n = 0.0, 0
    timed_s, timed_steps = 0.0, 0  # steps >= 10 (past the warm-up)
    last = {}
    wall0 = time.perf_counter()
    model.train()
    for it in range(max_iters + 1):
        lr = get_lr(it, t)
        if it % int(t["eval_interval"]) == 0 or it == max_iters:
            last = estimate_loss()
            eval_w.writerow([it, f"{last['train']:.6f}", f"{last['val']:.6f}", f"{lr:.6e}"])
            eval_f.flush()
            print(f"step {it:5d} | eval train {last['train']:.4f} val {last['val']:.4f}")
        if it == max_iters:
            break
        sync()
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(accum):
            x, y = get_batch("train")
            with ctx:
                loss = model(x, y)[1] / accum
            loss.backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        interval_s, interval_n = interval_s + dt, interval_n + 1
        if it >= 10:
            timed_s, timed_steps = timed_s + dt, timed_steps + 1
        if it % int(t["log_interval"]) == 0 or it == max_iters - 1:
            tps = tokens_per_step * interval_n / interval_s
            ms = 1000 * interval_s / interval_n
            metrics_w.writerow([it, f"{lr:.6e}", f"{loss_sum:.6f}", f"{grad_norm:.6f}", f"{tps:.1f}", f"{ms:.2f}"])
            metrics_f.flush()
            print(f"step {it:5d} | loss {loss_sum:.4f} | lr {lr:.3e} | norm {grad_norm:.3f} | "
                  f"{ms:.1f} ms/step | {tps:,.0f} tok/s")
            interval_s, interval_n = 0.0, 0
    wall = time.perf_counter() - wall0
    eval_f.close()
    metrics_f.close()

    summary = {
        "final_val_loss": last.get("val"),
        "final_train_loss": last.get("train"),
        "tokens_per_sec": tokens_per_step * timed_steps / timed_s if timed_steps else None,
        "ms_per_step": 1000 * timed_s / timed_steps if timed_steps else None,
        "wall_seconds": wall,
        "iters": max_iters,
        "seed": seed,
        "params": model.num_params(),
        "torch_version": torch.__version__,
        "threads": threads,
        "device": device if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        "config": {**cfg, "model": dataclasses.asdict(mcfg)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    tps_text = f"{summary['tokens_per_sec']:,.0f} tok/s" if timed_steps else "n/a (fewer than 11 steps)"
    print(f"done in {wall:.1f}s | final val {summary['final_val_loss']:.4f} | "
          f"mean {tps_text} after step 10 | wrote {out}")


if __name__ == "__main__":
    main()
