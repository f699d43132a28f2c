//! `results/quant/{summary.csv,README.md,chart.svg}` from the quant_* rungs' results.
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The command that ran the ladder, recorded beside the numbers.
    #[arg(long, default_value = "just quant-ablation")]
    command: String,
    /// Wall-clock seconds of the whole ladder.
    #[arg(long)]
    wall_s: Option<u64>,
    #[arg(long, default_value = "results/quant")]
    out: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    experiments::quant::report::write(&a.out, a.command.trim(), a.wall_s)?;
    println!("{}", a.out.join("README.md").display());
    Ok(())
}
