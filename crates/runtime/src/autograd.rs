//! What tch's autograd bindings lack: assigning a parameter's gradient
//! (`param.grad = g` in PyTorch; `shim/grad.cpp`), and taking over a tensor that a C++ shim
//! made (the results of our own autograd functions: `causal_attn`, `gelu`).
use anyhow::{ensure, Result};
use tch::Tensor;

extern "C" {
    fn ladder_set_grad(
        param: *mut std::ffi::c_void,
        grad: *mut std::ffi::c_void,
    ) -> std::ffi::c_int;
}

/// Make `grad` the gradient of `param` (sharing its storage: later backward passes add
/// into it in place, as long as it stays defined). Shape, dtype and device must match
/// the parameter's, as PyTorch's `.grad` setter requires.
pub fn set_grad(param: &Tensor, grad: &Tensor) -> Result<()> {
    ensure!(
        param.size() == grad.size()
            && param.kind() == grad.kind()
            && param.device() == grad.device(),
        "set_grad: gradient {:?} {:?} on {:?} does not match the parameter {:?} {:?} on {:?}",
        grad.size(),
        grad.kind(),
        grad.device(),
        param.size(),
        param.kind(),
        param.device()
    );
    // SAFETY: both are live at::Tensor* owned by their tch handles; the shim only assigns
    // the parameter's (shared) autograd metadata and catches every C++ exception.
    let rc = unsafe {
        ladder_set_grad(
            param.as_ptr() as *mut std::ffi::c_void,
            grad.as_ptr() as *mut std::ffi::c_void,
        )
    };
    ensure!(rc == 0, "set_grad: libtorch refused the gradient");
    Ok(())
}

/// The tensor a shim allocated (`new at::Tensor`) and handed over in `out`, if it returned 0.
///
/// # Safety
/// When `rc == 0` and `out` is not null, `out` must be a heap `at::Tensor*` that nothing else
/// owns: the returned tch tensor frees it.
pub(crate) unsafe fn adopt(rc: std::ffi::c_int, out: *mut std::ffi::c_void) -> Option<Tensor> {
    // SAFETY: the caller's promise above.
    (rc == 0 && !out.is_null()).then(|| unsafe { Tensor::from_ptr(out as *mut _) })
}
