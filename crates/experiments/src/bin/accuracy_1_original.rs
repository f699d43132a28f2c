//! Accuracy ladder rung 1_original: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::Original)
}
