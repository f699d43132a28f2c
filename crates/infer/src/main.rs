//! `cargo run -p infer -- --kv-cache --gqa 4`: generate and measure prefill and decode
//! (flags: `--help`; the logic lives in `infer::cli`).
use clap::Parser;

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> anyhow::Result<()> {
    runtime::logging::init_with_default("warn");
    infer::cli::run(&infer::cli::Args::parse())
}
