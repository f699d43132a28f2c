//! Training attention (`runtime::causal_attn`) equals masked softmax attention computed in f64
//! from the same inputs — the output and the gradients of q, k and v — at every kernel level
//! this CPU has, in f32 and bf16, for MHA, GQA and MQA, lengths that are and are not multiples
//! of the vector width or the 32-row block, head-major views of a fused projection as the
//! model makes them, and packed in one projection; and declines what it cannot take (other
//! dtypes, mixed dtypes, unequal lengths, heads that do not divide, strided or odd head sizes).
mod common;
use common::{repeat, LEVEL};
use tch::{Device, Kind, Tensor};

fn reference(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let rep = q.size()[1] / k.size()[1];
    let (k, v) = (repeat(k, rep), repeat(v, rep));
    let t = q.size()[2];
    let scale = 1.0 / (q.size()[3] as f64).sqrt();
    let mask = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).tril(0);
    (q.matmul(&k.transpose(-2, -1)) * scale)
        .masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
        .softmax(-1, Kind::Double)
        .matmul(&v)
}

/// q, k, v as the model makes them: head-major views of one (B, T, nh + 2·nkv, hs) projection.
fn inputs(b: i64, nh: i64, nkv: i64, t: i64, hs: i64, kind: Kind) -> Tensor {
    Tensor::randn([b, t, nh + 2 * nkv, hs], (Kind::Float, Device::Cpu)).to_kind(kind)
}

fn split(qkv: &Tensor, nh: i64, nkv: i64) -> (Tensor, Tensor, Tensor) {
    let q = qkv.narrow(2, 0, nh).transpose(1, 2);
    let k = qkv.narrow(2, nh, nkv).transpose(1, 2);
    let v = qkv.narrow(2, nh + nkv, nkv).transpose(1, 2);
    (q, k, v)
}

fn max_err(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b).abs().max().double_value(&[])
}

fn check(b: i64, nh: i64, nkv: i64, t: i64, hs: i64, kind: Kind) {
    let qkv = inputs(b, nh, nkv, t, hs, kind).set_requires_grad(true);
    let (q, k, v) = split(&qkv, nh, nkv);
    let scale = 1.0 / (hs as f64).sqrt();
    let case = format!("{kind:?} B{b} nh{nh} nkv{nkv} T{t} hs{hs}");
    let Some(y) = runtime::causal_attn::causal_attention(&q, &k, &v, scale) else {
        assert_eq!(runtime::attn::level(hs), 0, "declined {case}");
        return;
    };
    assert_eq!(y.size(), [b, nh, t, hs], "{case}");
    assert_eq!(y.kind(), kind, "{case}");
    assert!(
        y.transpose(1, 2).is_contiguous(),
        "{case}: (B, T, nh, hs) in memory"
    );
    let gy = Tensor::randn([b, nh, t, hs], (Kind::Float, Device::Cpu)).to_kind(kind);
    let gqkv = Tensor::run_backward(&[(&y * &gy).sum(Kind::Float)], &[&qkv], false, false)
        .pop()
        .unwrap();

    let rq = qkv.detach().to_kind(Kind::Double).set_requires_grad(true);
    let (q64, k64, v64) = split(&rq, nh, nkv);
    let want = reference(&q64, &k64, &v64);
    let gwant = Tensor::run_backward(
        &[(&want * gy.to_kind(Kind::Double)).sum(Kind::Double)],
        &[&rq],
        false,
        false,
    )
    .pop()
    .unwrap();
    let tol = if kind == Kind::Float { 2e-5 } else { 3e-2 };
    let (ey, eg) = (max_err(&y, &want.detach()), max_err(&gqkv, &gwant));
    let gmax = gwant.abs().max().double_value(&[]).max(1.0);
    assert!(ey < tol, "{case}: output off by {ey}");
    assert!(
        eg < tol * gmax * 4.0,
        "{case}: gradient off by {eg} (largest {gmax})"
    );

    // The packed entry point: the same output, and the gradient of the whole projection.
    let x = qkv.detach().set_requires_grad(true);
    let yp = runtime::causal_attn::causal_attention_packed(&x, nh, nkv, scale).expect("packed");
    assert!(yp.equal(&y), "{case}: packed output differs");
    let gp = Tensor::run_backward(&[(&yp * &gy).sum(Kind::Float)], &[&x], false, false)
        .pop()
        .unwrap();
    assert!(gp.equal(&gqkv), "{case}: packed gradient differs");
}

fn each_level(f: impl Fn()) {
    let _guard = LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    for max in [2u8, 1] {
        runtime::attn::set_max_level(max);
        f();
    }
    runtime::attn::set_max_level(2);
}

#[test]
fn equals_masked_softmax_attention_and_its_gradients() {
    tch::manual_seed(0);
    each_level(|| {
        for kind in [Kind::Float, Kind::BFloat16] {
            check(2, 4, 4, 128, 32, kind); // shakespeare_char_cpu's shape, smaller batch
            check(1, 4, 2, 45, 16, kind); // GQA, T not a multiple of 16 or 32
            check(2, 6, 1, 70, 64, kind); // MQA
            check(1, 2, 2, 1, 32, kind); // one position
            check(1, 2, 1, 33, 8, kind); // head size 8: AVX2 only
            check(1, 3, 3, 17, 24, kind); // 24: AVX2 only
        }
    });
}

#[test]
fn declines_what_it_cannot_take() {
    if runtime::attn::level(16) == 0 {
        return; // no kernel on this CPU: everything declines
    }
    let f = (Kind::Float, Device::Cpu);
    let (q, k) = (
        Tensor::randn([1, 4, 8, 16], f),
        Tensor::randn([1, 2, 8, 16], f),
    );
    let attn = |q: &Tensor, k: &Tensor, v: &Tensor| {
        runtime::causal_attn::causal_attention(q, k, v, 0.25).is_none()
    };
    assert!(!attn(&q, &k, &k), "the plain case applies");
    let h = q.to_kind(Kind::Half);
    assert!(
        attn(&h, &k.to_kind(Kind::Half), &k.to_kind(Kind::Half)),
        "fp16"
    );
    assert!(attn(&q.to_kind(Kind::BFloat16), &k, &k), "mixed dtypes");
    assert!(
        attn(&q, &k.narrow(2, 0, 5), &k.narrow(2, 0, 5)),
        "fewer keys than queries"
    );
    assert!(
        attn(
            &q,
            &Tensor::randn([1, 3, 8, 16], f),
            &Tensor::randn([1, 3, 8, 16], f)
        ),
        "4 heads over 3"
    );
    let strided = Tensor::randn([1, 4, 8, 32], f).slice(3, 0, 32, 2);
    assert!(attn(&strided, &k, &k), "strided head dimension");
    assert!(
        attn(
            &q.narrow(3, 0, 12),
            &k.narrow(3, 0, 12),
            &k.narrow(3, 0, 12)
        ),
        "head size 12"
    );
    let qkv = Tensor::randn([1, 8, 8, 16], f);
    assert!(
        runtime::causal_attn::causal_attention_packed(&qkv, 4, 1, 0.25).is_none(),
        "4 + 2·1 ≠ 8"
    );
    assert!(runtime::causal_attn::causal_attention_packed(&qkv, 4, 2, 0.25).is_some());
}
