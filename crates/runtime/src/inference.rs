//! `c10::InferenceMode` as a Rust guard: inside it libtorch skips autograd bookkeeping
//! (dispatch keys, version counters, view metadata) that even `no_grad` pays for. A
//! decode step of a tiny model is a few hundred small ops, so that overhead is most of
//! its time (issue #16; `cargo run --release -p infer --example tiny_overhead`).
//!
//! Tensors made inside are inference tensors: they may be read outside, but never
//! modified in place or saved for backward there. Allocate state that outlives the guard
//! (a KV cache) outside it; updating such normal tensors in place inside is allowed.
use std::marker::PhantomData;

extern "C" {
    fn ladder_inference_mode_enter() -> *mut std::ffi::c_void;
    fn ladder_inference_mode_exit(guard: *mut std::ffi::c_void);
    fn ladder_inference_mode_is_enabled() -> std::ffi::c_int;
}

/// Inference mode on this thread until dropped (on this thread: the guard is not `Send`).
#[derive(Debug)]
pub struct InferenceMode {
    guard: *mut std::ffi::c_void,
    _not_send: PhantomData<*const ()>,
}

impl InferenceMode {
    /// Enter inference mode (nested guards are fine; each restores what it found).
    pub fn enter() -> Self {
        // SAFETY: the shim allocates a c10::InferenceMode (null if that threw), and only
        // `Drop` frees it, on this thread.
        let guard = unsafe { ladder_inference_mode_enter() };
        Self {
            guard,
            _not_send: PhantomData,
        }
    }
}

impl Drop for InferenceMode {
    fn drop(&mut self) {
        if !self.guard.is_null() {
            // SAFETY: allocated by `enter` on this thread, freed once.
            unsafe { ladder_inference_mode_exit(self.guard) }
        }
    }
}

/// Whether inference mode is on in this thread (a thread-local read: no tensor made).
pub fn is_enabled() -> bool {
    // SAFETY: reads c10's thread-local dispatch key set.
    unsafe { ladder_inference_mode_is_enabled() != 0 }
}
