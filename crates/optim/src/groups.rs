//! AdamW's hyper-parameters and parameter groups (nanoGPT's decay / no-decay split).
use tch::{nn, Tensor};

/// Adam's hyper-parameters (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Named parameters sharing one weight decay.
#[derive(Debug)]
pub struct ParamGroup {
    pub params: Vec<(String, Tensor)>,
    pub weight_decay: f64,
}

/// nanoGPT's grouping (`configure_optimizers`): every trainable tensor with dim ≥ 2
/// (matmul weights, embeddings) decays; the rest (biases, norm gains) do not. Group 0
/// decays with `weight_decay`, group 1 has 0.0; each is sorted by name.
pub fn groups_by_dim(vs: &nn::VarStore, weight_decay: f64) -> Vec<ParamGroup> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let (decay, no_decay): (Vec<_>, Vec<_>) = vars.into_iter().partition(|(_, t)| t.dim() >= 2);
    vec![
        ParamGroup {
            params: decay,
            weight_decay,
        },
        ParamGroup {
            params: no_decay,
            weight_decay: 0.0,
        },
    ]
}
