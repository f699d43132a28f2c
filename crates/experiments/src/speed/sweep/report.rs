//! The sweep's outputs: `attention.csv`, `decode.csv`, `real_size.csv`, one SVG per curve
//! family (log2 x axis), `real_size.md` (included in results/speed/README.md by
//! `speed_report`), `README.md`, and the generated section of docs/speed.md.
use super::plan::{decode_bytes_per_step, Point};
use super::row::{write_rows, Row, Section, Variant};
use super::{summary, targets};
use crate::chart::{lines_log2x, Curve};
use crate::speed::Phase;
use anyhow::Result;
use model::ModelConfig;
use runtime::hardware::MachineRecord;
use std::fmt::Write as _;
use std::path::Path;

/// The CSV file of each family.
pub const CSV_FILES: [(Section, &str); 3] = [
    (Section::Attention, "attention.csv"),
    (Section::Decode, "decode.csv"),
    (Section::RealSize, "real_size.csv"),
];

/// Fill a decode row's bytes per step and its bandwidth roofline from the machine record.
pub fn with_roofline(mut r: Row, machine: &MachineRecord) -> Row {
    if !r.ok() || r.phase != Phase::Decode {
        return r;
    }
    let Ok(base) = ModelConfig::preset(&r.preset) else {
        return r;
    };
    let cfg = ModelConfig {
        n_kv_heads: r.n_kv_heads,
        ..base
    };
    let p = Point {
        section: r.section,
        preset: r.preset.clone(),
        phase: r.phase,
        variant: r.variant,
        dtype: r.dtype,
        batch: r.batch,
        seq_len: r.seq_len,
        new_tokens: r.new_tokens,
    };
    r.bytes_per_step = decode_bytes_per_step(&cfg, &p);
    let bw = match r.bandwidth_bytes_per_s {
        b if b > 0.0 => b,
        _ => machine.measured.bandwidth_bytes_per_s,
    };
    r.roofline_tokens_per_sec = r.batch as f64 * bw / r.bytes_per_step.max(1) as f64;
    r.roofline_fraction = r.tokens_per_sec / r.roofline_tokens_per_sec.max(1e-12);
    r
}

fn gb(b: u64) -> String {
    if b == 0 {
        "–".into()
    } else {
        summary::gb(b as f64)
    }
}

fn status(r: &Row) -> String {
    if r.ok() {
        String::new()
    } else {
        let st = if r.status == super::row::Status::Skipped {
            "skipped"
        } else {
            "failed"
        };
        format!(" ({st}: {})", r.note)
    }
}

/// Curves of `value` per variant in `section`/`phase` (optionally one batch), ok rows only.
fn curves(
    rows: &[Row],
    section: Section,
    phase: Phase,
    batch: Option<usize>,
    value: fn(&Row) -> f64,
) -> Vec<Curve> {
    let mut out: Vec<Curve> = Vec::new();
    for v in [
        Variant::Naive,
        Variant::Sdpa,
        Variant::Mha,
        Variant::Gqa4,
        Variant::Mqa,
    ] {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| {
                r.ok()
                    && r.section == section
                    && r.phase == phase
                    && r.variant == v
                    && batch.is_none_or(|b| r.batch == b)
            })
            .map(|r| (r.seq_len as f64, value(r)))
            .collect();
        if !points.is_empty() {
            out.push(Curve {
                label: v.name().into(),
                points,
            });
        }
    }
    out
}

