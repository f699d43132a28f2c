//! Training checkpoints: a folder `ckpt/` with the model (our native layout, so
//! `model::io::load` and `infer --checkpoint` read it), the dataset meta (the tokenizer),
//! the AdamW state, and `state.json` (step, data-sampler RNG, resolved config).
//! Written to `ckpt.tmp/`, then swapped in by renames: never half-written.
use anyhow::{Context, Result};
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

pub fn dir(out_dir: &Path) -> PathBuf {
    out_dir.join("ckpt")
}

/// Write a checkpoint of everything a bit-identical resume needs.
pub fn save(
    out_dir: &Path,
    vs: &nn::VarStore,
    cfg: &model::ModelConfig,
    meta_json: &Path,
    opt: &optim::AdamW,
    state: &State,
) -> Result<()> {
    let final_dir = dir(out_dir);
    let tmp = out_dir.join("ckpt.tmp");
    let old = out_dir.join("ckpt.old");
    let _ = std::fs::remove_dir_all(&tmp);
    model::io::save_native(vs, cfg, &tmp)?;
    std::fs::copy(meta_json, tmp.join("meta.json"))
        .with_context(|| format!("copying {}", meta_json.display()))?;
    let opt_state = opt.state_tensors();
    Tensor::write_safetensors(&opt_state, tmp.join("optimizer.safetensors"))
        .map_err(|e| anyhow::anyhow!("writing optimizer state: {e}"))?;
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(state)? + "\n",
    )?;
    let _ = std::fs::remove_dir_all(&old);
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old)
            .with_context(|| format!("moving {} aside", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Restore model variables and optimizer state; returns the saved run state.
pub fn load(out_dir: &Path, vs: &mut nn::VarStore, opt: &mut optim::AdamW) -> Result<State> {
    let d = dir(out_dir);
    let ctx = || format!("resuming from {}", d.display());
    anyhow::ensure!(
        d.is_dir(),
        "--resume: no checkpoint at {} (train without --resume first)",
        d.display()
    );
    let state: State =
        serde_json::from_str(&std::fs::read_to_string(d.join("state.json")).with_context(ctx)?)
            .with_context(ctx)?;
    let loaded =
        model::io::load(&d, &model::RunSettings::default(), vs.device()).with_context(ctx)?;
    vs.copy(&loaded.vs)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(ctx)?;
    let opt_state = Tensor::read_safetensors(d.join("optimizer.safetensors"))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(ctx)?;
    opt.load_state_tensors(&opt_state).with_context(ctx)?;
    Ok(state)
}
