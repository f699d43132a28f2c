//! `runtime::xent`, the fused cross-entropy kernel: each row's loss is libtorch's, the
//! logits become `scale · (softmax − onehot)` in place, a NaN logit makes its row's loss
//! NaN (as libtorch's would), and what the kernel cannot take it declines without writing.
use tch::{Device, Kind, Tensor};

#[test]
fn rows_match_libtorch_and_the_logits_become_the_gradient() {
    if runtime::xent::level().is_none() {
        let mut x = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::zeros([2], (Kind::Int64, Device::Cpu));
        assert!(runtime::xent::loss_and_grad_(&mut x, &t, 1.0).is_none());
        return;
    }
    // Fixed inputs (not the global RNG, which the other test draws from at the same time).
    let (n, v) = (7, 45);
    let x = (Tensor::arange(n * v, (Kind::Float, Device::Cpu)) * 0.37)
        .sin()
        .view([n, v])
        * 4.0;
    let t = (Tensor::arange(n, (Kind::Int64, Device::Cpu)) * 13).remainder(v);
    let expect_rows = x
        .cross_entropy_loss::<Tensor>(&t, None, tch::Reduction::None, -100, 0.0)
        .to_kind(Kind::Float);
    let expect_grad = (x.softmax(-1, Kind::Float) - t.one_hot(v).to_kind(Kind::Float)) * 0.25;
    let d = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    for avx2 in [false, true] {
        runtime::xent::set_max_level(if avx2 { 1 } else { 2 });
        for kind in [Kind::Float, Kind::BFloat16] {
            let mut g = x.copy().to_kind(kind); // a copy: to_kind(Float) would alias x
            let rows = runtime::xent::loss_and_grad_(&mut g, &t, 0.25).unwrap();
            let (rows_tol, grad_tol) = match kind {
                Kind::Float => (1e-5, 1e-7),
                // The logits themselves rounded to bf16 (up to 2⁻⁹ · 4 here), the gradient too.
                _ => (0.05, 5e-3),
            };
            let e = d(&rows, &expect_rows);
            assert!(e < rows_tol, "{kind:?} avx2 {avx2}: losses off by {e}");
            let e = d(&g.to_kind(Kind::Float), &expect_grad);
            assert!(e < grad_tol, "{kind:?} avx2 {avx2}: gradient off by {e}");
        }
    }
    runtime::xent::set_max_level(2);
}

#[test]
fn a_nan_logit_gives_a_nan_loss_and_bad_input_is_declined_untouched() {
    use runtime::xent::applies;
    assert!(!applies(Device::Cuda(0), Kind::Float), "a GPU's logits");
    assert!(!applies(Device::Cpu, Kind::Half), "fp16");
    assert_eq!(
        applies(Device::Cpu, Kind::BFloat16),
        runtime::xent::level().is_some()
    );
    if runtime::xent::level().is_none() {
        return;
    }
    let mut x = Tensor::randn([3, 20], (Kind::Float, Device::Cpu));
    let _ = x.get(1).get(7).fill_(f64::NAN);
    let t = Tensor::from_slice(&[0i64, 3, 19]);
    let rows = runtime::xent::loss_and_grad_(&mut x, &t, 1.0).unwrap();
    let r: Vec<f32> = Vec::try_from(&rows).unwrap();
    assert!(
        r[0].is_finite() && r[1].is_nan() && r[2].is_finite(),
        "{r:?}"
    );

    let orig = Tensor::randn([2, 5], (Kind::Float, Device::Cpu));
    for (bad, why) in [
        (
            Tensor::from_slice(&[0i64, 5]),
            "a target past the vocabulary",
        ),
        (
            Tensor::from_slice(&[-1i64, 0]),
            "a negative target (ignore_index)",
        ),
        (Tensor::from_slice(&[0i64]), "too few targets"),
        (Tensor::from_slice(&[0i32, 1]), "int32 targets"),
    ] {
        let mut x = orig.copy();
        assert!(
            runtime::xent::loss_and_grad_(&mut x, &bad, 1.0).is_none(),
            "{why}"
        );
        assert!(x.equal(&orig), "{why}: the logits were written");
    }
    let mut half = orig.to_kind(Kind::Half);
    let t = Tensor::from_slice(&[0i64, 1]);
    assert!(
        runtime::xent::loss_and_grad_(&mut half, &t, 1.0).is_none(),
        "fp16"
    );
    let mut strided = Tensor::randn([5, 2], (Kind::Float, Device::Cpu)).tr();
    assert!(
        runtime::xent::loss_and_grad_(&mut strided, &t, 1.0).is_none(),
        "not contiguous"
    );
}
