//! Summary of the accuracy ladder: `summary.csv`, a Markdown table with Δ vs the previous
//! rung and vs the original (and whether each Δ exceeds the seed noise), the val-loss
//! curves of every rung on one SVG plot, and a text sample from each rung.
use super::RungRecord;
use crate::chart;
use crate::rung::AccuracyRung;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub rung: AccuracyRung,
    pub params: usize,
    /// Parameters used per token: `params` for a dense rung, less for a mixture of experts.
    pub active_params: usize,
    /// One sequence's KV cache at full context (bytes; `None` in older records).
    pub kv_cache_bytes_per_sequence: Option<usize>,
    pub seeds: usize,
    pub val_loss_mean: f64,
    pub val_loss_std: f64,
    pub val_loss_min: f64,
    pub val_loss_max: f64,
    pub wall_s: f64,
    pub tokens_per_sec: f64,
}

impl SummaryRow {
    /// The parameter count as the tables show it: the total, and the active count when a
    /// token uses fewer (a mixture of experts).
    pub fn params_shown(&self) -> String {
        if self.active_params == self.params {
            self.params.to_string()
        } else {
            format!("{} ({} active)", self.params, self.active_params)
        }
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

pub fn summary_row(r: &RungRecord) -> SummaryRow {
    let (mean, std) = mean_std(&r.final_val_loss);
    SummaryRow {
        rung: r.rung,
        params: r.params,
        active_params: r.active_params.unwrap_or(r.params),
        kv_cache_bytes_per_sequence: r.kv_cache_bytes_per_sequence,
        seeds: r.seeds.len(),
        val_loss_mean: mean,
        val_loss_std: std,
        val_loss_min: r
            .final_val_loss
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        val_loss_max: r
            .final_val_loss
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
        wall_s: r.wall_s,
        tokens_per_sec: r.tokens_per_sec,
    }
}

/// Is the difference of two rungs' means larger than the seed noise? The noise is the
/// standard error of the difference, 2·sqrt(s₁²/n₁ + s₂²/n₂) (about a 95 % interval).
/// A rung with a single seed has no spread of its own: it borrows `pooled` (the seed
/// standard deviation of the rung with the most seeds, same config); the flag says so.
pub fn beyond_noise(a: &SummaryRow, b: &SummaryRow, pooled: Option<f64>) -> Option<(bool, bool)> {
    let std = |r: &SummaryRow| {
        if r.seeds >= 2 {
            Some(r.val_loss_std)
        } else {
            pooled
        }
    };
    let (sa, sb) = (std(a)?, std(b)?);
    let se = (sa * sa / a.seeds as f64 + sb * sb / b.seeds as f64).sqrt();
    let borrowed = a.seeds < 2 || b.seeds < 2;
    Some((
        (a.val_loss_mean - b.val_loss_mean).abs() > 2.0 * se,
        borrowed,
    ))
}

/// The seed spread of the rung with the most seeds (at least 2), and its name.
pub fn pooled_std(rows: &[SummaryRow]) -> Option<(f64, String)> {
    rows.iter()
        .filter(|r| r.seeds >= 2)
        .max_by_key(|r| r.seeds)
        .map(|r| (r.val_loss_std, r.rung.to_string()))
}

fn delta(a: &SummaryRow, b: Option<&SummaryRow>, pooled: Option<f64>) -> String {
    match b {
        None => "– | –".into(),
        Some(b) => {
            let d = a.val_loss_mean - b.val_loss_mean;
            let noise = match beyond_noise(a, b, pooled) {
                Some((true, false)) => "yes",
                Some((false, false)) => "no",
                Some((true, true)) => "yes*",
                Some((false, true)) => "no*",
                None => "n/a (1 seed)",
            };
            format!("{d:+.4} | {noise}")
        }
    }
}

/// Read every rung record present and write summary.csv, README.md and val_loss.svg.
pub fn write(out: &Path, command: &str) -> Result<String> {
    let mut recs = Vec::new();
    for &rung in AccuracyRung::ALL {
        let p = out.join("rungs").join(format!("{}.json", rung.name()));
        if p.exists() {
            let text = std::fs::read_to_string(&p)?;
            recs.push(
                serde_json::from_str::<RungRecord>(&text)
                    .with_context(|| format!("reading {}", p.display()))?,
            );
        }
    }
    anyhow::ensure!(
        !recs.is_empty(),
        "no rung records under {} (run the accuracy_* binaries first)",
        out.join("rungs").display()
    );
    let rows: Vec<SummaryRow> = recs.iter().map(summary_row).collect();
    let path = out.join("summary.csv");
    runtime::fsio::write_atomic(&path, |tmp| {
        let mut w = csv::Writer::from_path(tmp)?;
        for r in &rows {
            w.serialize(r)?;
        }
        w.flush()?;
        Ok(())
    })?;

    // Val-loss curves, averaged over seeds at each eval step.
    let mut curves = Vec::new();
    for r in &recs {
        let mut by_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for s in &r.seeds {
            let p = out.join("runs").join(format!("{}_seed{s}.csv", r.rung));
            let mut rd =
                csv::Reader::from_path(&p).with_context(|| format!("reading {}", p.display()))?;
            for row in rd.deserialize::<BTreeMap<String, f64>>() {
                let row = row?;
                by_step
                    .entry(row["step"] as usize)
                    .or_default()
                    .push(row["val_loss"]);
            }
        }
        // Step 0 (ln V at init) would flatten the curves; start at the first eval after it.
        let points = by_step
            .into_iter()
            .filter(|(s, _)| *s > 0)
            .map(|(s, v)| (s as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        curves.push(chart::Curve {
            label: format!("{} ({} seeds)", r.rung, r.seeds.len()),
            points,
        });
    }
    chart::lines(
        &out.join("val_loss.svg"),
        "Accuracy ladder: validation loss (mean over seeds, from the first eval after init)",
        "step",
        "val loss (nats/token)",
        &curves,
    )?;

    let pooled = pooled_std(&rows).map(|p| p.0);
    let mut s = String::from("# Accuracy ladder results\n\nProduced by the code, not typed in: ");
    let _ = writeln!(s, "`{command}`; {}.\n", provenance(&recs));
    s.push_str("Final validation loss (nats/token; lower is better), mean ± std over seeds. \"Beyond noise\" means the Δ exceeds twice the standard error of the difference of the means.\n\n");
    s.push_str("| rung | what changes | params | seeds | val loss | Δ vs previous | beyond noise | Δ vs original | beyond noise | tokens/sec | wall (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (i, (row, rec)) in rows.iter().zip(&recs).enumerate() {
        let prev = if i == 0 { None } else { rows.get(i - 1) };
        let orig = if i == 0 { None } else { rows.first() };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.4} ± {:.4} | {} | {} | {:.0} | {:.0} |",
            row.rung,
            rec.describe,
            row.params_shown(),
            row.seeds,
            row.val_loss_mean,
            row.val_loss_std,
            delta(row, prev, pooled),
            delta(row, orig, pooled),
            row.tokens_per_sec,
            row.wall_s
        );
    }
    if let Some((sd, from)) = pooled_std(&rows).filter(|_| rows.iter().any(|r| r.seeds < 2)) {
        let _ = writeln!(s, "\n\\* a rung with one seed borrows the seed spread of `{from}` (std {sd:.4}, same config) as its noise.");
    }
    let total: f64 = rows.iter().map(|r| r.wall_s).sum();
    let _ = writeln!(s, "\nTotal training time: {:.1} minutes.\n\n![validation loss curves](val_loss.svg)\n\n## Samples\n", total / 60.0);
    for r in &recs {
        let _ = writeln!(
            s,
            "**{}** (seed {}):\n\n```text\n{}\n```\n",
            r.rung,
            r.seeds.first().copied().unwrap_or(0),
            r.sample.trim_end()
        );
    }
    s.push_str(
        "What each rung changes and what it means: [docs/accuracy.md](../../docs/accuracy.md).\n",
    );
    runtime::fsio::write_atomic(&out.join("README.md"), |tmp| Ok(std::fs::write(tmp, &s)?))?;
    let doc = Path::new("docs/accuracy.md");
    if doc.exists() {
        crate::docs::replace_generated(
            doc,
            "accuracy_report",
            &doc_section(&rows, &recs, command),
        )?;
    }
    let readme = Path::new("README.md");
    if readme.exists() {
        let mut t = format!(
            "**Accuracy** (`{command}`; {}; final val loss on Tiny Shakespeare, mean ± std over seeds; details in [results/accuracy](results/accuracy/README.md)):\n\n| rung | params | seeds | val loss | wall time |\n|---|---|---|---|---|\n",
            provenance(&recs)
        );
        for r in &rows {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.4} ± {:.4} | {:.1} min |",
                r.rung,
                r.params_shown(),
                r.seeds,
                r.val_loss_mean,
                r.val_loss_std,
                r.wall_s / 60.0
            );
        }
        // The default ladder is rungs 1-4; the optional rungs (5_gqa, 6+) are timed apart.
        let (default, extra): (Vec<&SummaryRow>, Vec<&SummaryRow>) =
            rows.iter().partition(|r| r.rung.is_default());
        let per_seed = |rs: &[&SummaryRow]| -> f64 {
            rs.iter().map(|r| r.wall_s / r.seeds as f64).sum::<f64>() / 60.0
        };
        let _ = write!(
            t,
            "\nOne seed of the default ladder ({} rungs) took {:.1} minutes of training",
            default.len(),
            per_seed(&default)
        );
        if !extra.is_empty() {
            let names: Vec<String> = extra.iter().map(|r| format!("`{}`", r.rung)).collect();
            let _ = write!(
                t,
                " (the optional {}: {:.1} more)",
                names.join(", "),
                per_seed(&extra)
            );
        }
        t.push_str(".\n\n![val loss curves](results/accuracy/val_loss.svg)\n");
        crate::docs::replace_generated(readme, "accuracy_summary", &t)?;
    }
    Ok(s)
}

