//! `RunSettings`: the choices made when a model is *run* rather than what it *is* — the
//! attention kernel, the compute dtype and dropout. A checkpoint stores a [`ModelConfig`]
//! (the architecture) only; every consumer (training, `infer`, the ladders) picks its own
//! settings, and the same weights run under any of them.
//!
//! Serde names: `attention`, `dtype`, `dropout` — the keys of a training TOML's `[model]`
//! table and of `infer`'s flags, so configs written before the split still read the same.
//!
//! [`ModelConfig`]: crate::ModelConfig
use crate::config::{AttnKernel, ConfigError};
use runtime::DType;
use serde::{Deserialize, Serialize};

/// How to run a model: kernel, precision, dropout. The default is SDPA in fp32, no dropout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Attention kernel (`attention` in configs and on the command line).
    #[serde(rename = "attention", alias = "kernel", default = "default_kernel")]
    pub kernel: AttnKernel,
    /// Compute precision of matmuls and attention (weights stay as they are stored).
    #[serde(default = "default_dtype")]
    pub dtype: DType,
    /// Dropout probability on the residual branches, attention weights and embeddings
    /// (training only; evaluation and generation never drop).
    #[serde(default)]
    pub dropout: f64,
}

fn default_kernel() -> AttnKernel {
    AttnKernel::Sdpa
}

fn default_dtype() -> DType {
    DType::Fp32
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            kernel: default_kernel(),
            dtype: default_dtype(),
            dropout: 0.0,
        }
    }
}

impl RunSettings {
    /// The serde keys of the settings: in a training TOML's `[model]` table, and in the
    /// `config.json` of checkpoints written before the split (ignored there).
    pub const KEYS: [&'static str; 3] = ["attention", "dtype", "dropout"];

    /// These settings with another kernel.
    pub fn with_kernel(self, kernel: AttnKernel) -> Self {
        Self { kernel, ..self }
    }

    /// These settings with another compute dtype.
    pub fn with_dtype(self, dtype: DType) -> Self {
        Self { dtype, ..self }
    }

    /// Check the numbers; the message names the key and what was expected.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}
