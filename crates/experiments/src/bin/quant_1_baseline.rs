//! Quantization ladder rung 1_baseline: see `experiments::quant` and docs/quantization.md.
use experiments::quant::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::main(|| quant::main(Rung::Baseline))
}
