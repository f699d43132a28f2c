//! Parity of our training pipeline with our PyTorch reference (bench/train.py) on
//! `experiments/shakespeare_char_cpu.toml`: the val loss at every eval step, mean ± std
//! over seeds for each side, and whether the gap is within seed noise.
//! Writes results/parity/{summary.csv,README.md,val_loss.svg}.
use anyhow::{Context, Result};
use clap::Parser;
use experiments::accuracy::report::mean_std;
use experiments::chart;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(about = "Compare Rust and PyTorch val-loss curves over seeds; write results/parity/.")]
struct Args {
    /// Our runs' eval curves: <rust>/<rung 1>_seed<N>.csv (written by the first accuracy rung).
    #[arg(long, default_value = "results/accuracy/runs")]
    rust: PathBuf,
    /// Output folder; PyTorch's curves are read from <out>/pytorch_seed<N>.csv.
    #[arg(long, default_value = "results/parity")]
    out: PathBuf,
    #[arg(long, default_value = "just parity")]
    command: String,
}

/// step → val loss, for every file matching `prefix*.csv` in `dir`.
fn curves(dir: &Path, prefix: &str) -> Result<BTreeMap<String, BTreeMap<usize, f64>>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if !(name.starts_with(prefix) && name.ends_with(".csv")) {
            continue;
        }
        let mut rd = csv::Reader::from_path(e.path())?;
        let mut c = BTreeMap::new();
        for row in rd.deserialize::<BTreeMap<String, String>>() {
            let row = row?;
            c.insert(row["step"].parse()?, row["val_loss"].parse()?);
        }
        out.insert(
            name.trim_end_matches(".csv")
                .trim_start_matches(prefix)
                .to_string(),
            c,
        );
    }
    anyhow::ensure!(!out.is_empty(), "no {prefix}*.csv in {}", dir.display());
    Ok(out)
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let rust = curves(
        &args.rust,
        &format!("{}_seed", experiments::rung::AccuracyRung::Original),
    )?;
    let torch = curves(&args.out, "pytorch_seed")?;
    let steps: Vec<usize> = rust
        .values()
        .next()
        .map(|c| c.keys().copied().collect())
        .unwrap_or_default();
    let at = |set: &BTreeMap<String, BTreeMap<usize, f64>>, s: usize| -> Vec<f64> {
        set.values().filter_map(|c| c.get(&s).copied()).collect()
    };
    let mut csv_out = String::from("step,rust_mean,rust_std,rust_seeds,pytorch_mean,pytorch_std,pytorch_seeds,diff,within_noise\n");
    let mut md = format!(
        "# Parity: Ladder (Rust/tch) vs our PyTorch reference\n\nProduced by `{}` on {} (git {}). Config `experiments/shakespeare_char_cpu.toml` (bf16, SDPA), the same token files; Rust seeds {:?}, PyTorch seeds {:?}. \"Within noise\" means |diff| ≤ 2·sqrt(s²_rust/n_rust + s²_torch/n_torch), the seed-to-seed standard deviations s at that step (a side with a single seed borrows the other side's s).\n\n| step | Rust val loss | PyTorch val loss | diff | within noise |\n|---|---|---|---|---|\n",
        args.command,
        experiments::sys::cpu_name(),
        runtime::facts::git_rev(),
        rust.keys().collect::<Vec<_>>(),
        torch.keys().collect::<Vec<_>>()
    );
    let (mut rc, mut tc) = (Vec::new(), Vec::new());
    let mut all_ok = true;
    for s in steps {
        let (r, t) = (at(&rust, s), at(&torch, s));
        if r.is_empty() || t.is_empty() {
            continue;
        }
        let ((rm, rs), (tm, ts)) = (mean_std(&r), mean_std(&t));
        // A side with one seed has no spread of its own: it borrows the other side's.
        let (sr, st) = match (r.len() > 1, t.len() > 1) {
            (true, true) => (rs, ts),
            (true, false) => (rs, rs),
            (false, true) => (ts, ts),
            (false, false) => (f64::NAN, f64::NAN),
        };
        let noise = 2.0 * (sr * sr / r.len() as f64 + st * st / t.len() as f64).sqrt();
        let ok = (rm - tm).abs() <= noise;
        all_ok &= ok;
        let _ = writeln!(
            csv_out,
            "{s},{rm},{rs},{},{tm},{ts},{},{},{ok}",
            r.len(),
            t.len(),
            rm - tm
        );
        let _ = writeln!(
            md,
            "| {s} | {rm:.4} ± {rs:.4} | {tm:.4} ± {ts:.4} | {:+.4} | {} |",
            rm - tm,
            if ok { "yes" } else { "**no**" }
        );
        rc.push((s as f64, rm));
        tc.push((s as f64, tm));
    }
    let _ = writeln!(
        md,
        "\nVerdict: {}.\n\n![val loss, Rust vs PyTorch](val_loss.svg)",
        if all_ok {
            "the curves agree within seed noise at every eval step"
        } else {
            "**some eval steps differ by more than seed noise**"
        }
    );
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("summary.csv"), csv_out)?;
    std::fs::write(args.out.join("README.md"), &md)?;
    let curves = [
        chart::Curve {
            label: "Ladder (Rust/tch)".into(),
            points: rc,
        },
        chart::Curve {
            label: "PyTorch reference".into(),
            points: tc,
        },
    ];
    chart::lines(
        &args.out.join("val_loss.svg"),
        "shakespeare_char_cpu: val loss, mean over seeds",
        "step",
        "val loss",
        &curves,
    )?;
    println!("{md}");
    Ok(())
}
