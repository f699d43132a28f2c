//! Where the shared resources live: `$LADDER_SHARED`, default `../shared` beside the checkout.
//! In CI (`CI=true`) a missing resource is an error, elsewhere the caller may skip.
use std::path::{Path, PathBuf};

/// The shared folder (`LADDER_SHARED`, else `<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("LADDER_SHARED") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")); // <root>/crates/model
            crate_dir
                .ancestors()
                .nth(3)
                .unwrap_or(crate_dir)
                .join("shared")
        }
    }
}

/// `shared_dir()/rel` if it exists. If not: `Err` in CI, `Ok(None)` otherwise (skip).
pub fn shared_resource(rel: &str) -> anyhow::Result<Option<PathBuf>> {
    let p = shared_dir().join(rel);
    if p.exists() {
        return Ok(Some(p));
    }
    let msg = format!(
        "shared resource {} not found (set LADDER_SHARED to the folder holding data/ and models/)",
        p.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        anyhow::bail!(msg);
    }
    eprintln!("skipping: {msg}");
    Ok(None)
}
