//! A batch-1 matrix-vector product that streams the weight at memory speed
//! (`shim/gemv.cpp`): `y = W x (+ b)` for a row-major `W` (n, k) in f32 or bf16, with f32
//! accumulation, on libtorch's intra-op threads. For decode, where every weight is read
//! once per token; `model::gemv` times it beside libtorch's `mv`/`mm` and keeps the faster.
use tch::{Device, Kind, Tensor};

extern "C" {
    fn ladder_gemv_level() -> std::ffi::c_int;
    fn ladder_parallel_threads() -> std::ffi::c_int;
    fn ladder_gemv_cap(cap: std::ffi::c_int);
    fn ladder_gemv(
        w: *const std::ffi::c_void,
        x: *const std::ffi::c_void,
        bias: *const std::ffi::c_void,
        y: *mut std::ffi::c_void,
        n: i64,
        k: i64,
        dtype: std::ffi::c_int,
    ) -> std::ffi::c_int;
}

/// The instruction set the kernels use on this CPU, or `None` when it has none of them
/// (then [`gemv`] always declines).
pub fn level() -> Option<&'static str> {
    // SAFETY: reads CPU feature flags only.
    match unsafe { ladder_gemv_level() } {
        3 => Some("AVX512-BF16"),
        2 => Some("AVX-512"),
        1 => Some("AVX2+FMA"),
        _ => None,
    }
}

/// Whether the kernels multiply bf16 natively here (AVX512-BF16's `vdpbf16ps`), whatever
/// libtorch's bf16 matmul does: a bf16 decode step then streams half of fp32's bytes at
/// full speed.
pub fn native_bf16() -> bool {
    level() == Some("AVX512-BF16")
}

/// Use at most the AVX2 kernels (`true`) or the best this CPU has (`false`), in this
/// process: tests run the AVX2 path on AVX-512 machines.
pub fn limit_to_avx2(on: bool) {
    // SAFETY: stores an integer.
    unsafe { ladder_gemv_cap(if on { 1 } else { 3 }) }
}

/// How many threads a parallel loop of the shims (this gemv, `xent`) runs on at the current
/// `tch::set_num_threads`: the same as libtorch's own kernels where the build found
/// libtorch's OpenMP runtime (`crates/runtime/build.rs`), else 1.
pub fn shim_threads() -> usize {
    // SAFETY: runs a parallel loop that only sets bits of an atomic; catches exceptions.
    unsafe { ladder_parallel_threads() }.max(1) as usize
}

fn code(kind: Kind) -> Option<std::ffi::c_int> {
    match kind {
        Kind::Float => Some(0),
        Kind::BFloat16 => Some(1),
        _ => None,
    }
}

/// `w (n, k) · x (k)` (+ `bias (n)`) as a new (n) tensor, or `None` when the kernel does
/// not apply: a CPU without AVX2+FMA, a tensor off the CPU, not contiguous, or not all
/// f32 or all bf16 (callers then use libtorch's `mv`).
pub fn gemv(w: &Tensor, x: &Tensor, bias: Option<&Tensor>) -> Option<Tensor> {
    level()?;
    let kind = w.kind();
    let dtype = code(kind)?;
    let size = w.size();
    let (n, k) = match size.as_slice() {
        [n, k] => (*n, *k),
        _ => return None,
    };
    let ok = |t: &Tensor, len: i64| {
        t.device() == Device::Cpu
            && t.kind() == kind
            && t.numel() as i64 == len
            && t.is_contiguous()
    };
    if !ok(w, n * k) || !ok(x, k) || !bias.is_none_or(|b| ok(b, n)) {
        return None;
    }
    let y = Tensor::empty([n], (kind, Device::Cpu));
    let b = bias.map_or(std::ptr::null(), |b| b.data_ptr() as *const _);
    // SAFETY: every pointer is the start of a live contiguous CPU tensor of the checked
    // dtype and length (w: n·k, x: k, bias and y: n); the shim writes only y and catches
    // every C++ exception.
    let rc = unsafe {
        ladder_gemv(
            w.data_ptr() as *const _,
            x.data_ptr() as *const _,
            b,
            y.data_ptr(),
            n,
            k,
            dtype,
        )
    };
    (rc == 0).then_some(y)
}
