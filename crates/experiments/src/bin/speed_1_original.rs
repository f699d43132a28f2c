//! Speed ladder rung 1_original: see `experiments::speed` and docs/speed.md.
use experiments::rung::SpeedRung as Rung;
use experiments::speed;

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> anyhow::Result<()> {
    speed::main(&[Rung::Original, Rung::OriginalUnpadded])
}
