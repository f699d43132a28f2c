//! AdamW against a hand computation, the schedule's corners, clipping, and checkpointing.
use optim::{clip_grad_norm, groups_by_dim, AdamW, AdamWConfig, CosineSchedule, ParamGroup};
use tch::{nn, Device, Kind, Tensor};

fn param(values: &[f64]) -> Tensor {
    Tensor::from_slice(values)
        .to_kind(Kind::Float)
        .set_requires_grad(true)
}

fn set_grad(p: &Tensor, g: &[f64]) {
    // Creating the grad: backward of (p · g).sum() gives exactly g.
    let gt = Tensor::from_slice(g).to_kind(Kind::Float);
    (p * &gt).sum(Kind::Float).backward();
}

/// AdamW in f64 by hand: decoupled decay, bias-corrected moments.
fn reference(
    p0: &[f64],
    grads: &[&[f64]],
    lr: f64,
    wd: f64,
    b1: f64,
    b2: f64,
    eps: f64,
) -> Vec<f64> {
    let mut p = p0.to_vec();
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mhat = m[i] / (1.0 - b1.powi(t));
            let vhat = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * mhat / (vhat.sqrt() + eps);
        }
    }
    p
}

#[test]
fn two_adamw_steps_match_the_hand_computation() {
    for wd in [0.0, 0.1] {
        let p0 = [0.5, -1.0, 2.0];
        let grads: [&[f64]; 2] = [&[0.1, -0.2, 0.3], &[-0.05, 0.4, 0.0]];
        let p = param(&p0);
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        };
        let mut opt = AdamW::new(
            vec![ParamGroup {
                params: vec![("w".into(), p.shallow_clone())],
                weight_decay: wd,
            }],
            cfg,
        );
        for g in grads {
            set_grad(&p, g);
            opt.step(1e-2);
            opt.zero_grad();
        }
        let want = reference(&p0, &grads, 1e-2, wd, 0.9, 0.99, 1e-8);
        let got: Vec<f64> = Vec::try_from(p.detach().to_kind(Kind::Double)).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "wd {wd}: {got:?} vs {want:?}");
        }
        // The first step moves each weight by about lr (Adam's normalised step).
        assert!((got[0] - p0[0]).abs() > 1e-3);
        assert_eq!(opt.steps(), 2);
    }
}

#[test]
fn parameters_without_gradients_are_skipped() {
    let p = param(&[1.0, 2.0]);
    let mut opt = AdamW::new(
        vec![ParamGroup {
            params: vec![("w".into(), p.shallow_clone())],
            weight_decay: 0.1,
        }],
        AdamWConfig::default(),
    );
    opt.step(0.1);
    let got: Vec<f64> = Vec::try_from(p.detach().to_kind(Kind::Double)).unwrap();
    assert_eq!(got, vec![1.0, 2.0]);
}

#[test]
fn groups_put_vectors_in_no_decay() {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _w = (&root / "layer").var("weight", &[4, 3], nn::Init::Const(0.0));
    let _b = (&root / "layer").var("bias", &[4], nn::Init::Const(0.0));
    let _g = (&root / "ln").var("weight", &[3], nn::Init::Const(1.0));
    let groups = groups_by_dim(&vs, 0.1);
    let names = |g: &ParamGroup| g.params.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&groups[0]), vec!["layer.weight"]);
    assert_eq!(groups[0].weight_decay, 0.1);
    assert_eq!(names(&groups[1]), vec!["layer.bias", "ln.weight"]);
    assert_eq!(groups[1].weight_decay, 0.0);
}

#[test]
fn schedule_warmup_cosine_and_floor() {
    let s = CosineSchedule {
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_iters: 100,
        lr_decay_iters: 1500,
    };
    assert!((s.lr(0) - 1e-3 / 101.0).abs() < 1e-15); // warmup start
    assert!((s.lr(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15); // warmup end
    assert!((s.lr(100) - 1e-3).abs() < 1e-15); // peak
    assert!((s.lr(800) - 5.5e-4).abs() < 1e-12); // halfway down the cosine
    assert!((s.lr(1500) - 1e-4).abs() < 1e-15); // last step
    assert_eq!(s.lr(5000), 1e-4); // past the end
    for it in 100..1500 {
        assert!(s.lr(it + 1) <= s.lr(it));
    }
}

#[test]
fn clipping_scales_to_max_norm_and_returns_the_norm() {
    let p = param(&[0.0, 0.0]);
    set_grad(&p, &[3.0, 4.0]);
    let norm = clip_grad_norm(&[p.shallow_clone()], 1.0);
    assert!((norm - 5.0).abs() < 1e-6);
    let g: Vec<f64> = Vec::try_from(p.grad().to_kind(Kind::Double)).unwrap();
    assert!(
        (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
        "{g:?}"
    );
    // Small gradients are left alone.
    let q = param(&[0.0]);
    set_grad(&q, &[0.5]);
    assert!((clip_grad_norm(&[q.shallow_clone()], 1.0) - 0.5).abs() < 1e-7);
    assert_eq!(q.grad().double_value(&[0]), 0.5);
}

#[test]
fn state_round_trip_continues_bit_identically() {
    let run = |split: bool| {
        let p = param(&[0.3, -0.7, 1.1, 0.0]);
        let mk = |p: &Tensor| {
            AdamW::new(
                vec![ParamGroup {
                    params: vec![("w".into(), p.shallow_clone())],
                    weight_decay: 0.1,
                }],
                AdamWConfig::default(),
            )
        };
        let mut opt = mk(&p);
        for i in 0..6 {
            if split && i == 3 {
                let saved = opt.state_tensors();
                opt = mk(&p);
                opt.load_state_tensors(&saved).unwrap();
            }
            let g = [0.1 * i as f64, -0.2, 0.05, 1.0 / (i + 1) as f64];
            set_grad(&p, &g);
            opt.step(1e-2);
            opt.zero_grad();
        }
        p.detach()
    };
    assert!(run(false).equal(&run(true)));
}

#[test]
fn loading_state_with_a_missing_key_names_it() {
    let p = param(&[1.0]);
    let mut opt = AdamW::new(
        vec![ParamGroup {
            params: vec![("w".into(), p)],
            weight_decay: 0.0,
        }],
        AdamWConfig::default(),
    );
    let e = opt
        .load_state_tensors(&[("step".into(), Tensor::from_slice(&[1i64]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exp_avg.w"), "{e}");
}
