//! Our tanh GELU (`runtime::gelu`) is as close to the f64 GELU as libtorch's `gelu("tanh")`,
//! value and gradient, in f32 and bf16, at every kernel level this CPU has, over lengths with
//! and without a vector tail and arguments from −12 to 12 (where the exp of −|z| and the
//! tails matter); non-contiguous input falls back to libtorch's.
use tch::{Device, Kind, Tensor};

fn check(n: i64, kind: Kind) {
    let x = (Tensor::rand([n], (Kind::Float, Device::Cpu)) * 24.0 - 12.0).to_kind(kind);
    let x = x.set_requires_grad(true);
    let dy = Tensor::randn([n], (Kind::Float, Device::Cpu)).to_kind(kind);
    let vjp = |y: &Tensor, x: &Tensor, dy: &Tensor| {
        Tensor::run_backward(&[(y * dy).sum(Kind::Double)], &[x], false, false)
            .pop()
            .unwrap()
    };
    let ours = runtime::gelu::gelu_tanh(&x);
    let theirs = x.gelu("tanh");
    let (go, gt) = (vjp(&ours, &x, &dy), vjp(&theirs, &x, &dy));
    // The f64 reference, from the same (rounded) inputs.
    let x64 = x.detach().to_kind(Kind::Double).set_requires_grad(true);
    let want = x64.gelu("tanh");
    let gwant = vjp(&want, &x64, &dy.to_kind(Kind::Double));
    // Error against f64 in units of the dtype's rounding at the value's size (at least 1e-3's):
    // never more than 16 units worse than libtorch's (in f32 it is far better: libtorch's
    // 1 + tanh cancels for negative x).
    let err = |a: &Tensor, b: &Tensor| {
        let ulp = if kind == Kind::Float { 1.2e-7 } else { 7.9e-3 };
        let d = (a.to_kind(Kind::Double) - b).abs() / (b.abs().clamp_min(1e-3) * ulp);
        d.max().double_value(&[])
    };
    let (ey, ey_lt) = (err(&ours, &want), err(&theirs, &want));
    let (eg, eg_lt) = (err(&go, &gwant), err(&gt, &gwant));
    assert!(
        ey <= ey_lt + 16.0,
        "{kind:?} n {n}: value off by {ey} ulp (libtorch {ey_lt})"
    );
    assert!(
        eg <= eg_lt + 16.0,
        "{kind:?} n {n}: gradient off by {eg} ulp (libtorch {eg_lt})"
    );
}

#[test]
fn equals_libtorch_gelu_tanh_in_value_and_gradient() {
    tch::manual_seed(0);
    for max in [2u8, 1] {
        runtime::attn::set_max_level(max);
        for kind in [Kind::Float, Kind::BFloat16] {
            for n in [1, 7, 16, 100, 40_000] {
                check(n, kind);
            }
        }
    }
    runtime::attn::set_max_level(2);
}

#[test]
fn strided_input_falls_back_to_libtorch() {
    let x = Tensor::randn([8, 6], (Kind::Float, Device::Cpu)).tr();
    let y = runtime::gelu::gelu_tanh(&x);
    assert!((y - x.gelu("tanh")).abs().max().double_value(&[]) == 0.0);
}
