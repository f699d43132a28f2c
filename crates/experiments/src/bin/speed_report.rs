//! Summarise the speed ladder: merge results/speed/rungs/*.csv into summary.csv, draw
//! chart.svg and write README.md (table, speed-ups, targets, machine, command).
use anyhow::{Context, Result};
use clap::Parser;
use experiments::speed::{explain, report};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Merge the speed-ladder CSV files into summary.csv, chart.svg and README.md.")]
struct Args {
    /// The folder the speed_* binaries wrote to.
    #[arg(long, default_value = "results/speed")]
    out: PathBuf,
    /// The command that produced the results, recorded in the README.
    #[arg(long, default_value = "just speed-ablation")]
    command: String,
    /// How long the whole ladder took (seconds), recorded in the README.
    #[arg(long)]
    wall_s: Option<u64>,
    /// How much of --wall-s was the build (seconds).
    #[arg(long)]
    build_s: Option<u64>,
    /// Write only <out>/README.md etc., not the generated parts of docs/speed.md and README.md
    /// (for side runs such as results/speed/cuda).
    #[arg(long)]
    no_docs: bool,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let mut args = Args::parse();
    args.command = args.command.trim().to_string();
    // The ladder's wall time is recorded once, by the run that measured it; a later
    // `speed_report` (e.g. after `just speed-sweep --real-size`) keeps it.
    let timing = args.out.join("timing.json");
    match args.wall_s {
        Some(wall_s) => {
            let v = serde_json::json!({ "wall_s": wall_s, "build_s": args.build_s, "command": args.command });
            runtime::fsio::write_atomic(&timing, |tmp| {
                std::fs::write(tmp, format!("{v:#}\n"))?;
                Ok(())
            })?
        }
        None => {
            if let Ok(text) = std::fs::read_to_string(&timing) {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", timing.display()))?;
                args.wall_s = v["wall_s"].as_u64();
                args.build_s = v["build_s"].as_u64();
                if let Some(c) = v["command"].as_str() {
                    args.command = c.to_string();
                }
            }
        }
    }
    let rows = report::summarize(&args.out)?;
    let readme = report::readme(&args.out, &rows, &args.command)?;
    println!("{readme}");
    let doc = std::path::Path::new("docs/speed.md");
    if doc.exists() && !args.no_docs {
        experiments::docs::replace_generated(
            doc,
            "speed_report",
            &explain::doc_section(&args.out, &rows, &args.command),
        )?;
    }
    let readme = std::path::Path::new("README.md");
    if readme.exists() && !args.no_docs {
        experiments::docs::replace_generated(
            readme,
            "speed_summary",
            &explain::readme_summary(&args.out, &rows, &args.command, args.wall_s, args.build_s),
        )?;
    }
    eprintln!(
        "wrote {}/{{summary.csv,chart.svg,README.md}}",
        args.out.display()
    );
    Ok(())
}
