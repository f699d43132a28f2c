//! AdamW (Loshchilov & Hutter 2019), op for op as PyTorch's single-tensor `torch.optim.AdamW`:
//!
//!   p ← p·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//!   p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
//!
//! Parameter groups carry their own weight decay λ (matrices decay; biases and norm gains
//! do not). tch has no `_foreach` ops, so the update is a loop of in-place ops per tensor.
use anyhow::{bail, Context, Result};
use tch::{nn, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
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

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    weight_decay: f64,
}

pub struct AdamW {
    slots: Vec<Slot>,
    cfg: AdamWConfig,
    steps: u64,
}

/// nanoGPT's grouping: every trainable tensor with dim ≥ 2 decays, the rest do not. By name.
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

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Self {
        let mut slots = Vec::new();
        for g in groups {
            for (name, param) in g.params {
                let exp_avg = param.zeros_like();
                let exp_avg_sq = param.zeros_like();
                slots.push(Slot {
                    name,
                    param,
                    exp_avg,
                    exp_avg_sq,
                    weight_decay: g.weight_decay,
                });
            }
        }
        Self {
            slots,
            cfg,
            steps: 0,
        }
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update with learning rate `lr`; parameters without a gradient are skipped.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let AdamWConfig { beta1, beta2, eps } = self.cfg;
        let bias_c1 = 1.0 - beta1.powi(t);
        let bias_c2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias_c1;
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                if s.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * s.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&g, 1.0 - beta1);
                let _ = s
                    .exp_avg_sq
                    .g_mul_scalar_(beta2)
                    .addcmul_(&g, &(g.g_mul_scalar(1.0 - beta2)));
                let denom = (s.exp_avg_sq.sqrt() / bias_c2_sqrt) + eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * -step_size), &denom);
            }
        });
    }

    /// Zero every gradient (keeps the buffers).
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// The state to checkpoint: `exp_avg.<name>`, `exp_avg_sq.<name>` and `step`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from_slice(&[self.steps as i64]))];
        for s in &self.slots {
            out.push((
                format!("exp_avg.{}", s.name),
                s.exp_avg.detach().contiguous(),
            ));
            out.push((
                format!("exp_avg_sq.{}", s.name),
                s.exp_avg_sq.detach().contiguous(),
            ));
        }
        out
    }

    /// Restore what `state_tensors` saved; a missing key or a shape mismatch is an error.
    pub fn load_state_tensors(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let find = |k: &str| named.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        let step = find("step").context("optimizer state: missing key 'step'")?;
        self.steps = step.int64_value(&[0]) as u64;
        tch::no_grad(|| -> Result<()> {
            for s in &mut self.slots {
                for (prefix, buf) in [
                    ("exp_avg", &mut s.exp_avg),
                    ("exp_avg_sq", &mut s.exp_avg_sq),
                ] {
                    let key = format!("{prefix}.{}", s.name);
                    let t = find(&key)
                        .with_context(|| format!("optimizer state: missing key '{key}'"))?;
                    if t.size() != buf.size() {
                        bail!(
                            "optimizer state: '{key}' has shape {:?}, expected {:?}",
                            t.size(),
                            buf.size()
                        );
                    }
                    buf.copy_(&t.to_kind(Kind::Float));
                }
            }
            Ok(())
        })
    }
}
