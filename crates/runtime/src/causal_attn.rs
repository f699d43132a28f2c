//! Causal self-attention for training and prefill (`shim/causal_attn.cpp`): T queries over
//! their own T keys, forward and backward, f32 or bf16 with f32 arithmetic, grouped KV heads.
//! FlashAttention-2's algorithm (Dao 2023: keep each row's log-sum-exp, recompute the
//! probabilities in the backward) in small register-blocked matrix products over per-head f32
//! copies that stay in a core's cache. At the shapes Ladder trains on a CPU (head size 32–64,
//! T ≤ 1024), libtorch's flash attention spends most of its time packing 32 × 32 blocks for
//! MKL (`cargo run --release -p runtime --example attn_train` times both). The result carries a
//! libtorch autograd node (a C++ `torch::autograd::Function`: tch binds none), so `backward`
//! runs our backward.
use std::ffi::{c_int, c_void};
use tch::Tensor;

extern "C" {
    fn ladder_causal_attn(
        q: *mut c_void,
        k: *mut c_void,
        v: *mut c_void,
        scale: f64,
        out: *mut *mut c_void,
    ) -> c_int;
    fn ladder_causal_attn_packed(
        qkv: *mut c_void,
        nh: i64,
        nkv: i64,
        scale: f64,
        out: *mut *mut c_void,
    ) -> c_int;
}

/// `softmax(q kᵀ · scale + causal mask) v` for q (B, nh, T, hs) and k, v (B, nkv, T, hs),
/// nh a multiple of nkv (query head i reads KV head i / (nh / nkv)), query i seeing keys
/// 0..=i: a (B, nh, T, hs) tensor (a transposed view of a contiguous (B, T, nh, hs) one, so
/// `transpose(1, 2)` of it is contiguous), differentiable in q, k and v when grad mode is on.
/// Any strides with the last dimension contiguous. `None` where it does not apply: off the
/// CPU, dtypes not all f32 or all bf16, other shapes, or no kernel for this CPU and head size
/// ([`crate::attn::level`]; [`crate::attn::set_max_level`] caps both attention kernels).
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Option<Tensor> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: q, k and v are live tch tensors (at::Tensor*), only read; the shim checks
    // shapes, dtypes, devices and strides before touching data, allocates the result itself
    // and catches every C++ exception.
    let rc = unsafe {
        ladder_causal_attn(
            q.as_ptr() as *mut c_void,
            k.as_ptr() as *mut c_void,
            v.as_ptr() as *mut c_void,
            scale,
            &mut out,
        )
    };
    // SAFETY: on success the shim hands over a heap at::Tensor* it owns no longer.
    unsafe { crate::autograd::adopt(rc, out) }
}

/// As [`causal_attention`] for q, k and v packed in one (B, T, nh + 2·nkv, hs) projection,
/// in that order along the third axis (the model's fused `c_attn` output): its gradient is then
/// one buffer the kernel fills, not three zero-filled copies that autograd adds up (the
/// backward of `narrow`).
pub fn causal_attention_packed(qkv: &Tensor, n_head: i64, n_kv: i64, scale: f64) -> Option<Tensor> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: as in `causal_attention`; the shim checks that the third axis holds
    // n_head + 2·n_kv heads before making any view.
    let rc = unsafe {
        ladder_causal_attn_packed(qkv.as_ptr() as *mut c_void, n_head, n_kv, scale, &mut out)
    };
    // SAFETY: on success the shim hands over a heap at::Tensor* it owns no longer.
    unsafe { crate::autograd::adopt(rc, out) }
}
