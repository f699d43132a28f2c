//! Where the shared resources live: `$LADDER_SHARED`, default `../shared` beside the checkout.
//! In CI (`CI=true`) a missing resource is an error, elsewhere the caller may skip.
use std::path::{Path, PathBuf};

/// The workspace root (where the top-level Cargo.toml lives).
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")); // <root>/crates/runtime
    crate_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(crate_dir)
        .to_path_buf()
}

/// The shared folder (`LADDER_SHARED`, else `<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("LADDER_SHARED") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let root = workspace_root();
            root.parent().unwrap_or(&root).join("shared")
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
