//! Each sweep point in a fresh process — this binary again with the hidden `--child-job`
//! flag, as the speed ladder runs each phase — so no point inherits another's heap, allocator
//! or kernel caches and each peak RSS is its own; points that cannot fit are skipped first.
use super::plan::{self, Point};
use super::row::{self, Row, Section, Status};
use super::{Job, SweepArgs};
use anyhow::{Context, Result};
use model::ModelConfig;
use std::path::PathBuf;
use std::time::Instant;

/// Run every point in its own child process, skipping what cannot fit; one row per point.
pub(super) fn run_points(
    args: &SweepArgs,
    points: &[Point],
    base: &ModelConfig,
    limit: Option<u64>,
    start: Instant,
) -> Result<Vec<Row>> {
    use indicatif::{ProgressBar, ProgressStyle};
    let exe = std::env::current_exe().context("locating this binary")?;
    let tmp = tempfile_dir()?;
    let pb = ProgressBar::new(points.len() as u64);
    pb.set_style(
        ProgressStyle::with_template("{spinner} sweep [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // A hidden bar (stderr not a terminal) prints nothing: say each point on stderr then.
    let say = |line: String| {
        if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    let mut rows = Vec::new();
    for (i, p) in points.iter().enumerate() {
        pb.set_message(p.label());
        let pcfg = if p.section == Section::RealSize {
            p.config(&ModelConfig::preset(&p.preset)?)
        } else {
            p.config(base)
        };
        let over = start.elapsed().as_secs_f64() > 60.0 * args.total_minutes;
        let skip = if over {
            Some(format!("total budget of {} min spent", args.total_minutes))
        } else {
            plan::skip_reason(&pcfg, p, limit)
        };
        let row = match skip {
            Some(why) => {
                say(format!("  skipped {}: {why}", p.label()));
                Row::blank(p, &pcfg, Status::Skipped, why)
            }
            None => run_child(&exe, args, p, &tmp.join(format!("{i}.csv")), &pcfg),
        };
        if row.ok() {
            say(format!(
                "  {:<40} {:>10.0} tok/s  peak RSS {:.2} GB",
                p.label(),
                row.tokens_per_sec,
                row.peak_rss_bytes as f64 / 1e9
            ));
        }
        rows.push(row);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(rows)
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ladder-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// One point in a child process; a failure (an OOM kill, an error) becomes a `failed` row.
fn run_child(
    exe: &std::path::Path,
    args: &SweepArgs,
    p: &Point,
    part: &std::path::Path,
    cfg: &ModelConfig,
) -> Row {
    let job = Job {
        point: p.clone(),
        seed: args.seed,
        warmup: args.warmup,
        repeats: args.repeats,
        max_seconds: args.point_seconds,
    };
    let res = (|| -> Result<Row> {
        let out = std::process::Command::new(exe)
            .args([
                "--device",
                &args.device,
                "--threads",
                &args.threads.to_string(),
            ])
            .arg("--child-job")
            .arg(serde_json::to_string(&job)?)
            .arg("--child-out")
            .arg(part)
            .stdout(std::process::Stdio::null())
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        anyhow::ensure!(
            out.status.success(),
            "measuring failed ({}): {last}",
            out.status
        );
        row::read_rows(part)?
            .pop()
            .context("the child wrote no row")
    })();
    res.unwrap_or_else(|e| {
        tracing::warn!("{}: {e:#}", p.label());
        Row::blank(p, cfg, Status::Failed, format!("{e:#}"))
    })
}
