//! Bytes of a quantized model computed from its config alone (for `infer --plan`), the same
//! count `weight_bytes` makes on a loaded model: codes at 8 or 4 bits (input widths padded
//! as `QLinear` pads them), one scale per row (int8) or a scale and a zero per group (int4)
//! in the model's dtype, and everything not quantized (embeddings, norms, biases) dense.
use super::{int8, Scheme};
use crate::accounting;
use crate::config::{MlpKind, ModelConfig};

/// (out, in) of every Linear of one block.
pub fn block_linear_shapes(cfg: &ModelConfig) -> Vec<(usize, usize)> {
    let (d, f) = (cfg.n_embd, cfg.intermediate_size);
    let qkv = (cfg.n_head + 2 * cfg.n_kv_heads) * cfg.head_dim();
    let mut v = vec![(qkv, d), (d, d)];
    if let Some(e) = cfg.n_experts {
        // Every expert's w1, w3, w2, then the shared experts' (the router stays dense).
        for _ in 0..e {
            v.extend([(f, d), (f, d), (d, f)]);
        }
        let s = cfg.n_shared_experts * f;
        if s > 0 {
            v.extend([(s, d), (s, d), (d, s)]);
        }
        return v;
    }
    match cfg.mlp {
        MlpKind::Gelu => v.extend([(f, d), (d, f)]),
        MlpKind::SwiGlu => v.extend([(f, d), (f, d), (d, f)]),
    }
    v
}

/// Bytes of one quantized (out, in) weight, scales in `scale_bytes` each.
pub fn quantized_bytes(scheme: Scheme, out: usize, inp: usize, scale_bytes: usize) -> usize {
    let up = |k: usize, m: usize| k.div_ceil(m) * m;
    match scheme {
        Scheme::Int8 => out * up(inp, int8::K_ALIGN as usize) + out * scale_bytes,
        Scheme::Int4 { group_size } => {
            let kp = up(inp, group_size as usize);
            let np = up(out, super::int4::N_ALIGN as usize);
            np * kp / 2 + kp / group_size as usize * np * 2 * scale_bytes
        }
    }
}

/// Total weight bytes of `cfg` quantized with `scheme` (dense parts in `bytes_per_elem`).
pub fn planned_weight_bytes(cfg: &ModelConfig, scheme: Scheme, bytes_per_elem: usize) -> usize {
    let dense = accounting::weight_bytes(cfg, bytes_per_elem);
    let (v, d) = (cfg.vocab_size, cfg.n_embd);
    let shapes = block_linear_shapes(cfg);
    let linear_elems: usize = shapes.iter().map(|(o, i)| o * i).sum::<usize>() * cfg.n_layer;
    let linear_q: usize = shapes
        .iter()
        .map(|&(o, i)| quantized_bytes(scheme, o, i, bytes_per_elem))
        .sum::<usize>()
        * cfg.n_layer;
    // An untied head is replaced; a tied one gets a quantized copy beside the dense `wte`.
    let head_dense = if cfg.tie_embeddings { 0 } else { v * d };
    dense - (linear_elems + head_dense) * bytes_per_elem
        + linear_q
        + quantized_bytes(scheme, v, d, bytes_per_elem)
}
