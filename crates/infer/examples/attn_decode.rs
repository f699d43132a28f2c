//! One decode step's attention for a GPT-2-small layer (12 heads of 64, one query over S
//! cached positions) in bf16 and fp32: libtorch's SDPA, the naive matmul-softmax-matmul,
//! and `runtime::attn` (ours), best of 20 × 100 calls:
//! `cargo run --release -p infer --example attn_decode -- THREADS`.
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn best_us(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        for _ in 0..100 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    best
}

fn main() {
    let threads: i32 = std::env::args()
        .nth(1)
        .map_or(2, |a| a.parse().expect("THREADS: a number"));
    tch::set_num_threads(threads);
    let _im = runtime::InferenceMode::enter();
    for kind in [Kind::BFloat16, Kind::Float] {
        let cache = || Tensor::randn([1, 12, 256, 64], (kind, Device::Cpu)); // (B, nh, cap, hs)
        let (kc, vc) = (cache(), cache());
        let q = Tensor::randn([1, 12, 1, 64], (kind, Device::Cpu));
        for s in [64i64, 128, 192] {
            let (k, v) = (kc.narrow(2, 0, s), vc.narrow(2, 0, s)); // (B, nh, S, hs)
            let sdpa = best_us(|| {
                let y = Tensor::scaled_dot_product_attention::<Tensor>(
                    &q, &k, &v, None, 0.0, false, None, false,
                );
                drop(y)
            });
            let naive = best_us(|| {
                let a = q.matmul(&k.transpose(-2, -1)) * 0.125; // (B, nh, 1, S)
                drop(a.softmax(-1, Kind::Float).to_kind(kind).matmul(&v))
            });
            let ours = best_us(|| drop(runtime::attn::decode_attention(&q, &k, &v, 0.125)));
            println!(
                "{kind:?} S={s}: sdpa {sdpa:.1} µs, naive {naive:.1} µs, runtime::attn {ours:.1} µs"
            );
        }
    }
}
