//! Summarise the speed ladder: merge results/speed/rungs/*.csv into summary.csv, draw
//! chart.svg and write README.md (table, speed-ups, targets, machine, command).
use anyhow::Result;
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
    runtime::exit::report(run())
}

fn run() -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
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
