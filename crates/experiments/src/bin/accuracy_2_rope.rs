//! Accuracy ladder rung 2_rope: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::Rope)
}
