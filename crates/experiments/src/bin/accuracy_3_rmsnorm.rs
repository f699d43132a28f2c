//! Accuracy ladder rung 3_rmsnorm: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> std::process::ExitCode {
    runtime::exit::report(run())
}

fn run() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::accuracy::Rung::RmsNorm)
}
