//! `ModelConfig`: every rung of the GPT-2 → Llama 3 ladder as one validated config.
//!
//! GPT-2: Radford et al. 2019 (and nanoGPT's `GPTConfig`); Llama 3: Meta 2024
//! (RoPE θ = 500000, RMSNorm, SwiGLU, GQA). Each categorical choice is an enum and
//! each toggle is independent of the others, so any point on the ladder is a config.
use runtime::DType;
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
pub enum Norm {
    LayerNorm,
    RmsNorm,
}

/// The feed-forward block: GPT-2's tanh-GELU MLP or SwiGLU (Shazeer 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mlp {
    Gelu,
    SwiGlu,
}

/// Attention kernel: explicit masked softmax, or `scaled_dot_product_attention` (flash/fused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    Naive,
    Sdpa,
}

impl std::str::FromStr for Attention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(Attention::Naive),
            "sdpa" | "flash" => Ok(Attention::Sdpa),
            _ => Err(format!("unknown attention '{s}' (expected naive or sdpa)")),
        }
    }
}

fn default_rope_theta() -> f64 {
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
    pub norm: Norm,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    pub mlp: Mlp,
    pub attention: Attention,
    /// Biases in linear layers and LayerNorm.
    pub bias: bool,
    pub tie_embeddings: bool,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "default_dtype")]
    pub dtype: DType,
}

fn default_dtype() -> DType {
    DType::Fp32
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

impl ModelConfig {
    /// GPT-2 small (124M): 12 layers, 12 heads, 768 wide, vocab 50257 padded to 50304.
    pub fn gpt2_124m() -> Self {
        Self {
            vocab_size: 50304,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_kv_heads: 12,
            n_embd: 768,
            intermediate_size: 4 * 768,
            pos_emb: PosEmb::Learned,
            rope_theta: default_rope_theta(),
            norm: Norm::LayerNorm,
            norm_eps: 1e-5,
            mlp: Mlp::Gelu,
            attention: Attention::Naive,
            bias: true,
            tie_embeddings: true,
            dropout: 0.0,
            dtype: DType::Fp32,
        }
    }

    /// A GPT-2-shaped model small enough for a 2-core CPU (6 layers, 6 heads, 384 wide).
    pub fn gpt2_small_cpu() -> Self {
        Self {
            block_size: 256,
            n_layer: 6,
            n_head: 6,
            n_kv_heads: 6,
            n_embd: 384,
            intermediate_size: 4 * 384,
            ..Self::gpt2_124m()
        }
    }

    /// The speed ladder's CPU default: GPT-2-shaped (12 heads, so GQA-4 groups 3 query heads
    /// per KV head as in GPT-2 small), 6 layers, 384 wide, context 512, padded vocabulary.
    pub fn gpt2_speed_cpu() -> Self {
        Self {
            block_size: 512,
            n_layer: 6,
            n_head: 12,
            n_kv_heads: 12,
            n_embd: 384,
            intermediate_size: 4 * 384,
            ..Self::gpt2_124m()
        }
    }

    /// A tiny GPT-2 for tests (2 layers, 4 heads, 64 wide, vocab 256).
    pub fn gpt2_tiny() -> Self {
        Self {
            vocab_size: 256,
            block_size: 64,
            n_layer: 2,
            n_head: 4,
            n_kv_heads: 4,
            n_embd: 64,
            intermediate_size: 256,
            ..Self::gpt2_124m()
        }
    }

    /// Llama-3-style model at GPT-2-small size: RoPE θ=500000, RMSNorm, SwiGLU with the
    /// Llama hidden rule, GQA with n_kv_heads = n_head / 4, no biases, untied head.
    pub fn llama3_style() -> Self {
        let n_embd = 768;
        Self {
            vocab_size: 50304,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_kv_heads: 3,
            n_embd,
            intermediate_size: llama_hidden_size(n_embd, 256, 1.0),
            pos_emb: PosEmb::Rope,
            rope_theta: 500000.0,
            norm: Norm::RmsNorm,
            norm_eps: 1e-5,
            mlp: Mlp::SwiGlu,
            attention: Attention::Sdpa,
            bias: false,
            tie_embeddings: false,
            dropout: 0.0,
            dtype: DType::Bf16,
        }
    }

    /// A tiny Llama-style model for tests (2 layers, 4 heads, 2 KV heads, 64 wide).
    pub fn llama_tiny() -> Self {
        Self {
            vocab_size: 256,
            block_size: 64,
            n_layer: 2,
            n_head: 4,
            n_kv_heads: 2,
            n_embd: 64,
            intermediate_size: 176,
            dtype: DType::Fp32,
            ..Self::llama3_style()
        }
    }

    /// Look a preset up by name (for CLIs): the error lists the known names.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let cfg = match name {
            "gpt2_124m" | "gpt2" => Self::gpt2_124m(),
            "gpt2_small_cpu" => Self::gpt2_small_cpu(),
            "gpt2_speed_cpu" => Self::gpt2_speed_cpu(),
            "gpt2_tiny" => Self::gpt2_tiny(),
            "llama3_style" => Self::llama3_style(),
            "llama_tiny" => Self::llama_tiny(),
            _ => {
                return Err(ConfigError(format!(
                    "unknown preset '{name}' (expected one of: {})",
                    Self::PRESETS.join(", ")
                )))
            }
        };
        Ok(cfg)
    }

    pub const PRESETS: &'static [&'static str] = &[
        "gpt2_124m",
        "gpt2_small_cpu",
        "gpt2_speed_cpu",
        "gpt2_tiny",
        "llama3_style",
        "llama_tiny",
    ];

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
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
        if !(0.0..1.0).contains(&self.dropout) {
            return err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// Parse JSON (our own config format), rejecting unknown keys, then validate.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| {
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
