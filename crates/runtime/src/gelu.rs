//! GELU with the tanh approximation (GPT-2's `gelu_new`), forward and backward
//! (`shim/gelu.cpp`): `x·σ(z)`, `z = 2·√(2/π)·(x + 0.044715·x³)`, σ from one vector exp.
//! libtorch's own evaluates SLEEF's 1-ulp tanh, which stood out in a `perf` profile of a
//! shakespeare_char_cpu training step. The result carries a libtorch autograd node (a C++
//! `torch::autograd::Function`), so `backward` runs our backward.
use std::ffi::{c_int, c_void};
use tch::Tensor;

extern "C" {
    fn ladder_gelu_tanh(x: *mut c_void, out: *mut *mut c_void) -> c_int;
}

/// `x.gelu("tanh")`, by our kernel for a contiguous f32 or bf16 CPU tensor on a CPU with AVX2
/// or AVX-512 (at least as close to the exact GELU as libtorch's: `tests/gelu.rs`), by
/// libtorch's otherwise.
pub fn gelu_tanh(x: &Tensor) -> Tensor {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: x is a live tch tensor (at::Tensor*), only read; the shim checks dtype, device
    // and layout first, allocates the result itself and catches every C++ exception.
    let rc = unsafe { ladder_gelu_tanh(x.as_ptr() as *mut c_void, &mut out) };
    // SAFETY: on success the shim hands over a heap at::Tensor* it owns no longer.
    unsafe { crate::autograd::adopt(rc, out) }.unwrap_or_else(|| x.gelu("tanh"))
}
