//! Summarise the accuracy ladder: results/accuracy/{summary.csv,README.md,val_loss.svg}.
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Merge the accuracy-ladder records into summary.csv, val_loss.svg and README.md."
)]
struct Args {
    /// The folder the accuracy_* binaries wrote to.
    #[arg(long, default_value = "results/accuracy")]
    out: PathBuf,
    /// The command that produced the results, recorded in the README.
    #[arg(long, default_value = "just accuracy-ablation")]
    command: String,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
    let text = experiments::accuracy::report::write(&args.out, args.command.trim())?;
    println!("{text}");
    Ok(())
}
