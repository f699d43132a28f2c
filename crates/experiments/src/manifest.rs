//! What makes a checkpoint folder trustworthy: `manifest.json`, written last inside it,
//! names every file with its size and SHA-256, the step, and a sequence number that grows
//! with every save in an `out_dir` (so "newest" means last written, even across a fresh
//! run that restarts the step count). `checkpoints.json` in the `out_dir` is a copy of the
//! newest manifest, replaced atomically: a pointer for readers that does not need a scan.
//!
//! Finding the checkpoint to resume from trusts nothing: every `ckpt-*` folder is verified
//! against its own manifest, and folders of the older layout (`ckpt/`, `ckpt.tmp/`,
//! `ckpt.old/`, no manifest) are accepted when all their files are present and readable.
use crate::checkpoint::State;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FORMAT: u32 = 1;
/// Inside each checkpoint folder.
pub const MANIFEST: &str = "manifest.json";
/// In the `out_dir`: a copy of the newest checkpoint's manifest.
pub const POINTER: &str = "checkpoints.json";
/// The files of a checkpoint (besides the manifest).
pub const FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "meta.json",
    "optimizer.safetensors",
    "state.json",
];
/// Folders of the layout before manifests, newest first on a tie in step.
pub const LEGACY: &[&str] = &["ckpt.tmp", "ckpt", "ckpt.old"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The folder's name in the `out_dir`, e.g. `ckpt-000123`.
    pub name: String,
    pub step: usize,
    /// Grows by one with every save in this `out_dir`.
    pub seq: u64,
    pub files: BTreeMap<String, FileSum>,
}

/// Size and SHA-256 of a file, streamed.
pub fn file_sum(path: &Path) -> Result<FileSum> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileSum {
        bytes,
        sha256: format!("{:x}", h.finalize()),
    })
}

/// A checkpoint folder that passed verification.
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub state: State,
    /// `None` for a folder of the older layout.
    pub manifest: Option<Manifest>,
}

impl Found {
    pub fn step(&self) -> usize {
        self.state.step
    }
}

fn read_state(dir: &Path) -> Result<State> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a checkpoint state", p.display()))
}

/// Read `dir/manifest.json` and check every file it names against it.
pub fn verify(dir: &Path) -> Result<Found> {
    let p = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{}: no manifest (an unfinished checkpoint?)", p.display()))?;
    let m: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a checkpoint manifest", p.display()))?;
    if m.format != FORMAT {
        bail!("{}: format {} (expected {FORMAT})", p.display(), m.format);
    }
    for f in FILES {
        let want = m
            .files
            .get(*f)
            .with_context(|| format!("{}: does not name {f}", p.display()))?;
        let got = file_sum(&dir.join(f))?;
        if &got != want {
            bail!(
                "{}: {} bytes with SHA-256 {}, but the manifest says {} bytes, {} (corrupt)",
                dir.join(f).display(),
                got.bytes,
                got.sha256,
                want.bytes,
                want.sha256
            );
        }
    }
    let state = read_state(dir)?;
    if state.step != m.step {
        bail!(
            "{}: step {} but state.json says {}",
            p.display(),
            m.step,
            state.step
        );
    }
    Ok(Found {
        dir: dir.into(),
        state,
        manifest: Some(m),
    })
}

/// A folder of the older layout: complete when every file is there and readable.
pub fn verify_legacy(dir: &Path) -> Result<Found> {
    for f in FILES {
        let p = dir.join(f);
        anyhow::ensure!(p.is_file(), "{} is missing", p.display());
    }
    for f in ["model.safetensors", "optimizer.safetensors"] {
        model::validate::read_header(&dir.join(f))?;
    }
    model::io::read_config(dir)?;
    data::Meta::read(&dir.join("meta.json"))?;
    Ok(Found {
        dir: dir.into(),
        state: read_state(dir)?,
        manifest: None,
    })
}

/// `ckpt-000123` or `ckpt-000123.2` → its folder names in `out_dir` (no temporaries).
pub fn versioned_dirs(out_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(out_dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with("ckpt-") && e.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Every checkpoint in `out_dir` that verifies, newest first (manifested ones by `seq`,
/// then the older layout by step), and why each rejected folder was rejected.
pub fn candidates(out_dir: &Path) -> (Vec<Found>, Vec<String>) {
    let (mut good, mut rejected) = (Vec::new(), Vec::new());
    for d in versioned_dirs(out_dir) {
        match verify(&d) {
            Ok(f) => good.push(f),
            Err(e) => rejected.push(format!("{e:#}")),
        }
    }
    good.sort_by_key(|f: &Found| std::cmp::Reverse(f.manifest.as_ref().map_or(0, |m| m.seq)));
    let mut legacy = Vec::new();
    for name in LEGACY {
        let d = out_dir.join(name);
        let real_dir = std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir());
        if !real_dir {
            continue;
        }
        match verify_legacy(&d) {
            Ok(f) => legacy.push(f),
            Err(e) => rejected.push(format!("{e:#}")),
        }
    }
    // Stable sort: on a tie in step, LEGACY's order (tmp newest) stands.
    legacy.sort_by_key(|f| std::cmp::Reverse(f.step()));
    good.extend(legacy);
    (good, rejected)
}

/// The next sequence number for a save in `out_dir`.
pub fn next_seq(out_dir: &Path) -> u64 {
    let from_pointer = std::fs::read_to_string(out_dir.join(POINTER))
        .ok()
        .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
        .map_or(0, |m| m.seq);
    let from_dirs = versioned_dirs(out_dir)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join(MANIFEST)).ok())
        .filter_map(|t| serde_json::from_str::<Manifest>(&t).ok())
        .map(|m| m.seq)
        .max()
        .unwrap_or(0);
    from_pointer.max(from_dirs) + 1
}
