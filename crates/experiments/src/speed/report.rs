//! Rows, CSV files, and the summary of the speed ladder: `summary.csv`, a Markdown table
//! with speed-ups and target checks, and an SVG chart of tokens/sec per rung.
use super::Phase;
use crate::chart;
use crate::rung::{Rung, SpeedRung};
use anyhow::Result;
use model::AttnKernel;
use runtime::DType;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One CSV row: one rung, one phase (typed; serialised as `1_original`, `train`, `fp32`,
/// `naive`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub rung: SpeedRung,
    pub phase: Phase,
    pub dtype: DType,
    pub attention: AttnKernel,
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
    /// Measured runs made (the time budget may stop a phase before `--repeats`).
    #[serde(default)]
    pub repeats: usize,
    /// Seconds the phase took, warm-up included.
    #[serde(default)]
    pub phase_s: f64,
    /// True when the time budget, not `--repeats`, ended the phase.
    #[serde(default)]
    pub budget_hit: bool,
    /// What differs from the rung's standard workload, and why (empty: nothing).
    #[serde(default)]
    pub note: String,
    /// Minor page faults per measured run (a training step; a whole prefill or decode), after
    /// the warm-up: fresh pages the kernel maps and zeroes (`runtime::mem::minor_faults`).
    #[serde(default)]
    pub page_faults_per_run: f64,
}

/// Write `rows` to `path` (replacing it), through a temporary file.
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    crate::csvio::write_rows(path, rows)
}

pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    crate::csvio::read_rows(path)
}

pub(crate) fn find(rows: &[Row], rung: SpeedRung, phase: Phase) -> Option<&Row> {
    rows.iter().find(|r| r.rung == rung && r.phase == phase)
}

/// The row a rung's `phase` row is compared against: its previous rung's, or — when that
/// one ran another dtype or a reduced workload (emulated bf16) — the nearest earlier rung
/// with the same dtype and the standard workload, so a ratio changes one thing only.
pub(crate) fn comparable_previous<'a>(rows: &'a [Row], r: &Row) -> Option<&'a Row> {
    let mut rung = r.rung.previous()?;
    loop {
        match find(rows, rung, r.phase) {
            Some(o) if o.dtype == r.dtype && o.note.is_empty() => return Some(o),
            _ => rung = rung.previous()?,
        }
    }
}

/// A target of the ladder and whether the measurements meet it.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

pub fn targets(rows: &[Row]) -> Vec<Target> {
    use Phase::{Decode, Train};
    use SpeedRung::*;
    let rate = |rung, phase| find(rows, rung, phase).map(|r| r.tokens_per_sec);
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
        rate(Bf16, Train),
        rate(Original, Train),
        1.8,
    );
    let flash = find(rows, Flash, Train);
    ratio(
        "SDPA training ≥ 1.2× naive",
        flash.map(|r| r.tokens_per_sec),
        flash
            .and_then(|r| comparable_previous(rows, r))
            .map(|r| r.tokens_per_sec),
        1.2,
    );
    ratio(
        "KV-cache decode ≥ 5× uncached",
        rate(KvCache, Decode),
        rate(Flash, Decode),
        5.0,
    );
    ratio(
        "GQA decode ≥ 1.0× MHA",
        rate(Gqa, Decode),
        rate(KvCache, Decode),
        1.0,
    );
    if let (Some(g), Some(m)) = (find(rows, Gqa, Decode), find(rows, KvCache, Decode)) {
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
    for phase in Phase::ALL {
        for r in rows.iter().filter(|r| r.phase == phase) {
            let ratio = |o: Option<&Row>| {
                o.map_or("–".to_string(), |o| {
                    let same = r.rung.previous() == Some(o.rung) || o.rung == SpeedRung::Original;
                    let x = format!("{:.2}×", r.tokens_per_sec / o.tokens_per_sec);
                    if same {
                        x
                    } else {
                        format!("{x} (vs {})", o.rung)
                    }
                })
            };
            let orig = if r.rung == SpeedRung::Original {
                "1.00×".into()
            } else {
                ratio(find(rows, SpeedRung::Original, phase))
            };
            let mark = if r.note.is_empty() { "" } else { " †" };
            let _ = writeln!(
                s,
                "| {}{mark} | {} | {} | {} | {} | {} | {:.0} ({:.0}–{:.0}) | {} | {} | {:.1} | {:.1}% | {} | {} |",
                r.rung, r.phase, r.dtype, r.attention, if r.kv_cache { "yes" } else { "no" }, r.n_kv_heads,
                r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, ratio(comparable_previous(rows, r)), orig,
                r.ms_per_step, 100.0 * r.mfu, human_bytes(r.kv_cache_bytes as f64), human_bytes(r.peak_rss_bytes as f64)
            );
        }
    }
    let mut notes: Vec<&str> = rows
        .iter()
        .map(|r| r.note.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    notes.dedup();
    for n in notes {
        let _ = writeln!(s, "\n† {n}: its tokens/sec compare only roughly with the other rows; the rungs after it are compared with the nearest earlier rung in their own dtype.");
    }
    let cut: Vec<String> = rows
        .iter()
        .filter(|r| r.budget_hit)
        .map(|r| format!("{} {} ({} repeats)", r.rung, r.phase, r.repeats))
        .collect();
    if !cut.is_empty() {
        let _ = writeln!(
            s,
            "\nStopped by the time budget (`--max-seconds`) after fewer repeats than asked: {}.",
            cut.join(", ")
        );
    }
    s
}

/// Merge the per-rung CSV files in ladder order into `summary.csv`; write the chart.
pub fn summarize(out: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for rung in SpeedRung::ALL {
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
    let panels: Vec<chart::Panel> = Phase::ALL
        .iter()
        .map(|phase| chart::Panel {
            title: format!("{phase} tokens/sec"),
            bars: rows
                .iter()
                .filter(|r| r.phase == *phase)
                .map(|r| {
                    (
                        r.rung.to_string(),
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
    let machine = std::fs::read_to_string(out.join("machine.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<runtime::hardware::MachineRecord>(&t).ok());
    let mut s = String::from("# Speed ladder results\n\nProduced by the code, not typed in: ");
    let _ = writeln!(
        s,
        "`{command}` (git {}, {}).\n",
        rows[0].git_rev, rows[0].timestamp
    );
    if let Some(m) = &machine {
        let _ = writeln!(
            s,
            "Machine: {}; {} (MFU is relative to these peaks; [machine.json](machine.json) has every fact).\n",
            m.describe(),
            m.describe_rates()
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
        rows.iter()
            .find(|r| r.phase == Phase::Train)
            .map_or(0, |r| r.seq_len)
    );
    s.push_str(&table(rows));
    s.push_str("\n![tokens/sec per rung](chart.svg)\n\n## Targets\n\n");
    s.push_str(&targets_table(rows));
    s.push_str("\nWhat each rung does and why it helps, and for each target that is missed by how much and why: [docs/speed.md](../../docs/speed.md#our-numbers).\n");
    let real = out.join("sweep").join("real_size.md");
    if let Ok(text) = std::fs::read_to_string(&real) {
        s.push_str("\n## Real size\n\nFrom `speed_sweep --real-size` ([sweep/real_size.csv](sweep/real_size.csv)): ");
        s.push_str(&text);
    }
    let pt = out.join("pytorch.md");
    if let Ok(text) = std::fs::read_to_string(&pt) {
        s.push_str("\n## Beside PyTorch eager\n\n");
        s.push_str(&text);
    }
    runtime::fsio::write_atomic(&out.join("README.md"), |tmp| Ok(std::fs::write(tmp, &s)?))?;
    Ok(s)
}
