//! Times training attention at Ladder's CPU training shapes: our kernel
//! (`runtime::causal_attn`) against libtorch's `scaled_dot_product_attention` (is_causal),
//! forward alone and forward + backward, f32 and bf16 where the CPU runs bf16 natively.
//! `cargo run --release -p runtime --example attn_train [threads]`; the output, with the
//! command, machine and revision it prints first, is kept in `results/speed/attn_train.txt`.
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Best mean over 5 rounds of `n` calls, in ms.
fn best_ms(n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    let f = runtime::hardware::detect(Device::Cpu);
    println!("command: cargo run --release -p runtime --example attn_train {threads}");
    println!(
        "machine: {} ({} logical cores; {}) · git {} · {}",
        f.cpu_model,
        f.logical_cores,
        f.cpu_flags.join(", "),
        runtime::facts::git_rev(),
        runtime::facts::timestamp_utc()
    );
    println!("threads {threads}; ms per call of one layer's attention (best of 5)");
    println!("shape (B, nh, T, hs)   dtype  sdpa fwd  ours fwd  sdpa f+b  ours f+b");
    let shapes = [
        (32, 4, 128, 32),
        (8, 12, 256, 32),
        (4, 12, 512, 64),
        (1, 12, 64, 64),
    ];
    for (b, nh, t, hs) in shapes {
        for kind in [Kind::Float, Kind::BFloat16] {
            let f = (Kind::Float, Device::Cpu);
            let qkv = Tensor::randn([b, t, 3 * nh, hs], f)
                .to_kind(kind)
                .set_requires_grad(true);
            let q = qkv.narrow(2, 0, nh).transpose(1, 2);
            let k = qkv.narrow(2, nh, nh).transpose(1, 2);
            let v = qkv.narrow(2, 2 * nh, nh).transpose(1, 2);
            let gy = Tensor::randn([b, nh, t, hs], f).to_kind(kind);
            let scale = 1.0 / (hs as f64).sqrt();
            let sdpa = || {
                Tensor::scaled_dot_product_attention::<Tensor>(
                    &q, &k, &v, None, 0.0, true, None, false,
                )
            };
            // As the model calls it: from the packed projection (one gradient buffer).
            let ours = || {
                runtime::causal_attn::causal_attention_packed(&qkv, nh, nh, scale).expect("applies")
            };
            let fb = |y: Tensor| {
                let _ = Tensor::run_backward(&[(y * &gy).sum(Kind::Float)], &[&qkv], false, false);
            };
            let n = (2_000_000 / (b * nh * t * t / 64)).clamp(2, 200) as usize;
            let sf = tch::no_grad(|| best_ms(n, || drop(sdpa())));
            let of = tch::no_grad(|| best_ms(n, || drop(ours())));
            let sb = best_ms(n, || fb(sdpa()));
            let ob = best_ms(n, || fb(ours()));
            println!(
                "({b:>2}, {nh:>2}, {t:>3}, {hs:>2})    {:<5} {sf:>9.3} {of:>9.3} {sb:>9.3} {ob:>9.3}",
                if kind == Kind::Float { "f32" } else { "bf16" }
            );
        }
    }
}
