//! Accuracy ladder rung 3_rmsnorm: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::RmsNorm)
}
