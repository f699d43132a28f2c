//! Never a half-written file: [`write_atomic`] writes a temporary file beside the target
//! (unique per process and call), fsyncs it, renames it over the target and fsyncs the
//! folder, so after a crash a reader sees either the old file or the whole new one
//! (the rename-and-fsync recipe of POSIX `rename(2)` / `fsync(2)`).
use anyhow::{Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `.<name>.<pid>.<n>.tmp` beside `path`: concurrent writers never share a temp file.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: path has no file name", path.display()))?
        .to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id())))
}

/// Write `path` atomically: `write` fills the temporary path it is given (any way it
/// likes: `std::fs::write`, a CSV writer, libtorch's safetensors writer), then the file is
/// fsynced and renamed over `path` and the folder fsynced. On error the temporary file
/// is removed and the error names the path.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {} atomically", path.display()))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Flush a folder's entries (new names, renames) to disk. The empty path is `.`.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write_atomic(&p, |t| Ok(std::fs::write(t, "one")?)).unwrap();
        write_atomic(&p, |t| Ok(std::fs::write(t, "two")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.txt");
        std::fs::write(&p, "old").unwrap();
        let err = write_atomic(&p, |t| {
            std::fs::write(t, "half")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("b.txt"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_names_differ_per_call() {
        let p = Path::new("x/y.json");
        assert_ne!(temp_path(p).unwrap(), temp_path(p).unwrap());
    }
}
