//! The training configuration: a TOML file with `[run]`, `[data]`, `[model]` and `[train]`
//! sections, every key checked, plus typed `--set section.key=value` overrides.
use anyhow::{bail, Context, Result};
use model::ModelConfig;
use runtime::hardware::MachineRecord;
use runtime::Precision;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub out_dir: PathBuf,
}

fn default_seed() -> u64 {
    1337
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `char` or `gpt2`.
    pub tokenizer: String,
    /// The corpus; empty means `$LADDER_DATA`, else the shared Tiny Shakespeare.
    #[serde(default)]
    pub corpus: String,
    #[serde(default = "default_cache")]
    pub cache_dir: PathBuf,
}

fn default_cache() -> PathBuf {
    PathBuf::from("data-cache")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    pub max_iters: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_iters: usize,
    pub lr_decay_iters: usize,
    pub beta1: f64,
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
    pub eval_interval: usize,
    pub eval_iters: usize,
    #[serde(default = "default_log")]
    pub log_interval: usize,
    /// Intra-op threads; 0 = all cores.
    #[serde(default)]
    pub threads: usize,
    /// cpu, cuda or auto.
    #[serde(default = "default_device")]
    pub device: String,
    /// Characters/tokens of text sampled at the end (0 = none).
    #[serde(default = "default_sample")]
    pub sample_tokens: usize,
}

fn one() -> usize {
    1
}
fn default_eps() -> f64 {
    1e-8
}
fn default_log() -> usize {
    10
}
fn default_device() -> String {
    "auto".into()
}
fn default_sample() -> usize {
    300
}

/// A whole training config. `model` stays a table until the tokenizer's vocabulary is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub run: RunSection,
    pub data: DataSection,
    pub model: toml::Table,
    pub train: TrainSection,
}

/// Parse a `--set` value as TOML (`3`, `1e-3`, `true`, `"text"`); bare words are strings.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

/// Apply `section.key=value` overrides to a parsed file.
pub fn apply_overrides(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .with_context(|| format!("--set '{s}': expected section.key=value"))?;
        let (section, field) = key.trim().split_once('.').with_context(|| {
            format!("--set '{s}': expected section.key=value (sections: run, data, model, train)")
        })?;
        let Some(toml::Value::Table(sec)) = table.get_mut(section) else {
            bail!("--set '{s}': unknown section '{section}' (expected run, data, model or train)");
        };
        let mut value = parse_value(raw.trim());
        // An integer where the file has a float is still a float (`--set train.lr=1`).
        if let (Some(toml::Value::Float(_)), toml::Value::Integer(i)) = (sec.get(field), &value) {
            value = toml::Value::Float(*i as f64);
        }
        sec.insert(field.to_string(), value);
    }
    Ok(())
}

fn de_error(origin: &str, e: serde_path_to_error::Error<toml::de::Error>) -> anyhow::Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let msg = inner.message().to_string();
    if path == "." || path.is_empty() {
        anyhow::anyhow!("{origin}: {msg}")
    } else {
        anyhow::anyhow!("{origin}: key '{path}': {msg}")
    }
}

impl TrainConfig {
    /// Read `path` and apply `sets`; unknown keys and wrong types name the key.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), sets)
    }

    pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{origin}: {}", e.message()))?;
        apply_overrides(&mut table, sets)?;
        let origin = if sets.is_empty() {
            origin.to_string()
        } else {
            format!("{origin} (with --set {})", sets.join(" "))
        };
        let de = toml::Value::Table(table);
        let cfg: TrainConfig =
            serde_path_to_error::deserialize(de).map_err(|e| de_error(&origin, e))?;
        cfg.validate().with_context(|| origin.clone())?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let t = &self.train;
        for (name, v) in [
            ("train.batch_size", t.batch_size),
            ("train.grad_accum", t.grad_accum),
            ("train.eval_interval", t.eval_interval),
            ("train.eval_iters", t.eval_iters),
            ("train.log_interval", t.log_interval),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if t.lr.is_nan() || t.lr <= 0.0 || t.min_lr.is_nan() || t.min_lr < 0.0 || t.min_lr > t.lr {
            bail!(
                "train.lr ({}) must be positive and train.min_lr ({}) in [0, lr]",
                t.lr,
                t.min_lr
            );
        }
        if t.warmup_iters > t.lr_decay_iters {
            bail!(
                "train.warmup_iters ({}) must not exceed train.lr_decay_iters ({})",
                t.warmup_iters,
                t.lr_decay_iters
            );
        }
        if !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2) {
            bail!("train.beta1 and train.beta2 must be in [0, 1)");
        }
        self.precision()?;
        if !["char", "gpt2"].contains(&self.data.tokenizer.as_str()) {
            bail!(
                "data.tokenizer '{}': expected char or gpt2",
                self.data.tokenizer
            );
        }
        Ok(())
    }

    /// The precision `[model] dtype` asks for: auto (the default), fp32 or bf16.
    pub fn precision(&self) -> Result<Precision> {
        match self.model.get("dtype") {
            None => Ok(Precision::Auto),
            Some(toml::Value::String(s)) => s
                .parse()
                .map_err(|e: String| anyhow::anyhow!("[model] key 'dtype': {e}")),
            Some(v) => {
                bail!("[model] key 'dtype': expected a string (auto, fp32 or bf16), got {v}")
            }
        }
    }

    /// The model config, with `vocab_size` from the tokenizer unless the file sets it and
    /// the compute dtype resolved on `machine` (`auto`: bf16 only where it is native).
    pub fn model_config(&self, vocab_size: usize, machine: &MachineRecord) -> Result<ModelConfig> {
        let dtype = match self.precision()?.resolve_logged(machine) {
            runtime::DType::Fp32 => "fp32",
            runtime::DType::Bf16 => "bf16",
        };
        let mut table = self.model.clone();
        table.insert("dtype".into(), toml::Value::String(dtype.into()));
        table
            .entry("vocab_size")
            .or_insert(toml::Value::Integer(vocab_size as i64));
        let cfg: ModelConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                anyhow::anyhow!("[model] key '{path}': {}", e.into_inner().message())
            })?;
        cfg.validate().context("[model]")?;
        Ok(cfg)
    }

    /// The resolved config as TOML text (recorded with every run and checkpoint).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}