/// Draw every chart the rows allow; returns the file names written.
fn charts(out: &Path, rows: &[Row]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut draw = |name: &str, title: String, x: &str, y: &str, c: Vec<Curve>| -> Result<()> {
        if !c.is_empty() {
            lines_log2x(&out.join(name), &title, x, y, &c)?;
            names.push(name.to_string());
        }
        Ok(())
    };
    for phase in [Phase::Train, Phase::Prefill] {
        draw(
            &format!("attention_{phase}.svg"),
            format!("{phase} tokens/sec vs T: naive vs SDPA"),
            "sequence length T",
            "tokens/sec",
            curves(rows, Section::Attention, phase, None, |r| r.tokens_per_sec),
        )?;
    }
    let mut mem = Vec::new();
    for phase in [Phase::Train, Phase::Prefill] {
        let c = curves(rows, Section::Attention, phase, None, |r| {
            r.peak_rss_bytes as f64
        });
        mem.extend(c.into_iter().map(|c| Curve {
            label: format!("{} {phase}", c.label),
            ..c
        }));
    }
    draw(
        "attention_memory.svg",
        "peak memory (RSS) vs T: naive vs SDPA, training and prefill".into(),
        "sequence length T",
        "bytes",
        mem,
    )?;
    let mut batches: Vec<usize> = rows
        .iter()
        .filter(|r| r.section == Section::Decode)
        .map(|r| r.batch)
        .collect();
    batches.sort_unstable();
    batches.dedup();
    for b in batches {
        draw(
            &format!("decode_batch{b}.svg"),
            format!("decode tokens/sec vs context, batch {b}: MHA vs GQA-4 vs MQA"),
            "context (cached tokens)",
            "tokens/sec",
            curves(rows, Section::Decode, Phase::Decode, Some(b), |r| {
                r.tokens_per_sec
            }),
        )?;
        draw(
            &format!("decode_batch{b}_roofline.svg"),
            format!("decode: % of the bandwidth roofline vs context, batch {b}"),
            "context (cached tokens)",
            "% of roofline",
            curves(rows, Section::Decode, Phase::Decode, Some(b), |r| {
                100.0 * r.roofline_fraction
            }),
        )?;
    }
    Ok(names)
}

fn attention_table(rows: &[Row]) -> String {
    let mut s = String::from("| phase | T | batch | kernel | tokens/sec (min–max) | ms/step | peak RSS | one layer's scores |\n|---|---|---|---|---|---|---|---|\n");
    for r in rows.iter().filter(|r| r.section == Section::Attention) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {:.0} ({:.0}–{:.0}) | {:.1} | {} | {} |",
            r.phase,
            r.seq_len,
            r.batch,
            r.variant,
            status(r),
            r.tokens_per_sec,
            r.tokens_per_sec_min,
            r.tokens_per_sec_max,
            r.ms_per_step,
            gb(r.peak_rss_bytes),
            gb(r.score_bytes)
        );
    }
    s
}

fn decode_table(rows: &[Row], section: Section) -> String {
    let mut s = String::from("| preset | dtype | batch | context | variant | tokens/sec (min–max) | ms/step | KV cache | bytes/step | roofline tok/s | of roofline | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows.iter().filter(|r| r.section == section) {
        let _ = writeln!(s, "| {} | {} | {} | {} | {}{} | {:.1} ({:.1}–{:.1}) | {:.2} | {} | {} | {:.1} | {:.0} % | {} |", r.preset, r.dtype, r.batch, r.seq_len, r.variant, status(r), r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, r.ms_per_step, gb(r.kv_cache_bytes), gb(r.bytes_per_step), r.roofline_tokens_per_sec, 100.0 * r.roofline_fraction, gb(r.peak_rss_bytes));
    }
    s
}

/// `real_size.md`: GPT-2 small decode, fp32 and the fast precision, against the roofline.
pub fn real_size_text(rows: &[Row], machine: &MachineRecord) -> String {
    let mut s = format!("GPT-2 small (gpt2_124m) decode with `infer`'s KV-cache loop: batch 1, prompt 64 + 128 new tokens (greedy), on {}; read bandwidth {:.1} GB/s in the machine record; each point measures it again before every timed repeat, and its roofline uses the median of its own (the bandwidth of a shared VM drifts). Roofline = (matmul weight bytes + KV bytes read per step) ÷ bandwidth.\n\n", machine.describe(), machine.measured.bandwidth_bytes_per_s / 1e9);
    s.push_str(&decode_table(rows, Section::RealSize));
    s
}

