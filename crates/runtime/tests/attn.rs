//! Decode attention (`runtime::attn`) equals softmax(q kᵀ / √hs) v computed in f64 from the
//! same inputs, at every kernel level this CPU has, in f32 and bf16, for MHA, GQA and MQA
//! (whose keys are split across threads and merged), on strided cache views; and declines
//! what it cannot take.
mod common;
use common::{repeat, LEVEL};
use tch::{Device, Kind, Tensor};

fn reference(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (q, k, v) = (
        q.to_kind(Kind::Double),
        k.to_kind(Kind::Double),
        v.to_kind(Kind::Double),
    );
    let rep = q.size()[1] / k.size()[1];
    let (k, v) = (repeat(&k, rep), repeat(&v, rep));
    let scale = 1.0 / (q.size()[3] as f64).sqrt();
    (q.matmul(&k.transpose(-2, -1)) * scale)
        .softmax(-1, Kind::Double)
        .matmul(&v)
}

/// q as decode makes it (a head-major view of a (B, 1, heads, hs) projection) and k, v as the
/// first `s` positions of a larger cache.
fn inputs(b: i64, nh: i64, nkv: i64, s: i64, hs: i64, kind: Kind) -> (Tensor, Tensor, Tensor) {
    let f = (Kind::Float, Device::Cpu);
    let qkv = Tensor::randn([b, 1, nh + 2 * nkv, hs], f).to_kind(kind);
    let q = qkv.narrow(2, 0, nh).transpose(1, 2); // (B, nh, 1, hs)
    let cache = |_| Tensor::randn([b, nkv, s + 7, hs], f).to_kind(kind);
    let (k, v) = (cache(0).narrow(2, 0, s), cache(1).narrow(2, 0, s));
    (q, k, v)
}

fn check(b: i64, nh: i64, nkv: i64, s: i64, hs: i64, kind: Kind) {
    let (q, k, v) = inputs(b, nh, nkv, s, hs, kind);
    let Some(y) = runtime::attn::decode_attention(&q, &k, &v, 1.0 / (hs as f64).sqrt()) else {
        assert_eq!(
            runtime::attn::level(hs),
            0,
            "declined B{b} nh{nh} nkv{nkv} S{s} hs{hs}"
        );
        return;
    };
    assert_eq!(y.size(), [b, nh, 1, hs]);
    assert_eq!(y.kind(), kind);
    let want = reference(&q, &k, &v);
    let err = (y.to_kind(Kind::Double) - &want)
        .abs()
        .max()
        .double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1e-3);
    // f32 sums over S and hs; bf16 adds the output's rounding (2⁻⁹ relative).
    let tol = if kind == Kind::Float { 2e-5 } else { 8e-3 };
    assert!(
        err / scale < tol,
        "B{b} nh{nh} nkv{nkv} S{s} hs{hs} {kind:?} level {}: error {err:e} (scale {scale:e})",
        runtime::attn::level(hs)
    );
}

#[test]
fn equals_the_f64_reference_at_every_level() {
    let _g = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(5);
    tch::set_num_threads(2);
    for level in [2u8, 1] {
        runtime::attn::set_max_level(level);
        for kind in [Kind::Float, Kind::BFloat16] {
            check(1, 12, 12, 130, 64, kind); // GPT-2 small at decode
            check(2, 8, 2, 37, 16, kind); // GQA, a tail of keys under a vector width
            check(1, 4, 1, 300, 32, kind); // MQA: keys split over threads, then merged
            check(1, 8, 4, 1, 8, kind); // stories260K's head size (AVX2 only), one key
            check(3, 6, 3, 70, 24, kind); // hs 24: AVX2 only (not a multiple of 16)
        }
    }
    runtime::attn::set_max_level(2);
}

#[test]
fn declines_what_it_cannot_take() {
    let _g = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    let (q, k, v) = inputs(1, 4, 2, 10, 16, Kind::Float);
    let attn = runtime::attn::decode_attention;
    assert!(attn(&q.to_kind(Kind::Half), &k, &v, 0.25).is_none(), "fp16");
    assert!(
        attn(&q, &k.to_kind(Kind::BFloat16), &v, 0.25).is_none(),
        "mixed dtypes"
    );
    let (q3, k3, v3) = inputs(1, 3, 2, 10, 16, Kind::Float);
    assert!(
        attn(&q3, &k3, &v3, 0.25).is_none(),
        "3 heads over 2 KV heads"
    );
    let q2 = Tensor::randn([1, 4, 2, 16], (Kind::Float, Device::Cpu));
    assert!(attn(&q2, &k, &v, 0.25).is_none(), "two queries");
    let (q12, k12, v12) = inputs(1, 4, 2, 10, 12, Kind::Float);
    assert!(attn(&q12, &k12, &v12, 0.25).is_none(), "head size 12");
    let kt = k.transpose(2, 3).contiguous().transpose(2, 3); // hs not contiguous
    assert!(attn(&q, &kt, &kt, 0.25).is_none(), "strided head dimension");
    runtime::attn::set_max_level(0);
    assert!(attn(&q, &k, &v, 0.25).is_none(), "kernels off");
    runtime::attn::set_max_level(2);
}
