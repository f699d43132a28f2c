//! Tensors in transparent huge pages (`shim/pages.cpp`): a weight read in full at every
//! decode step streams from memory faster from 2 MiB pages than from 4 KiB ones, whose
//! boundaries stop the hardware prefetcher (GPT-2 124M decode on a Zen 4 EPYC:
//! `results/speed/overhead`).
use tch::{Device, Tensor};

extern "C" {
    fn ladder_huge_copy(src: *mut std::ffi::c_void) -> *mut std::ffi::c_void;
}

/// Smallest tensor worth copying (one huge page).
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A contiguous copy of `t` (CPU) in memory advised for huge pages (plain pages where the
/// kernel declines the advice); `None` off the CPU or if the copy failed (keep `t` then).
pub fn huge_copy(t: &Tensor) -> Option<Tensor> {
    if t.device() != Device::Cpu {
        return None;
    }
    // SAFETY: `t` is a live at::Tensor*; the shim returns a new heap at::Tensor* (owning
    // its memory through a deleter) or null, and catches every C++ exception.
    let ptr = unsafe { ladder_huge_copy(t.as_ptr() as *mut _) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a fresh at::Tensor* that nothing else owns; tch frees it on drop.
    Some(unsafe { Tensor::from_ptr(ptr as *mut torch_sys::C_tensor) })
}
