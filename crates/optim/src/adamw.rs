//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), op for
//! op as PyTorch's single-tensor `torch.optim.AdamW` (`torch/optim/adam.py`,
//! `_single_tensor_adam` with decoupled weight decay):
//!
//! ```text
//! p.mul_(1 - lr·λ)
//! m.lerp_(g, 1 - β₁)
//! v.mul_(β₂).addcmul_(g, g, value = 1 - β₂)
//! denom = (v.sqrt() / sqrt(1 - β₂ᵗ)).add_(ε)
//! p.addcdiv_(m, denom, value = -lr / (1 - β₁ᵗ))
//! ```
//!
//! The step count `t` is kept per parameter, as in PyTorch: a parameter whose gradient is
//! undefined is skipped and its count does not advance.
//!
//! tch exposes neither `_foreach_*` nor the fused AdamW kernel, and its `addcmul_` /
//! `addcdiv_` take no `value`. So each tensor gets its own chain of in-place ops, and the
//! two `value` products are formed first (`value · t1`, rounded to the parameter's dtype,
//! which is also what ATen's pointwise kernels compute before the multiply/divide) into
//! scratch buffers allocated once and shared by every parameter, so a step allocates no
//! tensor memory.
use tch::{nn, Device, Kind, Tensor};

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

/// One parameter and its Adam state.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) param: Tensor,
    pub(crate) exp_avg: Tensor,
    pub(crate) exp_avg_sq: Tensor,
    /// Updates this parameter has received (PyTorch's per-parameter `state["step"]`).
    pub(crate) step: u64,
    weight_decay: f64,
    /// Index into `AdamW::scratch` (the buffers for this parameter's device and dtype).
    scratch: usize,
}

/// Two flat temporaries, as large as the largest parameter of one device and dtype.
struct Scratch {
    device: Device,
    kind: Kind,
    a: Tensor,
    b: Tensor,
}

/// AdamW over fp32 master weights, with per-group weight decay.
pub struct AdamW {
    pub(crate) slots: Vec<Slot>,
    scratch: Vec<Scratch>,
    cfg: AdamWConfig,
    /// Calls to [`AdamW::step`].
    pub(crate) steps: u64,
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

impl AdamW {
    /// Zero moments for every parameter. Parameter names must be unique across groups (they
    /// key the checkpoint); a duplicate is a programming error and panics.
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        let mut scratch: Vec<(Device, Kind, i64)> = Vec::new();
        for g in groups {
            for (name, param) in g.params {
                assert!(
                    slots.iter().all(|s| s.name != name),
                    "AdamW: parameter '{name}' appears twice"
                );
                let (device, kind, numel) = (param.device(), param.kind(), param.numel() as i64);
                let idx = match scratch
                    .iter()
                    .position(|&(d, k, _)| d == device && k == kind)
                {
                    Some(i) => {
                        scratch[i].2 = scratch[i].2.max(numel);
                        i
                    }
                    None => {
                        scratch.push((device, kind, numel));
                        scratch.len() - 1
                    }
                };
                slots.push(Slot {
                    name,
                    exp_avg: param.zeros_like(),
                    exp_avg_sq: param.zeros_like(),
                    param,
                    step: 0,
                    weight_decay: g.weight_decay,
                    scratch: idx,
                });
            }
        }
        let scratch = scratch
            .into_iter()
            .map(|(device, kind, n)| Scratch {
                device,
                kind,
                a: Tensor::empty([n], (kind, device)),
                b: Tensor::empty([n], (kind, device)),
            })
            .collect();
        Self {
            slots,
            scratch,
            cfg,
            steps: 0,
        }
    }

    /// Calls to [`AdamW::step`] so far (restored by [`AdamW::load_state_tensors`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update with learning rate `lr`; parameters whose gradient is undefined are skipped.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let AdamWConfig { beta1, beta2, eps } = self.cfg;
        tch::no_grad(|| {
            for s in &mut self.slots {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                s.step += 1;
                // Scalars exactly as Python computes them (`beta ** step`, `x ** 0.5`).
                let t = s.step as f64;
                let bias_correction1 = 1.0 - beta1.powf(t);
                let bias_correction2 = 1.0 - beta2.powf(t);
                let step_size = lr / bias_correction1;
                let bias_correction2_sqrt = bias_correction2.powf(0.5);

                let sc = &self.scratch[s.scratch];
                debug_assert!(sc.device == s.param.device() && sc.kind == s.param.kind());
                let size = s.param.size();
                let n = s.param.numel() as i64;
                let mut a = sc.a.narrow(0, 0, n).view(size.as_slice()); // param's shape
                let b = sc.b.narrow(0, 0, n).view(size.as_slice());

                if s.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * s.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&grad, 1.0 - beta1);
                let _ = grad.mul_scalar_out(&a, 1.0 - beta2); // value · g
                let _ = s.exp_avg_sq.g_mul_scalar_(beta2).addcmul_(&grad, &a);
                let _ = s.exp_avg_sq.sqrt_out(&a); // denom
                let _ = a.g_div_scalar_(bias_correction2_sqrt).g_add_scalar_(eps);
                let _ = s.exp_avg.mul_scalar_out(&b, -step_size); // value · m
                let _ = s.param.addcdiv_(&b, &a);
            }
        });
    }

    /// Zero every defined gradient in place (PyTorch's `zero_grad(set_to_none=False)`; tch
    /// cannot unset a gradient).
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }
}
