//! Quantization ladder rung 2_int8: see `experiments::quant` and docs/quantization.md.
use experiments::quant::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::main(|| quant::main(Rung::Int8))
}
