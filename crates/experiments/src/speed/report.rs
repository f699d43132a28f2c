//! Rows, CSV files, and the summary of the speed ladder: `summary.csv`, a Markdown table
//! with speed-ups and target checks, and an SVG chart of tokens/sec per rung.
use crate::chart;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One CSV row: one rung, one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub rung: String,
    pub phase: String,
    pub dtype: String,
    pub attention: String,
    pub kv_cache: bool,
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub new_tokens: usize,
    pub tokens_per_sec: f64,
    pub tokens_per_sec_min: f64,
    pub tokens_per_sec_max: f64,
    pub ms_per_step: f64,
    pub mfu: f64,
    pub kv_cache_bytes: usize,
    pub peak_rss_bytes: u64,
    pub threads: usize,
    pub device: String,
    pub git_rev: String,
    pub timestamp: String,
}

/// Write `rows` to `path` (replacing it), through a temporary file.
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    model::io::write_atomic(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp)?;
        for r in rows {
            w.serialize(r)?;
        }
        w.flush()?;
        Ok(())
    })
}

pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .map(|x| x.with_context(|| format!("{}: bad row", path.display())))
        .collect()
}

fn find<'a>(rows: &'a [Row], rung: &str, phase: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.rung == rung && r.phase == phase)
}

/// The rung each rung is compared against ("vs previous").
fn previous(rung: &str) -> Option<&'static str> {
    match rung {
        "1_original_unpadded" => Some("1_original"),
        "2_bf16" => Some("1_original"),
        "3_flash" => Some("2_bf16"),
        "4_kv_cache" => Some("3_flash"),
        "5_gqa" => Some("4_kv_cache"),
        _ => None,
    }
}

/// A target of the ladder and whether the measurements meet it.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

pub fn targets(rows: &[Row]) -> Vec<Target> {
    let rate = |rung: &str, phase: &str| find(rows, rung, phase).map(|r| r.tokens_per_sec);
    let mut out = Vec::new();
    let mut ratio = |what: &str, a: Option<f64>, b: Option<f64>, min: f64| {
        if let (Some(a), Some(b)) = (a, b) {
            let x = a / b;
            out.push(Target {
                what: what.into(),
                measured: format!("{x:.2}×"),
                met: x >= min,
            });
        }
    };
    ratio(
        "bf16 training ≥ 1.8× fp32",
        rate("2_bf16", "train"),
        rate("1_original", "train"),
        1.8,
    );
    ratio(
        "SDPA training ≥ 1.2× naive",
        rate("3_flash", "train"),
        rate("2_bf16", "train"),
        1.2,
    );
    ratio(
        "KV-cache decode ≥ 5× uncached",
        rate("4_kv_cache", "decode"),
        rate("3_flash", "decode"),
        5.0,
    );
    ratio(
        "GQA decode ≥ 1.0× MHA",
        rate("5_gqa", "decode"),
        rate("4_kv_cache", "decode"),
        1.0,
    );
    if let (Some(g), Some(m)) = (
        find(rows, "5_gqa", "decode"),
        find(rows, "4_kv_cache", "decode"),
    ) {
        let exact = g.kv_cache_bytes * m.n_kv_heads == m.kv_cache_bytes * g.n_kv_heads;
        out.push(Target {
            what: format!(
                "GQA KV-cache bytes = {}/{} of MHA",
                g.n_kv_heads, m.n_kv_heads
            ),
            measured: format!("{} vs {} bytes", g.kv_cache_bytes, m.kv_cache_bytes),
            met: exact,
        });
    }
    out
}

/// The targets as a Markdown table.
pub fn targets_table(rows: &[Row]) -> String {
    let mut s = String::from("| target | measured | met |\n|---|---|---|\n");
    for t in targets(rows) {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            t.what,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    s
}

fn human_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b > 0.0 {
        format!("{:.0} kB", b / 1e3)
    } else {
        "–".into()
    }
}

/// The Markdown table of tokens/sec with speed-ups vs the previous rung and the original.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| rung | phase | dtype | attention | KV cache | n_kv | tokens/sec (min–max) | vs previous | vs original | ms/step | MFU | KV-cache bytes | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for phase in ["train", "prefill", "decode"] {
        for r in rows.iter().filter(|r| r.phase == phase) {
            let vs = |other: Option<&str>| {
                other
                    .and_then(|o| find(rows, o, phase))
                    .map_or("–".to_string(), |o| {
                        format!("{:.2}×", r.tokens_per_sec / o.tokens_per_sec)
                    })
            };
            let orig = if r.rung == "1_original" {
                "1.00×".into()
            } else {
                vs(Some("1_original"))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} ({:.0}–{:.0}) | {} | {} | {:.1} | {:.1}% | {} | {} |",
                r.rung, r.phase, r.dtype, r.attention, if r.kv_cache { "yes" } else { "no" }, r.n_kv_heads,
                r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, vs(previous(&r.rung)), orig,
                r.ms_per_step, 100.0 * r.mfu, human_bytes(r.kv_cache_bytes as f64), human_bytes(r.peak_rss_bytes as f64)
            );
        }
    }
    s
}

