//! One decode step's attention (T_q = 1 over S cached keys) three ways, timed on this
//! machine: `scaled_dot_product_attention` with the query heads as they are (MHA: B, H, 1, hs),
//! SDPA with each GQA group's queries folded into the query axis, and the plain
//! matmul → softmax → matmul path; SDPA also on K/V views of a longer buffer, as the KV
//! cache passes them. `cargo run --release -p model --example decode_attention`.
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Best of 30 runs (after 3 warm-ups), in ms: the least disturbed by other processes.
fn time(mut f: impl FnMut() -> Tensor) -> f64 {
    for _ in 0..3 {
        let _ = f();
    }
    (0..30)
        .map(|_| {
            let t = Instant::now();
            let _ = f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let _g = tch::no_grad_guard();
    let (h, hs) = (12i64, 32i64);
    for kind in [Kind::Float, Kind::BFloat16] {
        for (b, s) in [(1i64, 256i64), (1, 4096), (8, 4096), (1, 8192)] {
            for nkv in [12i64, 4, 1] {
                let rep = h / nkv;
                let opts = (kind, Device::Cpu);
                let q = Tensor::randn([b, h, 1, hs], opts);
                let k = Tensor::randn([b, nkv, s, hs], opts);
                let v = Tensor::randn([b, nkv, s, hs], opts);
                let qg = q.reshape([b, nkv, rep, hs]); // (B, nkv, rep, hs)
                let sdpa = time(|| {
                    Tensor::scaled_dot_product_attention::<Tensor>(
                        &qg, &k, &v, None, 0.0, false, None, false,
                    )
                });
                // As the KV cache hands them over: views of the first S of S + 512 slots.
                let kc = Tensor::randn([b, nkv, s + 512, hs], opts);
                let vc = Tensor::randn([b, nkv, s + 512, hs], opts);
                let (kv_k, kv_v) = (kc.narrow(2, 0, s), vc.narrow(2, 0, s));
                let view = time(|| {
                    Tensor::scaled_dot_product_attention::<Tensor>(
                        &qg, &kv_k, &kv_v, None, 0.0, false, None, false,
                    )
                });
                let scale = 1.0 / (hs as f64).sqrt();
                let mm = time(|| {
                    let att = qg.matmul(&k.transpose(-2, -1)) * scale; // (B, nkv, rep, S)
                    att.softmax(-1, Kind::Float).to_kind(kind).matmul(&v) // (B, nkv, rep, hs)
                });
                println!(
                    "{kind:?} B={b} S={s} n_kv={nkv}: sdpa {sdpa:.3} ms (on cache views {view:.3} ms), matmul {mm:.3} ms (sdpa/matmul {:.2}×)",
                    sdpa / mm
                );
            }
        }
    }
}
