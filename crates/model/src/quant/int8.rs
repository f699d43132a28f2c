//! Weight-only int8: symmetric absmax per output channel (LLM.int8's vector-wise scale
//! without the outlier split; gpt-fast's `WeightOnlyInt8QuantHandler`).
//!
//! For a weight `W` (N, K): `s[n] = max_k |W[n,k]| / 127`, `q[n,k] = round(W[n,k] / s[n])`
//! clamped to [-127, 127], and `Ŵ[n,k] = q[n,k] · s[n]`, so `|W - Ŵ| ≤ s[n] / 2`.
//! The matmul is libtorch's `_weight_int8pack_mm(x (M, K), q (N, K) int8, s (N,))`.
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Input widths are padded to a multiple of this (see `QLinear::quantize`).
pub const K_ALIGN: i64 = 16;

/// `q` (N, K) int8 and `scales` (N,) in `scale_kind`.
pub fn quantize(w: &Tensor, scale_kind: Kind) -> Result<(Tensor, Tensor)> {
    super::check_weight(w)?;
    let wf = w.to_kind(Kind::Float);
    // An all-zero row gets a tiny scale instead of 0 (no division by zero; q = 0 there).
    let s = (wf.abs().amax([1], false) / 127.0)
        .clamp_min(1e-12)
        .to_kind(scale_kind); // (N,)
    let q = (&wf / s.to_kind(Kind::Float).unsqueeze(1))
        .round()
        .clamp(-127.0, 127.0)
        .to_kind(Kind::Int8); // (N, K)
    Ok((q, s))
}

/// `Ŵ = q · s` (N, K) in f32.
pub fn dequantize(q: &Tensor, scales: &Tensor) -> Tensor {
    q.to_kind(Kind::Float) * scales.to_kind(Kind::Float).unsqueeze(1)
}

/// `x (M, K) @ Ŵᵀ` with libtorch's kernel; `Err` when this build/device has none.
pub fn kernel_mm(x: &Tensor, q: &Tensor, scales: &Tensor) -> Result<Tensor> {
    let s = if scales.kind() == x.kind() {
        scales.shallow_clone()
    } else {
        scales.to_kind(x.kind())
    };
    match x.f_internal_weight_int8pack_mm(q, &s) {
        Ok(y) => Ok(y),
        Err(e) => bail!("_weight_int8pack_mm failed on {:?}: {e}", x.device()),
    }
}