/// Merge the per-rung CSV files in ladder order into `summary.csv`; write the chart.
pub fn summarize(out: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for rung in super::Rung::ALL {
        let path = out.join("rungs").join(format!("{}.csv", rung.name()));
        if path.exists() {
            rows.extend(read_rows(&path)?);
        }
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "no rung results under {} (run the speed_* binaries first)",
        out.join("rungs").display()
    );
    write_rows(&out.join("summary.csv"), &rows)?;
    let panels: Vec<chart::Panel> = ["train", "prefill", "decode"]
        .iter()
        .map(|phase| chart::Panel {
            title: format!("{phase} tokens/sec"),
            bars: rows
                .iter()
                .filter(|r| r.phase == *phase)
                .map(|r| {
                    (
                        r.rung.clone(),
                        r.tokens_per_sec,
                        r.tokens_per_sec_min,
                        r.tokens_per_sec_max,
                    )
                })
                .collect(),
        })
        .collect();
    chart::bar_panels(
        &out.join("chart.svg"),
        "Speed ladder: tokens/sec per rung (higher is better)",
        &panels,
    )?;
    Ok(rows)
}

/// Write `out/README.md`: what was run, on what, the table, the targets; returns its text.
pub fn readme(out: &Path, rows: &[Row], command: &str) -> Result<String> {
    let machine = std::fs::read_to_string(crate::peak::default_path())
        .ok()
        .and_then(|t| serde_json::from_str::<crate::peak::Peak>(&t).ok());
    let mut s = String::from("# Speed ladder results\n\nProduced by the code, not typed in: ");
    let _ = writeln!(
        s,
        "`{command}` (git {}, {}).\n",
        rows[0].git_rev, rows[0].timestamp
    );
    if let Some(m) = &machine {
        let _ = writeln!(
            s,
            "Machine: {} — device `{}`, {} threads; measured peak matmul (n = {}): fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s (MFU is relative to these).\n",
            m.machine, m.device, m.threads, m.matmul_n, m.fp32_flops / 1e9, m.bf16_flops / 1e9
        );
    }
    let r0 = &rows[0];
    let _ = writeln!(
        s,
        "Model: GPT-2-shaped (see `--preset`), vocabulary {}. Training: batch {} × {} tokens, forward + backward + AdamW; \
         prefill: the prompt in one forward; decode: greedy new tokens after the prompt, one at a time. \
         Synthetic token ids; warm-up excluded; median of repeats with (min–max).\n",
        r0.vocab_size,
        r0.batch,
        rows.iter().find(|r| r.phase == "train").map_or(0, |r| r.seq_len)
    );
    s.push_str(&table(rows));
    s.push_str("\n![tokens/sec per rung](chart.svg)\n\n## Targets\n\n");
    s.push_str(&targets_table(rows));
    s.push_str("\nWhat each rung does and why it helps, and for each target that is missed by how much and why: [docs/speed.md](../../docs/speed.md#our-numbers).\n");
    let pt = out.join("pytorch.md");
    if let Ok(text) = std::fs::read_to_string(&pt) {
        s.push_str("\n## Beside PyTorch eager\n\n");
        s.push_str(&text);
    }
    model::io::write_atomic(&out.join("README.md"), |tmp| Ok(std::fs::write(tmp, &s)?))?;
    Ok(s)
}

/// The generated part of docs/speed.md: the measured speed-ups tied to the explanations.
/// The model shape and training sequence length the rows were measured with.
fn shape(out: &Path) -> Option<(model::ModelConfig, usize)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).ok()?).ok()?;
    let cfg: model::ModelConfig = serde_json::from_value(v.get("model")?.clone()).ok()?;
    Some((cfg, v.get("seq_len")?.as_u64()? as usize))
}

pub fn doc_section(out: &Path, rows: &[Row], command: &str) -> String {
    let rate = |rung: &str, phase: &str| find(rows, rung, phase).map(|r| r.tokens_per_sec);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "(not measured)".into(),
    };
    let mut s = String::new();
    let machine = std::fs::read_to_string(crate::peak::default_path())
        .ok()
        .and_then(|t| serde_json::from_str::<crate::peak::Peak>(&t).ok());
    let _ = writeln!(s, "From `{command}` (git {}, {}); full table in [results/speed](../results/speed/README.md).\n", rows[0].git_rev, rows[0].timestamp);
    if let Some(m) = &machine {
        let _ = writeln!(s, "- Machine: {}. Measured matmul peak: fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s — a {:.2}× ratio, the ceiling for rung 2.", m.machine, m.fp32_flops / 1e9, m.bf16_flops / 1e9, m.bf16_flops / m.fp32_flops);
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
    if let (Some(m), Some(r1)) = (&machine, find(rows, "1_original", "train")) {
        // Amdahl: the share of the fp32 step spent in matmuls at peak is about its MFU; only
        // that share gets faster, by the bf16/fp32 peak ratio.
        let f = r1.mfu.min(1.0);
        let bound = 1.0 / ((1.0 - f) + f * m.fp32_flops / m.bf16_flops);
        let _ = writeln!(s, "- Why bf16 training gains less than the matmul peak ratio: the fp32 step runs at {:.0}% MFU, so about {:.0}% of its time is matmul work; if only that part sped up by {:.2}×, the step would gain at most {bound:.2}× (Amdahl). The rest — the cross-entropy over a {}-wide vocabulary in f32, AdamW over fp32 master weights, the casts, norms and element-wise ops — is memory-bound and does not get faster in bf16.", 100.0 * f, 100.0 * f, m.bf16_flops / m.fp32_flops, r1.vocab_size);
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

/// A compact table for the top-level README: tokens/sec per rung and phase.
pub fn readme_summary(rows: &[Row], command: &str, wall_s: Option<u64>) -> String {
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
        let _ = writeln!(
            s,
            "\nThe whole ladder took {:.1} minutes on this machine (build included).",
            w as f64 / 60.0
        );
    }
    s.push_str("\n![speed ladder](results/speed/chart.svg)\n");
    s
}
