//! Decode attention (`shim/attn.cpp`): one query per sequence over a KV cache, with grouped
//! KV heads, in f32 or bf16 with f32 softmax, each key and value row read once for the query
//! heads that share it, keys split across threads when there are fewer (sequence, KV head)
//! pairs than threads (flash-decoding, Dao et al. 2023). libtorch's SDPA at one query runs
//! bf16 through MKL's bf16 gemv, 6× slower than its own f32 (`results/speed/overhead`).
use tch::{Device, Kind, Tensor};

extern "C" {
    fn ladder_attn_level(hs: i64) -> std::ffi::c_int;
    fn ladder_attn_cap(cap: std::ffi::c_int);
    fn ladder_decode_attn(
        q: *const std::ffi::c_void,
        k: *const std::ffi::c_void,
        v: *const std::ffi::c_void,
        out: *mut std::ffi::c_void,
        dims: *const i64,
        strides: *const i64,
        scale: f32,
        dtype: std::ffi::c_int,
    ) -> std::ffi::c_int;
}

/// The instruction set used for head size `hs` on this CPU: 2 AVX-512 (hs a multiple of
/// 16), 1 AVX2 + FMA (a multiple of 8), 0 none ([`decode_attention`] declines).
pub fn level(hs: i64) -> u8 {
    // SAFETY: reads CPU feature flags only.
    unsafe { ladder_attn_level(hs) }.clamp(0, 2) as u8
}

/// Use at most level `max` (2 = the best this CPU has) in this process: tests run every
/// path on one machine.
pub fn set_max_level(max: u8) {
    // SAFETY: stores an integer.
    unsafe { ladder_attn_cap(max.min(2) as std::ffi::c_int) }
}

/// `softmax(q kᵀ · scale) v` for q (B, nh, 1, hs) and k, v (B, nkv, S, hs), nh a multiple
/// of nkv (query head i reads KV head i / (nh / nkv)), no mask: a new (B, nh, 1, hs) tensor.
/// Any strides with the last dimension contiguous (cache views, a narrowed window). `None`
/// where it does not apply: off the CPU, dtypes not all f32 or all bf16, other shapes, or no
/// kernel for this CPU and head size (callers use SDPA then).
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Option<Tensor> {
    let kind = q.kind();
    let dtype = match kind {
        Kind::Float => 0,
        Kind::BFloat16 => 1,
        _ => return None,
    };
    let (b, nh, t, hs) = q.size4().ok()?;
    let (kb, nkv, s, khs) = k.size4().ok()?;
    if t != 1 || kb != b || khs != hs || v.size() != k.size() || s < 1 || level(hs) == 0 {
        return None;
    }
    if nkv < 1 || nh % nkv != 0 {
        return None;
    }
    let ok = |x: &Tensor| x.device() == Device::Cpu && x.kind() == kind && x.stride()[3] == 1;
    if !(ok(q) && ok(k) && ok(v)) {
        return None;
    }
    let (qs, ks, vs) = (q.stride(), k.stride(), v.stride());
    let dims = [b, nh, nkv, s, hs];
    let strides = [qs[0], qs[1], ks[0], ks[1], ks[2], vs[0], vs[1], vs[2]];
    let out = Tensor::empty([b, nh, 1, hs], (kind, Device::Cpu));
    // SAFETY: q, k, v are live CPU tensors of `kind` whose elements at the given sizes and
    // strides lie inside their storage (libtorch's own views); `out` is a fresh contiguous
    // (B, nh, 1, hs) tensor, the only memory written; the shim catches every exception.
    let rc = unsafe {
        ladder_decode_attn(
            q.data_ptr(),
            k.data_ptr(),
            v.data_ptr(),
            out.data_ptr(),
            dims.as_ptr(),
            strides.as_ptr(),
            scale as f32,
            dtype,
        )
    };
    (rc == 0).then_some(out)
}
