//! The speed ladder in words: the generated section of `docs/speed.md` (each measured
//! speed-up next to the arithmetic that explains it: Amdahl's law for bf16, attention's share
//! of the FLOPs for SDPA, the cache's share of the bytes for GQA) and the README summary.
use super::report::{find, targets_table, Row};
use std::fmt::Write as _;
use std::path::Path;

/// The model shape and training sequence length the rows were measured with.
fn shape(out: &Path) -> Option<(model::ModelConfig, usize)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).ok()?).ok()?;
    let cfg: model::ModelConfig = serde_json::from_value(v.get("model")?.clone()).ok()?;
    Some((cfg, v.get("seq_len")?.as_u64()? as usize))
}

/// The generated part of docs/speed.md: the measured speed-ups tied to the explanations.
pub fn doc_section(out: &Path, rows: &[Row], command: &str) -> String {
    let rate = |rung: &str, phase: &str| find(rows, rung, phase).map(|r| r.tokens_per_sec);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "(not measured)".into(),
    };
    let mut s = String::new();
    let machine = std::fs::read_to_string(out.join("machine.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<runtime::hardware::MachineRecord>(&t).ok());
    let _ = writeln!(s, "From `{command}` (git {}, {}); full table in [results/speed](../results/speed/README.md).\n", rows[0].git_rev, rows[0].timestamp);
    if let Some(m) = &machine {
        let _ = writeln!(s, "- Machine: {}; {}.", m.describe(), m.describe_rates());
    }
    let _ = writeln!(
        s,
        "- Padding the vocabulary (50257 → 50304): training {} the unpadded speed.",
        ratio(
            rate("1_original", "train"),
            rate("1_original_unpadded", "train")
        )
    );
    let _ = writeln!(
        s,
        "- bf16 mixed precision: training {} of fp32, prefill {}, uncached decode {}.",
        ratio(rate("2_bf16", "train"), rate("1_original", "train")),
        ratio(rate("2_bf16", "prefill"), rate("1_original", "prefill")),
        ratio(rate("2_bf16", "decode"), rate("1_original", "decode"))
    );
    if let Some(m) = machine.as_ref().filter(|m| !m.native_bf16()) {
        let _ = writeln!(s, "- Why bf16 is *slower* here: this CPU has no native bf16 matmul (it lacks avx512_bf16 and amx_bf16), so libtorch emulates bf16 through fp32 and its matmuls measured {:.0}× slower than fp32. Rung 2 is measured anyway, on a reduced workload (its rows say so), to show it; `dtype = \"auto\"` picks fp32 on such a machine, and the rungs after it run in fp32.", m.bf16_slowdown());
    }
    if let (Some(m), Some(r1)) = (
        machine.as_ref().filter(|m| m.native_bf16()),
        find(rows, "1_original", "train"),
    ) {
        let (fp32, bf16) = (m.measured.fp32_flops, m.measured.bf16_flops);
        // Amdahl: the share of the fp32 step spent in matmuls at peak is about its MFU; only
        // that share gets faster, by the bf16/fp32 peak ratio.
        let f = r1.mfu.min(1.0);
        let bound = 1.0 / ((1.0 - f) + f * fp32 / bf16);
        let _ = writeln!(s, "- Why bf16 training gains less than the matmul peak ratio: the fp32 step runs at {:.0}% MFU, so about {:.0}% of its time is matmul work; if only that part sped up by {:.2}×, the step would gain at most {bound:.2}× (Amdahl). The rest — the cross-entropy over a {}-wide vocabulary in f32, AdamW over fp32 master weights, the casts, norms and element-wise ops — is memory-bound and does not get faster in bf16.", 100.0 * f, 100.0 * f, bf16 / fp32, r1.vocab_size);
    }
    let _ = writeln!(
        s,
        "- SDPA over naive attention: training {}, prefill {}.",
        ratio(rate("3_flash", "train"), rate("2_bf16", "train")),
        ratio(rate("3_flash", "prefill"), rate("2_bf16", "prefill"))
    );
    if let (Some(k), Some(g)) = (
        find(rows, "4_kv_cache", "decode"),
        find(rows, "5_gqa", "decode"),
    ) {
        let _ = writeln!(
            s,
            "- KV cache: decode {} the uncached speed over {} new tokens after a {}-token prompt.",
            ratio(Some(k.tokens_per_sec), rate("3_flash", "decode")),
            k.new_tokens,
            k.seq_len
        );
        let per = |r: &Row| r.kv_cache_bytes as f64 / (r.batch * (r.seq_len + r.new_tokens)) as f64;
        let _ = writeln!(s, "- KV-cache memory per token: {:.0} bytes with {} KV heads, {:.0} bytes with {} (GQA) — {:.2}× smaller; GQA decode runs at {} of MHA's speed.", per(k), k.n_kv_heads, per(g), g.n_kv_heads, per(k) / per(g), ratio(Some(g.tokens_per_sec), Some(k.tokens_per_sec)));
        if let Some((cfg, _)) = shape(out) {
            // Bytes a decode step reads: every weight (in the compute dtype) plus the cache.
            let weights = model::accounting::weight_bytes(&cfg, 2) as f64;
            let kv = per(k) * (k.seq_len + k.new_tokens / 2) as f64;
            let _ = writeln!(s, "- Why GQA barely changes decode speed here: a decode step reads all {:.0} MB of bf16 weights but, at an average context of {} tokens, only {:.1} MB of MHA cache ({:.0}% of the bytes); GQA shrinks that small part. Its saving grows with context length and batch size, where the cache dominates (see `infer --plan`).", weights / 1e6, k.seq_len + k.new_tokens / 2, kv / 1e6, 100.0 * kv / (kv + weights));
        }
        let _ = writeln!(s, "- Decode MFU with the cache: {:.2}% — far below training's {:.1}%: decoding is memory-bound.", 100.0 * k.mfu, 100.0 * find(rows, "4_kv_cache", "train").map_or(0.0, |r| r.mfu));
    }
    if let Some((cfg, t)) = shape(out) {
        let attn = 12.0 * (cfg.n_layer * cfg.n_head * cfg.head_dim() * t) as f64;
        let total = model::accounting::train_flops_per_token(&cfg, t);
        let head = (cfg.vocab_size * cfg.n_embd) as f64
            / model::accounting::param_count(&cfg).matmul as f64;
        let _ = writeln!(s, "- Why SDPA moves training so little here: at T = {t} attention is {:.1}% of this model's training FLOPs (12·L·H·Q·T of 6·N + 12·L·H·Q·T), and the LM head is {:.0}% of its matmul parameters; fusing attention cannot speed up the other {:.1}%.", 100.0 * attn / total, 100.0 * head, 100.0 - 100.0 * attn / total);
    }
    s.push('\n');
    s.push_str(&targets_table(rows));
    s
}

/// What the README promises for `just speed-ablation` on any 2-core x86 machine (minutes).
pub const LADDER_MINUTES: f64 = 15.0;

/// A compact table for the top-level README: tokens/sec per rung and phase, and the
/// recorded wall time against the promise.
pub fn readme_summary(
    out: &Path,
    rows: &[Row],
    command: &str,
    wall_s: Option<u64>,
    build_s: Option<u64>,
) -> String {
    let mut s = format!(
        "**Speed** (`{command}`, git {}, {}; tokens/sec, median of repeats; details in [results/speed](results/speed/README.md)):\n\n| rung | train | prefill | decode |\n|---|---|---|---|\n",
        rows[0].git_rev, rows[0].timestamp
    );
    let mut seen = Vec::new();
    for r in rows {
        if seen.contains(&r.rung) {
            continue;
        }
        seen.push(r.rung.clone());
        let cell = |phase: &str| {
            find(rows, &r.rung, phase).map_or("–".into(), |x| format!("{:.0}", x.tokens_per_sec))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.rung,
            cell("train"),
            cell("prefill"),
            cell("decode")
        );
    }
    if let Some(w) = wall_s {
        let build = build_s.map_or(String::new(), |b| {
            format!(
                " ({:.1} building, {:.1} measuring)",
                b as f64 / 60.0,
                w.saturating_sub(b) as f64 / 60.0
            )
        });
        let machine = std::fs::read_to_string(out.join("machine.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<runtime::hardware::MachineRecord>(&t).ok())
            .map_or(String::new(), |m| format!(" on {}", m.describe()));
        let promise = LADDER_MINUTES;
        let verdict = if (w as f64) <= promise * 60.0 {
            format!("within the {promise:.0}-minute promise")
        } else {
            format!("**over** the {promise:.0}-minute promise")
        };
        let _ = writeln!(
            s,
            "\nThe whole ladder took {:.1} minutes{build}{machine} — {verdict}.",
            w as f64 / 60.0
        );
    }
    s.push_str("\n![speed ladder](results/speed/chart.svg)\n");
    s
}
