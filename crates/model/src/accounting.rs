//! Parameter, FLOP and memory accounting for a config.
//!
//! FLOPs per token follow Kaplan et al. 2020 / the PaLM paper's MFU appendix (as nanoGPT's
//! `estimate_mfu`): 6·N for the matmuls of forward + backward, plus 12·L·H·Q·T for attention.
use crate::config::{MlpKind, ModelConfig, NormKind, PosEmb};

/// Parameter counts of a config, computed from the shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Every trainable number (a tied head counted once).
    pub total: usize,
    /// Token embedding (and an untied head), plus learned positions.
    pub embedding: usize,
    /// Parameters that take part in a matmul per token: the blocks plus the LM head (for a
    /// mixture of experts, the router and the k routed experts a token uses, not all E).
    pub matmul: usize,
    /// Parameters used per token: `total` less the experts a token is not routed to (equal
    /// to `total` for a dense model).
    pub active: usize,
}

pub fn param_count(cfg: &ModelConfig) -> ParamCount {
    let (v, d, f) = (cfg.vocab_size, cfg.n_embd, cfg.intermediate_size);
    let b = cfg.bias as usize;
    let kv = cfg.n_kv_heads * cfg.head_dim();
    let norm = if cfg.norm == NormKind::LayerNorm && cfg.bias {
        2 * d
    } else {
        d
    };
    let qkv_b = (cfg.bias || cfg.qkv_bias) as usize;
    let attn = d * (d + 2 * kv) + qkv_b * (d + 2 * kv) + d * d + b * d;
    let mlp = match cfg.mlp {
        MlpKind::Gelu => 2 * d * f + b * (f + d),
        MlpKind::SwiGlu => 3 * d * f + b * (2 * f + d),
    };
    // A mixture of experts: router (d·E), E experts, shared experts; k experts per token.
    let (mlp, idle) = match (cfg.n_experts, cfg.experts_per_token) {
        (Some(e), Some(k)) => {
            let shared = 3 * d * f * cfg.n_shared_experts;
            (d * e + e * mlp + shared, (e - k.min(e)) * mlp)
        }
        _ => (mlp, 0),
    };
    let block = 2 * norm + attn + mlp;
    let wpe = if cfg.pos_emb == PosEmb::Learned {
        cfg.block_size * d
    } else {
        0
    };
    let head = if cfg.tie_embeddings { 0 } else { v * d };
    let layers = cfg.n_layer * block + norm;
    let total = v * d + wpe + head + layers;
    ParamCount {
        total,
        embedding: v * d + wpe + head,
        matmul: cfg.n_layer * (block - idle) + v * d,
        active: total - cfg.n_layer * idle,
    }
}

/// Training FLOPs per token (forward + backward) at context `seq_len`.
pub fn train_flops_per_token(cfg: &ModelConfig, seq_len: usize) -> f64 {
    let n = param_count(cfg).matmul as f64;
    let (l, h, q) = (cfg.n_layer as f64, cfg.n_head as f64, cfg.head_dim() as f64);
    6.0 * n + 12.0 * l * h * q * seq_len as f64
}

/// Forward-only FLOPs per token with `context` positions attended (inference).
pub fn forward_flops_per_token(cfg: &ModelConfig, context: usize) -> f64 {
    let n = param_count(cfg).matmul as f64;
    let (l, h, q) = (cfg.n_layer as f64, cfg.n_head as f64, cfg.head_dim() as f64);
    2.0 * n + 4.0 * l * h * q * context as f64
}

/// KV-cache bytes per token: 2 (K and V) · layers · n_kv_heads · head_dim · bytes.
pub fn kv_cache_bytes_per_token(cfg: &ModelConfig, bytes_per_elem: usize) -> usize {
    2 * cfg.n_layer * cfg.n_kv_heads * cfg.head_dim() * bytes_per_elem
}

/// Bytes of the weights when stored in `bytes_per_elem`.
pub fn weight_bytes(cfg: &ModelConfig, bytes_per_elem: usize) -> usize {
    param_count(cfg).total * bytes_per_elem
}

/// Forward FLOPs of a prefill of `batch` prompts of `prompt` tokens that computes logits for
/// the last position only (what generation needs): the blocks for every token, the LM head
/// once per sequence.
pub fn prefill_flops(cfg: &ModelConfig, batch: usize, prompt: usize) -> f64 {
    let head = (cfg.vocab_size * cfg.n_embd) as f64;
    let blocks = param_count(cfg).matmul as f64 - head;
    let (l, h, q) = (cfg.n_layer as f64, cfg.n_head as f64, cfg.head_dim() as f64);
    let p = prompt as f64;
    batch as f64 * (p * (2.0 * blocks + 4.0 * l * h * q * p) + 2.0 * head)
}
