//! Where a tiny model's decode step goes (issue #16): the best time of one
//! `infer::Decoder::step` on stories260K (llama2.c's 260K TinyStories model), beside the
//! cost of one small libtorch op through tch, on one thread:
//! `cargo run --release -p infer --example tiny_overhead`.
use infer::Decoder;
use model::RunSettings;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn best_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    best
}

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let _g = tch::no_grad_guard();
    let dir = runtime::resources::shared_dir().join("models/stories260K");
    let loaded = model::io::load(&dir, &RunSettings::default(), Device::Cpu)?;
    let m = &loaded.model;
    let mut dec = Decoder::new(m, 1, 512, true);
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    // STEPS and RUNS: fewer under `valgrind --tool=callgrind`, whose instruction counts are
    // repeatable where timings on a shared machine are not.
    let (steps, runs) = (env("STEPS", 499), env("RUNS", 5));
    // A whole 500-token greedy run from BOS, as `infer` times it (steps + sampling).
    let sampler = infer::Sampler::greedy();
    let mut rng = runtime::Rng::new(1);
    let mut run = || -> anyhow::Result<f64> {
        let mut next = sampler.sample(
            &dec.prefill(&Tensor::from_slice(&[1i64]).view([1, 1]))?,
            &mut rng,
        )?;
        let t = Instant::now();
        for _ in 0..steps {
            next = sampler.sample(&dec.step(&next)?, &mut rng)?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / steps as f64)
    };
    let mut step = f64::MAX;
    for _ in 0..runs {
        step = step.min(run()?);
    }
    println!(
        "stories260K decode step: {step:.1} µs ({:.0} tok/s)",
        1e6 / step
    );
    if std::env::var_os("MICRO").is_none() {
        return Ok(());
    }
    let _im = runtime::InferenceMode::enter();
    let x = Tensor::randn([1, 1, 64], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([192, 64], (Kind::Float, Device::Cpu));
    let add = best_us(1000, || {
        let _ = &x + &x;
    });
    let narrow = best_us(1000, || {
        let _ = x.narrow(2, 0, 32);
    });
    let linear = best_us(1000, || {
        let _ = x.linear::<Tensor>(&w, None);
    });
    let wt = w.tr().contiguous();
    let x2 = x.view([1, 64]);
    let mm = best_us(1000, || {
        let _ = x2.mm(&wt);
    });
    let matmul_t = best_us(1000, || {
        let _ = x.matmul(&wt);
    });
    let fold = best_us(1000, || {
        let _ = x.view([1, 64]).mm(&wt).view([1, 1, 192]);
    });
    let wtv = w.tr();
    let mm_view = best_us(1000, || {
        let _ = x2.mm(&wtv);
    });
    println!(
        "matmul(wᵀ) {matmul_t:.2} µs, view+mm+view {fold:.2} µs, mm(w.tr() view) {mm_view:.2} µs"
    );
    let x1 = x.view([64]);
    let mv = best_us(1000, || {
        let _ = w.mv(&x1);
    });
    let kind = best_us(1000, || {
        let _ = x.kind();
    });
    let g = Tensor::ones([64], (Kind::Float, Device::Cpu));
    let rms = best_us(1000, || {
        let _ = x.rms_norm([64], Some(&g), 1e-5);
    });
    let lin2 = best_us(1000, || {
        let _ = x2.linear::<Tensor>(&w, None);
    });
    let q = Tensor::randn([1, 4, 2, 8], (Kind::Float, Device::Cpu));
    let kv = Tensor::randn([1, 4, 256, 8], (Kind::Float, Device::Cpu));
    let sdpa = best_us(1000, || {
        let _ = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &kv, &kv, None, 0.0, false, None, false,
        );
    });
    let naive = best_us(1000, || {
        let _ = q
            .matmul(&kv.transpose(-2, -1))
            .softmax(-1, Kind::Float)
            .matmul(&kv);
    });
    println!("rms_norm {rms:.2} µs, linear 2-d {lin2:.2} µs, sdpa 8×256 {sdpa:.2} µs, naive {naive:.2} µs");
    println!("one op: add {add:.2} µs, narrow {narrow:.2} µs, linear 64→192 {linear:.2} µs (mm {mm:.2}, mv {mv:.2}), kind() {kind:.3} µs");
    Ok(())
}