/// The 1-minute load average (/proc/loadavg) when the report is written.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A warning when other processes kept the cores busy: with libtorch's OpenMP threads
/// spinning at barriers, a batch-1 decode step measured up to 25× slower on an
/// oversubscribed 2-core machine, so such numbers say little.
fn busy_note(machine: &MachineRecord) -> String {
    let start = load_average_at_start();
    let cores = machine.facts.logical_cores as f64;
    match start {
        Some(l) if l > 0.5 * cores => format!("**Warning:** the load average was {l:.1} on {cores} logical cores when the sweep started: other processes competed for the cores, and OpenMP threads that spin at barriers make small kernels (decode) many times slower; re-run on an idle machine.\n\n"),
        _ => String::new(),
    }
}

static LOAD_AT_START: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();

/// Record the load average before the sweep starts (the first call wins).
pub fn record_load_at_start() -> Option<f64> {
    *LOAD_AT_START.get_or_init(load_average)
}

fn load_average_at_start() -> Option<f64> {
    LOAD_AT_START.get().copied().flatten()
}

/// Write every output; returns the README text.
pub fn write_all(
    out: &Path,
    rows: &[Row],
    machine: &MachineRecord,
    command: &str,
    wall_s: f64,
    docs: bool,
) -> Result<String> {
    let busy = busy_note(machine);
    for (section, name) in CSV_FILES {
        let part: Vec<Row> = rows
            .iter()
            .filter(|r| r.section == section)
            .cloned()
            .collect();
        if !part.is_empty() {
            write_rows(&out.join(name), &part)?;
        }
    }
    let real: Vec<Row> = rows
        .iter()
        .filter(|r| r.section == Section::RealSize)
        .cloned()
        .collect();
    if !real.is_empty() {
        let text = real_size_text(&real, machine);
        runtime::fsio::write_atomic(&out.join("real_size.md"), |t| Ok(std::fs::write(t, &text)?))?;
    }
    let names = charts(out, rows)?;
    let (rev, when) = rows.first().map_or((String::new(), String::new()), |r| {
        (r.git_rev.clone(), r.timestamp.clone())
    });
    let mut s = String::from("# Speed sweep: the ladder as curves\n\n");
    let _ = writeln!(s, "Produced by the code, not typed in: `{command}` (git {rev}, {when}), in {:.0} s ({:.1} min) wall-clock. Machine: {}; {}.\n", wall_s, wall_s / 60.0, machine.describe(), machine.describe_rates());
    s.push_str(&busy);
    s.push_str(&summary::paragraph(rows));
    s.push_str("\n## Targets\n\n");
    s.push_str(&targets::table(rows));
    for n in &names {
        let _ = writeln!(s, "\n![{n}]({n})");
    }
    if rows.iter().any(|r| r.section == Section::Attention) {
        s.push_str("\n## Attention vs sequence length\n\nBatch × T is held near constant; peak RSS is that of the process that measured the point alone.\n\n");
        s.push_str(&attention_table(rows));
    }
    if rows.iter().any(|r| r.section == Section::Decode) {
        s.push_str("\n## Decode vs context and batch\n\n`infer::decode` (the loop `infer::generate` runs) after a KV cache marked filled to the context (not prefilled: a step reads the same bytes whatever they hold); only decode steps are timed.\n\n");
        s.push_str(&decode_table(rows, Section::Decode));
    }
    if !real.is_empty() {
        s.push_str("\n## Real size\n\n");
        s.push_str(&real_size_text(&real, machine));
    }
    runtime::fsio::write_atomic(&out.join("README.md"), |t| Ok(std::fs::write(t, &s)?))?;
    let doc = Path::new("docs/speed.md");
    if docs && doc.exists() {
        let mut section = format!("From `{command}` (git {rev}, {when}; {:.1} min); tables and charts in [results/speed/sweep](../results/speed/sweep/README.md).\n\n", wall_s / 60.0);
        section.push_str(&busy);
        section.push_str(&summary::paragraph(rows));
        section.push('\n');
        section.push_str(&targets::table(rows));
        crate::docs::replace_generated(doc, "speed_sweep", &section)?;
    }
    Ok(s)
}
