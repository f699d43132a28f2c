//! Speed ladder rung 3_flash: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> anyhow::Result<()> {
    speed::main(&[Rung::Flash])
}
