//! Accuracy ladder rung 5_gqa: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::Gqa)
}