/// The generated part of docs/accuracy.md: each rung's effect, in words, from the numbers.
fn doc_section(rows: &[SummaryRow], recs: &[RungRecord], command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "From `{command}` ({}); full table, curves and samples in [results/accuracy](../results/accuracy/README.md).\n", provenance(recs));
    for (i, r) in rows.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(
                s,
                "- `{}`: val loss {:.4} ± {:.4} ({} seeds, {} parameters).",
                r.rung,
                r.val_loss_mean,
                r.val_loss_std,
                r.seeds,
                r.params_shown()
            );
            continue;
        }
        let p = &rows[i - 1];
        let d = r.val_loss_mean - p.val_loss_mean;
        let pooled = pooled_std(rows).map(|p| p.0);
        let verdict = match beyond_noise(r, p, pooled).map(|x| x.0) {
            Some(true) if d < 0.0 => "helped, beyond seed noise",
            Some(true) => "hurt, beyond seed noise",
            Some(false) => "within seed noise: no measurable effect at this scale",
            None if d < 0.0 => "lower, but with one seed we cannot tell it from noise",
            None => "higher, but with one seed we cannot tell it from noise",
        };
        // A rung that changes the decode KV cache (a sliding window) says by how much.
        let kv = match (r.kv_cache_bytes_per_sequence, p.kv_cache_bytes_per_sequence) {
            (Some(a), Some(b)) if a != b => format!("; decode KV cache per sequence at full context {:.1} KiB vs {:.1} KiB, as `infer --plan` counts it", a as f64 / 1024.0, b as f64 / 1024.0),
            _ => String::new(),
        };
        let _ = writeln!(s, "- `{}`: val loss {:.4} ± {:.4}, Δ {:+.4} vs `{}` — {verdict} ({} parameters, {:+} vs previous{kv}).", r.rung, r.val_loss_mean, r.val_loss_std, d, p.rung, r.params_shown(), r.params as i64 - p.params as i64);
    }
    s
}

