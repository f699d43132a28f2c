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
//! `addcdiv_` take no `value`. So the two `value` products are formed first (`value · t1`,
//! rounded to the parameter's dtype, which is also what ATen's pointwise kernels compute
//! before the multiply/divide) into scratch buffers; a step allocates no tensor memory.
//!
//! Two layouts run that chain: [`Layout::Flat`] (the default, `flat.rs`) packs the
//! parameters, gradients and moments of one device and dtype into contiguous buffers and
//! runs it over large blocks; [`Layout::PerTensor`] runs it on each parameter in turn (the
//! fallback for a step where some gradient is missing or the step counts differ).
use crate::flat::{Flat, Scalars};
pub use crate::groups::{groups_by_dim, AdamWConfig, ParamGroup};
use tch::{Device, Kind, Tensor};

/// How the optimizer lays out its state (the arithmetic is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Contiguous buffers per device and dtype; parameters and gradients are views into them.
    #[default]
    Flat,
    /// One chain of ops per parameter; parameters keep their own storage.
    PerTensor,
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
    /// With [`Layout::Flat`]: (index into `AdamW::flat`, member index there).
    flat: Option<(usize, usize)>,
}

/// Two flat temporaries, as large as the largest parameter of one device and dtype
/// (allocated at the first per-tensor update).
struct Scratch {
    device: Device,
    kind: Kind,
    numel: i64,
    ab: Option<(Tensor, Tensor)>,
}

/// AdamW over fp32 master weights, with per-group weight decay.
pub struct AdamW {
    pub(crate) slots: Vec<Slot>,
    scratch: Vec<Scratch>,
    flat: Vec<Flat>,
    cfg: AdamWConfig,
    /// Calls to [`AdamW::step`].
    pub(crate) steps: u64,
    /// Parameters the last step updated through the flat buffers.
    flat_updated: usize,
}

impl AdamW {
    /// Zero moments for every parameter, in the [`Layout::Flat`] layout: each parameter's
    /// data moves into a flat buffer (its handles, e.g. the model's, follow). Parameter
    /// names must be unique across groups (they key the checkpoint); a duplicate is a
    /// programming error and panics.
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Self {
        Self::with_layout(groups, cfg, Layout::Flat)
    }

