//! One run per `out_dir`: an exclusive advisory lock (`flock(2)`) on `<out_dir>/.lock`,
//! held for the life of the run. The kernel releases it when the process exits or
//! crashes, so a stale lock file never blocks anyone; the file records the holder's PID
//! for the error a second run gets.
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file of `out_dir`.
pub fn lock_path(out_dir: &Path) -> PathBuf {
    out_dir.join(".lock")
}

/// Take the lock on `out_dir` (created if needed), or fail naming the holder's PID.
pub fn acquire(out_dir: &Path) -> Result<RunLock> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = lock_path(out_dir);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map_or("unknown".into(), |p| p.to_string());
            bail!(
                "{} is in use by another run (PID {holder}, lock {}): wait for it to finish, or set a different run.out_dir",
                out_dir.display(),
                path.display()
            );
        }
        return Err(err).with_context(|| format!("locking {}", path.display()));
    }
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|_| file.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(RunLock { _file: file, path })
}
