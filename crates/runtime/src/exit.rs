//! How a binary ends on an error: one `error: …` line on stderr with the whole context chain
//! (which file, key or flag, and what was expected) and a non-zero exit — never a backtrace,
//! which is for bugs, not for a user's mistake (`fn main() -> Result` prints one whenever
//! `RUST_BACKTRACE` is set).
use std::process::ExitCode;

/// A binary's `main`: keeps freed memory in the process ([`crate::mem::keep_freed_memory`]),
/// runs `run` and ends as [`report`] says.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    crate::mem::keep_freed_memory();
    report(run())
}

/// The exit code for `result`, printing the error (with its causes) when there is one.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
