//! Fused cross-entropy (`shim/xent.cpp`): one pass over the LM head's (N × V) logits that
//! writes each row's loss and replaces the row, in place, with the gradient of the mean loss,
//! `(softmax − onehot) / N`. libtorch's log-softmax + NLL and their backward read and write
//! logits-sized buffers five or six times, compute `exp` twice, and in bf16 first cast the
//! logits to f32; this reads each row once and writes it once. The idea of Liger-Kernel's
//! fused linear cross-entropy, on the CPU. `model::loss` builds the training loss on it.
use tch::{Device, Kind, Tensor};

extern "C" {
    fn ladder_xent_level() -> std::ffi::c_int;
    fn ladder_xent_cap(cap: std::ffi::c_int);
    fn ladder_xent(
        logits: *mut std::ffi::c_void,
        targets: *const i64,
        row_loss: *mut f32,
        n: i64,
        v: i64,
        scale: f32,
        dtype: std::ffi::c_int,
    ) -> std::ffi::c_int;
}

/// The instruction set the kernel uses on this CPU, or `None` (then [`loss_and_grad_`]
/// always declines).
pub fn level() -> Option<&'static str> {
    // SAFETY: reads CPU feature flags only.
    match unsafe { ladder_xent_level() } {
        2 => Some("AVX-512"),
        1 => Some("AVX2+FMA"),
        _ => None,
    }
}

/// The best kernel to use in this process: 2 = the best this CPU has (the default), 1 = AVX2
/// at most, 0 = none (every call declines, so callers take their tensor-op path). Tests run
/// each path on one machine this way.
pub fn set_max_level(level: u8) {
    // SAFETY: stores an integer.
    unsafe { ladder_xent_cap(level.min(2) as std::ffi::c_int) }
}

/// Whether [`loss_and_grad_`] can take logits of `kind` on `device` on this CPU (targets and
/// shapes aside): a cheap check before computing logits only for this kernel.
pub fn applies(device: Device, kind: Kind) -> bool {
    level().is_some() && device == Device::Cpu && matches!(kind, Kind::Float | Kind::BFloat16)
}

/// The loss of each row of `logits` (N, V) against `targets` (N) as an (N) f32 tensor;
/// `logits` is overwritten with `scale · ∂(Σ loss)/∂logits = scale · (softmax − onehot)`, in
/// its own dtype. `None`, with `logits` untouched, where the kernel does not apply: a CPU
/// without AVX2+FMA, tensors off the CPU or not contiguous, logits neither f32 nor bf16,
/// targets not int64 of length N, or a target outside `[0, V)`.
pub fn loss_and_grad_(logits: &mut Tensor, targets: &Tensor, scale: f64) -> Option<Tensor> {
    level()?;
    let dtype = match logits.kind() {
        Kind::Float => 0,
        Kind::BFloat16 => 1,
        _ => return None,
    };
    let (n, v) = match logits.size().as_slice() {
        [n, v] => (*n, *v),
        _ => return None,
    };
    let cpu = |t: &Tensor| t.device() == Device::Cpu && t.is_contiguous();
    if !cpu(logits) || !cpu(targets) || targets.kind() != Kind::Int64 || targets.numel() as i64 != n
    {
        return None;
    }
    let rows = Tensor::empty([n], (Kind::Float, Device::Cpu));
    // SAFETY: logits is a live contiguous CPU tensor of n·v elements of the given dtype,
    // targets n contiguous int64, rows n contiguous f32; the shim checks every target
    // before writing, writes only within these, and catches every C++ exception.
    let rc = unsafe {
        ladder_xent(
            logits.data_ptr(),
            targets.data_ptr() as *const i64,
            rows.data_ptr() as *mut f32,
            n,
            v,
            scale as f32,
            dtype,
        )
    };
    (rc == 0).then_some(rows)
}
