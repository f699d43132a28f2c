//! Training checkpoints that survive a crash at any moment. Each save is a new folder
//! `ckpt-000123/` (the step; `.1`, `.2`… when a step is saved twice) holding the model in
//! our native layout (so `model::io::load` and `infer --checkpoint` read it), the dataset
//! meta (the tokenizer), the AdamW state, `state.json` (step, sampler RNG, config) and,
//! last, `manifest.json` (sizes and SHA-256 of the others; see `manifest.rs`).
//!
//! The order of a save: write into `.ckpt-000123.tmp-PID/`, fsync every file and the
//! folder; rename it to `ckpt-000123/` and fsync `out_dir`; replace `checkpoints.json`
//! (the pointer) atomically; point the symlink `ckpt` at the new folder (atomic rename of
//! a new link); only then delete the older checkpoints. At every instant a complete,
//! verifiable checkpoint exists, and resume picks the newest that verifies.
use crate::manifest::{self, Found, Manifest, FILES, LEGACY, MANIFEST, POINTER};
use anyhow::{bail, Context, Result};
use runtime::fsio::{fsync_dir as sync_dir, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The next iteration to run.
    pub step: usize,
    /// The training batch sampler's RNG state.
    pub data_rng: u64,
    pub best_val_loss: Option<f64>,
    /// The resolved training config (TOML text).
    pub config: String,
}

/// The stable name of the newest checkpoint: a symlink to its `ckpt-*` folder.
pub const LINK: &str = "ckpt";

/// `<out_dir>/ckpt`, the path to give `infer --checkpoint`.
pub fn dir(out_dir: &Path) -> PathBuf {
    out_dir.join(LINK)
}

/// Test-only crash injection: with `LADDER_TEST_CRASH_AT=<point>` the process aborts at
/// that point of a save (no destructors, no cleanup), as a `kill -9` would stop it.
pub fn crash_point(point: &str) {
    if std::env::var("LADDER_TEST_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("LADDER_TEST_CRASH_AT={point}: aborting");
        std::process::abort();
    }
}

/// Write `bytes` to `path` durably (temp, fsync, rename, fsync the folder).
fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |t| Ok(std::fs::write(t, bytes)?))
}

/// The folder name for a save at `step` that does not exist yet.
fn fresh_name(out_dir: &Path, step: usize) -> String {
    let base = format!("ckpt-{step:06}");
    (0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}.{i}")
            }
        })
        .find(|n| std::fs::symlink_metadata(out_dir.join(n)).is_err())
        .unwrap_or(base)
}

fn write_files(
    tmp: &Path,
    vs: &nn::VarStore,
    cfg: &model::ModelConfig,
    meta_json: &Path,
    opt: &optim::AdamW,
    state: &State,
) -> Result<()> {
    std::fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    model::io::save_native(vs, cfg, tmp)?;
    let meta =
        std::fs::read(meta_json).with_context(|| format!("reading {}", meta_json.display()))?;
    write_bytes(&tmp.join("meta.json"), &meta)?;
    let opt_state = opt.state_tensors();
    let p = tmp.join("optimizer.safetensors");
    write_atomic(&p, |t| {
        Tensor::write_safetensors(&opt_state, t).map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    crash_point("ckpt-files");
    write_bytes(
        &tmp.join("state.json"),
        (serde_json::to_string_pretty(state)? + "\n").as_bytes(),
    )
}

/// Every variable finite, or an error: a checkpoint is never written from broken weights.
fn check_weights(vs: &nn::VarStore) -> Result<()> {
    for (k, t) in vs.variables() {
        model::validate::check_finite(&k, &t).context("not saving a checkpoint")?;
    }
    Ok(())
}

/// Write a checkpoint of everything a bit-identical resume needs; returns its folder.
pub fn save(
    out_dir: &Path,
    vs: &nn::VarStore,
    cfg: &model::ModelConfig,
    meta_json: &Path,
    opt: &optim::AdamW,
    state: &State,
) -> Result<PathBuf> {
    check_weights(vs)?;
    let name = fresh_name(out_dir, state.step);
    let final_dir = out_dir.join(&name);
    let tmp = out_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = write_files(&tmp, vs, cfg, meta_json, opt, state).and_then(|_| {
        let mut files = std::collections::BTreeMap::new();
        for f in FILES {
            files.insert(f.to_string(), manifest::file_sum(&tmp.join(f))?);
        }
        let m = Manifest {
            format: manifest::FORMAT,
            name: name.clone(),
            step: state.step,
            seq: manifest::next_seq(out_dir),
            files,
        };
        let text = serde_json::to_string_pretty(&m)? + "\n";
        write_bytes(&tmp.join(MANIFEST), text.as_bytes())?;
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, &final_dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
        sync_dir(out_dir)?;
        Ok(text)
    });
    let text = match written {
        Ok(t) => t,
        Err(e) => {
            // A full disk must not stay full because of us: drop the partial folder.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| {
                format!(
                    "saving checkpoint {} (the previous checkpoint is kept)",
                    final_dir.display()
                )
            });
        }
    };
    crash_point("ckpt-renamed");
    write_bytes(&out_dir.join(POINTER), text.as_bytes())?;
    crash_point("ckpt-pointer");
    point_link(out_dir, &name)?;
    crash_point("ckpt-linked");
    remove_older(out_dir, &name);
    Ok(final_dir)
}

