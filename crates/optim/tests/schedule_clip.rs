//! nanoGPT's cosine schedule at its corners, its validation, and global-norm clipping.
use optim::{clip_grad_norm, CosineSchedule};
use tch::{Kind, Tensor};

const S: CosineSchedule = CosineSchedule {
    lr: 1e-3,
    min_lr: 1e-4,
    warmup_iters: 100,
    lr_decay_iters: 1500,
};

#[test]
fn schedule_warmup_cosine_and_floor() {
    let s = S;
    assert!((s.lr(0) - 1e-3 / 101.0).abs() < 1e-18); // warmup start
    assert!((s.lr(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-18); // last warmup step
    assert!((s.lr(100) - 1e-3).abs() < 1e-18); // peak: cosine at ratio 0
    assert!((s.lr(800) - 5.5e-4).abs() < 1e-15); // ratio ½: halfway between lr and min_lr
                                                 // ratio ¼: min_lr + ½(1 + cos(π/4))·(lr − min_lr)
    let quarter = 1e-4 + 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) * 9e-4;
    assert!((s.lr(450) - quarter).abs() < 1e-15);
    assert!((s.lr(1500) - 1e-4).abs() < 1e-18); // last decay step: min_lr
    assert_eq!(s.lr(1501), 1e-4); // past the end
    assert_eq!(s.lr(1_000_000), 1e-4);
    for it in 0..1600 {
        if it < 100 {
            assert!(s.lr(it + 1) > s.lr(it), "warmup rises at {it}");
        } else {
            assert!(s.lr(it + 1) <= s.lr(it), "decay falls at {it}");
        }
    }
}

#[test]
fn schedule_without_warmup_or_decay_length() {
    let s = CosineSchedule {
        warmup_iters: 0,
        ..S
    };
    assert_eq!(s.lr(0), 1e-3);
    let s = CosineSchedule {
        warmup_iters: 10,
        lr_decay_iters: 10,
        ..S
    };
    assert!((s.lr(9) - 1e-3 * 10.0 / 11.0).abs() < 1e-18);
    assert_eq!(s.lr(10), 1e-4);
    s.validate().unwrap();
}

#[test]
fn schedule_validation_names_the_problem() {
    S.validate().unwrap();
    let bad = CosineSchedule {
        warmup_iters: 2000,
        ..S
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("warmup_iters") && e.contains("lr_decay_iters"),
        "{e}"
    );
    let e = CosineSchedule { min_lr: 1e-2, ..S }
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_lr"), "{e}");
    let e = CosineSchedule { lr: f64::NAN, ..S }
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr = NaN"), "{e}");
}

#[test]
fn schedule_serde_round_trip_and_unknown_fields() {
    let json = serde_json::to_string(&S).unwrap();
    assert_eq!(serde_json::from_str::<CosineSchedule>(&json).unwrap(), S);
    let typo = json.replace("min_lr", "minlr");
    assert!(serde_json::from_str::<CosineSchedule>(&typo).is_err());
}

fn with_grad(g: &[f64]) -> Tensor {
    let p =
        Tensor::zeros([g.len() as i64], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    (&p * Tensor::from_slice(g).to_kind(Kind::Float))
        .sum(Kind::Float)
        .backward();
    p
}

fn grad(p: &Tensor) -> Vec<f64> {
    Vec::try_from(p.grad().to_kind(Kind::Double)).unwrap()
}

#[test]
fn clipping_scales_to_max_norm_and_returns_the_pre_clip_norm() {
    // Global norm over two tensors: √(3² + 4² + 12²) = 13.
    let (a, b) = (with_grad(&[3.0, 4.0]), with_grad(&[12.0]));
    let no_grad = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let norm = clip_grad_norm(&[a.shallow_clone(), no_grad, b.shallow_clone()], 1.0);
    assert!((norm - 13.0).abs() < 1e-5, "{norm}");
    let (ga, gb) = (grad(&a), grad(&b));
    for (got, want) in ga
        .iter()
        .chain(&gb)
        .zip([3.0 / 13.0, 4.0 / 13.0, 12.0 / 13.0])
    {
        assert!((got - want).abs() < 1e-6, "{ga:?} {gb:?}");
    }
    // The clipped norm is max_norm · norm / (norm + 1e-6), just under max_norm.
    let again = clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 2.0);
    assert!((again - 1.0).abs() < 1e-5, "{again}");
    assert_eq!(grad(&a), ga);
}

#[test]
fn small_gradients_are_left_unchanged() {
    let q = with_grad(&[0.5, -0.25]);
    let before = grad(&q);
    let norm = clip_grad_norm(&[q.shallow_clone()], 1.0);
    assert!((norm - (0.3125f64).sqrt()).abs() < 1e-7);
    assert_eq!(grad(&q), before);
    // Infinite max_norm only measures.
    let big = with_grad(&[300.0, 400.0]);
    assert!((clip_grad_norm(&[big.shallow_clone()], f64::INFINITY) - 500.0).abs() < 1e-3);
    assert_eq!(grad(&big), vec![300.0, 400.0]);
}

#[test]
fn non_finite_norm_is_returned_without_scaling() {
    let p = with_grad(&[f64::INFINITY, 1.0]);
    assert!(clip_grad_norm(&[p.shallow_clone()], 1.0).is_infinite());
    assert_eq!(grad(&p)[1], 1.0);
    let q = with_grad(&[f64::NAN, 2.0]);
    assert!(clip_grad_norm(&[q.shallow_clone()], 1.0).is_nan());
    assert_eq!(grad(&q)[1], 2.0);
    assert_eq!(clip_grad_norm(&[], 1.0), 0.0);
}
