//! `cargo run -p infer -- --kv-cache --gqa 4`: generate and measure prefill and decode
//! (flags: `--help`; the logic lives in `infer::cli`).
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    infer::cli::run(&infer::cli::Args::parse())
}
