//! One GPT-2-small-sized decode matmul, x (1, 768) · Wᵀ with W (3072, 768), in bf16 and fp32,
//! through `linear`, `mm` on a transposed view and `mv`: which kernel reads the weights
//! nearest the memory bandwidth at batch 1 (issue #16):
//! `cargo run --release -p infer --example gemv_bf16 -- THREADS`.
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn best_ms(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = Instant::now();
        for _ in 0..10 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / 10.0);
    }
    best
}

fn main() {
    let threads: i32 = std::env::args()
        .nth(1)
        .map_or(2, |a| a.parse().expect("THREADS"));
    tch::set_num_threads(threads);
    let _im = runtime::InferenceMode::enter();
    for kind in [Kind::Float, Kind::BFloat16] {
        let w = Tensor::randn([3072, 768], (kind, Device::Cpu));
        let x = Tensor::randn([1, 768], (kind, Device::Cpu));
        let wt = w.tr();
        let x1 = x.view([768]);
        let gb = (w.numel() * kind.elt_size_in_bytes()) as f64 / 1e9;
        for (name, ms) in [
            ("linear", best_ms(|| drop(x.linear::<Tensor>(&w, None)))),
            ("mm(wᵀ view)", best_ms(|| drop(x.mm(&wt)))),
            ("mv", best_ms(|| drop(w.mv(&x1)))),
            ("matmul(x, wᵀ)", best_ms(|| drop(x.matmul(&wt)))),
        ] {
            println!("{kind:?} {name}: {ms:.3} ms = {:.1} GB/s", gb / (ms / 1e3));
        }
    }
}
