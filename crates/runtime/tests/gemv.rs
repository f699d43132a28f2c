//! The decode gemv (`runtime::gemv`) equals libtorch's `mv` (+ bias) in f32 and bf16,
//! including row counts and widths that leave partial blocks, and declines what it
//! cannot take.
use tch::{Device, Kind, Tensor};

fn check(n: i64, k: i64, kind: Kind, bias: bool) {
    let w = Tensor::randn([n, k], (Kind::Float, Device::Cpu)).to_kind(kind);
    let x = Tensor::randn([k], (Kind::Float, Device::Cpu)).to_kind(kind);
    let b = bias.then(|| Tensor::randn([n], (Kind::Float, Device::Cpu)).to_kind(kind));
    let Some(y) = runtime::gemv::gemv(&w, &x, b.as_ref()) else {
        assert!(
            runtime::gemv::level().is_none(),
            "declined {n}×{k} {kind:?}"
        );
        return;
    };
    // Reference in f64 from the same (rounded) inputs.
    let mut want = w.to_kind(Kind::Double).mv(&x.to_kind(Kind::Double));
    if let Some(b) = &b {
        want += b.to_kind(Kind::Double);
    }
    let got = y.to_kind(Kind::Double);
    let scale = want.abs().max().double_value(&[]).max(1.0);
    let err = (got - &want).abs().max().double_value(&[]) / scale;
    // f32 accumulation over k terms; bf16 adds the output's rounding (2⁻⁹ relative).
    let tol = if kind == Kind::Float { 1e-5 } else { 8e-3 };
    assert!(err < tol, "{n}×{k} {kind:?} bias {bias}: error {err:e}");
    assert_eq!(y.size(), [n]);
    assert_eq!(y.kind(), kind);
}

#[test]
fn gemv_equals_mv_for_every_shape_and_dtype() {
    tch::manual_seed(3);
    // The best kernels this CPU has, then the AVX2 ones (the same on an AVX2-only CPU).
    for avx2 in [false, true] {
        runtime::gemv::limit_to_avx2(avx2);
        every_shape();
    }
    runtime::gemv::limit_to_avx2(false);
}

fn every_shape() {
    for kind in [Kind::Float, Kind::BFloat16] {
        for (n, k) in [
            (1, 1),
            (3, 5),
            (4, 16),
            (7, 33),
            (64, 768),
            (129, 100),
            (1000, 257),
        ] {
            for bias in [false, true] {
                check(n, k, kind, bias);
            }
        }
    }
    // At 2 threads the rows split across both.
    tch::set_num_threads(2);
    check(2304, 768, Kind::Float, true);
    check(768, 3072, Kind::BFloat16, false);
    tch::set_num_threads(1);
}

#[test]
fn gemv_declines_what_it_cannot_take() {
    let w = Tensor::ones([8, 4], (Kind::Float, Device::Cpu));
    let x = Tensor::ones([4], (Kind::Float, Device::Cpu));
    assert!(
        runtime::gemv::gemv(&w.tr(), &x, None).is_none(),
        "non-contiguous"
    );
    assert!(
        runtime::gemv::gemv(&w, &x.to_kind(Kind::Double), None).is_none(),
        "dtype"
    );
    assert!(runtime::gemv::gemv(&w.to_kind(Kind::Half), &x.to_kind(Kind::Half), None).is_none());
    assert!(
        runtime::gemv::gemv(&w, &Tensor::ones([5], (Kind::Float, Device::Cpu)), None).is_none()
    );
    if runtime::gemv::level().is_some() {
        let y = runtime::gemv::gemv(&w, &x, None).unwrap();
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), vec![4.0; 8]);
    }
}

#[test]
fn a_huge_page_copy_holds_the_same_values() {
    for kind in [Kind::Float, Kind::BFloat16] {
        let t = Tensor::randn([1500, 700], (Kind::Float, Device::Cpu)).to_kind(kind);
        let c = runtime::pages::huge_copy(&t.tr()).expect("a CPU tensor is copied");
        assert!(c.is_contiguous());
        assert_eq!(c.size(), [700, 1500]);
        assert_eq!(c.kind(), kind);
        assert!(c.equal(&t.tr()), "values differ");
        assert_eq!(c.data_ptr() as usize % runtime::pages::HUGE_PAGE_BYTES, 0);
        drop(c); // freed through the shim's deleter
    }
}

/// The shims' parallel loops run on libtorch's threads: built without `-fopenmp`,
/// `at::parallel_for` silently ran every gemv and fused cross-entropy on one core.
#[test]
fn shim_loops_use_every_libtorch_thread() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("skipped: one core only");
        return;
    }
    tch::set_num_threads(2);
    assert_eq!(runtime::gemv::shim_threads(), 2);
    tch::set_num_threads(1);
    assert_eq!(runtime::gemv::shim_threads(), 1);
}
