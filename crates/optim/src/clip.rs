//! Gradient clipping by global L2 norm (Pascanu et al. 2013), as PyTorch's
//! `clip_grad_norm_`: scale every gradient by min(1, max_norm / (norm + 1e-6)).
use tch::{Kind, Tensor};

/// Clip in place; returns the total norm before clipping (for logging). A non-finite norm
/// is returned without touching the gradients, so the caller can stop the run.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> f64 {
    let grads: Vec<Tensor> = params
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect();
    if grads.is_empty() {
        return 0.0;
    }
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| g.to_kind(Kind::Float).norm().unsqueeze(0))
        .collect();
    let total = Tensor::cat(&norms, 0).norm().double_value(&[]);
    if !total.is_finite() {
        return total;
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        });
    }
    total
}
