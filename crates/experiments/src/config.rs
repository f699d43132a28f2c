//! The training configuration: a TOML file with `[run]`, `[data]`, `[model]` and `[train]`
//! sections, every key checked, plus typed `--set section.key=value` overrides.
//!
//! `[model]` holds the architecture (a `ModelConfig`, what the checkpoint stores) and three
//! run settings (`attention`, `dtype`, `dropout`: a `RunSettings`, chosen per run).
use anyhow::{bail, Context, Result};
use model::{ModelConfig, RunSettings};
use runtime::hardware::MachineRecord;
use runtime::{DType, Precision};
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
    pub tokenizer: data::TokenizerKind,
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

/// A whole training config. `model` stays a table until the tokenizer's vocabulary is known
/// ([`TrainConfig::model_config`] splits it into architecture and run settings).
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

fn from_model_table<T: serde::de::DeserializeOwned>(t: toml::Table) -> Result<T> {
    serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("[model] key '{path}': {}", e.into_inner().message())
    })
}

/// A model config and run settings as one `[model]` table.
fn model_table(cfg: &ModelConfig, run: &RunSettings) -> Result<toml::Table> {
    let mut t = toml::Table::try_from(cfg).context("[model] as TOML")?;
    t.extend(toml::Table::try_from(run).context("[model] as TOML")?);
    Ok(t)
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
        if t.threads > infer::limits::MAX_THREADS {
            bail!(
                "train.threads = {}: expected 0 (all cores) up to {}",
                t.threads,
                infer::limits::MAX_THREADS
            );
        }
        if t.batch_size > infer::limits::MAX_BATCH || t.grad_accum > infer::limits::MAX_BATCH {
            bail!(
                "train.batch_size = {} and train.grad_accum = {}: expected each 1 up to {}",
                t.batch_size,
                t.grad_accum,
                infer::limits::MAX_BATCH
            );
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
        Ok(())
    }

    /// Whether `[model] attention = "auto"`: the faster kernel for the run's shape on this
    /// machine, chosen by timing when training starts.
    pub fn attention_auto(&self) -> bool {
        self.model.get("attention").and_then(|v| v.as_str()) == Some("auto")
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

    /// The `[model]` table as the architecture (with `vocab_size` from the tokenizer unless
    /// the file sets it) and the run settings (its `attention`, `dtype`, `dropout` keys),
    /// the compute dtype resolved on `machine` (`auto`: bf16 only where it is native).
    pub fn model_config(
        &self,
        vocab_size: usize,
        machine: &MachineRecord,
    ) -> Result<(ModelConfig, RunSettings)> {
        let dtype = self.precision()?.resolve_logged(machine);
        self.split(vocab_size, dtype)
    }

    /// The architecture alone (no precision to resolve): for records and comparisons.
    pub fn architecture(&self, vocab_size: usize) -> Result<ModelConfig> {
        Ok(self.split(vocab_size, DType::Fp32)?.0)
    }

    /// Split the `[model]` table, with `dtype` as the compute dtype.
    fn split(&self, vocab_size: usize, dtype: DType) -> Result<(ModelConfig, RunSettings)> {
        let mut arch = self.model.clone();
        arch.entry("vocab_size")
            .or_insert(toml::Value::Integer(vocab_size as i64));
        let mut run = toml::Table::new();
        for k in RunSettings::KEYS {
            if let Some(v) = arch.remove(k) {
                run.insert(k.to_string(), v);
            }
        }
        if !run.contains_key("attention") {
            bail!("[model] key 'attention': missing (expected naive, sdpa or auto)");
        }
        if self.attention_auto() {
            // Resolved by timing when the run starts (`train::attn_auto`); sdpa until then.
            run.insert("attention".into(), toml::Value::String("sdpa".into()));
        }
        run.insert("dtype".into(), toml::Value::String(dtype.name().into()));
        let cfg: ModelConfig = from_model_table(arch)?;
        cfg.validate().context("[model]")?;
        let settings: RunSettings = from_model_table(run)?;
        settings.validate().context("[model]")?;
        Ok((cfg, settings))
    }

    /// Change the `[model]` table through its typed view (architecture and run settings):
    /// keys whose value `f` changes are written back; the rest of the table, including a
    /// missing `vocab_size` (the tokenizer's), stays as it was.
    /// With `dtype = "auto"`, `f` sees fp32 and only a change to bf16 is written back; with
    /// `attention = "auto"`, `f` sees sdpa and only a change to naive is written back.
    pub fn edit_model(&mut self, f: impl FnOnce(&mut ModelConfig, &mut RunSettings)) -> Result<()> {
        let dtype = self.precision()?.explicit().unwrap_or(DType::Fp32);
        let (mut cfg, mut run) = self.split(1, dtype)?; // vocab_size: a placeholder if absent
        let before = model_table(&cfg, &run)?;
        f(&mut cfg, &mut run);
        for (k, v) in model_table(&cfg, &run)? {
            if before.get(&k) != Some(&v) {
                self.model.insert(k, v);
            }
        }
        Ok(())
    }

    /// The resolved config as TOML text (recorded with every run and checkpoint).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}
