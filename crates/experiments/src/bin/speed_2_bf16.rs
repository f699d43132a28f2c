//! Speed ladder rung 2_bf16: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> anyhow::Result<()> {
    speed::main(&[Rung::Bf16])
}
