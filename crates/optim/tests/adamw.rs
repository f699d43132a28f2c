//! AdamW against an f64 hand computation, the decay-group rule, per-parameter step counts
//! and bit-identical checkpoint/resume.
use optim::{groups_by_dim, AdamW, AdamWConfig, ParamGroup};
use tch::{nn, Device, Kind, Tensor};

fn param(values: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values)
        .to_kind(Kind::Float)
        .reshape(shape)
        .set_requires_grad(true)
}

/// Accumulate `g` into `p.grad` through autograd: d/dp (p · g).sum() = g.
fn set_grad(p: &Tensor, g: &[f64]) {
    let gt = Tensor::from_slice(g).to_kind(Kind::Float).reshape(p.size());
    (p * &gt).sum(Kind::Float).backward();
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.detach().to_kind(Kind::Double).reshape([-1])).unwrap()
}

fn group(name: &str, p: &Tensor, weight_decay: f64) -> ParamGroup {
    ParamGroup {
        params: vec![(name.to_string(), p.shallow_clone())],
        weight_decay,
    }
}

/// AdamW by hand in f64: decoupled decay, then bias-corrected moments.
fn reference(p0: &[f64], grads: &[&[f64]], lr: f64, wd: f64, cfg: AdamWConfig) -> Vec<f64> {
    let AdamWConfig { beta1, beta2, eps } = cfg;
    let mut p = p0.to_vec();
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - beta1.powi(t));
            let v_hat = v[i] / (1.0 - beta2.powi(t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    p
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 2e-6 * b.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

const CFG: AdamWConfig = AdamWConfig {
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
};

#[test]
fn two_steps_match_the_hand_computation() {
    let lr = 1e-2;
    let p0 = [0.5, -1.0, 2.0, 0.25, 3.0, -0.5];
    let grads: [&[f64]; 2] = [
        &[0.1, -0.2, 0.3, 1.5, -0.01, 2.0],
        &[-0.05, 0.4, 0.0, 0.7, 0.02, -1.0],
    ];
    for wd in [0.0, 0.1] {
        let p = param(&p0, &[2, 3]);
        let mut opt = AdamW::new(vec![group("w", &p, wd)], CFG);
        set_grad(&p, grads[0]);
        opt.step(lr);
        opt.zero_grad();
        // Step 1 by hand: m̂ = g and v̂ = g², so each weight moves by lr · g / (|g| + ε).
        let step1: Vec<f64> = p0
            .iter()
            .zip(grads[0])
            .map(|(p, g)| p * (1.0 - lr * wd) - lr * g / (g.abs() + CFG.eps))
            .collect();
        assert_close(&values(&p), &step1, &format!("step 1, wd {wd}"));
        set_grad(&p, grads[1]);
        opt.step(lr);
        assert_close(
            &values(&p),
            &reference(&p0, &grads, lr, wd, CFG),
            &format!("step 2, wd {wd}"),
        );
        assert_eq!(opt.steps(), 2);
    }
}

#[test]
fn groups_decay_independently_and_share_the_scratch() {
    // A large 2-D tensor and a small 1-D one on one optimizer, different weight decays.
    let (w0, b0) = ([0.3, -0.2, 0.9, 1.2, -0.4, 0.05], [0.1, -0.1]);
    let (gw, gb) = ([0.5, 0.25, -1.0, 0.0, 0.3, -0.7], [2.0, -0.03]);
    let w = param(&w0, &[3, 2]);
    let b = param(&b0, &[2]);
    let mut opt = AdamW::new(vec![group("w", &w, 0.5), group("b", &b, 0.0)], CFG);
    for _ in 0..3 {
        set_grad(&w, &gw);
        set_grad(&b, &gb);
        opt.step(0.05);
        opt.zero_grad();
    }
    assert_close(
        &values(&w),
        &reference(&w0, &[&gw[..]; 3], 0.05, 0.5, CFG),
        "w",
    );
    assert_close(
        &values(&b),
        &reference(&b0, &[&gb[..]; 3], 0.05, 0.0, CFG),
        "b",
    );
}

#[test]
fn a_parameter_without_a_gradient_is_skipped_and_keeps_its_own_step_count() {
    let (a0, c0) = ([1.0, 2.0], [-1.0, 0.5]);
    let (ga, gc) = ([0.2, -0.4], [0.3, 0.1]);
    let a = param(&a0, &[2]);
    let c = param(&c0, &[2]);
    let mut opt = AdamW::new(vec![group("a", &a, 0.1), group("c", &c, 0.1)], CFG);
    set_grad(&a, &ga);
    opt.step(1e-2); // `c` has no gradient yet: untouched, not even decayed
    opt.zero_grad();
    assert_eq!(values(&c), c0.to_vec());
    set_grad(&a, &ga);
    set_grad(&c, &gc);
    opt.step(1e-2);
    assert_close(
        &values(&a),
        &reference(&a0, &[&ga, &ga], 1e-2, 0.1, CFG),
        "a",
    );
    // `c` had one update, so its bias correction is step 1's, as in PyTorch.
    assert_close(&values(&c), &reference(&c0, &[&gc], 1e-2, 0.1, CFG), "c");
    let state = opt.state_tensors();
    let step = |k: &str| {
        state
            .iter()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .int64_value(&[0])
    };
    assert_eq!((step("step"), step("step.a"), step("step.c")), (2, 2, 1));
}

#[test]
fn zero_grad_zeroes_gradients() {
    let p = param(&[1.0, 2.0], &[2]);
    let mut opt = AdamW::new(vec![group("w", &p, 0.0)], AdamWConfig::default());
    set_grad(&p, &[3.0, -4.0]);
    opt.zero_grad();
    assert_eq!(values(&p.grad()), vec![0.0, 0.0]);
}

#[test]
fn groups_put_vectors_in_no_decay() {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _w = (&root / "layer").var("weight", &[4, 3], nn::Init::Const(0.0));
    let _b = (&root / "layer").var("bias", &[4], nn::Init::Const(0.0));
    let _g = (&root / "ln").var("weight", &[3], nn::Init::Const(1.0));
    let _e = root.var("wte", &[5, 3], nn::Init::Const(0.0));
    let _frozen = root
        .var("frozen", &[2, 2], nn::Init::Const(0.0))
        .set_requires_grad(false);
    let groups = groups_by_dim(&vs, 0.1);
    let names = |g: &ParamGroup| g.params.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(groups.len(), 2);
    assert_eq!(names(&groups[0]), vec!["layer.weight", "wte"]);
    assert_eq!(groups[0].weight_decay, 0.1);
    assert_eq!(names(&groups[1]), vec!["layer.bias", "ln.weight"]);
    assert_eq!(groups[1].weight_decay, 0.0);
}

/// Six steps on two parameters; with `split`, the state goes through `state_tensors` into a
/// fresh optimizer after step three.
fn run(split: bool) -> (Tensor, Tensor) {
    let w = param(&[0.3, -0.7, 1.1, 0.0], &[2, 2]);
    let b = param(&[0.01, -0.02], &[2]);
    let mk = || {
        AdamW::new(
            vec![group("w", &w, 0.1), group("b", &b, 0.0)],
            AdamWConfig::default(),
        )
    };
    let mut opt = mk();
    for i in 0..6 {
        if split && i == 3 {
            let saved = opt.state_tensors();
            opt = mk();
            opt.load_state_tensors(&saved).unwrap();
            assert_eq!(opt.steps(), 3);
        }
        let x = i as f64;
        set_grad(&w, &[0.1 * x, -0.2, 0.05, 1.0 / (x + 1.0)]);
        set_grad(&b, &[x - 2.5, 0.3]);
        opt.step(1e-2 * (1.0 + x));
        opt.zero_grad();
    }
    (w.detach(), b.detach())
}

#[test]
fn state_round_trip_continues_bit_identically() {
    let (w1, b1) = run(false);
    let (w2, b2) = run(true);
    assert!(w1.equal(&w2) && b1.equal(&b2), "{w1} vs {w2}; {b1} vs {b2}");
}

fn one_param_opt() -> (Tensor, AdamW) {
    let p = param(&[1.0, 2.0], &[2]);
    let opt = AdamW::new(vec![group("w", &p, 0.0)], AdamWConfig::default());
    (p, opt)
}

#[test]
fn loading_state_with_a_missing_key_names_it() {
    let (_p, mut opt) = one_param_opt();
    let e = opt
        .load_state_tensors(&[("step".into(), Tensor::from_slice(&[1i64]))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exp_avg.w"), "{e}");
    let e = opt.load_state_tensors(&[]).unwrap_err().to_string();
    assert!(e.contains("'step'"), "{e}");
}

#[test]
fn loading_state_rejects_shape_and_dtype_mismatches_and_changes_nothing() {
    let (_p, mut opt) = one_param_opt();
    let good = opt.state_tensors();
    let with = |key: &str, t: Tensor| -> Vec<(String, Tensor)> {
        good.iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    if n == key {
                        t.shallow_clone()
                    } else {
                        v.copy()
                    },
                )
            })
            .collect()
    };
    let e = opt
        .load_state_tensors(&with(
            "exp_avg_sq.w",
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exp_avg_sq.w") && e.contains("[3]") && e.contains("[2]"),
        "{e}"
    );
    let e = opt
        .load_state_tensors(&with(
            "exp_avg.w",
            Tensor::zeros([2], (Kind::Double, Device::Cpu)),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exp_avg.w") && e.contains("Double"), "{e}");
    let e = opt
        .load_state_tensors(&with("step", Tensor::from_slice(&[-1i64])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("step") && e.contains("negative"), "{e}");
    assert_eq!(opt.steps(), 0);
}

#[test]
fn old_checkpoints_without_per_parameter_steps_use_the_global_step() {
    let (p, mut opt) = one_param_opt();
    let mut state: Vec<(String, Tensor)> = opt
        .state_tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("step."))
        .collect();
    state[0].1 = Tensor::from_slice(&[7i64]);
    opt.load_state_tensors(&state).unwrap();
    assert_eq!(opt.steps(), 7);
    set_grad(&p, &[1.0, 1.0]);
    opt.step(0.1);
    let s = opt.state_tensors();
    assert_eq!(
        s.iter()
            .find(|(n, _)| n == "step.w")
            .unwrap()
            .1
            .int64_value(&[0]),
        8
    );
}
