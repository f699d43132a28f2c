//! The flat layout of [`crate::AdamW`]: the parameters of one device and dtype, their
//! gradients and both moments live in four contiguous buffers, each parameter a view into
//! them (the idea behind PyTorch's `_foreach`/fused AdamW and DDP's `gradient_as_bucket_view`;
//! tch binds neither). The update then runs the single-tensor algorithm's ops over blocks
//! of [`BLOCK`] elements: a few hundred kernel calls per step instead of ~10 per
//! parameter, and each block's five buffers stay in cache across its ten passes instead
//! of streaming every parameter through memory ten times.
//!
//! Gradients: a parameter's first gradient is made by autograd in its own memory; the
//! optimizer copies it into the flat buffer once and sets `.grad` to the view
//! (`runtime::autograd::set_grad`), after which backward passes accumulate into the view
//! in place. Elementwise, the arithmetic is the per-tensor path's, op for op.
use tch::Tensor;

/// Elements per block of the update: 2²⁰ (4 MiB of f32 per buffer, ~24 MiB for the six).
pub const BLOCK: i64 = 1 << 20;

/// One device and dtype's parameters packed together.
pub(crate) struct Flat {
    pub(crate) param: Tensor,
    pub(crate) grad: Tensor,
    pub(crate) exp_avg: Tensor,
    pub(crate) exp_avg_sq: Tensor,
    /// Two scratch blocks.
    a: Tensor,
    b: Tensor,
    /// The member slots (indices into `AdamW::slots`), with each one's offset and length.
    pub(crate) members: Vec<(usize, i64, i64)>,
    /// Each member's gradient view, (its shape) into `grad`.
    pub(crate) grad_views: Vec<Tensor>,
    /// Maximal runs of adjacent members with one non-zero weight decay: (offset, len, decay).
    decay_runs: Vec<(i64, i64, f64)>,
}

/// The scalars of one update (the same for every member: they share one step count).
pub(crate) struct Scalars {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step_size: f64,
    pub bias_correction2_sqrt: f64,
}

/// PyTorch's single-tensor AdamW chain after the weight decay, on tensors of one shape:
/// parameter, first and second moment, scratch `a` (overwritten), gradient, scratch `b`.
pub(crate) fn update(pmva: [&mut Tensor; 4], g: &Tensor, b: &Tensor, s: &Scalars) {
    let [p, m, v, a] = pmva;
    let _ = m.lerp_(g, 1.0 - s.beta1);
    let _ = g.mul_scalar_out(a, 1.0 - s.beta2); // value · g
    let _ = v.g_mul_scalar_(s.beta2).addcmul_(g, a);
    let _ = v.sqrt_out(a); // denom
    let _ = a
        .g_div_scalar_(s.bias_correction2_sqrt)
        .g_add_scalar_(s.eps);
    let _ = m.mul_scalar_out(b, -s.step_size); // value · m
    let _ = p.addcdiv_(b, a);
}

impl Flat {
    /// Pack `params` (slot index, tensor, weight decay) — all of one device and dtype —
    /// moving each parameter's data into the flat buffer (`set_data`: every handle on it
    /// follows).
    pub(crate) fn pack(params: &[(usize, &Tensor, f64)]) -> Flat {
        tch::no_grad(|| {
            let flat: Vec<Tensor> = params
                .iter()
                .map(|(_, p, _)| p.detach().reshape([-1]))
                .collect();
            let param = Tensor::cat(&flat, 0); // (total,)
            let (kind, device) = (param.kind(), param.device());
            let total = param.numel() as i64;
            let grad = Tensor::zeros([total], (kind, device));
            let mut members = Vec::with_capacity(params.len());
            let mut grad_views = Vec::with_capacity(params.len());
            let mut decay_runs: Vec<(i64, i64, f64)> = Vec::new();
            let mut off = 0;
            for (slot, p, wd) in params {
                let (n, shape) = (p.numel() as i64, p.size());
                let mut p = p.shallow_clone();
                p.set_data(&param.narrow(0, off, n).view(shape.as_slice()));
                grad_views.push(grad.narrow(0, off, n).view(shape.as_slice()));
                members.push((*slot, off, n));
                match decay_runs.last_mut() {
                    Some(r) if r.2 == *wd && r.0 + r.1 == off => r.1 += n,
                    _ if *wd != 0.0 => decay_runs.push((off, n, *wd)),
                    _ => {}
                }
                off += n;
            }
            let block = BLOCK.min(total.max(1));
            Flat {
                exp_avg: Tensor::zeros([total], (kind, device)),
                exp_avg_sq: Tensor::zeros([total], (kind, device)),
                a: Tensor::empty([block], (kind, device)),
                b: Tensor::empty([block], (kind, device)),
                param,
                grad,
                members,
                grad_views,
                decay_runs,
            }
        })
    }

    /// Member `i`'s view (its parameter's shape) into a flat buffer.
    pub(crate) fn view(&self, buf: &Tensor, i: usize, shape: &[i64]) -> Tensor {
        let (_, off, n) = self.members[i];
        buf.narrow(0, off, n).view(shape)
    }

    /// Whether member `i`'s gradient is already its view into `grad`.
    pub(crate) fn grad_is_view(&self, i: usize, g: &Tensor) -> bool {
        g.defined() && g.data_ptr() == self.grad_views[i].data_ptr()
    }

    /// One AdamW update of every member.
    pub(crate) fn step(&mut self, s: &Scalars) {
        let total = self.param.numel() as i64;
        let mut start = 0;
        while start < total {
            let len = BLOCK.min(total - start);
            let (mut p, g) = (
                self.param.narrow(0, start, len),
                self.grad.narrow(0, start, len),
            );
            let (mut m, mut v) = (
                self.exp_avg.narrow(0, start, len),
                self.exp_avg_sq.narrow(0, start, len),
            );
            let (mut a, b) = (self.a.narrow(0, 0, len), self.b.narrow(0, 0, len));
            // Decoupled weight decay on the members (or parts) inside this block.
            for &(off, n, wd) in &self.decay_runs {
                let (lo, hi) = (off.max(start), (off + n).min(start + len));
                if lo < hi {
                    let _ = p
                        .narrow(0, lo - start, hi - lo)
                        .g_mul_scalar_(1.0 - s.lr * wd);
                }
            }
            update([&mut p, &mut m, &mut v, &mut a], &g, &b, s);
            start += len;
        }
    }
}
