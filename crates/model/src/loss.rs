//! Chunked cross-entropy for the LM head: the mean cross-entropy of `h · Wᵀ` against the
//! targets and its gradients, computed a block of rows at a time, so the (N × V) logits —
//! and their f32 copy, log-softmax and gradient, each N·V·4 bytes (412 MB apiece for
//! GPT-2's vocabulary at 2,048 tokens) — never exist at once. The idea of Liger-Kernel's
//! fused linear cross-entropy and of Wijmans et al. 2024 ("Cut Your Losses in
//! Large-Vocabulary Language Models"), in tensor ops and one fused CPU kernel.
//!
//! Per block: logits in the compute dtype (as the plain head), then the loss and
//! `∂CE/∂logits = (softmax − onehot) / N` — by the fused kernel (`runtime::xent`) where the
//! CPU has one, else in f32 tensor ops (log-sum-exp, the target's logit, softmax); that
//! gradient goes back through the same two matmuls autograd would run (`∂h = g·W`,
//! `∂W += gᵀ·h`). The result is handed to autograd as a surrogate whose value is the loss
//! and whose gradient is exactly the one computed here: `s − s.detach() + CE` with
//! `s = Σ h⊙∂h + Σ W⊙∂W`.
//!
//! [`fused_cross_entropy`] is the unchunked form for when the logits fit: one buffer of
//! logits in the compute dtype, turned into its own gradient in one pass by
//! `runtime::xent` (one read and one write of the logits instead of libtorch's five or six,
//! `exp` once instead of twice, no f32 copy in bf16), then the same two matmuls and the same
//! surrogate.
use crate::layers::as_kind;
use tch::{Kind, Tensor};

/// Elements of one block's f32 logits: 2²⁴ (64 MiB), e.g. 333 rows of GPT-2's 50,304.
pub const BLOCK_ELEMENTS: i64 = 1 << 24;

/// [`Gpt::train_loss`](crate::Gpt) chunks the loss only when the f32 logits of the whole
/// batch would exceed this (1 GiB: e.g. GPT-2's vocabulary at 5,337 tokens or more). Below
/// it the plain loss is as fast or faster (`results/speed/overhead`): chunking saves memory,
/// not time.
pub const CHUNK_ABOVE_BYTES: i64 = 1 << 30;

/// Whether a loss over `rows` positions of a `vocab`-wide head should be chunked.
pub fn should_chunk(rows: i64, vocab: i64) -> bool {
    rows.saturating_mul(vocab).saturating_mul(4) > CHUNK_ABOVE_BYTES
}

/// Mean cross-entropy of `h (N, C) · wᵀ` (`w` (V, C), the head's stored weight, cast to
/// `compute` for the matmuls) against `targets` (N,), as a scalar f32 tensor whose backward
/// sends the exact gradients into `h` and `w`. Rows per block: `BLOCK_ELEMENTS / V`.
pub fn chunked_cross_entropy(h: &Tensor, w: &Tensor, targets: &Tensor, compute: Kind) -> Tensor {
    let v = w.size()[0];
    chunked_cross_entropy_rows(h, w, targets, compute, (BLOCK_ELEMENTS / v).max(1))
}

/// As [`chunked_cross_entropy`] with `rows` rows per block (tests use small blocks).
pub fn chunked_cross_entropy_rows(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    compute: Kind,
    rows: i64,
) -> Tensor {
    let n = h.size()[0];
    let (dh, dw, ce) = tch::no_grad(|| {
        let hd = as_kind(&h.detach(), compute); // (N, C)
        let wd = as_kind(&w.detach(), compute); // (V, C)
        let wt = wd.tr(); // (C, V)
        let dh = Tensor::empty_like(&hd); // (N, C)
        let mut dw = Tensor::zeros(wd.size(), (Kind::Float, wd.device())); // (V, C)
        let mut total = Tensor::zeros([], (Kind::Float, hd.device()));
        let mut start = 0;
        while start < n {
            let len = rows.min(n - start);
            let hc = hd.narrow(0, start, len); // (R, C)
            let tc = targets.narrow(0, start, len); // (R,)
            let (g, block_ce) = block_loss_and_grad(hc.mm(&wt), &tc, n, compute); // (R, V)
            total += block_ce;
            dh.narrow(0, start, len).copy_(&g.mm(&wd)); // (R, C)
            dw += as_kind(&g.tr().mm(&hc), Kind::Float); // (V, C)
            start += len;
        }
        (dh, dw, total / n as f64)
    });
    let s = (h * dh).sum(Kind::Float) + (w * as_kind(&dw, w.kind())).sum(Kind::Float);
    &s - s.detach() + ce
}

/// One block's `∂(mean CE)/∂logits` in `compute` (the logits (R, V) turned into it, by the
/// fused kernel where it applies) and the block's summed loss (f32 scalar); `n` is the
/// number of rows of the whole batch (the mean's divisor).
fn block_loss_and_grad(
    mut logits: Tensor,
    targets: &Tensor,
    n: i64,
    compute: Kind,
) -> (Tensor, Tensor) {
    if let Some(rows) =
        runtime::xent::loss_and_grad_(&mut logits, &targets.contiguous(), 1.0 / n as f64)
    {
        return (logits, rows.sum(Kind::Float));
    }
    let tc = targets.unsqueeze(1); // (R, 1)
    let logits = as_kind(&logits, Kind::Float); // (R, V)
    let lse = logits.logsumexp([-1], true); // (R, 1)
    let ce = (&lse - logits.gather(1, &tc, false)).sum(Kind::Float);
    let mut g = (logits - lse).exp(); // softmax, (R, V)
    let minus_one = Tensor::full([tc.size()[0], 1], -1.0, (Kind::Float, g.device()));
    let _ = g.scatter_add_(1, &tc, &minus_one); // − onehot
    (as_kind(&(g / n as f64), compute), ce)
}

/// Mean cross-entropy of `h (N, C) · wᵀ` (`w` (V, C), cast to `compute` for the matmuls)
/// against `targets` (N,), as a scalar f32 tensor whose backward sends the exact gradients
/// into `h` and `w`, with the logits turned into their gradient in place by the fused kernel
/// (`runtime::xent`). `None` where that kernel does not apply (see
/// `runtime::xent::loss_and_grad_`: e.g. off the CPU, or a CPU without AVX2); callers then
/// take libtorch's loss.
pub fn fused_cross_entropy(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    compute: Kind,
) -> Option<Tensor> {
    if !runtime::xent::applies(h.device(), compute) {
        return None; // e.g. on a GPU: decline before the (N × V) matmul, not after it
    }
    let n = h.size()[0];
    let (dh, dw, ce) = tch::no_grad(|| {
        let hd = as_kind(&h.detach(), compute); // (N, C)
        let wd = as_kind(&w.detach(), compute); // (V, C)
        let mut g = hd.mm(&wd.tr()); // logits (N, V), then ∂(mean CE)/∂logits in place
        let rows = runtime::xent::loss_and_grad_(&mut g, &targets.contiguous(), 1.0 / n as f64)?;
        let dh = g.mm(&wd); // (N, C)
        let dw = g.tr().mm(&hd); // (V, C)
        Some((dh, dw, rows.sum(Kind::Float) / n as f64))
    })?;
    let s = (h * dh).sum(Kind::Float) + (w * as_kind(&dw, w.kind())).sum(Kind::Float);
    Some(&s - s.detach() + ce)
}
