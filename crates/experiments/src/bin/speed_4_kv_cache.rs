//! Speed ladder rung 4_kv_cache: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::report(run())
}

fn run() -> anyhow::Result<()> {
    speed::main(&[Rung::KvCache])
}
