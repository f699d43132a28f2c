//! `ModelConfig`: every rung of the GPT-2 → Llama 3 ladder as one validated config.
//!
//! GPT-2: Radford et al. 2019 (and nanoGPT's `GPTConfig`); Llama 3: Meta 2024
//! (RoPE θ = 500000, RMSNorm, SwiGLU, GQA). Each categorical choice is an enum and
//! each toggle is independent of the others, so any point on the ladder is a config.
//!
//! A `ModelConfig` is the architecture: what `config.json` and a checkpoint store. How a
//! model is run (attention kernel, compute dtype, dropout) is [`crate::RunSettings`].
use crate::settings::RunSettings;
use serde::{Deserialize, Serialize};

/// Position information: learned absolute embeddings (GPT-2) or rotary (RoPE, Su et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosEmb {
    Learned,
    Rope,
}

/// LayerNorm (Ba et al. 2016) or RMSNorm (Zhang & Sennrich 2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    LayerNorm,
    RmsNorm,
}

/// The feed-forward block: GPT-2's tanh-GELU MLP or SwiGLU (Shazeer 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpKind {
    Gelu,
    SwiGlu,
}

/// Attention kernel: explicit masked softmax, or `scaled_dot_product_attention` (flash/fused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttnKernel {
    Naive,
    Sdpa,
}

impl std::str::FromStr for AttnKernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(AttnKernel::Naive),
            "sdpa" | "flash" => Ok(AttnKernel::Sdpa),
            _ => Err(format!("unknown attention '{s}' (expected naive or sdpa)")),
        }
    }
}

impl std::fmt::Display for AttnKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            AttnKernel::Naive => "naive",
            AttnKernel::Sdpa => "sdpa",
        })
    }
}

pub(crate) fn default_rope_theta() -> f64 {
    10000.0
}
fn default_norm_eps() -> f64 {
    1e-5
}

/// The one model configuration. Unknown keys are rejected; `validate()` checks the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub vocab_size: usize,
    /// Maximum context length (learned position table size; KV-cache capacity default).
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads: `n_head` = MHA, 1 = MQA, anything dividing `n_head` = GQA.
    pub n_kv_heads: usize,
    pub n_embd: usize,
    /// Hidden size of the MLP (4·n_embd for GPT-2; the Llama rule for SwiGLU).
    pub intermediate_size: usize,
    pub pos_emb: PosEmb,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    pub norm: NormKind,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    pub mlp: MlpKind,
    /// Biases in linear layers and LayerNorm.
    pub bias: bool,
    pub tie_embeddings: bool,
    /// Biases on the q, k, v projections only (Qwen, Bai et al. 2023), whatever `bias` says.
    /// Absent from configs written before it existed (false); written only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub qkv_bias: bool,
    /// Sliding-window attention (Mistral, Jiang et al. 2023; Longformer, Beltagy et al.
    /// 2020): each query sees itself and the W − 1 positions before it. `None` = full causal
    /// attention (absent from older configs; written only when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Mixture of experts (Mixtral, Jiang et al. 2024; Switch Transformer, Fedus et al.
    /// 2021): the feed-forward block becomes `n_experts` SwiGLU experts of hidden size
    /// `intermediate_size` each and a router. `None` = one dense MLP (absent from older
    /// configs; written only when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_experts: Option<usize>,
    /// Top-k routing: the experts each token is sent to (Mixtral: 2), weighted by a softmax
    /// over the k selected router logits. Required with `n_experts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts_per_token: Option<usize>,
    /// Shared experts every token passes through besides its routed ones (DeepSeekMoE,
    /// Dai et al. 2024), each of hidden size `intermediate_size`, run as one SwiGLU of
    /// hidden `n_shared_experts · intermediate_size`. 0 = none (written only when set).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_shared_experts: usize,
    /// Coefficient of the load-balancing loss added to the training loss (Switch
    /// Transformer's α); `None` = [`DEFAULT_ROUTER_AUX_LOSS_COEF`]. Only with `n_experts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_aux_loss_coef: Option<f64>,
}

/// The load-balancing coefficient when a MoE config names none: Switch Transformer's 10⁻².
pub const DEFAULT_ROUTER_AUX_LOSS_COEF: f64 = 0.01;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A config that cannot describe a model; the message names the field and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ConfigError(pub String);

/// The Llama SwiGLU hidden size rule: 2/3 of 4·d, times a multiplier, rounded up to a multiple.
pub fn llama_hidden_size(n_embd: usize, multiple_of: usize, ffn_dim_multiplier: f64) -> usize {
    let hidden = (2.0 * 4.0 * n_embd as f64 / 3.0 * ffn_dim_multiplier) as usize;
    hidden.div_ceil(multiple_of) * multiple_of
}

