//! Gradient clipping by global L2 norm (Pascanu et al., "On the difficulty of training
//! recurrent neural networks", ICML 2013), as PyTorch's `torch.nn.utils.clip_grad_norm_`
//! (`torch/nn/utils/clip_grad.py`): the norm of the per-tensor norms, then every gradient
//! times `min(1, max_norm / (norm + 1e-6))`.
use tch::{Kind, Tensor};

/// Clip the defined gradients of `params` in place; returns the total norm before clipping
/// (for logging), 0.0 when no gradient is defined. A non-finite norm is returned without
/// touching the gradients, so the caller can stop the run. `max_norm = f64::INFINITY`
/// only measures.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> f64 {
    let grads: Vec<Tensor> = params
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect();
    if grads.is_empty() {
        return 0.0;
    }
    // Per-tensor norms in f32 (no copy when the gradient already is), then their norm.
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| g.to_kind(Kind::Float).norm())
        .collect();
    let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
    if !total.is_finite() {
        return total;
    }
    // PyTorch evaluates `max_norm / (total_norm + 1e-6)` on an f32 tensor, where
    // `float / Tensor` is `Tensor.reciprocal() * float`; mirror that rounding.
    let coef = (1.0f32 / (total as f32 + 1e-6f32)) * max_norm as f32;
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(f64::from(coef));
            }
        });
    }
    total
}
