//! The named presets of [`ModelConfig`]: GPT-2 small and smaller GPT-2 shapes for CPUs and
//! tests, a Llama-3-style model at GPT-2-small size and its tiny test version.
use crate::config::{
    default_rope_theta, llama_hidden_size, ConfigError, MlpKind, ModelConfig, NormKind, PosEmb,
};

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
            norm: NormKind::LayerNorm,
            norm_eps: 1e-5,
            mlp: MlpKind::Gelu,
            bias: true,
            tie_embeddings: true,
            qkv_bias: false,
            sliding_window: None,
            n_experts: None,
            experts_per_token: None,
            n_shared_experts: 0,
            router_aux_loss_coef: None,
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

    /// The speed sweep's CPU default: `gpt2_speed_cpu`'s shape with a context of 16384
    /// (learned positions), so decode reaches 8192 cached tokens and attention T = 8192.
    pub fn gpt2_long_cpu() -> Self {
        Self {
            block_size: 16384,
            ..Self::gpt2_speed_cpu()
        }
    }

    /// A tiny GPT-2 for sweep tests: 8 heads (so GQA-4 and MQA differ from MHA), 64 wide,
    /// 2 layers, vocab 256, context 512.
    pub fn gpt2_tiny_sweep() -> Self {
        Self {
            block_size: 512,
            n_head: 8,
            n_kv_heads: 8,
            ..Self::gpt2_tiny()
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
            norm: NormKind::RmsNorm,
            norm_eps: 1e-5,
            mlp: MlpKind::SwiGlu,
            bias: false,
            tie_embeddings: false,
            qkv_bias: false,
            sliding_window: None,
            n_experts: None,
            experts_per_token: None,
            n_shared_experts: 0,
            router_aux_loss_coef: None,
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
            "gpt2_long_cpu" => Self::gpt2_long_cpu(),
            "gpt2_tiny_sweep" => Self::gpt2_tiny_sweep(),
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
        "gpt2_long_cpu",
        "gpt2_tiny_sweep",
        "llama3_style",
        "llama_tiny",
    ];
}