/// SwiGLU hidden size with (about) the parameters of a GELU MLP of hidden `gelu_hidden`:
/// 3·d·h ≈ 2·d·h_gelu, rounded to a multiple of 8.
pub fn swiglu_matched_hidden(gelu_hidden: usize) -> usize {
    let h = (2.0 * gelu_hidden as f64 / 3.0).round() as usize;
    h.div_ceil(8) * 8
}

/// Hidden size of each of `k`-of-E experts so that a token's routed experts hold the
/// parameters of one dense SwiGLU of hidden `dense_hidden`: k·3·d·h ≈ 3·d·h_dense (the
/// router's d·E per layer comes on top), rounded up to a multiple of 4.
pub fn moe_matched_hidden(dense_hidden: usize, k: usize) -> usize {
    dense_hidden.div_ceil(k.max(1)).div_ceil(4) * 4
}

impl ModelConfig {
    /// Set `n_kv_heads = g` (GQA-g; 1 = MQA, n_head = MHA), or say why it cannot be: the one
    /// place that turns a requested KV-head count into a config (`infer --gqa`, the ladders).
    pub fn set_kv_heads(&mut self, g: usize) -> Result<(), ConfigError> {
        if g == 0 || !self.n_head.is_multiple_of(g) {
            return Err(ConfigError(format!(
                "the number of KV heads must divide the number of query heads, n_head = {} (e.g. 1 = MQA, {} = MHA)",
                self.n_head, self.n_head
            )));
        }
        self.n_kv_heads = g;
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Whether the feed-forward block is a mixture of experts.
    pub fn is_moe(&self) -> bool {
        self.n_experts.is_some()
    }

    /// The load-balancing coefficient training uses (0 for a dense model).
    pub fn aux_loss_coef(&self) -> f64 {
        match self.n_experts {
            Some(_) => self
                .router_aux_loss_coef
                .unwrap_or(DEFAULT_ROUTER_AUX_LOSS_COEF),
            None => 0.0,
        }
    }

    /// Check every number once; the message names the field and what was expected.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_kv_heads", self.n_kv_heads),
            ("n_embd", self.n_embd),
            ("intermediate_size", self.intermediate_size),
        ] {
            if v == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return err(format!(
                "n_embd ({}) must be divisible by n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        if !self.n_head.is_multiple_of(self.n_kv_heads) {
            return err(format!(
                "n_head ({}) must be divisible by n_kv_heads ({}): each KV head serves a whole group of query heads",
                self.n_head, self.n_kv_heads
            ));
        }
        if self.pos_emb == PosEmb::Rope && !self.head_dim().is_multiple_of(2) {
            return err(format!(
                "RoPE needs an even head_dim, got {}",
                self.head_dim()
            ));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return err(format!(
                "rope_theta must be positive, got {}",
                self.rope_theta
            ));
        }
        if self.norm_eps.is_nan() || self.norm_eps <= 0.0 {
            return err(format!("norm_eps must be positive, got {}", self.norm_eps));
        }
        if self.sliding_window == Some(0) {
            return err("sliding_window must be at least 1 (the positions each query sees, itself included), got 0; leave it out (null) for full attention".into());
        }
        crate::moe::validate(self)
    }

    /// Parse JSON (our own config format), rejecting unknown keys, then validate.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Self::from_json_value(v)
    }

    /// As [`ModelConfig::from_json`], from parsed JSON. Configs written before the
    /// architecture / run-settings split also held `attention`, `dtype` and `dropout`
    /// ([`RunSettings::KEYS`]): those keys are accepted and ignored (with a log line), so
    /// old checkpoints still load; whoever runs the model chooses its settings.
    pub fn from_json_value(mut v: serde_json::Value) -> Result<Self, ConfigError> {
        if let Some(obj) = v.as_object_mut() {
            let old: Vec<&str> = RunSettings::KEYS
                .into_iter()
                .filter(|k| obj.remove(*k).is_some())
                .collect();
            if !old.is_empty() {
                tracing::info!(
                    "config.json from before the run-settings split: ignoring {} (run settings, chosen at run time)",
                    old.join(", ")
                );
            }
        }
        let cfg: Self = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            match path.as_str() {
                "." | "" => ConfigError(e.inner().to_string()),
                _ => ConfigError(format!("key '{path}': {}", e.inner())),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}
