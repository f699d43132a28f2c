//! Accuracy ladder rung 2_rope: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::Rope)
}
