"""Where a training step's CPU time goes, from `perf report` text: samples grouped into kernel
families (matrix multiply, softmax/cross-entropy, normalisation, GELU, other elementwise,
embedding, copies/casts, reductions, OpenMP waiting, Python, the kernel's page handling),
written as CSV rows and a Markdown table by scripts/profile-train.sh.

Usage: perf_summary.py LABEL REPORT.txt CSV  (appends LABEL's rows to CSV; prints the table rows)
REPORT.txt: `perf report --no-children --sort dso,sym --stdio -q` output.
"""
import csv
import os
import re
import sys

# First match wins; patterns are searched in "dso symbol".
FAMILIES = [
    ("matrix multiply (BLAS / oneDNN)", r"gemm|mkl_blas|sgemm|brgemm|dnnl|jit_|_ukernel|amx|avx512_core"),
    ("OpenMP threads waiting", r"libgomp|libiomp|kmp_"),
    ("softmax / cross-entropy", r"softmax|nll_loss|cross_entropy|log_sum_exp|logsumexp"),
    ("attention (SDPA)", r"flash_attention|scaled_dot_product"),
    ("LayerNorm / RMSNorm", r"layer_norm|LayerNorm|rms_norm|batch_norm"),
    ("GELU / tanh", r"gelu|GeluKernel|tanh"),
    ("embedding / index", r"embedding|index_add|index_select|index_put|scatter|gather"),
    ("copies and dtype casts", r"copy_|direct_copy|memmove|memcpy|reduced_float_copy|_to_copy|cast"),
    ("reductions (sum, norm, max)", r"sum_kernel|inner_sum|norm_kernel|reduce|Reduce|max_kernel|min_kernel|mean"),
    ("fill / zero", r"fill_kernel|memset|zero_"),
    ("other elementwise (add, mul, AdamW ...)", r"add_kernel|mul_kernel|div_kernel|addcmul|addcdiv|sqrt|lerp|where|VectorizedLoop|vectorized|Vectorized|binary|unary|pow"),
    ("Python interpreter", r"libpython|python3|_PyEval|PyObject"),
    ("kernel: page faults, zeroing", r"\[kernel|kallsyms|clear_page|page_fault|do_anonymous"),
    ("allocator (malloc / free)", r"malloc|free|_int_|posix_memalign|mmap|munmap"),
    ("dispatch and autograd bookkeeping", r"c10::|at::|torch::|Dispatcher|OperatorEntry|autograd"),
]
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)$")


def family(dso, sym):
    text = f"{dso} {sym}"
    for name, pat in FAMILIES:
        if re.search(pat, text):
            return name
    return "other"


def main():
    label, report, out = sys.argv[1:4]
    shares = {}
    for line in open(report, encoding="utf-8", errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        f = family(dso, sym)
        shares[f] = shares.get(f, 0.0) + pct
    total = sum(shares.values()) or 1.0
    new = not os.path.exists(out)
    with open(out, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["workload", "family", "share_pct"])
        for f, p in sorted(shares.items(), key=lambda kv: -kv[1]):
            w.writerow([label, f, f"{100 * p / total:.1f}"])
            print(f"| {label} | {f} | {100 * p / total:.1f} % |")


if __name__ == "__main__":
    main()
