//! Speed ladder rung 1_original: see `experiments::speed` and docs/speed.md.
use experiments::speed::{self, Rung};

fn main() -> std::process::ExitCode {
    runtime::exit::report(run())
}

fn run() -> anyhow::Result<()> {
    speed::main(&[Rung::Original, Rung::OriginalUnpadded])
}
