"""Hugging Face transformers `generate` decode speed: the peer of Ladder's GPT-2 124M decode
in `just speed-peers` (issue #16).

GPT-2 small of the real shape (`GPT2Config()`: 12 layers, 12 heads, 768 wide, vocab 50,257,
random weights: no hub download), greedy, KV cache (`use_cache=True`), under
`torch.inference_mode()`, on CPU. Decode-only rate, as Ladder's sweep reports it: each
repeat times `generate` with 1 new token (prefill + the first token) and with N new tokens,
and the rate is (N - 1) / (t_N - t_1), the prefill cancelling out.

    .venv/bin/python bench/hf_generate.py --dtype bf16 --csv results/speed/peers/decode/transformers.csv

One CSV row per run (appended; header when new):
impl,dtype,batch,prompt,new_tokens,repeats,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max,
ms_per_step,threads,transformers_version,torch_version,timestamp
"""

import argparse
import csv
import datetime
import os
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens (random ids)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0 = torch's default (all cores)")
    ap.add_argument("--csv", required=True, help="CSV file to append the row to")
    args = ap.parse_args()
    if args.new_tokens < 2 or args.prompt < 1 or args.batch < 1 or args.repeats < 1:
        ap.error("--new-tokens must be ≥ 2; --prompt, --batch and --repeats ≥ 1")

    try:
        import torch
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as e:
        print(f"hf_generate: {e}; run `scripts/setup-libtorch.sh full` and "
              "`.venv/bin/pip install transformers` (or `just speed-peers`)", file=sys.stderr)
        return 2

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPT2Config()
    model = GPT2LMHeadModel(cfg).eval()
    if args.dtype == "bf16":
        model = model.to(torch.bfloat16)
    ids = torch.randint(cfg.vocab_size, (args.batch, args.prompt))
    mask = torch.ones_like(ids)

    def generate(n: int) -> float:
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, use_cache=True, pad_token_id=0)
        dt = time.perf_counter() - t0
        assert out.shape == (args.batch, args.prompt + n), out.shape
        return dt

    rates = []
    with torch.inference_mode():
        generate(4)  # warm-up
        for _ in range(args.repeats):
            t1 = generate(1)
            tn = generate(args.new_tokens)
            rates.append(args.batch * (args.new_tokens - 1) / max(tn - t1, 1e-9))
    med = statistics.median(rates)
    row = {
        "impl": "transformers",
        "dtype": args.dtype,
        "batch": args.batch,
        "prompt": args.prompt,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "tokens_per_sec": f"{med:.2f}",
        "tokens_per_sec_min": f"{min(rates):.2f}",
        "tokens_per_sec_max": f"{max(rates):.2f}",
        "ms_per_step": f"{1000 * args.batch / med:.2f}",
        "threads": torch.get_num_threads(),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    new = not os.path.exists(args.csv)
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    with open(args.csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    print(f"transformers generate, GPT-2 124M {args.dtype}, batch {args.batch}: "
          f"{med:.1f} tok/s decode ({min(rates):.1f}-{max(rates):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
