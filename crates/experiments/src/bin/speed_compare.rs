//! Put Rust/tch training throughput beside the PyTorch eager reference (bench/speed.py),
//! same shapes and precision: writes results/speed/pytorch.md.
use anyhow::{Context, Result};
use clap::Parser;
use experiments::rung::SpeedRung;
use experiments::speed::{report, Phase};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Compare the Rust speed rows with bench/speed.py's rows; write a Markdown table."
)]
struct Args {
    /// Folder with the Rust rows (rungs/*.csv) and PyTorch's pytorch.csv.
    #[arg(long, default_value = "results/speed/vs_pytorch")]
    dir: PathBuf,
    /// Where the table goes (the speed README includes it).
    #[arg(long, default_value = "results/speed/pytorch.md")]
    out: PathBuf,
    #[arg(long, default_value = "just speed-vs-pytorch")]
    command: String,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
    let pt_path = args.dir.join("pytorch.csv");
    let mut rd = csv::Reader::from_path(&pt_path)
        .with_context(|| format!("reading {}", pt_path.display()))?;
    let pt: Vec<HashMap<String, String>> = rd.deserialize().collect::<Result<_, _>>()?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Training (forward + backward + AdamW), same shapes, precision and thread count, measured back to back by `{}` on {}.\n",
        args.command,
        experiments::sys::cpu_name()
    );
    s.push_str("Target: Rust/tch ≥ 1.0× PyTorch eager. Median (min–max) over repeats; where the ranges overlap the two are indistinguishable on this machine.\n\n| rung | dtype | attention | Rust/tch tokens/sec | PyTorch eager tokens/sec | Rust / PyTorch | ≥ 1.0× |\n|---|---|---|---|---|---|---|\n");
    for rung in [SpeedRung::Original, SpeedRung::Bf16, SpeedRung::Flash] {
        let p = args.dir.join("rungs").join(format!("{rung}.csv"));
        let Ok(rows) = report::read_rows(&p) else {
            continue;
        };
        let Some(r) = rows.iter().find(|r| r.phase == Phase::Train) else {
            continue;
        };
        let Some(py) = pt.iter().find(|x| {
            x["dtype"] == r.dtype.to_string()
                && x["attention"] == r.attention.to_string()
                && x["phase"] == Phase::Train.name()
        }) else {
            continue;
        };
        let num = |k: &str| -> Result<f64> { Ok(py[k].parse()?) };
        let (py_rate, py_min, py_max) = (
            num("tokens_per_sec")?,
            num("tokens_per_sec_min")?,
            num("tokens_per_sec_max")?,
        );
        let ratio = r.tokens_per_sec / py_rate;
        let verdict = if ratio >= 1.0 {
            "yes"
        } else if r.tokens_per_sec_max >= py_min {
            "no (ranges overlap)"
        } else {
            "**no**"
        };
        let _ = writeln!(
            s,
            "| {rung} | {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}; torch {}) | {ratio:.2}× | {verdict} |",
            r.dtype, r.attention, r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, py_rate, py_min, py_max, py["torch_version"]
        );
    }
    runtime::fsio::write_atomic(&args.out, |tmp| Ok(std::fs::write(tmp, &s)?))?;
    println!("{s}");
    Ok(())
}
