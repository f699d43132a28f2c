//! Speed ladder rung 1_original: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> anyhow::Result<()> {
    speed::main(&[Rung::Original, Rung::OriginalUnpadded])
}
