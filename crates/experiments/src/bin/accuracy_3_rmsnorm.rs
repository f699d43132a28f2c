//! Accuracy ladder rung 3_rmsnorm: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::RmsNorm)
}
