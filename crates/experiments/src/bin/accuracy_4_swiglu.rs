//! Accuracy ladder rung 4_swiglu: see `experiments::accuracy` and docs/accuracy.md.
fn main() -> anyhow::Result<()> {
    experiments::accuracy::main(experiments::rung::AccuracyRung::SwiGlu)
}
