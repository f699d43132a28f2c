//! `speed_peers` (issue #16): the table of Ladder beside its peers from the rows that
//! `just speed-peers` leaves in results/speed/peers/ (see `experiments::speed::peers`).
use anyhow::Result;
use clap::Parser;
use experiments::speed::peers;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Write results/speed/peers.md: Ladder vs the PyTorch reference (training) and HF transformers generate (GPT-2 124M decode), from the rows `just speed-peers` measured.",
    long_about = "Write results/speed/peers.md and peers.csv from the rows `just speed-peers` leaves in --dir, one folder per round (round1/, round2/, ...; or the rows straight in --dir for one round). Each round holds train_preset/{rungs/*.csv,pytorch.csv} (speed rungs vs bench/speed.py), char/{ladder,pytorch}_<dtype>.csv (the two trainers' metrics.csv on shakespeare_char_cpu) and decode/{real_size,transformers}.csv (the sweep's GPT-2 124M point vs bench/hf_generate.py). Rounds are put together per comparison: the median of the rounds' ratios, with their range, judged against issue #16's target."
)]
struct Args {
    /// The folder with the measured rows.
    #[arg(long, default_value = "results/speed/peers")]
    dir: PathBuf,
    /// Where the table goes (peers.csv beside it).
    #[arg(long, default_value = "results/speed/peers.md")]
    out: PathBuf,
    /// The command recorded in the table.
    #[arg(long, default_value = "just speed-peers")]
    command: String,
    /// Print the precisions to measure here and exit: `fp32`, plus `bf16` where this CPU
    /// runs it natively (the recipe's list).
    #[arg(long)]
    dtypes: bool,
    /// Print the precisions to measure decode in and exit: `fp32`, plus `bf16` where bf16
    /// is native or where the decode gemv multiplies bf16 natively (AVX512-BF16) even though
    /// libtorch's bf16 matmul loses to fp32 (then `infer --dtype auto` decodes in bf16).
    #[arg(long)]
    decode_dtypes: bool,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
    let machine = runtime::hardware::machine(tch::Device::Cpu)?;
    if args.dtypes || args.decode_dtypes {
        let bf16 = machine.native_bf16() || (args.decode_dtypes && runtime::gemv::native_bf16());
        println!("fp32{}", if bf16 { " bf16" } else { "" });
        return Ok(());
    }
    let rows = peers::rounds::measured_rows(&args.dir)?;
    anyhow::ensure!(
        !rows.is_empty(),
        "{}: no measured rows (run `just speed-peers`)",
        args.dir.display()
    );
    let name = format!(
        "{}; {}",
        experiments::sys::cpu_name(),
        machine.describe_rates()
    );
    let revs = peers::rounds::measured_revs(&args.dir)?;
    peers::write(&rows, &args.out, &args.command, &name, &revs)?;
    println!("{}", args.out.display());
    Ok(())
}
