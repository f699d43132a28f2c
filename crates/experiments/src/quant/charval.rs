//! Quality on a model this project trained: the Tiny Shakespeare char model of
//! `experiments/shakespeare_char_cpu.toml` (`just train …`), its val loss in fp32 before and
//! after a rung's quantization, on the same fixed batches of its own val split.
use super::Rung;
use anyhow::{bail, Context, Result};
use infer::{source, SourceSpec};
use runtime::{DType, Rng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind};

/// Batches of the val split, drawn from a fixed seed (the same for every rung).
pub const BATCHES: usize = 40;
pub const BATCH_SIZE: usize = 16;
const SEED: u64 = 1337;

/// Val loss of the trained char model, dense fp32 and under this rung's weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CharVal {
    /// The checkpoint measured (a `ckpt-NNNNNN` folder).
    pub checkpoint: String,
    /// Its training step.
    pub step: usize,
    /// Tokens scored: `BATCHES · BATCH_SIZE · block_size`.
    pub tokens: usize,
    pub dense_val_loss: f64,
    pub val_loss: f64,
}

impl CharVal {
    /// Relative change of the val loss, in percent.
    pub fn delta_percent(&self) -> f64 {
        100.0 * (self.val_loss / self.dense_val_loss - 1.0)
    }
}

/// The newest checkpoint of the run folder `run`; `None` (with a hint) when it has none.
pub fn find(run: &Path) -> Option<PathBuf> {
    let dir = infer::limits::resolve_checkpoint(run);
    if dir.join("config.json").is_file() && dir.join("meta.json").is_file() {
        return Some(dir);
    }
    tracing::warn!(
        "no trained char model at {} (train one with `just train experiments/shakespeare_char_cpu.toml`, about 6 minutes): the Tiny Shakespeare val-loss row is skipped",
        run.display()
    );
    None
}

/// Mean loss of `m` over the fixed val batches.
fn val_loss(m: &model::Gpt, val: &data::TokenFile, block: usize) -> Result<f64> {
    let _g = tch::no_grad_guard();
    let mut rng = Rng::new(SEED);
    let mut sum = 0.0;
    for _ in 0..BATCHES {
        let (x, y) = val.get_batch(&mut rng, BATCH_SIZE, block, Device::Cpu)?;
        sum += m
            .loss(&x, &y, false)?
            .to_kind(Kind::Double)
            .double_value(&[]);
    }
    Ok(sum / BATCHES as f64)
}

/// The val split the checkpoint was trained beside: its corpus (recorded in the checkpoint's
/// `meta.json`) tokenised again, checked against the recorded hash and vocabulary.
fn val_split(ckpt: &Path) -> Result<data::TokenFile> {
    let meta_path = ckpt.join("meta.json");
    let text = std::fs::read_to_string(&meta_path)
        .with_context(|| format!("reading {}", meta_path.display()))?;
    let meta: data::Meta = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a dataset meta.json", meta_path.display()))?;
    let corpus = PathBuf::from(&meta.source);
    let dir = std::env::temp_dir().join(format!(
        "ladder-charval-{}",
        &meta.source_sha256[..meta.source_sha256.len().min(16)]
    ));
    let again = data::prepare(&corpus, &dir, meta.tokenizer).with_context(|| {
        format!(
            "tokenising {} (named by {})",
            corpus.display(),
            meta_path.display()
        )
    })?;
    if again.source_sha256 != meta.source_sha256 || again.vocab_size != meta.vocab_size {
        bail!(
            "{}: the corpus at {} changed since the model was trained (hash or vocabulary differs)",
            meta_path.display(),
            corpus.display()
        );
    }
    data::TokenFile::open(&dir.join("val.bin"), &again)
}

/// The val loss of the checkpoint `ckpt` before and after `rung`'s quantization (fp32).
pub fn measure(ckpt: &Path, rung: Rung) -> Result<CharVal> {
    let load = |r: Rung| -> Result<source::Source> {
        let spec = SourceSpec {
            model: None,
            checkpoint: Some(ckpt.into()),
            dtype: DType::Fp32,
            ..SourceSpec::model(ckpt)
        };
        let mut src = source::load(&spec)?;
        if let Some(s) = r.scheme() {
            model::quant::quantize_model(&mut src.model, s, true)?;
        }
        Ok(src)
    };
    let dense = load(Rung::Baseline)?;
    let block = dense.model.cfg.block_size;
    let val = val_split(ckpt)?;
    let dense_val_loss = val_loss(&dense.model, &val, block)?;
    let val_loss = if rung.scheme().is_some() {
        val_loss(&load(rung)?.model, &val, block)?
    } else {
        dense_val_loss
    };
    let step = std::fs::read_to_string(ckpt.join("state.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0) as usize;
    let c = CharVal {
        checkpoint: ckpt.display().to_string(),
        step,
        tokens: BATCHES * BATCH_SIZE * block,
        dense_val_loss,
        val_loss,
    };
    eprintln!(
        "  shakespeare char model (step {step}): val loss {:.4} → {:.4} ({:+.2} %)",
        c.dense_val_loss,
        c.val_loss,
        c.delta_percent()
    );
    Ok(c)
}
