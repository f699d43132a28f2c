//! One decode step's attention for a GPT-2-small layer (12 query heads of 64 over 12 or 4 KV
//! heads, one query over S cached positions) in bf16 and fp32: libtorch's SDPA (query heads
//! folded per KV head, as `model::attention` calls it), the naive matmul-softmax-matmul (MHA
//! only), and `runtime::attn` (ours), best of 20 × 100 calls:
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
        for nkv in [12i64, 4] {
            let rep = 12 / nkv;
            // (B, nkv, cap, hs) caches
            let cache = || Tensor::randn([1, nkv, 4096, 64], (kind, Device::Cpu));
            let (kc, vc) = (cache(), cache());
            let q = Tensor::randn([1, 12, 1, 64], (kind, Device::Cpu));
            let qg = q.reshape([1, nkv, rep, 64]); // (B, nkv, rep, hs)
            for s in [64i64, 192, 1024, 4096] {
                let (k, v) = (kc.narrow(2, 0, s), vc.narrow(2, 0, s)); // (B, nkv, S, hs)
                let sdpa = best_us(|| {
                    let y = Tensor::scaled_dot_product_attention::<Tensor>(
                        &qg, &k, &v, None, 0.0, false, None, false,
                    );
                    drop(y)
                });
                let naive = match nkv {
                    12 => format!(
                        "{:.1}",
                        best_us(|| {
                            let a = q.matmul(&k.transpose(-2, -1)) * 0.125; // (B, nh, 1, S)
                            drop(a.softmax(-1, Kind::Float).to_kind(kind).matmul(&v))
                        })
                    ),
                    _ => "-".into(),
                };
                let ours = best_us(|| drop(runtime::attn::decode_attention(&q, &k, &v, 0.125)));
                println!(
                    "{kind:?} n_kv={nkv} S={s}: sdpa {sdpa:.1} µs, naive {naive} µs, runtime::attn {ours:.1} µs"
                );
            }
        }
    }
}
