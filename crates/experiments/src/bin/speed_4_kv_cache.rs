//! Speed ladder rung 4_kv_cache: see `experiments::speed` and docs/speed.md.
use experiments::rung::SpeedRung as Rung;
use experiments::speed;

fn main() -> anyhow::Result<()> {
    speed::main(&[Rung::KvCache])
}
