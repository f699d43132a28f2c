//! Quantization ladder rung 3_int4_g128: see `experiments::quant` and docs/quantization.md.
use experiments::quant::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::main(|| quant::main(Rung::Int4G128))
}
