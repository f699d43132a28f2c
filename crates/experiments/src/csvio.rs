//! CSV tables of serde rows, shared by the reports: written whole through a temporary file
//! (never a half-written table), read back with the file named in any error.
use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// Write `rows` to `path` (replacing it; parent folders created) through a temporary file.
pub fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    runtime::fsio::write_atomic(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp)?;
        for r in rows {
            w.serialize(r)?;
        }
        w.flush()?;
        Ok(())
    })
}

/// Every row of the CSV file at `path`.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .map(|x| x.with_context(|| format!("{}: bad row", path.display())))
        .collect()
}