/// Make `<out_dir>/ckpt` a symlink to `name`, replacing a link atomically. A real folder
/// of the older layout there is moved aside first (the new checkpoint is already durable).
fn point_link(out_dir: &Path, name: &str) -> Result<()> {
    let link = out_dir.join(LINK);
    if std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
        let aside = out_dir.join(format!(".ckpt.legacy-{}", std::process::id()));
        std::fs::rename(&link, &aside)
            .with_context(|| format!("moving {} aside", link.display()))?;
    }
    let tmp = out_dir.join(format!(".ckpt.link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)
        .with_context(|| format!("creating the link {}", tmp.display()))?;
    std::fs::rename(&tmp, &link)
        .with_context(|| format!("renaming {} to {}", tmp.display(), link.display()))?;
    sync_dir(out_dir)
}

/// Delete every checkpoint but `keep`, and temporaries left by crashed saves (the run
/// lock guarantees no other process is writing them). Failures are only logged.
fn remove_older(out_dir: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(out_dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let old = (n.starts_with("ckpt-") && n != keep)
            || LEGACY.contains(&n.as_str()) && n != LINK
            || n.starts_with(".ckpt-")
            || n.starts_with(".ckpt.legacy-");
        if old && e.file_type().is_ok_and(|t| t.is_dir()) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!("could not remove {}: {err}", e.path().display());
            }
        }
    }
    let _ = sync_dir(out_dir);
}

/// The newest complete, verified checkpoint in `out_dir`, if any.
pub fn latest(out_dir: &Path) -> Option<Found> {
    let (good, rejected) = manifest::candidates(out_dir);
    for r in rejected {
        tracing::warn!("skipping an incomplete or corrupt checkpoint: {r}");
    }
    good.into_iter().next()
}

/// Restore model variables and optimizer state from the newest checkpoint that verifies
/// and loads; returns it. `accept` sees each candidate first: its error is final (e.g. a
/// different architecture), while a candidate that fails to load gives way to the next.
pub fn load(
    out_dir: &Path,
    vs: &mut nn::VarStore,
    opt: &mut optim::AdamW,
    accept: impl Fn(&Found) -> Result<()>,
) -> Result<Found> {
    let (good, rejected) = manifest::candidates(out_dir);
    let mut why = rejected;
    for found in good {
        accept(&found)?;
        match load_from(&found, vs, opt) {
            Ok(()) => {
                for r in &why {
                    tracing::warn!("skipped: {r}");
                }
                return Ok(found);
            }
            Err(e) => why.push(format!("{e:#}")),
        }
    }
    if why.is_empty() {
        bail!(
            "--resume: no checkpoint in {} (start the run without --resume first)",
            out_dir.display()
        );
    }
    bail!(
        "--resume: no usable checkpoint in {}:\n  {}",
        out_dir.display(),
        why.join("\n  ")
    )
}

fn load_from(found: &Found, vs: &mut nn::VarStore, opt: &mut optim::AdamW) -> Result<()> {
    let d = &found.dir;
    let ctx = || format!("resuming from {}", d.display());
    let loaded =
        model::io::load(d, &model::RunSettings::default(), vs.device()).with_context(ctx)?;
    vs.copy(&loaded.vs)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(ctx)?;
    let p = d.join("optimizer.safetensors");
    let opt_state = Tensor::read_safetensors(&p)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        .with_context(ctx)?;
    opt.load_state_tensors(&opt_state).with_context(ctx)?;
    Ok(())
}