    /// As [`AdamW::new`] with the state laid out as `layout` says.
    pub fn with_layout(groups: Vec<ParamGroup>, cfg: AdamWConfig, layout: Layout) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        let mut scratch: Vec<Scratch> = Vec::new();
        for g in groups {
            for (name, param) in g.params {
                assert!(
                    slots.iter().all(|s| s.name != name),
                    "AdamW: parameter '{name}' appears twice"
                );
                let (device, kind, numel) = (param.device(), param.kind(), param.numel() as i64);
                let idx = match scratch
                    .iter()
                    .position(|s| s.device == device && s.kind == kind)
                {
                    Some(i) => {
                        scratch[i].numel = scratch[i].numel.max(numel);
                        i
                    }
                    None => {
                        scratch.push(Scratch {
                            device,
                            kind,
                            numel,
                            ab: None,
                        });
                        scratch.len() - 1
                    }
                };
                let (exp_avg, exp_avg_sq) = match layout {
                    Layout::PerTensor => (param.zeros_like(), param.zeros_like()),
                    Layout::Flat => (Tensor::new(), Tensor::new()), // set below
                };
                slots.push(Slot {
                    name,
                    exp_avg,
                    exp_avg_sq,
                    param,
                    step: 0,
                    weight_decay: g.weight_decay,
                    scratch: idx,
                    flat: None,
                });
            }
        }
        let mut flat = Vec::new();
        if layout == Layout::Flat {
            for set in 0..scratch.len() {
                let members: Vec<(usize, &Tensor, f64)> = (slots.iter().enumerate())
                    .filter(|(_, s)| s.scratch == set)
                    .map(|(i, s)| (i, &s.param, s.weight_decay))
                    .collect();
                let f = Flat::pack(&members);
                let idx: Vec<usize> = members.iter().map(|m| m.0).collect();
                for (m, i) in idx.into_iter().enumerate() {
                    let s = &mut slots[i];
                    let shape = s.param.size();
                    s.exp_avg = f.view(&f.exp_avg, m, &shape);
                    s.exp_avg_sq = f.view(&f.exp_avg_sq, m, &shape);
                    s.flat = Some((flat.len(), m));
                }
                flat.push(f);
            }
        }
        let mut opt = Self {
            slots,
            scratch,
            flat,
            cfg,
            steps: 0,
            flat_updated: 0,
        };
        for f in 0..opt.flat.len() {
            opt.adopt_grads(f);
        }
        opt
    }

    /// Calls to [`AdamW::step`] so far (restored by [`AdamW::load_state_tensors`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// How many parameters the last [`AdamW::step`] updated through the flat buffers (all of
    /// them, normally; those with a missing gradient or a different step count go one by one).
    pub fn flat_updated(&self) -> usize {
        self.flat_updated
    }

    /// Move the defined gradients of flat set `f` that are not yet views into its gradient
    /// buffer there, and make the views their `.grad`. True when every member then has its
    /// gradient in the buffer (none undefined).
    fn adopt_grads(&mut self, f: usize) -> bool {
        let flat = &self.flat[f];
        let mut all = true;
        for (m, &(i, _, _)) in flat.members.iter().enumerate() {
            let p = &self.slots[i].param;
            let g = p.grad();
            if !g.defined() {
                all = false;
                continue;
            }
            if flat.grad_is_view(m, &g) {
                continue;
            }
            let view = &flat.grad_views[m];
            tch::no_grad(|| view.shallow_clone().copy_(&g));
            if let Err(e) = runtime::autograd::set_grad(p, view) {
                // Still correct (the copy above runs at every step), only slower.
                tracing::warn!("AdamW: {e:#}");
            }
        }
        all
    }

    /// One update with learning rate `lr`; parameters whose gradient is undefined are skipped.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        self.flat_updated = 0;
        let mut done = vec![false; self.slots.len()];
        for f in 0..self.flat.len() {
            let all_in_buffer = self.adopt_grads(f);
            let members = &self.flat[f].members;
            let first = self.slots[members[0].0].step;
            let same_step = members.iter().all(|&(i, _, _)| self.slots[i].step == first);
            if !(all_in_buffer && same_step) {
                continue; // per tensor below, with each parameter's own step count
            }
            let sc = self.scalars(lr, first + 1);
            tch::no_grad(|| self.flat[f].step(&sc));
            for &(i, _, _) in &self.flat[f].members {
                self.slots[i].step += 1;
                done[i] = true;
            }
            self.flat_updated += self.flat[f].members.len();
        }
        for (i, done) in done.into_iter().enumerate() {
            if !done {
                self.step_one(i, lr);
            }
        }
    }

    /// The scalars of update number `step`, exactly as Python computes them
    /// (`beta ** step`, `x ** 0.5`).
    fn scalars(&self, lr: f64, step: u64) -> Scalars {
        let AdamWConfig { beta1, beta2, eps } = self.cfg;
        let t = step as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        Scalars {
            lr,
            beta1,
            beta2,
            eps,
            step_size: lr / bias_correction1,
            bias_correction2_sqrt: bias_correction2.powf(0.5),
        }
    }

    /// The per-tensor update of slot `i` (skipped when its gradient is undefined).
    fn step_one(&mut self, i: usize, lr: f64) {
        let grad = self.slots[i].param.grad();
        if !grad.defined() {
            return;
        }
        let s = self.scalars(lr, self.slots[i].step + 1);
        let sc = &mut self.scratch[self.slots[i].scratch];
        let (a, b) = sc.ab.get_or_insert_with(|| {
            let opts = (sc.kind, sc.device);
            (
                Tensor::empty([sc.numel], opts),
                Tensor::empty([sc.numel], opts),
            )
        });
        let slot = &mut self.slots[i];
        slot.step += 1;
        tch::no_grad(|| {
            let size = slot.param.size();
            let n = slot.param.numel() as i64;
            let mut a = a.narrow(0, 0, n).view(size.as_slice()); // param's shape
            let b = b.narrow(0, 0, n).view(size.as_slice());
            if slot.weight_decay != 0.0 {
                let _ = slot.param.g_mul_scalar_(1.0 - lr * slot.weight_decay);
            }
            let (p, m, v) = (&mut slot.param, &mut slot.exp_avg, &mut slot.exp_avg_sq);
            crate::flat::update([p, m, v, &mut a], &grad, &b, &s);
        });
    }

    /// Zero every defined gradient in place (PyTorch's `zero_grad(set_to_none=False)`; tch
    /// cannot unset a gradient): one op per flat gradient buffer, then the rest one by one.
    pub fn zero_grad(&mut self) {
        for f in &self.flat {
            let _ = f.grad.shallow_clone().zero_();
        }
        for s in &mut self.slots {
            let g = s.param.grad();
            let is_view = s
                .flat
                .is_some_and(|(f, m)| self.flat[f].grad_is_view(m, &g));
            if g.defined() && !is_view {
                s.param.zero_grad();
            }
        }
    }
}
