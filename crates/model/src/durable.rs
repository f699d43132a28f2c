//! Durable writes: write under a name unique to this process, `fsync` the file, rename it
//! over the target, `fsync` the folder (POSIX: a rename is atomic, and durable once the
//! folder is synced). A failed write (e.g. a full disk) removes its partial file and the
//! error names the path.
use anyhow::{Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A temporary name beside `path`, unique to this process: `.NAME.tmp-PID`.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// `fsync` a file's data and metadata.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// `fsync` a folder, so the names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing folder {}", dir.display()))
}

/// Write `path` durably: `write` fills a temporary file, which is synced and renamed over
/// `path`, and the folder is synced. On any error the temporary file is removed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_name(path);
    let result = write(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|_| sync_file(&tmp))
        .and_then(|_| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("could not write {}", path.display()));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// [`write_atomic`] with bytes.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}
