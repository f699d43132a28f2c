//! Accuracy ladder rung 8_moe: see `experiments::accuracy` and docs/beyond-llama3.md.
fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::Moe)
}
