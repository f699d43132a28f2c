//! GELU with the tanh approximation (GPT-2's `gelu_new`), forward and backward
//! (`shim/gelu.cpp`): `x·σ(z)`, `z = 2·√(2/π)·(x + 0.044715·x³)`, σ from one vector exp.
//! libtorch's own evaluates SLEEF's 1-ulp tanh, 7 % of a shakespeare_char_cpu training step in
//! fp32 (Zen 4). The result carries a libtorch autograd node (a C++
//! `torch::autograd::Function`), so `backward` runs our backward.
use std::ffi::{c_int, c_void};
use tch::Tensor;

extern "C" {
    fn ladder_gelu_tanh(x: *mut c_void, out: *mut *mut c_void) -> c_int;
}

/// `x.gelu("tanh")`, by our kernel for a contiguous f32 or bf16 CPU tensor on a CPU with AVX2
/// or AVX-512 (within 1e-6 relative of libtorch's in f32), by libtorch's otherwise.
pub fn gelu_tanh(x: &Tensor) -> Tensor {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: x is a live tch tensor (at::Tensor*), only read; the shim checks dtype, device
    // and layout first, allocates the result itself and catches every C++ exception.
    let rc = unsafe { ladder_gelu_tanh(x.as_ptr() as *mut c_void, &mut out) };
    if rc == 0 && !out.is_null() {
        // SAFETY: a heap at::Tensor* that nothing else owns (tch frees it).
        unsafe { Tensor::from_ptr(out as *mut _) }
    } else {
        x.gelu("tanh")
    }
}
