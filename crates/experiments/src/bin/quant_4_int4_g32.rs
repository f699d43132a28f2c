//! Quantization ladder rung 4_int4_g32: see `experiments::quant` and docs/quantization.md.
use experiments::quant::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::main(|| quant::main(Rung::Int4G32))
}