/// Where and from which code each run of rungs came: consecutive rungs on the same machine
/// grouped ("rungs 1_original–5_gqa: git …, … on MACHINE"), so a table that mixes machines
/// says so (tokens/sec and wall times compare only within one machine).
fn provenance(recs: &[RungRecord]) -> String {
    let mut groups: Vec<(usize, usize)> = Vec::new(); // [first, last] indices
    for (i, r) in recs.iter().enumerate() {
        match groups.last_mut() {
            Some((_, last)) if recs[*last].machine == r.machine => *last = i,
            _ => groups.push((i, i)),
        }
    }
    let one = |(a, b): (usize, usize)| {
        let mut revs: Vec<&str> = recs[a..=b].iter().map(|r| r.git_rev.as_str()).collect();
        revs.dedup();
        let when = recs[a..=b]
            .iter()
            .map(|r| r.timestamp.as_str())
            .max()
            .unwrap_or("");
        let names = match a == b {
            true => format!("rung {}", recs[a].rung.name()),
            false => format!("rungs {}–{}", recs[a].rung.name(), recs[b].rung.name()),
        };
        format!(
            "{names}: git {} (latest {when}) on {}",
            revs.join(", "),
            recs[a].machine
        )
    };
    let mut parts: Vec<String> = groups.iter().map(|&g| one(g)).collect();
    if groups.len() > 1 {
        parts.push("tokens/sec and wall times compare only within one machine".into());
    }
    parts.join("; ")
}
