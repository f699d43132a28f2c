//! Speed ladder rung 4_kv_cache: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> anyhow::Result<()> {
    speed::main(&[Rung::KvCache])
}
